"""Scoring: reasons from pred_contrib, retention plays, risk tiers, drift, dry runs."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from churnkit.config import RiskTierConfig, config_from_dict
from churnkit.engines.duckdb import build_features
from churnkit.errors import DriftError
from churnkit.pipelines import run_scoring
from churnkit.scoring import SCORE_COLUMNS, score_customers
from churnkit.scoring.actions import (
    PLAYS,
    CustomerContext,
    assign_risk_tiers,
    recommend_action,
    tier_cutoffs,
)
from churnkit.scoring.output import list_partitions
from churnkit.scoring.reasons import NOT_REASONS, describe_feature, reason_sentences
from churnkit.training.drift import SCORE, DriftReport, drift_reference, population_stability
from churnkit.training.model import ChurnModel

AS_OF = dt.date(2025, 6, 1)


@pytest.fixture(scope="module")
def model_and_features(trained):
    cfg, outcome, _ = trained
    model = ChurnModel.load(outcome.export_dir)
    orders = pd.read_parquet(cfg.data.orders.path)
    # as scoring sees them: with the BG/NBD feature fitted on the whole population
    return model, model.add_derived_features(build_features(orders, [AS_OF], model.feature_spec))


# -- reasons -------------------------------------------------------------------------


def test_each_reason_is_a_largest_positive_contribution_in_order(model_and_features):
    model, features = model_and_features
    contrib = model.booster.predict(model.select_features(features), pred_contrib=True)[:, :-1]
    sentences, chosen = reason_sentences(model, features)
    assert list(sentences.columns) == ["reason_1", "reason_2", "reason_3"]
    rows = features.to_dict("records")
    checked = 0
    for i in range(len(features)):
        positive = [
            (v, j)
            for j, v in enumerate(contrib[i])
            if v > 0 and model.feature_names[j] not in NOT_REASONS  # never a reason
        ]
        expected = [model.feature_names[j] for _, j in sorted(positive, key=lambda t: -t[0])][:3]
        assert chosen[i] == expected
        values = [contrib[i][model.feature_names.index(n)] for n in chosen[i]]
        assert values == sorted(values, reverse=True)
        for k, name in enumerate(expected):
            assert sentences.iloc[i, k] == describe_feature(name, rows[i])
        for k in range(len(expected), 3):
            assert sentences.iloc[i, k] == ""
        checked += 1
    assert checked == len(features) > 500


def test_the_size_of_orders_is_never_a_reason(model_and_features, monkeypatch):
    model, features = model_and_features
    described = [model.feature_names.index(n) for n in NOT_REASONS if n in model.feature_names]
    assert described
    # even where they push the score up the most (whether this model's trees use them
    # depends on the data), the size of a customer's orders is not a reason
    booster = model.booster
    real = booster.predict

    def larger(X, **kwargs):
        out = np.array(real(X, **kwargs), dtype="float64")
        if kwargs.get("pred_contrib"):
            out[:, described] = np.abs(out[:, :-1]).max(axis=1, keepdims=True) + 1.0
        return out

    monkeypatch.setattr(booster, "predict", larger)
    _, chosen = reason_sentences(model, features)
    assert not {n for names in chosen for n in names} & NOT_REASONS
    assert sum(len(names) for names in chosen) > len(features)  # others take their place


def test_reasons_carry_the_customers_own_values(model_and_features):
    model, features = model_and_features
    sentences, chosen = reason_sentences(model, features)
    hits = 0
    for i, names in enumerate(chosen):
        if names and names[0] == "recency_days":
            days = round(features["recency_days"].iloc[i])
            assert sentences["reason_1"].iloc[i].startswith(f"no order for {days:,} days")
            hits += 1
    assert hits > 10


@pytest.mark.parametrize(
    ("name", "row", "sentence"),
    [
        (
            "recency_days",
            {"recency_days": 94.0, "mean_days_between_orders": 21.2},
            "no order for 94 days; usually orders every 21 days",
        ),
        ("recency_days", {"recency_days": 40.0}, "no order for 40 days"),
        ("orders_90d", {"orders_90d": 0}, "no orders in the last 90 days"),
        ("orders_30d", {"orders_30d": 1}, "1 order in the last 30 days"),
        ("revenue_365d", {"revenue_365d": 1234.5}, "spent 1,234.50 in the last 365 days"),
        ("orders_lifetime", {"orders_lifetime": 1}, "only one order so far"),
        ("overdue_ratio", {"overdue_ratio": 4.48}, "4.5x their usual gap since the last order"),
        (
            "expected_next_order_in_days",
            {"expected_next_order_in_days": -12.0},
            "next order was due 12 days ago",
        ),
        (
            "orders_trend_90d",
            {"orders_trend_90d": -3, "orders_prev_90d": 5},
            "orders 5 -> 2 (last 90 days vs the 90 before)",
        ),
        ("return_rate", {"return_rate": 0.25}, "25% of orders returned"),
        (
            "support_ticket_events_30d",
            {"support_ticket_events_30d": 2},
            "2 support tickets in the last 30 days",
        ),
        ("days_since_last_session", {"days_since_last_session": None}, "no sessions on record"),
        (
            "days_since_last_email_open",
            {"days_since_last_email_open": 8},
            "last email open 8 days ago",
        ),
        ("last_nps", {"last_nps": 3.0}, "last NPS score 3"),
        ("r_score", {"r_score": 1}, "recency score 1 of 5"),
        (
            "std_days_between_orders",
            {"std_days_between_orders": 0.4, "mean_days_between_orders": 46.5},
            "regular orders, every 46 days give or take less than a day",
        ),
        (
            "std_days_between_orders",
            {"std_days_between_orders": 5.2, "mean_days_between_orders": 30.0},
            "regular orders, every 30 days give or take about 5 days",
        ),
        (
            "std_days_between_orders",
            {"std_days_between_orders": 40.0, "mean_days_between_orders": 30.0},
            "irregular orders (gaps vary by about 40 days)",
        ),
        ("some_new_feature", {"some_new_feature": 7}, "some new feature: 7"),
    ],
)
def test_each_feature_reads_as_a_sentence(name, row, sentence):
    assert describe_feature(name, row) == sentence


def test_an_attribute_reads_as_its_value():
    row = {"loyalty_tier": "bronze"}
    assert (
        describe_feature("loyalty_tier", row, frozenset({"loyalty_tier"})) == "loyalty tier: bronze"
    )


# -- actions and tiers ---------------------------------------------------------------


def _context(tier="high", reasons=(), orders=5.0, high_value=False, lapsed=False):
    return CustomerContext(tier, list(reasons), orders, high_value, lapsed)


@pytest.mark.parametrize(
    ("context", "starts_with"),
    [
        (_context(tier="low", reasons=["days_since_last_support_ticket"]), "no action"),
        (_context(reasons=["recency_days", "support_ticket_events_30d", "return_rate"]), "support"),
        (_context(reasons=["last_nps", "return_rate"]), "feedback call"),
        (_context(reasons=["recency_days", "return_rate"], orders=1), "returns follow-up"),
        (_context(reasons=["recency_days"], orders=1, high_value=True), "onboarding"),
        (_context(reasons=["recency_days"], high_value=True), "VIP care"),
        (_context(reasons=["days_since_last_session"]), "personal recommendations"),
        (_context(reasons=["recency_days", "orders_90d"]), "targeted incentive"),
        (_context(reasons=["days_since_last_support_ticket"], lapsed=True), "win-back"),
        (_context(tier="low", lapsed=True), "no action"),
    ],
)
def test_the_first_play_that_applies_is_recommended(context, starts_with):
    assert recommend_action(context).startswith(starts_with)


def test_every_play_is_reachable_and_the_last_one_always_applies():
    actions = [play.action for play in PLAYS]
    assert len(set(actions)) == len(actions)
    assert PLAYS[-1].applies(_context())


def test_risk_tiers_by_probability_and_by_top_n():
    p = np.array([0.95, 0.7, 0.69, 0.4, 0.1])
    by_p = assign_risk_tiers(p, RiskTierConfig(method="probability", high=0.7, medium=0.4))
    assert by_p.tolist() == ["high", "high", "medium", "medium", "low"]
    by_top = assign_risk_tiers(p, RiskTierConfig(method="top", high=1, medium=3))
    assert by_top.tolist() == ["high", "medium", "medium", "low", "low"]


def test_default_tiers_are_shares_of_the_ranking_whatever_the_base_rate():
    for level in (0.03, 0.5, 0.97):  # a 6 % shop's probabilities or an 80 % one's
        p = np.linspace(level + 0.02, level - 0.02, 20)
        tiers = assign_risk_tiers(p, RiskTierConfig())  # top 10 % high, next 20 % medium
        assert tiers.tolist() == ["high"] * 2 + ["medium"] * 4 + ["low"] * 14
    # a slice of the ranking (a Spark partition) gets the tiers of the whole night
    night = tier_cutoffs(RiskTierConfig(), np.arange(1, 21))
    assert night == (2, 6)
    part = assign_risk_tiers(np.zeros(3), RiskTierConfig(), rank=np.array([2, 3, 7]), cutoffs=night)
    assert part.tolist() == ["high", "medium", "low"]


def test_tier_shares_count_the_customers_still_worth_saving():
    # 20 customers; the 8 most at risk left long ago (lapsed): the shares are of the 12
    # others, so the high tier holds 2 saveable customers (ranks 9 and 10), not 2 lapsed
    saveable = np.arange(9, 21)
    cutoffs = tier_cutoffs(RiskTierConfig(), saveable)
    assert cutoffs == (10, 12)  # ceil(10 % of 12) = 2 and ceil(30 % of 12) = 4 saveable
    tiers = assign_risk_tiers(np.zeros(20), RiskTierConfig(), cutoffs=cutoffs)
    assert tiers.tolist() == ["high"] * 10 + ["medium"] * 2 + ["low"] * 8
    top = tier_cutoffs(RiskTierConfig(method="top", high=1, medium=30), saveable)
    assert top == (9, 20)  # counts past the last saveable customer stop there


@pytest.mark.parametrize(
    "tiers",
    [
        {"method": "share", "high": 0.5, "medium": 0.2},
        {"method": "share", "high": 0.1, "medium": 1.5},
        {"method": "probability", "high": 0.3, "medium": 0.5},
        {"method": "probability", "high": 1.5, "medium": 0.5},
        {"method": "top", "high": 100, "medium": 50},
        {"method": "top", "high": 10.5, "medium": 50},
    ],
)
def test_inconsistent_risk_tiers_are_refused_naming_the_key(tmp_path, tiers):
    from churnkit.errors import ConfigError

    raw = {"data": {"orders": {"path": "orders.parquet"}}, "scoring": {"risk_tiers": tiers}}
    with pytest.raises(ConfigError, match="scoring.risk_tiers"):
        config_from_dict(raw, base_dir=tmp_path)
    with pytest.raises(ValidationError):
        RiskTierConfig(**tiers)


def test_scored_output_has_every_column_and_explained_rows(trained):
    _, _, scoring = trained
    ranked = scoring.ranked
    assert list(ranked.columns) == SCORE_COLUMNS
    assert ranked["rank"].tolist() == list(range(1, len(ranked) + 1))
    assert set(ranked["risk_tier"]) <= {"high", "medium", "low"}
    assert (ranked["reason_1"] != "").mean() > 0.95
    assert ranked["recommended_action"].isin([p.action for p in PLAYS]).all()
    low = ranked["risk_tier"] == "low"
    assert (ranked.loc[low, "recommended_action"] == PLAYS[0].action).all()
    np.testing.assert_allclose(
        ranked["expected_value_at_risk"],
        (ranked["churn_probability"] * ranked["customer_value_365d"]).round(2),
    )
    assert scoring.manifest["risk_tiers"]["counts"]["high"] == int(
        (ranked["risk_tier"] == "high").sum()
    )


def test_top_n_tiers_follow_the_ranking(model_and_features):
    model, features = model_and_features
    ranked = score_customers(
        model, features, tiers=RiskTierConfig(method="top", high=10, medium=25)
    )
    # a team's capacity counts the customers it can still save: the first 10 of them
    # are high, the next 15 medium; lapsed customers ranked among them share their tier
    saveable = ranked[ranked["status"] != "lapsed"]
    assert saveable["risk_tier"].value_counts().to_dict() == {
        "high": 10,
        "medium": 15,
        "low": len(saveable) - 25,
    }
    assert (saveable["risk_tier"].head(25) != "low").all()
    assert ranked["risk_tier"].tolist() == sorted(
        ranked["risk_tier"], key=["high", "medium", "low"].index
    )


# -- drift -------------------------------------------------------------------------


def test_psi_is_zero_for_the_same_population_and_large_for_a_shifted_one():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "x": rng.exponential(30, 5000),
            "tier": pd.Categorical(rng.choice(["a", "b", "c"], 5000)),
        }
    )
    scores = rng.uniform(size=5000)
    reference = drift_reference(frame, ["x", "tier"], scores)
    same = population_stability(reference, frame, scores)
    assert same == {
        "x": pytest.approx(0, abs=1e-9),
        "tier": pytest.approx(0, abs=1e-9),
        SCORE: pytest.approx(0, abs=1e-9),
    }
    shifted = frame.assign(x=frame["x"] * 3, tier=pd.Categorical(["d"] * 5000))
    psi = population_stability(reference, shifted, scores**0.2)
    assert psi["x"] > 0.25 and psi["tier"] > 0.25 and psi[SCORE] > 0.25


def test_a_categorical_column_drifts_as_its_text_does():
    rng = np.random.default_rng(1)
    tier = pd.Series(rng.choice(["a", "b", "c", None], 4000, p=[0.5, 0.3, 0.15, 0.05]))
    reference = drift_reference(pd.DataFrame({"tier": tier}), ["tier"], np.zeros(4000))
    tonight = tier.copy()
    tonight.iloc[:300] = "d"  # a category the reference has not seen
    tonight.iloc[300:600] = None
    as_text = population_stability(reference, pd.DataFrame({"tier": tonight}), np.zeros(4000))
    categorical = population_stability(
        reference, pd.DataFrame({"tier": tonight.astype("category")}), np.zeros(4000)
    )
    assert categorical == as_text and as_text["tier"] > 0.01


def test_psi_counts_missing_values_in_their_own_bin():
    frame = pd.DataFrame({"x": [1.0, 2.0, np.nan, 4.0] * 50})
    reference = drift_reference(frame, ["x"], np.zeros(200), bins=4)
    more_missing = pd.DataFrame({"x": [np.nan] * 150 + [1.0] * 50})
    assert population_stability(reference, more_missing, np.zeros(200))["x"] > 0.25


def test_the_model_carries_a_drift_reference_that_survives_saving(trained, tmp_path):
    _, outcome, scoring = trained
    model = ChurnModel.load(outcome.export_dir)
    assert set(model.drift_reference) == {*model.feature_names, SCORE}
    assert scoring.manifest["drift"]["checked"]
    assert scoring.manifest["drift"]["over_threshold"] == []
    # the reference is the population the model was trained for, at the data's end:
    # scoring that same night finds no drift at all
    assert model.metadata["drift_reference_as_of"] == "2026-01-01" == scoring.as_of.isoformat()
    assert scoring.manifest["drift"]["score_psi"] < 1e-6


def _drifted_bundle(outcome, folder, column=SCORE):
    """The trained bundle with a drift reference that tonight's ``column`` cannot match."""
    model = ChurnModel.load(outcome.export_dir)
    reference = dict(model.drift_reference)
    entry = dict(reference[column])
    shares = [0.0] * len(entry["shares"])
    shares[0] = 1.0  # "everyone fell in the first bin" in training
    reference[column] = {**entry, "shares": shares}
    model.drift_reference = reference
    return model.save(folder)


def test_drift_over_the_threshold_stops_scoring_and_writes_nothing(trained, tmp_path):
    cfg, outcome, _ = trained
    bundle = _drifted_bundle(outcome, tmp_path / "bundle")
    output = tmp_path / "scores"
    drifted = cfg.model_copy(
        update={
            "scoring": cfg.scoring.model_copy(update={"model": str(bundle), "output_dir": output})
        }
    )
    with pytest.raises(DriftError, match=r"score PSI .*Nothing was written.*--allow-drift"):
        run_scoring(drifted)
    assert not output.exists() or list_partitions(output) == []

    allowed = run_scoring(drifted, allow_drift=True)
    manifest = json.loads((allowed.partition / "manifest.json").read_text())
    assert manifest["drift"]["allowed"] is True and manifest["drift"]["stops"] is True
    assert SCORE in manifest["drift"]["over_threshold"]


def test_an_aged_population_does_not_drift_in_tenure_and_exclusions_are_kept_out():
    from churnkit.training.drift import drift_reference, drift_report

    rng = np.random.default_rng(3)
    then = pd.DataFrame(
        {"tenure_days": rng.integers(1, 700, 5000), "orders_90d": rng.poisson(2, 5000)}
    )
    scores = rng.random(5000)
    reference = drift_reference(then, ["tenure_days", "orders_90d"], scores)
    # the same customers 120 days later: everyone's tenure grew by 120 days
    later = then.assign(tenure_days=then["tenure_days"] + 120)
    naive = drift_report(reference, later, scores, 0.25)
    assert "tenure_days" in naive.over_threshold
    aged = drift_report(reference, later, scores, 0.25, elapsed_days=120)
    assert aged.over_threshold == () and aged.calendar_shift_days == 120
    skipped = drift_report(reference, later, scores, 0.25, exclude=("tenure_days", "nope"))
    assert skipped.excluded == ("tenure_days",) and "tenure_days" not in skipped.top
    assert skipped.to_dict()["excluded"] == ["tenure_days"]
    # the manifest's JSON reads back as the same report (the CLI prints from it)
    for report in (naive, aged, skipped):
        assert DriftReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report


def test_a_drift_record_of_an_older_manifest_reads_with_defaults():
    older = {"checked": True, "threshold": 0.25, "score_psi": 0.01, "max_feature_psi": 0.3,
             "over_threshold": ["orders_90d"], "stops": False, "top": {"orders_90d": 0.3},
             "allowed": False, "written_by": "a later version"}  # fmt: skip
    report = DriftReport.from_dict(older)
    assert report.over_threshold == ("orders_90d",) and report.excluded == ()
    assert report.calendar_shift_days == 0 and report.sampled_rows is None


def test_feature_drift_is_recorded_but_does_not_stop_the_night(trained, tmp_path):
    cfg, outcome, _ = trained
    bundle = _drifted_bundle(outcome, tmp_path / "bundle", column="recency_days")
    scoring = cfg.scoring.model_copy(update={"model": str(bundle), "output_dir": tmp_path / "s"})
    written = run_scoring(cfg.model_copy(update={"scoring": scoring}))
    drift = json.loads((written.partition / "manifest.json").read_text())["drift"]
    assert drift["stops"] is False and drift["over_threshold"] == ["recency_days"]


def test_a_dry_run_scores_but_writes_nothing(trained, tmp_path):
    cfg, _, scoring = trained
    output = tmp_path / "dry"
    dry = cfg.model_copy(update={"scoring": cfg.scoring.model_copy(update={"output_dir": output})})
    outcome = run_scoring(dry, dry_run=True)
    assert not outcome.written
    assert not output.exists()
    pd.testing.assert_frame_equal(outcome.ranked, scoring.ranked)


def test_reasons_can_be_limited_to_the_top_of_the_list(model_and_features):
    model, features = model_and_features
    full = score_customers(model, features)
    top = score_customers(model, features, explain_top=25)
    reasons = ["reason_1", "reason_2", "reason_3"]
    first = top["priority"] <= 25  # the first 25 a team works through
    pd.testing.assert_frame_equal(top.loc[first, reasons], full.loc[first, reasons])
    assert (top.loc[~first, reasons] == "").all().all()
    same = [c for c in SCORE_COLUMNS if c not in (*reasons, "recommended_action")]
    pd.testing.assert_frame_equal(top[same], full[same])


def test_status_measures_each_customer_against_their_own_rhythm():
    from churnkit.config import StatusConfig
    from churnkit.scoring.status import (
        customer_status,
        overdue_ratio,
        priority,
        shop_gap,
        work_group,
    )

    # A..C order every 30 days (span 120 over 4 gaps); D every 60; E and F once
    features = pd.DataFrame(
        {
            "customer_id": ["A", "B", "C", "D", "E", "F"],
            "orders_lifetime": [5, 5, 5, 3, 1, 1],
            "recency_days": [20, 50, 100, 100, 25, 200],
            "tenure_days": [140, 170, 220, 220, 25, 200],
        }
    )
    gap = shop_gap(features)
    assert gap == 30.0  # the median of 30, 30, 30 and 60
    overdue = overdue_ratio(features, gap)
    np.testing.assert_allclose(overdue, [20 / 30, 50 / 30, 100 / 30, 100 / 60, 25 / 30, 200 / 30])
    tiers = np.array(["low", "high", "high", "medium", "high", "high"])
    status = customer_status(overdue, tiers, StatusConfig())
    assert status.tolist() == ["active", "lapsing", "lapsed", "lapsing", "at risk", "lapsed"]
    # the working order: the saveable at risk by value at risk, the lapsed, then low risk
    value_at_risk = np.array([5000.0, 80.0, 500.0, 80.0, 10.0, 900.0])
    group = work_group(status == "lapsed", tiers)
    assert group.tolist() == [2, 0, 1, 0, 0, 1]
    rank = np.array([6, 4, 2, 5, 3, 1])  # by churn probability
    order = priority(group, value_at_risk, rank)
    by_priority = features["customer_id"].to_numpy()[np.argsort(order)].tolist()
    assert by_priority == ["B", "D", "E", "F", "C", "A"]  # B before D: same value, ranked higher


def test_the_scored_list_puts_the_lapsed_after_the_saveable(model_and_features):
    model, features = model_and_features
    ranked = score_customers(model, features)
    working = ranked.sort_values("priority")
    low = (working["risk_tier"] == "low").to_numpy()
    lapsed = (working["status"] == "lapsed").to_numpy() & ~low
    contact = ~low & ~lapsed
    assert contact.any() and lapsed.any() and low.any()
    groups = np.where(contact, 0, np.where(lapsed, 1, 2))
    assert (np.diff(groups) >= 0).all()  # contact, then win back, then no action
    saveable = working[contact]["expected_value_at_risk"].to_numpy()
    assert (np.diff(saveable) <= 0.01).all()  # by value at risk (rounded to cents)
    assert sorted(ranked["priority"]) == list(range(1, len(ranked) + 1))
    assert working[lapsed]["recommended_action"].str.startswith("win-back").all()
    assert not working[contact]["recommended_action"].str.startswith("no action").any()
