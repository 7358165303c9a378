"""Engagement from the events table: counts per event type, recency per type, last NPS.

For every event type ``t`` of the spec and window ``w``: ``t_events_<w>d`` counts
events in ``[as_of - w days, as_of)``; ``days_since_last_t`` is whole days since the
latest one before ``as_of``. ``last_nps`` is the value of the latest ``nps`` event
before ``as_of`` (the highest value when several share that moment).

Missing values: counts are 0 for customers without such events; ``days_since_last_t``
and ``last_nps`` are null when the customer never had one.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from churnkit.features._exprs import count_if, days_since, window_start
from churnkit.features.spec import FeatureSpec

NPS = "nps"
_SEPARATORS = (" ", "-", ".", "/")


def names(spec: FeatureSpec) -> list[str]:
    out = []
    for t in spec.event_types:
        out += [f"{t}_events_{w}d" for w in spec.engagement_windows_days]
        out.append(f"days_since_last_{t}")
    if NPS in spec.event_types:
        out.append("last_nps")
    return out


def add_engagement(
    population: ir.Table, events: ir.Table, grid: ir.Table, spec: FeatureSpec
) -> ir.Table:
    """Left-join the engagement features of ``events`` onto ``population``.

    Two aggregations: first per customer, ``as_of`` and event type as written, then, on
    those few rows, per customer and ``as_of`` with the types normalised. Normalising
    and comparing the type on every event would cost more than the first aggregation.
    """
    h = events.join(grid, events.occurred_at < grid.as_of_ts)
    windows = spec.engagement_windows_days
    in_window = {
        f"_n_{w}d": count_if(h.occurred_at >= window_start(h.as_of_ts, w)) for w in windows
    }
    per_type = (
        h.group_by(["customer_id", "as_of", "event_type"])
        .aggregate(**in_window, _last_at=h.occurred_at.max())
        .mutate(_kind=lambda t: _kind(t.event_type))
    )
    aggs: dict[str, ir.Scalar] = {}
    for t in spec.event_types:
        is_t = per_type._kind == t
        for w in windows:
            # DuckDB sums integers as HUGEINT (a decimal in Arrow); counts are exact
            # in float64, and Ibis keeps the cast back to int64 that it would drop
            # after an integer sum
            count = per_type[f"_n_{w}d"].cast("float64").sum(where=is_t)
            aggs[f"{t}_events_{w}d"] = count.cast("int64")
        aggs[f"_last_{t}_at"] = per_type._last_at.max(where=is_t)
    per_customer = per_type.group_by(["customer_id", "as_of"]).aggregate(**aggs)
    joined = population.left_join(per_customer, ["customer_id", "as_of"]).drop(
        "customer_id_right", "as_of_right"
    )
    filled = {}
    for t in spec.event_types:
        for w in spec.engagement_windows_days:
            filled[f"{t}_events_{w}d"] = joined[f"{t}_events_{w}d"].fill_null(0)
        filled[f"days_since_last_{t}"] = days_since(joined.as_of, joined[f"_last_{t}_at"])
    joined = joined.mutate(**filled)
    if NPS in spec.event_types:
        joined = _add_last_nps(joined, events, grid)
    return joined


def _add_last_nps(population: ir.Table, events: ir.Table, grid: ir.Table) -> ir.Table:
    # One value per (customer, moment) first, so the latest value is well defined.
    if "value" not in events.columns:
        return population.mutate(last_nps=ibis.null("float64"))
    nps = (
        events.filter((_kind(events.event_type) == NPS) & events.value.notnull())
        .group_by(["customer_id", "occurred_at"])
        .aggregate(value=lambda t: t.value.cast("float64").max())
    )
    h = nps.join(grid, nps.occurred_at < grid.as_of_ts)
    last = h.group_by(["customer_id", "as_of"]).aggregate(last_nps=h.value.argmax(h.occurred_at))
    return population.left_join(last, ["customer_id", "as_of"]).drop(
        "customer_id_right", "as_of_right"
    )


def _kind(event_type: ir.StringValue) -> ir.StringValue:
    """An event type as an identifier, as :func:`churnkit.features.spec.identifier` makes it."""
    # plain replaces, not a regex: this runs on every event
    kind = event_type.strip().lower()
    for character in _SEPARATORS:
        kind = kind.replace(character, "_")
    return kind
