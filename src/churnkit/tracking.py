"""MLflow: the only module that imports it. Log runs, register, promote, load models.

The tracking URI is always set explicitly: ``mlflow.tracking_uri`` from the config,
else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<project_dir>/mlflow.db`` with
artifacts under ``<project_dir>/mlruns``.

Registry: each training run registers a version with alias ``challenger``; alias
``champion`` is moved to it by :func:`promote` only when the pipeline decided so.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import mlflow.data
import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from churnkit.config import Config, MlflowConfig
from churnkit.errors import ConfigError, ModelNotFoundError
from churnkit.training import SCORER_LABELS, TrainingResult
from churnkit.training.model import ChurnModel

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "ChurnPyfunc",
    "LoggedRun",
    "champion_version",
    "check_reachable",
    "configure",
    "load_model",
    "log_monitoring_run",
    "log_training_run",
    "promote",
    "resolve_tracking_uri",
    "spark_probability_udf",
    "training_run_details",
]

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
_BUNDLE = "bundle"
_REQUIREMENTS = ("lightgbm", "pandas", "numpy", "scikit-learn", "pydantic", "pyarrow")


def resolve_tracking_uri(cfg: MlflowConfig, project_dir: Path, env: Mapping[str, str]) -> str:
    """Config URI, else ``$MLFLOW_TRACKING_URI``, else SQLite in the project folder."""
    if cfg.tracking_uri:
        return cfg.tracking_uri
    if env.get("MLFLOW_TRACKING_URI"):
        return env["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{project_dir / 'mlflow.db'}"


def configure(cfg: Config) -> str:
    """Point MLflow at the configured store and return the URI."""
    uri = resolve_tracking_uri(cfg.mlflow, cfg.project_dir, os.environ)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    # MLflow 3 also writes the URI into $MLFLOW_TRACKING_URI; undo that, or the first
    # store configured in a process would override every later config's own.
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before
    return uri


class ChurnPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc: ``predict(features)`` returns churn probabilities.

    It checks feature names (refusing a mismatch) and reorders columns by name, via
    :class:`~churnkit.training.model.ChurnModel`.
    """

    def load_context(self, context: Any) -> None:
        self.model = ChurnModel.load(Path(context.artifacts[_BUNDLE]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.Series:
        return pd.Series(self.model.predict_proba(model_input), name="churn_probability")


@dataclass(frozen=True)
class LoggedRun:
    """What a training run left in MLflow."""

    run_id: str
    experiment_id: str
    model_name: str
    version: str
    tracking_uri: str


def check_reachable(cfg: Config) -> str:
    """Fail fast, before any work, when the tracking store cannot be reached.

    Raises
    ------
    ConfigError
        Naming the URI, when an HTTP server does not answer its health check within a
        few seconds or a database store cannot be opened.
    """
    uri = configure(cfg)
    if uri.startswith(("http://", "https://")):
        import requests

        try:
            requests.get(f"{uri.rstrip('/')}/health", timeout=5).raise_for_status()
        except requests.RequestException as err:
            raise ConfigError(
                f"cannot reach the MLflow tracking server {uri} ({type(err).__name__}); start "
                "it, or fix `mlflow.tracking_uri` / $MLFLOW_TRACKING_URI. Nothing was written."
            ) from None
        return uri
    try:
        MlflowClient().search_experiments(max_results=1)
    except Exception as err:  # noqa: BLE001 - any store error means: unusable, say which
        raise ConfigError(
            f"cannot open the MLflow tracking store {uri}: {str(err).splitlines()[0]}. Fix "
            "`mlflow.tracking_uri` / $MLFLOW_TRACKING_URI. Nothing was written."
        ) from None
    return uri


_DIFFERENCE_SUFFIXES = (("difference", ""), ("ci_low", "_ci_low"), ("ci_high", "_ci_high"))


def log_training_run(
    result: TrainingResult,
    cfg: Config,
    *,
    config_text: str,
    data_summary: Mapping[str, Any],
    force_promote: bool = False,
    dataset: pd.DataFrame | None = None,
) -> LoggedRun:
    """Log config, data, metrics, figures, the model card and the model; register it.

    The new version gets alias ``challenger`` and the model card as its description.
    The run is marked FAILED and nothing is registered if anything raises before the
    model is logged.
    """
    from churnkit.report.figures import training_figures
    from churnkit.report.model_card import model_card

    uri = configure(cfg)
    experiment_id = _experiment_id(cfg, uri)
    name = cfg.mlflow.registered_model_name
    data_end = str(data_summary.get("last_order_at", ""))[:10]
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train {data_end}") as run:
        mlflow.set_tag("churnkit.force_promote", str(force_promote).lower())
        if dataset is not None:  # what the model learned from, as an MLflow dataset
            with warnings.catch_warnings():  # hints about source kinds and integer schemas
                warnings.simplefilter("ignore", UserWarning)
                logged = mlflow.data.from_pandas(
                    dataset,
                    name=f"labelled snapshots to {data_end}",
                    targets="churned",
                    source=str(cfg.data.orders.url or cfg.data.orders.path),
                )
                mlflow.log_input(logged, context="training")
        mlflow.log_params(_flatten(cfg.model_dump(mode="json", exclude={"data"})))
        mlflow.log_params(_flatten({"data": cfg.data.model_dump(mode="json")}))
        mlflow.log_text(config_text, "config/config.yaml")
        mlflow.log_dict(cfg.model_dump(mode="json"), "config/resolved.json")
        mlflow.log_dict(dict(data_summary), "data/summary.json")
        mlflow.log_text(result.snapshots.to_csv(index=False), "data/snapshots.csv")
        mlflow.log_text(result.per_snapshot.to_csv(index=False), "metrics/per_snapshot.csv")
        mlflow.log_dict(
            {
                "feature_names": result.model.feature_names,
                "feature_spec": result.model.feature_spec.model_dump(mode="json"),
            },
            "model_schema/features.json",
        )
        mlflow.log_metrics(
            {
                f"test_{scorer}_{metric}": value
                for scorer, values in result.metrics.items()
                for metric, value in values.items()
            }
        )
        mlflow.log_metric("best_iteration", result.model.metadata["best_iteration"])
        mlflow.log_metric("refit_rounds", result.model.metadata["refit_rounds"])
        mlflow.log_metrics(
            {
                f"tonight_{scorer}_{metric}_{key}": value
                for scorer, intervals in result.tonight.items()
                for metric, values in intervals.items()
                for key, value in values.items()
                if key != "estimate"
            }
        )
        mlflow.set_tag("churnkit.best_baseline", result.best_baseline)
        mlflow.set_tag("churnkit.calibration", result.model.metadata["calibration"])
        mlflow.log_metrics(
            {
                f"test_ece_{method}_calibration": ece
                for method, ece in result.model.metadata.get("calibration_ece", {}).items()
            }
        )
        mlflow.log_metrics(
            {
                f"test_model_minus_{name.removesuffix('_baseline')}_{metric}{suffix}": diff[key]
                for name, diffs in result.comparisons.items()
                for metric, diff in diffs.items()
                for key, suffix in _DIFFERENCE_SUFFIXES
            }
        )
        with tempfile.TemporaryDirectory() as tmp:
            predictions = Path(tmp) / "test_predictions.parquet"
            result.test_predictions.to_parquet(predictions, index=False)
            mlflow.log_artifact(str(predictions), "evaluation")
        card_body = model_card(result, cfg, data_summary)
        for stem, figure in training_figures(result).items():
            mlflow.log_figure(figure, f"figures/{stem}.png")
        chatter = io.StringIO()  # MLflow prints registration notices to stderr
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stderr(chatter):
            bundle = result.model.save(Path(tmp) / _BUNDLE)
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=ChurnPyfunc(),
                artifacts={_BUNDLE: str(bundle)},
                pip_requirements=_pip_requirements(),
                registered_model_name=name,
            )
        logger.debug("mlflow: %s", chatter.getvalue().strip())
        version = str(info.registered_model_version)
        card = f"# Model card: {name} v{version}\n\n{card_body}"
        mlflow.log_text(card, "model_card.md")
        client = MlflowClient()
        client.update_model_version(name, version, description=card)
        client.set_registered_model_alias(name, CHALLENGER, version)
        mlflow.set_tag("churnkit.model_version", version)
    return LoggedRun(run.info.run_id, experiment_id, name, version, uri)


def log_monitoring_run(
    cfg: Config,
    *,
    as_of: str,
    metrics: Mapping[str, Mapping[str, float]],
    manifest: Mapping[str, Any],
    tiers: pd.DataFrame,
) -> str:
    """Log a backtest of one night's list as a run tagged ``churnkit.run_type=monitoring``.

    Metrics are named ``backtest_<scorer>_<metric>``; the run records the partition's
    as_of, model name, version and training run id.
    """
    uri = configure(cfg)
    experiment_id = _experiment_id(cfg, uri)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"backtest {as_of}") as run:
        mlflow.set_tags(
            {
                "churnkit.run_type": "monitoring",
                "churnkit.as_of": as_of,
                "churnkit.model_name": str(manifest.get("model_name", "")),
                "churnkit.model_version": str(manifest.get("model_version", "")),
                "churnkit.training_run_id": str(manifest.get("run_id", "")),
            }
        )
        mlflow.log_params({"as_of": as_of, "horizon_days": cfg.snapshots.horizon_days})
        mlflow.log_metrics(
            {
                f"backtest_{scorer}_{metric}": value
                for scorer, values in metrics.items()
                for metric, value in values.items()
            }
        )
        mlflow.log_text(tiers.to_csv(index=False), "backtest/tiers.csv")
        mlflow.log_dict(dict(manifest), "backtest/manifest.json")
    return run.info.run_id


@dataclass(frozen=True)
class TrainingRunDetails:
    """What the report shows of a training run."""

    metrics: dict[str, dict[str, float]]
    model_card: str | None
    test_predictions: pd.DataFrame | None


def training_run_details(cfg: Config, run_id: str) -> TrainingRunDetails:
    """Test metrics per scorer, the model card and the test predictions of a run.

    Raises
    ------
    ModelNotFoundError
        When the store has no such run.
    """
    configure(cfg)
    client = MlflowClient()
    try:
        run = client.get_run(run_id)
    except MlflowException as err:
        raise ModelNotFoundError(f"no MLflow run {run_id}: {err.message.splitlines()[0]}") from err
    metrics: dict[str, dict[str, float]] = {}
    scorers = sorted(SCORER_LABELS, key=len, reverse=True)  # model_uncalibrated before model
    for key, value in sorted(run.data.metrics.items()):
        scorer = next((s for s in scorers if key.startswith(f"test_{s}_")), None)
        if scorer is not None:
            metrics.setdefault(scorer, {})[key.removeprefix(f"test_{scorer}_")] = value
    with tempfile.TemporaryDirectory() as tmp:
        card = predictions = None
        with contextlib.suppress(MlflowException, OSError):
            card = Path(client.download_artifacts(run_id, "model_card.md", tmp)).read_text(
                encoding="utf-8"
            )
        with contextlib.suppress(MlflowException, OSError):
            path = client.download_artifacts(run_id, "evaluation/test_predictions.parquet", tmp)
            predictions = pd.read_parquet(path)
    return TrainingRunDetails(metrics, card, predictions)


def spark_probability_udf(cfg: Config, spark: Any, model: ChurnModel) -> Any:
    """A Spark UDF of calibrated churn probabilities over a struct of feature columns.

    For a registry or run URI (``scoring.model``, default the champion) it is
    ``mlflow.pyfunc.spark_udf`` of the registered pyfunc, run in the executors' own
    environment (``env_manager="local"``). For an exported bundle folder, which MLflow
    cannot load, it is a pandas UDF around the same bundle.
    """
    target = cfg.scoring.model or f"models:/{cfg.mlflow.registered_model_name}@{CHAMPION}"
    if target.startswith(("models:/", "runs:/")):
        configure(cfg)
        return mlflow.pyfunc.spark_udf(spark, target, result_type="double", env_manager="local")
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("double")  # type: ignore[call-overload]
    def churn_probability(features: pd.DataFrame) -> pd.Series:
        return pd.Series(model.predict_proba(features))

    return churn_probability


def champion_version(cfg: Config) -> str | None:
    """The version behind alias ``champion``, or None when there is none."""
    configure(cfg)
    try:
        return (
            MlflowClient()
            .get_model_version_by_alias(cfg.mlflow.registered_model_name, CHAMPION)
            .version
        )
    except MlflowException:
        return None


def latest_version(cfg: Config) -> str | None:
    """The newest registered version of the configured model, or None when there is none."""
    configure(cfg)
    try:
        versions = MlflowClient().search_model_versions(
            f"name = '{cfg.mlflow.registered_model_name}'"
        )
    except MlflowException:
        return None
    return str(max(int(v.version) for v in versions)) if versions else None


def promote(cfg: Config, version: str, *, reason: str) -> None:
    """Move alias ``champion`` to ``version`` and record why on the version."""
    configure(cfg)
    client = MlflowClient()
    name = cfg.mlflow.registered_model_name
    client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, "churnkit.promotion", reason)


def load_model(cfg: Config, uri: str | None = None) -> ChurnModel:
    """Load a model from a ``models:/`` URI, or from a bundle folder without MLflow.

    ``uri`` defaults to ``scoring.model`` and then to ``models:/<name>@champion``.

    Raises
    ------
    ModelNotFoundError
        When the registry or the folder has no such model.
    """
    target = uri or cfg.scoring.model or f"models:/{cfg.mlflow.registered_model_name}@{CHAMPION}"
    if not target.startswith(("models:/", "runs:/")):
        path = Path(target)
        if not path.is_absolute():
            path = cfg.project_dir / path
        return ChurnModel.load(path)
    tracking_uri = configure(cfg)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=target))
    except MlflowException as err:
        raise ModelNotFoundError(
            f"no model at {target} in {tracking_uri}: {err.message.splitlines()[0]}. "
            "Train one with `churnkit train CONFIG`, or set `scoring.model` to a bundle "
            "folder under models/."
        ) from err
    model = ChurnModel.load(local / "artifacts" / _BUNDLE)
    model.metadata.update(_registry_metadata(target))
    return model


def export_bundle(model: ChurnModel, models_dir: Path, name: str, version: str) -> Path:
    """Write the bundle to ``models/<name>/v<version>/`` atomically (temp, then rename)."""
    final = models_dir / name / f"v{version}"
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".v{version}-", dir=final.parent))
    try:
        model.save(tmp)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return final


def _registry_metadata(target: str) -> dict[str, str]:
    if not target.startswith("models:/"):
        return {}
    name_alias = target.removeprefix("models:/")
    client = MlflowClient()
    if "@" in name_alias:
        name, alias = name_alias.split("@", 1)
        mv = client.get_model_version_by_alias(name, alias)
    else:
        name, version = name_alias.split("/", 1)
        mv = client.get_model_version(name, version)
    return {"model_name": mv.name, "model_version": str(mv.version), "run_id": mv.run_id or ""}


def _experiment_id(cfg: Config, uri: str) -> str:
    name = cfg.mlflow.experiment
    try:
        experiment = mlflow.get_experiment_by_name(name)
    except MlflowException as err:
        raise ConfigError(f"cannot reach the MLflow tracking store {uri}: {err.message}") from err
    if experiment is not None:
        return experiment.experiment_id
    artifact_location = None
    if uri.startswith("sqlite:"):
        # the default would be ./mlruns relative to wherever the command runs
        artifact_location = (cfg.project_dir / "mlruns").resolve().as_uri()
    return mlflow.create_experiment(name, artifact_location=artifact_location)


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = json.dumps(value) if not isinstance(value, str) else value
    return flat


def _pip_requirements() -> list[str]:
    return [f"{pkg}=={metadata.version(pkg)}" for pkg in _REQUIREMENTS] + [
        f"mlflow=={metadata.version('mlflow')}"
    ]
