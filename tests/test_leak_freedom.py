"""Property tests: nothing at or after as_of reaches the features, for every family.

Each example draws a small world of orders, events and customers around
as_of = 2024-04-01, then removes, adds or changes records dated at or after as_of. The
features at as_of must not change. Labels may change only through records inside the
label window [as_of, as_of + horizon).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnkit.engines.duckdb import build_features
from churnkit.features import FAMILIES, FeatureSpec, feature_names

AS_OF = dt.date(2024, 4, 1)
AS_OF_TS = pd.Timestamp(AS_OF)
HORIZON_DAYS = 60
CUSTOMERS = ["c1", "c2", "c3", "c4"]
SPEC = FeatureSpec(
    windows_days=(30, 90),
    activity_days=180,
    families=FAMILIES,
    trend_days=60,
    engagement_windows_days=(30,),
    event_types=("nps", "session"),
    attributes=("tier",),
    breadth_columns=("category", "channel"),
    signup=True,
)
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# offsets in hours from as_of: before it, exactly on it, in the window, after it
offsets = st.one_of(
    st.integers(-24 * 300, -1), st.just(0), st.integers(1, 24 * 120), st.just(24 * HORIZON_DAYS)
)


@st.composite
def orders_st(draw, min_size=1, offsets=offsets):
    rows = draw(
        st.lists(
            st.tuples(
                st.sampled_from(CUSTOMERS),
                offsets,
                st.floats(1, 200, allow_nan=False).map(lambda x: round(x, 2)),
                st.sampled_from(["completed", "completed", "returned", "cancelled"]),
                st.sampled_from(["x", "y", None]),
                st.sampled_from(["web", "app"]),
            ),
            min_size=min_size,
            max_size=14,
        )
    )
    frame = pd.DataFrame(
        rows, columns=["customer_id", "hours", "amount", "status", "category", "channel"]
    )
    frame["ordered_at"] = AS_OF_TS + pd.to_timedelta(frame.pop("hours"), unit="h")
    return frame


@st.composite
def events_st(draw, offsets=offsets):
    rows = draw(
        st.lists(
            st.tuples(
                st.sampled_from(CUSTOMERS),
                offsets,
                st.sampled_from(["nps", "session"]),
                st.integers(0, 10).map(float),
            ),
            min_size=1,
            max_size=10,
        )
    )
    frame = pd.DataFrame(rows, columns=["customer_id", "hours", "event_type", "value"])
    frame["occurred_at"] = AS_OF_TS + pd.to_timedelta(frame.pop("hours"), unit="h")
    return frame


def customers_table(signup_days: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": CUSTOMERS,
            "signed_up_at": [AS_OF_TS + pd.Timedelta(days=d) for d in signup_days],
            "tier": ["gold", "silver", "gold", "bronze"],
        }
    )


def features(orders, events, customers, horizon_days=None) -> pd.DataFrame:
    return build_features(
        orders, [AS_OF], SPEC, events=events, customers=customers, horizon_days=horizon_days
    )


def assert_same_features(before: pd.DataFrame, after: pd.DataFrame) -> None:
    columns = ["customer_id", *feature_names(SPEC), "customer_value_365d", "rfm_segment"]
    pd.testing.assert_frame_equal(before[columns], after[columns], check_exact=True)


def _later(frame: pd.DataFrame, column: str) -> pd.Series:
    return frame[column] >= AS_OF_TS


@SETTINGS
@given(
    orders=orders_st(),
    events=events_st(),
    signup=st.lists(st.integers(-400, -1), min_size=4, max_size=4),
    extra_orders=orders_st(min_size=0),
    extra_events=events_st(),
    action=st.sampled_from(["remove", "add", "change"]),
)
def test_records_at_or_after_as_of_never_change_the_features(
    orders, events, signup, extra_orders, extra_events, action
):
    customers = customers_table(signup)
    before = features(orders, events, customers)
    later_orders, later_events = _later(orders, "ordered_at"), _later(events, "occurred_at")
    if action == "remove":
        orders, events = orders[~later_orders], events[~later_events]
    elif action == "add":
        # the extra records, moved to as_of or later
        extra_orders = extra_orders.assign(
            ordered_at=AS_OF_TS + (extra_orders["ordered_at"] - AS_OF_TS).abs()
        )
        extra_events = extra_events.assign(
            occurred_at=AS_OF_TS + (extra_events["occurred_at"] - AS_OF_TS).abs()
        )
        orders = pd.concat([orders, extra_orders], ignore_index=True)
        events = pd.concat([events, extra_events], ignore_index=True)
    else:
        orders = orders.copy()
        events = events.copy()
        orders.loc[later_orders, "amount"] = orders.loc[later_orders, "amount"] * 3 + 1
        orders.loc[later_orders, "status"] = "completed"
        orders.loc[later_orders, "category"] = "z"
        events.loc[later_events, "value"] = 10 - events.loc[later_events, "value"]
        events.loc[later_events, "event_type"] = "nps"
    assert_same_features(before, features(orders, events, customers))


@SETTINGS
@given(
    orders=orders_st(),
    extra=orders_st(min_size=1),
    where=st.sampled_from(["before", "after_window"]),
)
def test_labels_change_only_through_orders_inside_the_label_window(orders, extra, where):
    events = pd.DataFrame(
        {
            "customer_id": ["c1"],
            "occurred_at": [AS_OF_TS - pd.Timedelta(days=1)],
            "event_type": ["session"],
            "value": [None],
        }
    )
    customers = customers_table([-10, -10, -10, -10])
    before = features(orders, events, customers, HORIZON_DAYS).set_index("customer_id")
    end = AS_OF_TS + pd.Timedelta(days=HORIZON_DAYS)
    if where == "before":
        moved = extra.assign(
            ordered_at=AS_OF_TS - (extra["ordered_at"] - AS_OF_TS).abs() - pd.Timedelta(hours=1)
        )
    else:
        moved = extra.assign(ordered_at=end + (extra["ordered_at"] - AS_OF_TS).abs())
    after = features(
        pd.concat([orders, moved], ignore_index=True), events, customers, HORIZON_DAYS
    ).set_index("customer_id")
    common = before.index.intersection(after.index)
    assert before.loc[common, "churned"].to_dict() == after.loc[common, "churned"].to_dict()
    # and the label itself is what the window says
    inside = orders[(orders["ordered_at"] >= AS_OF_TS) & (orders["ordered_at"] < end)]
    qualifying = inside[inside["status"] == "completed"]
    for customer, churned in before["churned"].items():
        assert churned == int(customer not in set(qualifying["customer_id"]))


# Snapshots spaced unevenly, with records far before them: orders older than a
# snapshot's longest window (365 days here) reach it only through the lifetime parts.
GRID = [
    AS_OF - dt.timedelta(days=400),
    AS_OF - dt.timedelta(days=31),
    AS_OF,
    AS_OF + dt.timedelta(days=45),
]
_BOUNDARIES = [
    int((pd.Timestamp(g) - AS_OF_TS) / pd.Timedelta(hours=1)) - 24 * days
    for g in GRID
    for days in (365, 120, 30, 0)
]
wide_offsets = st.one_of(st.integers(-24 * 900, 24 * 60), st.sampled_from(_BOUNDARIES))


@SETTINGS
@given(
    orders=orders_st(offsets=wide_offsets),
    events=events_st(offsets=wide_offsets),
    signup=st.lists(st.integers(-900, -1), min_size=4, max_size=4),
)
def test_a_grid_of_snapshots_gives_what_each_snapshot_gives_alone(orders, events, signup):
    customers = customers_table(signup)
    together = build_features(
        orders, GRID, SPEC, events=events, customers=customers, horizon_days=HORIZON_DAYS
    )
    alone = [
        build_features(
            orders, [d], SPEC, events=events, customers=customers, horizon_days=HORIZON_DAYS
        )
        for d in GRID
    ]
    alone = [frame for frame in alone if not frame.empty]  # concat would retype columns
    if not alone:
        assert together.empty
        return
    one_by_one = pd.concat(alone, ignore_index=True)
    # categories differ between snapshots, and concat turns such columns into strings
    together["tier"] = together["tier"].astype(one_by_one["tier"].dtype)
    pd.testing.assert_frame_equal(together, one_by_one, check_exact=True)
