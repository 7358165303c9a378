"""Calibration of churn scores on out-of-time data, so probabilities mean what they say.

sklearn's ``CalibratedClassifierCV(FrozenEstimator(...))`` fits the map from the model's
raw scores to churn rates on the validation snapshots. Three methods:

``sigmoid``
    Platt scaling on the raw score's log-odds, ``p = 1 / (1 + exp(a * logit(raw) + b))``:
    strictly monotone, so it keeps the model's ranking and its ties are the raw score's
    own; no floors or ceilings.
``beta``
    beta calibration (Kull, Silva Filho and Flach, 2017),
    ``logit(p) = c + a * ln(raw) - b * ln(1 - raw)`` with ``a, b >= 0``: the sigmoid's
    two parameters plus one, so it can bend the low and the high end differently (a
    model over-confident about loyal customers only); monotone, no floors either.
``isotonic``
    a step function; better on large validation sets with odd shapes, but it maps whole
    ranges of scores to one value (ties that cut through tiers and top-k lists), and
    its ends are clipped to ``[1e-4, 1 - 1e-4]``.

``none``
    the booster's own probabilities (LightGBM's log loss often leaves them close).

``auto`` (the default, see :func:`choose_calibration`) tries ``sigmoid``, ``beta`` and
``none`` in every walk-forward fit and keeps the one with the lowest calibration error
on the walk-forward test dates, so calibrating never makes the error there worse;
isotonic is never chosen for the user, because its steps tie customers. Every map is
kept as numbers (JSON, not a pickle).

Beta calibration is a logistic regression on two features of the score; it is fitted
with sklearn's ``LogisticRegression`` here rather than the ``betacal`` package, whose
last release (2021) wraps the same regression.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit, logit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression

from churnkit.training.metrics import expected_calibration_error

__all__ = ["AUTO_CANDIDATES", "Calibration", "choose_calibration", "fit_calibration"]

# what `auto` chooses between: the maps that keep the ranking
AUTO_CANDIDATES = ("sigmoid", "beta", "none")

# an isotonic 0 or 1 would claim certainty; keep its probabilities strictly inside
_EPSILON = 1e-4
# raw scores are probabilities from LightGBM; their log-odds stay finite inside this
_RAW_CLIP = 1e-12


def _log_odds(raw: Any) -> np.ndarray:
    return logit(np.clip(np.asarray(raw, dtype=float), _RAW_CLIP, 1.0 - _RAW_CLIP))


def _beta_features(raw: Any) -> np.ndarray:
    """``[ln(raw), -ln(1 - raw)]``: beta calibration's inputs."""
    s = np.clip(np.asarray(raw, dtype=float), _RAW_CLIP, 1.0 - _RAW_CLIP)
    return np.column_stack([np.log(s), -np.log1p(-s)])


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

    ``method`` is ``sigmoid`` (``slope``, ``intercept``), ``beta`` (``a``, ``b``,
    ``intercept``), ``isotonic`` (``x_thresholds``, ``y_thresholds``) or ``none``.
    """

    method: str = "isotonic"
    x_thresholds: tuple[float, ...] = ()
    y_thresholds: tuple[float, ...] = ()
    slope: float = 0.0
    intercept: float = 0.0
    a: float = 0.0
    b: float = 0.0

    def apply(self, raw: np.ndarray) -> np.ndarray:
        if self.method == "none":
            return np.asarray(raw, dtype=float)
        if self.method == "sigmoid":
            return expit(-(self.slope * _log_odds(raw) + self.intercept))
        if self.method == "beta":
            return expit(_beta_features(raw) @ np.array([self.a, self.b]) + self.intercept)
        calibrated = np.interp(np.asarray(raw, dtype=float), self.x_thresholds, self.y_thresholds)
        return np.clip(calibrated, _EPSILON, 1.0 - _EPSILON)

    def to_dict(self) -> dict[str, Any]:
        if self.method == "none":
            return {"method": "none"}
        if self.method == "sigmoid":
            return {"method": "sigmoid", "slope": self.slope, "intercept": self.intercept}
        if self.method == "beta":
            return {"method": "beta", "a": self.a, "b": self.b, "intercept": self.intercept}
        return {
            "method": "isotonic",
            "x_thresholds": list(self.x_thresholds),
            "y_thresholds": list(self.y_thresholds),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        # bundles written before the sigmoid method have only the isotonic thresholds
        method = data.get("method", "isotonic")
        if method == "none":
            return cls("none")
        if method == "sigmoid":
            return cls("sigmoid", slope=float(data["slope"]), intercept=float(data["intercept"]))
        if method == "beta":
            return cls(
                "beta", a=float(data["a"]), b=float(data["b"]), intercept=float(data["intercept"])
            )
        return cls("isotonic", tuple(data["x_thresholds"]), tuple(data["y_thresholds"]))


def fit_calibration(
    raw_scores: np.ndarray, churned: np.ndarray, method: str = "sigmoid"
) -> Calibration:
    """Fit the map on out-of-time rows (the validation snapshots of a fit)."""
    if method == "none":
        return Calibration("none")
    if method == "beta":
        return _fit_beta(raw_scores, churned)
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


def _fit_beta(raw_scores: np.ndarray, churned: np.ndarray) -> Calibration:
    """Beta calibration; a negative ``a`` or ``b`` would bend the map back on itself, so
    that input is dropped and the other refitted, as the method's authors do."""
    features = _beta_features(raw_scores)
    y = np.asarray(churned, dtype=int)
    kept = [0, 1]
    while True:
        regression = LogisticRegression(C=np.inf, max_iter=1000).fit(features[:, kept], y)
        coefficients = dict(zip(kept, regression.coef_[0], strict=True))
        negative = [i for i, c in coefficients.items() if c < 0]
        if not negative or len(kept) == 1:
            break
        kept.remove(min(negative, key=lambda i: coefficients[i]))
    return Calibration(
        "beta",
        a=max(0.0, float(coefficients.get(0, 0.0))),
        b=max(0.0, float(coefficients.get(1, 0.0))),
        intercept=float(regression.intercept_[0]),
    )


def choose_calibration(churned: np.ndarray, candidates: dict[str, np.ndarray]) -> str:
    """The method whose probabilities have the lowest expected calibration error on
    ``churned`` (ties: the first of ``candidates``); for ``auto``, fed with the
    walk-forward test dates' probabilities under each map."""
    errors = {m: expected_calibration_error(churned, p) for m, p in candidates.items()}
    return min(errors, key=lambda m: round(errors[m], 6))
