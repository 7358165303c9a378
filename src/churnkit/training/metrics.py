"""Metrics for churn scores against what customers did; class 1 is ``churned``.

For every scorer: ROC-AUC, PR-AUC (average precision), Brier score, log loss, expected
calibration error, and at the top 5, 10 and 20 % by score: lift (churn rate there / overall
churn rate), capture (share of all churners found there, i.e. recall at k) and precision
(churn rate there). Ties in score are broken by row order, so results are deterministic.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

__all__ = ["TOP_FRACTIONS", "expected_calibration_error", "lift_at", "score_metrics", "top_k"]

TOP_FRACTIONS = (0.05, 0.10, 0.20)
_BINS = 10


def top_k(y_true: np.ndarray, scores: np.ndarray, fraction: float) -> np.ndarray:
    """Labels of the top ``fraction`` of rows by score (at least one row)."""
    y = np.asarray(y_true, dtype=float)
    k = max(1, math.ceil(fraction * len(y)))
    return y[np.argsort(-np.asarray(scores, dtype=float), kind="stable")[:k]]


def lift_at(y_true: np.ndarray, scores: np.ndarray, fraction: float) -> float:
    """Churn rate among the top ``fraction`` by score, divided by the overall churn rate."""
    base_rate = np.asarray(y_true, dtype=float).mean()
    return float(top_k(y_true, scores, fraction).mean() / base_rate) if base_rate > 0 else math.nan


def expected_calibration_error(y_true: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean |churn rate - mean probability| over 10 equal-width bins, weighted by rows."""
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(probabilities, dtype=float)
    bins = np.minimum((p * _BINS).astype(int), _BINS - 1)
    error = 0.0
    for b in np.unique(bins):
        inside = bins == b
        error += inside.sum() / len(y) * abs(y[inside].mean() - p[inside].mean())
    return float(error)


def score_metrics(y_true: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Every metric of the module docstring for one set of churn probabilities."""
    y = np.asarray(y_true, dtype=int)
    p = np.clip(np.asarray(probabilities, dtype=float), 1e-15, 1 - 1e-15)
    metrics = {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "ece": expected_calibration_error(y, p),
    }
    churners = y.sum()
    for fraction in TOP_FRACTIONS:
        top = top_k(y, p, fraction)
        pct = round(fraction * 100)
        metrics[f"lift_{pct}"] = lift_at(y, p, fraction)
        metrics[f"capture_{pct}"] = float(top.sum() / churners) if churners else math.nan
        metrics[f"precision_{pct}"] = float(top.mean())
    return metrics
