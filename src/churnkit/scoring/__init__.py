"""Scoring: churn probabilities, the CRR baseline next to them, and a ranked list."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from churnkit.errors import StaleDataError
from churnkit.scoring.output import write_partition
from churnkit.training.model import ChurnModel

__all__ = [
    "SCORE_COLUMNS",
    "rank_at_risk",
    "resolve_as_of",
    "score_customers",
    "write_partition",
]

SCORE_COLUMNS = [
    "as_of",
    "customer_id",
    "rank",
    "churn_probability",
    "baseline_churn_probability",
    "segment",
    "customer_value_365d",
    "expected_value_at_risk",
    "model_name",
    "model_version",
]


def score_customers(model: ChurnModel, features: pd.DataFrame) -> pd.DataFrame:
    """Churn probability and CRR-baseline probability for each row of ``features``.

    Raises
    ------
    FeatureMismatchError
        When ``features`` does not have the model's feature columns.
    """
    scored = features[["as_of", "customer_id", "segment", "customer_value_365d"]].copy()
    raw = model.predict_raw(features)
    scored["churn_probability"] = raw if model.calibration is None else model.calibration.apply(raw)
    scored["_raw_score"] = raw  # breaks the ties that calibration steps create
    scored["baseline_churn_probability"] = model.baseline_proba(features)
    scored["expected_value_at_risk"] = (
        scored["churn_probability"] * scored["customer_value_365d"]
    ).round(2)
    scored["model_name"] = str(model.metadata.get("model_name", ""))
    scored["model_version"] = str(model.metadata.get("model_version", ""))
    return scored


def rank_at_risk(scored: pd.DataFrame) -> pd.DataFrame:
    """Sort by churn probability, highest first, and add ``rank``.

    Ties (isotonic calibration maps ranges of raw scores to one probability) are broken
    by the model's raw score, then by ``customer_id``.
    """
    ranked = scored.sort_values(
        ["churn_probability", "_raw_score", "customer_id"],
        ascending=[False, False, True],
        kind="stable",
    ).reset_index(drop=True)
    ranked["rank"] = np.arange(1, len(ranked) + 1, dtype="int64")
    return ranked[SCORE_COLUMNS]


def resolve_as_of(requested: dt.date | None, data_end: dt.date, max_staleness_days: int) -> dt.date:
    """The scoring date: the one requested, else ``data_end`` (the day after the last order).

    Raises
    ------
    StaleDataError
        When the data ends more than ``max_staleness_days`` before the requested date.
    """
    if requested is None:
        return data_end
    lag_days = (requested - data_end).days
    if lag_days > max_staleness_days:
        raise StaleDataError(
            f"the data ends on {data_end - dt.timedelta(days=1)}, {lag_days + 1} days before the "
            f"requested as_of {requested}; `scoring.max_staleness_days` allows "
            f"{max_staleness_days}. Load fresh orders, or raise the limit in the config."
        )
    return requested
