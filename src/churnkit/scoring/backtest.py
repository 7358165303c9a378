"""Backtest a scored night once its outcome is known: the list against what happened.

``churnkit evaluate`` joins a partition to the labels of its date (who placed no
qualifying order in the horizon) and measures the list as it was served, beside the
CRR baseline written with it, and each risk tier's predicted against observed churn.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from churnkit.errors import DataError
from churnkit.features.spec import FeatureSpec
from churnkit.training import CRR_BASELINE, MODEL
from churnkit.training.metrics import score_metrics

if TYPE_CHECKING:  # pragma: no cover
    from churnkit.data import CheckedData

__all__ = ["Backtest", "backtest_night", "check_window_passed", "night_labels"]


@dataclass(frozen=True)
class Backtest:
    """Metrics per scorer (the list's model and the CRR baseline) and per risk tier."""

    metrics: dict[str, dict[str, float]]
    tiers: pd.DataFrame  # risk_tier, customers, predicted, churned
    rows: int


def check_window_passed(as_of: dt.date, horizon_days: int, data_end: dt.date) -> None:
    """Refuse a backtest whose label window ``[as_of, as_of + horizon)`` the data has not
    reached yet (``data_end`` is the day after the latest order)."""
    last_day = as_of + dt.timedelta(days=horizon_days - 1)
    if data_end <= last_day:
        raise DataError(
            f"the {horizon_days}-day label window of {as_of} runs to {last_day}, but the data "
            f"ends on {data_end - dt.timedelta(days=1)}; evaluate once orders up to "
            f"{last_day} are loaded"
        )


def night_labels(
    data: CheckedData, manifest: Mapping[str, Any], as_of: dt.date, horizon_days: int
) -> pd.DataFrame:
    """Who of a scored night's population placed no qualifying order in the horizon
    (``customer_id``, ``churned``), from the checked data; refuses a night whose horizon
    the data has not reached (:func:`check_window_passed`)."""
    check_window_passed(as_of, horizon_days, data.summary().data_end)
    spec = FeatureSpec.model_validate(manifest.get("feature_spec") or {})
    rfm_only = spec.model_copy(update={"families": ("rfm",)})
    return data.features([as_of], rfm_only, horizon_days=horizon_days)


def backtest_night(scored: pd.DataFrame, labels: pd.DataFrame, as_of: dt.date) -> Backtest:
    """The list ``scored`` for ``as_of`` measured against ``labels`` (``customer_id``,
    ``churned``) of the same date.

    Raises
    ------
    DataError
        When scored customers are missing from the labelled population (the partition
        came from other data or another activity window).
    """
    joined = scored.merge(
        labels[["customer_id", "churned"]], on="customer_id", how="left", validate="one_to_one"
    )
    unknown = int(joined["churned"].isna().sum())
    if unknown:
        raise DataError(
            f"{unknown} scored customers of {as_of} are not in the population the data gives "
            "for that date; was the partition scored from other data or another "
            "`snapshots.activity_days`?"
        )
    y = joined["churned"].astype("int64").to_numpy()
    metrics = {
        MODEL: score_metrics(y, joined["churn_probability"].to_numpy()),
        CRR_BASELINE: score_metrics(y, joined["baseline_churn_probability"].to_numpy()),
    }
    tiers = (
        joined.groupby("risk_tier", sort=False)
        .agg(
            customers=("churned", "size"),
            predicted=("churn_probability", "mean"),
            churned=("churned", "mean"),
        )
        .reindex(["high", "medium", "low"])
        .dropna(how="all")
        .reset_index()
    )
    return Backtest(metrics, tiers, len(joined))
