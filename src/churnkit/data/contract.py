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

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import ibis
import ibis.expr.types as ir
import pandas as pd

from churnkit.config import ORDER_STATUSES, DataConfig, TableSource
from churnkit.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from churnkit.engines import Engine

__all__ = ["RAW_PREFIX", "Checked", "check_columns", "check_data"]

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
    # whether the rule holds, given the probes counted with it (default: always)
    applies: Callable[[Mapping[str, int]], bool] | None = None


@dataclass(frozen=True)
class Checked:
    """What :func:`check_data` published, and what it did that the user should know."""

    names: tuple[str, ...]
    notes: tuple[str, ...] = ()


def check_data(engine: Engine, cfg: DataConfig) -> Checked:
    """Read, check and publish orders and, when configured, events and customers.

    Orders whose ``order_id`` repeats are order lines: they are summed per order (see
    :func:`_per_order`) and the categories of each order's lines are published beside
    as ``order_items``, for the breadth features.

    Raises
    ------
    DataError
        When a source is missing a column or breaks the contract: every problem of the
        table in one message, with counts and examples.
    """
    orders = engine.read_source("orders", cfg.orders, cfg)
    mapped, rules = _orders(orders, cfg, plain=_plain_ids(engine, orders))
    repeats = "order_id" in orders.columns and engine.repeats(orders, "order_id")
    found, problems = _count_problems(engine, "orders", orders, rules, known={"repeats": repeats})
    lines = _without_raw(mapped)
    names, notes = ["orders"], []
    if found.get("repeats"):
        # order lines: the orders they add up to are checked too, in the same message
        per_order, order_rules = _per_order(lines, cfg)
        counted, more = _count_problems(
            engine, "orders", per_order, order_rules, {"orders": per_order.count()}
        )
        _raise("orders", problems + more)
        published = engine.publish(
            "orders", per_order.drop(*[c for c in per_order.columns if c.startswith("_")])
        )
        items = [c for c in ("category", "product_id") if c in lines.columns]
        if items:
            engine.publish("order_items", _order_items(lines, published, items))
            names.append("order_items")
        notes.append(
            f"orders: `order_id` repeats, so the {found['_rows']:,} rows were read as the lines "
            f"of {counted['orders']:,} orders and summed per order (amount and quantity added, "
            "the first line's time; every line's category counts for breadth)"
        )
    else:
        _raise("orders", problems)
        engine.publish("orders", lines)
        if "order_id" not in orders.columns:
            notes += _unlabelled_lines(engine, lines, found["_rows"])
    if cfg.events is not None:
        events = engine.read_source("events", cfg.events, cfg)
        if cfg.events.event_type is not None:  # one kind of event, named in the config
            events = events.mutate(event_type=ibis.literal(cfg.events.event_type))
        plain = _plain_ids(engine, events)
        _enforce(engine, "events", events, _rules("events", events, plain=plain))
        _check_ids_match(engine, "events", engine.publish("events", _without_raw(events)))
        names.append("events")
    if cfg.customers is not None:
        customers = engine.read_source(
            "customers", cfg.customers, cfg, extra_columns=cfg.customers.attributes
        )
        _enforce(
            engine,
            "customers",
            customers,
            _rules(
                "customers", customers, unique="customer_id", plain=_plain_ids(engine, customers)
            ),
        )
        published = engine.publish("customers", _without_raw(customers))
        _check_ids_match(engine, "customers", published)
        names.append("customers")
    if cfg.contacts is not None:
        contacts = engine.read_source("contacts", cfg.contacts, cfg)
        plain = _plain_ids(engine, contacts)
        _enforce(engine, "contacts", contacts, _rules("contacts", contacts, plain=plain))
        _check_ids_match(engine, "contacts", engine.publish("contacts", _without_raw(contacts)))
        names.append("contacts")
    return Checked(tuple(names), tuple(notes))


def _check_ids_match(engine: Engine, name: str, table: ir.Table) -> None:
    """Refuse a table none of whose ids is an orders customer: the ids are written
    differently (numbers in one export, zero-padded text in another), and every feature
    from the table would silently be missing."""
    orders = engine.table("orders")
    assert orders is not None  # published first
    # one match is enough: looked for among the table's first thousand rows (the orders
    # probe them, stopping at the first hit), then, only when none matches, in all of it
    first = table.select("customer_id").limit(1000)
    for ids in (first, table.select("customer_id")):
        if len(engine.fetch(orders.select("customer_id").semi_join(ids, "customer_id").limit(1))):
            return
    ids = table.select("customer_id").distinct()
    row = engine.fetch(ids.aggregate(n=ids.count())).iloc[0]
    if _count(row["n"]) == 0:
        return
    theirs = engine.fetch(ids.order_by("customer_id").limit(3))["customer_id"].tolist()
    ours = engine.fetch(orders.select("customer_id").distinct().order_by("customer_id").limit(3))
    raise DataError(
        f"none of the {_count(row['n']):,} customer ids of {name} is a customer of the orders "
        f"(e.g. {name} {theirs}, orders {ours['customer_id'].tolist()}); write the ids the "
        "same way in every table (leading zeros, prefixes, numbers or text) or map the right "
        f"column in `data.{name}.columns.customer_id`"
    )


def check_columns(
    source: TableSource,
    name: str,
    available: Sequence[str],
    config_file: str,
    extra_columns: tuple[str, ...],
) -> None:
    """Refuse a source that lacks a required or mapped column, naming the config key."""
    wanted = [c for c in source.required_columns if source.needs(c)] + [
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


EARLIEST, LATEST = dt.datetime(1970, 1, 1), dt.datetime(2100, 1, 1)  # plausible times
MAX_ID_LENGTH = 256  # a longer customer id is a column mapped wrong or a broken export
MAX_AMOUNT = 1e9  # per order or line: larger is a unit or parsing error, not a purchase

_REQUIRED = {
    "orders": ("customer_id", "ordered_at", "amount"),
    "events": ("customer_id", "occurred_at", "event_type"),
    "customers": ("customer_id",),
    "contacts": ("customer_id", "contacted_at"),
}


def _plain_ids(engine: Engine, table: ir.Table) -> bool:
    """Whether the engine's quick test finds every customer id short and plain: then the
    exact count of odd ids (see :func:`_rules`) is 0 and is left out."""
    return engine.plain_text(table, "customer_id", MAX_ID_LENGTH)


def _rules(
    name: str, table: ir.Table, *, unique: str | None = None, plain: bool = False
) -> list[_Rule]:
    """Values that did not parse, missing required values and repeated ids (``unique``;
    an ``order_id`` is required when present, and may repeat: order lines); with
    ``plain``, the ids are known to be short and without control characters."""
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
                lambda n, e, word=word: (
                    f"{n:,} value(s) do not parse as {word}, e.g. {e}{_dialect_hint(name, word, e)}"
                ),
                table.filter(failed).select(table[column]).order_by(column),
            )
        )
    if "customer_id" in table.columns and not plain:
        ids = table["customer_id"]
        odd = (ids.length() > MAX_ID_LENGTH) | ids.re_search(r"[\x00-\x1f\x7f]")
        rules.append(
            _Rule(
                "customer_id",
                odd.fill_null(False).sum(),
                lambda n, e: (
                    f"{n:,} id(s) longer than {MAX_ID_LENGTH} characters or with control "
                    f"characters (tab, line break, NUL...), e.g. {e}; check the export's "
                    "column mapping and quoting"
                ),
                table.filter(odd.fill_null(False)).select(ids.substr(0, 40).name("id")),
            )
        )
    for column in ("ordered_at", "occurred_at", "signed_up_at", "contacted_at"):
        if column not in table.columns:
            continue
        stamps = table[column]
        odd = (stamps < EARLIEST) | (stamps >= LATEST)
        rules.append(
            _Rule(
                column,
                odd.fill_null(False).sum(),
                lambda n, e: (
                    f"{n:,} time(s) before {EARLIEST:%Y} or from {LATEST:%Y} on, e.g. {e}; "
                    "a placeholder date or a wrong format (check `timestamp_format`)?"
                ),
                table.filter(odd.fill_null(False)).select(stamps.cast("string").name("t")),
            )
        )
    also = [unique] if unique else ["order_id"] if name == "orders" else []
    for column in (*_REQUIRED[name], *also):
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


def _orders(source: ir.Table, cfg: DataConfig, *, plain: bool) -> tuple[ir.Table, list[_Rule]]:
    """The orders with statuses mapped, and every rule they must keep.

    ``status`` is mapped through ``data.orders.status_values`` to completed, returned or
    cancelled. Without a status column every order counts as completed and the returns
    features are off, unless ``on_negative_amount: treat_as_return`` is set: then a
    status column is made, with negative amounts as returns. Otherwise negative amounts
    must be marked as returns.
    """
    rules = _rules("orders", source, plain=plain)
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
    # NaN and infinity compare above every number in DuckDB and Spark alike
    absurd = source["amount"].abs() >= MAX_AMOUNT
    rules.append(
        _Rule(
            "amount",
            absurd.sum(),
            lambda n, e: (
                f"{n:,} amount(s) that are not finite numbers or not below "
                f"{MAX_AMOUNT:,.0f} in size, e.g. {e}; fix or drop those rows"
            ),
            source.filter(absurd).select("amount").order_by("amount"),
        )
    )
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
                # on order lines a negative line (a discount) is fine: the order's total
                # is checked instead
                applies=lambda found: not found.get("repeats"),
            )
        )
    checked = source if status is None else source.mutate(status=status.cast("string"))
    return checked, rules


def _dialect_hint(name: str, word: str, examples: list) -> str:
    """What to set when unparsable text looks like another CSV dialect."""
    if word == "double" and any("," in str(e) for e in examples):
        return f"; a decimal comma? set `data.{name}.decimal: ','`"
    if word == "timestamp":
        return (
            f"; if that is how the file writes dates, set `data.{name}.timestamp_format` "
            "(strftime codes, e.g. '%d.%m.%Y %H:%M')"
        )
    return ""


def _per_order(lines: ir.Table, cfg: DataConfig) -> tuple[ir.Table, list[_Rule]]:
    """Order lines summed per ``order_id``, and the rules an order must keep.

    Amount and quantity are added, the time is the first line's, the channel and the
    category the first by name; an order is completed when any line is, else returned
    when any line is, else cancelled. One order id on several customers, or with lines
    more than a day apart, is refused: ``order_id`` then names something else.
    """
    columns = lines.columns
    totals: dict[str, ir.Value] = {
        "customer_id": lines.customer_id.min(),
        "ordered_at": lines.ordered_at.min(),
        "amount": lines.amount.sum(),
        "_customers": lines.customer_id.nunique(),
        "_last": lines.ordered_at.max(),
    }
    for column in ("quantity",):
        if column in columns:
            totals[column] = lines[column].sum()
    for column in ("category", "channel", "product_id"):
        if column in columns:
            totals[column] = lines[column].min()
    if "status" in columns:
        totals["_completed"] = (lines.status == "completed").sum()
        totals["_returned"] = (lines.status == "returned").sum()
    orders = lines.group_by("order_id").aggregate(**totals)
    if "status" in columns:
        orders = orders.mutate(
            status=ibis.cases(
                (orders._completed > 0, "completed"),
                (orders._returned > 0, "returned"),
                else_="cancelled",
            )
        )
    shared = orders._customers > 1
    apart = (orders._last.epoch_seconds() - orders.ordered_at.epoch_seconds()) > 86_400
    rules = [
        _Rule(
            "order_id",
            shared.sum(),
            lambda n, e: (
                f"{n:,} order id(s) have lines of several customers, e.g. {e}; an order belongs "
                "to one customer: is the column mapped to `order_id` a basket or session id "
                "that customers share?"
            ),
            orders.filter(shared).select("order_id").order_by("order_id"),
        ),
        _Rule(
            "order_id",
            apart.sum(),
            lambda n, e: (
                f"{n:,} order id(s) have lines more than a day apart, e.g. {e}; is the column "
                "mapped to `order_id` really an order id?"
            ),
            orders.filter(apart).select("order_id").order_by("order_id"),
        ),
    ]
    if cfg.on_negative_amount != "treat_as_return":
        unmarked = orders.amount < 0
        if "status" in columns:
            unmarked &= orders.status != "returned"
        rules.append(
            _Rule(
                "amount",
                unmarked.sum(),
                lambda n, e: (
                    f"{n:,} order(s) whose lines add up to a negative amount are not marked as "
                    f"returns, e.g. {e}; mark them in the status column or set "
                    "`data.on_negative_amount: treat_as_return`"
                ),
                orders.filter(unmarked).select("amount").order_by("amount"),
            )
        )
    return orders, rules


def _unlabelled_lines(engine: Engine, orders: ir.Table, rows: int) -> list[str]:
    """A warning when orders without an ``order_id`` look like order lines: many rows
    of one customer at one moment."""
    moments = orders.select("customer_id", "ordered_at").distinct()
    distinct = _count(engine.fetch(moments.aggregate(n=moments.count()))["n"].iloc[0])
    if not distinct or rows < 1.2 * distinct:
        return []
    return [
        f"orders: {rows - distinct:,} of {rows:,} rows share a customer and a moment with "
        "another row: if the file has a row per order line, map the basket or receipt "
        "number to `data.orders.columns.order_id`, or every line counts as an order"
    ]


def _order_items(lines: ir.Table, orders: ir.Table, items: list[str]) -> ir.Table:
    """One row per order and distinct ``items`` (category, product) of its lines, with
    the order's customer, time, amount and status: breadth counts what any line of an
    order bought."""
    pairs = lines.select("order_id", *items).distinct()
    keep = [
        c
        for c in ("order_id", "customer_id", "ordered_at", "amount", "status")
        if c in orders.columns
    ]
    return pairs.join(orders.select(*keep), "order_id").select(*keep, *items)


def _enforce(
    engine: Engine,
    name: str,
    source: ir.Table,
    rules: list[_Rule],
) -> None:
    """Count every rule in one aggregation; raise all problems together."""
    _raise(name, _count_problems(engine, name, source, rules)[1])


def _count_problems(
    engine: Engine,
    name: str,
    source: ir.Table,
    rules: list[_Rule],
    probes: Mapping[str, ir.Scalar] | None = None,
    known: Mapping[str, int] | None = None,
) -> tuple[dict[str, int], list[str]]:
    """Count every rule (and the ``probes``) in one aggregation: the counts (``_rows``,
    each probe's and the ``known`` ones, which rules may depend on) and a line per
    problem, with examples."""
    probes = dict(probes or {})
    row = engine.fetch(
        source.aggregate(
            _rows=source.count(),
            **{f"_c{i}": rule.count for i, rule in enumerate(rules)},
            **{f"_p_{key}": value for key, value in probes.items()},
        )
    ).iloc[0]
    found = {"_rows": _count(row["_rows"])} | {k: _count(row[f"_p_{k}"]) for k in probes}
    found |= {k: int(v) for k, v in (known or {}).items()}
    problems = [] if found["_rows"] else [f"{name}: the table has no rows"]
    for i, rule in enumerate(rules):
        n = _count(row[f"_c{i}"])
        if n and (rule.applies is None or rule.applies(found)):
            examples = []
            if rule.examples is not None:
                values = engine.fetch(rule.examples.limit(rule.how_many)).iloc[:, 0]
                examples = [_plain(v) for v in values]
            problems.append(f"{name}.{rule.column}: {rule.says(n, examples)}")
    return found, problems


def _raise(name: str, problems: list[str]) -> None:
    if len(problems) == 1:  # one problem, one line
        raise DataError(f"{name} breaks the data contract: {problems[0].removeprefix(name + ': ')}")
    if problems:
        header = f"{name} breaks the data contract ({len(problems)} problems):"
        raise DataError("\n  - ".join([header, *problems]))


def _without_raw(table: ir.Table) -> ir.Table:
    return table.drop(*[c for c in table.columns if c.startswith(RAW_PREFIX)])


def _count(value: object) -> int:
    """A count from an engine: sums over no rows come back null."""
    return 0 if value is None or pd.isna(value) else int(value)


def _plain(value: object) -> object:
    """Example values as Python scalars, so messages read ``[-5.0]`` and ``['abc']``."""
    return value.item() if hasattr(value, "item") else value
