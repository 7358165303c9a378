"""Segments: recency buckets, R/F/M quintile scores and the named RFM segment.

``r_score``, ``f_score`` and ``m_score`` are 1 to 5 within each ``as_of``: the
population is ranked by recency (most recent highest), lifetime orders and lifetime
revenue, and the score is ``1 + floor(5 * percent_rank)`` capped at 5, so customers with
equal values share a score. The named segment follows :data:`RFM_SEGMENTS` on
(R, F). Always defined for every customer of the population.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir
import numpy as np

from churnkit.features.spec import FeatureSpec

__all__ = ["RECENCY_BUCKETS", "RFM_SEGMENTS", "recency_bucket", "rfm_segment_name"]

# (upper bound in days, inclusive; label)
RECENCY_BUCKETS: tuple[tuple[float, str], ...] = (
    (30, "1-30d"),
    (60, "31-60d"),
    (90, "61-90d"),
    (180, "91-180d"),
    (365, "181-365d"),
    (np.inf, "366d+"),
)

# The standard RFM segment map on (R score, F score); the first matching row wins.
RFM_SEGMENTS: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = (
    ("Champions", (5,), (4, 5)),
    ("Loyal", (3, 4), (4, 5)),
    ("Cannot Lose", (1, 2), (5,)),
    ("At Risk", (1, 2), (3, 4)),
    ("Potential Loyalist", (4, 5), (2, 3)),
    ("Need Attention", (3,), (3,)),
    ("About to Sleep", (3,), (1, 2)),
    ("Promising", (4,), (1,)),
    ("New", (5,), (1,)),
    ("Lost", (1,), (1,)),
    ("Hibernating", (1, 2), (1, 2)),
)


def names(spec: FeatureSpec) -> list[str]:
    return ["r_score", "f_score", "m_score"]


def recency_bucket(recency_days: ir.IntegerValue) -> ir.StringValue:
    """The recency bucket of each customer (``1-30d`` ... ``366d+``), the CRR baseline's
    segment; part of the feature expression, so every engine computes it where it runs."""
    cases = [(recency_days <= upper, label) for upper, label in RECENCY_BUCKETS[:-1]]
    return ibis.cases(*cases, else_=RECENCY_BUCKETS[-1][1])


def rfm_segment_name(r: int, f: int) -> str:
    """The named segment of an (R, F) score pair."""
    for name, rs, fs in RFM_SEGMENTS:
        if r in rs and f in fs:
            return name
    raise ValueError(f"scores must be 1..5, got R={r}, F={f}")


def add_segments(population: ir.Table, *, one_date: bool = False) -> ir.Table:
    """Add ``r_score``, ``f_score``, ``m_score`` and ``rfm_segment`` per ``as_of``
    (``one_date``: the population has one; its ranks then need no partition, about 0.2 s
    of CPU less at 1M customers)."""
    by = None if one_date else "as_of"

    def score(order_by: ir.Value) -> ir.IntegerValue:
        rank = ibis.percent_rank().over(ibis.window(group_by=by, order_by=order_by))
        return ibis.least(5, 1 + (rank * 5).floor()).cast("int64")

    scored = population.mutate(
        r_score=score(ibis.desc(population.recency_days)),
        f_score=score(population.orders_lifetime),
        m_score=score(population.revenue_lifetime),
    )
    cases = [
        (scored.r_score.isin(list(rs)) & scored.f_score.isin(list(fs)), name)
        for name, rs, fs in RFM_SEGMENTS
    ]
    return scored.mutate(rfm_segment=ibis.cases(*cases, else_="Hibernating"))
