"""Holdout groups: the customers of a night that the retention team does not contact.

Comparing them with the contacted customers of the same night is the only way to learn
whether a play saves anyone (the customers most likely to leave are not necessarily the
ones a campaign saves). The group is random, but reproducible: each customer's key is
the SHA-256 of ``salt``, the night and the customer id, so a rerun, another engine or
another machine draws the same group, and a new salt draws another one.

Stratified by risk tier: in each tier the customers with the smallest keys are held out,
``floor(share * n + 0.5)`` of the tier's ``n``, so every tier has its exact share of
controls (a coin per customer would leave a 25-customer high tier with 0 or 6).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from churnkit.config import HoldoutConfig

__all__ = ["KEY_HEX_DIGITS", "assign_holdout", "holdout_design", "holdout_keys"]

KEY_HEX_DIGITS = 15  # the key: the first 60 bits of the SHA-256, a non-negative int64
SEPARATOR = "\x1f"  # between salt, night and id (a unit separator: in none of them)


def holdout_keys(salt: str, as_of: dt.date, customer_ids: pd.Series) -> np.ndarray:
    """Each customer's key for the night: the first 60 bits of
    ``sha256(salt + SEP + as_of + SEP + customer_id)`` as int64."""
    prefix = f"{salt}{SEPARATOR}{as_of.isoformat()}{SEPARATOR}"
    return np.fromiter(
        (
            int(hashlib.sha256(f"{prefix}{cid}".encode()).hexdigest()[:KEY_HEX_DIGITS], 16)
            for cid in customer_ids.astype(str)
        ),
        dtype="int64",
        count=len(customer_ids),
    )


def assign_holdout(scored: pd.DataFrame, as_of: dt.date, cfg: HoldoutConfig) -> np.ndarray:
    """Whether each row of ``scored`` (``customer_id`` and ``risk_tier``) is held out."""
    held = np.zeros(len(scored), dtype=bool)
    if cfg.share == 0 or scored.empty:
        return held
    frame = pd.DataFrame(
        {
            "tier": scored["risk_tier"].to_numpy(),
            "key": holdout_keys(cfg.salt, as_of, scored["customer_id"]),
            "customer_id": scored["customer_id"].astype(str).to_numpy(),
            "row": np.arange(len(scored)),
        }
    ).sort_values(["tier", "key", "customer_id"], kind="stable")
    position = frame.groupby("tier").cumcount().to_numpy()
    size = frame.groupby("tier")["row"].transform("size").to_numpy()
    held[frame["row"].to_numpy()] = position < np.floor(cfg.share * size + 0.5)
    return held


def holdout_design(cfg: HoldoutConfig, held_out: Mapping[str, int]) -> dict[str, Any] | None:
    """What the manifest records of the night's holdout (None when there is none)."""
    if cfg.share == 0:
        return None
    return {
        "share": cfg.share,
        "salt": cfg.salt,
        "stratified_by": "risk_tier",
        "key": f"first {KEY_HEX_DIGITS} hex digits of sha256(salt, as_of, customer_id)",
        "held_out": int(sum(held_out.values())),
        "held_out_by_tier": {t: int(held_out.get(t, 0)) for t in ("high", "medium", "low")},
    }
