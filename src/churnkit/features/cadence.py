"""Cadence: how regularly a customer orders, and how overdue the next order is.

A gap is the number of calendar days between two consecutive qualifying orders; it
belongs to the later order, so a gap is only seen once both orders are before
``as_of``.

Missing values: ``mean_days_between_orders`` and ``std_days_between_orders`` (population
standard deviation) are null for a customer with a single order; ``overdue_ratio``
(recency / mean gap) is null when the mean gap is null or 0;
``expected_next_order_in_days`` (mean gap - recency, negative when overdue) is null when
the mean gap is null.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from churnkit.features._exprs import Lifetime, safe_ratio
from churnkit.features.spec import FeatureSpec


def names(spec: FeatureSpec) -> list[str]:
    return [
        "mean_days_between_orders",
        "std_days_between_orders",
        "overdue_ratio",
        "expected_next_order_in_days",
    ]


def lifetime(h: ir.Table, spec: FeatureSpec) -> dict[str, Lifetime]:
    # integer sums are exact, so mean and std do not depend on summation order
    return {
        "_gaps": (h.gap_days.count(), "sum"),
        "_gap_sum": (h.gap_days.sum(), "sum"),
        "_gap_squares": ((h.gap_days * h.gap_days).sum(), "sum"),
    }


def aggregates(h: ir.Table, spec: FeatureSpec) -> dict[str, ir.Scalar]:
    return {}


def derive(t: ir.Table, spec: FeatureSpec) -> dict[str, ir.Value]:
    mean = safe_ratio(t._gap_sum, t._gaps)
    variance = safe_ratio(t._gap_squares, t._gaps) - mean * mean
    return {
        "mean_days_between_orders": mean,
        # GREATEST skips nulls in SQL, so keep the null of a single-order customer
        "std_days_between_orders": ibis.ifelse(
            variance.isnull(), ibis.null("float64"), ibis.greatest(variance, 0.0).sqrt()
        ),
        "overdue_ratio": safe_ratio(t.recency_days, mean),
        "expected_next_order_in_days": mean - t.recency_days,
    }
