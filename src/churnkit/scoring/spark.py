"""Scoring on Spark: the same ranked, explained list, computed on the cluster.

:func:`score_on_spark` takes the Spark feature frame and a churn-probability column
(from ``mlflow.pyfunc.spark_udf`` of the registered model, made in
:mod:`churnkit.tracking`), ranks with a Spark window in the local path's order
(probability, then raw score, then ``customer_id``) and in the priority order of
:mod:`churnkit.scoring.status`, and fills every other column of
:data:`~churnkit.scoring.SCORE_COLUMNS` per partition with the same functions the local
path uses (:func:`~churnkit.scoring.explain_ranked`), so both paths give the same rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churnkit.config import HoldoutConfig, RiskTierConfig, ScoringConfig, StatusConfig
from churnkit.errors import ConfigError, DataError, DriftError
from churnkit.features import finish_frame
from churnkit.files import FORMULA_START
from churnkit.scoring import SCORE_COLUMNS, explain_ranked
from churnkit.scoring.actions import assign_risk_tiers, tier_cutoffs
from churnkit.scoring.holdout import KEY_HEX_DIGITS, SEPARATOR
from churnkit.scoring.output import AT_RISK_FILE, SCORES_FILE, write_atomically
from churnkit.scoring.status import overdue_ratio, value_at_risk, work_group
from churnkit.training import BGNBD_BASELINE
from churnkit.training.baselines import BGNBD_COLUMN
from churnkit.training.drift import DriftReport, drift_report
from churnkit.training.model import ChurnModel

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame

__all__ = ["SCORE_SCHEMA", "SparkNight", "score_night", "score_on_spark", "write_spark_partition"]

# customers collected to the driver to fit BG/NBD and to measure drift
_DRIVER_SAMPLE = 200_000


@dataclass(frozen=True)
class SparkNight:
    """A night scored on Spark: the top of the list (collected) and the manifest."""

    top: pd.DataFrame
    manifest: dict[str, Any]


def score_night(
    features: DataFrame,
    model: ChurnModel,
    as_of: dt.date,
    cfg: ScoringConfig,
    *,
    probability_udf: Callable[[], Any],
    manifest: Callable[[int, dict[str, int], DriftReport], dict[str, Any]],
    no_customers: str,
    dry_run: bool,
    allow_drift: bool,
    on_step: Callable[[str], None],
) -> SparkNight:
    """Probabilities, ranking, reasons and the partition, all on Spark.

    ``features`` is the night's feature frame from the Spark engine
    (:meth:`churnkit.engines.spark.SparkEngine.feature_frame`), not yet computed.

    Probabilities come from ``probability_udf()`` (the registered pyfunc as a Spark UDF)
    or, for a served baseline, from the baseline on the partitions; BG/NBD is fitted on
    a driver sample; drift is measured on a sample of at most 200,000 customers. A night
    whose score drifted beyond the threshold raises :class:`DriftError` before anything
    is written, unless ``allow_drift``.
    """
    from pyspark.sql import functions as F

    if cfg.uplift_model is not None:
        raise ConfigError(
            "`scoring.uplift_model` works on the duckdb engine only so far; leave it out of "
            "a config with `engine: spark`"
        )
    on_step(f"building features at {as_of} on spark")
    spec = model.feature_spec
    features = features.cache()
    rows = features.count()
    if not rows:
        raise DataError(no_customers)
    share = min(1.0, _DRIVER_SAMPLE / rows)
    if BGNBD_COLUMN in model.feature_names or model.serving == BGNBD_BASELINE:
        rfm = features.select("orders_lifetime", "tenure_days", "recency_days")
        fitted_on = rfm.sample(fraction=share, seed=0).toPandas()
        horizon_days = int(model.metadata.get("horizon_days", 90))  # as the local path
        features = with_bgnbd_column(features, fitted_on, horizon_days).cache()
    on_step(f"scoring and explaining {rows:,} customers on spark")
    # a served baseline is a function of each row's features: computed on the partitions
    attributes = set(spec.attributes)
    typed = [  # the registered model's signature: doubles, and text for attributes
        F.col(name).cast("string" if name in attributes else "double").alias(name)
        for name in model.feature_names
    ]
    probability = None if model.serving else probability_udf()(F.struct(*typed))
    scores = score_on_spark(
        features,
        model,
        probability,
        tiers=cfg.risk_tiers,
        status=cfg.status,
        high_value_share=cfg.high_value_share,
        explain_top=0 if model.serving else cfg.explain_top,
    )
    scores = with_holdout(scores, as_of, cfg.holdout).cache()
    sample = finish_frame(features.sample(fraction=share, seed=0).toPandas(), spec)
    drift = drift_report(
        model.drift_reference,
        sample,
        model.predict_proba(sample),
        cfg.drift.psi_threshold,
        compare_score=not model.serving,
        allowed=allow_drift,
        sampled_rows=len(sample),
        elapsed_days=model.days_since_drift_reference(as_of),
        exclude=cfg.drift.exclude,
    )
    tiers = scores.groupBy("risk_tier").agg(
        F.count(F.lit(1)).alias("n"), F.sum(F.col("holdout").cast("long")).alias("held")
    )
    counts = {r["risk_tier"]: r["n"] for r in tiers.collect()}
    held_out = {r["risk_tier"]: int(r["held"] or 0) for r in tiers.collect()}
    written = manifest(rows, counts, drift, held_out)
    if drift.stops and not allow_drift:
        raise DriftError(drift.message(as_of))
    top = scores.limit(cfg.top).toPandas()
    if not dry_run:
        on_step("writing the partition with spark")
        write_spark_partition(scores, cfg.output_dir, as_of=as_of, manifest=written)
    scores.unpersist()
    features.unpersist()
    return SparkNight(top, written)


SCORE_SCHEMA = (
    "as_of date, customer_id string, rank long, priority long, churn_probability double, "
    "risk_tier string, status string, "
    "baseline_churn_probability double, segment string, customer_value_365d double, "
    "expected_value_at_risk double, uplift double, expected_saved_value double, "
    "reason_1 string, reason_2 string, reason_3 string, "
    "recommended_action string, holdout boolean, model_name string, model_version string"
)


def score_on_spark(
    features: DataFrame,
    model: ChurnModel,
    probability: Column | None,
    *,
    tiers: RiskTierConfig,
    status: StatusConfig,
    high_value_share: float,
    explain_top: int | None,
) -> DataFrame:
    """The at-risk list as a Spark DataFrame sorted by rank, one row per customer.

    ``features`` comes from :meth:`churnkit.engines.spark.SparkEngine.feature_frame` for one
    as_of; ``probability`` is a Spark column of calibrated churn probabilities for it,
    or ``None`` to compute them on the partitions with ``model.predict_proba`` (for a
    served baseline, a function of each row's features; a frame with the BG/NBD column
    already, see :func:`with_bgnbd_column`).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType, DoubleType, LongType, StructField, StructType

    spec = model.feature_spec
    columns = features.columns
    gaps = F.col("tenure_days").cast("double") - F.col("recency_days").cast("double")
    usual = F.when(F.col("orders_lifetime") >= 2, gaps / (F.col("orders_lifetime") - 1))
    gap = features.agg(F.percentile(usual, 0.5).alias("g")).first()["g"]
    gap = float("nan") if gap is None else float(gap)

    on_partitions = probability is None  # the closure must not hold the Column (JVM)

    def raw_scores(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            frame = finish_frame(batch[columns].copy(), spec)
            if on_partitions:
                batch = batch.assign(_p=model.predict_proba(frame))
            overdue = overdue_ratio(frame, gap)
            value = frame["customer_value_365d"].to_numpy(dtype="float64", na_value=0.0)
            yield batch.assign(
                _raw=model.predict_raw(frame),
                _overdue=overdue,
                _lapsed=np.nan_to_num(overdue) >= status.lapsed_after_gaps,
                _value_at_risk=value_at_risk(batch["_p"].to_numpy(dtype="float64"), value),
            )

    added = [
        StructField("_raw", DoubleType()),
        StructField("_overdue", DoubleType()),
        StructField("_lapsed", BooleanType()),
        StructField("_value_at_risk", DoubleType()),
    ]
    if on_partitions:
        with_p = features
        added = [StructField("_p", DoubleType()), *added]
    else:
        with_p = features.withColumn("_p", probability)
    scored = with_p.mapInPandas(raw_scores, schema=StructType([*with_p.schema.fields, *added]))
    order = Window.orderBy(F.col("_p").desc(), F.col("_raw").desc(), F.col("customer_id").asc())
    ranked = scored.withColumn("_rank", F.row_number().over(order)).cache()
    # the tiers' cutoffs count the saveable customers (see tier_cutoffs): their ranks
    saveable = ranked.where(~F.col("_lapsed")).select("_rank")
    cutoffs = tier_cutoffs(tiers, saveable.toPandas()["_rank"].to_numpy())

    def groups(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:  # the tiers follow the rank: known only now
            tier = assign_risk_tiers(
                batch["_p"].to_numpy(), tiers, rank=batch["_rank"].to_numpy(), cutoffs=cutoffs
            )
            yield batch.assign(_group=work_group(batch["_lapsed"].to_numpy(dtype=bool), tier))

    grouped = ranked.mapInPandas(
        groups, schema=StructType([*ranked.schema.fields, StructField("_group", LongType())])
    )
    work_order = Window.orderBy(  # see churnkit.scoring.status.priority
        F.col("_group").asc(), F.col("_value_at_risk").desc(), F.col("_rank").asc()
    )
    ranked = grouped.withColumn("_priority", F.row_number().over(work_order))
    threshold = ranked.agg(
        F.percentile("customer_value_365d", 1 - high_value_share).alias("t")
    ).first()["t"]

    def explain(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            frame = finish_frame(batch[columns].copy(), spec)
            yield explain_ranked(
                model,
                frame,
                probability=batch["_p"].to_numpy(),
                rank=batch["_rank"].to_numpy(),
                priority=batch["_priority"].to_numpy(),
                overdue=batch["_overdue"].to_numpy(dtype="float64", na_value=np.nan),
                tiers=tiers,
                status=status,
                high_value_threshold=float(threshold or 0.0),
                explain_top=explain_top,
                cutoffs=cutoffs,
            )

    return ranked.mapInPandas(explain, schema=SCORE_SCHEMA).orderBy("rank").select(*SCORE_COLUMNS)


def with_holdout(scores: DataFrame, as_of: dt.date, cfg: HoldoutConfig) -> DataFrame:
    """``scores`` with the night's holdout group drawn on Spark exactly as
    :func:`churnkit.scoring.holdout.assign_holdout` draws it locally: the same SHA-256
    keys, the smallest ``floor(share * n + 0.5)`` of each risk tier."""
    if cfg.share == 0:
        return scores
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    text = F.concat_ws(SEPARATOR, F.lit(cfg.salt), F.lit(as_of.isoformat()), F.col("customer_id"))
    key = F.conv(F.substring(F.sha2(text, 256), 1, KEY_HEX_DIGITS), 16, 10).cast("long")
    tier = Window.partitionBy("risk_tier")
    position = F.row_number().over(tier.orderBy("_key", "customer_id")) - 1
    held = position < F.floor(F.lit(cfg.share) * F.count(F.lit(1)).over(tier) + F.lit(0.5))
    return (
        scores.withColumn("_key", key)
        .withColumn("holdout", held)
        .orderBy("rank")
        .select(*SCORE_COLUMNS)
    )


def write_spark_partition(
    scores: DataFrame, output_dir: Path, *, as_of: dt.date, manifest: Mapping[str, Any]
) -> Path:
    """Write the partition with Spark: ``scores.parquet`` (in rank order) and ``at_risk.csv``
    (in priority order) are folders of one part file, swapped into place like the local
    partition."""

    def write(folder: Path) -> None:
        one = scores.coalesce(1)
        one.orderBy("rank").write.parquet(str(folder / SCORES_FILE), compression="zstd")
        from pyspark.sql import functions as F

        # the spreadsheet-safe text of the local CSV (churnkit.files.csv_safe)
        text = [f.name for f in scores.schema.fields if f.dataType.simpleString() == "string"]
        safe = one.select(
            *(
                F.when(F.col(c).rlike(FORMULA_START), F.concat(F.lit("'"), F.col(c)))
                .otherwise(F.col(c))
                .alias(c)
                if c in text
                else F.col(c)
                for c in scores.columns
            )
        )
        to_contact = safe.where(~F.col("holdout"))  # the control group is not to contact
        to_contact.orderBy("priority").write.option("header", True).csv(str(folder / AT_RISK_FILE))

    return write_atomically(output_dir, as_of, manifest, write)


def with_bgnbd_column(frame: Any, sample: pd.DataFrame, horizon_days: int) -> Any:
    """``frame`` with the BG/NBD feature, fitted on the driver on ``sample`` (the RFM
    features of a sample of the same snapshot) and computed on Spark in closed form."""
    from pyspark.sql import functions as F

    from churnkit.training.baselines import BGNBD_COLUMN
    from churnkit.training.bgnbd import WEEK_DAYS, bgnbd_inputs, fit_bgnbd

    m = fit_bgnbd(*bgnbd_inputs(sample))
    x = F.col("orders_lifetime").cast("double") - 1.0
    T = F.col("tenure_days").cast("double") / WEEK_DAYS
    t_x = F.greatest(T - F.col("recency_days").cast("double") / WEEK_DAYS, F.lit(0.0))
    shape = F.lit(m.r) + x
    log_ratio = shape * (F.log(F.lit(m.alpha) + T) - F.log(F.lit(m.alpha) + t_x))
    odds = F.when(
        x > 0,
        F.exp(F.log(F.lit(m.a)) - F.log(F.greatest(F.lit(m.b) + x - 1, F.lit(1e-12))) + log_ratio),
    ).otherwise(F.lit(0.0))
    alive = F.lit(1.0) / (F.lit(1.0) + odds)
    horizon = horizon_days / WEEK_DAYS
    quiet = F.exp(shape * (F.log(F.lit(m.alpha) + T) - F.log(F.lit(m.alpha) + T + horizon)))
    return frame.withColumn(BGNBD_COLUMN, F.lit(1.0) - alive + alive * quiet)
