"""Breadth: how many distinct categories, channels and products a customer has bought.

Counted over qualifying orders before ``as_of``, for each of ``category``, ``channel``
and ``product_id`` that the orders have (of every line, for orders read from lines).
Missing values: null values are not counted, so a customer whose orders all lack a
category has 0.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import ibis.expr.types as ir

from churnkit.features._exprs import (
    Grid,
    Lifetime,
    by_interval,
    join_snapshots,
    last_as_of_ts,
    per_snapshot,
    recent_rows,
    spread,
    sum_counts,
)
from churnkit.features.spec import FeatureSpec

_NAMES = {
    "category": "distinct_categories",
    "channel": "distinct_channels",
    "product_id": "distinct_products",
}


def names(spec: FeatureSpec) -> list[str]:
    return [_NAMES[c] for c in spec.breadth_columns]


def lifetime(h: ir.Table, spec: FeatureSpec) -> dict[str, Lifetime]:
    return {}


def aggregates(h: ir.Table, spec: FeatureSpec) -> dict[str, ir.Scalar]:
    return {}


def derive(t: ir.Table, spec: FeatureSpec) -> dict[str, ir.Value]:
    return {}


def add_breadth(
    population: ir.Table,
    orders: ir.Table,
    grid: Grid,
    spec: FeatureSpec,
    *,
    split: bool,
    sources: Mapping[str, ir.Table] | None = None,
) -> ir.Table:
    """Left-join the distinct counts onto ``population``.

    ``sources`` gives, per column, another prepared table to count it from (for orders
    read from order lines: one row per order and category of its lines).

    With one date, every qualifying order before it counts: the columns of one source
    are counted in one aggregation over its distinct combinations. With several, a value
    counts at ``as_of`` when its first qualifying order is before ``as_of``; working from
    first-purchase dates keeps this one small join instead of a distinct count over
    every order of every snapshot. With ``split``, the first purchases are counted once
    per interval between snapshots and those counts summed per snapshot.
    """
    by_source: dict[int, tuple[ir.Table, list[str]]] = {}
    for column in spec.breadth_columns:
        source = (sources or {}).get(column, orders)
        by_source.setdefault(id(source), (source, []))[1].append(column)
    for source, columns in by_source.values():
        # no snapshot sees a first purchase at or after the last as_of
        values = source.filter(source.qualifying & (source.ordered_at < last_as_of_ts(grid)))
        if isinstance(grid, dt.date):
            parts = [(_distinct_counts(values, grid, columns), columns)]
        else:
            parts = [(_first_purchases(values, grid, c, split=split), [c]) for c in columns]
        for counts, names in parts:
            population = join_snapshots(population, counts, grid)
            population = population.mutate(
                **{_NAMES[c]: population[_NAMES[c]].fill_null(0) for c in names}
            )
    return population


def _distinct_counts(values: ir.Table, as_of: dt.date, columns: list[str]) -> ir.Table:
    """Distinct values of each of ``columns`` per customer, nulls not counted; the
    customer's distinct combinations first (about 0.7 s of CPU less than a pass per
    column over the 10M orders of the 1M-customer data)."""
    seen = values.select("customer_id", *columns).distinct()
    return per_snapshot(seen, as_of, **{_NAMES[c]: seen[c].nunique() for c in columns})


def _first_purchases(values: ir.Table, grid: Grid, column: str, *, split: bool) -> ir.Table:
    """Distinct values of ``column`` per customer and snapshot, from the moment each was
    first bought."""
    name = _NAMES[column]
    values = values.filter(values[column].notnull())
    firsts = values.group_by(["customer_id", column]).aggregate(first_at=values.ordered_at.min())
    if split:
        firsts = by_interval(firsts, "first_at", grid, 0)
        parts = spread(
            firsts.group_by(["customer_id", "_cut"]).aggregate(_n=firsts.count()), grid, 0
        )
        return parts.group_by(["customer_id", "as_of"]).aggregate(**{name: sum_counts(parts._n)})
    seen = recent_rows(firsts, "first_at", grid, None)
    return per_snapshot(seen, grid, **{name: seen.count()})
