"""RFM: recency, tenure, orders and revenue in windows and over the lifetime, and units
per order when the orders have a quantity (summed from their lines).

Computed from qualifying orders (completed, amount at least ``min_order_amount``)
with ``ordered_at < as_of``. Windows are half-open: ``orders_30d`` counts orders in
``[as_of - 30 days, as_of)``. Day counts are whole calendar days between an order's
date and ``as_of``, so an order on the day before ``as_of`` has ``recency_days = 1``.

Missing values: window counts and revenue are 0 when the customer had no order in the
window. Every customer of the population has at least one order, so the lifetime
values are always defined.
"""

from __future__ import annotations

import ibis.expr.types as ir

from churnkit.features._exprs import (
    Lifetime,
    count_if,
    days_since,
    money,
    money_sum,
    window_start,
)
from churnkit.features.spec import FeatureSpec

VALUE_WINDOW_DAYS = 365  # customer_value_365d, always computed


def names(spec: FeatureSpec) -> list[str]:
    windowed = [f"{kind}_{w}d" for w in spec.windows_days for kind in ("orders", "revenue")]
    return [
        "recency_days",
        "tenure_days",
        *windowed,
        "orders_lifetime",
        "revenue_lifetime",
        "mean_order_value",
        "max_order_value",
        *(["mean_units_per_order"] if spec.quantity else []),
    ]


def lifetime(h: ir.Table, spec: FeatureSpec) -> dict[str, Lifetime]:
    q = h.qualifying
    return {
        "first_order_at": (h.ordered_at.min(where=q), "min"),
        "last_order_at": (h.ordered_at.max(where=q), "max"),
        "orders_lifetime": (count_if(h, q), "sum"),
        "_revenue_lifetime_micros": (q.ifelse(h.amount_micros, 0).sum(), "sum"),
        "max_order_value": (h.amount.max(where=q), "max"),
        **({"_units_lifetime": (q.ifelse(h.quantity, 0).sum(), "sum")} if spec.quantity else {}),
    }


def aggregates(h: ir.Table, spec: FeatureSpec) -> dict[str, ir.Scalar]:
    q = h.qualifying
    out = {}
    for w in sorted(set(spec.windows_days) | {VALUE_WINDOW_DAYS}):
        inside = q & (h.ordered_at >= window_start(h.as_of_ts, w))
        out[f"orders_{w}d"] = count_if(h, inside)
        out[f"revenue_{w}d"] = money_sum(inside.ifelse(h.amount_micros, 0))
    return out


def derive(t: ir.Table, spec: FeatureSpec) -> dict[str, ir.Value]:
    revenue = money(t._revenue_lifetime_micros)
    return {
        "recency_days": days_since(t.as_of, t.last_order_at),
        "tenure_days": days_since(t.as_of, t.first_order_at),
        "revenue_lifetime": revenue,
        "mean_order_value": revenue / t.orders_lifetime,
        "customer_value_365d": t[f"revenue_{VALUE_WINDOW_DAYS}d"],
        **(
            {"mean_units_per_order": t._units_lifetime / t.orders_lifetime} if spec.quantity else {}
        ),
    }


def population(t: ir.Table, spec: FeatureSpec) -> ir.Table:
    """Customers with a qualifying order in ``[as_of - activity_days, as_of)``."""
    return t.filter(t.last_order_at >= window_start(t.as_of_ts, spec.activity_days))
