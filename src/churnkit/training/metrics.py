"""Ranking metrics for churn scores; class 1 is ``churned``."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

__all__ = ["lift_at", "score_metrics"]


def lift_at(y_true: np.ndarray, scores: np.ndarray, fraction: float) -> float:
    """Churn rate among the top ``fraction`` by score, divided by the overall churn rate.

    Ties in score are broken by row order, so the result is deterministic.
    """
    y = np.asarray(y_true, dtype=float)
    k = max(1, math.ceil(fraction * len(y)))
    top = np.argsort(-np.asarray(scores, dtype=float), kind="stable")[:k]
    base_rate = y.mean()
    return float(y[top].mean() / base_rate) if base_rate > 0 else float("nan")


def score_metrics(y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision) and lift at 10 % of one set of scores."""
    y = np.asarray(y_true, dtype=int)
    return {
        "roc_auc": float(roc_auc_score(y, scores)),
        "pr_auc": float(average_precision_score(y, scores)),
        "lift_10": lift_at(y, scores, 0.10),
    }
