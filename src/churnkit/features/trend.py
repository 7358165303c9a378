"""Trend: the last ``trend_days`` compared with the ``trend_days`` before them.

``orders_prev_90d`` counts qualifying orders in ``[as_of - 180 d, as_of - 90 d)``;
``orders_trend_90d`` is orders in the last 90 days minus that (negative when slowing
down); the same for revenue. Missing values: 0 (no orders in a window).
"""

from __future__ import annotations

import ibis.expr.types as ir

from churnkit.features._exprs import Lifetime, count_if, money_sum, window_start
from churnkit.features.spec import FeatureSpec


def names(spec: FeatureSpec) -> list[str]:
    d = spec.trend_days
    return [f"orders_prev_{d}d", f"revenue_prev_{d}d", f"orders_trend_{d}d", f"revenue_trend_{d}d"]


def lifetime(h: ir.Table, spec: FeatureSpec) -> dict[str, Lifetime]:
    return {}


def aggregates(h: ir.Table, spec: FeatureSpec) -> dict[str, ir.Scalar]:
    d = spec.trend_days
    q = h.qualifying
    last = q & (h.ordered_at >= window_start(h.as_of_ts, d))
    prev = (
        q
        & (h.ordered_at >= window_start(h.as_of_ts, 2 * d))
        & (h.ordered_at < window_start(h.as_of_ts, d))
    )
    return {
        "_trend_orders_last": count_if(h, last),
        "_trend_revenue_last": money_sum(last.ifelse(h.amount_micros, 0)),
        f"orders_prev_{d}d": count_if(h, prev),
        f"revenue_prev_{d}d": money_sum(prev.ifelse(h.amount_micros, 0)),
    }


def derive(t: ir.Table, spec: FeatureSpec) -> dict[str, ir.Value]:
    d = spec.trend_days
    return {
        f"orders_trend_{d}d": t._trend_orders_last - t[f"orders_prev_{d}d"],
        f"revenue_trend_{d}d": t._trend_revenue_last - t[f"revenue_prev_{d}d"],
    }
