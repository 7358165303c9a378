"""MLflow: the only module that imports it. Log runs, register, promote, load models.

The tracking URI is always set explicitly: ``mlflow.tracking_uri`` from the config,
else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<project_dir>/mlflow.db`` with
artifacts under ``<project_dir>/mlruns``.

Registry: each training run registers a version with alias ``challenger``; alias
``champion`` is moved to it by :func:`promote` only when the pipeline decided so.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import os
import re
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
import numpy as np
import pandas as pd
from mlflow.data.digest_utils import MAX_ROWS, get_normalized_md5_digest
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import ColSpec, Schema

from churnkit.config import MlflowConfig
from churnkit.errors import ConfigError, ModelNotFoundError
from churnkit.scoring.backtest import Backtest
from churnkit.scoring.readout import Readout
from churnkit.training import CRR_BASELINE, SCORER_LABELS, TrainingResult
from churnkit.training.model import ChurnModel

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "ChurnPyfunc",
    "LoggedRun",
    "Tracker",
    "TrainingRunDetails",
    "configure",
    "export_bundle",
    "model_input",
    "model_signature",
    "resolve_tracking_uri",
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


def configure(settings: MlflowConfig, project_dir: Path) -> str:
    """Point MLflow's fluent API at the configured store and return the URI."""
    uri = resolve_tracking_uri(settings, project_dir, os.environ)
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


class ChurnPyfunc:
    """What ``mlflow.pyfunc.load_model`` returns for a churnkit model: ``predict(features)``
    gives churn probabilities, checking feature names (refusing a mismatch) and ordering
    columns by name, via :class:`~churnkit.training.model.ChurnModel`.

    The registered model names this module as its loader (:func:`_load_pyfunc`), so
    loading it reads the bundle's text and JSON files, checksum-verified, and runs only
    the installed churnkit: no pickle and no code from the artifact store.
    """

    def __init__(self, model: ChurnModel) -> None:
        self.model = model

    def predict(self, model_input: pd.DataFrame, params: Any = None) -> pd.Series:
        return pd.Series(self.model.predict_proba(model_input), name="churn_probability")


def _load_pyfunc(path: str) -> ChurnPyfunc:
    """MLflow's loader-module hook: ``path`` is the model's ``data/bundle`` folder."""
    return ChurnPyfunc(ChurnModel.load(Path(path)))


def model_signature(model: ChurnModel) -> ModelSignature:
    """What the registered pyfunc takes and gives: every feature as a double (a text for
    attributes), the BG/NBD feature optional (computed from ``as_of`` and the RFM
    features when absent); churn probabilities out. Every column is optional so that a
    missing one is named by churnkit's own check, with the features it expects."""
    attributes = set(model.feature_spec.attributes)
    columns = [ColSpec("datetime", "as_of", required=False)]
    columns += [
        ColSpec("string" if name in attributes else "double", name, required=False)
        for name in model.feature_names
    ]
    return ModelSignature(
        inputs=Schema(columns), outputs=Schema([ColSpec("double", "churn_probability")])
    )


def dataset_schema(frame: pd.DataFrame) -> Schema | None:
    """The MLflow schema of ``frame``: column types inferred from its first rows, and a
    column required when no row misses it.

    MLflow's own inference tests every value for a missing one in a Python loop, which
    took most of an hour for the 5.9M labelled rows of 12 snapshots of 1M customers;
    ``notna`` gives the same answer in a second. Types come from the column dtypes.
    """
    try:
        types = mlflow.models.infer_signature(frame.head(1000)).inputs
    except Exception:  # noqa: BLE001 - as MLflow's own inference: no schema, not no run
        return None
    # column by column: a whole-frame mask would be one byte per cell of the table
    return Schema(
        [
            ColSpec(type=c.type, name=c.name, required=bool(frame[c.name].notna().all()))
            for c in types.inputs
        ]
    )


def dataset_digest(frame: pd.DataFrame) -> str:
    """MLflow's digest of a pandas dataset: its first rows, its length and its column names.

    MLflow's own ``compute_pandas_digest`` finds the text columns by the type of every
    value of the whole frame, not of the rows it hashes: for 5.8M labelled rows × 52
    columns a frame of 300M Python objects, 2.8 GB more at the end of training. Here the
    rows it hashes decide, which for a column of text gives the same answer.
    """
    head = frame.head(MAX_ROWS)
    strings = head.columns[(head.map(type) == str).all(axis=0)]  # noqa: E721 - as MLflow
    numbers = head.select_dtypes(include=[np.number]).columns
    return get_normalized_md5_digest(
        [pd.util.hash_pandas_object(head[strings.union(numbers)]).values, np.int64(len(frame))]
        + [str(column).encode() for column in frame.columns]
    )


def model_input(model: ChurnModel, features: pd.DataFrame) -> pd.DataFrame:
    """``features`` as the signature types them (the input example of a logged model)."""
    attributes = set(model.feature_spec.attributes)
    frame = pd.DataFrame({"as_of": pd.to_datetime(features["as_of"])})
    for name in model.feature_names:
        if name not in features:
            continue  # the BG/NBD feature: computed by the model
        values = features[name]
        frame[name] = (
            values.astype(object).where(values.notna(), None)
            if name in attributes
            else values.astype("float64")
        )
    return frame.reset_index(drop=True)


@dataclass(frozen=True)
class LoggedRun:
    """What a training run left in MLflow."""

    run_id: str
    experiment_id: str
    model_name: str
    version: str
    tracking_uri: str


class Tracker:
    """One MLflow tracking store and the registered model of a config.

    Built from the ``mlflow:`` settings and the project folder (for the default SQLite
    store and for bundle paths), never from the whole config: what a run logs is handed
    to it. It points MLflow's fluent API at its store once, when built; registry and
    run lookups go through its own client.
    """

    def __init__(self, settings: MlflowConfig, project_dir: Path) -> None:
        self.settings = settings
        self.project_dir = project_dir
        self.name = settings.registered_model_name
        self.uri = configure(settings, project_dir)
        if self.remote:
            # MLflow's defaults (7 retries with backoff, 120 s per request) kept a nightly
            # `score` against a dead server alive for minutes; a user's own settings win
            for name, value in _HTTP_BOUNDS.items():
                os.environ.setdefault(name, value)
            # MLflow prints run links to stdout, which may carry churnkit's JSON output
            os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

    @functools.cached_property
    def client(self) -> MlflowClient:
        """Made on first use: opening a SQLite store creates it, which a command that
        only reads (or scores from a bundle) must not do."""
        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    @property
    def remote(self) -> bool:
        """Whether the store is a tracking server (reached over HTTP)."""
        return self.uri.startswith(("http://", "https://"))

    def check_reachable(self, *, reading: bool = False) -> str:
        """Fail fast, before any work, when the tracking store cannot be reached.
        ``reading``: for a command that only reads, a SQLite store that does not exist
        yet is not created.

        Raises
        ------
        ConfigError
            Naming the URI, when an HTTP server does not answer its health check within
            a few seconds or a database store cannot be opened.
        ModelNotFoundError
            When reading from a SQLite store that does not exist yet.
        """
        uri = self.uri
        database = Path(uri.removeprefix("sqlite:///"))
        if reading and uri.startswith("sqlite:///") and not database.exists():
            raise ModelNotFoundError(
                f"no MLflow store at {database} yet, so no model: train one with `churnkit "
                "train CONFIG`, or set `scoring.model` to a bundle folder under models/"
            )
        if self.remote:
            import requests

            try:
                requests.get(f"{uri.rstrip('/')}/health", timeout=5).raise_for_status()
            except requests.RequestException as err:
                raise ConfigError(
                    f"cannot reach the MLflow tracking server {uri} ({type(err).__name__}); "
                    "start it, or fix `mlflow.tracking_uri` / $MLFLOW_TRACKING_URI. Nothing "
                    "was written."
                ) from None
            return uri
        try:
            self.client.search_experiments(max_results=1)
        except Exception as err:  # noqa: BLE001 - any store error means: unusable, say which
            raise ConfigError(
                f"cannot open the MLflow tracking store {uri}: {str(err).splitlines()[0]}. Fix "
                "`mlflow.tracking_uri` / $MLFLOW_TRACKING_URI. Nothing was written."
            ) from None
        return uri

    def log_training_run(
        self,
        result: TrainingResult,
        *,
        config: Mapping[str, Any],
        config_text: str,
        data_summary: Mapping[str, Any],
        model_card: str,
        source: str,
        force_promote: bool = False,
        dataset: pd.DataFrame | None = None,
    ) -> LoggedRun:
        """Log config, data, metrics, figures, the model card and the model; register it.

        ``config`` is the resolved config as JSON-ready values (logged as parameters,
        the data section apart); ``source`` names where the orders came from. The model
        is registered last, as a version with alias ``challenger`` and the model card as
        its description.

        Raises
        ------
        ConfigError
            Naming the URI, when the store fails on the way (a tracking server that stops
            answering): the run is marked FAILED and a version registered on the way is
            deleted where the store still answers; the message says what it could not undo.
        """
        try:
            experiment_id = self._experiment_id()
            data_end = str(data_summary.get("last_order_at", ""))[:10]
            run = mlflow.start_run(experiment_id=experiment_id, run_name=f"train {data_end}")
        except (MlflowException, OSError) as err:
            raise self._failed("starting the training run", err, "nothing was logged") from None
        run_id = run.info.run_id
        registered: list[str] = []
        try:
            model_uri = self._log_training_artifacts(
                result,
                config=config,
                config_text=config_text,
                data_summary=data_summary,
                source=source,
                force_promote=force_promote,
                dataset=dataset,
                data_end=data_end,
            )
            version = self._register(model_uri, model_card, registered)
            mlflow.end_run()
        except BaseException as err:
            undone = self.withdraw(run_id, registered[0] if registered else None)
            if isinstance(err, (MlflowException, OSError)):
                raise self._failed("logging the training run", err, undone) from None
            raise
        return LoggedRun(run_id, experiment_id, self.name, version, self.uri)

    def complete(
        self, run: LoggedRun, model: ChurnModel, models_dir: Path, *, promotion: str | None
    ) -> Path:
        """Stamp ``model`` with its registered name, version and run; export its bundle to
        ``models/<name>/v<version>/`` and, with a ``promotion`` reason, make it champion.
        When either fails, the bundle folder is removed, the version deleted and its run
        marked FAILED: no version stays registered without its bundle."""
        model.metadata.update(
            model_name=run.model_name, model_version=run.version, run_id=run.run_id
        )
        final = models_dir / run.model_name / f"v{run.version}"
        try:
            export_bundle(model, models_dir, run.model_name, run.version)
            if promotion is not None:
                self.promote(run.version, reason=promotion)
        except BaseException as err:
            shutil.rmtree(final, ignore_errors=True)
            undone = self.withdraw(run.run_id, run.version)
            if isinstance(err, MlflowException):
                raise self._failed(f"completing version {run.version}", err, undone) from None
            raise
        return final

    def withdraw(self, run_id: str, version: str | None) -> str:
        """Best effort after a failure: delete ``version`` (when one was registered) and
        mark the run FAILED. Returns what was done, or what is left to do by hand."""
        left = []
        if version is not None:
            try:
                self.client.delete_model_version(self.name, version)
            except Exception:  # noqa: BLE001 - the store is failing; say what is left
                left.append(f"delete version {version} of {self.name}")
        try:
            if mlflow.active_run() is not None:
                mlflow.end_run("FAILED")  # leaves no active run behind even when it raises
            else:
                self.client.set_terminated(run_id, "FAILED")
        except Exception:  # noqa: BLE001
            left.append(f"mark run {run_id} FAILED")
        if left:
            return f"the store could not be told to {' or '.join(left)}: do it once it is back"
        kept = "" if version is None else f", version {version} was deleted again"
        return f"run {run_id} was marked FAILED{kept}; no model version was kept"

    def _failed(self, what: str, err: BaseException, undone: str) -> ConfigError:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        request = re.match(r"API request to \S+?(/api/\S+) failed with exception", first)
        if request:  # a urllib3 retry chain: the endpoint and the innermost error suffice
            causes = re.findall(r"(\w+(?:Error|Disconnected|Timeout|Refused))\b", first)
            first = f"{request.group(1)}: {causes[-1] if causes else 'no answer'}"
        first = first[:300]
        return ConfigError(
            f"the MLflow tracking store {self.uri} failed while {what} ({first}); {undone}. "
            "Check the server (or `mlflow.tracking_uri`) and run `churnkit train` again."
        )

    def _register(self, model_uri: str, model_card: str, registered: list[str]) -> str:
        """Register the logged model; then its card and alias ``challenger``. The version
        is appended to ``registered`` as soon as it exists, for cleaning up."""
        chatter = io.StringIO()  # MLflow prints registration notices to stderr
        with contextlib.redirect_stderr(chatter):
            version = str(
                mlflow.register_model(model_uri, self.name, await_registration_for=30).version
            )
        logger.debug("mlflow: %s", chatter.getvalue().strip())
        registered.append(version)
        card = f"# Model card: {self.name} v{version}\n\n{model_card}"
        self.client.update_model_version(self.name, version, description=card)
        self.client.set_registered_model_alias(self.name, CHALLENGER, version)
        mlflow.log_text(card, "model_card.md")
        mlflow.set_tag("churnkit.model_version", version)
        return version

    def _log_training_artifacts(
        self,
        result: TrainingResult,
        *,
        config: Mapping[str, Any],
        config_text: str,
        data_summary: Mapping[str, Any],
        source: str,
        force_promote: bool,
        dataset: pd.DataFrame | None,
        data_end: str,
    ) -> str:
        """Everything of a training run but the registration, into the active run;
        returns the logged model's URI."""
        from churnkit.report.figures import training_figures

        mlflow.set_tag("churnkit.force_promote", str(force_promote).lower())
        if dataset is not None:  # what the model learned from, as an MLflow dataset
            with warnings.catch_warnings():  # hints about source kinds and integer schemas
                warnings.simplefilter("ignore", UserWarning)
                logged = mlflow.data.from_pandas(
                    dataset,
                    name=f"labelled snapshots to {data_end}",
                    targets="churned",
                    source=source,
                    digest=dataset_digest(dataset),
                )
                logged.__dict__["schema"] = dataset_schema(dataset)  # its cached_property
                mlflow.log_input(logged, context="training")
        mlflow.log_params(_flatten({k: v for k, v in config.items() if k != "data"}))
        mlflow.log_params(_flatten({"data": config.get("data", {})}))
        mlflow.log_text(config_text, "config/config.yaml")
        mlflow.log_dict(dict(config), "config/resolved.json")
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
        mlflow.log_metrics(_training_metrics(result))
        mlflow.set_tag("churnkit.best_baseline", result.best_baseline)
        mlflow.set_tag("churnkit.calibration", result.model.metadata["calibration"])
        with tempfile.TemporaryDirectory() as tmp:
            predictions = Path(tmp) / "test_predictions.parquet"
            result.test_predictions.to_parquet(predictions, index=False)
            mlflow.log_artifact(str(predictions), "evaluation")
        for stem, figure in training_figures(result).items():
            mlflow.log_figure(figure, f"figures/{stem}.png")
        with tempfile.TemporaryDirectory() as tmp:
            bundle = result.model.save(Path(tmp) / _BUNDLE)
            example = None if dataset is None else model_input(result.model, dataset.head(5))
            info = mlflow.pyfunc.log_model(
                name="model",
                loader_module=__name__,  # loading runs _load_pyfunc: no pickle
                data_path=str(bundle),
                pip_requirements=_pip_requirements(),
                signature=model_signature(result.model),
                input_example=example,
            )
        return str(info.model_uri)

    def log_monitoring_run(
        self,
        backtest: Backtest,
        manifest: Mapping[str, Any],
        *,
        horizon_days: int,
        readout: Readout | None = None,
    ) -> str:
        """Log a backtest of one night's list as a run tagged ``churnkit.run_type=monitoring``.

        Metrics are named ``backtest_<scorer>_<metric>`` (and ``readout_<group>_<column>``
        for a night with a holdout group); the run records the partition's as_of, model
        name, version and training run id.
        """
        self.check_reachable()
        experiment_id = self._experiment_id()
        as_of = str(manifest["as_of"])
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
            mlflow.log_params({"as_of": as_of, "horizon_days": horizon_days})
            mlflow.log_metrics(
                {
                    f"backtest_{scorer}_{metric}": value
                    for scorer, values in backtest.metrics.items()
                    for metric, value in values.items()
                }
            )
            mlflow.log_text(backtest.tiers.to_csv(index=False), "backtest/tiers.csv")
            if readout is not None:  # treated vs held out: metrics and the whole table
                mlflow.log_metrics(readout.to_metrics())
                mlflow.log_text(readout.table.to_csv(index=False), "readout/readout.csv")
            mlflow.log_dict(dict(manifest), "backtest/manifest.json")
        return run.info.run_id

    def training_run_details(self, run_id: str) -> TrainingRunDetails:
        """Test metrics per scorer, the model card and the test predictions of a run.

        Raises
        ------
        ModelNotFoundError
            When the store has no such run.
        """
        self.check_reachable(reading=True)
        client = self.client
        try:
            run = client.get_run(run_id)
        except MlflowException as err:
            raise ModelNotFoundError(
                f"no MLflow run {run_id}: {err.message.splitlines()[0]}"
            ) from err
        metrics: dict[str, dict[str, float]] = {}
        scorers = sorted(SCORER_LABELS, key=len, reverse=True)  # model_uncalibrated first
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

    def spark_probability_udf(self, target: str | None, spark: Any, model: ChurnModel) -> Any:
        """A Spark UDF of calibrated churn probabilities over a struct of feature columns.

        For a registry or run URI (``target``, default the champion) it is
        ``mlflow.pyfunc.spark_udf`` of the registered pyfunc, run in the executors' own
        environment (``env_manager="local"``). For an exported bundle folder, which
        MLflow cannot load, it is a pandas UDF around the same bundle.
        """
        target = target or f"models:/{self.name}@{CHAMPION}"
        if target.startswith(("models:/", "runs:/")):
            return mlflow.pyfunc.spark_udf(spark, target, result_type="double", env_manager="local")
        from pyspark.sql.functions import pandas_udf

        @pandas_udf("double")  # type: ignore[call-overload]
        def churn_probability(features: pd.DataFrame) -> pd.Series:
            return pd.Series(model.predict_proba(features))

        return churn_probability

    def champion_version(self) -> str | None:
        """The version behind alias ``champion``, or None when there is none."""
        try:
            return str(self.client.get_model_version_by_alias(self.name, CHAMPION).version)
        except MlflowException:
            return None

    def champion_metadata(self) -> dict[str, Any] | None:
        """The current champion's metadata (its test metrics), or None without one."""
        version = self.champion_version()
        return (
            None if version is None else self.load_model(f"models:/{self.name}/{version}").metadata
        )

    def latest_version(self) -> str | None:
        """The newest registered version of the model, or None when there is none."""
        try:
            versions = self.client.search_model_versions(f"name = '{self.name}'")
        except MlflowException:
            return None
        return str(max(int(v.version) for v in versions)) if versions else None

    def promote(self, version: str, *, reason: str) -> None:
        """Record why on the version, then move alias ``champion`` to it (last, so that a
        failure leaves the champion where it was)."""
        self.client.set_model_version_tag(self.name, version, "churnkit.promotion", reason)
        self.client.set_registered_model_alias(self.name, CHAMPION, version)

    def load_model(self, uri: str | None = None) -> ChurnModel:
        """Load a model from a ``models:/`` or ``runs:/`` URI, or from a bundle folder
        (relative to the project folder) without MLflow; default: the champion.

        Raises
        ------
        ModelNotFoundError
            When the registry or the folder has no such model.
        """
        target = uri or f"models:/{self.name}@{CHAMPION}"
        if not target.startswith(("models:/", "runs:/")):
            path = Path(target)
            if not path.is_absolute():
                path = self.project_dir / path
            return ChurnModel.load(path)
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=target))
        except MlflowException as err:
            raise ModelNotFoundError(
                f"no model at {target} in {self.uri}: {err.message.splitlines()[0]}. "
                "Train one with `churnkit train CONFIG`, or set `scoring.model` to a bundle "
                "folder under models/."
            ) from err
        # data/: models logged with the loader module; artifacts/: versions logged before,
        # as a pickled PythonModel (their bundle is read here as files, never unpickled)
        folder = local / "data" / _BUNDLE
        model = ChurnModel.load(folder if folder.exists() else local / "artifacts" / _BUNDLE)
        model.metadata.update(self._registry_metadata(target))
        return model

    def load_scoring_model(self, configured: str | None) -> ChurnModel:
        """The model a night is scored with: ``configured`` (``scoring.model``) or the
        champion; with neither, the best baseline of the latest registered version, so
        the nightly list never dies for lack of a model.

        The fallback applies only when nothing is configured and the registry has
        versions but no champion (every version so far missed the quality gate).
        """
        registry = configured is None or configured.startswith(("models:/", "runs:/"))
        if registry:
            self.check_reachable(reading=True)  # a dead server: exit 2 in seconds, naming it
        if configured is not None or self.champion_version() is not None:
            return self.load_model(configured)
        latest = self.latest_version()
        if latest is None:
            return self.load_model()  # raises, naming the missing champion
        model = self.load_model(f"models:/{self.name}/{latest}")
        baseline = model.metadata.get("best_baseline", CRR_BASELINE)
        served = model.serving_baseline(baseline)
        served.metadata = {
            **model.metadata,
            "model_name": f"baseline:{baseline}",
            "model_version": "",
            "fallback_reason": f"no champion: {self.name} v{latest} did not pass the quality gate",
        }
        return served

    def _registry_metadata(self, target: str) -> dict[str, str]:
        if not target.startswith("models:/"):
            return {}
        name_alias = target.removeprefix("models:/")
        if "@" in name_alias:
            name, alias = name_alias.split("@", 1)
            mv = self.client.get_model_version_by_alias(name, alias)
        else:
            name, version = name_alias.split("/", 1)
            mv = self.client.get_model_version(name, version)
        return {"model_name": mv.name, "model_version": str(mv.version), "run_id": mv.run_id or ""}

    def _experiment_id(self) -> str:
        name = self.settings.experiment
        try:
            experiment = self.client.get_experiment_by_name(name)
        except MlflowException as err:
            raise ConfigError(
                f"cannot reach the MLflow tracking store {self.uri}: {err.message}"
            ) from err
        if experiment is not None:
            return experiment.experiment_id
        artifact_location = None
        if self.uri.startswith("sqlite:"):
            # the default would be ./mlruns relative to wherever the command runs
            artifact_location = (self.project_dir / "mlruns").resolve().as_uri()
        return self.client.create_experiment(name, artifact_location=artifact_location)


def _training_metrics(result: TrainingResult) -> dict[str, float]:
    """Every number of a training run, named so runs compare column by column in the UI."""
    metrics = {
        f"test_{scorer}_{metric}": value
        for scorer, values in result.metrics.items()
        for metric, value in values.items()
    }
    meta = result.model.metadata
    metrics |= {"best_iteration": meta["best_iteration"], "refit_rounds": meta["refit_rounds"]}
    metrics |= {
        f"tonight_{scorer}_{metric}_{key}": value
        for scorer, intervals in result.tonight.items()
        for metric, values in intervals.items()
        for key, value in values.items()
        if key != "estimate"
    }
    metrics |= {
        f"test_ece_{method}_calibration": ece
        for method, ece in meta.get("calibration_ece", {}).items()
    }
    metrics |= {
        f"test_model_minus_{name.removesuffix('_baseline')}_{metric}{suffix}": diff[key]
        for name, diffs in result.comparisons.items()
        for metric, diff in diffs.items()
        for key, suffix in _DIFFERENCE_SUFFIXES
    }
    return metrics


def export_bundle(model: ChurnModel, models_dir: Path, name: str, version: str) -> Path:
    """Write the bundle to ``models/<name>/v<version>/`` atomically (temp, then rename)."""
    final = models_dir / name / f"v{version}"
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".v{version}-", dir=final.parent))
    # mkdtemp makes the folder 0700; a bundle is for the scoring account to read too
    mask = os.umask(0)
    os.umask(mask)
    tmp.chmod(0o777 & ~mask)
    try:
        model.save(tmp)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return final


@dataclass(frozen=True)
class TrainingRunDetails:
    """What the report shows of a training run."""

    metrics: dict[str, dict[str, float]]
    model_card: str | None
    test_predictions: pd.DataFrame | None


_DIFFERENCE_SUFFIXES = (("difference", ""), ("ci_low", "_ci_low"), ("ci_high", "_ci_high"))

# a tracking server call gives up after about 10 s: a timeout, one retry, no long backoff
_HTTP_BOUNDS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}


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
