"""Read CSV, Parquet (file, folder or glob) and DuckDB tables through DuckDB.

The reader maps the user's column names to churnkit's canonical ones, casts each
column to its canonical type with ``TRY_CAST`` and counts the values that did not
parse, so that validation can report them together with every other problem.
Timestamps come out as naive UTC.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from churnkit._duckdb import connect
from churnkit.config import TableSource
from churnkit.errors import DataError

__all__ = ["CANONICAL_TYPES", "RawTable", "canonical_relation", "check_columns", "read_table"]

logger = logging.getLogger(__name__)

# canonical column -> DuckDB type it is cast to
CANONICAL_TYPES: dict[str, str] = {
    "customer_id": "VARCHAR",
    "order_id": "VARCHAR",
    "ordered_at": "TIMESTAMP",
    "occurred_at": "TIMESTAMP",
    "signed_up_at": "TIMESTAMP",
    "amount": "DOUBLE",
    "quantity": "DOUBLE",
    "value": "DOUBLE",
    "status": "VARCHAR",
    "category": "VARCHAR",
    "channel": "VARCHAR",
    "event_type": "VARCHAR",
}
_EXAMPLES = 3


@dataclass(frozen=True)
class RawTable:
    """A table read with canonical column names, and the values that did not parse."""

    name: str
    frame: pd.DataFrame
    parse_problems: list[str] = field(default_factory=list)


def read_table(
    source: TableSource,
    *,
    name: str,
    timezone: str = "UTC",
    config_file: str = "the config",
    extra_columns: tuple[str, ...] = (),
) -> RawTable:
    """Read one table of the data contract with canonical names and types.

    Parameters
    ----------
    source
        Where the table is and how its columns are named.
    name
        The table's role (``orders``, ``events``, ``customers``), used in messages.
    timezone
        Zone of naive timestamps; they are converted to naive UTC.
    config_file
        Shown in messages that ask the user to fix a mapping.
    extra_columns
        Further source columns to keep under their own names (customer attributes).

    Raises
    ------
    DataError
        When the source does not exist or lacks a required or mapped column.
    """
    relation, problems = canonical_relation(
        connect(),
        source,
        name=name,
        timezone=timezone,
        config_file=config_file,
        extra_columns=extra_columns,
    )
    frame = relation.df()
    logger.info("read %s: %d rows from %s", name, len(frame), source.path)
    return RawTable(name=name, frame=frame, parse_problems=problems)


def canonical_relation(
    con: duckdb.DuckDBPyConnection,
    source: TableSource,
    *,
    name: str,
    timezone: str = "UTC",
    config_file: str = "the config",
    extra_columns: tuple[str, ...] = (),
) -> tuple[duckdb.DuckDBPyRelation, list[str]]:
    """The source as a lazy DuckDB relation with canonical names and types, and the
    values that did not parse (counted now, one scan per cast column).

    Raises
    ------
    DataError
        When the source does not exist or lacks a required or mapped column.
    """
    relation = _scan(con, source, name)
    available = list(relation.columns)
    check_columns(source, name, available, config_file, extra_columns)

    selected = [
        c
        for c in source.required_columns + source.optional_columns
        if source.source_column(c) in available
    ]
    types = dict(zip(relation.columns, relation.dtypes, strict=True))
    expressions, problems = [], []
    for canonical in selected:
        column = _quote(source.source_column(canonical))
        target = CANONICAL_TYPES[canonical]
        expression = _cast(column, str(types[source.source_column(canonical)]), target, timezone)
        expressions.append(f"{expression} AS {_quote(canonical)}")
        problems += _parse_failures(relation, column, expression, name, canonical, target)
    expressions += [f"CAST({_quote(c)} AS VARCHAR) AS {_quote(c)}" for c in extra_columns]
    return relation.project(", ".join(expressions)), problems


def _scan(
    con: duckdb.DuckDBPyConnection, source: TableSource, name: str
) -> duckdb.DuckDBPyRelation:
    path = source.path
    has_glob = any(ch in str(path) for ch in "*?[")
    if not has_glob and not path.exists():
        raise DataError(
            f"{name} source {str(path)!r} does not exist; check `data.{name}.path` in the config"
        )
    fmt = source.resolved_format
    try:
        if fmt == "duckdb":
            con.execute(f"ATTACH {_literal(str(path))} AS src (READ_ONLY)")
            return con.table(f"src.{_quote(source.table or '')}")
        target = str(path / "**" / "*.parquet") if path.is_dir() else str(path)
        if fmt == "csv":
            # Read text into a temp table and cast afterwards with TRY_CAST, so bad values
            # are counted, not fatal: DuckDB pushes casts on a CSV scan down into the
            # reader, where they become strict.
            con.read_csv(target, all_varchar=True).create("csv_source")
            return con.table("csv_source")
        return con.read_parquet(target, hive_partitioning=path.is_dir())
    except duckdb.Error as err:
        first_line = str(err).splitlines()[0]
        raise DataError(f"cannot read {name} from {str(path)!r} as {fmt}: {first_line}") from err


def check_columns(
    source: TableSource,
    name: str,
    available: list[str],
    config_file: str,
    extra_columns: tuple[str, ...],
) -> None:
    wanted = list(source.required_columns) + [
        c for c in source.optional_columns if c in source.columns
    ]
    missing = [c for c in wanted if source.source_column(c) not in available]
    missing_extra = [c for c in extra_columns if c not in available]
    if not missing and not missing_extra:
        return
    parts = [
        f"column {source.source_column(c)!r}"
        + (f" (for {c!r})" if source.source_column(c) != c else "")
        for c in missing
    ] + [f"attribute column {c!r}" for c in missing_extra]
    keys = ", ".join(f"`data.{name}.columns.{c}`" for c in missing) or f"`data.{name}.attributes`"
    raise DataError(
        f"{name} is missing {', '.join(parts)}; got {available}. Map it in {keys} of {config_file}."
    )


def _cast(column: str, source_type: str, target: str, timezone: str) -> str:
    if target != "TIMESTAMP":
        return column if source_type.upper() == target else f"TRY_CAST({column} AS {target})"
    if "WITH TIME ZONE" in source_type.upper():
        return f"timezone('UTC', {column})"
    naive = column if source_type.upper() == "TIMESTAMP" else f"TRY_CAST({column} AS TIMESTAMP)"
    if timezone == "UTC":
        return naive
    return f"timezone('UTC', timezone({_literal(timezone)}, {naive}))"


def _parse_failures(
    relation: duckdb.DuckDBPyRelation,
    column: str,
    expression: str,
    name: str,
    canonical: str,
    target: str,
) -> list[str]:
    if expression == column:
        return []
    failed = relation.filter(f"{column} IS NOT NULL AND ({expression}) IS NULL")
    count = failed.aggregate("count(*)").fetchall()[0][0]
    if not count:
        return []
    examples = [
        row[0] for row in failed.project(f"CAST({column} AS VARCHAR)").limit(_EXAMPLES).fetchall()
    ]
    return [
        f"{name}.{canonical}: {count} value(s) do not parse as {target.lower()}, e.g. {examples}"
    ]


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
