"""The readout of a night with a holdout group: did the retention plays keep customers?

Once the horizon of a scored night has passed, the customers who were listed (could be
contacted) are compared with the night's holdout group (who were not), tier by tier:
the share who ordered again in the horizon (retention) and the revenue per customer in
the horizon. The holdout is a random share of each risk tier, so within a tier the
difference estimates what being listed did; across tiers, the held-out customers are
weighted to the compared group's tier mix. With a contacts table, each play is compared
the same way: the customers contacted with it against the held-out customers of their
tiers (contacts are chosen by the team, not at random, so read these rows with care).

Intervals are percentile bootstraps: the compared customers and each tier's held-out
customers are resampled apart. ``contact_to_save`` is the number of customers to
contact to keep one more (1 / the retention uplift), given when the uplift's interval
is above zero.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from churnkit.data import CheckedData

__all__ = ["READOUT_COLUMNS", "Readout", "night_readout", "read_out", "readout_of_night"]

READOUT_COLUMNS = [
    "group",
    "customers",
    "held_out",
    "retention",
    "retention_held_out",
    "retention_uplift",
    "retention_uplift_low",
    "retention_uplift_high",
    "revenue_per_customer",
    "revenue_per_customer_held_out",
    "revenue_uplift",
    "revenue_uplift_low",
    "revenue_uplift_high",
    "contact_to_save",
    "cost_per_customer_saved",
]


@dataclass(frozen=True)
class Readout:
    """One row per compared group (:data:`READOUT_COLUMNS`): ``listed`` customers of each
    tier and of all tiers, and ``play: NAME`` for each play of the contacts table."""

    table: pd.DataFrame
    confidence: float
    samples: int

    def to_metrics(self) -> dict[str, float]:
        """The readout as MLflow metrics: ``readout_<group>_<column>``."""
        metrics = {}
        for row in self.table.to_dict("records"):
            name = "".join(c if c.isalnum() else "_" for c in str(row["group"]))
            for column in READOUT_COLUMNS[1:]:
                value = row[column]
                if value is not None and np.isfinite(value):
                    metrics[f"readout_{name}_{column}"] = float(value)
        return metrics


def read_out(
    scored: pd.DataFrame,
    outcomes: pd.DataFrame,
    contacts: pd.DataFrame | None = None,
    *,
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Readout:
    """Compare the listed and the held-out customers of a night.

    ``scored``: the night's list (``customer_id``, ``risk_tier``, ``holdout``);
    ``outcomes``: ``customer_id``, ``retained`` (ordered in the horizon) and ``revenue``
    (in the horizon), for every scored customer; ``contacts``: ``customer_id``, ``play``
    and ``cost`` of the contacts made in the horizon (one row per customer), or None.
    """
    frame = scored[["customer_id", "risk_tier", "holdout"]].merge(
        outcomes[["customer_id", "retained", "revenue"]], on="customer_id", how="left"
    )
    frame["retained"] = frame["retained"].fillna(0).astype("float64")
    frame["revenue"] = frame["revenue"].fillna(0.0).astype("float64")
    control = {
        tier: part[["retained", "revenue"]].to_numpy()
        for tier, part in frame[frame["holdout"]].groupby("risk_tier")
    }
    listed = frame[~frame["holdout"]]
    groups: list[tuple[str, pd.DataFrame, pd.Series | None]] = [
        (f"listed: {tier}", listed[listed["risk_tier"] == tier], None)
        for tier in ("high", "medium", "low")
    ]
    groups.append(("listed: all tiers", listed, None))
    if contacts is not None and len(contacts):
        reached = listed.merge(contacts, on="customer_id")
        for play, part in reached.groupby("play", sort=True):
            groups.append((f"play: {play}", part, part["cost"]))
    rng = np.random.default_rng(seed)
    rows = [
        _compare(name, part, control, cost, rng, samples, confidence)
        for name, part, cost in groups
        if len(part)
    ]
    return Readout(pd.DataFrame(rows, columns=READOUT_COLUMNS), confidence, samples)


def _compare(
    name: str,
    treated: pd.DataFrame,
    control: dict[str, np.ndarray],
    cost: pd.Series | None,
    rng: np.random.Generator,
    samples: int,
    confidence: float,
) -> dict[str, object]:
    """One row: ``treated`` against the held-out customers of its tiers, weighted to its
    tier mix, with bootstrap intervals."""
    weights = treated["risk_tier"].value_counts(normalize=True)
    tiers = [t for t in weights.index if t in control and len(control[t])]
    held = sum(len(control[t]) for t in tiers)
    values = treated[["retained", "revenue"]].to_numpy()
    mean = values.mean(axis=0)
    row: dict[str, object] = dict.fromkeys(READOUT_COLUMNS)
    row.update(
        group=name,
        customers=len(treated),
        held_out=held,
        retention=mean[0],
        revenue_per_customer=mean[1],
    )
    if not tiers or weights[tiers].sum() < 0.999:  # a tier with no held-out customers
        return row
    base = sum(weights[t] * control[t].mean(axis=0) for t in tiers)
    uplift = mean - base
    draws = np.empty((samples, 2))
    for i in range(samples):
        again = values[rng.integers(0, len(values), len(values))].mean(axis=0)
        draws[i] = again - sum(
            weights[t] * control[t][rng.integers(0, len(control[t]), len(control[t]))].mean(axis=0)
            for t in tiers
        )
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail], axis=0)
    row.update(
        retention_held_out=base[0],
        retention_uplift=uplift[0],
        retention_uplift_low=low[0],
        retention_uplift_high=high[0],
        revenue_per_customer_held_out=base[1],
        revenue_uplift=uplift[1],
        revenue_uplift_low=low[1],
        revenue_uplift_high=high[1],
    )
    if low[0] > 0:
        row["contact_to_save"] = 1 / uplift[0]
        if cost is not None and cost.notna().any():
            row["cost_per_customer_saved"] = float(cost.fillna(0).mean()) / uplift[0]
    return row


def night_readout(
    scored: pd.DataFrame,
    manifest: dict,
    labels: pd.DataFrame,
    revenue: pd.DataFrame,
    contacts: pd.DataFrame | None,
    *,
    samples: int,
) -> Readout | None:
    """The readout of a scored night whose horizon has passed, or None when the night
    held nobody out. ``labels``: ``customer_id`` and ``churned`` at the night;
    ``revenue``: each customer's revenue in the horizon (customers with none left out)."""
    if not (manifest.get("holdout") or {}).get("held_out"):
        return None
    outcomes = (
        labels[["customer_id"]]
        .assign(retained=1 - labels["churned"].astype("int64"))
        .merge(revenue, on="customer_id", how="left")
    )
    return read_out(scored, outcomes, contacts, samples=samples)


def readout_of_night(
    data: CheckedData,
    scored: pd.DataFrame,
    manifest: Mapping[str, Any],
    horizon_days: int,
    samples: int,
    labels: pd.DataFrame | None = None,
) -> Readout | None:
    """:func:`night_readout` of a scored night from the checked ``data`` (its labels,
    revenue and contacts in the horizon); ``labels`` when already computed.

    Raises
    ------
    DataError
        When the data has not reached the end of the night's horizon yet.
    """
    from churnkit.scoring.backtest import night_labels

    as_of = dt.date.fromisoformat(str(manifest["as_of"]))
    if labels is None:
        labels = night_labels(data, manifest, as_of, horizon_days)
    return night_readout(
        scored,
        dict(manifest),
        labels,
        data.horizon_revenue(as_of, horizon_days),
        data.contacts_in(as_of, horizon_days),
        samples=samples,
    )
