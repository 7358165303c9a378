"""Calibration of churn scores on out-of-time data, so probabilities mean what they say.

sklearn's ``CalibratedClassifierCV(FrozenEstimator(...), method="isotonic")`` fits one
isotonic map from the model's raw scores to churn rates on the validation snapshots.
The map is kept as its thresholds (JSON, not a pickle) and applied with linear
interpolation, which is exactly what ``IsotonicRegression.predict`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

__all__ = ["Calibration", "fit_calibration"]

# a calibrated 0 or 1 would claim certainty; keep probabilities strictly inside
_EPSILON = 1e-4


class _PrecomputedScores(ClassifierMixin, BaseEstimator):
    """A classifier whose 'features' are already its churn scores (column 0)."""

    def fit(self, X: Any, y: Any = None) -> _PrecomputedScores:
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        scores = np.asarray(X, dtype=float)[:, 0]
        return np.column_stack([1.0 - scores, scores])

    def predict(self, X: Any) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


@dataclass(frozen=True)
class Calibration:
    """An isotonic map from raw scores to calibrated churn probabilities."""

    x_thresholds: tuple[float, ...]
    y_thresholds: tuple[float, ...]

    def apply(self, raw: np.ndarray) -> np.ndarray:
        calibrated = np.interp(np.asarray(raw, dtype=float), self.x_thresholds, self.y_thresholds)
        return np.clip(calibrated, _EPSILON, 1.0 - _EPSILON)

    def to_dict(self) -> dict[str, list[float]]:
        return {"x_thresholds": list(self.x_thresholds), "y_thresholds": list(self.y_thresholds)}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> Calibration:
        return cls(tuple(data["x_thresholds"]), tuple(data["y_thresholds"]))


def fit_calibration(raw_scores: np.ndarray, churned: np.ndarray) -> Calibration:
    """Fit the isotonic map on out-of-time rows (the validation snapshots)."""
    frozen = FrozenEstimator(_PrecomputedScores().fit(None))
    calibrated = CalibratedClassifierCV(frozen, method="isotonic")
    calibrated.fit(np.asarray(raw_scores, dtype=float)[:, None], np.asarray(churned, dtype=int))
    isotonic = calibrated.calibrated_classifiers_[0].calibrators[0]
    return Calibration(
        tuple(float(x) for x in isotonic.X_thresholds_),
        tuple(float(y) for y in isotonic.y_thresholds_),
    )
