"""BG/NBD: parameters recovered from simulated buyers, closed forms by hand, the baseline."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from churnkit.training.baselines import BGNBDBaseline, ScoreBaseline, baseline_from_dict
from churnkit.training.bgnbd import (
    BGNBD,
    _distinct_histories,
    bgnbd_no_purchase_probability,
    fit_bgnbd,
)


def _simulate(n: int, r: float, alpha: float, a: float, b: float, T: float, seed: int):
    """Repeat purchases of BG/NBD buyers observed for ``T`` weeks after their first."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(r, 1 / alpha, n)
    drop = rng.beta(a, b, n)
    x, t_x = np.zeros(n), np.zeros(n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1 / rate[i])
            if t > T:
                break
            x[i], t_x[i] = x[i] + 1, t
            if rng.random() < drop[i]:
                break
    return x, t_x, np.full(n, T)


def test_fitting_recovers_the_parameters_buyers_were_simulated_with():
    # the CDNOW estimates of Fader, Hardie and Lee (2005)
    x, t_x, T = _simulate(8000, r=0.243, alpha=4.414, a=0.793, b=2.426, T=39.0, seed=3)
    fitted = fit_bgnbd(x, t_x, T)
    assert fitted.r == pytest.approx(0.243, rel=0.15)
    assert fitted.alpha == pytest.approx(4.414, rel=0.2)
    assert fitted.a == pytest.approx(0.793, rel=0.25)
    assert fitted.b == pytest.approx(2.426, rel=0.3)


def test_closed_forms_by_hand():
    model = BGNBD(r=1.0, alpha=2.0, a=1.0, b=3.0)
    # no repeat purchase: certainly alive; quiet for t weeks with rate ~ Gamma(1, 2 + T)
    assert model.p_alive(np.array([0.0]), np.array([0.0]), np.array([8.0]))[0] == 1.0
    quiet = model.p_no_purchase(np.array([0.0]), np.array([0.0]), np.array([8.0]), 10.0)[0]
    assert quiet == pytest.approx(10 / 20)  # ((2 + 8) / (2 + 8 + 10)) ** 1
    # two repeats, the last at week 4 of 8: odds of having dropped out a/(b+x-1)*(10/6)^3
    odds = 1.0 / 4.0 * (10 / 6) ** 3
    alive = model.p_alive(np.array([2.0]), np.array([4.0]), np.array([8.0]))[0]
    assert alive == pytest.approx(1 / (1 + odds))
    no_order = model.p_no_purchase(np.array([2.0]), np.array([4.0]), np.array([8.0]), 10.0)[0]
    assert no_order == pytest.approx(1 - alive + alive * (10 / 20) ** 3)


def test_a_long_silence_after_frequent_buying_means_no_purchase_is_likely():
    x, t_x, T = _simulate(3000, r=2.0, alpha=4.0, a=1.0, b=4.0, T=52.0, seed=1)
    model = fit_bgnbd(x, t_x, T)
    frequent = np.array([20.0, 20.0])
    lapsed, recent = model.p_no_purchase(frequent, np.array([10.0, 51.0]), np.array([52.0] * 2), 13)
    assert lapsed > 0.9 and recent < 0.2


def _features(as_of: str, orders, tenure, recency) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "as_of": dt.date.fromisoformat(as_of),
            "orders_lifetime": orders,
            "tenure_days": tenure,
            "recency_days": recency,
        }
    )


def test_each_snapshot_is_fitted_on_its_own_customers():
    rng = np.random.default_rng(2)
    n = 400
    first = _features("2025-03-01", rng.integers(1, 8, n), rng.integers(60, 300, n), 0)
    first["recency_days"] = (first["tenure_days"] * rng.random(n)).astype(int)
    second = first.assign(as_of=dt.date(2025, 4, 1), orders_lifetime=first["orders_lifetime"] + 3)
    both = pd.concat([first, second], ignore_index=True)
    together = bgnbd_no_purchase_probability(both, 90)
    np.testing.assert_allclose(together[:n], bgnbd_no_purchase_probability(first, 90))
    np.testing.assert_allclose(together[n:], bgnbd_no_purchase_probability(second, 90))
    assert np.all((together > 0) & (together < 1))


def test_the_bgnbd_baseline_maps_to_churn_rates_and_round_trips():
    rng = np.random.default_rng(4)
    n = 600
    frame = _features("2025-03-01", rng.integers(1, 10, n), rng.integers(90, 400, n), 0)
    frame["recency_days"] = (frame["tenure_days"] * rng.random(n) ** 2).astype(int)
    churned = (rng.random(n) < frame["recency_days"] / frame["tenure_days"]).astype(int)
    baseline = BGNBDBaseline(horizon_days=90).fit(frame, churned)
    proba = baseline.predict_proba(frame)[:, 1]
    assert np.all((proba >= 0) & (proba <= 1))
    restored = baseline_from_dict(baseline.to_dict())
    assert isinstance(restored, BGNBDBaseline) and restored.horizon_days == 90
    np.testing.assert_array_equal(restored.predict_proba(frame), baseline.predict_proba(frame))
    plain = ScoreBaseline(("recency_days",)).fit(frame, churned)
    assert isinstance(baseline_from_dict(plain.to_dict()), ScoreBaseline)


def test_the_written_out_gradient_is_the_likelihoods():
    from churnkit.training.bgnbd import _negative_log_likelihood

    x, t_x, T = _simulate(500, r=0.5, alpha=3.0, a=0.8, b=2.0, T=30.0, seed=4)
    assert (x == 0).any() and (x > 0).any()  # both branches of the likelihood
    weights = np.random.default_rng(4).integers(1, 5, len(x)).astype(float)

    def value(log_params):
        return _negative_log_likelihood(log_params, x, t_x, T, weights)[0]

    for point in ([0.5, 3.0, 0.8, 2.0], [2.0, 0.2, 5.0, 0.05], [0.01, 40.0, 0.1, 200.0]):
        log_params = np.log(point)
        _, gradient = _negative_log_likelihood(log_params, x, t_x, T, weights)
        # central differences: an error of order step**2 (a smaller step loses more to
        # rounding where b is large and the log-gamma terms are in the thousands)
        step = 1e-4 * np.eye(4)
        numeric = [(value(log_params + h) - value(log_params - h)) / 2e-4 for h in step]
        np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-8)


def test_customers_with_the_same_history_are_fitted_as_one_weighted_history():
    x, t_x, T = _simulate(300, r=1.0, alpha=4.0, a=1.0, b=3.0, T=26.0, seed=6)
    # every customer twice, shuffled: the same likelihood, so the same parameters
    order = np.random.default_rng(6).permutation(600)
    twice = fit_bgnbd(*(np.concatenate([v, v])[order] for v in (x, t_x, T)))
    assert twice == fit_bgnbd(x, t_x, T)


def test_distinct_histories_are_numpys_unique_columns():
    rng = np.random.default_rng(3)
    x, t_x, T = (rng.integers(0, 6, 5_000).astype(float) / 7 for _ in range(3))
    (dx, dt_x, dT), counts = _distinct_histories(x, t_x, T)
    expected, expected_counts = np.unique(np.stack([x, t_x, T]), axis=1, return_counts=True)
    np.testing.assert_array_equal(np.stack([dx, dt_x, dT]), expected)
    np.testing.assert_array_equal(counts, expected_counts)
