"""The feature spec: everything needed to rebuild a model's features, stored with it.

:func:`resolve_feature_spec` turns the config and the columns the data actually has
into a :class:`FeatureSpec`: which families run, which event types and customer
attributes they use. Training stores the spec with the model; scoring rebuilds the
features from it, so both sides compute the same columns.
"""

from __future__ import annotations

import re

import pandas as pd
from pydantic import BaseModel, ConfigDict

from churnkit.config import Config
from churnkit.errors import DataError

__all__ = ["FAMILIES", "FeatureSpec", "identifier", "resolve_feature_spec"]

# in computation order; rfm is always on (the population is defined by it)
FAMILIES = ("rfm", "cadence", "trend", "returns", "breadth", "engagement", "attributes", "segments")
_BREADTH_COLUMNS = ("category", "channel")


class FeatureSpec(BaseModel):
    """Which features to build and with which windows."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    windows_days: tuple[int, ...]
    activity_days: int
    min_order_amount: float = 0.0
    families: tuple[str, ...] = ("rfm", "cadence", "trend", "segments")
    trend_days: int = 90
    engagement_windows_days: tuple[int, ...] = (30, 90)
    event_types: tuple[str, ...] = ()
    attributes: tuple[str, ...] = ()
    breadth_columns: tuple[str, ...] = ()
    signup: bool = False

    def has(self, family: str) -> bool:
        return family in self.families


def identifier(text: str) -> str:
    """The column-name form of an event type: lower case, separators as ``_``.

    ``Email Open`` -> ``email_open``. The same rule runs in SQL on every event
    (:func:`churnkit.features.engagement.event_table`).
    """
    return re.sub(r"[ ./-]", "_", str(text).strip().lower())


def resolve_feature_spec(
    cfg: Config,
    orders: pd.DataFrame,
    events: pd.DataFrame | None = None,
    customers: pd.DataFrame | None = None,
) -> FeatureSpec:
    """The spec for this config and data: every family the data supports, or the listed ones.

    Raises
    ------
    DataError
        When ``features.families`` asks for a family whose table or column is missing.
    """
    available = {"rfm", "cadence", "trend", "segments"}
    if "status" in orders:
        available.add("returns")
    breadth = tuple(c for c in _BREADTH_COLUMNS if c in orders)
    if breadth:
        available.add("breadth")
    if events is not None and len(events):
        available.add("engagement")
    attributes = tuple(cfg.data.customers.attributes) if cfg.data.customers else ()
    signup = customers is not None and "signed_up_at" in customers
    if customers is not None and (attributes or signup):
        available.add("attributes")

    requested = cfg.features.families
    if requested is None:
        families = tuple(f for f in FAMILIES if f in available)
    else:
        missing = [f for f in requested if f not in available]
        if missing:
            raise DataError(
                f"`features.families` asks for {missing}, which the data cannot feed: returns "
                "need an orders status column, breadth a category or channel column, "
                "engagement an events table, attributes a customers table with `attributes` "
                "or signed_up_at. Add the data or remove the families."
            )
        families = tuple(f for f in FAMILIES if f in set(requested) | {"rfm"})

    event_types: tuple[str, ...] = ()
    if "engagement" in families and events is not None:
        seen = sorted({identifier(t) for t in events["event_type"].dropna().unique()})
        event_types = tuple(cfg.features.event_types or seen)
    return FeatureSpec(
        windows_days=cfg.features.windows_days,
        activity_days=cfg.snapshots.activity_days,
        min_order_amount=cfg.data.min_order_amount,
        families=families,
        trend_days=cfg.features.trend_days,
        engagement_windows_days=cfg.features.engagement_windows_days,
        event_types=event_types,
        attributes=attributes if "attributes" in families else (),
        breadth_columns=breadth if "breadth" in families else (),
        signup=signup and "attributes" in families,
    )
