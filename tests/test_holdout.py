"""Holdout groups: reproducible, exactly stratified by risk tier, left out of the lists."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from tests.conftest import write_config
from typer.testing import CliRunner

from churnkit.cli import app
from churnkit.config import HoldoutConfig
from churnkit.scoring.holdout import assign_holdout, holdout_keys

NIGHT = dt.date(2026, 1, 1)


def _night(high: int = 25, medium: int = 75, low: int = 900) -> pd.DataFrame:
    tiers = ["high"] * high + ["medium"] * medium + ["low"] * low
    return pd.DataFrame(
        {"customer_id": [f"C{i:05d}" for i in range(len(tiers))], "risk_tier": tiers}
    )


def test_every_tier_holds_out_its_share_rounded_half_up():
    night = _night()
    held = assign_holdout(night, NIGHT, HoldoutConfig(share=0.1))
    counts = night[held]["risk_tier"].value_counts().to_dict()
    assert counts == {"high": 3, "medium": 8, "low": 90}  # 2.5 -> 3, 7.5 -> 8, 90
    assert not assign_holdout(night, NIGHT, HoldoutConfig()).any()  # share 0: off


def test_the_group_is_the_same_whatever_the_row_order_and_changes_with_salt_and_night():
    night = _night()
    cfg = HoldoutConfig(share=0.2, salt="spring campaign")
    held = set(night["customer_id"][assign_holdout(night, NIGHT, cfg)])
    shuffled = night.sample(frac=1, random_state=3).reset_index(drop=True)
    assert set(shuffled["customer_id"][assign_holdout(shuffled, NIGHT, cfg)]) == held
    other_salt = HoldoutConfig(share=0.2, salt="summer campaign")
    assert set(night["customer_id"][assign_holdout(night, NIGHT, other_salt)]) != held
    next_night = NIGHT + dt.timedelta(days=1)
    again = set(night["customer_id"][assign_holdout(night, next_night, cfg)])
    assert again != held
    # a random draw, not a slice of the list: about a fifth of any block of ids
    first_half = night["customer_id"].iloc[:500]
    assert 60 <= len(held & set(first_half)) <= 140


def test_keys_are_sha256_prefixes_anyone_can_recompute():
    import hashlib

    key = holdout_keys("salt", NIGHT, pd.Series(["C1"]))[0]
    expected = int(hashlib.sha256(b"salt\x1f2026-01-01\x1fC1").hexdigest()[:15], 16)
    assert key == expected and key >= 0


def test_a_night_with_a_holdout_lists_only_the_customers_to_contact(trained, tmp_path):
    _, outcome, _ = trained
    config = write_config(
        tmp_path / "p",
        trained[0].data.orders.path.parent,
        scoring={
            "model": str(outcome.export_dir),
            "output_dir": "scores",
            "holdout": {"share": 0.1, "salt": "test"},
        },
    )
    runner = CliRunner()
    scored = runner.invoke(app, ["score", str(config)])
    assert scored.exit_code == 0, scored.output
    assert "are the control group of" in scored.stderr
    partition = next((config.parent / "scores").iterdir())
    scores = pd.read_parquet(partition / "scores.parquet")
    manifest = yaml.safe_load((partition / "manifest.json").read_text())
    design = manifest["holdout"]
    assert design["share"] == 0.1 and design["stratified_by"] == "risk_tier"
    by_tier = scores.groupby("risk_tier")["holdout"].agg(["sum", "size"])
    for tier, row in by_tier.iterrows():
        assert row["sum"] == np.floor(0.1 * row["size"] + 0.5) == design["held_out_by_tier"][tier]
    listed = pd.read_csv(partition / "at_risk.csv")
    assert len(listed) == len(scores) - design["held_out"]
    assert not set(listed["customer_id"]) & set(scores.loc[scores["holdout"], "customer_id"])
    first = {p.name: p.read_bytes() for p in partition.iterdir() if p.suffix != ".json"}

    # a rerun draws the same group, byte for byte
    assert runner.invoke(app, ["--quiet", "score", str(config)]).exit_code == 0
    assert {p.name: p.read_bytes() for p in partition.iterdir() if p.suffix != ".json"} == first

    pulled = runner.invoke(app, ["at-risk", str(config), "--format", "json"])
    assert len(json.loads(pulled.stdout)) == len(listed)
    assert f"holdout: {design['held_out']:,} customers" in pulled.stderr
    everyone = runner.invoke(app, ["at-risk", str(config), "--format", "json", "--include-holdout"])
    assert len(json.loads(everyone.stdout)) == len(scores)

    report = runner.invoke(app, ["report", str(config), "--out", str(tmp_path / "r.html")])
    assert report.exit_code == 0, report.output
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert f"{design['held_out']:,} customers (10 % of\neach risk tier)" in html
    assert "No readout yet: the 90-day label window of 2026-01-01 runs to" in html
    lists = html.split('id="contact"')[1].split('id="model"')[0]
    held = scores.loc[scores["holdout"], "customer_id"]
    assert not [cid for cid in held if f"<td>{cid}</td>" in lists]
    assert sum(f"<td>{cid}</td>" in lists for cid in listed["customer_id"]) >= 25


def test_the_readout_recovers_a_known_campaign_effect(trained, tmp_path):
    """Score a past night with a holdout, run a generated campaign with a known effect
    on the listed customers (persuadable, annoyed, unmoved), then `evaluate`: each
    interval contains the effect the campaign really had."""
    from churnkit.config import load_config
    from churnkit.data.generator import simulate_campaign
    from churnkit.pipelines import run_evaluation, run_scoring

    cfg, outcome, _ = trained
    data_dir = cfg.data.orders.path.parent
    scoring = {
        "model": str(outcome.export_dir),
        "output_dir": "scores",
        "holdout": {"share": 0.3, "salt": "campaign"},
    }
    night = dt.date(2025, 9, 1)
    before = load_config(write_config(tmp_path / "p", data_dir, scoring=scoring))
    scored = run_scoring(before, as_of=night)
    campaign = simulate_campaign(
        pd.read_parquet(cfg.data.orders.path),
        scored.ranked,
        horizon_days=90,
        persuadable=0.5,
        annoyed=0.05,
        seed=4,
    )
    campaign.orders.to_parquet(tmp_path / "orders.parquet", index=False)
    campaign.contacts.to_parquet(tmp_path / "contacts.parquet", index=False)
    after = load_config(
        write_config(
            tmp_path / "p",
            data_dir,
            data={
                "orders": {"path": str(tmp_path / "orders.parquet")},
                "contacts": {"path": str(tmp_path / "contacts.parquet")},
            },
            scoring=scoring,
        )
    )
    readout = run_evaluation(after, as_of=night).readout
    assert readout is not None
    rows = readout.table.set_index("group")
    listed = scored.ranked[~scored.ranked["holdout"]]
    high = listed.loc[listed["risk_tier"] == "high", "customer_id"]
    for group, customers in {
        "listed: high": high,
        "listed: medium": listed.loc[listed["risk_tier"] == "medium", "customer_id"],
        "listed: all tiers": listed["customer_id"],
        "play: personal call": high,
    }.items():
        row = rows.loc[group]
        truth = campaign.true_uplift(customers)
        assert row["customers"] == len(customers)
        assert row["retention_uplift_low"] <= truth <= row["retention_uplift_high"], (group, truth)
    medium = rows.loc["listed: medium"]
    assert medium["retention_uplift_low"] > 0 and medium["contact_to_save"] > 1
    low = rows.loc["listed: low"]  # not contacted: no effect to find
    assert low["retention_uplift_low"] <= 0 <= low["retention_uplift_high"]
    assert rows.loc["play: email offer", "cost_per_customer_saved"] == pytest.approx(
        0.5 * rows.loc["play: email offer", "contact_to_save"]
    )

    shown = CliRunner().invoke(
        app, ["evaluate", str(tmp_path / "p" / "churnkit.yaml"), "--as-of", str(night)]
    )
    assert shown.exit_code == 0, shown.output
    assert "did the plays work?" in shown.stdout and "play: personal call" in shown.stdout
    report = CliRunner().invoke(
        app, ["report", str(tmp_path / "p" / "churnkit.yaml"), "--as-of", str(night)]
    )
    assert report.exit_code == 0, report.output
    html = next((tmp_path / "p" / "scores").glob("report-*.html")).read_text(encoding="utf-8")
    assert "Did the plays work?" in html and "<td>play: personal call</td>" in html


def test_the_readout_finds_a_planted_effect_and_no_effect_where_there_is_none():
    from churnkit.scoring.readout import read_out

    rng = np.random.default_rng(5)
    n = 20_000
    night = pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(n)],
            "risk_tier": rng.choice(["high", "medium", "low"], n, p=[0.2, 0.3, 0.5]),
        }
    )
    night["holdout"] = assign_holdout(night, NIGHT, HoldoutConfig(share=0.2))
    base = night["risk_tier"].map({"high": 0.3, "medium": 0.5, "low": 0.8})
    lift = np.where(night["holdout"], 0.0, night["risk_tier"].map({"high": 0.15, "medium": 0.05}))
    retained = rng.random(n) < base + np.nan_to_num(lift)
    outcomes = night[["customer_id"]].assign(retained=retained, revenue=retained * 40.0)
    # eight interval checks below: 99.9 % intervals, so that together they hold ~99 % of draws
    rows = read_out(night, outcomes, samples=2000, confidence=0.999).table.set_index("group")
    for group, planted in {
        "listed: high": 0.15,
        "listed: medium": 0.05,
        "listed: low": 0.0,
    }.items():
        row = rows.loc[group]
        assert row["retention_uplift_low"] <= planted <= row["retention_uplift_high"], group
        assert row["revenue_uplift_low"] <= 40 * planted <= row["revenue_uplift_high"], group
    high, medium = rows.loc["listed: high"], rows.loc["listed: medium"]
    assert high["retention_uplift_low"] > 0.08 and high["contact_to_save"] < 10
    # all tiers: the tiers' effects weighted by the listed customers' tier mix
    listed = night[~night["holdout"]]["risk_tier"].value_counts(normalize=True)
    expected = listed["high"] * 0.15 + listed["medium"] * 0.05
    everyone = rows.loc["listed: all tiers"]
    assert everyone["retention_uplift_low"] <= expected <= everyone["retention_uplift_high"]
    assert (
        high["held_out"] + medium["held_out"] + rows.loc["listed: low", "held_out"]
        == (everyone["held_out"])
    )
