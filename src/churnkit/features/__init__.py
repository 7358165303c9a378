"""Point-in-time features, population and labels, written once as Ibis expressions.

:func:`feature_table` builds one Ibis expression for any number of snapshot dates.
With several, each snapshot sees its orders in two parts: those inside its longest
window (365 days by default) are joined to it one by one and feed every order family;
older ones only feed lifetime values (first order, totals, gaps, returns), so they are
aggregated once per interval between snapshots and those parts are combined for every
later snapshot. One snapshot joins its whole history.
Segments are ranked on the result, then breadth (from first-purchase dates),
engagement (the same split over events, each spelling of an event type matched to
its type before the query) and attributes are joined onto the population. Nothing
here runs a query: the engines do (:func:`churnkit.engines.duckdb.run_feature_query`,
:meth:`churnkit.engines.spark.SparkEngine.feature_frame`). Time semantics are those of
:mod:`churnkit.features.snapshots`.

Families and the value a missing window takes (each module's docstring has details):

============  ==============================================================
rfm           counts and revenue 0 outside the windows; lifetime always set
cadence       null with a single order (no gap yet)
trend         0
returns       0 (rates 0 without returns)
breadth       0 when every order lacks the column's value
engagement    counts 0; ``days_since_last_*`` and ``last_nps`` null if none
attributes    null when unknown (categorical), days_since_signup null too
segments      always set (1..5 scores, a named segment)
============  ==============================================================
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from churnkit.features import (
    attributes,
    breadth,
    cadence,
    engagement,
    returns,
    rfm,
    segments,
    trend,
)
from churnkit.features._exprs import (
    Grid,
    Lifetime,
    by_interval,
    last_as_of_ts,
    money_micros,
    per_snapshot,
    recent_rows,
    spread,
)
from churnkit.features.snapshots import make_churn_labels
from churnkit.features.spec import FAMILIES, FeatureSpec, resolve_feature_spec

__all__ = [
    "FAMILIES",
    "ID_COLUMNS",
    "INFO_COLUMNS",
    "LABEL_COLUMN",
    "FeatureSpec",
    "feature_names",
    "feature_table",
    "compact_features",
    "compact_table",
    "finish_frame",
    "resolve_feature_spec",
    "table_columns",
]

ID_COLUMNS = ["customer_id", "as_of"]
LABEL_COLUMN = "churned"
INFO_COLUMNS = ["customer_value_365d", "segment", "rfm_segment"]

_MODULES = {
    "rfm": rfm,
    "cadence": cadence,
    "trend": trend,
    "returns": returns,
    "breadth": breadth,
    "engagement": engagement,
    "attributes": attributes,
    "segments": segments,
}
_ORDER_FAMILIES = ("rfm", "cadence", "trend", "returns", "breadth")


def feature_names(spec: FeatureSpec) -> list[str]:
    """The model's input columns, in order."""
    return [name for family in spec.families for name in _MODULES[family].names(spec)]


def table_columns(spec: FeatureSpec) -> list[str]:
    """The columns of :func:`feature_table` without labels, in order."""
    info = ["customer_value_365d", "segment", *(["rfm_segment"] if spec.has("segments") else [])]
    return [*ID_COLUMNS, *feature_names(spec), *info]


def categorical_features(spec: FeatureSpec) -> list[str]:
    """Feature columns that are categorical (customer attributes)."""
    return list(spec.attributes)


def feature_table(
    orders: ir.Table,
    grid: Grid,
    spec: FeatureSpec,
    *,
    events: ir.Table | None = None,
    customers: ir.Table | None = None,
    order_items: ir.Table | None = None,
    event_types: Sequence[str] | None = None,
    horizon_days: int | None = None,
    split_history: bool = True,
) -> ir.Table:
    """The feature expression: one row per (customer, as_of) of the population.

    Parameters
    ----------
    orders
        ``customer_id``, ``ordered_at`` (naive UTC), ``amount``, and optionally
        ``status``, ``category``, ``channel``.
    grid
        Snapshot dates from :func:`~churnkit.features.snapshots.as_of_table`, or one
        date, which the query then holds as a constant (compared with each row instead
        of joined to it; the features are the same).
    spec
        Families, windows and the columns they use.
    events, customers
        Needed when the spec has engagement or attribute features.
    event_types
        With engagement: every distinct ``event_type`` of ``events`` as written (the
        engine reads them first); each spelling is matched to the spec's types here.
    order_items
        For orders read from order lines: one row per order and distinct (category,
        product) of its lines, with the order's ``customer_id``, ``ordered_at``,
        ``amount`` and ``status``; breadth then counts every line's category and product.
    horizon_days
        When given, adds ``churned`` for the label window ``[as_of, as_of + horizon)``.
    split_history
        Whether rows older than a snapshot's longest window reach it through lifetime
        parts (see above). The result is the same either way; splitting pays off with
        several snapshots and costs a second pass over the data with one.
    """
    # The gaps need a window over every order; breadth and labels read the orders
    # without it. Sharing one expression would make DuckDB materialise it as a CTE:
    # scanning the file twice is cheaper than holding every order row in memory.
    prepared = _prepare_orders(orders, spec)
    # no snapshot sees an order at or after the last as_of: the gap window skips them
    seen = prepared.filter(prepared.ordered_at < last_as_of_ts(grid))
    with_gaps = _add_gaps(seen) if spec.has("cadence") else seen
    order_families = [f for f in _ORDER_FAMILIES if spec.has(f)]
    days = _longest_window(spec) if split_history else None
    table = rfm.population(_order_aggregates(with_gaps, grid, spec, order_families, days), spec)
    for family in order_families:
        table = table.mutate(**_MODULES[family].derive(table, spec))
    if spec.has("segments"):
        # the rank windows sort whole rows: here, before the joins below widen them
        table = segments.add_segments(table, one_date=isinstance(grid, dt.date))

    if spec.has("breadth"):
        sources = {}
        from_lines = tuple(
            c for c in ("category", "product_id") if order_items is not None and c in order_items
        )
        for column in set(from_lines) & set(spec.breadth_columns):
            sources[column] = _prepare_orders(order_items, spec, breadth=(column,))
        table = breadth.add_breadth(
            table, prepared, grid, spec, split=split_history, sources=sources
        )
    if spec.has("engagement"):
        if events is None or event_types is None:
            raise ValueError(
                "the spec has engagement features but no events table and its event types "
                "were given"
            )
        table = engagement.add_engagement(
            table, events, grid, spec, split=split_history, written=event_types
        )
    if spec.has("attributes"):
        if customers is None:
            raise ValueError("the spec has attribute features but no customers table was given")
        table = attributes.add_attributes(table, customers, spec)

    extra = []
    if horizon_days is not None:
        qualifying = prepared.filter(prepared.qualifying)
        table = make_churn_labels(qualifying, table, horizon_days)
        extra = [LABEL_COLUMN]
    table = table.mutate(segment=segments.recency_bucket(table.recency_days))
    # every numeric feature float64 in the query already (as finish_frame makes it), so
    # an engine can write the table as it is, without passing it through pandas
    features = set(feature_names(spec)) - set(categorical_features(spec))
    return table.select(
        *(
            table[c].cast("float64").name(c) if c in features else table[c]
            for c in table_columns(spec)
        ),
        *extra,
    )


def _order_aggregates(
    orders: ir.Table,
    grid: Grid,
    spec: FeatureSpec,
    families: Sequence[str],
    days: int | None,
) -> ir.Table:
    """The order families' aggregates per customer with orders in the last ``days``.

    Orders inside a snapshot's last ``days`` (its longest window) are joined to it one
    by one; older orders only feed the families' lifetime values, which are aggregated
    once per interval between snapshots, spread over the later snapshots and combined
    (``_exprs.by_interval``). With monthly snapshots, an order then takes part in at
    most a year of snapshots instead of every later one. ``days=None`` joins every
    earlier order to each snapshot.
    """
    recent = recent_rows(orders, "ordered_at", grid, days)
    aggs: dict[str, ir.Scalar] = {}
    lifetime: dict[str, Lifetime] = {}
    for family in families:
        aggs |= _MODULES[family].aggregates(recent, spec)
        lifetime |= _MODULES[family].lifetime(recent, spec)
    keys = ["customer_id", "as_of"]
    table = per_snapshot(
        recent, grid, with_ts=True, **aggs, **{name: value for name, (value, _) in lifetime.items()}
    )
    if days is None:
        return table
    older = by_interval(orders, "ordered_at", grid, days)
    parts: dict[str, ir.Scalar] = {}
    for family in families:
        parts |= {name: part for name, (part, _) in _MODULES[family].lifetime(older, spec).items()}
    parts_table = spread(older.group_by(["customer_id", "_cut"]).aggregate(**parts), grid, days)
    combined = parts_table.group_by(keys).aggregate(
        **{f"_older{name}": _COMBINE[how](parts_table[name]) for name, (_, how) in lifetime.items()}
    )
    table = table.left_join(combined, keys).drop("customer_id_right", "as_of_right")
    merged = {
        name: _merge(table[name], table[f"_older{name}"], how)
        for name, (_, how) in lifetime.items()
    }
    return table.mutate(**merged).drop(*(f"_older{name}" for name in lifetime))


def _longest_window(spec: FeatureSpec) -> int:
    """Days before ``as_of`` in which every windowed value and the population are seen."""
    trend_days = 2 * spec.trend_days if spec.has("trend") else 0
    return max(spec.activity_days, rfm.VALUE_WINDOW_DAYS, *spec.windows_days, trend_days)


_COMBINE = {
    # sums of integers in float64 stay exact (below 2**53) in whatever order they add
    "sum": lambda part: part.cast("float64").sum(),
    "min": lambda part: part.min(),
    "max": lambda part: part.max(),
}


def _merge(recent: ir.Value, older: ir.Value, how: str) -> ir.Value:
    """The lifetime value of recent and older orders together; ``older`` may be null."""
    if how == "sum":
        return (recent.cast("float64") + older.fill_null(0)).cast(recent.type())
    both = ibis.least(recent, older) if how == "min" else ibis.greatest(recent, older)
    return ibis.coalesce(both, recent, older)  # whatever LEAST does with a null


def finish_frame(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """Engine output to churnkit's dtypes, the same on every night: dates; every numeric
    feature float64 (NaN when missing), so a count is not int64 one night and float64 the
    next (the registered model's signature could not take both); attributes as text."""
    # one date object per as_of, shared by its rows (training holds 5.9M of them)
    codes, days = pd.factorize(pd.to_datetime(frame["as_of"]))
    frame["as_of"] = np.asarray(days.date, dtype=object)[codes]
    categorical = categorical_features(spec)
    for name in feature_names(spec):
        if name in categorical:
            values = frame[name].astype("string")
            frame[name] = values.astype(object).where(values.notna(), None)
        else:
            frame[name] = pd.to_numeric(frame[name]).astype("float64")
    return frame.reset_index(drop=True)


def compact_features(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """``frame`` in the form training keeps it: numeric features float32, the text
    columns (attributes, segments) categorical with sorted levels.

    About a third of the memory of :func:`finish_frame`'s form (the labelled table of
    12 monthly snapshots of 1M customers is 5.9M rows): float32 halves each number, and
    LightGBM bins every feature into at most 255 bins, which float32's seven significant
    digits resolve; a category is one byte a row where text is one Python string each.
    Columns already in this form stay as they are.
    """
    categorical = set(categorical_features(spec))
    text = [c for c in (*categorical, "segment", "rfm_segment") if c in frame]
    types: dict[str, Any] = {
        name: "float32"
        for name in feature_names(spec)
        if name in frame and name not in categorical and frame[name].dtype != "float32"
    }
    types |= {c: "category" for c in text if not isinstance(frame[c].dtype, pd.CategoricalDtype)}
    return frame.astype(types) if types else frame


def compact_table(parts: Iterable[pd.DataFrame], spec: FeatureSpec) -> pd.DataFrame:
    """Parts of one feature table (as :func:`finish_frame` gives them) as one table in
    :func:`compact_features` form, each categorical column with the sorted levels of
    every part.

    Each part is made compact and split into its columns as it comes, so a generator of
    parts holds one wide part at a time; the columns are then put together one by one,
    each part's piece freed as it is used. The whole table is never held twice (a
    ``pd.concat`` of the parts would hold it twice at the end).
    """
    pieces: dict[str, list[pd.Series]] = {}
    for part in parts:
        compact = compact_features(part, spec)
        del part
        for column in compact.columns:
            pieces.setdefault(column, []).append(compact[column].copy())  # its own array
        del compact
    columns = {}
    for column in list(pieces):
        values = pieces.pop(column)
        if isinstance(values[0].dtype, pd.CategoricalDtype):
            levels = sorted(set().union(*(v.cat.categories for v in values)))
            values = [v.astype(pd.CategoricalDtype(levels)) for v in values]
        columns[column] = pd.concat(values, ignore_index=True)
        del values
    return pd.DataFrame(columns, copy=False)


def _prepare_orders(
    orders: ir.Table, spec: FeatureSpec, *, breadth: tuple[str, ...] | None = None
) -> ir.Table:
    """Orders with a ``qualifying`` flag and amounts in integer micro-units, and the
    ``breadth`` columns (default: the spec's)."""
    completed = orders.status == "completed" if "status" in orders.columns else ibis.literal(True)
    amount = orders.amount.cast("float64")
    columns = {
        "customer_id": orders.customer_id,
        "ordered_at": orders.ordered_at.cast("timestamp"),
        "amount": amount,
        "amount_micros": money_micros(amount),
        "qualifying": completed.fill_null(False) & (amount >= spec.min_order_amount),
    }
    if spec.quantity and "quantity" in orders.columns:
        columns["quantity"] = orders.quantity.cast("float64").fill_null(0)
    if spec.has("returns"):
        columns["status"] = orders.status
    for column in spec.breadth_columns if breadth is None else breadth:
        columns[column] = orders[column]
    return orders.select(**columns)


def _add_gaps(table: ir.Table) -> ir.Table:
    """``gap_days`` to the previous qualifying order, on qualifying orders."""
    # partitioning by the flag too keeps the previous order a qualifying one
    window = ibis.window(group_by=["customer_id", "qualifying"], order_by="ordered_at")
    gap = table.ordered_at.date().delta(table.ordered_at.lag().over(window).date(), unit="day")
    return table.mutate(gap_days=ibis.ifelse(table.qualifying, gap, ibis.null("int64")))
