"""Metrics for churn scores against what customers did; class 1 is ``churned``.

For every scorer: ROC-AUC, PR-AUC (average precision), Brier score, log loss, expected
calibration error, and at the top 5, 10 and 20 % by score: lift (churn rate there / overall
churn rate), capture (share of all churners found there, i.e. recall at k) and precision
(churn rate there). Ties in score are broken by row order, so results are deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

__all__ = [
    "TOP_FRACTIONS",
    "bootstrap_differences",
    "bootstrap_intervals",
    "tonight_intervals",
    "walk_forward_intervals",
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


def _curve_points(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row order by descending score, and the last position of each distinct score."""
    order = np.argsort(scores, kind="mergesort")[::-1]
    sorted_scores = scores[order]
    distinct = np.flatnonzero(np.diff(sorted_scores))
    return order, np.r_[distinct, len(y) - 1]


def _ranking_metrics(tps: np.ndarray, fps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PR-AUC and ROC-AUC per row from the weighted true and false positives at or
    above each distinct score (resamples x distinct scores, descending)."""
    positives, negatives = tps[:, -1:], fps[:, -1:]
    predicted = tps + fps
    precision = np.divide(tps, predicted, out=np.ones_like(tps), where=predicted > 0)
    recall = tps / positives
    pr_auc = np.sum(np.diff(recall, axis=1, prepend=0.0) * precision, axis=1)
    tpr = np.concatenate([np.zeros_like(positives), recall], axis=1)
    fpr = np.concatenate([np.zeros_like(negatives), fps / negatives], axis=1)
    roc_auc = np.trapezoid(tpr, fpr, axis=1)
    return pr_auc, roc_auc


@dataclass(frozen=True)
class _Curve:
    """One scorer's rows in descending score order, by label: the group (customer) of
    each positive and each negative row, and how many of each rank at or above every
    distinct score."""

    positive_groups: np.ndarray
    negative_groups: np.ndarray
    positives_at: np.ndarray
    negatives_at: np.ndarray

    @classmethod
    def of(cls, y: np.ndarray, scores: np.ndarray, group_of_row: np.ndarray) -> _Curve:
        order, thresholds = _curve_points(y, scores)
        positive = y[order] > 0
        groups = group_of_row[order]
        positives_at = np.cumsum(positive)[thresholds]
        return cls(groups[positive], groups[~positive], positives_at, thresholds + 1 - positives_at)

    def metrics(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """PR-AUC and ROC-AUC on each resample, given as draws per group (resamples x
        groups). A row weighs its group's draws, so the weighted true positives at a
        score are a running sum of the positive rows' draws: integers, summed exactly,
        hence the same numbers as cumulative sums of row weights (``tests/test_training.py``
        compares them with sklearn's weighted metrics), gathered from the small table of
        groups once instead of row weights twice."""
        tps = _running_sums(counts, self.positive_groups)[:, self.positives_at]
        fps = _running_sums(counts, self.negative_groups)[:, self.negatives_at]
        return _ranking_metrics(tps.astype(float), fps.astype(float))


def _running_sums(counts: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """0, then the running sums of ``counts[:, groups]`` along each row, as int64."""
    out = np.zeros((len(counts), len(groups) + 1), dtype=np.int64)
    np.cumsum(counts[:, groups], axis=1, dtype=np.int64, out=out[:, 1:])
    return out


def _resampled_metrics(
    y: np.ndarray, scorers: list[np.ndarray], groups: np.ndarray, samples: int, seed: int
) -> list[dict[str, np.ndarray]]:
    """PR-AUC and ROC-AUC of each scorer on the same ``samples`` cluster resamples.

    Each resample draws ``n_groups`` groups with replacement (multinomial counts); one
    seed gives the same resamples whatever the scorers, so the values of a scorer are
    the same in every call with that seed.
    """
    _, group_of_row = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(group_of_row.max()) + 1
    rng = np.random.default_rng(seed)
    curves = [_Curve.of(y, s, group_of_row) for s in scorers]
    values = [{"pr_auc": np.empty(samples), "roc_auc": np.empty(samples)} for _ in scorers]
    batch = max(1, 4_000_000 // max(len(y), 1))
    for first in range(0, samples, batch):
        size = min(batch, samples - first)
        counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=size)
        counts = counts.astype(np.int32)  # at most n_groups each; gathers from half the bytes
        for curve, out in zip(curves, values, strict=True):
            pr, roc = curve.metrics(counts)
            out["pr_auc"][first : first + size] = pr
            out["roc_auc"][first : first + size] = roc
    return values


def bootstrap_differences(
    y_true: np.ndarray,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    groups: np.ndarray,
    *,
    samples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, dict[str, float]]:
    """PR-AUC and ROC-AUC of ``scores_a`` minus those of ``scores_b``, with intervals.

    A paired cluster bootstrap: each resample draws whole ``groups`` (customers, who
    appear once per test date) with replacement, and both scorers are measured on the
    same resample, so the interval reflects the correlation between them. Implemented as
    multinomial sample weights over the groups; the percentile interval is returned.

    The weighted curves are computed here, vectorised over resamples, instead of calling
    sklearn's metrics once per resample: the same numbers (a test compares them), about
    50 times faster, which is what lets every baseline get an interval.
    """
    y = np.asarray(y_true, dtype=float)
    a, b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    of_a, of_b = _resampled_metrics(y, [a, b], groups, samples, seed)
    return _differences(y, a, b, of_a, of_b, confidence)


def _differences(
    y: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    of_a: dict[str, np.ndarray],
    of_b: dict[str, np.ndarray],
    confidence: float,
) -> dict[str, dict[str, float]]:
    """``a`` minus ``b`` on all rows, with the percentile interval of the resampled
    differences (``of_a`` and ``of_b``: the same resamples)."""
    samples = len(of_a["pr_auc"])
    differences = {metric: of_a[metric] - of_b[metric] for metric in of_a}
    full = {
        "pr_auc": average_precision_score(y, a) - average_precision_score(y, b),
        "roc_auc": roc_auc_score(y, a) - roc_auc_score(y, b),
    }
    tail = (1 - confidence) / 2 * 100
    result = {}
    for metric, values in differences.items():
        low, high = np.percentile(values, [tail, 100 - tail])
        result[metric] = {
            "difference": float(full[metric]),
            "ci_low": float(low),
            "ci_high": float(high),
            "samples": float(samples),
            "confidence": float(confidence),
        }
    return result


def bootstrap_intervals(
    y_true: np.ndarray,
    scores: np.ndarray,
    groups: np.ndarray,
    *,
    samples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of one scorer's PR-AUC and ROC-AUC, resampling ``groups``
    (customers) with replacement as :func:`bootstrap_differences` does."""
    y = np.asarray(y_true, dtype=float)
    (values,) = _resampled_metrics(y, [np.asarray(scores, dtype=float)], groups, samples, seed)
    return _intervals(values, confidence)


def _intervals(values: dict[str, np.ndarray], confidence: float) -> dict[str, tuple[float, float]]:
    tail = (1 - confidence) / 2 * 100
    return {
        metric: tuple(float(v) for v in np.percentile(draws, [tail, 100 - tail]))
        for metric, draws in values.items()
    }


def tonight_intervals(
    y_true: np.ndarray,
    scores: np.ndarray,
    groups: np.ndarray,
    dates: np.ndarray,
    *,
    samples: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """What one more night's list should achieve: the mean of PR-AUC and ROC-AUC over
    the walk-forward test ``dates``, with a 95 % prediction interval for a new date.

    A night's list is one draw of a date, so the estimate is the mean of the per-date
    metrics (pooling dates with different churn rates gives a figure no single night
    has), and the interval is the one for a new observation from ``n`` observed ones:
    ``mean +- t(n - 1) * sd_dates * sqrt(1 + 1 / n)``, Student's t because ``sd_dates``
    is estimated from a handful of dates. It is never narrower than the customer
    bootstrap's interval for one night (the pooled standard error times ``sqrt(n)``), so
    dates that agree by chance do not promise more than one night's customers allow.
    """
    y, p = np.asarray(y_true, dtype=int), np.asarray(scores, dtype=float)
    customers = bootstrap_intervals(y, p, groups, samples=samples, seed=seed)
    return _tonight(y, p, np.asarray(dates), customers)


def _tonight(
    y: np.ndarray, p: np.ndarray, dates: np.ndarray, customers: dict[str, tuple[float, float]]
) -> dict[str, dict[str, float]]:
    """:func:`tonight_intervals`, given the customer bootstrap's intervals."""
    metrics = {"pr_auc": average_precision_score, "roc_auc": roc_auc_score}
    distinct = np.unique(dates)
    n = len(distinct)
    result = {}
    for name, metric in metrics.items():
        per_date = np.array([metric(y[dates == d], p[dates == d]) for d in distinct])
        one_night_se = (customers[name][1] - customers[name][0]) / (2 * 1.96) * math.sqrt(n)
        half = 1.96 * one_night_se
        if n > 1:
            between = float(np.std(per_date, ddof=1)) * math.sqrt(1 + 1 / n)
            half = max(half, float(stats.t.ppf(0.975, n - 1)) * between)
        estimate = float(per_date.mean())
        result[name] = {
            "estimate": estimate,
            "low": max(0.0, estimate - half),
            "high": min(1.0, estimate + half),
        }
    return result


def walk_forward_intervals(
    y_true: np.ndarray,
    scores: Mapping[str, np.ndarray],
    groups: np.ndarray,
    dates: np.ndarray,
    *,
    reference: str,
    samples: int = 1000,
    seed: int = 0,
) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, dict[str, dict[str, float]]]]:
    """Every interval a training run reports, from one set of customer resamples.

    Returns ``reference`` minus each other scorer (:func:`bootstrap_differences`) and each
    scorer's figure for one more night (:func:`tonight_intervals`): the same numbers as
    those functions called one by one with this seed, since a seed gives the same
    resamples whatever the scorers. The resamples are drawn and each scorer measured on
    them once, instead of once per call (on a million test rows, minutes instead of most
    of an hour).
    """
    y = np.asarray(y_true, dtype=float)
    arrays = {name: np.asarray(values, dtype=float) for name, values in scores.items()}
    resampled = dict(
        zip(
            arrays, _resampled_metrics(y, list(arrays.values()), groups, samples, seed), strict=True
        )
    )
    differences = {
        name: _differences(
            y, arrays[reference], arrays[name], resampled[reference], resampled[name], 0.95
        )
        for name in arrays
        if name != reference
    }
    labels, dates = y.astype(int), np.asarray(dates)
    tonight = {
        name: _tonight(labels, arrays[name], dates, _intervals(resampled[name], 0.95))
        for name in arrays
    }
    return differences, tonight
