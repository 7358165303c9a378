"""Wiring of the pure steps with the engine and IO: validate, train, score, evaluate,
report, demo. No decisions of its own: those belong to training/ and scoring/.

Each ``run_*`` function reads what it needs, calls the library, writes what it
produces, and returns a small result object for the CLI to print. ``on_step`` is
called with a short description before each long step (the CLI shows it as progress).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from churnkit.config import Config, load_config
from churnkit.data import CheckedData, DataSummary, FeatureFile, TableCount, open_data
from churnkit.engines import open_engine
from churnkit.features.spec import spec_for_data
from churnkit.files import table_format, write_file, write_table
from churnkit.kpis import RetentionTables, retention_tables

if TYPE_CHECKING:  # pragma: no cover: the model side is imported where it is used, so
    # that the data commands (features, kpis) do not load MLflow and LightGBM
    from churnkit.scoring.backtest import Backtest
    from churnkit.scoring.output import Manifest
    from churnkit.scoring.readout import Readout
    from churnkit.tracking import LoggedRun, Tracker
    from churnkit.training import TrainingResult
    from churnkit.training.splits import WalkForward
    from churnkit.training.uplift import UpliftTraining

__all__ = [
    "DemoOutcome",
    "EvaluationOutcome",
    "ScoringOutcome",
    "TrainingOutcome",
    "ValidationOutcome",
    "open_source",
    "read_orders",
    "run_demo",
    "run_evaluation",
    "run_features",
    "run_kpis",
    "run_report",
    "run_scoring",
    "run_training",
    "run_uplift",
    "run_validation",
    "tracker",
]

Step = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class ValidationOutcome:
    orders: DataSummary
    tables: dict[str, TableCount]  # the events, customers and contacts configured
    families: tuple[str, ...]  # the feature families the data supports
    notes: tuple[str, ...]
    plan: WalkForward  # the dates training would label and test on


@dataclass(frozen=True)
class TrainingOutcome:
    result: TrainingResult
    run: LoggedRun
    promoted: bool
    promotion_reason: str
    export_dir: Path
    data_summary: DataSummary


@dataclass(frozen=True)
class ScoringOutcome:
    partition: Path
    as_of: dt.date
    ranked: pd.DataFrame
    manifest: Manifest
    written: bool = True


@dataclass(frozen=True)
class EvaluationOutcome:
    as_of: dt.date
    backtest: Backtest
    run_id: str
    readout: Readout | None = None  # treated vs held out, when the night held some out


@dataclass(frozen=True)
class DemoOutcome:
    config_path: Path
    data_dir: Path
    training: TrainingOutcome
    scoring: ScoringOutcome
    files: dict[str, Path] = field(default_factory=dict)


def open_source(cfg: Config) -> CheckedData:
    """Read and check the config's tables on its engine (DuckDB views over the files,
    or Spark); nothing is loaded into pandas until a result is fetched."""
    return open_data(open_engine(cfg), cfg.data)


def read_orders(cfg: Config) -> pd.DataFrame:
    """The config's orders, checked against the data contract, as a pandas frame."""
    return open_source(cfg).orders_frame()


def tracker(cfg: Config) -> Tracker:
    """The config's MLflow store and registered model."""
    from churnkit.tracking import Tracker

    return Tracker(cfg.mlflow, cfg.project_dir)


def run_validation(cfg: Config) -> ValidationOutcome:
    """Check the config's data against the contract; summarise tables and snapshots."""
    from churnkit.training import plan_for_data

    data = open_source(cfg)
    summary = data.summary()
    plan = plan_for_data(summary.first_day, summary.data_end, cfg.snapshots)
    spec, notes = spec_for_data(cfg, data)
    return ValidationOutcome(summary, data.other_tables(), spec.families, tuple(notes), plan)


def run_training(
    cfg: Config, *, config_text: str, force_promote: bool = False, on_step: Step = _quiet
) -> TrainingOutcome:
    """Load, build features, train, log to MLflow, register, export and maybe promote.

    The data is fully validated and the tracking store checked before anything is
    written, so bad data or an unreachable server leaves no run and no model version
    behind. ``force_promote`` makes the new version champion whatever the comparisons
    say; the run records it (tag ``churnkit.force_promote``).
    """
    from churnkit.report.model_card import model_card
    from churnkit.training import decide_promotion, plan_for_data, train_churn_model

    on_step("reading and validating data")
    data = open_source(cfg)
    summary = data.summary()
    plan = plan_for_data(summary.first_day, summary.data_end, cfg.snapshots)
    spec, notes = spec_for_data(cfg, data)  # refuses a bad spec before MLflow is touched
    on_step("checking the MLflow tracking store")
    store = tracker(cfg)
    store.check_reachable()
    used, families = list(plan.labelled), ", ".join(spec.families)
    on_step(f"building features for {len(used)} snapshots ({families}) on {cfg.engine}")
    n, horizon = summary.customers, cfg.snapshots.horizon_days
    dataset = data.training_features(used, spec, horizon_days=horizon, customers=n)
    # the population the model is made for: tonight's, at the data's end (the drift reference)
    tonight = data.training_features([summary.data_end], spec, horizon_days=None, customers=n)
    data.close()  # everything is read: the engine's memory goes back before LightGBM
    on_step(f"walk-forward test on {len(plan.test)} dates, then LightGBM on {len(dataset):,} rows")
    result = train_churn_model(
        dataset,
        plan,
        cfg.model,
        spec,
        horizon_days=horizon,
        drift_bins=cfg.scoring.drift.bins,
        drift_population=tonight,
    )
    summary = summary.with_(notes=tuple(notes), snapshot_rows=len(dataset))

    on_step("logging the run and registering the model in MLflow")
    champion = store.champion_version()
    incumbent = store.champion_metadata()  # before this run registers a version
    run = store.log_training_run(
        result,
        config=cfg.model_dump(mode="json"),
        config_text=config_text,
        data_summary=summary.to_dict(),
        model_card=model_card(result, cfg, summary.to_dict()),
        source=str(cfg.data.orders.url or cfg.data.orders.path),
        force_promote=force_promote,
        dataset=dataset,
    )
    promoted, reason = decide_promotion(result, champion, incumbent, force=force_promote)
    export_dir = store.complete(
        run, result.model, cfg.models_dir, promotion=reason if promoted else None
    )
    return TrainingOutcome(result, run, promoted, reason, export_dir, summary)


def run_features(cfg: Config, *, as_of: dt.date | None, out: Path) -> FeatureFile:
    """Write the feature table at ``as_of`` (default: the day after the latest order) to
    ``out``, as Parquet unless it ends in ``.csv`` or ``.json``, whole or not at all."""
    table_format(out)  # an unknown suffix is refused before any work
    data = open_source(cfg)
    return data.write_features(as_of or data.summary().data_end, spec_for_data(cfg, data)[0], out)


def run_kpis(
    cfg: Config, *, period: str, out: Path | None = None, cohorts_out: Path | None = None
) -> RetentionTables:
    """Retention KPIs per period, the cohort table and the trailing year; optionally the
    first two written to files."""
    for path in filter(None, (out, cohorts_out)):
        table_format(path)  # an unknown suffix is refused before any work
    tables = retention_tables(
        read_orders(cfg),
        period=period,
        activity_days=cfg.snapshots.activity_days,
        min_order_amount=cfg.data.min_order_amount,
    )
    if out is not None:
        write_table(tables.periods, out)
    if cohorts_out is not None:
        write_table(tables.cohorts.reset_index().rename(columns=str), cohorts_out)
    return tables


def run_scoring(
    cfg: Config,
    *,
    as_of: dt.date | None = None,
    dry_run: bool = False,
    allow_drift: bool = False,
    on_step: Step = _quiet,
) -> ScoringOutcome:
    """Score the population at ``as_of`` (default: the day after the latest order; see
    :func:`~churnkit.scoring.resolve_as_of`) and write the partition; a night whose scores
    drifted raises :class:`DriftError` unless ``allow_drift``; ``dry_run`` writes nothing.
    """
    from churnkit.scoring import resolve_as_of, score_night, write_partition
    from churnkit.scoring.output import night_manifest, partition_dir

    started = time.perf_counter()
    on_step("loading the model")
    store = tracker(cfg)
    model = store.load_scoring_model(cfg.scoring.model)
    on_step("reading and validating data")
    data = open_source(cfg)
    summary = data.summary()
    as_of = resolve_as_of(as_of, summary.data_end, cfg.scoring.max_staleness_days)
    spec = model.feature_spec
    no_customers = summary.no_customers_message(spec.activity_days, as_of)

    manifest = night_manifest(cfg, model, as_of, summary, started)
    partition = partition_dir(cfg.scoring.output_dir, as_of)
    night_of = {"manifest": manifest, "no_customers": no_customers, "on_step": on_step}
    if data.engine.name == "spark":
        from churnkit.scoring.spark import score_night as score_on_spark

        udf = lambda: store.spark_probability_udf(cfg.scoring.model, data.engine.spark, model)  # noqa: E731
        night = score_on_spark(
            data.engine.feature_frame([as_of], spec), model, as_of, cfg.scoring,
            probability_udf=udf, dry_run=dry_run, allow_drift=allow_drift, **night_of,
        )  # fmt: skip
        return ScoringOutcome(partition, as_of, night.top, night.manifest, written=not dry_run)
    on_step(f"building features at {as_of} on {cfg.engine}")
    features = data.features([as_of], spec)
    night = score_night(features, model, cfg.scoring, allow_drift=allow_drift, **night_of)
    if not dry_run:
        on_step("writing the partition")
        write_partition(night.ranked, cfg.scoring.output_dir, as_of=as_of, manifest=night.manifest)
    return ScoringOutcome(partition, as_of, night.ranked, night.manifest, written=not dry_run)


def run_evaluation(cfg: Config, *, as_of: dt.date, on_step: Step = _quiet) -> EvaluationOutcome:
    """Backtest the list written for ``as_of`` against what its customers then did (its
    horizon must have passed) and, when the night held a group out, read out the plays
    (:mod:`churnkit.scoring.readout`); logged to MLflow as a monitoring run."""
    from churnkit.scoring.backtest import backtest_night, night_labels
    from churnkit.scoring.output import read_partition
    from churnkit.scoring.readout import readout_of_night

    on_step(f"reading the partition for {as_of}")
    scored, manifest = read_partition(cfg.scoring.output_dir, as_of)
    on_step("reading and validating data")
    data = open_source(cfg)
    horizon = cfg.snapshots.horizon_days
    on_step("labelling what the customers did")
    labels = night_labels(data, manifest, as_of, horizon)
    backtest = backtest_night(scored, labels, as_of)
    on_step("reading out the holdout group")
    readout = readout_of_night(data, scored, manifest, horizon, cfg.model.bootstrap_samples, labels)
    on_step("logging the monitoring run to MLflow")
    run_id = tracker(cfg).log_monitoring_run(
        backtest, manifest, horizon_days=horizon, readout=readout
    )
    return EvaluationOutcome(as_of, backtest, run_id, readout)


def run_uplift(cfg: Config, *, on_step: Step = _quiet) -> tuple[UpliftTraining, Path]:
    """Fit the uplift model on the scored nights with holdout groups and contacts whose
    horizon has passed; write it to ``models/<name>-uplift/to-<last night>/``."""
    from churnkit.scoring.readout import uplift_nights
    from churnkit.training.uplift import train_uplift

    on_step("gathering the nights with holdout groups and contacts; fitting the uplift model")
    data, horizon = open_source(cfg), cfg.snapshots.horizon_days
    table, spec = uplift_nights(data, cfg.scoring.output_dir, horizon)
    fitted = train_uplift(table, spec, seed=cfg.model.seed, samples=cfg.model.bootstrap_samples)
    return fitted, fitted.save(cfg.models_dir, cfg.mlflow.registered_model_name)


def run_report(
    cfg: Config, *, as_of: dt.date | None = None, out: Path | None = None, on_step: Step = _quiet
) -> Path:
    """Write the self-contained HTML report for a scored night (default: the latest).

    The model section comes from the training run named in the partition's manifest;
    when the tracking store cannot provide it, the report says so and shows the rest.
    """
    from churnkit.report.html import ReportData, render_report
    from churnkit.scoring.output import read_partition
    from churnkit.scoring.readout import readout_of_night

    on_step("reading the scored partition")
    scored, manifest = read_partition(cfg.scoring.output_dir, as_of)
    on_step("computing retention KPIs")
    data = ReportData.for_night(scored, manifest, run_kpis(cfg, period="month"), cfg)
    on_step("reading out the holdout group, if the horizon has passed")
    horizon, samples = cfg.snapshots.horizon_days, cfg.model.bootstrap_samples
    data.add_readout(lambda: readout_of_night(open_source(cfg), scored, manifest, horizon, samples))
    on_step("reading the training run from MLflow")
    data.add_training_run(lambda: tracker(cfg).training_run_details(manifest["run_id"]))
    on_step("drawing the charts")
    html = render_report(data)
    out = out or cfg.scoring.output_dir / f"report-{manifest['as_of']}.html"
    return write_file(out, lambda tmp: tmp.write_text(html, encoding="utf-8"))


def run_demo(
    directory: Path, *, customers: int = 10_000, seed: int = 7, on_step: Step = _quiet
) -> DemoOutcome:
    """Generate data into ``directory``, write a config there, train, then score."""
    from churnkit.data.generator import write_demo

    on_step(f"generating {customers} customers")
    config_path, config_text, files = write_demo(directory, customers=customers, seed=seed)
    cfg = load_config(config_path)
    training = run_training(cfg, config_text=config_text, on_step=on_step)
    scoring = run_scoring(cfg, on_step=on_step)
    return DemoOutcome(config_path, directory / "data", training, scoring, files)
