"""Calibration of churn scores on out-of-time data, so probabilities mean what they say.

sklearn's ``CalibratedClassifierCV(FrozenEstimator(...))`` fits the map from the model's
raw scores to churn rates on the validation snapshots. Two methods:

``sigmoid`` (the default)
    Platt scaling on the raw score's log-odds, ``p = 1 / (1 + exp(a * logit(raw) + b))``:
    strictly monotone, so it keeps the model's ranking and its ties are the raw score's
    own; no floors or ceilings.
``isotonic``
    a step function; better on large validation sets with odd shapes, but it maps whole
    ranges of scores to one value (ties that cut through tiers and top-k lists), and
    its ends are clipped to ``[1e-4, 1 - 1e-4]``.

Either map is kept as numbers (JSON, not a pickle).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit, logit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

__all__ = ["Calibration", "fit_calibration"]

# an isotonic 0 or 1 would claim certainty; keep its probabilities strictly inside
_EPSILON = 1e-4
# raw scores are probabilities from LightGBM; their log-odds stay finite inside this
_RAW_CLIP = 1e-12


def _log_odds(raw: Any) -> np.ndarray:
    return logit(np.clip(np.asarray(raw, dtype=float), _RAW_CLIP, 1.0 - _RAW_CLIP))


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


class _PrecomputedLogOdds(_PrecomputedScores):
    """The same, with the scores' log-odds as ``decision_function``, which sklearn's
    calibration prefers: the sigmoid is fitted on log-odds, the isotonic map on scores."""

    def decision_function(self, X: Any) -> np.ndarray:
        return _log_odds(np.asarray(X, dtype=float)[:, 0])


@dataclass(frozen=True)
class Calibration:
    """A fitted map from raw scores to calibrated churn probabilities.

    ``method`` is ``sigmoid`` (``slope``, ``intercept``) or ``isotonic``
    (``x_thresholds``, ``y_thresholds``).
    """

    method: str = "isotonic"
    x_thresholds: tuple[float, ...] = ()
    y_thresholds: tuple[float, ...] = ()
    slope: float = 0.0
    intercept: float = 0.0

    def apply(self, raw: np.ndarray) -> np.ndarray:
        if self.method == "sigmoid":
            return expit(-(self.slope * _log_odds(raw) + self.intercept))
        calibrated = np.interp(np.asarray(raw, dtype=float), self.x_thresholds, self.y_thresholds)
        return np.clip(calibrated, _EPSILON, 1.0 - _EPSILON)

    def to_dict(self) -> dict[str, Any]:
        if self.method == "sigmoid":
            return {"method": "sigmoid", "slope": self.slope, "intercept": self.intercept}
        return {
            "method": "isotonic",
            "x_thresholds": list(self.x_thresholds),
            "y_thresholds": list(self.y_thresholds),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        # bundles written before the sigmoid method have only the isotonic thresholds
        if data.get("method", "isotonic") == "sigmoid":
            return cls("sigmoid", slope=float(data["slope"]), intercept=float(data["intercept"]))
        return cls("isotonic", tuple(data["x_thresholds"]), tuple(data["y_thresholds"]))


def fit_calibration(
    raw_scores: np.ndarray, churned: np.ndarray, method: str = "sigmoid"
) -> Calibration:
    """Fit the map on out-of-time rows (the validation snapshots of a fit)."""
    scores = _PrecomputedLogOdds() if method == "sigmoid" else _PrecomputedScores()
    frozen = FrozenEstimator(scores.fit(None))
    calibrated = CalibratedClassifierCV(frozen, method=method)
    calibrated.fit(np.asarray(raw_scores, dtype=float)[:, None], np.asarray(churned, dtype=int))
    fitted = calibrated.calibrated_classifiers_[0].calibrators[0]
    if method == "sigmoid":
        return Calibration("sigmoid", slope=float(fitted.a_), intercept=float(fitted.b_))
    return Calibration(
        "isotonic",
        tuple(float(x) for x in fitted.X_thresholds_),
        tuple(float(y) for y in fitted.y_thresholds_),
    )
