"""Uplift: whom does a contact change? A T-learner on the churn features, and Qini.

The customers most likely to leave are not necessarily the ones a contact keeps (some
are gone whatever is done, some stay anyway, some are put off). With past nights that
had both contacted and held-out customers, two LightGBM classifiers of retention
(ordered again within the horizon) are fitted on the same features: one on the
contacted customers, one on the held-out ones. A customer's uplift is the difference of
their two predicted retention probabilities (Kuenzel et al. 2019, the T-learner).

Orders of a list are compared by their Qini curve (Radcliffe 2007): going down the list,
the retained contacted customers minus the retained held-out ones scaled to the same
number, ``Q(n) = R_t(n) - R_c(n) * N_t(n) / N_c(n)``. The Qini coefficient is the area
between that curve and the straight line of a random order, per customer; larger is
better, 0 is no better than random.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

__all__ = ["UpliftModel", "fit_t_learner", "qini_coefficient", "qini_curve", "uplift_at"]


@dataclass(frozen=True)
class UpliftModel:
    """Two boosters of retention, contacted and held out, on ``feature_names``."""

    treated: lgb.Booster
    control: lgb.Booster
    feature_names: list[str]

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Each customer's uplift: P(retained | contacted) - P(retained | not)."""
        frame = features[self.feature_names]
        return self.treated.predict(frame) - self.control.predict(frame)


def fit_t_learner(
    features: pd.DataFrame,
    treated: np.ndarray,
    retained: np.ndarray,
    feature_names: list[str],
    *,
    seed: int = 0,
    rounds: int = 200,
    num_threads: int = 2,
) -> UpliftModel:
    """Fit the contacted and the held-out retention models (small, regularised trees:
    the held-out group is usually a tenth of the contacted one)."""
    params = {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_child_samples": 50,
        "feature_fraction": 0.9,
        "lambda_l2": 1.0,
        "seed": seed,
        "deterministic": True,
        "num_threads": num_threads,
        "verbosity": -1,
    }
    treated = np.asarray(treated, dtype=bool)
    retained = np.asarray(retained, dtype="float64")
    frame = features[feature_names]

    def fit(rows: np.ndarray) -> lgb.Booster:
        data = lgb.Dataset(frame[rows], label=retained[rows], free_raw_data=True)
        return lgb.train(params, data, num_boost_round=rounds)

    return UpliftModel(fit(treated), fit(~treated), list(feature_names))


def qini_curve(
    score: np.ndarray, treated: np.ndarray, retained: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The Qini curve of the order by ``score`` (highest first): the share of customers
    taken and ``Q(n)`` per customer, from (0, 0) to (1, the overall uplift)."""
    order = np.lexsort((np.arange(len(score)), -np.asarray(score, dtype="float64")))
    t = np.asarray(treated, dtype=bool)[order]
    y = np.asarray(retained, dtype="float64")[order]
    n_t, n_c = np.cumsum(t), np.cumsum(~t)
    r_t, r_c = np.cumsum(y * t), np.cumsum(y * ~t)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = r_t - np.where(n_c > 0, r_c * n_t / n_c, 0.0)
    n = len(order)
    return np.concatenate([[0.0], np.arange(1, n + 1) / n]), np.concatenate([[0.0], q / n])


def qini_coefficient(score: np.ndarray, treated: np.ndarray, retained: np.ndarray) -> float:
    """The area between the Qini curve of ``score`` and a random order's straight line."""
    x, q = qini_curve(score, treated, retained)
    return float(np.trapezoid(q, x) - q[-1] / 2)


def uplift_at(score: np.ndarray, treated: np.ndarray, retained: np.ndarray, share: float) -> float:
    """Retention of the contacted minus the held-out customers among the top ``share``
    of the order by ``score``: what contacting only them would add per customer."""
    top = np.argsort(-np.asarray(score, dtype="float64"), kind="stable")[
        : max(1, int(round(share * len(score))))
    ]
    t = np.asarray(treated, dtype=bool)[top]
    y = np.asarray(retained, dtype="float64")[top]
    if not t.any() or t.all():
        return float("nan")
    return float(y[t].mean() - y[~t].mean())
