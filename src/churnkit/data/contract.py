"""The data contract of DESIGN section 2, written once as Ibis expressions.

An engine reads each table with canonical names and types (and the text of every
column it had to parse, as ``_raw_<column>``); :func:`check_data` counts every problem
of a table in one aggregation (one scan), fetches a few examples of each problem found,
and reports them all in one :class:`~churnkit.errors.DataError`. The checked tables,
with statuses mapped to completed / returned / cancelled, are published on the engine
for the features and summaries to read. DuckDB and Spark run the same expressions, so a
rule is written once and reads the same on both.

Bad rows are never dropped silently: either the config says how to treat them
(``on_negative_amount: treat_as_return``) or the run stops.

pandera's Ibis backend was weighed for this: in pandera 0.35 a ``Column(unique=True)``
on an Ibis table is not checked at all (duplicates pass), and each check is a separate
query (a scan each), where one aggregation does the whole table here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import ibis
import ibis.expr.types as ir
import pandas as pd

from churnkit.config import ORDER_STATUSES, DataConfig, TableSource
from churnkit.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from churnkit.engines import Engine

__all__ = ["RAW_PREFIX", "check_columns", "check_data"]

# beside a column an engine had to parse, its source text: a value there and a null in
# the column is a value that did not parse
RAW_PREFIX = "_raw_"
_EXAMPLES = 3
_TYPE_WORDS = {"timestamp": "timestamp", "float64": "double", "string": "text"}


@dataclass(frozen=True)
class _Rule:
    """One contract rule: where it applies, how many rows break it, and how to say so."""

    column: str
    count: ir.IntegerScalar
    says: Callable[[int, list], str]
    examples: ir.Table | None = None  # one column of example values, fetched on failure
    how_many: int = _EXAMPLES


def check_data(engine: Engine, cfg: DataConfig) -> tuple[str, ...]:
    """Read, check and publish orders and, when configured, events and customers.

    Returns the names of the published tables.

    Raises
    ------
    DataError
        When a source is missing a column or breaks the contract: every problem of the
        table in one message, with counts and examples.
    """
    orders = engine.read_source("orders", cfg.orders, cfg)
    checked, rules = _orders(orders, cfg)
    engine.publish("orders", _enforce(engine, "orders", orders, checked, rules))
    names = ["orders"]
    if cfg.events is not None:
        events = engine.read_source("events", cfg.events, cfg)
        rules = _rules("events", events)
        engine.publish("events", _enforce(engine, "events", events, events, rules))
        names.append("events")
    if cfg.customers is not None:
        customers = engine.read_source(
            "customers", cfg.customers, cfg, extra_columns=cfg.customers.attributes
        )
        rules = _rules("customers", customers, unique="customer_id")
        engine.publish("customers", _enforce(engine, "customers", customers, customers, rules))
        names.append("customers")
    return tuple(names)


def check_columns(
    source: TableSource,
    name: str,
    available: Sequence[str],
    config_file: str,
    extra_columns: tuple[str, ...],
) -> None:
    """Refuse a source that lacks a required or mapped column, naming the config key."""
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
        f"{name} is missing {', '.join(parts)}; got {list(available)}. "
        f"Map it in {keys} of {config_file}."
    )


_REQUIRED = {
    "orders": ("customer_id", "ordered_at", "amount"),
    "events": ("customer_id", "occurred_at", "event_type"),
    "customers": ("customer_id",),
}


def _rules(name: str, table: ir.Table, *, unique: str | None = None) -> list[_Rule]:
    """Values that did not parse, missing required values and repeated ids."""
    rules = []
    for column in table.columns:
        if not column.startswith(RAW_PREFIX):
            continue
        canonical = column.removeprefix(RAW_PREFIX)
        failed = table[column].notnull() & table[canonical].isnull()
        word = _TYPE_WORDS[str(table.schema()[canonical]).split("(")[0]]
        rules.append(
            _Rule(
                canonical,
                failed.sum(),
                lambda n, e, word=word: f"{n:,} value(s) do not parse as {word}, e.g. {e}",
                table.filter(failed).select(table[column]).order_by(column),
            )
        )
    for column in (*_REQUIRED[name], *([unique] if unique else [])):
        if column not in table.columns:
            continue
        missing = table[column].isnull()
        if RAW_PREFIX + column in table.columns:  # unparsable values are counted above
            missing &= table[RAW_PREFIX + column].isnull()
        rules.append(_Rule(column, missing.sum(), lambda n, e: f"{n:,} null value(s)"))
    if unique is not None and unique in table.columns:
        repeated = table.group_by(unique).aggregate(_n=table.count()).filter(ibis._._n > 1)
        rules.append(
            _Rule(
                unique,
                table[unique].count() - table[unique].nunique(),
                lambda n, e: f"{n:,} duplicate value(s) (rows repeating an id), e.g. {e}",
                repeated.select(unique).order_by(unique),
            )
        )
    return rules


def _orders(source: ir.Table, cfg: DataConfig) -> tuple[ir.Table, list[_Rule]]:
    """The orders with statuses mapped, and every rule they must keep.

    ``status`` is mapped through ``data.orders.status_values`` to completed, returned or
    cancelled. Without a status column every order counts as completed and the returns
    features are off, unless ``on_negative_amount: treat_as_return`` is set: then a
    status column is made, with negative amounts as returns. Otherwise negative amounts
    must be marked as returns.
    """
    unique = "order_id" if "order_id" in source.columns else None
    rules = _rules("orders", source, unique=unique)
    status: ir.StringValue | None = None
    if "status" in source.columns:
        mapping = cfg.orders.status_values
        given = source["status"]
        status = (
            given.cases(*mapping.items(), else_=None) if mapping else ibis.null().cast("string")
        )
        unmapped = given.notnull() & status.isnull()
        rules.append(
            _Rule(
                "status",
                unmapped.sum(),
                lambda n, e: (
                    f"{n:,} row(s) have values {e} that `data.orders.status_values` does not "
                    f"map to {'/'.join(ORDER_STATUSES)}"
                ),
                source.filter(unmapped).select(given.name("status")).distinct().order_by("status"),
                how_many=5,
            )
        )
    elif cfg.on_negative_amount == "treat_as_return":
        status = ibis.literal("completed")
    negative = source["amount"] < 0
    if cfg.on_negative_amount == "treat_as_return":
        status = ibis.ifelse(negative, "returned", status)
    else:
        unmarked = negative
        if status is not None:
            unmarked &= ~(status == "returned").fill_null(False)
        rules.append(
            _Rule(
                "amount",
                unmarked.sum(),
                lambda n, e: (
                    f"{n:,} negative amount(s) on orders not marked as returns, e.g. {e}; mark "
                    "them in the status column or set `data.on_negative_amount: treat_as_return`"
                ),
                source.filter(unmarked).select("amount").order_by("amount"),
            )
        )
    checked = source if status is None else source.mutate(status=status.cast("string"))
    return checked, rules


def _enforce(
    engine: Engine, name: str, source: ir.Table, checked: ir.Table, rules: list[_Rule]
) -> ir.Table:
    """Count every rule in one aggregation; raise all problems, or return ``checked``
    without the ``_raw_*`` columns."""
    counts = engine.fetch(
        source.aggregate(
            _rows=source.count(), **{f"_c{i}": rule.count for i, rule in enumerate(rules)}
        )
    ).iloc[0]
    problems = [] if _count(counts["_rows"]) else [f"{name}: the table has no rows"]
    for i, rule in enumerate(rules):
        n = _count(counts[f"_c{i}"])
        if n:
            examples = []
            if rule.examples is not None:
                values = engine.fetch(rule.examples.limit(rule.how_many)).iloc[:, 0]
                examples = [_plain(v) for v in values]
            problems.append(f"{name}.{rule.column}: {rule.says(n, examples)}")
    if problems:
        header = f"{name} breaks the data contract ({len(problems)} problem(s)):"
        raise DataError("\n  - ".join([header, *problems]))
    return checked.drop(*[c for c in checked.columns if c.startswith(RAW_PREFIX)])


def _count(value: object) -> int:
    """A count from an engine: sums over no rows come back null."""
    return 0 if value is None or pd.isna(value) else int(value)


def _plain(value: object) -> object:
    """Example values as Python scalars, so messages read ``[-5.0]`` and ``['abc']``."""
    return value.item() if hasattr(value, "item") else value
