"""Engagement from the events table: counts per event type, recency per type, last NPS.

For every event type ``t`` of the spec and window ``w``: ``t_events_<w>d`` counts
events in ``[as_of - w days, as_of)``; ``days_since_last_t`` is whole days since the
latest one before ``as_of``. ``last_nps`` is the value of the latest ``nps`` event
before ``as_of`` (the highest value when several share that moment).

Missing values: counts are 0 for customers without such events; ``days_since_last_t``
and ``last_nps`` are null when the customer never had one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import ibis
import ibis.expr.types as ir

from churnkit.features._exprs import (
    Grid,
    by_interval,
    count_if,
    days_since,
    join_snapshots,
    per_snapshot,
    recent_rows,
    spread,
    window_start,
)
from churnkit.features.spec import OTHER_TYPES, FeatureSpec, identifier

NPS = "nps"


def names(spec: FeatureSpec) -> list[str]:
    out = []
    for t in spec.event_types:
        out += [f"{t}_events_{w}d" for w in spec.engagement_windows_days]
        out.append(f"days_since_last_{t}")
    if NPS in spec.event_types:
        out.append("last_nps")
    return out


def add_engagement(
    population: ir.Table,
    events: ir.Table,
    grid: Grid,
    spec: FeatureSpec,
    *,
    split: bool,
    written: Sequence[str],
) -> ir.Table:
    """Left-join the engagement features of ``events`` onto ``population``.

    ``written`` is every distinct ``event_type`` of ``events`` as written (``Email Open``,
    ``email-open``...); each spelling is matched to its type here, by
    :func:`~churnkit.features.spec.identifier`, so the query compares the column with a
    few literals instead of normalising it on every event.

    Events inside a snapshot's longest window are joined to it and counted in one
    aggregation. Older events only move ``days_since_last_*``, so they are reduced to
    the latest per customer and interval between snapshots before being spread over the
    later snapshots (see ``_exprs.by_interval``). With ``split=False`` every earlier
    event is joined to each snapshot.
    """
    spellings = _spellings(written, spec)
    if OTHER_TYPES not in spec.event_types:  # events of no type of the spec count nowhere
        events = events.filter(_is(events.event_type, None, spellings))
    windows = spec.engagement_windows_days
    longest = max(windows, default=0) if split else None
    recent = recent_rows(events, "occurred_at", grid, longest)
    counted = {}
    for t in spec.event_types:
        is_t = _is(recent.event_type, t, spellings)
        for w in windows:
            since = recent.occurred_at >= window_start(recent.as_of_ts, w)
            counted[f"{t}_events_{w}d"] = count_if(recent, is_t & since)
        counted[f"_last_{t}_at"] = recent.occurred_at.max(where=is_t)
    answers = NPS in spec.event_types and "value" in events.columns
    if answers:
        counted[_LAST_ANSWER] = _last_answer(recent, spellings)
    per_customer = per_snapshot(recent, grid, **counted)
    if longest is not None:
        per_customer = _with_older_events(per_customer, events, grid, spec, longest, spellings)
    joined = join_snapshots(population, per_customer, grid)
    filled = {}
    for t in spec.event_types:
        for w in windows:
            filled[f"{t}_events_{w}d"] = joined[f"{t}_events_{w}d"].fill_null(0)
        filled[f"days_since_last_{t}"] = days_since(joined.as_of, joined[f"_last_{t}_at"])
    if answers:
        filled["last_nps"] = joined[_LAST_ANSWER]["value"]
    elif NPS in spec.event_types:  # nps events without a value column
        filled["last_nps"] = ibis.null("float64")
    joined = joined.mutate(**filled)
    return joined.drop(_LAST_ANSWER) if answers else joined


def _with_older_events(
    recent: ir.Table,
    events: ir.Table,
    grid: Grid,
    spec: FeatureSpec,
    days: int,
    spellings: Mapping[str, list[str]],
) -> ir.Table:
    """``recent`` per-customer aggregates, with the latest moments (and the latest NPS
    answer) of events older than ``days`` before each snapshot taken into account."""
    older = by_interval(events, "occurred_at", grid, days)
    latest = {
        f"_last_{t}_at": older.occurred_at.max(where=_is(older.event_type, t, spellings))
        for t in spec.event_types
    }
    if _LAST_ANSWER in recent.columns:
        latest[_LAST_ANSWER] = _last_answer(older, spellings)
    older = spread(older.group_by(["customer_id", "_cut"]).aggregate(**latest), grid, days)
    # in the recent side's column order: a union matches columns by position
    values = [c for c in recent.columns if c not in ("customer_id", "as_of")]
    older_side = older.select(
        "customer_id",
        "as_of",
        **{c: older[c] if c in latest else ibis.null("int64") for c in values},
    )
    # a count comes from its one recent row, a latest moment from either side
    both = recent.union(older_side)
    return both.group_by(["customer_id", "as_of"]).aggregate(
        **{name: both[name].max() for name in values}
    )


# The latest NPS answer as (moment, value): the greatest such pair is the latest answer,
# the highest value when several share its moment. One aggregate among the others, not a
# pass of its own over the events (that cost about 0.7 s of CPU at 1M customers).
_LAST_ANSWER = "_last_nps_answer"


def _last_answer(events: ir.Table, spellings: Mapping[str, list[str]]) -> ir.StructScalar:
    answered = _is(events.event_type, NPS, spellings) & events.value.notnull()
    return _latest(events.occurred_at, events.value.cast("float64")).max(where=answered)


def _latest(moment: ir.TimestampValue, value: ir.FloatingValue) -> ir.StructValue:
    """The order of "latest": by moment, then by value (Spark and DuckDB order structs
    field by field)."""
    return ibis.struct({"at": moment, "value": value})


def _spellings(written: Sequence[str], spec: FeatureSpec) -> dict[str, list[str]]:
    """The spellings in ``written`` of each type of the spec that has its own features."""
    named = [t for t in spec.event_types if t != OTHER_TYPES]
    found: dict[str, list[str]] = {t: [] for t in named}
    for text in sorted(set(written)):
        kind = identifier(text)
        if kind in found:
            found[kind].append(text)
    return found


def _is(
    event_type: ir.StringValue, kind: str | None, spellings: Mapping[str, list[str]]
) -> ir.BooleanValue:
    """Rows of type ``kind``; for :data:`OTHER_TYPES`, of every type without features of
    its own; for None, of any type with features of its own."""
    if kind == OTHER_TYPES:
        return ~_is(event_type, None, spellings)
    written = spellings[kind] if kind is not None else [s for v in spellings.values() for s in v]
    return event_type.isin(written) if written else ibis.literal(False)
