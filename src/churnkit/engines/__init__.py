"""Where churnkit's tables are read and its Ibis expressions run.

An engine does three things, and nothing that is written once above it:

- **read** each configured table as a view with churnkit's canonical column names and
  types (:data:`CANONICAL_TYPES`), keeping beside every column it had to parse the
  source text as ``_raw_<column>``, so the data contract can count and show what did
  not parse. Parsing (CSV text, time zones) is the engine's own business;
- **run** an Ibis expression over its views and return a pandas frame;
- **publish** a checked table under its plain name (``orders``, ``events``,
  ``customers``) and build the feature table from the published ones.

The data contract (:mod:`churnkit.data.contract`), the summaries and the feature
definitions are Ibis expressions written once; :class:`~churnkit.engines.duckdb.
DuckDBEngine` (the default, one machine) and :class:`~churnkit.engines.spark.
SparkEngine` (``engine: spark``) run them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    import ibis.expr.types as ir
    import pandas as pd

    from churnkit.config import Config, DataConfig, TableSource
    from churnkit.features.spec import FeatureSpec

from churnkit.data.contract import RAW_PREFIX

__all__ = [
    "CANONICAL_TYPES",
    "Engine",
    "RAW_PREFIX",
    "SQLEngine",
    "TEXT_OFFSET",
    "open_engine",
    "source_schema",
]

# a timestamp's text that carries its own UTC offset (10:00:00+02:00, 10:00Z): both engines
# read such a value as that instant, whatever `data.timezone` says
TEXT_OFFSET = r"\d:\d\d(:\d\d(\.\d+)?)?\s*([+-]\d\d(:?\d\d)?|[Zz])$"

# canonical column -> Ibis type every engine casts it to
CANONICAL_TYPES: dict[str, str] = {
    "customer_id": "string",
    "order_id": "string",
    "product_id": "string",
    "ordered_at": "timestamp",
    "occurred_at": "timestamp",
    "signed_up_at": "timestamp",
    "contacted_at": "timestamp",
    "amount": "float64",
    "quantity": "float64",
    "value": "float64",
    "cost": "float64",
    "status": "string",
    "category": "string",
    "channel": "string",
    "event_type": "string",
    "play": "string",
}


class Engine(Protocol):
    """What the data contract, the summaries and the pipelines need from an engine."""

    name: str

    def read_source(
        self,
        name: str,
        source: TableSource,
        data: DataConfig,
        extra_columns: tuple[str, ...] = (),
    ) -> ir.Table:
        """The source as a view with canonical names and types plus ``_raw_*`` text.

        Raises ``DataError`` when the source does not exist or lacks a mapped column.
        """
        ...

    def fetch(self, expr: ir.Expr) -> pd.DataFrame:
        """Run an Ibis expression over the engine's views."""
        ...

    def publish(self, name: str, expr: ir.Table) -> ir.Table:
        """Make ``expr`` the table ``name`` that features and summaries read."""
        ...

    def repeats(self, table: ir.Table, column: str) -> bool:
        """Whether a value of ``column`` (nulls aside) occurs in more than one row."""
        ...

    def plain_text(self, table: ir.Table, column: str, max_bytes: int) -> bool:
        """True when no value of the text ``column`` is longer than ``max_bytes`` bytes
        (UTF-8) or holds a control character; False when some value may (a quick test
        before the exact one: False can be a false alarm, True is certain)."""
        ...

    def table(self, name: str) -> ir.Table | None:
        """The published table ``name``, or None when there is none."""
        ...

    def close(self) -> None:
        """Give back what the engine holds; its tables cannot be read after."""
        ...

    def features(
        self, as_of_dates: Sequence[dt.date], spec: FeatureSpec, *, horizon_days: int | None
    ) -> pd.DataFrame:
        """The feature table (and labels with ``horizon_days``) of the published tables."""
        ...

    def write_features(self, as_of: dt.date, spec: FeatureSpec, out: Path) -> int:
        """Write the feature table at ``as_of`` (as :meth:`features` gives it) to the
        Parquet file ``out``; its number of rows."""
        ...

    def running(self, what: str) -> AbstractContextManager[None]:
        """Around a long step: turns the engine's out-of-memory errors into one message
        naming ``what`` and the setting to change."""
        ...


class SQLEngine:
    """What both engines share: Ibis expressions compiled to the engine's SQL dialect over
    named views; the published tables are Ibis tables over views ``<prefix><name>``."""

    dialect: str

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._tables: dict[str, ir.Table] = {}

    def fetch(self, expr: ir.Expr) -> pd.DataFrame:
        import ibis

        return self._query(ibis.to_sql(expr, dialect=self.dialect))

    def publish(self, name: str, expr: ir.Table) -> ir.Table:
        import ibis

        view = f"{self.prefix}{name}"
        self._create_view(name, view, ibis.to_sql(expr, dialect=self.dialect))
        self._tables[name] = ibis.table(expr.schema(), name=view)
        return self._tables[name]

    def table(self, name: str) -> ir.Table | None:
        return self._tables.get(name)

    def plain_text(self, table: ir.Table, column: str, max_bytes: int) -> bool:
        return False  # no quick test: the data contract counts exactly

    def repeats(self, table: ir.Table, column: str) -> bool:
        values = table[column]
        return bool(self.fetch(table.aggregate(n=values.count() - values.nunique())).iloc[0, 0])

    def running(self, what: str) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def _query(self, sql: str) -> pd.DataFrame:
        raise NotImplementedError

    def _create_view(self, name: str, view: str, sql: str) -> None:
        raise NotImplementedError


def source_schema(
    source: TableSource, available: Sequence[str], extra_columns: tuple[str, ...] = ()
) -> dict[str, str]:
    """The canonical columns a source provides, with their types, in contract order."""
    return {
        canonical: CANONICAL_TYPES[canonical]
        for canonical in (*source.required_columns, *source.optional_columns)
        if source.needs(canonical) and source.source_column(canonical) in available
    } | dict.fromkeys(extra_columns, "string")


def open_engine(cfg: Config) -> Engine:
    """The engine the config names, with its settings (``duckdb:`` or ``spark:``)."""
    if cfg.engine == "spark":
        from churnkit.engines.spark import SparkEngine, spark_session

        return SparkEngine(spark_session(cfg.spark))
    from churnkit._duckdb import connect
    from churnkit.engines.duckdb import DuckDBEngine

    return DuckDBEngine(connect(cfg.duckdb.model_dump()))
