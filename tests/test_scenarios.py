"""Every generator scenario trains and scores with the default config (paths only)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml
from tests.test_cli import invoke

from churnkit.data.generator import SCENARIOS, generate_data, write_generated
from churnkit.training.model import ChurnModel


def _churn_rate(orders: pd.DataFrame, as_of: str, horizon_days: int = 90) -> float:
    """Share of customers active in the year before ``as_of`` with no completed order after."""
    done = orders[orders["status"] == "completed"]
    at = pd.Timestamp(as_of)
    active = set(
        done.loc[done["ordered_at"].between(at - pd.Timedelta(days=365), at, "left"), "customer_id"]
    )
    came_back = set(
        done.loc[
            done["ordered_at"].between(at, at + pd.Timedelta(days=horizon_days), "left"),
            "customer_id",
        ]
    )
    return len(active - came_back) / len(active)


def test_scenarios_look_like_the_shops_they_stand_for():
    cohort = generate_data(3000, seed=2, scenario="cohort")
    grocery = generate_data(1000, seed=2, scenario="grocery")
    cohort_orders, grocery_orders = cohort.orders.to_pandas(), grocery.orders.to_pandas()
    # one acquisition cohort: every first order in the first two months, 18 months of data
    first = cohort_orders.groupby("customer_id")["ordered_at"].min()
    assert first.max() < pd.Timestamp("2024-09-01")
    assert cohort_orders["ordered_at"].max() > pd.Timestamp("2025-12-01")
    assert 0.7 < _churn_rate(cohort_orders, "2025-03-01") < 0.92
    # a one-year panel with frequent baskets and low churn
    span = grocery_orders["ordered_at"].agg(["min", "max"])
    assert span["max"] - span["min"] < pd.Timedelta(days=366)
    assert len(grocery_orders) / grocery_orders["customer_id"].nunique() > 25
    assert 0.03 < _churn_rate(grocery_orders, "2025-06-01") < 0.12
    # sparse events and attributes missing for most customers
    for data in (cohort, grocery):
        assert pd.Series(data.events["customer_id"].to_pylist()).nunique() < 0.5 * 3000
        assert data.customers["loyalty_tier"].null_count > 0.5 * data.customers.num_rows


def test_an_unknown_scenario_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match=r"unknown scenario 'mall'; choose one of \['cohort'"):
        generate_data(10, scenario="mall")


@pytest.mark.parametrize(("scenario", "customers"), [("cohort", 2500), ("grocery", 700)])
def test_each_scenario_trains_and_scores_with_the_default_config(
    scenario, customers, tmp_path, fresh_store
):
    assert scenario in SCENARIOS
    project = tmp_path / scenario
    # the shop's history, and the same shop a quarter later (100 more days of data)
    shop = SCENARIOS[scenario]
    later = generate_data(
        customers, seed=5, scenario=scenario, end=shop.end + dt.timedelta(days=100)
    )
    write_generated(later, project / "later")
    night = pa.scalar(dt.datetime.combine(shop.end + dt.timedelta(days=1), dt.time()))
    history = dataclasses.replace(
        later,
        orders=later.orders.filter(pc.less(later.orders["ordered_at"], night)),
        events=later.events.filter(pc.less(later.events["occurred_at"], night)),
    )
    write_generated(history, project / "data")
    fresh_store(project)
    config, config_later = project / "churnkit.yaml", project / "later.yaml"
    for path, folder in ((config, "data"), (config_later, "later")):
        path.write_text(
            yaml.safe_dump(
                {
                    "data": {
                        "orders": {"path": f"{folder}/orders.parquet"},
                        "events": {"path": f"{folder}/events.parquet"},
                        "customers": {
                            "path": f"{folder}/customers.parquet",
                            "attributes": ["loyalty_tier"],
                        },
                    },
                    "model": {"bootstrap_samples": 200},  # the default 1000 is slower
                }
            ),
            encoding="utf-8",
        )
    trained = invoke("--json", "train", config)
    # exit 3 is the gate keeping a model that does not clearly beat the best baseline
    assert trained.exit_code in (0, 3), trained.output + trained.stderr
    summary = json.loads(trained.stdout)
    assert summary["metrics"]["model"]["roc_auc"] > 0.8

    scored = invoke("--quiet", "score", config)
    assert scored.exit_code == 0, scored.output + scored.stderr
    partition = next((project / "scores").glob("as_of=*"))
    listed = pd.read_parquet(partition / "scores.parquet")
    assert len(listed) > 100

    # a quarter after training the night still runs: the population has aged, and the
    # features that grow with calendar time drift, which is recorded, not a stop
    quarter = invoke("--quiet", "score", config_later)
    assert quarter.exit_code == 0, quarter.output + quarter.stderr
    manifest = json.loads(
        next((project / "scores").glob("as_of=2026-04-*/manifest.json")).read_text()
    )
    drift = manifest["drift"]
    assert drift["checked"] and not drift["stops"]
    # tenure is compared as it was at training: the panel's ageing is not drift
    assert drift["calendar_shift_days"] >= 90
    assert "tenure_days" not in drift["over_threshold"], drift["top"]

    # tiers mean something at the scenario's churn rate: a night whose outcome is known
    past = "2025-09-01" if scenario == "cohort" else "2025-08-01"
    again = invoke("--quiet", "score", config, "--as-of", past, "--allow-drift")
    assert again.exit_code == 0, again.output + again.stderr
    evaluated = invoke("--json", "evaluate", config, "--as-of", past)
    assert evaluated.exit_code == 0, evaluated.output + evaluated.stderr
    tiers = pd.DataFrame(json.loads(evaluated.stdout)["tiers"]).set_index("risk_tier")
    base = (tiers["churned"] * tiers["customers"]).sum() / tiers["customers"].sum()
    assert tiers.loc["high", "customers"] >= 0.09 * tiers["customers"].sum()
    # well above the base rate: 3 times it, or half the way from it to 100 % when it is high
    assert tiers.loc["high", "churned"] > min(3 * base, base + 0.5 * (1 - base))
    assert tiers.loc["high", "churned"] > tiers.loc["low", "churned"]

    # the model's probabilities (served or not) tie only where the features are identical
    model = ChurnModel.load(project / "models" / "churnkit" / "v1")
    as_of = pd.Timestamp(partition.name.removeprefix("as_of=")).date()
    features = _features(config, as_of)
    _assert_no_large_ties_but_identical_features(model, features)

    # an unknown loyalty tier (two thirds of customers) is never a reason: nothing to act on
    from churnkit.scoring.reasons import reason_sentences

    unknown = features["loyalty_tier"].isna()
    assert unknown.mean() > 0.5
    sentences, chosen = reason_sentences(model, features)
    assert not any("loyalty_tier" in n for n, u in zip(chosen, unknown, strict=True) if u)
    assert not sentences.apply(lambda c: c.str.contains("unknown")).any().any()


def _assert_no_large_ties_but_identical_features(model: ChurnModel, features: pd.DataFrame):
    """No probability is shared by more than 1 % of customers unless their features are equal."""
    X = model.select_features(features)
    probability = pd.Series(model.predict_proba(features))
    counts = probability.value_counts()
    for value in counts[counts > 0.01 * len(probability)].index:
        same = X[(probability == value).to_numpy()].astype("string").fillna("<NA>")
        assert len(same.drop_duplicates()) == 1, f"{len(same)} customers tie at {value}"


def _features(config, as_of) -> pd.DataFrame:
    from churnkit.config import load_config
    from churnkit.pipelines import run_features

    written = run_features(load_config(config), as_of=as_of, out=config.parent / "f.parquet")
    return pd.read_parquet(written.path)
