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

from churnkit.features._exprs import (
    by_interval,
    count_if,
    days_since,
    recent_rows,
    spread,
    sum_counts,
    window_start,
)
from churnkit.features.spec import OTHER_TYPES, FeatureSpec

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
    population: ir.Table, events: ir.Table, grid: ir.Table, spec: FeatureSpec, *, split: bool
) -> ir.Table:
    """Left-join the engagement features of ``events`` onto ``population``.

    Events inside a snapshot's longest window are joined to it and counted. Older
    events only move ``days_since_last_*``, so they are reduced to the latest per
    customer and interval between snapshots before being spread over the later
    snapshots (see ``_exprs.by_interval``). Both sides aggregate by event type as
    written first: normalising the type on those few rows costs less than on every
    event. With ``split=False`` every earlier event is joined to each snapshot.
    """
    windows = spec.engagement_windows_days
    longest = max(windows, default=0) if split else None
    recent = recent_rows(events, "occurred_at", grid, longest)
    in_window = {
        f"_n_{w}d": count_if(recent.occurred_at >= window_start(recent.as_of_ts, w))
        for w in windows
    }
    per_type = recent.group_by(["customer_id", "as_of", "event_type"]).aggregate(
        **in_window, _last_at=recent.occurred_at.max()
    )
    per_type = per_type.mutate(_kind=_kind(per_type.event_type))
    counted = {}
    for t in spec.event_types:
        is_t = _is(per_type._kind, t, spec)
        for w in windows:
            counted[f"{t}_events_{w}d"] = sum_counts(per_type[f"_n_{w}d"], where=is_t)
        counted[f"_last_{t}_at"] = per_type._last_at.max(where=is_t)
    per_customer = per_type.group_by(["customer_id", "as_of"]).aggregate(**counted)
    if longest is not None:
        per_customer = _with_older_events(per_customer, events, grid, spec, longest)
    joined = population.left_join(per_customer, ["customer_id", "as_of"]).drop(
        "customer_id_right", "as_of_right"
    )
    filled = {}
    for t in spec.event_types:
        for w in windows:
            filled[f"{t}_events_{w}d"] = joined[f"{t}_events_{w}d"].fill_null(0)
        filled[f"days_since_last_{t}"] = days_since(joined.as_of, joined[f"_last_{t}_at"])
    joined = joined.mutate(**filled)
    if NPS in spec.event_types:
        joined = _add_last_nps(joined, events, grid)
    return joined


def _with_older_events(
    recent: ir.Table, events: ir.Table, grid: ir.Table, spec: FeatureSpec, days: int
) -> ir.Table:
    """``recent`` per-customer aggregates, with the latest moments of events older than
    ``days`` before each snapshot taken into account."""
    older = by_interval(events, "occurred_at", grid, days)
    older = older.group_by(["customer_id", "event_type", "_cut"]).aggregate(
        _last_at=older.occurred_at.max()
    )
    older = older.mutate(_kind=_kind(older.event_type))
    lasts = {f"_last_{t}_at": t for t in spec.event_types}
    older = older.group_by(["customer_id", "_cut"]).aggregate(
        **{last: older._last_at.max(where=_is(older._kind, t, spec)) for last, t in lasts.items()}
    )
    older = spread(older, grid, days)
    # in the recent side's column order: a union matches columns by position
    values = [c for c in recent.columns if c not in ("customer_id", "as_of")]
    older_side = older.select(
        "customer_id",
        "as_of",
        **{c: older[c] if c in lasts else ibis.null("int64") for c in values},
    )
    # a count comes from its one recent row, a latest moment from either side
    both = recent.union(older_side)
    return both.group_by(["customer_id", "as_of"]).aggregate(
        **{name: both[name].max() for name in values}
    )


def _add_last_nps(population: ir.Table, events: ir.Table, grid: ir.Table) -> ir.Table:
    # One value per (customer, moment) first, so the latest value is well defined; then
    # the latest per interval between snapshots, then the latest of those per snapshot.
    if "value" not in events.columns:
        return population.mutate(last_nps=ibis.null("float64"))
    nps = (
        events.filter((_kind(events.event_type, plain=True) == NPS) & events.value.notnull())
        .group_by(["customer_id", "occurred_at"])
        .aggregate(value=lambda t: t.value.cast("float64").max())
    )
    nps = by_interval(nps, "occurred_at", grid, 0)
    latest = nps.group_by(["customer_id", "_cut"]).aggregate(
        _at=nps.occurred_at.max(), _value=nps.value.argmax(nps.occurred_at)
    )
    latest = spread(latest, grid, 0)
    last = latest.group_by(["customer_id", "as_of"]).aggregate(
        last_nps=latest._value.argmax(latest._at)
    )
    return population.left_join(last, ["customer_id", "as_of"]).drop(
        "customer_id_right", "as_of_right"
    )


def _kind(event_type: ir.StringValue, *, plain: bool = False) -> ir.StringValue:
    """An event type as an identifier, as :func:`churnkit.features.spec.identifier` makes
    it. Callers normalise grouped rows (one per customer, snapshot and type as written),
    not every event; ``plain`` only lowers and replaces separators (no regex), enough to
    find a type spelled with letters, such as ``nps``, on every event."""
    kind = event_type.strip().lower()
    for character in _SEPARATORS:
        kind = kind.replace(character, "_")
    if plain:
        return kind
    kind = kind.re_replace(r"[^a-z0-9_]", "_")
    return ibis.ifelse(kind.re_search(r"^[a-z]"), kind, "type_" + kind)


def _is(kind: ir.StringValue, event_type: str, spec: FeatureSpec) -> ir.BooleanValue:
    """Rows of ``event_type``; for :data:`OTHER_TYPES`, of every type without its own."""
    if event_type != OTHER_TYPES:
        return kind == event_type
    return ~kind.isin([t for t in spec.event_types if t != OTHER_TYPES])
