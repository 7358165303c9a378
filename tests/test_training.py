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
from churnkit.training.metrics import lift_at, score_metrics
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


def test_lift_at_ten_percent_by_hand():
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 0])  # base rate 0.2
    scores = np.linspace(1.0, 0.1, 10)  # the top 10 % is the first row, a churner
    assert lift_at(y, scores, 0.10) == pytest.approx(5.0)
    assert lift_at(y, scores, 0.20) == pytest.approx(2.5)  # 1 of 2 churned: 0.5 / 0.2
    metrics = score_metrics(y, scores)
    assert metrics["roc_auc"] == pytest.approx(0.9375)  # 15 of 16 pairs ranked right
    assert set(metrics) == {"roc_auc", "pr_auc", "lift_10"}


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
    return ChurnModel(booster, names, spec, baseline, {"model_name": "m"}), frame


def test_saved_model_loads_and_predicts_the_same(small_model, tmp_path):
    model, frame = small_model
    model.save(tmp_path / "bundle")
    loaded = ChurnModel.load(tmp_path / "bundle")
    np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))
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
