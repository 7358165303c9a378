"""The feature spec: everything needed to rebuild a model's features, stored with it.

:func:`resolve_feature_spec` turns the config and the columns the data actually has
into a :class:`FeatureSpec`: which families run, which event types and customer
attributes they use. Training stores the spec with the model; scoring rebuilds the
features from it, so both sides compute the same columns.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd
from pydantic import BaseModel, ConfigDict

from churnkit.config import Config
from churnkit.errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    from churnkit.data import CheckedData

__all__ = [
    "FAMILIES",
    "FeatureSpec",
    "identifier",
    "resolve_feature_spec",
    "resolve_feature_spec_from",
    "spec_for_data",
]

# in computation order; rfm is always on (the population is defined by it)
FAMILIES = ("rfm", "cadence", "trend", "returns", "breadth", "engagement", "attributes", "segments")
_BREADTH_COLUMNS = ("category", "channel", "product_id")


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
    quantity: bool = False  # the orders have a quantity: rfm adds units per order

    def has(self, family: str) -> bool:
        return family in self.families


OTHER_TYPES = "other_types"  # the event types beyond `features.max_event_types`, together


def identifier(text: str) -> str:
    """The column-name form of an event type: lower case, anything but letters, digits
    and ``_`` as ``_``, and ``type_`` before a name that does not start with a letter.

    ``Email Open`` -> ``email_open``; ``42`` -> ``type_42``. The feature query matches
    each spelling of the data to its type with this rule (``engagement._spellings``).
    """
    name = re.sub(r"[^a-z0-9_]", "_", str(text).strip().lower())
    return name if re.match(r"[a-z]", name) else f"type_{name}"


def event_type_features(event_types: Sequence[str], cfg: Config) -> tuple[str, ...]:
    """The event types that get features: ``features.event_types`` when set, else the
    types seen (most frequent first), the ``features.max_event_types`` most frequent
    of them and :data:`OTHER_TYPES` for the rest together."""
    if cfg.features.event_types:
        return tuple(cfg.features.event_types)
    seen = list(dict.fromkeys(identifier(t) for t in event_types))
    cap = cfg.features.max_event_types
    if len(seen) <= cap:
        return tuple(sorted(seen))
    return (*sorted(seen[:cap]), OTHER_TYPES)


def event_type_notes(seen: Sequence[str], spec: FeatureSpec) -> list[str]:
    """What the spec did with the event types seen that users should hear about, once."""
    notes = []
    if OTHER_TYPES in spec.event_types:
        distinct = len(dict.fromkeys(identifier(t) for t in seen))
        kept = len(spec.event_types) - 1
        notes.append(
            f"events: {distinct:,} event types; the {kept} most frequent get their own "
            f"features and the other {distinct - kept:,} are counted together as "
            f"{OTHER_TYPES} (`features.max_event_types`; is `event_type` mapped to an id?)"
        )
    renamed = {t: identifier(t) for t in seen if identifier(t).startswith("type_")}
    if renamed:
        shown = ", ".join(f"{t!r} -> {n}" for t, n in list(renamed.items())[:3])
        notes.append(
            f"events: {len(renamed):,} event type(s) are not usable as feature names and "
            f"were renamed ({shown})"
        )
    return notes


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
    seen = None if events is None else list(events["event_type"].value_counts().index)
    return resolve_feature_spec_from(
        cfg,
        order_columns=list(orders.columns),
        event_types=seen,
        customer_columns=None if customers is None else list(customers.columns),
    )


def resolve_feature_spec_from(
    cfg: Config,
    *,
    order_columns: Sequence[str],
    event_types: Sequence[str] | None,
    customer_columns: Sequence[str] | None,
) -> FeatureSpec:
    """:func:`resolve_feature_spec` from what it needs to know of the data, for engines
    whose tables are not pandas frames: the orders' columns, the event types seen
    (None without an events table) and the customers' columns (None without one)."""
    available = {"rfm", "cadence", "trend", "segments"}
    if "status" in order_columns:
        available.add("returns")
    breadth = tuple(c for c in _BREADTH_COLUMNS if c in order_columns)
    if breadth:
        available.add("breadth")
    if event_types:
        available.add("engagement")
    attributes = tuple(cfg.data.customers.attributes) if cfg.data.customers else ()
    signup = customer_columns is not None and "signed_up_at" in customer_columns
    if customer_columns is not None and (attributes or signup):
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

    types: tuple[str, ...] = ()
    if "engagement" in families and event_types:
        types = event_type_features(event_types, cfg)
    return FeatureSpec(
        windows_days=cfg.features.windows_days,
        activity_days=cfg.snapshots.activity_days,
        min_order_amount=cfg.data.min_order_amount,
        families=families,
        trend_days=cfg.features.trend_days,
        engagement_windows_days=cfg.features.engagement_windows_days,
        event_types=types,
        attributes=attributes if "attributes" in families else (),
        breadth_columns=breadth if "breadth" in families else (),
        signup=signup and "attributes" in families,
        quantity="quantity" in order_columns,
    )


def spec_for_data(cfg: Config, data: CheckedData) -> tuple[FeatureSpec, list[str]]:
    """The spec a config's checked tables support, and the notes for the user: the
    data check's and what was done with the event types."""
    seen = data.event_types() if data.has("events") else None
    spec = resolve_feature_spec_from(
        cfg,
        order_columns=data.columns("orders"),
        event_types=seen,
        customer_columns=data.columns("customers") if data.has("customers") else None,
    )
    _check_attribute_names(spec)
    return spec, [*data.notes, *event_type_notes(seen or [], spec)]


def _check_attribute_names(spec: FeatureSpec) -> None:
    """Refuse customer attributes named like a column churnkit makes (before any run)."""
    from churnkit.features import ID_COLUMNS, INFO_COLUMNS, LABEL_COLUMN, feature_names

    own = spec.model_copy(update={"attributes": ()})
    taken = {*feature_names(own), *ID_COLUMNS, *INFO_COLUMNS, LABEL_COLUMN, "days_since_signup"}
    clashes = sorted(set(spec.attributes) & taken)
    if clashes:
        raise ConfigError(
            f"customer attribute(s) {clashes} have the name of a column churnkit computes; "
            "rename them in the customers table or leave them out of "
            "`data.customers.attributes`"
        )
