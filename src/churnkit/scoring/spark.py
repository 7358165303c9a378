"""Scoring on Spark: the same ranked, explained list, computed on the cluster.

:func:`score_on_spark` takes the Spark feature frame and a churn-probability column
(from ``mlflow.pyfunc.spark_udf`` of the registered model, made in
:mod:`churnkit.tracking`), ranks with a Spark window in the local path's order
(probability, then raw score, then ``customer_id``), and fills every other column of
:data:`~churnkit.scoring.SCORE_COLUMNS` per partition with the same functions the local
path uses (:func:`~churnkit.scoring.explain_ranked`), so both paths give the same rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from churnkit.config import RiskTierConfig
from churnkit.features import finish_frame
from churnkit.scoring import SCORE_COLUMNS, explain_ranked
from churnkit.scoring.output import AT_RISK_FILE, SCORES_FILE, write_atomically
from churnkit.training.model import ChurnModel

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame

__all__ = ["SCORE_SCHEMA", "score_on_spark", "write_spark_partition"]

SCORE_SCHEMA = (
    "as_of date, customer_id string, rank long, churn_probability double, risk_tier string, "
    "baseline_churn_probability double, segment string, customer_value_365d double, "
    "expected_value_at_risk double, reason_1 string, reason_2 string, reason_3 string, "
    "recommended_action string, model_name string, model_version string"
)


def score_on_spark(
    features: DataFrame,
    model: ChurnModel,
    probability: Column | None,
    *,
    tiers: RiskTierConfig,
    high_value_share: float,
    explain_top: int | None,
) -> DataFrame:
    """The at-risk list as a Spark DataFrame sorted by rank, one row per customer.

    ``features`` comes from :func:`churnkit.features.spark.spark_feature_frame` for one
    as_of; ``probability`` is a Spark column of calibrated churn probabilities for it,
    or ``None`` to compute them on the partitions with ``model.predict_proba`` (for a
    served baseline, a function of each row's features; a frame with the BG/NBD column
    already, see :func:`with_bgnbd_column`).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, StructField, StructType

    spec = model.feature_spec
    columns = features.columns

    on_partitions = probability is None  # the closure must not hold the Column (JVM)

    def raw_scores(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            frame = finish_frame(batch[columns].copy(), spec)
            if on_partitions:
                batch = batch.assign(_p=model.predict_proba(frame))
            yield batch.assign(_raw=model.predict_raw(frame))

    if on_partitions:
        with_p = features
        added = [StructField("_p", DoubleType()), StructField("_raw", DoubleType())]
    else:
        with_p = features.withColumn("_p", probability)
        added = [StructField("_raw", DoubleType())]
    scored = with_p.mapInPandas(raw_scores, schema=StructType([*with_p.schema.fields, *added]))
    order = Window.orderBy(F.col("_p").desc(), F.col("_raw").desc(), F.col("customer_id").asc())
    ranked = scored.withColumn("_rank", F.row_number().over(order))
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
                tiers=tiers,
                high_value_threshold=float(threshold or 0.0),
                explain_top=explain_top,
            )

    return ranked.mapInPandas(explain, schema=SCORE_SCHEMA).orderBy("rank").select(*SCORE_COLUMNS)


def write_spark_partition(
    scores: DataFrame, output_dir: Path, *, as_of: dt.date, manifest: Mapping[str, Any]
) -> Path:
    """Write the partition with Spark: ``scores.parquet`` and ``at_risk.csv`` are folders of
    part files (one part, in rank order), swapped into place like the local partition."""

    def write(folder: Path) -> None:
        ordered = scores.coalesce(1).orderBy("rank")
        ordered.write.parquet(str(folder / SCORES_FILE), compression="zstd")
        ordered.write.option("header", True).csv(str(folder / AT_RISK_FILE))

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
