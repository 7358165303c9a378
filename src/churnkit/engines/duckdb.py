"""The DuckDB engine: CSV, Parquet (file, folder or glob) and DuckDB tables on one machine.

Each source becomes a view ``churnkit_src_<table>`` with the user's columns renamed to
churnkit's canonical ones and cast with ``TRY_CAST`` (the text kept beside as
``_raw_<column>`` for the data contract to count and show what did not parse);
timestamps come out as naive UTC. Published tables are views ``churnkit_<table>``,
which :func:`churnkit.features.run_feature_query` reads; nothing passes through pandas
until a result is fetched.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import ibis
import ibis.expr.types as ir
import pandas as pd

from churnkit.data.contract import check_columns
from churnkit.engines import RAW_PREFIX, SQLEngine, source_schema
from churnkit.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from churnkit.config import DataConfig, TableSource
    from churnkit.features.spec import FeatureSpec

__all__ = ["DuckDBEngine", "as_utf8"]

_DUCKDB_TYPES = {"string": "VARCHAR", "timestamp": "TIMESTAMP", "float64": "DOUBLE"}
_PREFIX = "churnkit_"


class DuckDBEngine(SQLEngine):
    """Views over the configured files on one DuckDB connection."""

    name = "duckdb"
    dialect = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        super().__init__(_PREFIX)  # the names run_feature_query reads
        self.con = con

    def read_source(
        self,
        name: str,
        source: TableSource,
        data: DataConfig,
        extra_columns: tuple[str, ...] = (),
    ) -> ir.Table:
        relation = _scan(self.con, source, name)
        available = list(relation.columns)
        check_columns(source, name, available, data.config_file, extra_columns)
        types = dict(zip(relation.columns, relation.dtypes, strict=True))
        schema = source_schema(source, available, extra_columns)
        expressions, raw = [], {}
        for canonical, kind in schema.items():
            original = canonical if canonical in extra_columns else source.source_column(canonical)
            column = _quote(original)
            if canonical in extra_columns:
                expressions.append(f"CAST({column} AS VARCHAR) AS {_quote(canonical)}")
                continue
            expression = _cast(
                column, str(types[original]), _DUCKDB_TYPES[kind], data.timezone, source
            )
            expressions.append(f"{expression} AS {_quote(canonical)}")
            if "TRY_" in expression.upper():  # it can fail: keep the text for the contract
                expressions.append(f"CAST({column} AS VARCHAR) AS {_quote(RAW_PREFIX + canonical)}")
                raw[RAW_PREFIX + canonical] = "string"
        view = f"{_PREFIX}src_{name}"
        relation.project(", ".join(expressions)).create_view(view)
        return ibis.table(schema | raw, name=view)

    def features(
        self, as_of_dates: Sequence[dt.date], spec: FeatureSpec, *, horizon_days: int | None
    ) -> pd.DataFrame:
        from churnkit.features import run_feature_query

        return run_feature_query(self.con, as_of_dates, spec, horizon_days=horizon_days)

    def _query(self, sql: str) -> pd.DataFrame:
        return self.con.sql(sql).df()

    def _create_view(self, name: str, view: str, sql: str) -> None:
        self.con.execute(f"CREATE OR REPLACE VIEW {_quote(view)} AS {sql}")


def _scan(
    con: duckdb.DuckDBPyConnection, source: TableSource, name: str
) -> duckdb.DuckDBPyRelation:
    if source.resolved_format == "postgresql":
        from churnkit.engines.postgres import read_postgres

        registered = f"{_PREFIX}pg_{name}"  # the connection keeps the Arrow table alive
        con.register(registered, read_postgres(source, name))
        return con.table(registered)
    path = source.path
    assert path is not None
    has_glob = any(ch in str(path) for ch in "*?[")
    if not has_glob and not path.exists():
        raise DataError(
            f"{name} source {str(path)!r} does not exist; check `data.{name}.path` in the config"
        )
    fmt = source.resolved_format
    try:
        if fmt == "duckdb":
            alias = f"{_PREFIX}db_{name}"
            con.execute(f"ATTACH {_literal(str(path))} AS {_quote(alias)} (READ_ONLY)")
            return con.table(f"{_quote(alias)}.{_quote(source.table or '')}")
        target = str(path / "**" / "*.parquet") if path.is_dir() else str(path)
        if fmt == "csv":
            # Read text into a temp table and cast afterwards with TRY_CAST, so bad values
            # are counted, not fatal: DuckDB pushes casts on a CSV scan down into the
            # reader, where they become strict.
            text = f"{_PREFIX}csv_{name}"
            options = {"sep": source.separator} if source.separator else {}
            with as_utf8(path if not path.is_dir() else None, source.encoding) as utf8:
                con.read_csv(str(utf8 or target), all_varchar=True, **options).create(text)
            return con.table(text)
        return con.read_parquet(target, hive_partitioning=path.is_dir())
    except duckdb.Error as err:
        first_line = str(err).splitlines()[0]
        raise DataError(f"cannot read {name} from {str(path)!r} as {fmt}: {first_line}") from err


@contextlib.contextmanager
def as_utf8(path: Path | None, encoding: str) -> Iterator[Path | None]:
    """``path`` re-encoded as UTF-8 in a temporary file (None when it is UTF-8 already).

    DuckDB reads only UTF-8 CSV without its ``encodings`` extension, which is downloaded
    on first use (not possible offline); Python's codecs re-encode the file, streamed in
    1 MiB blocks, and the copy lives only while DuckDB reads it into its table.
    """
    if path is None or encoding in ("utf-8", "utf_8"):
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="churnkit-csv-") as folder:
        target = Path(folder) / path.name
        with (
            open(path, encoding=encoding, newline="") as source,
            open(target, "w", encoding="utf-8", newline="") as out,
        ):
            shutil.copyfileobj(source, out, 1 << 20)
        yield target


def _cast(column: str, source_type: str, target: str, timezone: str, source: TableSource) -> str:
    text = source_type.upper() == "VARCHAR"
    if target == "DOUBLE" and text and source.decimal == ",":
        # 1.234,50: the dots group thousands, the comma is the decimal mark
        return f"TRY_CAST(replace(replace({column}, '.', ''), ',', '.') AS DOUBLE)"
    if target != "TIMESTAMP":
        return column if source_type.upper() == target else f"TRY_CAST({column} AS {target})"
    if "WITH TIME ZONE" in source_type.upper():
        return f"timezone('UTC', {column})"
    if text and source.timestamp_format:
        naive = f"try_strptime({column}, {_literal(source.timestamp_format)})"
    else:
        naive = column if source_type.upper() == "TIMESTAMP" else f"TRY_CAST({column} AS TIMESTAMP)"
    if timezone == "UTC":
        return naive
    return f"timezone('UTC', timezone({_literal(timezone)}, {naive}))"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
