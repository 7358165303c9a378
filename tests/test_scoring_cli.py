"""Nightly scoring as a scheduler and a retention team use it: kill, rerun, pull, backtest."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml
from tests.conftest import one_line_exit_2, write_config
from typer.testing import CliRunner

from churnkit.cli import app
from churnkit.scoring import SCORE_COLUMNS

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }


def test_the_same_scoring_twice_gives_the_same_bytes(bundle_config):
    scores = bundle_config.parent / "scores"
    assert invoke("--quiet", "score", bundle_config).exit_code == 0
    first = _snapshot(scores)
    assert invoke("--quiet", "score", bundle_config).exit_code == 0
    second = _snapshot(scores)
    data_files = [name for name in first if not name.endswith("manifest.json")]
    assert len(data_files) == 2
    for name in data_files:
        assert second[name] == first[name], name


def test_score_prints_the_list_with_reasons_actions_and_drift(bundle_config):
    result = invoke("score", bundle_config, "--top", "5")
    assert result.exit_code == 0, result.output
    for text in (
        "top reason",
        "action",
        "tier",
        "drift (PSI vs the population at training)",
        "wrote",
    ):
        assert text in result.output


def test_a_dry_run_prints_but_writes_nothing(bundle_config):
    result = invoke("score", bundle_config, "--dry-run")
    assert result.exit_code == 0
    assert "dry run: would write" in result.output
    assert not (bundle_config.parent / "scores").exists()


def test_drift_exits_3_unless_allowed(trained, tmp_path, generated_dir):
    from tests.test_scoring import _drifted_bundle

    _, outcome, _ = trained
    bundle = _drifted_bundle(outcome, tmp_path / "drifted")
    config = write_config(
        tmp_path / "p", generated_dir, scoring={"model": str(bundle), "output_dir": "scores"}
    )
    result = invoke("score", config)
    assert result.exit_code == 3
    assert "drift:" in result.stderr and "score PSI" in result.stderr
    assert not (config.parent / "scores").exists()
    allowed = invoke("score", config, "--allow-drift")
    assert allowed.exit_code == 0, allowed.stderr
    assert "score drift over the threshold, written with --allow-drift" in allowed.output
    # whoever pulls that night's list is told what it was written despite
    listed = invoke("at-risk", config, "--top", "3")
    assert listed.exit_code == 0, listed.stderr
    assert "was written with --allow-drift" in listed.stderr and "score PSI" in listed.stderr


# -- pulling lists ---------------------------------------------------------------------


@pytest.fixture
def scored(bundle_config):
    assert invoke("--quiet", "score", bundle_config, "--as-of", "2025-09-01").exit_code == 0
    assert invoke("--quiet", "score", bundle_config).exit_code == 0
    return bundle_config


def test_at_risk_reads_the_latest_partition_as_a_table(scored):
    result = invoke("at-risk", scored, "--top", "3")
    assert result.exit_code == 0, result.output
    assert "as_of 2026-01-01" in result.output
    assert "3 customers" in result.output
    one = invoke("at-risk", scored, "--top", "1")
    assert "1 customer " in one.output and "1 customers" not in one.output
    # --json asks for JSON, as on every command
    records = json.loads(invoke("--json", "at-risk", scored, "--top", "2").stdout)
    assert [r["priority"] for r in records] == [1, 2]  # the working order by default
    by_risk = json.loads(invoke("--json", "at-risk", scored, "--top", "2", "--sort", "risk").stdout)
    assert [r["rank"] for r in by_risk] == [1, 2]
    by_value = json.loads(invoke("--json", "at-risk", scored, "--sort", "value").stdout)
    values = [r["expected_value_at_risk"] for r in by_value]
    assert values == sorted(values, reverse=True)
    bad = invoke("at-risk", scored, "--sort", "fame")
    assert bad.exit_code == 2 and "--sort 'fame' is not one of priority, risk, value" in bad.stderr
    # partitions are readable by others (a BI account), as the umask allows
    partition = next(p for p in (scored.parent / "scores").glob("as_of=*"))
    assert partition.stat().st_mode & 0o055 == 0o055 & ~_umask()


def test_at_risk_filters_and_writes_csv_and_json(scored, tmp_path):
    result = invoke(
        "at-risk",
        scored,
        "--as-of",
        "2025-09-01",
        "--tier",
        "HIGH",  # tiers, like segments, in any case
        "--min-value",
        "100",
        "--format",
        "csv",
    )
    assert result.exit_code == 0
    frame = pd.read_csv(pd.io.common.StringIO(result.stdout))
    assert list(frame.columns) == SCORE_COLUMNS
    assert len(frame) > 10
    assert (frame["as_of"] == "2025-09-01").all()
    assert (frame["risk_tier"] == "high").all() and (frame["customer_value_365d"] >= 100).all()
    assert frame["priority"].is_monotonic_increasing

    segment = frame["segment"].iloc[0]
    out = tmp_path / "list.json"
    result = invoke(
        "at-risk",
        scored,
        "--segment",
        segment.upper(),
        "--top",
        "5",
        "--format",
        "json",
        "--out",
        out,
    )
    assert result.exit_code == 0
    records = json.loads(out.read_text())
    assert len(records) == 5
    assert {r["segment"] for r in records} == {segment}
    assert records[0]["as_of"] == "2026-01-01"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--segment", "Nope"), "--segment 'Nope' is not in this list; segments:"),
        (("--tier", "urgent"), "--tier 'urgent' is not one of high, medium, low"),
        (("--as-of", "2020-01-01"), "no scoring partition for as_of 2020-01-01"),
        (("--format", "xml"), "--format 'xml' is not one of table, csv, json"),
    ],
)
def test_at_risk_refuses_bad_options_with_one_line(scored, args, message):
    result = invoke("at-risk", scored, *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_at_risk_without_any_scores_says_to_score_first(bundle_config):
    result = invoke("at-risk", bundle_config)
    assert result.exit_code == 2
    assert "run `churnkit score CONFIG` first" in result.stderr


# -- backtest ----------------------------------------------------------------------------


def test_evaluate_backtests_a_past_list_and_logs_a_monitoring_run(trained, tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from churnkit import tracking

    cfg, _, _ = trained
    config = cfg.project_dir / "churnkit.yaml"
    assert invoke("--quiet", "score", config, "--as-of", "2025-08-01").exit_code == 0
    result = invoke("--json", "evaluate", config, "--as-of", "2025-08-01")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    model, baseline = payload["metrics"]["model"], payload["metrics"]["crr_baseline"]
    assert model["pr_auc"] > baseline["pr_auc"]
    assert model["roc_auc"] > 0.85
    tiers = {t["risk_tier"]: t for t in payload["tiers"]}
    assert tiers["high"]["churned"] > tiers["medium"]["churned"] > tiers["low"]["churned"]

    tracking.configure(cfg.mlflow, cfg.project_dir)
    run = MlflowClient().get_run(payload["run_id"])
    assert run.data.tags["churnkit.run_type"] == "monitoring"
    assert run.data.tags["churnkit.as_of"] == "2025-08-01"
    assert run.data.metrics["backtest_model_pr_auc"] == pytest.approx(model["pr_auc"])
    assert mlflow.get_tracking_uri().startswith("sqlite")


def test_evaluate_before_the_horizon_has_passed_exits_2_naming_the_dates(trained):
    cfg, _, _ = trained
    result = invoke("evaluate", cfg.project_dir / "churnkit.yaml", "--as-of", "2026-01-01")
    assert result.exit_code == 2
    assert "runs to 2026-03-31, but the data ends on 2025-12-31" in result.stderr


def _umask() -> int:

    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("width", [80, 100, 120])
def test_the_at_risk_table_stays_readable_on_narrow_terminals(trained, monkeypatch, width):
    import io

    from rich.console import Console

    from churnkit.cli import render

    _, _, scoring = trained
    screen = io.StringIO()
    monkeypatch.setattr(render, "out", Console(width=width, file=screen))
    render.at_risk(scoring.ranked, 5)
    text = screen.getvalue()
    assert max(len(line) for line in text.splitlines()) <= width
    # the reason's words are there whole, not cut to a few characters
    words = [w for w in scoring.ranked["reason_1"].iloc[0].split() if len(w) > 3]
    assert words and all(w.strip(";,()") in text for w in words)
    assert ("CRR p" in text) == (width >= 120)


# -- faults and hostile input: one line, exit 2, nothing left behind --------------------


def test_unwritable_outputs_exit_2_and_leave_nothing(bundle_config, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    scored = invoke("--quiet", "score", bundle_config)
    assert scored.exit_code == 0
    for args in (
        ("report", bundle_config, "--out", blocker / "report.html"),
        ("features", bundle_config, "--out", blocker / "f.parquet"),
        ("kpis", bundle_config, "--out", blocker / "k.csv"),
        ("at-risk", bundle_config, "--format", "csv", "--out", blocker / "list.csv"),
    ):
        one_line_exit_2(invoke(*args), str(blocker), "check the path")
    # scoring.output_dir that is a file
    raw = yaml.safe_load(bundle_config.read_text())
    raw["scoring"]["output_dir"] = str(blocker)
    bundle_config.write_text(yaml.safe_dump(raw))
    one_line_exit_2(invoke("--quiet", "score", bundle_config), str(blocker))
    assert blocker.read_text() == "not a folder"
    assert not list(tmp_path.rglob(".*.tmp*"))


def test_bad_configs_exit_2_naming_the_key(bundle_config):
    raw = yaml.safe_load(bundle_config.read_text())
    for key, section, value in (
        ("duckdb.memory_limit", "duckdb", {"memory_limit": "lots"}),
        ("snapshots.horizon_days", "snapshots", {"horizon_days": 10**9}),
        ("features.windows_days", "features", {"windows_days": [30, 10**9]}),
    ):
        bundle_config.write_text(yaml.safe_dump({**raw, section: value}))
        one_line_exit_2(invoke("validate", bundle_config), key)
    bundle_config.write_bytes("data:\n  orders: {path: caf\xe9.csv}\n".encode("latin-1"))
    one_line_exit_2(invoke("validate", bundle_config), "is not UTF-8 text")


def test_a_damaged_bundle_is_refused_not_run(trained, bundle_config, tmp_path):
    import shutil

    _, outcome, _ = trained
    for damage in ("truncate", "edit"):
        bundle = tmp_path / damage
        shutil.copytree(outcome.export_dir, bundle)
        booster = bundle / "booster.txt"
        text = booster.read_bytes()
        if damage == "truncate":
            booster.write_bytes(text[: len(text) // 2])
        else:  # the same length, one leaf value changed
            at = text.index(b"leaf_value=") + len(b"leaf_value=")
            digit = next(i for i in range(at, at + 20) if text[i : i + 1].isdigit())
            changed = b"1" if text[digit : digit + 1] != b"1" else b"2"
            booster.write_bytes(text[:digit] + changed + text[digit + 1 :])
        raw = yaml.safe_load(bundle_config.read_text())
        raw["scoring"]["model"] = str(bundle)
        bundle_config.write_text(yaml.safe_dump(raw))
        one_line_exit_2(invoke("--quiet", "score", bundle_config), "is damaged or was changed")


def test_an_attribute_named_like_a_feature_stops_training_before_mlflow(tmp_path, generated_dir):
    customers = pd.read_parquet(generated_dir / "customers.parquet")
    customers.rename(columns={"country": "recency_days"}).to_parquet(tmp_path / "c.parquet")
    config = write_config(
        tmp_path / "p",
        generated_dir,
        data={"customers": {"path": str(tmp_path / "c.parquet"), "attributes": ["recency_days"]}},
    )
    one_line_exit_2(invoke("train", config), "['recency_days']", "data.customers.attributes")
    assert not (config.parent / "mlflow.db").exists() and not (config.parent / "mlruns").exists()
