"""End to end on generated data: train into a temporary MLflow store, then score."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from tests.conftest import write_config

from churnkit import tracking
from churnkit.config import load_config
from churnkit.engines.duckdb import build_features
from churnkit.errors import (
    FeatureMismatchError,
    ModelNotFoundError,
    PartitionLockedError,
    StaleDataError,
)
from churnkit.pipelines import run_scoring, run_training
from churnkit.scoring import SCORE_COLUMNS
from churnkit.scoring.output import partition_lock
from churnkit.training.model import ChurnModel


def test_the_model_beats_every_baseline_on_test_pr_auc(trained):
    _, outcome, _ = trained
    metrics = outcome.result.metrics
    assert set(metrics) == {
        "model",
        "model_uncalibrated",
        "crr_baseline",
        "bgnbd_baseline",
        "recency_baseline",
        "rfm_baseline",
    }
    for baseline in ("crr_baseline", "recency_baseline", "rfm_baseline", "bgnbd_baseline"):
        assert metrics["model"]["pr_auc"] > metrics[baseline]["pr_auc"], baseline
    assert metrics["model"]["lift_10"] > metrics["crr_baseline"]["lift_10"]
    assert outcome.result.beats_baseline
    assert outcome.result.model.baseline.segment_column == "rfm_segment"


def test_calibration_never_raises_the_test_calibration_error(trained):
    _, outcome, _ = trained
    metrics = outcome.result.metrics
    assert metrics["model"]["ece"] <= metrics["model_uncalibrated"]["ece"]
    assert metrics["model"]["ece"] < 0.03  # 3,000 customers; the demo's 10,000 reach 0.009
    # `auto`: the deployment fit uses the map with the lowest walk-forward error
    meta = outcome.result.model.metadata
    errors = meta["calibration_ece"]
    assert set(errors) == {"sigmoid", "beta", "none"}
    assert errors["none"] == pytest.approx(metrics["model_uncalibrated"]["ece"], abs=1e-6)
    assert meta["calibration"] == min(errors, key=errors.get)
    assert outcome.result.model.calibration.method == meta["calibration"]
    assert metrics["model"]["ece"] == pytest.approx(errors[meta["calibration"]], abs=1e-6)


def test_the_first_model_is_registered_as_champion_and_challenger(trained):
    cfg, outcome, _ = trained
    tracking.configure(cfg.mlflow, cfg.project_dir)
    client = MlflowClient()
    aliases = client.get_registered_model("churn-test").aliases
    assert aliases == {"champion": 1, "challenger": 1} or aliases == {
        "champion": "1",
        "challenger": "1",
    }
    run = client.get_run(outcome.run.run_id)
    assert run.data.metrics["test_model_pr_auc"] == pytest.approx(
        outcome.result.metrics["model"]["pr_auc"]
    )
    assert "test_crr_baseline_pr_auc" in run.data.metrics
    # a run name that says what ran, and the data it learned from as an MLflow dataset
    data_end = outcome.data_summary.last_order_at.date().isoformat()
    assert run.info.run_name == f"train {data_end}"
    (used,) = run.inputs.dataset_inputs
    assert used.dataset.name == f"labelled snapshots to {data_end}"
    assert json.loads(used.dataset.profile)["num_rows"] == outcome.data_summary.snapshot_rows
    assert outcome.promoted
    assert (outcome.export_dir / "booster.txt").is_file()
    assert outcome.export_dir == cfg.project_dir / "models" / "churn-test" / "v1"
    # readable by another account (the nightly scorer), as the umask allows
    mask = os.umask(0)
    os.umask(mask)
    assert outcome.export_dir.stat().st_mode & 0o777 == 0o777 & ~mask


def test_the_registered_pyfunc_returns_the_bundle_probabilities(trained):
    cfg, outcome, scoring = trained
    tracking.configure(cfg.mlflow, cfg.project_dir)
    pyfunc = mlflow.pyfunc.load_model("models:/churn-test@champion")
    bundle = ChurnModel.load(outcome.export_dir)
    features = build_features(
        pd.read_parquet(cfg.data.orders.path),
        [dt.date(2025, 6, 1)],
        bundle.feature_spec,
    )
    assert len(features) > 500
    np.testing.assert_allclose(pyfunc.predict(features).to_numpy(), bundle.predict_proba(features))
    assert bundle.predict_proba(features.head(0)).shape == (0,)
    with pytest.raises(FeatureMismatchError):
        pyfunc.predict(features.rename(columns={"recency_days": "days_since"}))
    # a signature MLflow enforces, and an input example that satisfies it
    signature = pyfunc.metadata.get_input_schema()
    assert "recency_days" in signature.input_names() and "as_of" in signature.input_names()
    types = {spec.name: spec.type.name for spec in signature.inputs}
    assert types["recency_days"] == "double"
    assert all(types[name] == "string" for name in bundle.feature_spec.attributes)
    example = pyfunc.input_example
    assert example is not None and len(example) == 5
    assert pyfunc.predict(example).between(0, 1).all()


def test_loading_the_registered_model_runs_no_pickle(trained, monkeypatch):
    """A pickle planted in the artifact store would run on load; the model names churnkit's
    own loader module instead and holds no pickle for MLflow to open."""
    import pickle

    import cloudpickle

    cfg, _, _ = trained
    tracking.configure(cfg.mlflow, cfg.project_dir)
    local = Path(mlflow.artifacts.download_artifacts("models:/churn-test@champion"))
    assert not [p.name for p in local.rglob("*") if p.suffix in {".pkl", ".pickle", ".py"}]
    flavor = mlflow.models.Model.load(local).flavors["python_function"]
    assert flavor["loader_module"] == "churnkit.tracking" and flavor["data"] == "data/bundle"

    def refuse(*args, **kwargs):
        raise AssertionError("a pickle was opened")

    for module in (pickle, cloudpickle):
        monkeypatch.setattr(module, "load", refuse)
        monkeypatch.setattr(module, "loads", refuse)
    pyfunc = mlflow.pyfunc.load_model("models:/churn-test@champion")
    assert pyfunc.predict(pyfunc.input_example).between(0, 1).all()


def test_a_tampered_registered_model_is_refused_on_load(trained, tmp_path):
    cfg, _, _ = trained
    tracking.configure(cfg.mlflow, cfg.project_dir)
    local = Path(
        mlflow.artifacts.download_artifacts("models:/churn-test@champion", dst_path=tmp_path)
    )
    booster = local / "data" / "bundle" / "booster.txt"
    text = booster.read_text()
    booster.write_text(text[: len(text) // 2])  # a truncated copy: LightGBM would crash on it
    with pytest.raises(ModelNotFoundError, match="does not match the checksum"):
        mlflow.pyfunc.load_model(str(local))


def test_scoring_writes_a_ranked_partition_with_a_manifest(trained):
    cfg, _, scoring = trained
    ranked = pd.read_parquet(scoring.partition / "scores.parquet")
    assert list(ranked.columns) == SCORE_COLUMNS
    assert scoring.partition.name == "as_of=2026-01-01"  # the day after the last order
    assert ranked["rank"].tolist() == list(range(1, len(ranked) + 1))
    assert ranked["churn_probability"].is_monotonic_decreasing
    assert ranked["churn_probability"].between(0, 1).all()
    assert (ranked["model_version"] == "1").all()
    assert scoring.manifest["rows"] == len(ranked)
    assert len(pd.read_csv(scoring.partition / "at_risk.csv")) == len(ranked)
    leftovers = [p.name for p in cfg.scoring.output_dir.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_rescoring_the_same_as_of_replaces_the_partition_with_the_same_bytes(trained):
    cfg, _, first = trained
    before = {n: (first.partition / n).read_bytes() for n in ("scores.parquet", "at_risk.csv")}
    second = run_scoring(cfg, as_of=first.as_of)
    assert second.partition == first.partition
    for name, content in before.items():
        assert (second.partition / name).read_bytes() == content


def test_scoring_refuses_stale_data_naming_the_dates(trained):
    cfg, _, _ = trained
    with pytest.raises(
        StaleDataError, match=r"data ends on 2025-12-31, 31 days before .* 2026-01-31"
    ):
        run_scoring(cfg, as_of=dt.date(2026, 1, 31))


def test_a_locked_partition_is_refused_naming_the_holder(trained):
    cfg, _, scoring = trained
    with (
        partition_lock(cfg.scoring.output_dir, scoring.as_of),
        pytest.raises(PartitionLockedError, match="is being written by process"),
    ):
        run_scoring(cfg, as_of=scoring.as_of)


def test_the_same_config_twice_gives_the_same_model_and_at_risk_file(
    tmp_path, generated_dir, fresh_store
):
    files = []
    for name in ("first", "second"):
        fresh_store(tmp_path / name)
        cfg = load_config(write_config(tmp_path / name, generated_dir))
        outcome = run_training(cfg, config_text="")
        scoring = run_scoring(cfg)
        files.append(
            (
                (outcome.export_dir / "booster.txt").read_bytes(),
                (scoring.partition / "at_risk.csv").read_bytes(),
                (scoring.partition / "scores.parquet").read_bytes(),
                outcome.result.metrics,
                outcome.result.crr_difference,
            )
        )
    assert files[0] == files[1]


def test_a_second_model_that_is_not_better_stays_challenger(project):
    first = run_training(project, config_text="")
    second = run_training(project, config_text="")  # same data and seed: not better
    assert first.promoted and not second.promoted
    assert (
        "does not beat champion v1 on the walk-forward test dates both had, "
        "2025-08-01, 2025-09-01, 2025-10-01" in second.promotion_reason
    )
    client = MlflowClient()
    aliases = {k: str(v) for k, v in client.get_registered_model("churn-test").aliases.items()}
    assert aliases == {"champion": "1", "challenger": "2"}


def test_scoring_from_an_exported_bundle_needs_no_tracking_store(trained, tmp_path):
    cfg, outcome, first = trained
    bundle = tmp_path / "bundle"
    shutil.copytree(outcome.export_dir, bundle)
    raw = cfg.model_dump(mode="json")
    raw["mlflow"] = {"tracking_uri": "sqlite:////nonexistent/dir/mlflow.db"}
    raw["scoring"] = {"model": str(bundle), "output_dir": str(tmp_path / "scores")}
    from churnkit.config import config_from_dict

    offline = config_from_dict(raw, base_dir=tmp_path)
    scoring = run_scoring(offline, as_of=first.as_of)
    assert (scoring.partition / "at_risk.csv").read_bytes() == (
        first.partition / "at_risk.csv"
    ).read_bytes()


def test_the_crr_difference_interval_is_above_zero_printed_and_in_mlflow(trained):
    cfg, outcome, _ = trained
    diff = outcome.result.crr_difference
    assert diff["ci_low"] > 0 and diff["ci_low"] < diff["difference"] < diff["ci_high"]
    assert diff["difference"] == pytest.approx(
        outcome.result.metrics["model"]["pr_auc"] - outcome.result.metrics["crr_baseline"]["pr_auc"]
    )
    tracking.configure(cfg.mlflow, cfg.project_dir)
    metrics = MlflowClient().get_run(outcome.run.run_id).data.metrics
    assert metrics["test_model_minus_crr_pr_auc_ci_low"] == pytest.approx(diff["ci_low"])
    assert metrics["test_model_minus_crr_pr_auc_ci_high"] == pytest.approx(diff["ci_high"])


def test_the_run_carries_figures_and_a_model_card(trained, tmp_path):
    cfg, outcome, _ = trained
    tracking.configure(cfg.mlflow, cfg.project_dir)
    client = MlflowClient()
    figures = {a.path for a in client.list_artifacts(outcome.run.run_id, "figures")}
    assert figures == {
        f"figures/{stem}.png"
        for stem in ("roc", "precision_recall", "calibration", "gains_lift", "feature_importance")
    }
    card_path = client.download_artifacts(outcome.run.run_id, "model_card.md", str(tmp_path))
    card = Path(card_path).read_text(encoding="utf-8")
    assert card.startswith("# Model card: churn-test v1")
    for section in (
        "## Intended use",
        "## Data",
        "## Label",
        "## Metrics against baselines",
        "## Calibration",
        "## Top features",
        "## Limitations",
    ):
        assert section in card
    assert f"{outcome.result.metrics['model']['pr_auc']:.4f}" in card
    assert client.get_model_version("churn-test", "1").description == card
    assert client.get_run(outcome.run.run_id).data.tags["churnkit.force_promote"] == "false"


def test_force_promote_makes_a_worse_model_champion_and_is_recorded(project):
    first = run_training(project, config_text="")
    forced = run_training(project, config_text="", force_promote=True)
    assert first.promoted and forced.promoted
    assert forced.promotion_reason.startswith("forced with --force-promote; otherwise:")
    client = MlflowClient()
    aliases = {k: str(v) for k, v in client.get_registered_model("churn-test").aliases.items()}
    assert aliases == {"champion": "2", "challenger": "2"}
    assert client.get_run(forced.run.run_id).data.tags["churnkit.force_promote"] == "true"
    assert (
        client.get_model_version("churn-test", "2").tags["churnkit.promotion"].startswith("forced")
    )


def test_an_unreachable_tracking_server_exits_before_writing_anything(tmp_path, generated_dir):
    from churnkit.errors import ConfigError

    root = tmp_path / "p"
    cfg = load_config(
        write_config(root, generated_dir, mlflow={"tracking_uri": "http://127.0.0.1:9"})
    )
    with pytest.raises(
        ConfigError,
        match=r"cannot reach the MLflow tracking server "
        r"http://127.0.0.1:9 .*Nothing was written",
    ):
        run_training(cfg, config_text="")
    assert sorted(p.name for p in root.iterdir()) == ["churnkit.yaml"]


def test_the_logged_dataset_schema_is_mlflows_own_computed_without_a_python_loop():
    """MLflow infers a dataset's schema by testing every value in Python (most of an
    hour for 5.9M labelled rows); churnkit gives it the same schema, computed vectorised."""
    from mlflow.types.utils import _infer_schema

    from churnkit.tracking import dataset_schema

    frame = pd.DataFrame(
        {
            "recency_days": [1.0, np.nan, 3.0] * 700,
            "orders_lifetime": np.arange(2100.0),
            "country": ["DE", None, "FR"] * 700,
            "segment": ["active"] * 2100,
            "as_of": pd.to_datetime(["2025-01-01"] * 2099 + [None]),
            "churned": np.arange(2100) % 2,
        }
    )
    frame.loc[1500, "orders_lifetime"] = np.nan  # missing only after the first 1000 rows
    assert dataset_schema(frame) == _infer_schema(frame)
    assert not dataset_schema(frame).inputs[1].required


def test_the_logged_dataset_digest_is_mlflows_own_without_typing_every_value():
    from mlflow.data.digest_utils import compute_pandas_digest

    from churnkit.tracking import dataset_digest

    n = 12_000  # more than the 10,000 rows the digest hashes
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "recency_days": np.arange(n, dtype="float32"),
            "country": pd.Categorical(["DE", None, "FR"] * (n // 3)),
            "segment": pd.Categorical(["active", "lapsing"] * (n // 2)),
            "churned": (np.arange(n) % 2).astype("int8"),
        }
    )
    assert dataset_digest(frame) == compute_pandas_digest(frame)
    assert dataset_digest(frame) != dataset_digest(frame.iloc[:-1])
