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

__all__ = [
    "TOP_FRACTIONS",
    "bootstrap_pr_auc_difference",
    "expected_calibration_error",
    "lift_at",
    "score_metrics",
    "top_k",
]

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


def bootstrap_pr_auc_difference(
    y_true: np.ndarray,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    groups: np.ndarray,
    *,
    samples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, float]:
    """PR-AUC of ``scores_a`` minus that of ``scores_b``, with a bootstrap interval.

    A paired cluster bootstrap: each resample draws whole ``groups`` (customers, who
    appear once per test snapshot) with replacement, and both scorers are measured on the
    same resample, so the interval reflects the correlation between them. Implemented as
    multinomial sample weights over the groups; the percentile interval is returned.
    """
    y = np.asarray(y_true, dtype=int)
    a, b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    _, group_of_row = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(group_of_row.max()) + 1
    rng = np.random.default_rng(seed)
    differences = np.empty(samples)
    for i in range(samples):
        weight = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups))[group_of_row]
        differences[i] = average_precision_score(
            y, a, sample_weight=weight
        ) - average_precision_score(y, b, sample_weight=weight)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(differences, [tail, 100 - tail])
    return {
        "difference": float(average_precision_score(y, a) - average_precision_score(y, b)),
        "ci_low": float(low),
        "ci_high": float(high),
        "samples": float(samples),
        "confidence": float(confidence),
    }
