"""Point-in-time features, population and labels, written once as Ibis expressions.

The public entry point is :func:`build_features`: orders in, one row per
(customer, as_of) of the population out, with labels when a horizon is given. Time
semantics are those of :mod:`churnkit.features.snapshots`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import ibis
import pandas as pd
from pydantic import BaseModel, ConfigDict

from churnkit.config import Config
from churnkit.features.rfm import build_rfm, rfm_feature_names
from churnkit.features.segments import recency_bucket
from churnkit.features.snapshots import as_of_table, make_churn_labels

__all__ = [
    "ID_COLUMNS",
    "INFO_COLUMNS",
    "LABEL_COLUMN",
    "FeatureSpec",
    "build_features",
    "feature_names",
]

ID_COLUMNS = ["customer_id", "as_of"]
LABEL_COLUMN = "churned"
INFO_COLUMNS = ["customer_value_365d", "segment"]
_VALUE_WINDOW_DAYS = 365


class FeatureSpec(BaseModel):
    """Everything needed to rebuild a model's features; stored with the model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    windows_days: tuple[int, ...]
    activity_days: int
    min_order_amount: float = 0.0

    @classmethod
    def from_config(cls, cfg: Config) -> FeatureSpec:
        return cls(
            windows_days=cfg.features.windows_days,
            activity_days=cfg.snapshots.activity_days,
            min_order_amount=cfg.data.min_order_amount,
        )


def feature_names(spec: FeatureSpec) -> list[str]:
    """The model's input columns, in order."""
    return rfm_feature_names(spec.windows_days)


def build_features(
    orders: pd.DataFrame,
    as_of_dates: Sequence[dt.date],
    spec: FeatureSpec,
    *,
    horizon_days: int | None = None,
) -> pd.DataFrame:
    """Features for the population at each ``as_of``, and labels when asked.

    Parameters
    ----------
    orders
        Validated orders with canonical columns (``customer_id``, ``ordered_at``,
        ``amount``, ``status``).
    as_of_dates
        Snapshot dates; all are computed in one query.
    spec
        Windows, activity window and the qualifying-order threshold.
    horizon_days
        When given, adds ``churned`` for the label window ``[as_of, as_of + horizon)``.

    Returns
    -------
    pandas.DataFrame
        ``customer_id``, ``as_of``, the columns of :func:`feature_names`,
        ``customer_value_365d``, ``segment`` (recency bucket) and, with a horizon,
        ``churned``; sorted by ``as_of`` then ``customer_id``.

    Examples
    --------
    >>> spec = FeatureSpec(windows_days=(30, 90), activity_days=365)
    >>> build_features(orders, [dt.date(2025, 1, 1)], spec)  # doctest: +SKIP
    """
    con = ibis.duckdb.connect()
    table = ibis.memtable(orders[["customer_id", "ordered_at", "amount", "status"]])
    qualifying = table.filter(
        (table.status == "completed") & (table.amount >= spec.min_order_amount)
    )
    windows = sorted(set(spec.windows_days) | {_VALUE_WINDOW_DAYS})
    rfm = build_rfm(qualifying, as_of_table(as_of_dates), windows)
    population = rfm.filter(
        rfm.last_order_at >= rfm.as_of_ts - ibis.interval(days=spec.activity_days)
    ).mutate(customer_value_365d=rfm[f"revenue_{_VALUE_WINDOW_DAYS}d"])
    names = feature_names(spec)
    extra = [LABEL_COLUMN] if horizon_days is not None else []
    if horizon_days is not None:
        population = make_churn_labels(qualifying, population, horizon_days)
    expr = population.select(*ID_COLUMNS, *names, "customer_value_365d", *extra).order_by(
        ["as_of", "customer_id"]
    )
    frame = con.execute(expr)
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    frame["segment"] = recency_bucket(frame["recency_days"])
    return frame[[*ID_COLUMNS, *names, *INFO_COLUMNS, *extra]].reset_index(drop=True)
