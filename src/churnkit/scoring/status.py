"""Where each customer stands against their own rhythm, and the order a team works in.

A customer's *usual gap* is the mean number of days between their qualifying orders:
``(tenure_days - recency_days) / (orders_lifetime - 1)``, the span from their first to
their last order over the gaps in it. A one-order customer has none and is measured
against the *shop's usual gap*, the median usual gap of the night's repeat customers.
``overdue = recency_days / usual gap`` (a gap under one day counts as one day).

``status`` (thresholds in ``scoring.status``):

=========  ==================================================================
lapsed     overdue >= ``lapsed_after_gaps`` (3): long past their own rhythm;
           a win-back play, after everyone still saveable
lapsing    overdue >= ``lapsing_after_gaps`` (1.5): their next order is late
at risk    on time, but in the high or medium risk tier
active     on time and low risk
=========  ==================================================================

``priority`` is the order of the list a retention team works through, in three groups
(:func:`work_group`): first the customers to contact (high or medium risk tier and not
lapsed), then the lapsed ones of those tiers (a win-back play), then the low tier (no
action); within a group by expected value at risk (churn probability x 365-day value, in
cents), ties by ``rank``. ``rank`` stays the order by churn
probability, which the risk tiers follow.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnkit.config import StatusConfig

__all__ = [
    "ACTIVE",
    "AT_RISK",
    "LAPSED",
    "LAPSING",
    "STATUSES",
    "customer_status",
    "overdue_ratio",
    "priority",
    "shop_gap",
    "value_at_risk",
    "work_group",
]

ACTIVE, AT_RISK, LAPSING, LAPSED = "active", "at risk", "lapsing", "lapsed"
STATUSES = (ACTIVE, AT_RISK, LAPSING, LAPSED)


def _usual_gaps(features: pd.DataFrame) -> np.ndarray:
    orders = features["orders_lifetime"].to_numpy(dtype="float64", na_value=np.nan)
    span = features["tenure_days"].to_numpy(dtype="float64", na_value=np.nan) - features[
        "recency_days"
    ].to_numpy(dtype="float64", na_value=np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(orders >= 2, span / (orders - 1), np.nan)


def shop_gap(features: pd.DataFrame) -> float:
    """The median usual gap of the customers with two orders or more (NaN without any)."""
    gaps = _usual_gaps(features)
    gaps = gaps[~np.isnan(gaps)]
    return float(np.median(gaps)) if len(gaps) else float("nan")


def overdue_ratio(features: pd.DataFrame, shop_gap: float) -> np.ndarray:
    """Days since the last order over the customer's usual gap (the shop's for one-order
    customers); NaN when neither is known."""
    gaps = _usual_gaps(features)
    gaps = np.where(np.isnan(gaps), shop_gap, gaps)
    recency = features["recency_days"].to_numpy(dtype="float64", na_value=np.nan)
    with np.errstate(invalid="ignore"):
        return recency / np.maximum(gaps, 1.0)


def customer_status(overdue: np.ndarray, tiers: np.ndarray, cfg: StatusConfig) -> np.ndarray:
    """``lapsed``, ``lapsing``, ``at risk`` or ``active`` per customer (see the module)."""
    overdue = np.nan_to_num(np.asarray(overdue, dtype="float64"), nan=0.0)
    on_time = np.where(np.isin(tiers, ("high", "medium")), AT_RISK, ACTIVE)
    return np.where(
        overdue >= cfg.lapsed_after_gaps,
        LAPSED,
        np.where(overdue >= cfg.lapsing_after_gaps, LAPSING, on_time),
    )


CONTACT, WIN_BACK, NO_ACTION = 0, 1, 2


def work_group(lapsed: np.ndarray, tiers: np.ndarray) -> np.ndarray:
    """0: contact (at risk and still saveable), 1: win back (lapsed), 2: no action (low
    risk tier, lapsed or not)."""
    low = np.asarray(tiers) == "low"
    return np.where(low, NO_ACTION, np.where(np.asarray(lapsed, dtype=bool), WIN_BACK, CONTACT))


def value_at_risk(probability: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Churn probability x 365-day value, in cents (as the list shows it); 0 when unknown."""
    product = np.asarray(probability, dtype="float64") * np.asarray(value, dtype="float64")
    return np.round(np.nan_to_num(product, nan=0.0), 2)


def priority(group: np.ndarray, value_at_risk: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """1-based position of each customer in the working order of the module docstring:
    by group, then value at risk (:func:`value_at_risk`), then ``rank``."""
    order = np.lexsort(
        (
            np.asarray(rank, dtype="int64"),
            -np.asarray(value_at_risk, dtype="float64"),
            np.asarray(group, dtype="int64"),
        )
    )
    positions = np.empty(len(order), dtype="int64")
    positions[order] = np.arange(1, len(order) + 1, dtype="int64")
    return positions
