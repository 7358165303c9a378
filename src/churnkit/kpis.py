"""Deterministic retention KPIs and cohort tables, as retention practitioners define them.

The formulas are those of ``docs/retention.md``:

* customer retention rate  CRR = (E - N) / S * 100
* retention (cohort form)  = retained_from_start / S * 100
* churn rate               = lost_from_start / S * 100 = 100 - retention
* repeat customer rate     = customers with more than one order / customers (in the period)
* purchase frequency       = orders / customers (in the period)
* average order value      = revenue / orders
* customer value           = purchase frequency * AOV (revenue per customer)
* CLV estimate             = revenue / mean(S, E) / (churn rate / 100): revenue per active
  customer per period times the expected lifetime in periods when a constant share
  churns each period (per active customer, so it hardly depends on the period length)
* annual churn             = 1 - (1 - churn rate) ** periods per year

"Customer at date t" needs an activity definition in a business without subscriptions:
a customer is *active at t* when they placed a qualifying order in
``[t - activity_days, t)``. S is the customers active at the period start, E those active
at the period end, N those active at the end but not at the start (new or won back);
retained = active at both, lost = active at the start and not at the end. Every rate
depends on ``activity_days``, so reports print it next to them.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = [
    "RetentionTables",
    "annual_churn",
    "clv_estimate",
    "trailing_year_kpis",
    "retention_tables",
    "observed_periods",
    "PERIODS",
    "average_order_value",
    "churn_rate",
    "cohort_retention",
    "customer_retention_rate",
    "customer_value",
    "period_kpis",
    "purchase_frequency",
    "repeat_customer_rate",
    "retention_rate",
]

PERIODS = {"month": "MS", "quarter": "QS", "year": "YS"}


def customer_retention_rate(start: int, new: int, end: int) -> float:
    """CRR in percent: ``(E - N) / S * 100``; NaN when S is 0.

    >>> customer_retention_rate(start=500, new=50, end=450)
    80.0
    """
    return (end - new) / start * 100 if start else math.nan


def retention_rate(retained_from_start: int, start: int) -> float:
    """Cohort-form retention in percent: ``retained / S * 100``.

    >>> retention_rate(retained_from_start=90, start=100)
    90.0
    """
    return retained_from_start / start * 100 if start else math.nan


def churn_rate(lost_from_start: int, start: int) -> float:
    """Churn rate in percent: ``lost / S * 100``.

    >>> churn_rate(lost_from_start=10, start=100)
    10.0
    """
    return lost_from_start / start * 100 if start else math.nan


def repeat_customer_rate(customers_with_repeat: int, customers: int) -> float:
    """Share (percent) of the period's customers with more than one order."""
    return customers_with_repeat / customers * 100 if customers else math.nan


def purchase_frequency(orders: int, customers: int) -> float:
    """Orders per customer in the period."""
    return orders / customers if customers else math.nan


def average_order_value(revenue: float, orders: int) -> float:
    """Revenue per order."""
    return revenue / orders if orders else math.nan


def customer_value(frequency: float, aov: float) -> float:
    """Purchase frequency times AOV: revenue per customer in the period."""
    return frequency * aov


@dataclass(frozen=True)
class RetentionTables:
    """The KPIs per period, the cohort table and the trailing year of one order history."""

    periods: pd.DataFrame
    cohorts: pd.DataFrame
    trailing_year: dict[str, Any] | None


def retention_tables(
    orders: pd.DataFrame, *, period: str, activity_days: int, min_order_amount: float = 0.0
) -> RetentionTables:
    """:func:`period_kpis`, :func:`cohort_retention` and :func:`trailing_year_kpis`."""
    return RetentionTables(
        period_kpis(
            orders, period=period, activity_days=activity_days, min_order_amount=min_order_amount
        ),
        cohort_retention(orders, min_order_amount=min_order_amount),
        trailing_year_kpis(orders, activity_days=activity_days, min_order_amount=min_order_amount),
    )


def observed_periods(table: pd.DataFrame, first_order: dt.date, activity_days: int) -> pd.DataFrame:
    """The periods of :func:`period_kpis` that start once a whole activity window of
    data lies behind them: before that nobody can be lost yet, and CRR would read 100 %."""
    observed = first_order + dt.timedelta(days=activity_days)
    keep = pd.to_datetime(table["period_start"]).dt.date >= observed
    return table[keep].reset_index(drop=True)


def _qualifying(orders: pd.DataFrame, min_order_amount: float) -> pd.DataFrame:
    keep = orders["amount"] >= min_order_amount
    if "status" in orders:
        keep &= orders["status"].astype(str) == "completed"
    return orders.loc[keep, ["customer_id", "ordered_at", "amount"]]


def _period_bounds(first: pd.Timestamp, end: pd.Timestamp, period: str) -> list[tuple]:
    """(start, end) of each calendar period from the one holding ``first``, ending by ``end``."""
    step = pd.tseries.frequencies.to_offset(PERIODS[period])
    start = first.to_period(_PERIOD_CODES[period]).start_time
    return [(s, s + step) for s in pd.date_range(start, end, freq=step) if s + step <= end]


_PERIOD_CODES = {"month": "M", "quarter": "Q", "year": "Y"}


def period_kpis(
    orders: pd.DataFrame,
    *,
    period: str,
    activity_days: int,
    min_order_amount: float = 0.0,
    data_end: dt.date | None = None,
) -> pd.DataFrame:
    """KPIs per calendar period of fully observed data.

    Parameters
    ----------
    orders
        Validated orders (``customer_id``, ``ordered_at``, ``amount``, optional ``status``).
    period
        ``month``, ``quarter`` or ``year``.
    activity_days
        A customer is active at ``t`` with a qualifying order in ``[t - activity_days, t)``.
    min_order_amount
        Smaller orders do not qualify.
    data_end
        Exclusive end of the observed data; default: the day after the latest order.
        Only periods that end on or before it are reported.

    Returns
    -------
    pandas.DataFrame
        One row per period: ``period_start``, ``period_end``, ``customers_start`` (S),
        ``new_customers`` and ``won_back`` (customers active at the end who were not at
        the start nor new: lapsed ones who came back; N for the CRR is their sum, since
        neither was retained), ``customers_end`` (E), ``retained``, ``lost``, ``crr_pct``,
        ``retention_pct``, ``churn_pct``, ``customers``, ``orders``, ``revenue``,
        ``repeat_customer_rate_pct``, ``purchase_frequency``, ``aov``, ``customer_value``,
        ``clv_estimate`` (:func:`clv_estimate`) and ``annual_churn_pct`` (the period's
        churn compounded over a year, to compare periods of any length).
    """
    if period not in PERIODS:
        raise ValueError(f"period must be one of {sorted(PERIODS)}, got {period!r}")
    q = _qualifying(orders, min_order_amount)
    if q.empty:
        return pd.DataFrame()
    end = _data_end(q, data_end)
    first_order = q.groupby("customer_id")["ordered_at"].min()
    activity = pd.Timedelta(days=activity_days)
    rows = [
        _window_row(q, first_order, p_start, p_end, activity, PERIODS_PER_YEAR[period])
        for p_start, p_end in _period_bounds(q["ordered_at"].min(), end, period)
    ]
    return pd.DataFrame(rows)


PERIODS_PER_YEAR = {"month": 12, "quarter": 4, "year": 1}


def trailing_year_kpis(
    orders: pd.DataFrame,
    *,
    activity_days: int,
    min_order_amount: float = 0.0,
    data_end: dt.date | None = None,
) -> dict[str, Any] | None:
    """The KPIs of the 365 days up to the data's end, to compare with annual reference
    figures (the e-commerce CRR of about 38 % is a yearly one); None with less data."""
    q = _qualifying(orders, min_order_amount)
    if q.empty:
        return None
    end = _data_end(q, data_end)
    start = end - pd.Timedelta(days=365)
    if start < q["ordered_at"].min().normalize() + pd.Timedelta(days=activity_days):
        return None  # nobody could be lost yet at the start: CRR would read 100 %
    first_order = q.groupby("customer_id")["ordered_at"].min()
    return _window_row(q, first_order, start, end, pd.Timedelta(days=activity_days), 1)


def _window_row(
    q: pd.DataFrame,
    first_order: pd.Series,
    p_start: pd.Timestamp,
    p_end: pd.Timestamp,
    activity: pd.Timedelta,
    per_year: float,
) -> dict[str, Any]:
    """Every KPI of one window ``[p_start, p_end)`` of the qualifying orders ``q``."""
    times = q["ordered_at"].to_numpy()
    customers = q["customer_id"].to_numpy()

    def active_at(t: pd.Timestamp) -> set:
        inside = (times >= (t - activity).to_datetime64()) & (times < t.to_datetime64())
        return set(customers[inside])

    s, e = active_at(p_start), active_at(p_end)
    new = int(((first_order >= p_start) & (first_order < p_end)).sum())
    # customers at the end who were not at the start are new or won back: neither was
    # retained, so both count in N and CRR never exceeds 100 %
    won_back = max(0, len(e - s) - new)
    in_period = q[(q["ordered_at"] >= p_start) & (q["ordered_at"] < p_end)]
    per_customer = in_period.groupby("customer_id").size()
    n_orders, revenue = len(in_period), float(in_period["amount"].sum())
    frequency = purchase_frequency(n_orders, len(per_customer))
    aov = average_order_value(revenue, n_orders)
    churn = churn_rate(len(s - e), len(s))
    return {
        "period_start": p_start.date(),
        "period_end": p_end.date(),
        "customers_start": len(s),
        "new_customers": new,
        "won_back": won_back,
        "customers_end": len(e),
        "retained": len(s & e),
        "lost": len(s - e),
        "crr_pct": customer_retention_rate(len(s), new + won_back, len(e)),
        "retention_pct": retention_rate(len(s & e), len(s)),
        "churn_pct": churn,
        "customers": len(per_customer),
        "orders": n_orders,
        "revenue": round(revenue, 2),
        "repeat_customer_rate_pct": repeat_customer_rate(
            int((per_customer > 1).sum()), len(per_customer)
        ),
        "purchase_frequency": frequency,
        "aov": aov,
        "customer_value": customer_value(frequency, aov),
        "clv_estimate": clv_estimate(revenue, len(s), len(e), churn),
        "annual_churn_pct": annual_churn(churn, per_year),
    }


def clv_estimate(revenue: float, start: int, end: int, churn_pct: float) -> float:
    """Revenue per active customer of a period (over the mean of S and E) times the
    expected number of periods a customer stays (1 / churn rate).

    Per *active* customer, not per buying customer: a quarter's revenue over the active
    base is about three months' worth, and a quarter's churn about three months' too, so
    the estimate hardly depends on the period length (per buying customer it changed 3x
    between ``--period month`` and ``year``). NaN without customers or without churn.
    """
    base = (start + end) / 2
    if not base or not churn_pct or churn_pct != churn_pct:
        return math.nan
    return revenue / base / (churn_pct / 100)


def annual_churn(churn_pct: float, periods_per_year: float) -> float:
    """A period's churn rate as a yearly one, compounding: ``1 - (1 - c) ** k`` (in %)."""
    if churn_pct != churn_pct:
        return math.nan
    return 100 * (1 - (1 - churn_pct / 100) ** periods_per_year)


def cohort_retention(
    orders: pd.DataFrame,
    *,
    min_order_amount: float = 0.0,
    data_end: dt.date | None = None,
) -> pd.DataFrame:
    """Share of each first-order-month cohort that buys in each later month.

    Rows are cohorts (first qualifying order's month), columns the months since
    (0, 1, 2, ...); a cell is the fraction of the cohort with a qualifying order in that
    month. Month 0 is 1.0 by definition. Cells whose month is not fully observed
    (it ends after ``data_end``) are NaN.
    """
    q = _qualifying(orders, min_order_amount)
    if q.empty:
        return pd.DataFrame()
    end = _data_end(q, data_end)
    stamp = q["ordered_at"]
    month = (stamp.dt.year * 12 + stamp.dt.month - 1).to_numpy("int64")  # months since year 0
    frame = pd.DataFrame({"customer_id": q["customer_id"].to_numpy(), "month": month})
    frame["cohort"] = frame.groupby("customer_id")["month"].transform("min")
    frame["offset"] = frame["month"] - frame["cohort"]
    buyers = frame.drop_duplicates(["customer_id", "offset"])
    counts = buyers.groupby(["cohort", "offset"]).size().unstack(fill_value=0).sort_index()
    sizes = buyers[buyers["offset"] == 0].groupby("cohort").size()
    table = counts.div(sizes, axis=0).astype(float)
    # a month is observed when the next one starts by data_end
    last = end - pd.Timedelta(days=1)
    last_full = last.year * 12 + last.month - 1 - (0 if end.day == 1 else 1)
    unobserved = table.index.to_numpy()[:, None] + table.columns.to_numpy()[None, :] > last_full
    table = table.mask(unobserved)
    table.index = [f"{c // 12:04d}-{c % 12 + 1:02d}" for c in table.index]
    table.index.name = "cohort"
    table.columns.name = "months_since_first_order"
    return table


def _data_end(q: pd.DataFrame, data_end: dt.date | None) -> pd.Timestamp:
    """Exclusive end of the observed data: given, or the day after the latest order."""
    if data_end is not None:
        return pd.Timestamp(data_end)
    return q["ordered_at"].max().normalize() + pd.Timedelta(days=1)
