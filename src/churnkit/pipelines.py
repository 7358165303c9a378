"""Wiring of the pure steps with IO: validate, train, score, demo. No logic of its own.

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
from typing import Any

import pandas as pd
import yaml

from churnkit import tracking
from churnkit._duckdb import memory_limit_as_error
from churnkit.config import Config, load_config
from churnkit.data import CheckedData, open_data
from churnkit.data.generator import generate_data, write_generated
from churnkit.engines import open_engine
from churnkit.errors import ChurnkitError, DataError, DriftError
from churnkit.features import FeatureSpec
from churnkit.features.snapshots import observed_as_of_dates
from churnkit.features.spec import event_type_notes, resolve_feature_spec_from
from churnkit.kpis import cohort_retention, period_kpis
from churnkit.scoring import resolve_as_of, score_customers, write_partition
from churnkit.scoring.output import (
    partition_dir,
    read_partition,
    scoring_manifest,
    table_format,
    write_table,
)
from churnkit.training import (
    CRR_BASELINE,
    MODEL,
    TrainingResult,
    WalkForward,
    decide_promotion,
    plan_walk_forward,
    train_churn_model,
)
from churnkit.training.drift import DriftReport, drift_report
from churnkit.training.metrics import score_metrics

__all__ = [
    "DemoOutcome",
    "EvaluationOutcome",
    "ScoringOutcome",
    "TrainingOutcome",
    "run_demo",
    "run_evaluation",
    "run_features",
    "run_kpis",
    "run_report",
    "run_scoring",
    "run_training",
    "run_validation",
    "read_orders",
]

Step = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class TrainingOutcome:
    result: TrainingResult
    run: tracking.LoggedRun
    promoted: bool
    promotion_reason: str
    export_dir: Path
    data_summary: dict[str, Any]


@dataclass(frozen=True)
class ScoringOutcome:
    partition: Path
    as_of: dt.date
    ranked: pd.DataFrame
    manifest: dict[str, Any]
    written: bool = True


@dataclass(frozen=True)
class DemoOutcome:
    config_path: Path
    data_dir: Path
    training: TrainingOutcome
    scoring: ScoringOutcome
    files: dict[str, Path] = field(default_factory=dict)


def run_validation(cfg: Config) -> dict[str, Any]:
    """Check the config's data against the contract; summarise tables and snapshots."""
    source = open_source(cfg)
    orders = source.summary()
    plan = _plan(cfg, orders)
    summary: dict[str, Any] = {"orders": orders, **source.other_tables()}
    summary["families"] = list(source.spec(cfg).families)
    summary["notes"] = source.notes
    summary["snapshots"] = {
        "labelled": [d.isoformat() for d in plan.labelled],
        "walk_forward_test": [d.isoformat() for d in plan.test],
    }
    return summary


def run_training(
    cfg: Config, *, config_text: str, force_promote: bool = False, on_step: Step = _quiet
) -> TrainingOutcome:
    """Load, build features, train, log to MLflow, register, export and maybe promote.

    The data is fully validated and the tracking store checked before anything is
    written, so bad data or an unreachable server leaves no run and no model version
    behind. ``force_promote`` makes the new version champion whatever the comparisons
    say; the run records it (tag ``churnkit.force_promote``).
    """
    on_step("reading and validating data")
    source = open_source(cfg)
    data_summary = source.summary()
    plan = _plan(cfg, data_summary)
    on_step("checking the MLflow tracking store")
    tracking.check_reachable(cfg)
    spec = source.spec(cfg)
    data_summary["notes"] = source.notes
    used = list(plan.labelled)
    on_step(
        f"building features for {len(used)} snapshots ({', '.join(spec.families)}) on {cfg.engine}"
    )
    dataset = source.features(used, spec, horizon_days=cfg.snapshots.horizon_days)
    # the population the model is made for: tonight's, at the data's end (the drift reference)
    tonight = source.features([_data_end(data_summary)], spec)
    on_step(f"walk-forward test on {len(plan.test)} dates, then LightGBM on {len(dataset):,} rows")
    result = train_churn_model(
        dataset,
        plan,
        cfg.model,
        spec,
        horizon_days=cfg.snapshots.horizon_days,
        drift_bins=cfg.scoring.drift.bins,
        drift_population=tonight,
    )
    data_summary["snapshot_rows"] = len(dataset)

    on_step("logging the run and registering the model in MLflow")
    champion = tracking.champion_version(cfg)
    run = tracking.log_training_run(
        result,
        cfg,
        config_text=config_text,
        data_summary=data_summary,
        force_promote=force_promote,
        dataset=dataset,
    )
    result.model.metadata.update(
        model_name=run.model_name, model_version=run.version, run_id=run.run_id
    )
    export_dir = tracking.export_bundle(result.model, cfg.models_dir, run.model_name, run.version)

    incumbent = (
        None
        if champion is None
        else tracking.load_model(cfg, f"models:/{run.model_name}/{champion}").metadata
    )
    promoted, reason = decide_promotion(result, champion, incumbent, force=force_promote)
    if promoted:
        tracking.promote(cfg, run.version, reason=reason)
    return TrainingOutcome(result, run, promoted, reason, export_dir, data_summary)


def run_features(cfg: Config, *, as_of: dt.date | None, out: Path) -> tuple[pd.DataFrame, Path]:
    """Write the feature table at ``as_of`` (default: the day after the latest order).

    Parquet unless ``out`` ends in ``.csv``; written to a temporary file and renamed.
    """
    table_format(out)  # an unknown suffix is refused before any work
    source = open_source(cfg)
    as_of = as_of or _data_end(source.summary())
    frame = source.features([as_of], source.spec(cfg))
    write_table(frame, out)
    return frame, out


def run_kpis(
    cfg: Config, *, period: str, out: Path | None = None, cohorts_out: Path | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Retention KPIs per period and the cohort table; optionally written to files."""
    for path in (out, cohorts_out):
        if path is not None:
            table_format(path)  # an unknown suffix is refused before any work
    orders = read_orders(cfg)
    table = period_kpis(
        orders,
        period=period,
        activity_days=cfg.snapshots.activity_days,
        min_order_amount=cfg.data.min_order_amount,
    )
    cohorts = cohort_retention(orders, min_order_amount=cfg.data.min_order_amount)
    if out is not None:
        write_table(table, out)
    if cohorts_out is not None:
        write_table(cohorts.reset_index().rename(columns=str), cohorts_out)
    return table, cohorts


class Source:
    """The config's checked tables on its engine: summaries, the feature spec they
    support, and features (computed where the data is, collected as pandas)."""

    def __init__(self, data: CheckedData) -> None:
        self.data = data
        self.engine = data.engine
        self.notes = list(data.notes)  # what reading the data did that users should know

    def summary(self) -> dict[str, Any]:
        return self.data.summary()

    def other_tables(self) -> dict[str, dict[str, int]]:
        return self.data.other_tables()

    def spec(self, cfg: Config) -> FeatureSpec:
        """The spec the data supports; notes on what it did with the event types."""
        d = self.data
        seen = d.event_types() if d.has("events") else None
        spec = resolve_feature_spec_from(
            cfg,
            order_columns=d.columns("orders"),
            event_types=seen,
            customer_columns=d.columns("customers") if d.has("customers") else None,
        )
        self.notes = [*d.notes, *event_type_notes(seen or [], spec)]
        return spec

    def features(
        self, as_of_dates: list[dt.date], spec: FeatureSpec, *, horizon_days: int | None = None
    ) -> pd.DataFrame:
        d = self.data
        _check_tables_for(spec, events=d.has("events"), customers=d.has("customers"))
        return self.engine.features(as_of_dates, spec, horizon_days=horizon_days)


def open_source(cfg: Config) -> Source:
    """Read and check the config's tables on its engine (DuckDB views over the files,
    or Spark); nothing is loaded into pandas until a result is fetched."""
    engine = open_engine(cfg)
    if engine.name == "duckdb":
        with memory_limit_as_error(engine.con, "checking the data contract"):
            return Source(open_data(engine, cfg.data))
    return Source(open_data(engine, cfg.data))


def read_orders(cfg: Config) -> pd.DataFrame:
    """The config's orders, checked against the data contract, as a pandas frame."""
    return open_source(cfg).data.orders_frame()


def _check_tables_for(spec: FeatureSpec, *, events: bool, customers: bool) -> None:
    needs = {"engagement": ("events", events), "attributes": ("customers", customers)}
    for family, (table, present) in needs.items():
        if spec.has(family) and not present:
            raise DataError(
                f"the model uses {family} features, but the config has no `data.{table}` table; "
                f"add it, or score with a model trained without {table}"
            )


def _data_end(summary: dict[str, Any]) -> dt.date:
    """The day after the latest order."""
    return dt.datetime.fromisoformat(summary["last_order_at"]).date() + dt.timedelta(days=1)


def _first_day(summary: dict[str, Any]) -> dt.date:
    return dt.datetime.fromisoformat(summary["first_order_at"]).date()


def _plan(cfg: Config, summary: dict[str, Any]) -> WalkForward:
    dates = observed_as_of_dates(_first_day(summary), _data_end(summary), cfg.snapshots)
    return plan_walk_forward(
        dates,
        horizon_days=cfg.snapshots.horizon_days,
        n_validation=cfg.snapshots.validation_snapshots,
        n_backtests=cfg.snapshots.test_snapshots,
    )


def _manifest(
    cfg: Config,
    model: Any,
    as_of: dt.date,
    rows: int,
    tier_counts: dict[str, int],
    drift: DriftReport,
    orders: dict[str, Any],
    started: float,
) -> dict[str, Any]:
    return scoring_manifest(
        as_of=as_of,
        engine=cfg.engine,
        model=model,
        rows=rows,
        explain_top=cfg.scoring.explain_top,
        tiers=cfg.scoring.risk_tiers,
        tier_counts=tier_counts,
        drift=drift.to_dict(),
        data={**orders, "data_end": _data_end(orders).isoformat()},
        seconds=time.perf_counter() - started,
    )


def run_scoring(
    cfg: Config,
    *,
    as_of: dt.date | None = None,
    dry_run: bool = False,
    allow_drift: bool = False,
    on_step: Step = _quiet,
) -> ScoringOutcome:
    """Score the population at ``as_of`` with the configured model; write the partition.

    ``as_of`` defaults to the day after the latest order. A requested ``as_of`` more
    than ``scoring.max_staleness_days`` after the data's end is refused. When the
    population has drifted from training (a PSI above ``scoring.drift.psi_threshold``)
    nothing is written and :class:`DriftError` is raised, unless ``allow_drift``.
    ``dry_run`` does everything but write.
    """
    started = time.perf_counter()
    on_step("loading the model")
    model = load_scoring_model(cfg)
    on_step("reading and validating data")
    source = open_source(cfg)
    orders = source.summary()
    data_end = _data_end(orders)
    as_of = resolve_as_of(as_of, data_end, cfg.scoring.max_staleness_days)
    if source.engine.name == "spark":
        return _score_on_spark(
            cfg, source, model, as_of, orders, dry_run, allow_drift, started, on_step
        )
    on_step(f"building features at {as_of} on {cfg.engine}")
    features = source.features([as_of], model.feature_spec)
    if features.empty:
        raise DataError(_no_customers_message(model.feature_spec, as_of, orders))
    on_step(f"scoring and explaining {len(features):,} customers")
    features = model.add_derived_features(features)
    ranked = score_customers(
        model,
        features,
        tiers=cfg.scoring.risk_tiers,
        high_value_share=cfg.scoring.high_value_share,
        # a served baseline is not the booster: its contributions would explain another list
        explain_top=0 if model.serving else cfg.scoring.explain_top,
    )
    drift = drift_report(
        model.drift_reference,
        features,
        ranked["churn_probability"].to_numpy(),
        cfg.scoring.drift.psi_threshold,
        compare_score=not model.serving,  # the reference score is the booster's
        allowed=allow_drift,
    )
    counts = ranked["risk_tier"].value_counts().to_dict()
    manifest = _manifest(cfg, model, as_of, len(ranked), counts, drift, orders, started)
    if drift.stops and not allow_drift:
        raise DriftError(drift.message(as_of))
    partition = partition_dir(cfg.scoring.output_dir, as_of)
    if dry_run:
        return ScoringOutcome(partition, as_of, ranked, manifest, written=False)
    on_step("writing the partition")
    partition = write_partition(ranked, cfg.scoring.output_dir, as_of=as_of, manifest=manifest)
    return ScoringOutcome(partition, as_of, ranked, manifest)


def load_scoring_model(cfg: Config) -> Any:
    """The configured model or the champion; with neither, the best baseline of the
    latest registered version, so the nightly list never dies for lack of a model.

    The fallback applies only when ``scoring.model`` is unset and the registry has
    versions but no champion (every version so far missed the quality gate).
    """
    if cfg.scoring.model is not None or tracking.champion_version(cfg) is not None:
        return tracking.load_model(cfg)
    latest = tracking.latest_version(cfg)
    if latest is None:
        return tracking.load_model(cfg)  # raises, naming the missing champion
    name = cfg.mlflow.registered_model_name
    model = tracking.load_model(cfg, f"models:/{name}/{latest}")
    baseline = model.metadata.get("best_baseline", CRR_BASELINE)
    served = model.serving_baseline(baseline)
    served.metadata = {
        **model.metadata,
        "model_name": f"baseline:{baseline}",
        "model_version": "",
        "fallback_reason": f"no champion: {name} v{latest} did not pass the quality gate",
    }
    return served


def _score_on_spark(
    cfg: Config,
    source: Source,
    model: Any,
    as_of: dt.date,
    orders: dict[str, Any],
    dry_run: bool,
    allow_drift: bool,
    started: float,
    on_step: Step,
) -> ScoringOutcome:
    """``run_scoring`` for ``engine: spark`` (see :func:`churnkit.scoring.spark.score_night`)."""
    from churnkit.scoring.spark import score_night

    night = score_night(
        source.engine.spark,
        source.engine.frames,
        model,
        as_of,
        cfg.scoring,
        horizon_days=int(model.metadata.get("horizon_days", cfg.snapshots.horizon_days)),
        probability_udf=lambda: tracking.spark_probability_udf(cfg, source.engine.spark, model),
        manifest=lambda rows, counts, drift: _manifest(
            cfg, model, as_of, rows, counts, drift, orders, started
        ),
        no_customers=_no_customers_message(model.feature_spec, as_of, orders),
        dry_run=dry_run,
        allow_drift=allow_drift,
        on_step=on_step,
    )
    partition = partition_dir(cfg.scoring.output_dir, as_of)
    return ScoringOutcome(partition, as_of, night.top, night.manifest, written=not dry_run)


def _no_customers_message(spec: FeatureSpec, as_of: dt.date, orders: dict[str, Any]) -> str:
    return (
        f"no customer has a qualifying order in the {spec.activity_days} days before "
        f"{as_of}; the data runs from {_first_day(orders)} to "
        f"{_data_end(orders) - dt.timedelta(days=1)}. Choose an --as-of inside that range."
    )


@dataclass(frozen=True)
class EvaluationOutcome:
    as_of: dt.date
    metrics: dict[str, dict[str, float]]
    tiers: pd.DataFrame
    rows: int
    run_id: str


def run_evaluation(cfg: Config, *, as_of: dt.date, on_step: Step = _quiet) -> EvaluationOutcome:
    """Backtest the list written for ``as_of`` against what its customers then did.

    Needs the label window ``[as_of, as_of + horizon_days)`` to have passed in the data.
    Logs the result to MLflow as a monitoring run.
    """
    on_step(f"reading the partition for {as_of}")
    scored, manifest = read_partition(cfg.scoring.output_dir, as_of)
    on_step("reading and validating data")
    source = open_source(cfg)
    horizon = cfg.snapshots.horizon_days
    data_end = _data_end(source.summary())
    window_end = as_of + dt.timedelta(days=horizon)
    if data_end < window_end:
        raise DataError(
            f"the {horizon}-day label window of {as_of} runs to {window_end - dt.timedelta(days=1)}"
            f", but the data ends on {data_end - dt.timedelta(days=1)}; evaluate once orders up "
            f"to {window_end - dt.timedelta(days=1)} are loaded"
        )
    on_step("labelling what the customers did")
    spec = FeatureSpec.model_validate(manifest.get("feature_spec") or {})
    labels = source.features(
        [as_of], spec.model_copy(update={"families": ("rfm",)}), horizon_days=horizon
    )[["customer_id", "churned"]]
    joined = scored.merge(labels, on="customer_id", how="left", validate="one_to_one")
    unknown = int(joined["churned"].isna().sum())
    if unknown:
        raise DataError(
            f"{unknown} scored customers of {as_of} are not in the population the data gives "
            "for that date; was the partition scored from other data or another "
            "`snapshots.activity_days`?"
        )
    y = joined["churned"].astype("int64").to_numpy()
    metrics = {
        MODEL: score_metrics(y, joined["churn_probability"].to_numpy()),
        CRR_BASELINE: score_metrics(y, joined["baseline_churn_probability"].to_numpy()),
    }
    tiers = (
        joined.groupby("risk_tier", sort=False)
        .agg(
            customers=("churned", "size"),
            predicted=("churn_probability", "mean"),
            churned=("churned", "mean"),
        )
        .reindex(["high", "medium", "low"])
        .dropna(how="all")
        .reset_index()
    )
    on_step("logging the monitoring run to MLflow")
    run_id = tracking.log_monitoring_run(
        cfg, as_of=as_of.isoformat(), metrics=metrics, manifest=manifest, tiers=tiers
    )
    return EvaluationOutcome(as_of, metrics, tiers, len(joined), run_id)


def run_report(
    cfg: Config, *, as_of: dt.date | None = None, out: Path | None = None, on_step: Step = _quiet
) -> Path:
    """Write the self-contained HTML report for a scored night (default: the latest).

    The model section comes from the training run named in the partition's manifest;
    when the tracking store cannot provide it, the report says so and shows the rest.
    """
    from churnkit.report.html import ReportData, render_report

    on_step("reading the scored partition")
    scored, manifest = read_partition(cfg.scoring.output_dir, as_of)
    on_step("computing retention KPIs")
    kpis, cohorts = run_kpis(cfg, period="month")
    # before the first full activity window, nobody can be lost yet: CRR would read 100 %
    observed = pd.Timestamp(manifest["data"]["first_order_at"]).date() + dt.timedelta(
        days=cfg.snapshots.activity_days
    )
    kpis = kpis[pd.to_datetime(kpis["period_start"]).dt.date >= observed].reset_index(drop=True)
    data = ReportData(
        title=cfg.mlflow.experiment,
        as_of=manifest["as_of"],
        activity_days=cfg.snapshots.activity_days,
        kpis=kpis,
        cohorts=cohorts,
        scored=scored,
        manifest=manifest,
    )
    on_step("reading the training run from MLflow")
    try:
        details = tracking.training_run_details(cfg, manifest.get("run_id", ""))
    except ChurnkitError as err:
        data.notes.append(f"Model section unavailable: {err}")
    else:
        data.metrics = details.metrics
        data.model_card = details.model_card
        data.test_predictions = details.test_predictions
    on_step("drawing the charts")
    html = render_report(data)
    out = out or cfg.scoring.output_dir / f"report-{manifest['as_of']}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    return out


def run_demo(
    directory: Path, *, customers: int = 10_000, seed: int = 7, on_step: Step = _quiet
) -> DemoOutcome:
    """Generate data into ``directory``, write a config there, train, then score."""
    directory.mkdir(parents=True, exist_ok=True)
    on_step(f"generating {customers} customers")
    data_dir = directory / "data"
    files = write_generated(generate_data(customers, seed=seed), data_dir)
    config_path = directory / "churnkit.yaml"
    config_text = yaml.safe_dump(demo_config_dict("data"), sort_keys=False)
    config_path.write_text(config_text, encoding="utf-8")
    cfg = load_config(config_path)
    training = run_training(cfg, config_text=config_text, on_step=on_step)
    scoring = run_scoring(cfg, on_step=on_step)
    return DemoOutcome(config_path, data_dir, training, scoring, files)


def demo_config_dict(data_dir: str) -> dict[str, Any]:
    """The config the demo writes beside its generated data."""
    return {
        "data": {
            "orders": {"path": f"{data_dir}/orders.parquet"},
            "events": {"path": f"{data_dir}/events.parquet"},
            "customers": {
                "path": f"{data_dir}/customers.parquet",
                "attributes": ["loyalty_tier", "acquisition_channel", "country"],
            },
        },
        "snapshots": {"horizon_days": 90, "activity_days": 365, "frequency": "month"},
        "mlflow": {"experiment": "churnkit-demo", "registered_model_name": "churnkit-demo"},
        "scoring": {"output_dir": "scores", "max_staleness_days": 7},
    }
