"""Retention KPIs: the worked examples of RETENTION_METRICS.md and a hand-computed table."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from churnkit.kpis import (
    average_order_value,
    churn_rate,
    cohort_retention,
    customer_retention_rate,
    customer_value,
    period_kpis,
    purchase_frequency,
    repeat_customer_rate,
    retention_rate,
)


def test_crr_worked_example_500_start_50_new_450_end_is_80_percent():
    assert customer_retention_rate(start=500, new=50, end=450) == 80.0


def test_retention_and_churn_worked_example_100_start_90_retained():
    assert retention_rate(retained_from_start=90, start=100) == 90.0
    assert churn_rate(lost_from_start=10, start=100) == 10.0
    assert retention_rate(90, 100) + churn_rate(10, 100) == 100.0


def test_rates_of_an_empty_start_are_undefined_not_zero():
    assert math.isnan(customer_retention_rate(0, 5, 5))
    assert math.isnan(retention_rate(0, 0))


def test_frequency_aov_and_value_are_the_right_way_up():
    frequency = purchase_frequency(orders=30, customers=10)
    aov = average_order_value(revenue=600.0, orders=30)
    assert (frequency, aov) == (3.0, 20.0)
    assert customer_value(frequency, aov) == 60.0  # revenue per customer
    assert repeat_customer_rate(customers_with_repeat=4, customers=10) == 40.0


@pytest.fixture
def ten_orders() -> pd.DataFrame:
    rows = [
        ("A", "2024-01-05", 10.0, "completed"),
        ("A", "2024-01-20", 20.0, "completed"),
        ("B", "2024-01-25", 30.0, "completed"),
        ("A", "2024-02-10", 40.0, "completed"),
        ("C", "2024-02-15", 50.0, "completed"),
        ("C", "2024-02-16", 10.0, "completed"),
        ("B", "2024-03-05", 60.0, "completed"),
        ("D", "2024-03-10", 20.0, "completed"),
        ("A", "2024-03-28", 40.0, "completed"),
        ("C", "2024-03-30", 15.0, "returned"),  # does not qualify
    ]
    frame = pd.DataFrame(rows, columns=["customer_id", "ordered_at", "amount", "status"])
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"])
    return frame


def test_monthly_kpis_of_ten_orders_match_hand_computation(ten_orders):
    kpis = period_kpis(
        ten_orders, period="month", activity_days=30, data_end=dt.date(2024, 4, 1)
    ).set_index("period_start")
    assert list(kpis.index) == [dt.date(2024, 1, 1), dt.date(2024, 2, 1), dt.date(2024, 3, 1)]
    jan, feb, mar = (kpis.loc[dt.date(2024, m, 1)] for m in (1, 2, 3))

    # January: nobody active at 01-01; A and B are new and active at 02-01
    assert (jan["customers_start"], jan["new_customers"], jan["customers_end"]) == (0, 2, 2)
    assert math.isnan(jan["crr_pct"])
    assert (jan["customers"], jan["orders"], jan["revenue"]) == (2, 3, 60.0)
    assert jan["repeat_customer_rate_pct"] == 50.0  # A ordered twice
    assert (jan["purchase_frequency"], jan["aov"], jan["customer_value"]) == (1.5, 20.0, 30.0)

    # February: S = {A, B}; active at 03-01 (orders since 01-31): {A, C}; C is new
    assert (feb["customers_start"], feb["new_customers"], feb["customers_end"]) == (2, 1, 2)
    assert feb["crr_pct"] == 50.0  # (2 - 1) / 2
    assert (feb["retained"], feb["lost"]) == (1, 1)
    assert (feb["retention_pct"], feb["churn_pct"]) == (50.0, 50.0)
    assert (feb["orders"], feb["revenue"], feb["repeat_customer_rate_pct"]) == (3, 100.0, 50.0)
    assert feb["aov"] == pytest.approx(100 / 3)
    assert feb["customer_value"] == pytest.approx(50.0)
    # CLV: revenue per active customer (100 over the mean of S and E, 2) / 50 % churn
    assert feb["clv_estimate"] == pytest.approx(100.0)
    assert feb["annual_churn_pct"] == pytest.approx(100 * (1 - 0.5**12))

    # March: S = {A, C}; active at 04-01: {A, B, D} (C's return does not count); D is new
    # and B, lapsed in February, is won back: neither was retained, so N = 2 and CRR is
    # (3 - 2) / 2, as the cohort retention; counting B as retained gave 100 %, and more
    # won-back customers than lost ones gave a CRR above 100 %
    assert (mar["customers_start"], mar["new_customers"], mar["customers_end"]) == (2, 1, 3)
    assert mar["won_back"] == 1
    assert mar["crr_pct"] == 50.0
    assert (mar["retention_pct"], mar["churn_pct"]) == (50.0, 50.0)
    assert (mar["customers"], mar["orders"], mar["revenue"]) == (3, 3, 120.0)
    assert (mar["repeat_customer_rate_pct"], mar["aov"]) == (0.0, 40.0)
    assert mar["clv_estimate"] == pytest.approx(120 / 2.5 / 0.5)  # mean of S = 2 and E = 3


def test_quarters_and_years_only_report_fully_observed_periods(ten_orders):
    quarters = period_kpis(
        ten_orders, period="quarter", activity_days=30, data_end=dt.date(2024, 4, 1)
    )
    assert quarters["period_start"].tolist() == [dt.date(2024, 1, 1)]
    assert quarters["orders"].tolist() == [9]
    years = period_kpis(ten_orders, period="year", activity_days=30, data_end=dt.date(2024, 4, 1))
    assert years.empty


def test_cohort_table_of_ten_orders(ten_orders):
    table = cohort_retention(ten_orders, data_end=dt.date(2024, 4, 1))
    expected = pd.DataFrame(
        [[1.0, 0.5, 1.0], [1.0, 0.0, np.nan], [1.0, np.nan, np.nan]],
        index=pd.Index(["2024-01", "2024-02", "2024-03"], name="cohort"),
        columns=pd.Index([0, 1, 2], name="months_since_first_order"),
    )
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)


def test_a_partial_last_month_is_not_observed(ten_orders):
    # data ends mid-March: March cells are unknown
    table = cohort_retention(ten_orders[ten_orders["ordered_at"] < "2024-03-15"])
    assert table.loc["2024-01", 1] == 0.5
    assert np.isnan(table.loc["2024-01", 2])


def test_crr_never_exceeds_100_when_lapsed_customers_come_back():
    # S = {A}; B and C lapsed before the period and come back in it; nobody is new
    rows = [("B", "2024-01-05"), ("C", "2024-01-06"), ("A", "2024-02-20")]
    rows += [("A", "2024-03-10"), ("B", "2024-03-12"), ("C", "2024-03-15")]
    frame = pd.DataFrame(rows, columns=["customer_id", "ordered_at"]).assign(amount=10.0)
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"])
    kpis = period_kpis(frame, period="month", activity_days=30, data_end=dt.date(2024, 4, 1))
    march = kpis.set_index("period_start").loc[dt.date(2024, 3, 1)]
    assert (march["customers_start"], march["customers_end"]) == (1, 3)
    assert (march["new_customers"], march["won_back"]) == (0, 2)
    assert march["crr_pct"] == 100.0  # A kept; (3 - 0) / 1 = 300 % before
    assert (kpis["crr_pct"].dropna() <= 100).all()


def test_the_clv_estimate_hardly_depends_on_the_period_length(generated_dir):
    """Per buying customer, the estimate changed 3x between months and years."""
    orders = pd.read_parquet(generated_dir / "orders.parquet")
    estimates = {
        period: period_kpis(orders, period=period, activity_days=365)["clv_estimate"]
        .dropna()
        .tail(4)
        .median()
        for period in ("month", "quarter", "year")
    }
    low, high = min(estimates.values()), max(estimates.values())
    assert high / low < 1.35, estimates
    monthly = period_kpis(orders, period="month", activity_days=365).dropna(subset=["churn_pct"])
    quarterly = period_kpis(orders, period="quarter", activity_days=365).dropna(
        subset=["churn_pct"]
    )
    # compounded to a year, a month's and a quarter's churn tell the same story
    ratio = (
        monthly["annual_churn_pct"].tail(12).median()
        / quarterly["annual_churn_pct"].tail(4).median()
    )
    assert 0.75 < ratio < 1.33
