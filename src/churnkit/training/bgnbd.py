"""The BG/NBD repeat-buying model (Fader, Hardie and Lee 2005), fitted per snapshot.

Each customer buys at a rate ``lambda ~ Gamma(r, alpha)`` while alive and, after every
purchase, drops out with probability ``p ~ Beta(a, b)``. From a customer's repeat
purchases ``x``, the time of the last one ``t_x`` and the time observed ``T`` (all measured
from the first purchase), the model gives the probability that the customer is still
alive and the probability of no purchase in the next ``t``:

    P(alive) = 1 / (1 + [x > 0] * a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x))
    P(no purchase in t) = 1 - P(alive) + P(alive) * ((alpha + T) / (alpha + T + t)) ** (r + x)

(alive customers keep their posterior rate ``Gamma(r + x, alpha + T)`` and cannot drop out
without buying). Parameters are fitted by maximum likelihood on one snapshot's customers,
with only what they did before ``as_of``: the RFM features give ``x = orders_lifetime - 1``,
``T = tenure_days`` and ``t_x = tenure_days - recency_days``. Times are in weeks.

Hand-written on scipy: the maintained implementations need PyMC (pymc-marketing, btyd) or
are archived (lifetimes); a test recovers known parameters from data simulated from the
model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import gammaln

__all__ = ["BGNBD", "bgnbd_inputs", "bgnbd_no_purchase_probability", "fit_bgnbd"]

WEEK_DAYS = 7.0  # the model's time unit: weeks
_DAYS = WEEK_DAYS
_PENALTY = 1e-4  # a light ridge on the log-parameters keeps degenerate snapshots finite


@dataclass(frozen=True)
class BGNBD:
    """Fitted BG/NBD parameters ``r``, ``alpha`` (weeks), ``a`` and ``b``."""

    r: float
    alpha: float
    a: float
    b: float

    def p_alive(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        log_ratio = (self.r + x) * (np.log(self.alpha + T) - np.log(self.alpha + t_x))
        odds = np.where(
            x > 0,
            np.exp(np.log(self.a) - np.log(np.maximum(self.b + x - 1, 1e-12)) + log_ratio),
            0.0,
        )
        return 1.0 / (1.0 + odds)

    def p_no_purchase(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, t: float) -> np.ndarray:
        """Probability of no purchase in the next ``t`` weeks."""
        alive = self.p_alive(x, t_x, T)
        x, T = np.asarray(x, dtype=float), np.asarray(T, dtype=float)
        quiet_if_alive = np.exp(
            (self.r + x) * (np.log(self.alpha + T) - np.log(self.alpha + T + t))
        )
        return 1.0 - alive + alive * quiet_if_alive


def _negative_log_likelihood(
    log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> float:
    r, alpha, a, b = np.exp(log_params)
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    a4 = np.where(
        x > 0,
        np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    ll = a1 + a2 + np.logaddexp(a3, a4)
    return float(-ll.mean() + _PENALTY * np.sum(log_params**2))


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> BGNBD:
    """Maximum-likelihood BG/NBD parameters for customers' ``(x, t_x, T)`` in weeks.

    The customers are sorted first, so the fit does not depend on their order (a Spark
    sample arrives in any order; the likelihood's sum, and so the optimum's last digits,
    would follow it).
    """
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    order = np.lexsort((T, t_x, x))
    x, t_x, T = x[order], t_x[order], T[order]
    start = np.log([1.0, max(float(np.mean(T)), 1.0), 1.0, 1.0])
    fitted = minimize(
        _negative_log_likelihood,
        start,
        args=(x, t_x, T),
        method="L-BFGS-B",
        bounds=[(-9.0, 9.0)] * 4,
    )
    r, alpha, a, b = np.exp(fitted.x)
    return BGNBD(float(r), float(alpha), float(a), float(b))


def bgnbd_no_purchase_probability(features: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """BG/NBD probability of no qualifying order in the horizon, for every row.

    The model is fitted separately on each ``as_of`` of ``features`` (its population, with
    only their history before it), so the result is point-in-time like the features.
    Needs ``as_of``, ``orders_lifetime``, ``tenure_days`` and ``recency_days``.
    """
    result = np.full(len(features), np.nan)
    positions = np.arange(len(features))
    for _, rows in features.groupby("as_of", sort=True).indices.items():
        x, t_x, T = bgnbd_inputs(features.iloc[rows])
        model = fit_bgnbd(x, t_x, T)
        result[positions[rows]] = model.p_no_purchase(x, t_x, T, horizon_days / _DAYS)
    return result


def bgnbd_inputs(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, t_x, T)`` in weeks from the RFM features of one snapshot."""
    x = frame["orders_lifetime"].to_numpy(dtype=float) - 1.0
    T = frame["tenure_days"].to_numpy(dtype=float) / _DAYS
    t_x = np.maximum(T - frame["recency_days"].to_numpy(dtype=float) / _DAYS, 0.0)
    return x, t_x, T
