"""Synthetic order history whose customers buy, fade and stop like real ones.

Each customer has a signup day, a purchase rate (gamma-distributed across customers),
a lifetime after which they stop buying (exponential, shorter for customers with many
returns, and a share of one-and-done buyers), a typical spend and a return propensity.
Purchases follow a Poisson process thinned by a yearly season and by a fade that starts
before the dropout; engagement events (sessions, e-mail opens, support tickets, NPS)
fade earlier and more sharply, so churn is learnable from behaviour but not trivial.

Real shops differ, so the generator has *scenarios* (:data:`SCENARIOS`):

``default``
    three years of a growing web shop, customers signing up all the time, about 10
    orders each, every customer with events and attributes.
``cohort``
    one acquisition cohort (everyone's first order in the first two months) followed for
    18 months: many one-and-done buyers and short lives, so most customers churn; events
    for a third of the customers, the loyalty tier unknown for two thirds.
``grocery``
    a one-year panel of households that were customers before the data starts: frequent
    baskets, long lives, low churn; sparse events, attributes often missing.

Everything is drawn from one ``numpy.random.Generator`` seeded by the caller, and
sorted before writing, so the same seed gives byte-identical files. The per-customer
truth (rates, dropout day) is written too, for the oracle of the accuracy benchmark.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = [
    "Campaign",
    "demo_config",
    "write_demo",
    "simulate_campaign",
    "CHUNK_CUSTOMERS",
    "order_lines",
    "SCENARIOS",
    "GeneratedData",
    "Scenario",
    "generate_data",
    "generate_files",
    "parquet_rows",
    "write_generated",
]

_DAY_S = 86_400
_CATEGORIES = np.array(["apparel", "beauty", "electronics", "grocery", "home", "sports"])
_CHANNELS = np.array(["web", "app", "store"])
_TIERS = np.array(["bronze", "silver", "gold"])
_COUNTRIES = np.array(["DE", "FR", "GB", "NL", "US"])
CHUNK_CUSTOMERS = 1_000_000  # larger sizes are generated and written in parts of this many
_TABLES = ("orders", "events", "customers", "truth")
_FADE_DAYS = 75.0  # purchases slow down over this many days before dropout
_ENGAGEMENT_FADE_DAYS = 100.0  # engagement fades earlier than purchases


@dataclass(frozen=True)
class Scenario:
    """How one kind of shop's customers arrive, buy and leave.

    Days count from ``start``. A customer's first order is on the signup day, except
    for panel customers signed up before ``start``, whose first order in the data is
    their first purchase after it.
    """

    start: dt.date
    end: dt.date
    signup_from_day: float  # signups are uniform on [signup_from_day, signup_to_day)
    signup_to_day: float | None  # None: up to the last day
    days_per_order: float  # mean over customers of the expected days between orders
    rate_shape: float  # gamma shape of purchase rates across customers
    one_and_done: float  # share of customers who stop within 20 days of signing up
    mean_life_days: float  # scale of the lognormal-exponential lifetime
    with_events: float = 1.0  # share of customers who have engagement events
    tier_known: float = 1.0  # share of customers whose loyalty tier is known


SCENARIOS: dict[str, Scenario] = {
    "default": Scenario(
        start=dt.date(2023, 1, 1),
        end=dt.date(2025, 12, 31),
        signup_from_day=0.0,
        signup_to_day=None,
        days_per_order=21.0,
        rate_shape=2.0,
        one_and_done=0.2,
        mean_life_days=520.0,
    ),
    "cohort": Scenario(
        start=dt.date(2024, 7, 1),
        end=dt.date(2025, 12, 31),
        signup_from_day=0.0,
        signup_to_day=60.0,
        days_per_order=30.0,
        rate_shape=1.5,
        one_and_done=0.35,
        mean_life_days=260.0,
        with_events=0.35,
        tier_known=0.35,
    ),
    "grocery": Scenario(
        start=dt.date(2025, 1, 1),
        end=dt.date(2025, 12, 31),
        signup_from_day=-1000.0,
        signup_to_day=0.0,
        days_per_order=8.0,
        rate_shape=2.5,
        one_and_done=0.0,
        mean_life_days=5000.0,
        with_events=0.3,
        tier_known=0.35,
    ),
}


@dataclass(frozen=True)
class GeneratedData:
    """The four generated tables as Arrow tables."""

    orders: pa.Table
    events: pa.Table
    customers: pa.Table
    truth: pa.Table


def generate_data(
    n_customers: int,
    *,
    seed: int | Sequence[int] = 0,
    scenario: str = "default",
    start: dt.date | None = None,
    end: dt.date | None = None,
    first_customer: int = 0,
    first_order: int = 0,
) -> GeneratedData:
    """Draw orders, events, customers and the hidden truth for ``n_customers``.

    Orders fall on days ``start`` to ``end`` inclusive (default: the scenario's). In the
    default scenario, about 10 orders per customer on average, and about 2 events per
    order. ``seed`` may be an int or a sequence of ints; ids start after
    ``first_customer`` and ``first_order``.

    Raises
    ------
    ValueError
        For an unknown scenario, fewer than one customer, or ``end`` not after ``start``.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {sorted(SCENARIOS)}")
    shop = SCENARIOS[scenario]
    start = start or shop.start
    end = end or shop.end
    if n_customers < 1:
        raise ValueError("n_customers must be at least 1")
    if end <= start:
        raise ValueError("end must be after start")
    rng = np.random.default_rng(seed)
    n_days = (end - start).days + 1
    n = n_customers

    signup_to = n_days - 1 if shop.signup_to_day is None else shop.signup_to_day
    signup = rng.uniform(shop.signup_from_day, signup_to, n)
    # orders per day; the default's mean is one per 21 days
    rate = rng.gamma(shop.rate_shape, 1 / (shop.rate_shape * shop.days_per_order), n)
    spend = rng.gamma(2.5, 24.0, n)  # typical order value
    return_prob = rng.beta(1.0, 12.0, n)
    one_and_done = rng.random(n) < shop.one_and_done
    mean_life = shop.mean_life_days * rng.lognormal(0.0, 0.5, n) * np.exp(-4.0 * return_prob)
    lifetime = np.where(one_and_done, rng.uniform(0, 20, n), rng.exponential(mean_life))
    dropout = signup + lifetime
    favourite = rng.integers(0, len(_CATEGORIES), n)
    channel = rng.integers(0, len(_CHANNELS), n)
    engagement = rng.gamma(2.0, 0.5, n)  # sessions per expected order

    active_from = np.maximum(signup, 0.0)
    cust, day = _thinned_process(
        rng, rate, active_from, np.minimum(dropout, n_days), _season, _FADE_DAYS, dropout, 0.0
    )
    # a customer's first order is on the signup day; a panel customer signed up before
    # the data starts has only the purchases after it
    new = np.flatnonzero(signup >= 0)
    cust = np.concatenate([new, cust])
    day = np.concatenate([signup[new], day])
    n_orders = len(cust)
    amount = np.round(spend[cust] * rng.gamma(4.0, 0.25, n_orders), 2)
    u = rng.random(n_orders)
    status = np.where(u < return_prob[cust], 1, np.where(u > 0.985, 2, 0))
    category = np.where(
        rng.random(n_orders) < 0.6, favourite[cust], rng.integers(0, len(_CATEGORIES), n_orders)
    )
    seconds = (day * _DAY_S).astype(np.int64)
    order = np.lexsort((cust, seconds))
    orders = pa.table(
        {
            "order_id": _ids("O", first_order + np.arange(n_orders), 9),
            "customer_id": _ids("C", first_customer + cust[order], 7),
            "ordered_at": _timestamps(start, seconds[order]),
            "amount": pa.array(amount[order]),
            "status": pa.array(np.array(["completed", "returned", "cancelled"])[status[order]]),
            "category": pa.array(_CATEGORIES[category[order]]),
            "channel": pa.array(_CHANNELS[channel[cust[order]]]),
        }
    )
    events = _events(
        rng, start, n_days, rate, engagement, active_from, dropout, return_prob, first_customer
    )
    signed_up = (np.maximum(signup - rng.uniform(0, 14, n), shop.signup_from_day) * _DAY_S).astype(
        np.int64
    )
    tier = _TIERS[np.digitize(spend, [40.0, 90.0])]
    if shop.with_events < 1.0:
        events = _keep_customers(events, rng.random(n) < shop.with_events, first_customer)
    tier_unknown = rng.random(n) >= shop.tier_known if shop.tier_known < 1.0 else None
    customers = pa.table(
        {
            "customer_id": _ids("C", first_customer + np.arange(n), 7),
            "signed_up_at": _timestamps(start, signed_up),
            "loyalty_tier": pa.array(tier, mask=tier_unknown),
            "acquisition_channel": pa.array(_CHANNELS[channel]),
            "country": pa.array(_COUNTRIES[rng.integers(0, len(_COUNTRIES), n)]),
        }
    )
    truth = pa.table(
        {
            "customer_id": _ids("C", first_customer + np.arange(n), 7),
            "purchase_rate_per_day": pa.array(rate),
            "signup_day": pa.array(signup),
            "dropout_day": pa.array(dropout),
            "return_prob": pa.array(return_prob),
            "start": pa.array([start] * n, pa.date32()),
        }
    )
    return GeneratedData(orders=orders, events=events, customers=customers, truth=truth)


def order_lines(orders: pa.Table, *, seed: int | Sequence[int] = 0) -> pa.Table:
    """``orders`` as a shop's line-level export: one row per product line.

    Each order becomes 1 to 5 lines (``product_id``, ``quantity`` 1-3) whose amounts, in
    whole cents, add up to the order's; the first line has the order's time and
    category, later ones a few seconds on and, half of them, another category. Every
    line keeps the order's id, customer, status and channel.
    """
    rng = np.random.default_rng(seed)
    n = orders.num_rows
    per_order = rng.integers(1, 6, n)
    order = np.repeat(np.arange(n), per_order)
    position = np.arange(len(order)) - np.repeat(np.cumsum(per_order) - per_order, per_order)
    cents = np.round(orders["amount"].to_numpy() * 100).astype(np.int64)
    weights = rng.random(len(order)) + 0.1
    share = weights / np.bincount(order, weights)[order]
    line_cents = np.floor(share * cents[order]).astype(np.int64)
    last = np.cumsum(per_order) - 1  # the last line takes what rounding left over
    line_cents[last] += cents - np.bincount(order, line_cents, minlength=n).astype(np.int64)
    first_category = np.searchsorted(_CATEGORIES, orders["category"].to_numpy(zero_copy_only=False))
    other = rng.integers(0, len(_CATEGORIES), len(order))
    category = np.where(
        (position > 0) & (rng.random(len(order)) < 0.5), other, first_category[order]
    )
    ordered_at = pc.add(
        orders["ordered_at"].take(pa.array(order)),
        pa.array((position * 7).astype("timedelta64[s]").astype("timedelta64[us]")),
    )
    return pa.table(
        {
            "order_id": orders["order_id"].take(pa.array(order)),
            "customer_id": orders["customer_id"].take(pa.array(order)),
            "ordered_at": ordered_at,
            "product_id": _ids("P", rng.integers(0, 5000, len(order)), 5),
            "quantity": pa.array(rng.integers(1, 4, len(order)).astype(np.float64)),
            "amount": pa.array(line_cents / 100.0),
            "status": orders["status"].take(pa.array(order)),
            "category": pa.array(_CATEGORIES[category]),
            "channel": orders["channel"].take(pa.array(order)),
        }
    )


def _keep_customers(table: pa.Table, keep: np.ndarray, first_customer: int) -> pa.Table:
    """Rows of ``table`` whose customer is marked in ``keep`` (indexed from ``first_customer``)."""
    numbers = pc.cast(pc.utf8_slice_codeunits(table["customer_id"], 1), pa.int64())
    index = pc.subtract(numbers, first_customer + 1).to_numpy(zero_copy_only=False)
    return table.filter(pa.array(keep[index]))


def write_generated(data: GeneratedData, out_dir: Path) -> dict[str, Path]:
    """Write the tables as ``orders.parquet`` etc. into ``out_dir``; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in _TABLES:
        path = out_dir / f"{name}.parquet"
        pq.write_table(getattr(data, name), path, compression="zstd", row_group_size=1 << 20)
        paths[name] = path
    return paths


def generate_files(
    n_customers: int,
    out_dir: Path,
    *,
    seed: int = 0,
    scenario: str = "default",
    start: dt.date | None = None,
    end: dt.date | None = None,
    chunk_customers: int = CHUNK_CUSTOMERS,
    lines: bool = False,
) -> dict[str, Path]:
    """Generate and write ``n_customers`` in parts of ``chunk_customers``, bounding memory.

    Up to ``chunk_customers`` this is :func:`generate_data` then :func:`write_generated`
    (``orders.parquet`` ...). Beyond, each table is a folder of parts
    (``orders/part-00000.parquet`` ...), part ``k`` drawn with seed ``[seed, k]``. With
    ``lines``, the orders are written as order lines (:func:`order_lines`).
    """
    if n_customers <= chunk_customers:
        data = generate_data(n_customers, seed=seed, scenario=scenario, start=start, end=end)
        if lines:
            data = dataclasses.replace(data, orders=order_lines(data.orders, seed=seed))
        return write_generated(data, out_dir)
    paths = {name: out_dir / name for name in _TABLES}
    for path in paths.values():
        path.mkdir(parents=True, exist_ok=True)
    first_order = 0
    for part, first in enumerate(range(0, n_customers, chunk_customers)):
        data = generate_data(
            min(chunk_customers, n_customers - first),
            seed=[seed, part],
            scenario=scenario,
            start=start,
            end=end,
            first_customer=first,
            first_order=first_order,
        )
        first_order += data.orders.num_rows
        if lines:
            data = dataclasses.replace(data, orders=order_lines(data.orders, seed=[seed, part]))
        for name in _TABLES:
            pq.write_table(
                getattr(data, name),
                paths[name] / f"part-{part:05d}.parquet",
                compression="zstd",
                row_group_size=1 << 20,
            )
    return paths


def demo_config(data_dir: str) -> dict[str, Any]:
    """The config ``churnkit demo`` writes beside the generated files in ``data_dir``."""
    return {
        "data": {
            "orders": {"path": f"{data_dir}/orders.parquet"},
            "events": {"path": f"{data_dir}/events.parquet"},
            "customers": {
                "path": f"{data_dir}/customers.parquet",
                "attributes": ["loyalty_tier", "acquisition_channel", "country"],
            },
        },
        "snapshots": {"horizon_days": 90, "activity_days": 365, "frequency": "month"},
        "mlflow": {"experiment": "churnkit-demo", "registered_model_name": "churnkit-demo"},
        "scoring": {"output_dir": "scores", "max_staleness_days": 7},
    }


def write_demo(directory: Path, *, customers: int, seed: int) -> tuple[Path, str, dict[str, Path]]:
    """Generate ``customers`` into ``directory/data`` and write ``directory/churnkit.yaml``
    reading them: the config's path, its text, and the data files."""
    import yaml

    files = write_generated(generate_data(customers, seed=seed), directory / "data")
    config_path = directory / "churnkit.yaml"
    config_text = yaml.safe_dump(demo_config("data"), sort_keys=False)
    config_path.write_text(config_text, encoding="utf-8")
    return config_path, config_text, files


@dataclass(frozen=True)
class Campaign:
    """A retention campaign on a scored night with a known effect.

    ``orders``: the orders as they turned out with the campaign; ``contacts``: one row
    per contacted customer (``customer_id``, ``contacted_at``, ``play``, ``cost``);
    ``truth``: per contacted customer, ``kind`` (persuadable, annoyed or unmoved) and
    ``flipped`` (+1 kept by the contact, -1 driven away, 0 no change).
    """

    orders: pd.DataFrame
    contacts: pd.DataFrame
    truth: pd.DataFrame

    def true_uplift(self, customers: pd.Series) -> float:
        """The retention the campaign added among ``customers`` (contacted or not): the
        net share whose outcome it changed."""
        flipped = self.truth.set_index("customer_id")["flipped"]
        return float(flipped.reindex(customers).fillna(0).mean())


def simulate_campaign(
    orders: pd.DataFrame,
    scored: pd.DataFrame,
    *,
    horizon_days: int,
    tiers: tuple[str, ...] = ("high", "medium"),
    persuadable: float | Mapping[str, float] = 0.4,
    annoyed: float | Mapping[str, float] = 0.05,
    seed: int = 0,
) -> Campaign:
    """Contact the listed customers (not held out) of ``tiers`` the day after the night
    and change what they do in the horizon, with a known, heterogeneous effect.

    Each contacted customer is persuadable (share ``persuadable``), annoyed (``annoyed``)
    or unmoved; either share may depend on the customer's ``status`` (a mapping from
    status to share: who a contact moves then depends on the features, as uplift models
    assume). A persuadable customer who would have placed no order in the horizon
    places one (kept by the contact); an annoyed one who would have ordered places none
    (driven away); the others do what they would have done. Held-out customers are left
    alone, so comparing them with the listed ones recovers the effect.
    """
    rng = np.random.default_rng(seed)
    as_of = pd.Timestamp(scored["as_of"].iloc[0])
    end = as_of + pd.Timedelta(days=horizon_days)
    targets = scored[~scored["holdout"] & scored["risk_tier"].isin(tiers)]
    targets = targets.sort_values("customer_id")[["customer_id", "risk_tier", "status"]]

    def share(value: float | Mapping[str, float]) -> np.ndarray:
        if isinstance(value, Mapping):
            return targets["status"].map(value).fillna(0.0).to_numpy(dtype="float64")
        return np.full(len(targets), float(value))

    draw = rng.random(len(targets))
    p_persuadable, p_annoyed = share(persuadable), share(annoyed)
    kind = np.where(
        draw < p_persuadable,
        "persuadable",
        np.where(draw < p_persuadable + p_annoyed, "annoyed", "unmoved"),
    )
    inside = (orders["ordered_at"] >= as_of) & (orders["ordered_at"] < end)
    if "status" in orders:
        inside &= orders["status"] == "completed"
    buyers = set(orders.loc[inside, "customer_id"])
    bought = targets["customer_id"].isin(buyers).to_numpy()
    kept = (kind == "persuadable") & ~bought
    lost = (kind == "annoyed") & bought
    usual = orders.groupby("customer_id")["amount"].median()
    new = targets[kept].assign(
        ordered_at=as_of + pd.to_timedelta(rng.integers(2, horizon_days - 1, kept.sum()), "D"),
        amount=lambda f: usual.reindex(f["customer_id"]).fillna(30.0).round(2).to_numpy(),
    )
    new = new.drop(columns=["risk_tier", "status"]).assign(
        **{c: None for c in orders.columns if c not in ("customer_id", "ordered_at", "amount")}
    )
    if "order_id" in orders:
        new["order_id"] = [f"CAMPAIGN-{as_of:%Y%m%d}-{i:07d}" for i in range(len(new))]
    if "status" in orders:
        new["status"] = "completed"
    gone = set(targets.loc[lost, "customer_id"])
    remaining = orders[~(inside & orders["customer_id"].isin(gone))]
    changed = pd.concat([remaining, new[orders.columns]], ignore_index=True)
    changed = changed.astype(orders.dtypes.to_dict()).sort_values(["ordered_at", "customer_id"])
    contacts = pd.DataFrame(
        {
            "customer_id": targets["customer_id"].to_numpy(),
            "contacted_at": as_of + pd.Timedelta(days=1),
            "play": np.where(targets["risk_tier"] == "high", "personal call", "email offer"),
            "cost": np.where(targets["risk_tier"] == "high", 5.0, 0.5),
        }
    )
    truth = pd.DataFrame(
        {
            "customer_id": targets["customer_id"].to_numpy(),
            "kind": kind,
            "flipped": kept.astype("int64") - lost.astype("int64"),
        }
    )
    return Campaign(changed.reset_index(drop=True), contacts, truth)


def parquet_rows(path: Path) -> int:
    """Rows of a Parquet file or of the parts in a folder, from their metadata."""
    files = [path] if path.is_file() else sorted(path.glob("*.parquet"))
    return sum(pq.read_metadata(f).num_rows for f in files)


def _season(day: np.ndarray) -> np.ndarray:
    # peaks in late November, lowest in late May; at most 1.3
    return 1.0 + 0.3 * np.cos(2 * np.pi * (day - 330.0) / 365.25)


def _thinned_process(
    rng: np.random.Generator,
    rate: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    season,
    fade_days: float,
    dropout: np.ndarray,
    floor: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Event times of an inhomogeneous Poisson process per customer, by thinning.

    The intensity is ``rate * season(t) * fade(t)``, where ``fade`` falls linearly from 1
    to ``floor`` over the ``fade_days`` before ``dropout``; times lie in ``[start, stop)``.
    """
    span = np.maximum(stop - start, 0.0)
    counts = rng.poisson(rate * span * 1.3)
    cust = np.repeat(np.arange(len(rate)), counts)
    day = start[cust] + rng.random(len(cust)) * span[cust]
    fade = np.clip((dropout[cust] - day) / fade_days, floor, 1.0)
    keep = rng.random(len(cust)) * 1.3 < season(day) * fade
    return cust[keep], day[keep]


def _events(
    rng: np.random.Generator,
    start: dt.date,
    n_days: int,
    rate: np.ndarray,
    engagement: np.ndarray,
    signup: np.ndarray,
    dropout: np.ndarray,
    return_prob: np.ndarray,
    first_customer: int,
) -> pa.Table:
    after_dropout = np.minimum(dropout + 120.0, n_days)  # a few visits after they stop
    kinds, custs, days, values = [], [], [], []

    def add(kind: int, cust: np.ndarray, day: np.ndarray, value: np.ndarray | None = None) -> None:
        kinds.append(np.full(len(cust), kind))
        custs.append(cust)
        days.append(day)
        values.append(np.full(len(cust), np.nan) if value is None else value)

    flat = lambda d: np.ones_like(d)  # noqa: E731
    c, d = _thinned_process(
        rng,
        rate * engagement * 1.5,
        signup,
        after_dropout,
        flat,
        _ENGAGEMENT_FADE_DAYS,
        dropout,
        0.03,
    )
    add(0, c, d)
    c, d = _thinned_process(
        rng,
        np.full(len(rate), 1 / 30.0),
        signup,
        after_dropout,
        flat,
        _ENGAGEMENT_FADE_DAYS,
        dropout,
        0.1,
    )
    add(1, c, d)
    c, d = _thinned_process(
        rng,
        return_prob * 0.03 + 0.0005,
        signup,
        np.minimum(dropout, n_days),
        flat,
        1.0,
        dropout,
        1.0,
    )
    add(2, c, d)
    c, d = _thinned_process(
        rng,
        np.full(len(rate), 1 / 180.0),
        signup,
        np.minimum(dropout, n_days),
        flat,
        1.0,
        dropout,
        1.0,
    )
    closeness = np.clip((dropout[c] - d) / 120.0, 0.0, 1.0)
    nps = np.clip(np.round(rng.normal(5.0 + 4.0 * closeness - 20.0 * return_prob[c], 1.5)), 0, 10)
    add(3, c, d, nps)

    kind = np.concatenate(kinds)
    cust = np.concatenate(custs)
    seconds = (np.concatenate(days) * _DAY_S).astype(np.int64)
    value = np.concatenate(values)
    order = np.lexsort((kind, cust, seconds))
    names = np.array(["session", "email_open", "support_ticket", "nps"])
    return pa.table(
        {
            "customer_id": _ids("C", first_customer + cust[order], 7),
            "occurred_at": _timestamps(start, seconds[order]),
            "event_type": pa.array(names[kind[order]]),
            "value": pa.array(value[order], mask=np.isnan(value[order])),
        }
    )


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    text = pc.utf8_lpad(pc.cast(pa.array(numbers + 1, pa.int64()), pa.string()), width, "0")
    return pc.binary_join_element_wise(pa.scalar(prefix), text, "")


def _timestamps(start: dt.date, seconds: np.ndarray) -> pa.Array:
    base = np.datetime64(start, "s")
    return pa.array((base + seconds.astype("timedelta64[s]")).astype("datetime64[us]"))
