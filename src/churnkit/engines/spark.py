"""The Spark engine, for ``engine: spark``: the same expressions on a cluster.

Each source becomes a temporary view with canonical names and types (``try_cast``, the
text kept beside as ``_raw_<column>`` for the data contract), timestamps naive UTC;
published tables are Spark DataFrames (:attr:`SparkEngine.frames`) that the feature
table and Spark scoring start from. Ibis expressions are compiled to Spark SQL.

pyspark is optional (``pip install "churnkit[spark]"``) and imported only when used.
"""

from __future__ import annotations

import codecs
import datetime as dt
import os
import sys
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from churnkit.data.contract import check_columns
from churnkit.engines import RAW_PREFIX, TEXT_OFFSET, SQLEngine, source_schema
from churnkit.errors import ConfigError, DataError
from churnkit.features import feature_table, finish_frame

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from pyspark.sql import DataFrame, SparkSession

    from churnkit.config import DataConfig, SparkConfig, TableSource
    from churnkit.features.spec import FeatureSpec

__all__ = ["SparkEngine", "spark_feature_frame", "spark_features", "spark_session"]

_SPARK_TYPES = {"string": "string", "timestamp": "timestamp", "float64": "double"}


def spark_session(cfg: SparkConfig) -> SparkSession:
    """The active Spark session, or a new one from ``spark.master`` and ``spark.conf``.

    The session time zone is always UTC: churnkit's timestamps are naive UTC. Arrow
    transfers are on unless the config says otherwise: collected timestamps then stay in
    the session's zone instead of the driver's.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError(
            '`engine: spark` needs pyspark: pip install "churnkit[spark]" (and Java 17+)'
        ) from None
    builder = SparkSession.builder.appName(cfg.app_name)
    if cfg.master:
        builder = builder.master(cfg.master)
    # Python workers run this interpreter (where churnkit is installed) unless told otherwise
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    conf = {"spark.sql.execution.arrow.pyspark.enabled": "true", **cfg.conf}
    for key, value in {**conf, "spark.sql.session.timeZone": "UTC"}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.conf.set("spark.sql.session.timeZone", "UTC")
    return session


class SparkEngine(SQLEngine):
    """Temporary views in one Spark session; their names carry a per-engine prefix, so
    engines sharing a session do not clash."""

    name = "spark"
    dialect = "pyspark"

    def __init__(self, spark: SparkSession) -> None:
        super().__init__(f"churnkit_{uuid.uuid4().hex[:8]}_")
        self.spark = spark
        self.frames: dict[str, DataFrame] = {}
        ibis.pyspark  # noqa: B018 - loading the backend registers its compiler options

    def read_source(
        self,
        name: str,
        source: TableSource,
        data: DataConfig,
        extra_columns: tuple[str, ...] = (),
    ) -> ir.Table:
        from pyspark.sql import functions as F

        frame = _scan(self.spark, source, name)
        check_columns(source, name, list(frame.columns), data.config_file, extra_columns)
        schema = source_schema(source, frame.columns, extra_columns)
        columns: list[Any] = []
        raw: dict[str, str] = {}
        for canonical, kind in schema.items():
            if canonical in extra_columns:
                columns.append(F.col(f"`{canonical}`").cast("string").alias(canonical))
                continue
            original = source.source_column(canonical)
            target = _SPARK_TYPES[kind]
            value = F.expr(_cast(f"`{original}`", target, source))
            if target == "timestamp" and data.timezone != "UTC":
                own_offset = F.trim(F.col(f"`{original}`").cast("string")).rlike(TEXT_OFFSET)
                utc = F.to_utc_timestamp(value, data.timezone)
                value = F.when(own_offset, value).otherwise(utc)
            columns.append(value.alias(canonical))
            if target != "string":  # it can fail: keep the text for the contract
                columns.append(F.col(f"`{original}`").cast("string").alias(RAW_PREFIX + canonical))
                raw[RAW_PREFIX + canonical] = "string"
        view = f"{self.prefix}src_{name}"
        frame.select(*columns).createOrReplaceTempView(view)
        return ibis.table(schema | raw, name=view)

    def features(
        self, as_of_dates: Sequence[dt.date], spec: FeatureSpec, *, horizon_days: int | None
    ) -> pd.DataFrame:
        return spark_features(self.spark, self.frames, as_of_dates, spec, horizon_days=horizon_days)

    def write_features(self, as_of: dt.date, spec: FeatureSpec, out: Path) -> int:
        frame = self.features([as_of], spec, horizon_days=None)
        frame.to_parquet(out, index=False)
        return len(frame)

    def feature_frame(self, as_of_dates: Sequence[dt.date], spec: FeatureSpec) -> DataFrame:
        """The feature table of the published tables as a Spark DataFrame (not collected)."""
        return spark_feature_frame(self.spark, self.frames, as_of_dates, spec)

    def close(self) -> None:
        # the session may be the caller's: only the engine's own views go
        for view in self.spark.catalog.listTables():
            if view.isTemporary and view.name.startswith(self.prefix):
                self.spark.catalog.dropTempView(view.name)
        self.frames.clear()

    def _query(self, sql: str) -> pd.DataFrame:
        return self.spark.sql(sql).toPandas()

    def _create_view(self, name: str, view: str, sql: str) -> None:
        self.frames[name] = self.spark.sql(sql)
        self.frames[name].createOrReplaceTempView(view)


def _scan(spark: SparkSession, source: TableSource, name: str) -> DataFrame:
    from pyspark.errors import AnalysisException

    fmt = source.resolved_format
    if fmt in ("duckdb", "postgresql"):
        what = "a DuckDB file" if fmt == "duckdb" else "a PostgreSQL table"
        raise ConfigError(
            f"`data.{name}` is {what}, which the Spark engine does not read; export it to "
            "Parquet or use `engine: duckdb`"
        )
    try:
        reader = spark.read
        if fmt == "csv":
            reader = reader.option("header", True).option("encoding", _charset(source, name))
            if source.separator:
                reader = reader.option("sep", source.separator)
            return reader.csv(str(source.path))
        return reader.parquet(str(source.path))
    except AnalysisException as err:
        first = str(err).splitlines()[0]
        raise DataError(
            f"cannot read {name} from {str(source.path)!r} with Spark as {fmt}: {first}"
        ) from None


# Python's codec names -> the charsets Spark 4 reads CSV in
_CHARSETS = {
    "utf-8": "utf-8",
    "iso8859-1": "iso-8859-1",
    "ascii": "us-ascii",
    "utf-16": "utf-16",
    "utf-16-be": "utf-16be",
    "utf-16-le": "utf-16le",
    "utf-32": "utf-32",
}


def _charset(source: TableSource, name: str) -> str:
    charset = _CHARSETS.get(codecs.lookup(source.encoding).name)
    if charset is None:
        raise ConfigError(
            f"`data.{name}.encoding: {source.encoding}` is not one Spark reads CSV in "
            f"({', '.join(sorted(set(_CHARSETS.values())))}); convert the file to UTF-8, or "
            "read it with `engine: duckdb`"
        )
    return charset


def _cast(column: str, target: str, source: TableSource) -> str:
    """Spark SQL for one column cast to ``target``, null when it does not parse; CSV text
    may use a decimal comma or a timestamp format (strftime codes, translated)."""
    if source.resolved_format == "csv" and target == "double" and source.decimal == ",":
        return f"try_cast(replace(replace({column}, '.', ''), ',', '.') AS double)"
    if source.resolved_format == "csv" and target == "timestamp" and source.timestamp_format:
        return f"try_to_timestamp({column}, '{java_datetime_pattern(source.timestamp_format)}')"
    return f"try_cast({column} AS {target})"


_JAVA_CODES = {
    "d": "dd", "m": "MM", "Y": "yyyy", "y": "yy", "H": "HH", "I": "hh", "M": "mm",
    "S": "ss", "f": "SSSSSS", "p": "a", "b": "MMM", "B": "MMMM", "%": "%",
}  # fmt: skip


def java_datetime_pattern(strftime: str) -> str:
    """The strftime codes of ``timestamp_format`` as a Spark (Java) datetime pattern,
    letters outside the codes quoted; an unsupported code is refused."""
    pattern, i = [], 0
    while i < len(strftime):
        char = strftime[i]
        if char == "%" and i + 1 < len(strftime):
            code = strftime[i + 1]
            if code not in _JAVA_CODES:
                raise ConfigError(
                    f"timestamp_format code %{code} is not supported on Spark; use "
                    + " ".join(f"%{c}" for c in _JAVA_CODES)
                )
            pattern.append(_JAVA_CODES[code])
            i += 2
            continue
        pattern.append(f"'{char}'" if char.isalpha() else "''" if char == "'" else char)
        i += 1
    return "".join(pattern)


# -- the feature query on Spark -----------------------------------------------------


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
    written = None
    if spec.has("engagement") and "events" in views:
        found = views["events"].select("event_type").where("event_type IS NOT NULL").distinct()
        written = sorted(str(row[0]) for row in found.collect())
    expr = feature_table(
        table["orders"],
        table["grid"],
        spec,
        events=table.get("events"),
        customers=table.get("customers"),
        order_items=table.get("order_items"),
        event_types=written,
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
