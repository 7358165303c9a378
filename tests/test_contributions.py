"""Contributions computed once per tree and pattern are LightGBM's own pred_contrib."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from churnkit.scoring import contributions
from churnkit.scoring.contributions import tree_contributions


def _data(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(30, rows)
    gaps[rng.random(rows) < 0.2] = np.nan  # NaN: LightGBM's missing type NaN
    zeros = np.round(rng.normal(0, 2, rows)).clip(-3, 3)  # many exact zeros
    tier = pd.Categorical(
        rng.choice(["bronze", "silver", "gold", None], rows, p=[0.5, 0.3, 0.15, 0.05]),
        categories=["bronze", "gold", "silver"],
    )
    return pd.DataFrame(
        {
            "recency": rng.integers(0, 400, rows).astype("float32"),
            "gap": gaps.astype("float32"),
            "change": zeros.astype("float32"),
            "spend": rng.lognormal(4, 1, rows),
            "tier": tier,
        }
    )


def _booster(frame: pd.DataFrame, **params) -> lgb.Booster:
    rng = np.random.default_rng(7)
    score = (
        frame["recency"] / 100
        - np.nan_to_num(frame["gap"].to_numpy(), nan=60) / 40
        + frame["change"]
        + (frame["tier"] == "gold") * 1.5
    )
    label = (score + rng.normal(0, 1, len(frame)) > 1).astype(int)
    train = lgb.Dataset(frame, label)
    settings = {"objective": "binary", "num_leaves": 15, "min_child_samples": 20, "verbose": -1}
    return lgb.train({**settings, **params}, train, num_boost_round=60)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"zero_as_missing": True},
        {"max_cat_to_onehot": 1, "min_data_per_group": 10, "cat_smooth": 1},
    ],
)
def test_the_same_contributions_as_lightgbm(params):
    booster = _booster(_data(4_000, seed=1), **params)
    scored = _data(3_000, seed=2)
    scored.loc[:40, "tier"] = np.nan
    scored["tier"] = scored["tier"].cat.add_categories("platinum")  # unseen in training
    scored.loc[3_000 - 40 :, "tier"] = "platinum"
    scored.loc[41:80, "recency"] = np.nan  # missing where training had none: read as 0
    expected = booster.predict(scored, pred_contrib=True)
    got = tree_contributions(booster, scored, grouped_from=0)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    # the reasons' order is the same: the largest contribution per row
    assert (got[:, :-1].argmax(axis=1) == expected[:, :-1].argmax(axis=1)).all()


def test_a_misread_split_falls_back_to_lightgbm_for_every_row(monkeypatch):
    booster = _booster(_data(4_000, seed=1))
    scored = _data(2_500, seed=3)
    real_goes_left = contributions._goes_left
    monkeypatch.setattr(contributions, "_goes_left", lambda t, c: ~real_goes_left(t, c))
    calls = []
    real_predict = booster.predict

    def predict(data, **kwargs):
        calls.append((len(data), kwargs))
        return real_predict(data, **kwargs)

    monkeypatch.setattr(booster, "predict", predict)
    got = tree_contributions(booster, scored, grouped_from=0)
    np.testing.assert_array_equal(got, real_predict(scored, pred_contrib=True))
    contrib_calls = [(n, kw) for n, kw in calls if kw.get("pred_contrib")]
    assert contrib_calls == [(len(scored), {"pred_contrib": True})]


def test_few_rows_go_to_lightgbm_whole(monkeypatch):
    booster = _booster(_data(4_000, seed=1))
    scored = _data(500, seed=4)
    monkeypatch.setattr(contributions, "_patterns", None)  # never reached
    got = tree_contributions(booster, scored)
    np.testing.assert_array_equal(got, booster.predict(scored, pred_contrib=True))


def test_patterns_are_far_fewer_than_rows():
    booster = _booster(_data(4_000, seed=1))
    columns = contributions._Columns(contributions._as_lightgbm_reads(booster, _data(3_000, 5)))
    distinct = [len(contributions._patterns(t, columns)[0]) for t in contributions._trees(booster)]
    assert max(distinct) <= 2**14 and np.mean(distinct) < 3_000 / 5


def test_leaves_checked_a_few_trees_at_a_time_give_the_same_contributions(monkeypatch):
    booster = _booster(_data(4_000, seed=1))
    scored = _data(2_500, seed=6)
    monkeypatch.setattr(contributions, "_LEAVES_AT_ONCE", 2_500 * 7)  # 7 trees a batch
    calls = []
    real_predict = booster.predict

    def predict(data, **kwargs):
        calls.append(kwargs)
        return real_predict(data, **kwargs)

    monkeypatch.setattr(booster, "predict", predict)
    got = tree_contributions(booster, scored, grouped_from=0)
    np.testing.assert_allclose(got, real_predict(scored, pred_contrib=True), rtol=0, atol=1e-12)
    trees = booster.num_trees()
    assert sum(1 for kw in calls if kw.get("pred_leaf")) == -(-trees // 7)
    assert sum(1 for kw in calls if kw.get("pred_contrib")) == trees  # one a tree, no fallback
