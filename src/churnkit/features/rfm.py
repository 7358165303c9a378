"""RFM and cadence features: recency, tenure, counts and revenue in windows, gaps.

Every feature at ``as_of`` is computed from qualifying orders with
``ordered_at < as_of`` only. Windows are half-open: ``orders_30d`` counts orders in
``[as_of - 30 days, as_of)``. Day counts are whole calendar days between order dates
and ``as_of``, so an order on the day before ``as_of`` has ``recency_days = 1``.

Missing values: window counts and revenue are 0 when the customer had no order in the
window; ``mean_days_between_orders`` is null for a customer with one order.
"""

from __future__ import annotations

from collections.abc import Sequence

import ibis

__all__ = ["build_rfm", "rfm_feature_names"]


def rfm_feature_names(windows_days: Sequence[int]) -> list[str]:
    """The RFM feature columns, in the order :func:`build_rfm` returns them."""
    windowed = [f"{kind}_{w}d" for w in windows_days for kind in ("orders", "revenue")]
    return [
        "recency_days",
        "tenure_days",
        *windowed,
        "orders_lifetime",
        "revenue_lifetime",
        "mean_order_value",
        "max_order_value",
        "mean_days_between_orders",
    ]


def build_rfm(qualifying: ibis.Table, grid: ibis.Table, windows_days: Sequence[int]) -> ibis.Table:
    """One row per (customer, as_of) for every customer with an order before ``as_of``.

    Parameters
    ----------
    qualifying
        Qualifying orders: ``customer_id``, ``ordered_at`` (naive UTC), ``amount``.
    grid
        Snapshot dates from :func:`~churnkit.features.snapshots.as_of_table`.
    windows_days
        Window lengths for ``orders_<w>d`` and ``revenue_<w>d``.

    Returns
    -------
    ibis.Table
        ``customer_id``, ``as_of``, ``as_of_ts``, ``last_order_at`` and the columns of
        :func:`rfm_feature_names`.
    """
    history = qualifying.join(grid, qualifying.ordered_at < grid.as_of_ts)
    windowed = {}
    for w in windows_days:
        inside = history.ordered_at >= history.as_of_ts - ibis.interval(days=w)
        windowed[f"orders_{w}d"] = inside.cast("int64").sum()
        windowed[f"revenue_{w}d"] = inside.ifelse(history.amount, 0.0).sum()
    agg = history.group_by(["customer_id", "as_of", "as_of_ts"]).aggregate(
        first_order_at=history.ordered_at.min(),
        last_order_at=history.ordered_at.max(),
        orders_lifetime=history.count(),
        revenue_lifetime=history.amount.sum(),
        max_order_value=history.amount.max(),
        **windowed,
    )
    recency = agg.as_of.delta(agg.last_order_at.date(), unit="day")
    tenure = agg.as_of.delta(agg.first_order_at.date(), unit="day")
    gaps = agg.orders_lifetime - 1
    features = agg.mutate(
        recency_days=recency,
        tenure_days=tenure,
        mean_order_value=agg.revenue_lifetime / agg.orders_lifetime,
        mean_days_between_orders=ibis.ifelse(
            gaps > 0, (tenure - recency).cast("float64") / gaps, ibis.null("float64")
        ),
    )
    return features.select(
        "customer_id", "as_of", "as_of_ts", "last_order_at", *rfm_feature_names(windows_days)
    )
