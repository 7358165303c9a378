"""The same feature expression on Spark, through Ibis's PySpark backend.

:func:`spark_feature_frame` compiles :func:`~churnkit.features.feature_table` for a
Spark session and returns a Spark DataFrame, so features for data that outgrows one
machine are computed on the cluster; :func:`spark_features` collects it to the driver
as the pandas frame training uses, with the same dtypes as the DuckDB path.

Spark must run with ``spark.sql.session.timeZone = UTC``: churnkit's timestamps are
naive UTC, and Spark would otherwise shift them by the driver's zone.
pyspark is an optional dependency (``pip install "churnkit[spark]"``), imported here
only when a function is called.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pandas as pd

from churnkit.errors import ConfigError
from churnkit.features import FeatureSpec, feature_table, finish_frame

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["spark_feature_frame", "spark_features"]


def spark_feature_frame(
    spark: SparkSession,
    tables: Mapping[str, DataFrame],
    as_of_dates: Sequence[dt.date],
    spec: FeatureSpec,
    *,
    horizon_days: int | None = None,
) -> DataFrame:
    """The feature table as a Spark DataFrame, sorted by ``as_of`` then ``customer_id``.

    Parameters
    ----------
    spark
        A session with ``spark.sql.session.timeZone`` set to ``UTC``.
    tables
        ``orders`` and, when the spec uses them, ``events`` and ``customers``: Spark
        DataFrames with churnkit's canonical column names and types.
    """
    import ibis

    zone = spark.conf.get("spark.sql.session.timeZone")
    if zone != "UTC":
        raise ConfigError(
            f"Spark's session time zone is {zone!r}; churnkit needs 'UTC' (its timestamps are "
            "naive UTC): set spark.sql.session.timeZone=UTC, e.g. in `spark.conf` of the config"
        )
    prefix = f"churnkit_{uuid.uuid4().hex[:8]}_"  # views of concurrent calls do not clash
    dates = sorted(set(as_of_dates))
    grid = pd.DataFrame({"as_of": dates, "as_of_ts": pd.to_datetime(dates)})
    views = {name: frame for name, frame in tables.items() if frame is not None}
    views["grid"] = spark.createDataFrame(grid, schema="as_of date, as_of_ts timestamp")
    for name, frame in views.items():
        frame.createOrReplaceTempView(prefix + name)
    con = ibis.pyspark.connect(spark)
    table = {name: con.table(prefix + name) for name in views}
    expr = feature_table(
        table["orders"],
        table["grid"],
        spec,
        events=table.get("events"),
        customers=table.get("customers"),
        order_items=table.get("order_items"),
        horizon_days=horizon_days,
        split_history=len(dates) > 1,
    ).order_by(["as_of", "customer_id"])
    try:
        # Spark resolves the views when it analyses the query, here: the frame keeps
        # working after they are dropped, and a long-lived session keeps no leftovers
        return spark.sql(con.compile(expr))
    finally:
        for name in views:
            spark.catalog.dropTempView(prefix + name)


def spark_features(
    spark: SparkSession,
    tables: Mapping[str, DataFrame],
    as_of_dates: Sequence[dt.date],
    spec: FeatureSpec,
    *,
    horizon_days: int | None = None,
) -> pd.DataFrame:
    """:func:`spark_feature_frame` collected to the driver, with churnkit's dtypes."""
    frame = spark_feature_frame(spark, tables, as_of_dates, spec, horizon_days=horizon_days)
    return finish_frame(frame.toPandas(), spec)
