"""Out-of-time splits, the CRR baseline, metrics and the model bundle."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from churnkit.config import ModelConfig
from churnkit.errors import DataError, FeatureMismatchError, ModelNotFoundError
from churnkit.features import FeatureSpec, feature_names
from churnkit.features.snapshots import make_as_of_grid
from churnkit.training import CRRBaseline, split_snapshots
from churnkit.training.baselines import ScoreBaseline
from churnkit.training.calibration import Calibration, fit_calibration
from churnkit.training.metrics import expected_calibration_error, lift_at, score_metrics
from churnkit.training.model import ChurnModel, fit_booster


@settings(max_examples=200, deadline=None)
@given(
    n_months=st.integers(min_value=3, max_value=48),
    horizon_days=st.integers(min_value=1, max_value=400),
    n_validation=st.integers(min_value=1, max_value=3),
    n_test=st.integers(min_value=1, max_value=3),
)
def test_no_training_label_window_reaches_past_the_first_validation_as_of(
    n_months, horizon_days, n_validation, n_test
):
    dates = make_as_of_grid(
        dt.date(2022, 1, 1), dt.date(2022, 1, 1) + dt.timedelta(days=31 * n_months), "month"
    )
    try:
        split = split_snapshots(
            dates, horizon_days=horizon_days, n_validation=n_validation, n_test=n_test
        )
    except DataError:
        return  # too short a grid for this horizon: refused, never a leaky split
    first_validation = split.validation[0]
    assert all(d + dt.timedelta(days=horizon_days) <= first_validation for d in split.train)
    assert max(split.train) < min(split.validation) <= max(split.validation) < min(split.test)
    assert split.test == tuple(dates[-n_test:])
    assert len(split.validation) == n_validation


def test_split_drops_training_snapshots_whose_label_window_overlaps_validation():
    dates = make_as_of_grid(dt.date(2024, 1, 1), dt.date(2024, 12, 1), "month")
    split = split_snapshots(dates, horizon_days=90, n_validation=1, n_test=2)
    assert split.test == (dt.date(2024, 11, 1), dt.date(2024, 12, 1))
    assert split.validation == (dt.date(2024, 10, 1),)
    # 07-01 + 90 days = 09-29 <= 10-01 is kept; 08-01 + 90 days = 10-30 > 10-01 is not
    assert split.train == tuple(dt.date(2024, m, 1) for m in range(1, 8))


def test_split_refuses_a_horizon_longer_than_the_history():
    dates = make_as_of_grid(dt.date(2024, 1, 1), dt.date(2024, 4, 1), "month")
    with pytest.raises(DataError, match="no training snapshot has its 365-day label window"):
        split_snapshots(dates, horizon_days=365, n_validation=1, n_test=1)


def test_crr_baseline_is_one_minus_retention_rate_of_the_segment():
    X = pd.DataFrame({"segment": ["new", "new", "new", "new", "old", "old"]})
    y = [1, 0, 0, 0, 1, 1]  # new: 3 of 4 retained -> CRR 0.75; old: 0 of 2 -> CRR 0
    baseline = CRRBaseline().fit(X, y)
    assert baseline.crr_by_segment_ == {"new": 0.75, "old": 0.0}
    assert baseline.active_by_segment_ == {"new": 4, "old": 2}
    assert baseline.global_crr_ == pytest.approx(0.5)
    proba = baseline.predict_proba(pd.DataFrame({"segment": ["old", "new", "unseen"]}))
    np.testing.assert_allclose(proba[:, 1], [1.0, 0.25, 0.5])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_crr_baseline_follows_the_sklearn_contract_and_round_trips():
    baseline = CRRBaseline(segment_column="tier")
    assert clone(baseline).get_params() == {"segment_column": "tier"}
    X = pd.DataFrame({"tier": ["a", "b", "b"]})
    fitted = baseline.fit(X, [0, 1, 0])
    assert fitted is baseline
    restored = CRRBaseline.from_dict(fitted.to_dict())
    np.testing.assert_array_equal(restored.predict_proba(X), fitted.predict_proba(X))
    with pytest.raises(ValueError, match="needs column 'tier'"):
        fitted.predict_proba(pd.DataFrame({"segment": ["a"]}))


def test_lift_capture_and_precision_at_the_top_by_hand():
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 0])  # base rate 0.2
    scores = np.arange(10, 0, -1) / 10  # the first row scores highest
    metrics = score_metrics(y, scores)
    # top 5 % and 10 %: one row, a churner; top 20 %: two rows, one churner
    assert (metrics["lift_5"], metrics["capture_5"], metrics["precision_5"]) == (5.0, 0.5, 1.0)
    assert (metrics["lift_10"], metrics["capture_10"], metrics["precision_10"]) == (5.0, 0.5, 1.0)
    assert (metrics["lift_20"], metrics["capture_20"], metrics["precision_20"]) == (2.5, 0.5, 0.5)
    assert lift_at(y, scores, 0.20) == pytest.approx(2.5)
    assert metrics["roc_auc"] == pytest.approx(0.9375)  # 15 of 16 pairs ranked right


def test_calibration_error_and_brier_by_hand():
    y = np.array([0, 1, 1, 1])
    p = np.array([0.05, 0.05, 0.95, 0.95])
    # bin 0: churn rate 0.5 vs 0.05 on half the rows; bin 9: 1.0 vs 0.95 on the other half
    assert expected_calibration_error(y, p) == pytest.approx(0.5 * 0.45 + 0.5 * 0.05)
    assert score_metrics(y, p)["brier"] == pytest.approx((0.05**2 + 0.95**2 + 2 * 0.05**2) / 4)


def test_isotonic_calibration_makes_probabilities_match_churn_rates():
    rng = np.random.default_rng(1)
    raw = rng.random(20_000)
    churned = (rng.random(20_000) < raw**3).astype(int)  # raw scores overstate churn
    fit, holdout = slice(0, 10_000), slice(10_000, None)
    calibration = fit_calibration(raw[fit], churned[fit])
    before = expected_calibration_error(churned[holdout], raw[holdout])
    after = expected_calibration_error(churned[holdout], calibration.apply(raw[holdout]))
    assert before > 0.15 and after < 0.02
    restored = Calibration.from_dict(calibration.to_dict())
    np.testing.assert_array_equal(restored.apply(raw[:50]), calibration.apply(raw[:50]))
    assert calibration.apply(np.array([-1.0, 2.0])).tolist() == [
        pytest.approx(calibration.y_thresholds[0], abs=1e-4),
        pytest.approx(calibration.y_thresholds[-1], abs=1e-4),
    ]


def test_score_baselines_are_monotone_in_their_signal():
    X = pd.DataFrame({"recency_days": [1, 5, 30, 60, 200, 300], "r_score": [5, 5, 4, 3, 1, 1]})
    y = [0, 0, 0, 1, 1, 1]
    recency = ScoreBaseline(("recency_days",)).fit(X, y).predict_proba(X)[:, 1]
    assert list(recency) == sorted(recency) and recency[0] == 0.0 and recency[-1] == 1.0
    rfm = ScoreBaseline(("r_score",), increasing=False).fit(X, y).predict_proba(X)[:, 1]
    assert list(rfm) == sorted(rfm)
    assert clone(ScoreBaseline(("a", "b"), increasing=False)).get_params() == {
        "columns": ("a", "b"),
        "increasing": False,
    }


@pytest.fixture
def small_model() -> tuple[ChurnModel, pd.DataFrame]:
    rng = np.random.default_rng(0)
    spec = FeatureSpec(windows_days=(30,), activity_days=365)
    names = feature_names(spec)
    X = pd.DataFrame(rng.gamma(2.0, 10.0, (400, len(names))), columns=names)
    y = (X["recency_days"] + rng.normal(0, 5, 400) > 20).astype(int).to_numpy()
    cfg = ModelConfig(max_rounds=30, min_child_samples=5, num_threads=1)
    booster = fit_booster(X[:300], y[:300], X[300:], y[300:], cfg)
    frame = X.assign(segment=np.where(X["recency_days"] > 20, "old", "new"))
    baseline = CRRBaseline().fit(frame, y)
    calibration = fit_calibration(booster.predict(X[300:]), y[300:])
    return ChurnModel(booster, names, spec, baseline, {"model_name": "m"}, calibration), frame


def test_saved_model_loads_and_predicts_the_same(small_model, tmp_path):
    model, frame = small_model
    model.save(tmp_path / "bundle")
    loaded = ChurnModel.load(tmp_path / "bundle")
    np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))
    np.testing.assert_array_equal(loaded.predict_raw(frame), model.predict_raw(frame))
    assert loaded.calibration == model.calibration
    np.testing.assert_array_equal(loaded.baseline_proba(frame), model.baseline_proba(frame))
    assert loaded.feature_spec == model.feature_spec
    assert loaded.metadata["model_name"] == "m"


def test_model_reorders_columns_by_name(small_model):
    model, frame = small_model
    shuffled = frame[list(reversed(frame.columns))]
    np.testing.assert_array_equal(model.predict_proba(shuffled), model.predict_proba(frame))


def test_model_refuses_features_whose_names_differ(small_model):
    model, frame = small_model
    renamed = frame.rename(columns={"orders_30d": "orders_28d"})
    with pytest.raises(
        FeatureMismatchError, match=r"missing \['orders_30d'\], unexpected \['orders_28d'\]"
    ):
        model.predict_proba(renamed)


def test_loading_a_folder_without_a_bundle_names_the_folder(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no churnkit model bundle"):
        ChurnModel.load(tmp_path)


def test_bootstrap_difference_of_identical_scorers_is_zero_and_deterministic():
    from churnkit.training.metrics import bootstrap_pr_auc_difference

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    scores = rng.uniform(size=400)
    groups = np.repeat(np.arange(200), 2)
    same = bootstrap_pr_auc_difference(y, scores, scores, groups, samples=200)
    assert same["difference"] == same["ci_low"] == same["ci_high"] == 0.0
    again = bootstrap_pr_auc_difference(y, scores, scores[::-1], groups, samples=200, seed=3)
    assert again == bootstrap_pr_auc_difference(
        y, scores, scores[::-1], groups, samples=200, seed=3
    )


def test_bootstrap_interval_of_a_better_scorer_is_above_zero_and_covers_the_difference():
    from sklearn.metrics import average_precision_score

    from churnkit.training.metrics import bootstrap_pr_auc_difference

    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 2000)
    good = y + rng.normal(0, 0.6, 2000)
    weak = y + rng.normal(0, 1.5, 2000)
    result = bootstrap_pr_auc_difference(y, good, weak, np.arange(2000), samples=300)
    expected = average_precision_score(y, good) - average_precision_score(y, weak)
    assert result["difference"] == pytest.approx(expected)
    assert 0 < result["ci_low"] < expected < result["ci_high"]


def _m(pr_auc, lift, precision):
    return {"pr_auc": pr_auc, "lift_10": lift, "precision_10": precision}


@pytest.mark.parametrize(
    ("model", "baseline", "expected"),
    [
        (_m(0.95, 1.80, 0.99), _m(0.90, 1.70, 0.95), True),
        (_m(0.97, 1.70, 1.00), _m(0.91, 1.70, 1.00), True),  # both at the lift cap
        (_m(0.97, 1.60, 0.90), _m(0.91, 1.60, 0.90), False),  # a tie below the cap
        (_m(0.90, 1.80, 1.00), _m(0.91, 1.70, 0.95), False),  # lower PR-AUC
        (_m(0.91, 1.70, 1.00), _m(0.91, 1.70, 1.00), False),  # equal PR-AUC
    ],
)
def test_the_gate_needs_higher_pr_auc_and_lift_unless_lift_is_capped(model, baseline, expected):
    from churnkit.training import beats

    assert beats(model, baseline) is expected
