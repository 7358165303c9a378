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
    """Left-join the engagement features of ``events`` onto ``population``."""
    h = events.join(grid, events.occurred_at < grid.as_of_ts)
    aggs: dict[str, ir.Scalar] = {}
    for t in spec.event_types:
        is_t = h.event_type == t
        for w in spec.engagement_windows_days:
            aggs[f"{t}_events_{w}d"] = count_if(
                is_t & (h.occurred_at >= window_start(h.as_of_ts, w))
            )
        aggs[f"_last_{t}_at"] = h.occurred_at.max(where=is_t)
    per_customer = h.group_by(["customer_id", "as_of"]).aggregate(**aggs)
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
    # one value per (customer, moment) first, so the latest value is well defined
    nps = (
        events.filter((events.event_type == NPS) & events.value.notnull())
        .group_by(["customer_id", "occurred_at"])
        .aggregate(value=lambda t: t.value.max())
    )
    h = nps.join(grid, nps.occurred_at < grid.as_of_ts)
    last = h.group_by(["customer_id", "as_of"]).aggregate(last_nps=h.value.argmax(h.occurred_at))
    return population.left_join(last, ["customer_id", "as_of"]).drop(
        "customer_id_right", "as_of_right"
    )


def event_table(events: ir.Table) -> ir.Table:
    """Events with event types turned into identifiers, as the spec names them."""
    # plain replaces, not a regex: this runs on every event (see spec.identifier)
    kind = events.event_type.strip().lower()
    for character in _SEPARATORS:
        kind = kind.replace(character, "_")
    value = events.value.cast("float64") if "value" in events.columns else ibis.null("float64")
    return events.select("customer_id", "occurred_at", event_type=kind, value=value)
