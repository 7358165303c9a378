"""The DuckDB engine: CSV, Parquet (file, folder or glob) and DuckDB tables on one machine.

Each source becomes a view ``churnkit_src_<table>`` with the user's columns renamed to
churnkit's canonical ones and cast with ``TRY_CAST`` (the text kept beside as
``_raw_<column>`` for the data contract to count and show what did not parse);
timestamps come out as naive UTC. Published tables are views ``churnkit_<table>``,
which :func:`run_feature_query` reads; nothing passes through pandas
until a result is fetched.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import glob
import gzip
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa
from ibis.backends.sql.datatypes import DuckDBType

from churnkit._duckdb import connect, joins_build_as_written, memory_limit_as_error
from churnkit.data.contract import check_columns
from churnkit.engines import RAW_PREFIX, TEXT_OFFSET, SQLEngine, source_schema
from churnkit.errors import DataError
from churnkit.features import feature_table, finish_frame

if TYPE_CHECKING:  # pragma: no cover
    from churnkit.config import DataConfig, TableSource
    from churnkit.features.spec import FeatureSpec

__all__ = [
    "DuckDBEngine",
    "as_utf8",
    "build_features",
    "copy_features",
    "csv_files",
    "is_csv",
    "run_feature_query",
    "visible",
]

_DUCKDB_TYPES = {"string": "VARCHAR", "timestamp": "TIMESTAMP", "float64": "DOUBLE"}
_PREFIX = "churnkit_"  # the names run_feature_query reads


class DuckDBEngine(SQLEngine):
    """Views over the configured files on one DuckDB connection."""

    name = "duckdb"
    dialect = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        super().__init__(_PREFIX)  # the names run_feature_query reads
        self.con = con
        self._event_types: tuple[str, ...] | None = None

    def read_source(
        self,
        name: str,
        source: TableSource,
        data: DataConfig,
        extra_columns: tuple[str, ...] = (),
    ) -> ir.Table:
        # zone-aware values meeting naive ones (a glob of both kinds of Parquet files) are
        # converted in the session's zone: `data.timezone`, never the host's
        self.con.execute(f"SET TimeZone = {_literal(data.timezone)}")
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

    def repeats(self, table: ir.Table, column: str) -> bool:
        # Sorting the values' 64-bit hashes with numpy and comparing neighbours: DuckDB's
        # exact distinct count took 1.4 to 2.5 s of CPU on the 10M order ids of the
        # 1M-customer data, this 0.35 s. Equal hashes (repeats, or a collision: about one
        # chance in 300,000 at 10M distinct values) are confirmed by the exact count.
        values = ibis.to_sql(table.filter(table[column].notnull()).select(column), self.dialect)
        hashes = self.con.sql(f"SELECT hash({_quote(column)}) AS h FROM ({values})").fetchnumpy()
        ordered = np.sort(hashes["h"])
        if not (ordered[1:] == ordered[:-1]).any():
            return False
        return super().repeats(table, column)

    def plain_text(self, table: ir.Table, column: str, max_bytes: int) -> bool:
        # The values' bytes straight from Arrow's buffers: a control character is a byte
        # below 0x20 or 0x7f in UTF-8 (a character of several bytes has none). DuckDB's
        # regular expression took 1.5 s of CPU on the 21M event ids of the 1M-customer
        # data, this 0.6 s.
        values = ibis.to_sql(table.select(column), self.dialect)
        for batch in self.con.sql(values).to_arrow_reader(1 << 20):
            if not _plain_text(batch.column(0), max_bytes):
                return False
        return True

    def features(
        self, as_of_dates: Sequence[dt.date], spec: FeatureSpec, *, horizon_days: int | None
    ) -> pd.DataFrame:
        return run_feature_query(
            self.con,
            as_of_dates,
            spec,
            horizon_days=horizon_days,
            event_types=self._written_event_types(spec),
        )

    def write_features(self, as_of: dt.date, spec: FeatureSpec, out: Path) -> int:
        # DuckDB writes the file itself: fetching the table into pandas and writing it
        # from there cost about 1 s more CPU at 1M customers
        return copy_features(
            self.con,
            [as_of],
            spec,
            out,
            compression="snappy",
            event_types=self._written_event_types(spec),
        )

    def _written_event_types(self, spec: FeatureSpec) -> tuple[str, ...] | None:
        # read once per engine (about 0.1 s over 21M events), not once per feature query:
        # the published events do not change
        if self._event_types is None and _needs_event_types(self.con, spec):
            self._event_types = _event_types(self.con)
        return self._event_types

    def running(self, what: str) -> contextlib.AbstractContextManager[None]:
        return memory_limit_as_error(self.con, what)

    def close(self) -> None:
        # DuckDB keeps memory from its queries for the next; training wants it back
        self.con.close()

    def _query(self, sql: str) -> pd.DataFrame:
        return self.con.sql(sql).df()

    def _create_view(self, name: str, view: str, sql: str) -> None:
        self.con.execute(f"CREATE OR REPLACE VIEW {_quote(view)} AS {sql}")
        if name == "events":  # new events, perhaps new types: read them again
            self._event_types = None


def _plain_text(values: pa.Array, max_bytes: int) -> bool:
    """Whether no value of a text array is longer than ``max_bytes`` bytes or holds a
    control byte (a null's bytes, if it has any, count too: a false alarm at worst)."""
    if not pa.types.is_string(values.type):
        values = values.cast(pa.large_string())
    width = np.int32 if pa.types.is_string(values.type) else np.int64
    _, offsets, data = values.buffers()
    ends = np.frombuffer(offsets, dtype=width)[values.offset : values.offset + len(values) + 1]
    if len(ends) < 2 or ends[-1] == ends[0]:
        return True
    if np.diff(ends).max() > max_bytes:
        return False
    text = np.frombuffer(data, dtype=np.uint8)[ends[0] : ends[-1]]
    return bool(text.min() >= 0x20) and not bool((text == 0x7F).any())


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
            try:
                with as_utf8(csv_files(path, name), source.encoding) as files:
                    con.read_csv([str(f) for f in files], all_varchar=True, **options).create(text)
            except UnicodeDecodeError as err:
                raise DataError(
                    f"{name} is not {source.encoding} text (byte {err.object[err.start]:#04x} "
                    f"at offset {err.start:,} of a block); set `data.{name}.encoding` to the "
                    "file's encoding, e.g. utf-8 or cp1252"
                ) from err
            return con.table(text)
        # by name: files of one glob may differ in column order or in timestamp kinds
        # (naive and zone-aware: read as instants, the naive ones in the session's zone)
        several = has_glob or path.is_dir()
        return con.read_parquet(target, hive_partitioning=path.is_dir(), union_by_name=several)
    except duckdb.Error as err:
        first_line = str(err).splitlines()[0]
        raise DataError(f"cannot read {name} from {str(path)!r} as {fmt}: {first_line}") from err


def visible(path: Path) -> bool:
    """Not a hidden file (``.~lock.orders.csv#``, ``._orders.csv``, ``_SUCCESS``)."""
    return not path.name.startswith((".", "_"))


def is_csv(path: Path) -> bool:
    """A text export by its name: ``.csv``, ``.tsv`` or ``.txt``, perhaps gzipped."""
    return Path(path.name.lower().removesuffix(".gz")).suffix in (".csv", ".tsv", ".txt")


def csv_files(path: Path, name: str) -> list[Path]:
    """The files of a CSV source: the file, the matches of a glob, or the CSV files in a
    folder (a table exported in parts; hidden files, ``.*`` and ``_*``, left out as Spark
    does), in name order."""
    if path.is_dir():
        files = [f for f in sorted(path.rglob("*")) if f.is_file() and is_csv(f) and visible(f)]
    elif any(ch in str(path) for ch in "*?["):
        files = sorted(Path(f) for f in glob.glob(str(path), recursive=True) if Path(f).is_file())
    else:
        return [path]
    if not files:
        raise DataError(
            f"{name} source {str(path)!r} matches no CSV file; check `data.{name}.path` "
            "in the config"
        )
    return files


@contextlib.contextmanager
def as_utf8(paths: Sequence[Path], encoding: str) -> Iterator[list[Path]]:
    """``paths`` re-encoded as UTF-8 in temporary files (``paths`` themselves when they
    are UTF-8 already).

    DuckDB reads only UTF-8 CSV without its ``encodings`` extension, which is downloaded
    on first use (not possible offline); Python's codecs re-encode each file, streamed in
    1 MiB blocks (through gzip for ``.gz``), and the copies live only while DuckDB reads
    them into its table.
    """
    if encoding in ("utf-8", "utf_8"):
        yield list(paths)
        return
    with tempfile.TemporaryDirectory(prefix="churnkit-csv-") as folder:
        copies = []
        for number, path in enumerate(paths):
            compressed = path.name.lower().endswith(".gz")  # the copy is not compressed
            copy = Path(folder) / f"{number}-{path.name[:-3] if compressed else path.name}"
            with (
                (gzip.open if compressed else open)(
                    path, "rt", encoding=encoding, newline=""
                ) as source,
                open(copy, "w", encoding="utf-8", newline="") as out,
            ):
                shutil.copyfileobj(source, out, 1 << 20)
            copies.append(copy)
        yield copies


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
    if timezone != "UTC":
        naive = f"timezone('UTC', timezone({_literal(timezone)}, {naive}))"
    if not text or source.timestamp_format:
        return naive
    # text with its own offset (2024-07-01 10:00:00+02:00, ...Z): that instant in UTC;
    # a cast to TIMESTAMP would drop the offset. Without one: the configured zone above.
    offset = f"regexp_matches(trim({column}), {_literal(TEXT_OFFSET)})"
    return (
        f"CASE WHEN {offset} THEN timezone('UTC', TRY_CAST({column} AS TIMESTAMPTZ)) "
        f"ELSE {naive} END"
    )


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# -- the feature query on DuckDB ---------------------------------------------------


def build_features(
    orders: pd.DataFrame,
    as_of_dates: Sequence[dt.date],
    spec: FeatureSpec,
    *,
    events: pd.DataFrame | None = None,
    customers: pd.DataFrame | None = None,
    horizon_days: int | None = None,
) -> pd.DataFrame:
    """Features for the population at each ``as_of``, and labels when asked, on DuckDB.

    Parameters
    ----------
    orders
        Validated orders with canonical columns.
    as_of_dates
        Snapshot dates; all are computed in one query.
    spec
        See :func:`resolve_feature_spec`.
    events, customers
        Validated optional tables, needed for engagement and attribute features.
    horizon_days
        When given, adds ``churned`` for the label window ``[as_of, as_of + horizon)``.

    Returns
    -------
    pandas.DataFrame
        ``customer_id``, ``as_of``, the columns of :func:`feature_names`,
        ``customer_value_365d``, ``segment`` (recency bucket), ``rfm_segment`` when
        segments are on, and ``churned`` with a horizon; sorted by ``as_of`` then
        ``customer_id``.

    Examples
    --------
    >>> spec = FeatureSpec(windows_days=(30, 90), activity_days=365)
    >>> build_features(orders, [dt.date(2025, 1, 1)], spec)  # doctest: +SKIP
    """
    inputs = {
        "orders": _input(orders, _ORDER_TYPES),
        "events": _input(events, _EVENT_TYPES) if spec.has("engagement") else None,
        "customers": (_input(customers, _customer_types(spec)) if spec.has("attributes") else None),
    }
    con = connect()
    try:
        for name, table in inputs.items():
            if table is not None:
                con.register(f"{TABLE_PREFIX}{name}", table)
        return run_feature_query(con, as_of_dates, spec, horizon_days=horizon_days)
    finally:
        con.close()


TABLE_PREFIX = _PREFIX


def run_feature_query(
    con: duckdb.DuckDBPyConnection,
    as_of_dates: Sequence[dt.date],
    spec: FeatureSpec,
    *,
    horizon_days: int | None = None,
    event_types: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Run the feature query on a DuckDB connection that holds the input tables.

    The connection must have ``churnkit_orders`` (and ``churnkit_events`` or
    ``churnkit_customers`` when the spec uses them) with canonical column names: tables,
    views over files, or registered Arrow tables. This is how large data stays in DuckDB
    (out of core with a ``memory_limit``) instead of passing through pandas. A plain
    ``duckdb.connect()`` has a spill directory, which costs memory and time even far
    below the limit (see :func:`churnkit._duckdb.connect`); ``SET temp_directory = ''``
    when the data fits in memory. ``event_types`` are the distinct ``event_type`` values
    of the events as written, read from them when not given.
    """
    with (
        _feature_sql(con, as_of_dates, spec, horizon_days, event_types) as sql,
        memory_limit_as_error(con, "building features"),
    ):
        frame = con.execute(sql).df()
    return finish_frame(frame, spec)


@contextlib.contextmanager
def _feature_sql(
    con: duckdb.DuckDBPyConnection,
    as_of_dates: Sequence[dt.date],
    spec: FeatureSpec,
    horizon_days: int | None,
    event_types: Sequence[str] | None = None,
) -> Iterator[str]:
    """The cached feature SQL for ``con``'s input tables, with the grid registered and
    each join building from the table it adds (see ``joins_build_as_written``)."""
    schemas = tuple(
        (name, _schema_key(con, name)) for name in ("orders", "events", "customers", "order_items")
    )
    written = None
    if _needs_event_types(con, spec):
        written = tuple(event_types) if event_types is not None else _event_types(con)
    dates = sorted(set(as_of_dates))
    one = dates[0] if len(dates) == 1 else None
    sql = _duckdb_sql(spec, horizon_days, schemas, one, written)
    con.register(f"{TABLE_PREFIX}grid", _grid(as_of_dates))
    try:
        with joins_build_as_written(con):
            yield sql
    finally:
        con.unregister(f"{TABLE_PREFIX}grid")


_ORDER_TYPES = {
    "customer_id": pa.string(),
    "ordered_at": pa.timestamp("us"),
    "amount": pa.float64(),
    "status": pa.string(),
    "category": pa.string(),
    "channel": pa.string(),
}
_EVENT_TYPES = {
    "customer_id": pa.string(),
    "occurred_at": pa.timestamp("us"),
    "event_type": pa.string(),
    "value": pa.float64(),
}


def _customer_types(spec: FeatureSpec) -> dict[str, pa.DataType]:
    types = {"customer_id": pa.string(), "signed_up_at": pa.timestamp("us")}
    return types | dict.fromkeys(spec.attributes, pa.string())


def _input(frame: pd.DataFrame | None, types: dict[str, pa.DataType]) -> pa.Table | None:
    """The columns churnkit uses, as an Arrow table with fixed types."""
    if frame is None:
        return None
    columns = [c for c in types if c in frame.columns]
    arrays = []
    for column in columns:
        values = frame[column]
        if pa.types.is_string(types[column]):
            values = values.astype("str")  # vectorised; missing values stay missing
        arrays.append(pa.array(values, type=types[column], from_pandas=True))
    return pa.table(dict(zip(columns, arrays, strict=True)))


def _schema_key(con: duckdb.DuckDBPyConnection, name: str) -> tuple[tuple[str, str], ...] | None:
    try:
        relation = con.table(f"{TABLE_PREFIX}{name}")
    except duckdb.CatalogException:
        return None
    return tuple(
        (column, str(DuckDBType.from_string(str(dtype))))
        for column, dtype in zip(relation.columns, relation.dtypes, strict=True)
    )


def _grid(as_of_dates: Sequence[dt.date]) -> pa.Table:
    dates = sorted(set(as_of_dates))
    midnights = [dt.datetime.combine(d, dt.time()) for d in dates]
    return pa.table(
        {"as_of": pa.array(dates, pa.date32()), "as_of_ts": pa.array(midnights, pa.timestamp("us"))}
    )


@functools.lru_cache(maxsize=64)
def _duckdb_sql(
    spec: FeatureSpec,
    horizon_days: int | None,
    schemas: tuple,
    as_of: dt.date | None,
    event_types: tuple[str, ...] | None,
) -> str:
    """The feature query as DuckDB SQL over the registered ``churnkit_*`` tables.

    With one snapshot (``as_of``), its date is a constant of the query; with several
    (None), the query joins the registered grid and splits each snapshot's history.
    Compiling the Ibis expression costs far more than running it on small inputs, so
    the SQL is built once per spec, horizon, input schemas, snapshot and event types
    as written.
    """
    tables = {
        name: None if schema is None else ibis.table(dict(schema), name=f"{TABLE_PREFIX}{name}")
        for name, schema in schemas
    }
    grid = ibis.table({"as_of": "date", "as_of_ts": "timestamp"}, name=f"{TABLE_PREFIX}grid")
    expr = feature_table(
        tables["orders"],
        grid if as_of is None else as_of,
        spec,
        events=tables["events"],
        customers=tables["customers"],
        order_items=tables["order_items"],
        event_types=event_types,
        horizon_days=horizon_days,
        split_history=as_of is None,
    ).order_by(["as_of", "customer_id"])
    return ibis.to_sql(expr, dialect="duckdb")


def copy_features(
    con: duckdb.DuckDBPyConnection,
    as_of_dates: Sequence[dt.date],
    spec: FeatureSpec,
    out: Path,
    *,
    horizon_days: int | None = None,
    compression: str = "zstd",
    event_types: Sequence[str] | None = None,
) -> int:
    """Like :func:`run_feature_query`, but DuckDB writes the result to Parquet itself.

    Nothing passes through pandas, so with a ``memory_limit`` and a ``temp_directory``
    DuckDB can build features for more data than fits in memory. Returns the row count.
    """
    options = f"FORMAT parquet, COMPRESSION {compression}"
    with (
        _feature_sql(con, as_of_dates, spec, horizon_days, event_types) as sql,
        memory_limit_as_error(con, "building features"),
    ):
        con.execute(f"COPY ({sql}) TO '{_sql_text(str(out))}' ({options})")
    return con.execute(f"SELECT count(*) FROM read_parquet('{_sql_text(str(out))}')").fetchall()[0][
        0
    ]


def _needs_event_types(con: duckdb.DuckDBPyConnection, spec: FeatureSpec) -> bool:
    return spec.has("engagement") and _schema_key(con, "events") is not None


def _event_types(con: duckdb.DuckDBPyConnection) -> tuple[str, ...]:
    """The distinct event types of ``churnkit_events`` as written, sorted."""
    found = con.execute(
        f"SELECT DISTINCT event_type FROM {TABLE_PREFIX}events WHERE event_type IS NOT NULL"
    ).fetchall()
    return tuple(sorted(str(row[0]) for row in found))


def _sql_text(text: str) -> str:
    return text.replace("'", "''")
