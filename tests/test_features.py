"""Features, population and labels on ten hand-written orders, computed by hand."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from tests.conftest import HAND_AS_OF

from churnkit.engines.duckdb import build_features
from churnkit.features import FeatureSpec, feature_names

SPEC = FeatureSpec(windows_days=(30, 90), activity_days=365)


def _row(frame: pd.DataFrame, customer: str) -> pd.Series:
    return frame.set_index("customer_id").loc[customer]


def test_population_is_customers_with_a_qualifying_order_in_the_activity_window(hand_orders):
    features = build_features(hand_orders, [HAND_AS_OF], SPEC, horizon_days=90)
    # C's only order is 442 days old; D's only order was cancelled
    assert features["customer_id"].tolist() == ["A", "B", "E"]
    assert (features["as_of"] == HAND_AS_OF).all()


def test_features_of_a_regular_customer_match_hand_computation(hand_orders):
    a = _row(build_features(hand_orders, [HAND_AS_OF], SPEC, horizon_days=90), "A")
    # qualifying orders before 2024-04-01: 01-01 (10), 02-15 (20), 03-20 (30);
    # the 03-25 return and the order exactly at as_of do not count
    assert a["recency_days"] == 12  # 03-20 -> 04-01
    assert a["tenure_days"] == 91  # 01-01 -> 04-01 in a leap year
    assert (a["orders_30d"], a["revenue_30d"]) == (1, 30.0)  # [03-02, 04-01)
    assert (a["orders_90d"], a["revenue_90d"]) == (2, 50.0)  # [01-02, 04-01)
    assert (a["orders_lifetime"], a["revenue_lifetime"]) == (3, 60.0)
    assert a["mean_order_value"] == 20.0
    assert a["max_order_value"] == 30.0
    assert a["mean_days_between_orders"] == 39.5  # gaps of 45 and 34 days
    assert a["customer_value_365d"] == 60.0
    assert a["segment"] == "1-30d"


def test_features_of_a_customer_with_an_old_first_order(hand_orders):
    b = _row(build_features(hand_orders, [HAND_AS_OF], SPEC, horizon_days=90), "B")
    assert b["recency_days"] == 1  # 03-31 23:59 is the day before as_of
    assert b["tenure_days"] == 397
    assert (b["orders_30d"], b["revenue_30d"]) == (1, 5.0)
    assert (b["orders_lifetime"], b["revenue_lifetime"]) == (2, 105.0)
    assert b["mean_days_between_orders"] == 396.0
    assert b["customer_value_365d"] == 5.0  # the 100 order is older than 365 days


def test_single_order_customer_exactly_at_the_activity_boundary(hand_orders):
    e = _row(build_features(hand_orders, [HAND_AS_OF], SPEC, horizon_days=90), "E")
    # 2023-04-02 00:00 == as_of - 365 days: inside [as_of - 365 d, as_of)
    assert e["recency_days"] == 365
    assert (e["orders_30d"], e["orders_90d"], e["orders_lifetime"]) == (0, 0, 1)
    assert e["revenue_30d"] == 0.0
    assert np.isnan(e["mean_days_between_orders"])  # one order: no gap
    assert e["customer_value_365d"] == 70.0
    assert e["segment"] == "181-365d"


def test_labels_use_the_half_open_window_from_as_of(hand_orders):
    labels = build_features(hand_orders, [HAND_AS_OF], SPEC, horizon_days=90).set_index(
        "customer_id"
    )["churned"]
    # A: order exactly at as_of 00:00 is in the label window -> retained
    # B: order on 06-29 is inside [04-01, 06-30) -> retained
    # E: order exactly at 06-30 00:00 is the window's exclusive end -> churned
    assert labels.to_dict() == {"A": 0, "B": 0, "E": 1}


def test_an_order_exactly_at_as_of_counts_for_the_label_and_not_the_features():
    orders = pd.DataFrame(
        {
            "customer_id": ["X", "X"],
            "ordered_at": pd.to_datetime(["2024-03-10 12:00", "2024-04-01 00:00"]),
            "amount": [10.0, 99.0],
            "status": ["completed", "completed"],
        }
    )
    row = build_features(orders, [HAND_AS_OF], SPEC, horizon_days=30).iloc[0]
    assert row["orders_lifetime"] == 1
    assert row["revenue_lifetime"] == 10.0
    assert row["recency_days"] == 22
    assert row["churned"] == 0
    # one microsecond earlier and it is a feature, and the label window is empty
    orders.loc[1, "ordered_at"] = pd.Timestamp("2024-03-31 23:59:59.999999")
    row = build_features(orders, [HAND_AS_OF], SPEC, horizon_days=30).iloc[0]
    assert row["orders_lifetime"] == 2
    assert row["churned"] == 1


def test_many_snapshots_in_one_call_equal_one_call_per_snapshot(hand_orders):
    dates = [dt.date(2024, 2, 1), HAND_AS_OF, dt.date(2024, 5, 1)]
    together = build_features(hand_orders, dates, SPEC, horizon_days=60)
    one_by_one = pd.concat(
        [build_features(hand_orders, [d], SPEC, horizon_days=60) for d in dates],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(together, one_by_one)


def test_min_order_amount_excludes_small_orders_from_features_and_labels(hand_orders):
    spec = FeatureSpec(windows_days=(30,), activity_days=365, min_order_amount=6.0)
    features = build_features(hand_orders, [HAND_AS_OF], spec, horizon_days=90)
    # the 5.0 order no longer qualifies; B's last qualifying order is 2023-03-01,
    # outside the activity window, so B leaves the population
    assert features["customer_id"].tolist() == ["A", "E"]


def test_feature_names_carry_units_and_follow_the_windows():
    names = feature_names(FeatureSpec(windows_days=(7, 28), activity_days=90))
    assert names[:2] == ["recency_days", "tenure_days"]
    assert {"orders_7d", "revenue_7d", "orders_28d", "revenue_28d"} <= set(names)
    assert "orders_30d" not in names


@pytest.mark.parametrize("as_of", [dt.date(2022, 1, 1)])
def test_no_history_before_as_of_gives_an_empty_population(hand_orders, as_of):
    assert build_features(hand_orders, [as_of], SPEC, horizon_days=90).empty


def test_with_one_date_every_window_starts_at_a_constant():
    # DuckDB folds `<literal> - INTERVAL` into a constant and compares each row with it;
    # `as_of_ts - INTERVAL` over a column it would compute on every order and event
    import ibis

    from churnkit.features import feature_table
    from churnkit.features.spec import FAMILIES

    orders = ibis.table(
        {"customer_id": "string", "ordered_at": "timestamp", "amount": "float64"}, name="o"
    )
    events = ibis.table(
        {"customer_id": "string", "occurred_at": "timestamp", "event_type": "string"}, name="e"
    )
    spec = FeatureSpec(
        windows_days=(30, 90),
        activity_days=365,
        families=tuple(f for f in FAMILIES if f not in ("returns", "breadth", "attributes")),
        event_types=("session",),
    )
    sql = ibis.to_sql(
        feature_table(
            orders, HAND_AS_OF, spec, events=events, event_types=["session"], split_history=False
        ),
        dialect="duckdb",
    )
    assert sql.count("- INTERVAL") >= 6  # the order windows, trend, engagement, population
    assert '"as_of_ts" - INTERVAL' not in sql
