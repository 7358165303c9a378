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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churnkit.errors import DataError
from churnkit.features import FeatureSpec

if TYPE_CHECKING:  # pragma: no cover
    from churnkit.data import CheckedData

__all__ = [
    "READOUT_COLUMNS",
    "Readout",
    "night_readout",
    "read_out",
    "readout_of_night",
    "uplift_nights",
]

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
    rng = np.random.default_rng(seed)
    # bootstrap draws of each side's means, made once per tier and reused by every row
    control = {
        tier: _Side(part, rng, samples)
        for tier, part in frame[frame["holdout"]].groupby("risk_tier")
    }
    listed = frame[~frame["holdout"]]
    tiers = {t: _Side(listed[listed["risk_tier"] == t], rng, samples) for t in RISK_TIERS}
    rows = [
        _compare(f"listed: {t}", [side], control, None, confidence) for t, side in tiers.items()
    ]
    rows.append(_compare("listed: all tiers", list(tiers.values()), control, None, confidence))
    if contacts is not None and len(contacts):
        reached = listed.merge(contacts, on="customer_id")
        for play, part in reached.groupby("play", sort=True):
            side = _Side(part, rng, samples)
            rows.append(_compare(f"play: {play}", [side], control, part["cost"], confidence))
    kept = [row for row in rows if row["customers"]]
    return Readout(pd.DataFrame(kept, columns=READOUT_COLUMNS), confidence, samples)


RISK_TIERS = ("high", "medium", "low")


class _Side:
    """One side of a comparison (customers with ``risk_tier``, ``retained``, ``revenue``):
    its means and ``samples`` bootstrap draws of them. Retention is a 0/1 mean, whose
    bootstrap distribution is exactly binomial; revenue is resampled."""

    def __init__(self, part: pd.DataFrame, rng: np.random.Generator, samples: int) -> None:
        self.n = len(part)
        self.tiers = part["risk_tier"].value_counts()
        values = part[["retained", "revenue"]].to_numpy()
        self.mean = values.mean(axis=0) if self.n else np.zeros(2)
        self.draws = np.zeros((samples, 2))
        if self.n:
            self.draws[:, 0] = rng.binomial(self.n, self.mean[0], samples) / self.n
            revenue = np.ascontiguousarray(values[:, 1])
            for i in range(samples):
                self.draws[i, 1] = revenue[rng.integers(0, self.n, self.n)].mean()


def _compare(
    name: str,
    sides: list[_Side],
    control: dict[str, _Side],
    cost: pd.Series | None,
    confidence: float,
) -> dict[str, object]:
    """One row: the customers of ``sides`` (tier strata of one group, or one play)
    against the held-out customers of their tiers, weighted to their tier mix."""
    n = sum(side.n for side in sides)
    row: dict[str, object] = dict.fromkeys(READOUT_COLUMNS)
    row.update(group=name, customers=n, held_out=0)
    if not n:
        return row
    mean = sum(side.n * side.mean for side in sides) / n
    draws = sum(side.n * side.draws for side in sides) / n
    weights = pd.concat([side.tiers for side in sides]).groupby(level=0).sum() / n
    tiers = [t for t in weights.index if weights[t] > 0]
    row.update(
        held_out=sum(control[t].n for t in tiers if t in control),
        retention=mean[0],
        revenue_per_customer=mean[1],
    )
    if any(t not in control or not control[t].n for t in tiers):
        return row  # a tier with no held-out customers: nothing to compare with
    base = sum(weights[t] * control[t].mean for t in tiers)
    uplift = mean - base
    differences = draws - sum(weights[t] * control[t].draws for t in tiers)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(differences, [tail, 100 - tail], axis=0)
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


def uplift_nights(
    data: CheckedData, output_dir: Path, horizon_days: int
) -> tuple[pd.DataFrame, FeatureSpec]:
    """What the uplift model learns from: every scored night with a holdout group whose
    horizon the data has passed, one row per customer of the tiers contacted that
    night: the night's features, ``treated`` (contacted in the horizon, per the contacts
    table) or held out, ``retained`` (ordered again in the horizon), the night's
    ``churn_probability`` and ``as_of``; and the feature spec of the latest night.

    Raises
    ------
    DataError
        Without a contacts table, or when no such night exists.
    """
    from churnkit.scoring.backtest import night_labels
    from churnkit.scoring.output import list_partitions, read_partition

    if not data.has("contacts"):
        raise DataError(
            "an uplift model learns from who was contacted: add the `data.contacts` table "
            "(customer_id, contacted_at, play) to the config"
        )
    end = data.summary().data_end
    nights = []
    for as_of in list_partitions(output_dir):
        if as_of + dt.timedelta(days=horizon_days) > end:
            continue  # the horizon has not passed: outcomes unknown
        scored, manifest = read_partition(output_dir, as_of)
        contacts = data.contacts_in(as_of, horizon_days)
        if not scored["holdout"].any() or contacts is None or contacts.empty:
            continue
        contacted = scored["customer_id"].isin(contacts["customer_id"]) & ~scored["holdout"]
        tiers = set(scored.loc[contacted, "risk_tier"])
        compared = scored[contacted | (scored["holdout"] & scored["risk_tier"].isin(tiers))]
        spec = FeatureSpec.model_validate(manifest["feature_spec"])
        labels = night_labels(data, manifest, as_of, horizon_days)
        features = data.features([as_of], spec)
        night = compared[["customer_id", "churn_probability", "holdout"]].merge(
            features.drop(columns=["as_of"], errors="ignore"), on="customer_id"
        )
        night = night.merge(labels[["customer_id", "churned"]], on="customer_id")
        nights.append(
            night.assign(
                as_of=as_of, treated=~night["holdout"], retained=1 - night["churned"]
            ).drop(columns=["holdout", "churned"])
        )
    if not nights:
        raise DataError(
            f"no scored night in {output_dir} has a holdout group, contacts and a horizon "
            f"that has passed (the data ends {end}); score nights with "
            "`scoring.holdout.share`, log the contacts, and come back after the horizon"
        )
    return pd.concat(nights, ignore_index=True), spec
