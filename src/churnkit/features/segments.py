"""Customer segments used by the CRR baseline and the at-risk list."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["RECENCY_BUCKETS", "recency_bucket"]

# (upper bound in days, inclusive; label)
RECENCY_BUCKETS: tuple[tuple[float, str], ...] = (
    (30, "1-30d"),
    (60, "31-60d"),
    (90, "61-90d"),
    (180, "91-180d"),
    (365, "181-365d"),
    (np.inf, "366d+"),
)


def recency_bucket(recency_days: pd.Series) -> pd.Series:
    """Name the recency bucket of each customer (``recency 1-30d`` ... ``recency 366d+``)."""
    edges = [0] + [upper for upper, _ in RECENCY_BUCKETS]
    labels = [label for _, label in RECENCY_BUCKETS]
    buckets = pd.cut(recency_days, bins=edges, labels=labels, right=True)
    return buckets.astype(str).rename("segment")
