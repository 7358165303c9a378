"""Risk tiers and the recommended retention play for each scored customer.

The plays are those of ``docs/retention.md``. :data:`PLAYS` lists them in the
order they are tried; the first whose condition holds for a customer is recommended.
A condition looks at the customer's risk tier, the features behind their reasons
(``pred_contrib``), their order count and their value, so the action answers *why*
the customer is at risk, not only *that* they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from churnkit.config import RiskTierConfig

__all__ = [
    "PLAYS",
    "CustomerContext",
    "Play",
    "assign_risk_tiers",
    "tier_cutoffs",
    "recommend_action",
    "recommend_actions",
]

HIGH, MEDIUM, LOW = "high", "medium", "low"


def tier_cutoffs(cfg: RiskTierConfig, saveable_ranks: np.ndarray) -> tuple[int, int]:
    """The ranks up to which customers are ``high`` and ``medium`` (``share`` and ``top``).

    The shares (or counts) are taken of the customers still worth saving, whose ranks
    (1 = most at risk of the whole night) are ``saveable_ranks``: at a high churn rate
    the top of a night is mostly customers who left long ago, and a share of the whole
    night would leave hardly any saveable customer in ``high``. A cutoff is the rank of
    the last saveable customer inside it; a lapsed customer ranked above it shares the
    tier (their play is a win-back all the same).
    """
    ranks = np.sort(np.asarray(saveable_ranks, dtype="int64"))
    n = len(ranks)
    if cfg.method == "share":
        counts = math.ceil(cfg.high * n), math.ceil(cfg.medium * n)
    else:
        counts = int(cfg.high), int(cfg.medium)
    return tuple(int(ranks[min(k, n) - 1]) if k >= 1 and n else 0 for k in counts)  # type: ignore[return-value]


def assign_risk_tiers(
    probabilities: np.ndarray,
    cfg: RiskTierConfig,
    *,
    rank: np.ndarray | None = None,
    cutoffs: tuple[int, int] | None = None,
) -> np.ndarray:
    """``high``, ``medium`` or ``low`` per customer.

    For ``method: top`` and ``share`` the tiers follow ``rank`` (1 = most at risk;
    without it, ``probabilities`` must be in ranking order) up to the ``cutoffs`` of
    :func:`tier_cutoffs` (default: every row counted as saveable), so a slice of the
    ranking gets the tiers the whole list gives it.
    """
    p = np.asarray(probabilities, dtype="float64")
    position = np.arange(1, len(p) + 1) if rank is None else np.asarray(rank)
    if cfg.method == "probability":
        high, medium = p >= cfg.high, p >= cfg.medium
    else:
        high_rank, medium_rank = cutoffs or tier_cutoffs(cfg, position)
        high, medium = position <= high_rank, position <= medium_rank
    return np.where(high, HIGH, np.where(medium, MEDIUM, LOW))


@dataclass(frozen=True)
class CustomerContext:
    """What a play's condition may look at."""

    tier: str
    reasons: Sequence[str]  # feature names, largest contribution first
    orders_lifetime: float
    high_value: bool
    lapsed: bool = False  # long past their own usual gap (status ``lapsed``)

    def any_reason(self, *fragments: str) -> bool:
        return any(fragment in name for name in self.reasons for fragment in fragments)


@dataclass(frozen=True)
class Play:
    """A retention play: a short action for the list, and when it applies."""

    action: str
    when: str
    applies: Callable[[CustomerContext], bool]


PLAYS: tuple[Play, ...] = (
    Play(
        "no action: low risk",
        "risk tier is low",
        lambda c: c.tier == LOW,
    ),
    Play(
        "win-back: a reactivation offer (exclusive discount or early access), apart from "
        "the saveable list",
        "status is lapsed: long past their own usual gap between orders",
        lambda c: c.lapsed,
    ),
    Play(
        "support follow-up: resolve open tickets and delivery problems",
        "a support-ticket feature is among the reasons",
        lambda c: c.any_reason("support_ticket"),
    ),
    Play(
        "feedback call: ask about their experience (NPS) and act on complaints fast",
        "an NPS feature is among the reasons",
        lambda c: c.any_reason("nps"),
    ),
    Play(
        "returns follow-up: make returns and refunds easy, ask what went wrong",
        "a return, refund or cancellation feature is among the reasons",
        lambda c: c.any_reason("return", "refund", "cancellation"),
    ),
    Play(
        "onboarding: help towards a second purchase",
        "the customer has a single order",
        lambda c: c.orders_lifetime <= 1,
    ),
    Play(
        "VIP care: loyalty-tier reward and personal contact",
        "the customer is in the top `scoring.high_value_share` by 365-day value",
        lambda c: c.high_value,
    ),
    Play(
        "personal recommendations from their purchase history",
        "an engagement feature (email opens, sessions) is among the reasons",
        lambda c: c.any_reason("email_open", "session"),
    ),
    Play(
        "targeted incentive: exclusive discount or early access",
        "otherwise: a lapsing, price-sensitive customer",
        lambda c: True,
    ),
)


def recommend_action(context: CustomerContext) -> str:
    """The action of the first play in :data:`PLAYS` that applies."""
    return next(play.action for play in PLAYS if play.applies(context))


def recommend_actions(
    tiers: Sequence[str],
    reasons: Sequence[Sequence[str]],
    orders_lifetime: pd.Series,
    high_value: np.ndarray,
    *,
    lapsed: Sequence[bool] | None = None,
) -> list[str]:
    """:func:`recommend_action` for every customer of a scored population.

    Customers share few distinct contexts (most have no reasons beyond
    ``scoring.explain_top``), so each distinct context is decided once.
    """
    orders = orders_lifetime.to_numpy(dtype="float64", na_value=0.0).tolist()
    gone = [False] * len(orders) if lapsed is None else np.asarray(lapsed, dtype=bool).tolist()
    decided: dict[tuple[str, tuple[str, ...], float, bool, bool], str] = {}
    actions = []
    for key in zip(
        np.asarray(tiers, dtype=object).tolist(),
        map(tuple, reasons),
        orders,
        np.asarray(high_value, dtype=bool).tolist(),
        gone,
        strict=True,
    ):
        action = decided.get(key)
        if action is None:
            action = decided[key] = recommend_action(CustomerContext(*key))
        actions.append(action)
    return actions
