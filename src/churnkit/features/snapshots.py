"""Snapshots, population and labels: the time semantics of DESIGN section 3.

For a snapshot date ``as_of``:

* features see only orders with ``ordered_at < as_of`` (midnight UTC starting that day);
* the population is every customer with a qualifying order in
  ``[as_of - activity_days, as_of)``;
* the label window is ``[as_of, as_of + horizon_days)``, and ``churned = 1`` when the
  customer places no qualifying order in it.

All windows are half-open: an order exactly at ``as_of`` belongs to the label window,
not to the features.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import ibis
import pandas as pd

from churnkit.config import SnapshotConfig
from churnkit.errors import DataError

__all__ = [
    "as_of_table",
    "data_end_date",
    "label_window_end",
    "make_as_of_grid",
    "make_churn_labels",
    "observed_as_of_dates",
]


def data_end_date(orders: pd.DataFrame) -> dt.date:
    """The day after the latest order: the exclusive end of what the data observes."""
    return orders["ordered_at"].max().date() + dt.timedelta(days=1)


def label_window_end(as_of: dt.date, horizon_days: int) -> dt.date:
    """Exclusive end of the label window ``[as_of, as_of + horizon_days)``."""
    return as_of + dt.timedelta(days=horizon_days)


def make_as_of_grid(start: dt.date, end: dt.date, frequency: str) -> list[dt.date]:
    """Snapshot dates from ``start`` to ``end`` inclusive: month starts or Mondays."""
    if frequency == "month":
        first = (
            start
            if start.day == 1
            else (start.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
        )
        dates = pd.date_range(first, end, freq="MS")
    else:
        dates = pd.date_range(start, end, freq="W-MON")
    return [d.date() for d in dates]


def observed_as_of_dates(
    first_order: dt.date, data_end: dt.date, cfg: SnapshotConfig
) -> list[dt.date]:
    """Snapshot dates whose label window the data fully observes.

    The grid starts ``min_history_days`` (default: the horizon) after the first order,
    unless ``first_as_of`` is set: the population and features of a snapshot are defined
    on whatever history was observable then, so real shops with a year or two of data
    get snapshots from early on. It ends where ``as_of + horizon_days`` would pass
    ``data_end``, or at ``last_as_of``.

    Raises
    ------
    DataError
        When no snapshot fits, naming the dates and the settings that would help.
    """
    history = cfg.min_history_days if cfg.min_history_days is not None else cfg.horizon_days
    start = cfg.first_as_of or first_order + dt.timedelta(days=history)
    last_observable = data_end - dt.timedelta(days=cfg.horizon_days)
    end = min(cfg.last_as_of, last_observable) if cfg.last_as_of else last_observable
    grid = make_as_of_grid(start, end, cfg.frequency)
    if not grid:
        first = (
            f"`snapshots.first_as_of` {start}"
            if cfg.first_as_of
            else f"{start} (the first order, {first_order}, plus {history} days of history)"
        )
        raise DataError(
            f"no {cfg.frequency}ly snapshot fits the data: orders run from {first_order} to "
            f"{data_end - dt.timedelta(days=1)}, the first snapshot would be {first}, and the "
            f"last whose {cfg.horizon_days}-day label window the data observes is {end}. Add "
            "data, or lower `snapshots.horizon_days` or `snapshots.min_history_days`, or set "
            "an earlier `snapshots.first_as_of`."
        )
    return grid


def as_of_table(as_of_dates: Sequence[dt.date]) -> ibis.Table:
    """A one-column table of snapshot dates, plus their midnight timestamps."""
    grid = ibis.memtable(pd.DataFrame({"as_of": pd.to_datetime(sorted(set(as_of_dates)))}))
    return grid.select(as_of=grid.as_of.date(), as_of_ts=grid.as_of.cast("timestamp"))


def make_churn_labels(
    qualifying: ibis.Table, population: ibis.Table, horizon_days: int
) -> ibis.Table:
    """Add ``churned`` to a (customer_id, as_of, as_of_ts) population.

    ``churned`` is 1 when the customer has no qualifying order in
    ``[as_of, as_of + horizon_days)``.
    """
    window_end = population.as_of_ts + ibis.interval(days=horizon_days)
    keys = population.select("customer_id", "as_of", "as_of_ts", window_end=window_end)
    inside = qualifying.join(
        keys,
        [
            qualifying.customer_id == keys.customer_id,
            qualifying.ordered_at >= keys.as_of_ts,
            qualifying.ordered_at < keys.window_end,
        ],
    )
    bought = inside.select("customer_id", "as_of").distinct().mutate(bought=ibis.literal(1))
    labelled = population.left_join(bought, ["customer_id", "as_of"]).drop(
        "customer_id_right", "as_of_right"
    )
    return labelled.mutate(churned=labelled.bought.isnull().cast("int8")).drop("bought")
