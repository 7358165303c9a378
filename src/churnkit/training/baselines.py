"""Deterministic baselines the model has to beat, with the sklearn estimator contract."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from churnkit.training.bgnbd import bgnbd_no_purchase_probability

__all__ = ["BGNBD_COLUMN", "BGNBDBaseline", "CRRBaseline", "ScoreBaseline", "baseline_from_dict"]

BGNBD_COLUMN = "bgnbd_no_purchase"


class CRRBaseline(ClassifierMixin, BaseEstimator):
    """Churn probability = 1 - customer retention rate of the customer's segment.

    ``fit`` computes, per segment over the training snapshots,
    CRR = retained / active = 1 - churn rate, and the global CRR for segments it has
    not seen. There is no randomness: like ``DummyClassifier``, it is a reference.

    Parameters
    ----------
    segment_column
        Column of ``X`` that names each customer's segment.

    Attributes
    ----------
    crr_by_segment_ : dict[str, float]
        Retention rate per segment seen in training.
    active_by_segment_ : dict[str, int]
        Active customers (rows) per segment in training.
    global_crr_ : float
        Retention rate over all training rows.
    classes_ : ndarray
        ``[0, 1]``; class 1 is ``churned``.
    """

    def __init__(self, segment_column: str = "segment") -> None:
        self.segment_column = segment_column

    def fit(self, X: pd.DataFrame, y: Any) -> CRRBaseline:
        segments = self._segments(X)
        churned = np.asarray(y, dtype=float)
        if len(churned) != len(segments):
            raise ValueError(f"X has {len(segments)} rows but y has {len(churned)}")
        frame = pd.DataFrame({"segment": segments.to_numpy(), "retained": 1.0 - churned})
        grouped = frame.groupby("segment", sort=True)["retained"].agg(["mean", "size"])
        self.crr_by_segment_ = {str(k): float(v) for k, v in grouped["mean"].items()}
        self.active_by_segment_ = {str(k): int(v) for k, v in grouped["size"].items()}
        self.global_crr_ = float(frame["retained"].mean())
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Columns: P(retained), P(churned)."""
        crr = self._segments(X).map(self.crr_by_segment_).astype(float)
        retained = crr.fillna(self.global_crr_).to_numpy()
        return np.column_stack([retained, 1.0 - retained])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def to_dict(self) -> dict[str, Any]:
        """The fitted table, for storing with a model."""
        return {
            "segment_column": self.segment_column,
            "crr_by_segment": self.crr_by_segment_,
            "active_by_segment": self.active_by_segment_,
            "global_crr": self.global_crr_,
        }

    @classmethod
    def from_dict(cls, table: dict[str, Any]) -> CRRBaseline:
        baseline = cls(segment_column=table["segment_column"])
        baseline.crr_by_segment_ = dict(table["crr_by_segment"])
        baseline.active_by_segment_ = dict(table["active_by_segment"])
        baseline.global_crr_ = float(table["global_crr"])
        baseline.classes_ = np.array([0, 1])
        return baseline

    def _segments(self, X: pd.DataFrame) -> pd.Series:
        if self.segment_column not in X:
            raise ValueError(
                f"CRRBaseline needs column {self.segment_column!r}; got {list(X.columns)}"
            )
        return X[self.segment_column].astype(str)


class ScoreBaseline(ClassifierMixin, BaseEstimator):
    """Churn probability from one score (the sum of ``columns``), by isotonic regression.

    The baseline of a single signal: ``ScoreBaseline(("recency_days",))`` is recency alone
    (more days, more churn); ``ScoreBaseline(("r_score", "f_score", "m_score"),
    increasing=False)`` is the RFM score (higher score, less churn). Fitted on the training
    snapshots; deterministic.

    Attributes
    ----------
    x_thresholds_, y_thresholds_ : ndarray
        The fitted monotone map from score to churn rate.
    """

    def __init__(
        self, columns: tuple[str, ...] = ("recency_days",), increasing: bool = True
    ) -> None:
        self.columns = columns
        self.increasing = increasing

    def fit(self, X: pd.DataFrame, y: Any) -> ScoreBaseline:
        from sklearn.isotonic import IsotonicRegression

        isotonic = IsotonicRegression(increasing=self.increasing, out_of_bounds="clip")
        isotonic.fit(self._score(X), np.asarray(y, dtype=float))
        self.x_thresholds_ = isotonic.X_thresholds_
        self.y_thresholds_ = isotonic.y_thresholds_
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        churn = np.interp(self._score(X), self.x_thresholds_, self.y_thresholds_)
        return np.column_stack([1.0 - churn, churn])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def signal(self, X: pd.DataFrame) -> np.ndarray:
        """The score itself, oriented so that higher means more churn (orders ties)."""
        score = self._score(X)
        return score if self.increasing else -score

    def to_dict(self) -> dict[str, Any]:
        """The fitted map, for storing with a model."""
        return {
            "columns": list(self.columns),
            "increasing": self.increasing,
            "x_thresholds": [float(x) for x in self.x_thresholds_],
            "y_thresholds": [float(y) for y in self.y_thresholds_],
        }

    @classmethod
    def from_dict(cls, table: dict[str, Any]) -> ScoreBaseline:
        baseline = cls(tuple(table["columns"]), increasing=bool(table["increasing"]))
        baseline.x_thresholds_ = np.asarray(table["x_thresholds"], dtype=float)
        baseline.y_thresholds_ = np.asarray(table["y_thresholds"], dtype=float)
        baseline.classes_ = np.array([0, 1])
        return baseline

    def _score(self, X: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.columns if c not in X]
        if missing:
            raise ValueError(f"ScoreBaseline needs columns {missing}; got {list(X.columns)}")
        return X[list(self.columns)].astype(float).sum(axis=1).to_numpy()


class BGNBDBaseline(ScoreBaseline):
    """Churn probability from BG/NBD's probability of no purchase in the horizon.

    The BG/NBD model is fitted on each snapshot's customers with their history before it
    (:func:`churnkit.training.bgnbd.bgnbd_no_purchase_probability`); its output is then
    mapped to churn rates by isotonic regression fitted on the training snapshots. Frames
    that already carry the ``bgnbd_no_purchase`` column (training computes it once per
    snapshot) are not refitted.
    """

    def __init__(self, horizon_days: int = 90) -> None:
        super().__init__((BGNBD_COLUMN,), increasing=True)
        self.horizon_days = horizon_days

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "kind": "bgnbd", "horizon_days": self.horizon_days}

    @classmethod
    def from_dict(cls, table: dict[str, Any]) -> BGNBDBaseline:
        baseline = cls(int(table["horizon_days"]))
        baseline.x_thresholds_ = np.asarray(table["x_thresholds"], dtype=float)
        baseline.y_thresholds_ = np.asarray(table["y_thresholds"], dtype=float)
        baseline.classes_ = np.array([0, 1])
        return baseline

    def _score(self, X: pd.DataFrame) -> np.ndarray:
        if BGNBD_COLUMN in X:
            return X[BGNBD_COLUMN].to_numpy(dtype=float)
        return bgnbd_no_purchase_probability(X, self.horizon_days)


def baseline_from_dict(table: dict[str, Any]) -> ScoreBaseline:
    """A stored score baseline, of the kind its table names."""
    if table.get("kind") == "bgnbd":
        return BGNBDBaseline.from_dict(table)
    return ScoreBaseline.from_dict(table)
