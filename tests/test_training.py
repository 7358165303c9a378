"""Out-of-time splits, the CRR baseline, metrics and the model bundle."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from churnkit.config import ModelConfig, SnapshotConfig
from churnkit.errors import DataError, FeatureMismatchError, ModelNotFoundError
from churnkit.features import FeatureSpec, feature_names
from churnkit.features.snapshots import make_as_of_grid, observed_as_of_dates
from churnkit.training import CRRBaseline, FitPlan, plan_walk_forward
from churnkit.training.baselines import ScoreBaseline
from churnkit.training.calibration import Calibration, fit_calibration
from churnkit.training.metrics import expected_calibration_error, lift_at, score_metrics
from churnkit.training.model import ChurnModel, fit_booster, refit_booster


@settings(max_examples=200, deadline=None)
@given(
    n_months=st.integers(min_value=2, max_value=48),
    horizon_days=st.integers(min_value=1, max_value=400),
    n_validation=st.integers(min_value=1, max_value=3),
    n_backtests=st.integers(min_value=1, max_value=4),
)
def test_no_walk_forward_fit_sees_a_label_window_that_ends_after_its_test_date(
    n_months, horizon_days, n_validation, n_backtests
):
    dates = make_as_of_grid(
        dt.date(2022, 1, 1), dt.date(2022, 1, 1) + dt.timedelta(days=31 * n_months), "month"
    )
    try:
        plan = plan_walk_forward(
            dates, horizon_days=horizon_days, n_validation=n_validation, n_backtests=n_backtests
        )
    except DataError:
        return  # too short a grid for this horizon: refused, never a leaky plan
    horizon = dt.timedelta(days=horizon_days)
    for test_date, fit in plan.backtests:
        assert all(d + horizon <= test_date for d in fit.dates)
        assert len(fit.validation) == n_validation and fit.fit
        assert max(fit.fit) < min(fit.validation)
    assert set(plan.test) <= set(dates[-n_backtests:])
    assert plan.deployment.dates == tuple(dates)


def test_walk_forward_by_hand_on_a_one_year_history():
    # a year of orders from 2025-01-01: snapshots 04-01 .. 10-01 are labelled at 90 days
    dates = make_as_of_grid(dt.date(2025, 4, 1), dt.date(2025, 10, 3), "month")
    plan = plan_walk_forward(dates, horizon_days=90, n_validation=1, n_backtests=3)
    assert plan.test == (dt.date(2025, 8, 1), dt.date(2025, 9, 1), dt.date(2025, 10, 1))
    backtests = dict(plan.backtests)
    # 07-01 + 90 days = 09-29, by 10-01; 08-01 + 90 days = 10-30 is not
    assert backtests[dt.date(2025, 10, 1)] == FitPlan(
        fit=(dt.date(2025, 4, 1), dt.date(2025, 5, 1), dt.date(2025, 6, 1)),
        validation=(dt.date(2025, 7, 1),),
    )
    assert backtests[dt.date(2025, 8, 1)] == FitPlan(
        fit=(dt.date(2025, 4, 1),), validation=(dt.date(2025, 5, 1),)
    )
    # the model that is deployed fits on every labelled snapshot, stopping on the latest
    assert plan.deployment.validation == (dt.date(2025, 10, 1),)
    assert len(plan.deployment.fit) == 6


def test_walk_forward_refuses_a_history_too_short_naming_what_helps():
    dates = make_as_of_grid(dt.date(2024, 1, 1), dt.date(2024, 4, 1), "month")
    with pytest.raises(DataError, match=r"4 labelled snapshot\(s\) \(2024-01-01 .. 2024-04-01\)"):
        plan_walk_forward(dates, horizon_days=365, n_validation=1, n_backtests=1)
    with pytest.raises(DataError, match="min_history_days.*first_as_of.*frequency: week"):
        plan_walk_forward(dates, horizon_days=365, n_validation=1, n_backtests=1)


def test_snapshots_start_one_horizon_after_the_first_order_by_default():
    cfg = SnapshotConfig(horizon_days=90)
    dates = observed_as_of_dates(dt.date(2025, 1, 1), dt.date(2026, 1, 1), cfg)
    assert dates[0] == dt.date(2025, 4, 1) and dates[-1] == dt.date(2025, 10, 1)
    longer = observed_as_of_dates(
        dt.date(2025, 1, 1), dt.date(2026, 1, 1), SnapshotConfig(min_history_days=200)
    )
    assert longer[0] == dt.date(2025, 8, 1)


def test_no_snapshot_fitting_the_data_is_explained_in_date_order():
    cfg = SnapshotConfig(horizon_days=90, min_history_days=365)
    with pytest.raises(DataError) as err:
        observed_as_of_dates(dt.date(2017, 1, 1), dt.date(2018, 1, 1), cfg)
    message = str(err.value)
    assert "orders run from 2017-01-01 to 2017-12-31" in message
    assert (
        "first snapshot would be 2018-01-01 (the first order, 2017-01-01, plus 365 days" in message
    )
    assert "last whose 90-day label window the data observes is 2017-10-03" in message
    assert "`snapshots.min_history_days`" in message and "`snapshots.first_as_of`" in message


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


@pytest.mark.parametrize("method", ["sigmoid", "beta", "isotonic"])
def test_calibration_makes_probabilities_match_churn_rates(method):
    rng = np.random.default_rng(1)
    raw = rng.random(20_000)
    churned = (rng.random(20_000) < raw**3).astype(int)  # raw scores overstate churn
    fit, holdout = slice(0, 10_000), slice(10_000, None)
    calibration = fit_calibration(raw[fit], churned[fit], method)
    before = expected_calibration_error(churned[holdout], raw[holdout])
    after = expected_calibration_error(churned[holdout], calibration.apply(raw[holdout]))
    assert before > 0.15 and after < 0.03
    restored = Calibration.from_dict(calibration.to_dict())
    np.testing.assert_array_equal(restored.apply(raw[:50]), calibration.apply(raw[:50]))


@pytest.mark.parametrize("method", ["sigmoid", "beta"])
def test_smooth_calibrations_keep_the_ranking_without_ties_or_floors(method):
    rng = np.random.default_rng(4)
    raw = rng.beta(0.5, 3.0, 5000)  # many scores near 0, as for loyal customers
    churned = (rng.random(5000) < raw).astype(int)
    smooth = fit_calibration(raw, churned, method).apply(raw)
    order = np.argsort(raw)
    assert np.all(np.diff(smooth[order]) >= 0)  # monotone: the ranking is the raw one
    assert len(np.unique(smooth)) == len(np.unique(raw))  # no ties the raw score lacks
    assert smooth.min() < 1e-4 or len(np.unique(smooth[smooth < 0.01])) > 1  # no floor
    isotonic = fit_calibration(raw, churned, "isotonic").apply(raw)
    largest_tie = pd.Series(isotonic).value_counts().iloc[0] / len(raw)
    assert largest_tie > 0.01  # what the smooth maps avoid: a step holding many customers
    assert pd.Series(smooth).value_counts().iloc[0] == 1


def test_beta_calibration_bends_the_ends_differently_and_never_turns_back():
    rng = np.random.default_rng(8)
    raw = rng.random(20_000)
    # over-confident about loyal customers only: low scores churn more than they say
    churned = (rng.random(20_000) < np.where(raw < 0.5, 0.25 + raw / 2, raw)).astype(int)
    fit, holdout = slice(0, 10_000), slice(10_000, None)
    errors = {
        method: expected_calibration_error(
            churned[holdout], fit_calibration(raw[fit], churned[fit], method).apply(raw[holdout])
        )
        for method in ("sigmoid", "beta")
    }
    assert errors["beta"] < errors["sigmoid"]
    # a score that goes the wrong way at one end: the offending input is dropped
    backwards = (rng.random(20_000) < np.where(raw > 0.9, 0.1, raw)).astype(int)
    beta = fit_calibration(raw, backwards, "beta")
    assert beta.a >= 0 and beta.b >= 0
    assert np.all(np.diff(beta.apply(np.sort(raw))) >= 0)


def test_auto_calibration_chooses_the_lower_calibration_error():
    from churnkit.training.calibration import choose_calibration

    y = np.array([0, 0, 1, 1])
    good, poor = np.array([0.1, 0.2, 0.8, 0.9]), np.array([0.4, 0.45, 0.55, 0.6])
    assert choose_calibration(y, {"sigmoid": poor, "beta": good}) == "beta"
    assert choose_calibration(y, {"sigmoid": good, "beta": good}) == "sigmoid"  # ties: first


def test_no_calibration_is_the_raw_score_and_round_trips():
    none = fit_calibration(np.array([0.2, 0.7]), np.array([0, 1]), "none")
    raw = np.array([0.01, 0.5, 0.99])
    np.testing.assert_array_equal(none.apply(raw), raw)
    assert Calibration.from_dict(none.to_dict()) == none


def test_bundles_with_isotonic_thresholds_only_still_load():
    old = Calibration.from_dict({"x_thresholds": [0.0, 1.0], "y_thresholds": [0.1, 0.9]})
    assert old.method == "isotonic"
    np.testing.assert_allclose(old.apply(np.array([0.5])), [0.5])


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


def test_a_model_trained_on_float32_features_casts_what_it_scores_alike(small_model):
    model, frame = small_model
    model.metadata["feature_dtype"] = "float32"
    narrow = frame.astype(dict.fromkeys(model.feature_names, "float32"))
    assert set(model.select_features(frame).dtypes) == {np.dtype("float32")}
    np.testing.assert_array_equal(model.predict_raw(frame), model.predict_raw(narrow))
    model.metadata.pop("feature_dtype")  # bundles trained before keep float64
    assert set(model.select_features(narrow).dtypes) == {np.dtype("float64")}


def test_categoricals_reach_lightgbm_as_float32_codes_and_grow_the_same_trees():
    """LightGBM's own pandas path makes the copy of a frame whose categorical has missing
    values float64; churnkit gives it float32 codes and gets the same booster."""
    import lightgbm as lgb
    from lightgbm.basic import _data_from_pandas

    from churnkit.training.model import _with_codes, lightgbm_params

    rng = np.random.default_rng(3)
    n = 600
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.gamma(2.0, 3.0, n)}).astype("float32")
    X["tier"] = pd.Categorical(rng.choice(["gold", "silver", "bronze", None], n))
    y = ((X["a"] > 0) ^ (X["tier"] == "gold").to_numpy()).astype(int).to_numpy()
    assert _data_from_pandas(X, "auto", "auto", None)[0].dtype == np.float64
    assert _data_from_pandas(_with_codes(X)[0], "auto", "auto", None)[0].dtype == np.float32

    cfg = ModelConfig(max_rounds=25, min_child_samples=5, num_threads=1)
    ours = refit_booster(X, y, 25, cfg)
    theirs = lgb.train(lightgbm_params(cfg), lgb.Dataset(X, label=y), num_boost_round=25)
    assert ours.pandas_categorical == theirs.pandas_categorical == [["bronze", "gold", "silver"]]
    assert ours.dump_model()["tree_info"] == theirs.dump_model()["tree_info"]
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


def test_fits_read_their_snapshots_as_slices_of_the_training_table():
    """Every fit uses the earliest snapshots: ordered by as_of, those rows are a slice of
    the float32 table, not a copy of it."""
    from churnkit.training import _rows, _training_table

    spec = FeatureSpec(windows_days=(30,), activity_days=365)
    names = feature_names(spec)
    dates = [dt.date(2025, m, 1) for m in (3, 1, 2, 1, 3, 2)]
    frame = pd.DataFrame(np.arange(6.0 * len(names)).reshape(6, -1), columns=names)
    frame.insert(0, "as_of", dates)
    table = _training_table(frame, spec)
    assert list(table["as_of"]) == sorted(dates)
    assert set(table[names].dtypes) == {np.dtype("float32")}
    first_two = _rows(table, (dt.date(2025, 1, 1), dt.date(2025, 2, 1)))
    assert len(first_two) == 4
    assert np.shares_memory(first_two["recency_days"].to_numpy(), table["recency_days"].to_numpy())
    assert list(_rows(table, (dt.date(2025, 1, 1), dt.date(2025, 3, 1))).index) == [0, 1, 4, 5]


def test_loading_a_folder_without_a_bundle_names_the_folder(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no churnkit model bundle"):
        ChurnModel.load(tmp_path)


def test_bootstrap_difference_of_identical_scorers_is_zero_and_deterministic():
    from churnkit.training.metrics import bootstrap_differences

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    scores = rng.uniform(size=400)
    groups = np.repeat(np.arange(200), 2)
    same = bootstrap_differences(y, scores, scores, groups, samples=200)["pr_auc"]
    assert same["difference"] == same["ci_low"] == same["ci_high"] == 0.0
    again = bootstrap_differences(y, scores, scores[::-1], groups, samples=200, seed=3)["pr_auc"]
    assert (
        again
        == bootstrap_differences(y, scores, scores[::-1], groups, samples=200, seed=3)["pr_auc"]
    )


def test_bootstrap_interval_of_a_better_scorer_is_above_zero_and_covers_the_difference():
    from sklearn.metrics import average_precision_score

    from churnkit.training.metrics import bootstrap_differences

    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 2000)
    good = y + rng.normal(0, 0.6, 2000)
    weak = y + rng.normal(0, 1.5, 2000)
    result = bootstrap_differences(y, good, weak, np.arange(2000), samples=300)["pr_auc"]
    expected = average_precision_score(y, good) - average_precision_score(y, weak)
    assert result["difference"] == pytest.approx(expected)
    assert 0 < result["ci_low"] < expected < result["ci_high"]


def _weighted_ranking_metrics(y_sorted, weights, thresholds):
    """PR-AUC and ROC-AUC per row of ``weights`` from cumulative sums of row weights
    (rows in descending score order): the reference the bootstrap's fast path meets."""
    from churnkit.training.metrics import _ranking_metrics

    tps = np.cumsum(weights * y_sorted, axis=1)[:, thresholds]
    fps = np.cumsum(weights * (1 - y_sorted), axis=1)[:, thresholds]
    return _ranking_metrics(tps, fps)


def test_vectorised_bootstrap_metrics_equal_sklearn_with_weights_and_ties():
    from sklearn.metrics import average_precision_score, roc_auc_score

    from churnkit.training.metrics import _curve_points

    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 500).astype(float)
    scores = np.round(y * 0.5 + rng.normal(0, 1, 500), 1)  # many ties
    weights = rng.integers(0, 3, (4, 500)).astype(float)
    order, thresholds = _curve_points(y, scores)
    pr, roc = _weighted_ranking_metrics(y[order], weights[:, order], thresholds)
    for i, w in enumerate(weights):
        assert pr[i] == pytest.approx(average_precision_score(y, scores, sample_weight=w))
        assert roc[i] == pytest.approx(roc_auc_score(y, scores, sample_weight=w))


def test_the_bootstrap_on_group_draws_gives_exactly_the_row_weighted_curves():
    """The resamples are computed from each group's draws (integer running sums); the
    numbers are bit for bit those of the row-weighted curves, ties and repeats included."""
    from churnkit.training.metrics import _Curve, _curve_points

    rng = np.random.default_rng(11)
    groups = rng.integers(0, 700, 2000)  # customers on several dates
    y = rng.integers(0, 2, 2000).astype(float)
    scores = np.round(y * 0.4 + rng.normal(0, 1, 2000), 1)  # many ties
    counts = rng.multinomial(700, np.full(700, 1 / 700), size=5).astype(np.int32)
    order, thresholds = _curve_points(y, scores)
    weights = counts[:, groups].astype(float)
    expected = _weighted_ranking_metrics(y[order], weights[:, order], thresholds)
    got = _Curve.of(y, scores, groups).metrics(counts)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


def test_one_set_of_resamples_gives_every_interval_of_the_one_by_one_calls():
    from churnkit.training.metrics import (
        bootstrap_differences,
        tonight_intervals,
        walk_forward_intervals,
    )

    rng = np.random.default_rng(2)
    ids = np.tile(np.arange(400), 3)
    dates = np.repeat(np.array(["2025-01-01", "2025-02-01", "2025-03-01"]), 400)
    y = rng.integers(0, 2, 1200)
    scores = {
        "model": y * 0.6 + rng.random(1200),
        "crr_baseline": np.round(y * 0.2 + rng.random(1200), 1),
        "bgnbd_baseline": rng.random(1200),
    }
    differences, tonight = walk_forward_intervals(
        y, scores, ids, dates, reference="model", samples=150, seed=4
    )
    assert differences == {
        name: bootstrap_differences(y, scores["model"], s, ids, samples=150, seed=4)
        for name, s in scores.items()
        if name != "model"
    }
    assert tonight == {
        name: tonight_intervals(y, s, ids, dates, samples=150, seed=4) for name, s in scores.items()
    }


def _result(model_pr, baselines):
    """A TrainingResult with pooled PR-AUCs and PR-AUC differences' intervals only."""
    from churnkit.training import TrainingResult

    metrics = {"model": {"pr_auc": model_pr}} | {
        n: {"pr_auc": v} for n, (v, _) in baselines.items()
    }
    comparisons = {
        name: {"pr_auc": {"difference": model_pr - v, "ci_low": low}}
        for name, (v, low) in baselines.items()
    }
    empty = pd.DataFrame()
    return TrainingResult(None, metrics, empty, empty, empty, comparisons)


@pytest.mark.parametrize(
    ("baselines", "best", "passes"),
    [
        ({"crr_baseline": (0.90, 0.02), "recency_baseline": (0.93, 0.004)}, "recency", True),
        ({"crr_baseline": (0.90, 0.02), "recency_baseline": (0.93, -0.001)}, "recency", False),
        ({"crr_baseline": (0.95, -0.01), "recency_baseline": (0.93, 0.01)}, "crr", False),
        ({"crr_baseline": (0.93, 0.01), "recency_baseline": (0.93, -0.01)}, "crr", True),
    ],
)
def test_the_gate_needs_an_interval_above_zero_against_the_best_baseline(baselines, best, passes):
    result = _result(0.95, baselines)
    assert result.best_baseline == f"{best}_baseline"  # ties: the first in BASELINES
    assert result.beats_baseline is passes


def test_tonights_interval_widens_with_the_spread_between_test_dates():
    from churnkit.training.metrics import bootstrap_intervals, tonight_intervals

    rng = np.random.default_rng(6)
    n = 3000
    y = rng.integers(0, 2, n)
    dates = np.repeat(np.array(["2025-08-01", "2025-09-01", "2025-10-01"]), n // 3)
    steady = y + rng.normal(0, 1.0, n)
    noise = np.repeat([0.5, 1.0, 2.0], n // 3)  # the ranking gets worse from date to date
    drifting = y + rng.normal(0, 1.0, n) * noise
    ids = np.arange(n)
    customers = bootstrap_intervals(y, steady, ids, samples=200)["roc_auc"]
    same = tonight_intervals(y, steady, ids, dates, samples=200)["roc_auc"]
    varied = tonight_intervals(y, drifting, ids, dates, samples=200)["roc_auc"]
    assert same["low"] < same["estimate"] < same["high"]
    assert same["high"] - same["low"] >= customers[1] - customers[0]
    assert same["high"] - same["low"] < 0.1
    assert varied["high"] - varied["low"] > 3 * (same["high"] - same["low"])
    # a night is one date: the estimate is the mean of the per-date figures, not pooled
    from sklearn.metrics import roc_auc_score

    per_date = [roc_auc_score(y[dates == d], drifting[dates == d]) for d in np.unique(dates)]
    assert varied["estimate"] == pytest.approx(np.mean(per_date))
    assert varied["estimate"] != pytest.approx(roc_auc_score(y, drifting), abs=1e-3)
