"""The data contract's tables as DuckDB views over the files, checked in SQL.

For steps that only need features (scoring, the feature table, backtests) the tables
never pass through pandas: each becomes a view ``churnkit_<table>`` with canonical names
and types, statuses mapped, and is checked with one SQL aggregation (null required
values, unmapped statuses, negative amounts not marked as returns, duplicate ids, empty
table) plus the unparsable values the reader counts. Every problem is reported in one
:class:`~churnkit.errors.DataError`, like the pandera check of the in-memory path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb

from churnkit._duckdb import connect
from churnkit.config import DataConfig
from churnkit.data.readers import canonical_relation
from churnkit.errors import DataError

__all__ = ["ViewTables", "register_views"]

PREFIX = "churnkit_"


@dataclass(frozen=True)
class ViewTables:
    """A DuckDB connection holding the checked ``churnkit_*`` views."""

    con: duckdb.DuckDBPyConnection
    names: tuple[str, ...]

    def has(self, name: str) -> bool:
        return name in self.names

    def columns(self, name: str) -> list[str]:
        return list(self.con.table(PREFIX + name).columns)

    def summary(self) -> dict[str, Any]:
        """Rows, customers and date range of the orders, like ``summarise_orders``."""
        rows, customers, first, last = self.con.execute(
            f"SELECT count(*), count(DISTINCT customer_id), min(ordered_at), max(ordered_at) "
            f"FROM {PREFIX}orders"
        ).fetchall()[0]
        return {
            "orders": int(rows),
            "customers": int(customers),
            "first_order_at": first.isoformat(),
            "last_order_at": last.isoformat(),
        }

    def event_types(self) -> list[str]:
        rows = self.con.execute(
            f"SELECT DISTINCT event_type FROM {PREFIX}events WHERE event_type IS NOT NULL"
        ).fetchall()
        return sorted(r[0] for r in rows)

    def table_counts(self, name: str) -> dict[str, int]:
        rows, customers = self.con.execute(
            f"SELECT count(*), count(DISTINCT customer_id) FROM {PREFIX}{name}"
        ).fetchall()[0]
        return {"rows": int(rows), "customers": int(customers)}


def register_views(cfg: DataConfig, con: duckdb.DuckDBPyConnection | None = None) -> ViewTables:
    """Create and check the ``churnkit_*`` views of the config's tables.

    Raises
    ------
    DataError
        When a source is missing a column or breaks the data contract.
    """
    con = con or connect()
    names = ["orders"]
    orders, problems = canonical_relation(
        con, cfg.orders, name="orders", timezone=cfg.timezone, config_file=cfg.config_file
    )
    mapped, checks = _orders(orders, cfg)
    unique = "order_id" if "order_id" in orders.columns else None
    required = ["customer_id", "ordered_at", "amount", *([unique] if unique else [])]
    _check(orders, "orders", problems, required, checks, unique=unique)  # source statuses
    mapped.create_view(PREFIX + "orders")
    if cfg.events is not None:
        events, problems = canonical_relation(
            con, cfg.events, name="events", timezone=cfg.timezone, config_file=cfg.config_file
        )
        _check(events, "events", problems, ["customer_id", "occurred_at", "event_type"], {})
        events.create_view(PREFIX + "events")
        names.append("events")
    if cfg.customers is not None:
        customers, problems = canonical_relation(
            con,
            cfg.customers,
            name="customers",
            timezone=cfg.timezone,
            config_file=cfg.config_file,
            extra_columns=cfg.customers.attributes,
        )
        _check(customers, "customers", problems, ["customer_id"], {}, unique="customer_id")
        customers.create_view(PREFIX + "customers")
        names.append("customers")
    return ViewTables(con, tuple(names))


def _orders(
    relation: duckdb.DuckDBPyRelation, cfg: DataConfig
) -> tuple[duckdb.DuckDBPyRelation, dict[str, str]]:
    """Statuses mapped as the pandas path maps them, and the checks (SQL over the source
    relation, before mapping) that the mapping needs."""
    columns = [c for c in relation.columns if c != "status"]
    checks: dict[str, str] = {}
    if "status" in relation.columns:
        cases = " ".join(
            f"WHEN status = {_literal(raw)} THEN {_literal(canonical)}"
            for raw, canonical in cfg.orders.status_values.items()
        )
        mapped = f"CASE {cases} END" if cases else "NULL"
        checks["status: values that `data.orders.status_values` does not map"] = (
            f"count(*) FILTER (WHERE status IS NOT NULL AND ({mapped}) IS NULL)"
        )
        status = mapped
    elif cfg.on_negative_amount == "treat_as_return":
        status = "'completed'"
    else:
        status = None
    if cfg.on_negative_amount == "treat_as_return":
        status = f"CASE WHEN amount < 0 THEN 'returned' ELSE {status} END"
    else:
        marked = f"coalesce(({status}) = 'returned', false)" if status else "false"
        checks[
            "amount: negative amounts on orders not marked as returns (mark them in the status "
            "column or set `data.on_negative_amount: treat_as_return`)"
        ] = f"count(*) FILTER (WHERE amount < 0 AND NOT {marked})"
    if status is not None:
        columns.append(f"{status} AS status")
    return relation.project(", ".join(columns)), checks


def _check(
    relation: duckdb.DuckDBPyRelation,
    name: str,
    problems: list[str],
    required: list[str],
    checks: dict[str, str],
    *,
    unique: str | None = None,
) -> None:
    """One aggregation counting every problem; raise them all together with ``problems``."""
    counts = {"rows": "count(*)"}
    for column in required:
        counts[f"{column}: null values"] = f"count(*) FILTER (WHERE {column} IS NULL)"
    if unique is not None:
        counts[f"{unique}: duplicate values"] = f"count({unique}) - count(DISTINCT {unique})"
    counts.update(checks)
    values = relation.aggregate(
        ", ".join(f"{sql} AS c{i}" for i, sql in enumerate(counts.values()))
    ).fetchall()[0]
    found = dict(zip(counts, values, strict=True))
    problems = list(problems)
    if not found.pop("rows"):
        problems.insert(0, f"{name}: the table has no rows")
    problems += [f"{name}.{label}: {int(n):,} row(s)" for label, n in found.items() if n]
    if problems:
        header = f"{name} breaks the data contract ({len(problems)} problem(s)):"
        raise DataError("\n  - ".join([header, *problems]))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
