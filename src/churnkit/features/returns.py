"""Returns and refunds, when the orders have a status column.

Counted over all orders before ``as_of`` whatever their amount: ``returns_lifetime``
and ``cancellations_lifetime`` (orders), ``return_rate`` = returned / (completed +
returned) orders, ``refunded_revenue_share`` = returned revenue / (completed + returned
revenue), using absolute amounts so negative refund rows count as refunds.
Missing values: 0 (no returns); the rates are 0 when the customer has no completed or
returned order (cannot happen in the population).
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from churnkit.features._exprs import Lifetime, count_if, money
from churnkit.features.spec import FeatureSpec


def names(spec: FeatureSpec) -> list[str]:
    return ["returns_lifetime", "cancellations_lifetime", "return_rate", "refunded_revenue_share"]


def lifetime(h: ir.Table, spec: FeatureSpec) -> dict[str, Lifetime]:
    returned = h.status == "returned"
    completed = h.status == "completed"
    return {
        "returns_lifetime": (count_if(h, returned), "sum"),
        "cancellations_lifetime": (count_if(h, h.status == "cancelled"), "sum"),
        "_completed_orders": (count_if(h, completed), "sum"),
        "_returned_micros": (
            returned.fill_null(False).ifelse(h.amount_micros.abs(), 0).sum(),
            "sum",
        ),
        "_completed_micros": (
            completed.fill_null(False).ifelse(h.amount_micros.abs(), 0).sum(),
            "sum",
        ),
    }


def aggregates(h: ir.Table, spec: FeatureSpec) -> dict[str, ir.Scalar]:
    return {}


def derive(t: ir.Table, spec: FeatureSpec) -> dict[str, ir.Value]:
    orders = t.returns_lifetime + t._completed_orders
    returned = money(t._returned_micros)
    revenue = returned + money(t._completed_micros)
    return {
        "return_rate": ibis.ifelse(orders > 0, t.returns_lifetime.cast("float64") / orders, 0.0),
        "refunded_revenue_share": ibis.ifelse(revenue > 0, returned / revenue, 0.0),
    }
