"""Breadth: how many distinct categories, channels and products a customer has bought.

Counted over qualifying orders before ``as_of``, for each of ``category``, ``channel``
and ``product_id`` that the orders have (of every line, for orders read from lines).
Missing values: null values are not counted, so a customer whose orders all lack a
category has 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import ibis.expr.types as ir

from churnkit.features._exprs import (
    Grid,
    Lifetime,
    by_interval,
    last_as_of_ts,
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

    A value counts at ``as_of`` when its first qualifying order is before ``as_of``;
    working from first-purchase dates keeps this one small join instead of a distinct
    count over every order of every snapshot. With ``split``, the first purchases are
    counted once per interval between snapshots and those counts summed per snapshot.
    """
    for column in spec.breadth_columns:
        name = _NAMES[column]
        source = (sources or {}).get(column, orders)
        # no snapshot sees a first purchase at or after the last as_of
        before = source.ordered_at < last_as_of_ts(grid)
        values = source.filter(source.qualifying & source[column].notnull() & before)
        firsts = values.group_by(["customer_id", column]).aggregate(
            first_at=values.ordered_at.min()
        )
        if split:
            firsts = by_interval(firsts, "first_at", grid, 0)
            parts = spread(
                firsts.group_by(["customer_id", "_cut"]).aggregate(_n=firsts.count()), grid, 0
            )
            counts = parts.group_by(["customer_id", "as_of"]).aggregate(
                **{name: sum_counts(parts._n)}
            )
        else:
            seen = recent_rows(firsts, "first_at", grid, None)
            counts = seen.group_by(["customer_id", "as_of"]).aggregate(**{name: seen.count()})
        population = population.left_join(counts, ["customer_id", "as_of"]).drop(
            "customer_id_right", "as_of_right"
        )
        population = population.mutate(**{name: population[name].fill_null(0)})
    return population
