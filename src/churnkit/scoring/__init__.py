"""Scoring: ranked churn probabilities with reasons, tiers, value at risk and an action,
next to the CRR baseline."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from churnkit.config import RiskTierConfig, ScoringConfig, StatusConfig
from churnkit.errors import DataError, DriftError, StaleDataError
from churnkit.scoring.actions import assign_risk_tiers, recommend_actions, tier_cutoffs
from churnkit.scoring.holdout import assign_holdout
from churnkit.scoring.output import write_partition
from churnkit.scoring.reasons import REASON_COLUMNS, reason_sentences
from churnkit.scoring.status import (
    LAPSED,
    customer_status,
    overdue_ratio,
    priority,
    shop_gap,
    value_at_risk,
    work_group,
)
from churnkit.training.drift import DriftReport, drift_report
from churnkit.training.model import ChurnModel
from churnkit.training.uplift import UpliftModel

__all__ = [
    "SCORE_COLUMNS",
    "Night",
    "score_night",
    "explain_ranked",
    "high_value_threshold",
    "resolve_as_of",
    "score_customers",
    "write_partition",
]

SCORE_COLUMNS = [
    "as_of",
    "customer_id",
    "rank",
    "priority",
    "churn_probability",
    "risk_tier",
    "status",
    "baseline_churn_probability",
    "segment",
    "customer_value_365d",
    "expected_value_at_risk",
    "uplift",
    "expected_saved_value",
    *REASON_COLUMNS,
    "recommended_action",
    "holdout",
    "model_name",
    "model_version",
]


def score_customers(
    model: ChurnModel,
    features: pd.DataFrame,
    *,
    tiers: RiskTierConfig | None = None,
    status: StatusConfig | None = None,
    high_value_share: float = 0.2,
    explain_top: int | None = None,
) -> pd.DataFrame:
    """The ranked, explained at-risk list (:data:`SCORE_COLUMNS`) for ``features``.

    Rows are sorted by churn probability, highest first (``rank``). Ties (an isotonic
    calibration or a served baseline maps ranges of scores to one probability) are broken
    by the raw score, then by ``customer_id``, so the order is total and reruns give the
    same bytes. ``priority`` is the order a team works the list in, saveable customers by
    value at risk first and the lapsed after them (:mod:`churnkit.scoring.status`).
    ``segment`` is the segment of the CRR baseline (the RFM segment when the model has
    one), so ``baseline_churn_probability`` is that segment's historical churn rate.

    Reasons (exact TreeSHAP, asked of LightGBM once per tree for each distinct way the
    customers meet its splits: :mod:`churnkit.scoring.contributions`) are computed for
    the first ``explain_top`` customers by priority, or for all when it is None; the
    others get empty reasons, and an action chosen without them.

    Raises
    ------
    FeatureMismatchError
        When ``features`` does not have the model's feature columns.
    """
    status = status or StatusConfig()
    features = model.add_derived_features(features)  # on the whole population, once
    raw = model.predict_raw(features)
    probability = raw if model.calibration is None else model.calibration.apply(raw)
    order = (
        pd.DataFrame(
            {"p": probability, "raw": raw, "customer_id": features["customer_id"].to_numpy()}
        )
        .sort_values(["p", "raw", "customer_id"], ascending=[False, False, True], kind="stable")
        .index.to_numpy()
    )
    ranked = features.iloc[order].reset_index(drop=True)
    probability = probability[order]
    value = ranked["customer_value_365d"].to_numpy(dtype="float64", na_value=0.0)
    overdue = overdue_ratio(ranked, shop_gap(ranked))
    tiers = tiers or RiskTierConfig()
    rank = np.arange(1, len(ranked) + 1, dtype="int64")
    lapsed = np.nan_to_num(overdue) >= status.lapsed_after_gaps
    cutoffs = tier_cutoffs(tiers, rank[~lapsed])
    group = work_group(lapsed, assign_risk_tiers(probability, tiers, rank=rank, cutoffs=cutoffs))
    return explain_ranked(
        model,
        ranked,
        probability=probability,
        rank=rank,
        priority=priority(group, value_at_risk(probability, value), rank),
        overdue=overdue,
        tiers=tiers,
        status=status,
        high_value_threshold=high_value_threshold(value, high_value_share),
        explain_top=explain_top,
        cutoffs=cutoffs,
    )


def high_value_threshold(customer_value: np.ndarray, high_value_share: float) -> float:
    """The 365-day value from which a customer counts as high value (the top share)."""
    return float(np.quantile(customer_value, 1 - high_value_share)) if len(customer_value) else 0.0


def explain_ranked(
    model: ChurnModel,
    ranked: pd.DataFrame,
    *,
    probability: np.ndarray,
    rank: np.ndarray,
    priority: np.ndarray,
    overdue: np.ndarray,
    tiers: RiskTierConfig,
    status: StatusConfig,
    high_value_threshold: float,
    explain_top: int | None,
    cutoffs: tuple[int, int],
) -> pd.DataFrame:
    """:data:`SCORE_COLUMNS` for rows whose probability, rank and priority are known.

    Works on any slice of a ranking (a Spark partition, say): tiers by ``method: top``
    or ``share`` use ``rank`` and the night's ``cutoffs`` (:func:`~churnkit.scoring.
    actions.tier_cutoffs`), reasons limited to
    ``explain_top`` use ``priority``, the VIP play the population's
    ``high_value_threshold``, the status each row's ``overdue`` ratio.
    """
    scored = ranked[["as_of", "customer_id"]].copy()
    scored["rank"] = np.asarray(rank, dtype="int64")
    scored["priority"] = np.asarray(priority, dtype="int64")
    scored["churn_probability"] = np.asarray(probability, dtype="float64")
    scored["risk_tier"] = assign_risk_tiers(
        probability, tiers, rank=scored["rank"].to_numpy(), cutoffs=cutoffs
    )
    scored["status"] = customer_status(overdue, scored["risk_tier"].to_numpy(), status)
    scored["baseline_churn_probability"] = model.baseline_proba(ranked)
    scored["segment"] = ranked[model.baseline.segment_column].astype(str).to_numpy()
    value = ranked["customer_value_365d"].astype("float64")
    scored["customer_value_365d"] = value
    scored["expected_value_at_risk"] = value_at_risk(probability, value.to_numpy())
    scored["uplift"] = np.nan  # with scoring.uplift_model: see score_night
    scored["expected_saved_value"] = np.nan
    explain = (
        np.ones(len(ranked), dtype=bool)
        if explain_top is None
        else scored["priority"] <= explain_top
    )
    explain = np.asarray(explain)
    sentences, chosen = reason_sentences(model, ranked[explain])
    # one shared empty tuple for the customers without reasons: a new list each made
    # the garbage collector walk the whole heap four times at 525k customers (1 s)
    reasons: list[tuple[str, ...]] = [()] * len(ranked)
    for position, names in zip(np.flatnonzero(explain), chosen, strict=True):
        reasons[position] = tuple(names)
    for column in REASON_COLUMNS:
        scored[column] = ""
        scored.loc[explain, column] = sentences[column].to_numpy()
        scored[column] = scored[column].astype("str")
    orders = (
        ranked["orders_lifetime"]
        if "orders_lifetime" in ranked
        else pd.Series(np.inf, index=ranked.index)
    )
    high_value = (value.to_numpy(na_value=0.0) >= high_value_threshold) & (
        value.to_numpy(na_value=0.0) > 0
    )
    scored["recommended_action"] = recommend_actions(
        scored["risk_tier"], reasons, orders, high_value, lapsed=scored["status"] == LAPSED
    )
    scored["holdout"] = False  # drawn for the whole night: see churnkit.scoring.holdout
    scored["model_name"] = str(model.metadata.get("model_name", ""))
    scored["model_version"] = str(model.metadata.get("model_version", ""))
    return scored[SCORE_COLUMNS]


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


@dataclass(frozen=True)
class Night:
    """A scored night: the ranked list and its manifest (what served it, drift, ...)."""

    ranked: pd.DataFrame
    manifest: Any


def score_night(
    features: pd.DataFrame,
    model: ChurnModel,
    cfg: ScoringConfig,
    *,
    manifest: Callable[[int, dict[str, int], DriftReport, dict[str, int]], Any],
    no_customers: str,
    allow_drift: bool,
    on_step: Callable[[str], None],
) -> Night:
    """Score, rank and explain the night's feature table; measure drift.

    ``manifest(rows, tier_counts, drift, held_out_by_tier)`` builds the night's manifest;
    the holdout group is drawn by ``cfg.holdout`` (:mod:`churnkit.scoring.holdout`). A night whose
    scores drifted beyond ``cfg.drift.psi_threshold`` raises :class:`DriftError` (the
    message says what drifted) unless ``allow_drift``; feature drift is recorded only.

    Raises
    ------
    DataError
        With ``no_customers`` when nobody is active at the date.
    """
    if features.empty:
        raise DataError(no_customers)
    on_step(f"scoring and explaining {len(features):,} customers")
    features = model.add_derived_features(features)
    ranked = score_customers(
        model,
        features,
        tiers=cfg.risk_tiers,
        status=cfg.status,
        high_value_share=cfg.high_value_share,
        # a served baseline is not the booster: its contributions would explain another list
        explain_top=0 if model.serving else cfg.explain_top,
    )
    drift = drift_report(
        model.drift_reference,
        features,
        ranked["churn_probability"].to_numpy(),
        cfg.drift.psi_threshold,
        compare_score=not model.serving,  # the reference score is the booster's
        allowed=allow_drift,
        elapsed_days=model.days_since_drift_reference(ranked["as_of"].iloc[0]),
        exclude=cfg.drift.exclude,
    )
    if cfg.uplift_model is not None:  # who a contact would change, and what it would save
        uplift = UpliftModel.load(cfg.uplift_model).predict(
            features.set_index("customer_id").loc[ranked["customer_id"]].reset_index()
        )
        ranked["uplift"] = uplift
        ranked["expected_saved_value"] = np.round(uplift * ranked["customer_value_365d"], 2)
    as_of = ranked["as_of"].iloc[0]
    ranked["holdout"] = assign_holdout(ranked, pd.Timestamp(as_of).date(), cfg.holdout)
    held_out = ranked.loc[ranked["holdout"], "risk_tier"].value_counts().to_dict()
    written = manifest(len(ranked), ranked["risk_tier"].value_counts().to_dict(), drift, held_out)
    if drift.stops and not allow_drift:
        raise DriftError(drift.message(ranked["as_of"].iloc[0]))
    return Night(ranked, written)
