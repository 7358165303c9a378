"""The CLI is tested through its exit codes and what it prints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from tests.conftest import write_config
from typer.testing import CliRunner

from churnkit.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_help_lists_the_commands_and_exit_codes():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("generate", "validate", "train", "score", "at-risk", "evaluate", "demo"):
        assert command in result.output
    assert (
        "quality gate (model does not beat the CRR baseline, or the scored population drifted)"
        in " ".join(result.output.split())
    )


def test_python_dash_m_runs_the_same_app():
    result = subprocess.run(
        [sys.executable, "-m", "churnkit", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert result.stdout.startswith("churnkit ")


def test_train_on_data_missing_a_mapped_column_exits_2_with_one_line_and_registers_nothing(
    tmp_path, generated_dir
):
    import pandas as pd

    orders = pd.read_parquet(generated_dir / "orders.parquet").rename(columns={"amount": "total"})
    orders.to_parquet(tmp_path / "orders.parquet")
    config = write_config(tmp_path / "project", generated_dir)
    raw = yaml.safe_load(config.read_text())
    raw["data"]["orders"]["path"] = str(tmp_path / "orders.parquet")
    config.write_text(yaml.safe_dump(raw))

    result = invoke("train", config)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "missing column 'amount'" in lines[0]
    assert "`data.orders.columns.amount`" in lines[0]
    assert "Traceback" not in result.output + result.stderr
    assert not (tmp_path / "project" / "mlflow.db").exists()
    assert not (tmp_path / "project" / "models").exists()


def test_a_config_with_an_unknown_key_exits_2_naming_it(tmp_path, generated_dir):
    config = write_config(tmp_path, generated_dir, snapshots={"horizon": 30})
    result = invoke("validate", config)
    assert result.exit_code == 2
    assert "`snapshots.horizon`: unknown key" in result.stderr


def test_validate_summarises_the_data_and_the_snapshots(tmp_path, generated_dir):
    result = invoke("validate", write_config(tmp_path, generated_dir))
    assert result.exit_code == 0, result.stderr
    assert "orders:" in result.output and "customers" in result.output
    assert "labelled snapshots: 31 (2023-04-01 .. 2025-10-01)" in result.output
    assert "walk-forward test dates 2025-08-01, 2025-09-01, 2025-10-01" in result.output


def test_validate_json_is_one_document_of_the_same_figures(tmp_path, generated_dir):
    customers = {"path": str(generated_dir / "customers.parquet"), "attributes": ["country"]}
    config = write_config(tmp_path, generated_dir, data={"customers": customers})
    result = invoke("--json", "validate", config)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)  # one document, nothing else on stdout
    assert summary["orders"]["customers"] > 0 and "notes" not in summary["orders"]
    assert summary["customers"]["rows"] == summary["customers"]["customers"] > 0
    assert summary["customers"]["buyers_not_in_table"] == 0
    assert "events" not in summary  # not configured
    assert summary["snapshots"]["walk_forward_test"] == ["2025-08-01", "2025-09-01", "2025-10-01"]
    assert len(summary["snapshots"]["labelled"]) == 31
    assert "attributes" in summary["families"] and summary["notes"] == []


def test_scoring_without_a_trained_model_exits_2(tmp_path, generated_dir, fresh_store):
    fresh_store(tmp_path / "p")
    result = invoke("score", write_config(tmp_path / "p", generated_dir))
    assert result.exit_code == 2
    assert "no model at models:/churn-test@champion" in result.stderr


def test_a_bad_date_exits_2(tmp_path, generated_dir):
    result = invoke("score", write_config(tmp_path, generated_dir), "--as-of", "yesterday")
    assert result.exit_code == 2
    assert "'yesterday' is not a date; use YYYY-MM-DD" in result.stderr
    assert "--as-of" in result.stderr


def test_a_model_that_does_not_beat_the_baseline_exits_3_and_stays_challenger(
    tmp_path, generated_dir, fresh_store
):
    from mlflow.tracking import MlflowClient

    fresh_store(tmp_path / "p")
    # one stump cannot rank customers as finely as the six-bucket CRR baseline
    config = write_config(tmp_path / "p", generated_dir, model={"max_rounds": 1, "num_leaves": 2})
    result = invoke("train", config)
    assert result.exit_code == 3, result.output + result.stderr
    assert "does not clearly beat the best baseline" in result.stderr
    assert "CRR baseline" in result.output  # the comparison table is printed
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'p' / 'mlflow.db'}")
    assert {k: str(v) for k, v in client.get_registered_model("churn-test").aliases.items()} == {
        "challenger": "1"
    }
    best = client.get_run(client.get_model_version("churn-test", "1").run_id).data.tags[
        "churnkit.best_baseline"
    ]
    # with no champion, the nightly list comes from the best baseline, clearly marked
    scored = invoke("score", config)
    assert scored.exit_code == 0, scored.output + scored.stderr
    assert "this list comes from a deterministic baseline" in scored.stderr
    partition = next((tmp_path / "p" / "scores").glob("as_of=*"))
    manifest = json.loads((partition / "manifest.json").read_text())
    assert manifest["scorer"]["served"] == best
    assert "did not pass the quality gate" in manifest["scorer"]["fallback_reason"]
    listed = pd.read_csv(partition / "at_risk.csv")
    assert (listed["model_name"] == f"baseline:{best}").all()
    assert listed["priority"].tolist() == list(range(1, len(listed) + 1))  # working order
    ranked = pd.read_parquet(partition / "scores.parquet")
    assert ranked["churn_probability"].is_monotonic_decreasing


@pytest.mark.parametrize("flag", ["--quiet", "--json"])
def test_demo_runs_end_to_end(tmp_path, flag):
    result = invoke(flag, "demo", "--dir", tmp_path / "demo", "--customers", "2000")
    assert result.exit_code == 0, result.output + result.stderr
    if flag == "--json":
        summary = json.loads(result.stdout)  # one document, nothing else on stdout
        assert summary["training"]["promoted"] is True
        assert summary["scored"] > 0
        assert Path(summary["scores"], "at_risk.csv").exists()
    else:
        assert "customers to contact" in result.output
        assert "mlflow ui --backend-store-uri sqlite:///" in result.output
        _pull_lists_as_readme_shows(tmp_path)
    assert list((tmp_path / "demo" / "scores").glob("as_of=*/at_risk.csv"))


def _pull_lists_as_readme_shows(tmp_path):
    """The `churnkit at-risk` examples of README, run on the demo's output."""
    import pandas as pd

    config = "demo/churnkit.yaml"  # the tests run in tmp_path, like README in the repo
    table = invoke("at-risk", config)
    assert table.exit_code == 0, table.stderr
    assert "20 customers" in table.output and "top reason" in table.output
    csv = invoke("at-risk", config, "--tier", "high", "--min-value", "200", "--format", "csv")
    frame = pd.read_csv(pd.io.common.StringIO(csv.stdout))
    assert len(frame) > 0 and (frame["customer_value_365d"] >= 200).all()
    vip = invoke(
        "at-risk",
        config,
        "--segment",
        "cannot lose",
        "--top",
        "50",
        "--format",
        "json",
        "--out",
        "vip.json",
    )
    assert vip.exit_code == 0, vip.stderr
    records = json.loads((tmp_path / "vip.json").read_text())
    assert 0 < len(records) <= 50 and {r["segment"] for r in records} == {"Cannot Lose"}
    # the list starts with saveable customers with value; the lapsed come after, for win-back
    listed = json.loads(invoke("--json", "at-risk", config).stdout)
    first = listed[:10]
    assert [r["priority"] for r in first] == list(range(1, 11))
    assert all(r["status"] != "lapsed" and r["risk_tier"] != "low" for r in first)
    assert all(r["expected_value_at_risk"] > 0 for r in first)
    values = [r["expected_value_at_risk"] for r in first]
    assert values == sorted(values, reverse=True)
    lapsed = json.loads(invoke("--json", "at-risk", config, "--status", "lapsed").stdout)
    assert lapsed and min(r["priority"] for r in lapsed) > max(r["priority"] for r in first)
    high = [r for r in lapsed if r["risk_tier"] != "low"]
    assert high and all(r["recommended_action"].startswith("win-back") for r in high)


def _features_to_csv(tmp_path, generated_dir, **overrides):
    """`churnkit features` on the generated orders and events; the result and the file."""
    data = {
        "orders": {"path": str(generated_dir / "orders.parquet")},
        "events": {"path": str(generated_dir / "events.parquet")},
    }
    config = write_config(tmp_path, generated_dir, data=data, **overrides)
    out = tmp_path / "out" / "features.csv"
    return invoke("features", config, "--as-of", "2025-03-01", "--out", out), out


def test_features_writes_the_table_for_analysts(tmp_path, generated_dir):
    import pandas as pd

    result, out = _features_to_csv(tmp_path, generated_dir)
    assert result.exit_code == 0, result.stderr
    frame = pd.read_csv(out)
    assert (frame["as_of"] == "2025-03-01").all()
    assert {"recency_days", "overdue_ratio", "session_events_30d", "rfm_segment"} <= set(frame)
    assert not list(out.parent.glob(".*"))  # no temporary file left behind


def test_the_features_parquet_holds_the_feature_table_the_models_see(tmp_path, generated_dir):
    """DuckDB writes the Parquet file itself; it reads back as the table that training and
    scoring collect through pandas, value for value and in the same order."""
    import datetime as dt

    from churnkit.config import load_config
    from churnkit.features.spec import spec_for_data
    from churnkit.pipelines import open_source, run_features

    cfg = load_config(write_config(tmp_path, generated_dir))
    written = run_features(cfg, as_of=dt.date(2025, 3, 1), out=tmp_path / "f.parquet")
    data = open_source(cfg)
    expected = data.features([written.as_of], spec_for_data(cfg, data)[0])
    found = pd.read_parquet(written.path)
    assert (written.rows, written.columns) == (len(expected), list(expected.columns))
    assert (found.dtypes == "float64").sum() == (expected.dtypes == "float64").sum() > 30
    pd.testing.assert_frame_equal(found, expected, check_exact=True, check_dtype=False)


def test_features_and_kpis_write_json_and_refuse_a_suffix_they_cannot_write(
    tmp_path, generated_dir
):
    config = write_config(tmp_path, generated_dir)
    out = tmp_path / "out" / "features.json"
    result = invoke("features", config, "--as-of", "2025-03-01", "--out", out)
    assert result.exit_code == 0, result.stderr
    records = json.loads(out.read_text())  # JSON, not Parquet bytes in a .json file
    assert records[0]["as_of"].startswith("2025-03-01") and "recency_days" in records[0]
    kpis = invoke("kpis", config, "--out", tmp_path / "out" / "kpis.json")
    assert kpis.exit_code == 0, kpis.stderr
    assert "crr_pct" in json.loads((tmp_path / "out" / "kpis.json").read_text())[0]
    for command in ("features", "kpis"):
        refused = invoke(command, config, "--out", tmp_path / "out" / "table.txt")
        assert refused.exit_code == 2
        assert "end it in .csv, .json or .parquet" in refused.stderr
    assert not (tmp_path / "out" / "table.txt").exists()


def test_work_over_the_duckdb_memory_limit_exits_2_naming_the_settings(tmp_path, generated_dir):
    result, out = _features_to_csv(
        tmp_path, generated_dir, duckdb={"memory_limit": "2MB", "threads": 1}
    )
    assert result.exit_code == 2, result.stderr
    assert "DuckDB ran out of memory checking the data contract" in result.stderr
    assert "(memory_limit 1.9 MiB, 1 thread, spilling to .tmp)" in result.stderr
    assert "Raise `duckdb.memory_limit`" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_an_events_table_breaking_the_contract_exits_2_naming_table_and_columns(
    tmp_path, generated_dir
):
    (tmp_path / "events.csv").write_text(
        "customer_id,occurred_at,event_type\nC0000001,2024-01-01,session\n,someday,\n",
        encoding="utf-8",
    )
    config = write_config(
        tmp_path,
        generated_dir,
        data={
            "orders": {"path": str(generated_dir / "orders.parquet")},
            "events": {"path": str(tmp_path / "events.csv")},
        },
    )
    result = invoke("validate", config)
    assert result.exit_code == 2
    assert "events breaks the data contract" in result.stderr
    assert "events.occurred_at" in result.stderr and "events.customer_id" in result.stderr
    assert "events.event_type" in result.stderr
    assert "Traceback" not in result.stderr


def test_kpis_prints_the_table_with_the_activity_definition_and_writes_files(
    tmp_path, generated_dir
):
    import pandas as pd

    config = write_config(tmp_path, generated_dir)
    result = invoke(
        "kpis",
        config,
        "--period",
        "quarter",
        "--out",
        tmp_path / "k.csv",
        "--cohorts",
        tmp_path / "c.parquet",
    )
    assert result.exit_code == 0, result.stderr
    assert "a qualifying order in the 365 days before the date" in result.output
    assert "CRR %" in result.output and "n/a" in result.output
    kpis = pd.read_csv(tmp_path / "k.csv")
    assert len(kpis) == 12 and kpis["crr_pct"].iloc[-1] > 0
    cohorts = pd.read_parquet(tmp_path / "c.parquet")
    assert (cohorts["0"] == 1.0).all()


def test_kpis_refuses_an_unknown_period(tmp_path, generated_dir):
    result = invoke("kpis", write_config(tmp_path, generated_dir), "--period", "week")
    assert result.exit_code == 2
    assert "--period 'week' is not one of month, quarter, year" in result.stderr


def test_results_do_not_depend_on_the_hosts_time_zone(tmp_path, generated_dir):
    """The same data gives the same feature bytes under another TZ: timestamps are read
    as UTC (or in `data.timezone`), never in the host's zone. The orders come as a glob
    of two Parquet files, one with naive times (in `data.timezone`) and one with the
    same kind of times stored as instants."""
    import os

    orders = pd.read_parquet(generated_dir / "orders.parquet")
    parts = tmp_path / "parts"
    parts.mkdir()
    orders.iloc[::2].to_parquet(parts / "orders-1.parquet", index=False)
    aware = orders.iloc[1::2].assign(
        ordered_at=orders["ordered_at"].iloc[1::2].dt.tz_localize("UTC")
    )
    aware.to_parquet(parts / "orders-2.parquet", index=False)
    config = write_config(
        tmp_path / "p",
        generated_dir,
        data={"orders": {"path": str(parts / "orders-*.parquet")}, "timezone": "Europe/Berlin"},
    )
    written = {}
    for zone in ("UTC", "America/New_York"):
        out = tmp_path / f"features-{zone.replace('/', '-')}.csv"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "churnkit",
                "--quiet",
                "features",
                str(config),
                "--out",
                str(out),
            ],
            env={**os.environ, "TZ": zone},
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        written[zone] = out.read_bytes()
    assert written["UTC"] == written["America/New_York"]
