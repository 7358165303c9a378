"""Read the data contract's tables with Spark, for ``engine: spark``.

The tables stay Spark DataFrames with churnkit's canonical names and types; the data
contract is checked with one aggregation per table (null and unparsable values in
required columns, unmapped statuses, negative amounts not marked as returns, duplicate
order or customer ids, empty tables), and every problem is reported in one
:class:`~churnkit.errors.DataError`, as on the local engine.

pyspark is optional (``pip install "churnkit[spark]"``) and imported only when used.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from churnkit.config import DataConfig, SparkConfig, TableSource
from churnkit.data.readers import CANONICAL_TYPES, check_columns
from churnkit.errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["SparkTables", "read_spark_tables", "spark_session"]

_SPARK_TYPES = {"VARCHAR": "string", "TIMESTAMP": "timestamp", "DOUBLE": "double"}


def spark_session(cfg: SparkConfig) -> SparkSession:
    """The active Spark session, or a new one from ``spark.master`` and ``spark.conf``.

    The session time zone is always UTC: churnkit's timestamps are naive UTC.
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
    for key, value in {**cfg.conf, "spark.sql.session.timeZone": "UTC"}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.conf.set("spark.sql.session.timeZone", "UTC")
    return session


@dataclass(frozen=True)
class SparkTables:
    """The validated tables as Spark DataFrames; events and customers are optional."""

    orders: DataFrame
    events: DataFrame | None = None
    customers: DataFrame | None = None

    def as_dict(self) -> dict[str, DataFrame]:
        tables = {"orders": self.orders, "events": self.events, "customers": self.customers}
        return {name: frame for name, frame in tables.items() if frame is not None}

    def summary(self) -> dict[str, Any]:
        """Rows, customers and date range of the orders, like ``summarise_orders``."""
        from pyspark.sql import functions as F

        # formatted by Spark in the session zone (UTC): collecting a timestamp would
        # convert it to the driver's local time
        iso = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS"
        row = self.orders.agg(
            F.count(F.lit(1)).alias("orders"),
            F.countDistinct("customer_id").alias("customers"),
            F.date_format(F.min("ordered_at"), iso).alias("first"),
            F.date_format(F.max("ordered_at"), iso).alias("last"),
        ).first()
        return {
            "orders": int(row["orders"]),
            "customers": int(row["customers"]),
            "first_order_at": row["first"],
            "last_order_at": row["last"],
        }

    def event_types(self) -> list[str]:
        """The distinct event types, sorted (a small collect)."""
        if self.events is None:
            return []
        rows = self.events.select("event_type").distinct().collect()
        return sorted(r["event_type"] for r in rows if r["event_type"] is not None)


def read_spark_tables(spark: SparkSession, cfg: DataConfig) -> SparkTables:
    """Read and check orders and, when configured, events and customers with Spark.

    Raises
    ------
    DataError
        When a source is missing a column, or breaks the data contract.
    """
    orders = _orders(spark, cfg)
    events = customers = None
    if cfg.events is not None:
        events = _canonical(spark, cfg.events, "events", cfg)
        events = _check(events, "events", ["customer_id", "occurred_at", "event_type"])
    if cfg.customers is not None:
        customers = _canonical(spark, cfg.customers, "customers", cfg, cfg.customers.attributes)
        customers = _check(customers, "customers", ["customer_id"], unique="customer_id")
    return SparkTables(orders, events, customers)


def _orders(spark: SparkSession, cfg: DataConfig) -> DataFrame:
    from pyspark.sql import functions as F

    source = cfg.orders
    frame = _canonical(spark, source, "orders", cfg)
    extra: dict[str, Any] = {}
    if "status" in frame.columns:
        mapping = source.status_values
        mapped = F.lit(None).cast("string")
        for raw, canonical in mapping.items():
            mapped = F.when(F.col("_given_status") == raw, F.lit(canonical)).otherwise(mapped)
        frame = frame.withColumn("_given_status", F.col("status")).withColumn("status", mapped)
        extra["unmapped status (not in `data.orders.status_values`)"] = F.sum(
            (F.col("_given_status").isNotNull() & F.col("status").isNull()).cast("int")
        )
    elif cfg.on_negative_amount == "treat_as_return":
        frame = frame.withColumn("status", F.lit("completed"))
    if cfg.on_negative_amount == "treat_as_return":
        frame = frame.withColumn(
            "status", F.when(F.col("amount") < 0, F.lit("returned")).otherwise(F.col("status"))
        )
    else:
        marked = F.col("status") == "returned" if "status" in frame.columns else F.lit(False)
        extra[
            "negative amounts on orders not marked as returns (mark them, or set "
            "`data.on_negative_amount: treat_as_return`)"
        ] = F.sum(((F.col("amount") < 0) & ~F.coalesce(marked, F.lit(False))).cast("int"))
    unique = "order_id" if "order_id" in frame.columns else None
    return _check(frame, "orders", ["customer_id", "ordered_at", "amount"], unique, extra)


def _canonical(
    spark: SparkSession,
    source: TableSource,
    name: str,
    cfg: DataConfig,
    extra_columns: tuple[str, ...] = (),
) -> DataFrame:
    """The source with canonical names and types; unparsable values become null and are
    counted by :func:`_check` through the ``_raw_*`` columns kept beside them."""
    from pyspark.sql import functions as F

    frame = _scan(spark, source, name)
    check_columns(source, name, list(frame.columns), cfg.config_file, extra_columns)
    columns = []
    for canonical in (*source.required_columns, *source.optional_columns):
        original = source.source_column(canonical)
        if original not in frame.columns:
            continue
        raw = F.col(f"`{original}`")
        target = _SPARK_TYPES[CANONICAL_TYPES[canonical]]
        value = F.expr(f"try_cast(`{original}` AS {target})")
        if target == "timestamp" and cfg.timezone != "UTC":
            value = F.to_utc_timestamp(value, cfg.timezone)
        columns.append(value.alias(canonical))
        if target != "string":  # kept to count the values the cast turned into nulls
            columns.append(raw.cast("string").alias(f"_raw_{canonical}"))
    columns += [F.col(f"`{c}`").cast("string").alias(c) for c in extra_columns]
    return frame.select(*columns)


def _scan(spark: SparkSession, source: TableSource, name: str) -> DataFrame:
    from pyspark.errors import AnalysisException

    fmt = source.resolved_format
    if fmt == "duckdb":
        raise ConfigError(
            f"`data.{name}` is a DuckDB file, which Spark cannot read; export it to Parquet "
            "or use `engine: duckdb`"
        )
    try:
        reader = spark.read
        if fmt == "csv":
            return reader.option("header", True).csv(str(source.path))
        return reader.parquet(str(source.path))
    except AnalysisException as err:
        first = str(err).splitlines()[0]
        raise DataError(
            f"cannot read {name} from {str(source.path)!r} with Spark as {fmt}: {first}"
        ) from None


def _check(
    frame: DataFrame,
    name: str,
    required: list[str],
    unique: str | None = None,
    extra: dict[str, Any] | None = None,
) -> DataFrame:
    """Count every contract problem in one aggregation; return the frame without the
    helper columns (``_raw_*`` and the like) kept for the checks."""
    from pyspark.sql import functions as F

    raw = [c for c in frame.columns if c.startswith("_raw_")]
    checks: dict[str, Any] = {"rows": F.count(F.lit(1))}
    for column in required:
        checks[f"{name}.{column}: null values"] = F.sum(F.col(column).isNull().cast("int"))
    for column in raw:
        canonical = column.removeprefix("_raw_")
        checks[f"{name}.{canonical}: values that do not parse"] = F.sum(
            (F.col(column).isNotNull() & F.col(canonical).isNull()).cast("int")
        )
    if unique is not None:
        checks[f"{name}.{unique}: duplicate values"] = F.count(unique) - F.countDistinct(unique)
    for label, expression in (extra or {}).items():
        checks[f"{name}: {label}"] = expression
    row = frame.agg(*(expr.alias(f"c{i}") for i, expr in enumerate(checks.values()))).first()
    counts = dict(zip(checks, row, strict=True))
    problems = [
        f"{label}: {int(n):,} row(s)" for label, n in counts.items() if label != "rows" and n
    ]
    if not counts["rows"]:
        problems.insert(0, f"{name}: the table has no rows")
    if problems:
        header = f"{name} breaks the data contract ({len(problems)} problem(s)):"
        raise DataError("\n  - ".join([header, *problems]))
    return frame.drop(*[c for c in frame.columns if c.startswith("_")])
