"""Every feature family on hand-written orders, events and customers, computed by hand.

as_of = 2024-04-01; windows 30/90 days; trend 90 days: last = [2024-01-02, 04-01),
previous = [2023-10-04, 2024-01-02). Population: A, B, E (see conftest.hand_orders).
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
from tests.conftest import HAND_AS_OF

from churnkit.engines.duckdb import build_features
from churnkit.features import FAMILIES, FeatureSpec, feature_names
from churnkit.features.segments import RFM_SEGMENTS, rfm_segment_name

SPEC = FeatureSpec(
    windows_days=(30, 90),
    activity_days=365,
    families=FAMILIES,
    trend_days=90,
    engagement_windows_days=(30, 90),
    event_types=("email_open", "nps", "session"),
    attributes=("loyalty_tier",),
    breadth_columns=("category", "channel"),
    signup=True,
)


@pytest.fixture
def orders(hand_orders) -> pd.DataFrame:
    # rows in conftest order: A x5, B x3, C, D, E x2
    return hand_orders.assign(
        category=["x", "y", "x", "z", "x", "x", None, "x", "x", "x", "y", "y"],
        channel=[
            "web",
            "web",
            "app",
            "web",
            "web",
            "store",
            "store",
            "store",
            "web",
            "web",
            "app",
            "app",
        ],
    )


@pytest.fixture
def events() -> pd.DataFrame:
    rows = [
        ("A", "2024-03-30 10:00", "session", None),
        ("A", "2024-02-10 08:00", "session", None),
        ("A", "2024-04-05 08:00", "session", None),  # after as_of: invisible
        ("A", "2023-12-01 09:00", "Email Open", None),  # normalised to email_open
        ("A", "2024-01-15 12:00", "nps", 4.0),
        ("A", "2024-03-01 12:00", "nps", 9.0),
        ("A", "2024-04-01 00:00", "nps", 1.0),  # exactly at as_of: invisible
        ("B", "2024-03-15 18:00", "email_open", None),
    ]
    frame = pd.DataFrame(rows, columns=["customer_id", "occurred_at", "event_type", "value"])
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"])
    return frame


@pytest.fixture
def customers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["A", "B"],  # E is unknown
            "signed_up_at": pd.to_datetime(["2023-12-20", "2024-05-01"]),
            "loyalty_tier": ["gold", "silver"],
        }
    )


@pytest.fixture
def table(orders, events, customers) -> pd.DataFrame:
    frame = build_features(
        orders, [HAND_AS_OF], SPEC, events=events, customers=customers, horizon_days=90
    )
    assert frame["customer_id"].tolist() == ["A", "B", "E"]
    return frame.set_index("customer_id")


def test_columns_are_the_spec_names_then_info_then_label(table):
    names = feature_names(SPEC)
    assert list(table.columns) == [
        "as_of",
        *names,
        "customer_value_365d",
        "segment",
        "rfm_segment",
        "churned",
    ]
    assert len(names) == len(set(names))


def test_cadence_by_hand(table):
    a, b, e = table.loc["A"], table.loc["B"], table.loc["E"]
    # A: gaps 45 and 34 days
    assert a["mean_days_between_orders"] == 39.5
    assert a["std_days_between_orders"] == 5.5
    assert a["overdue_ratio"] == pytest.approx(12 / 39.5)
    assert a["expected_next_order_in_days"] == 27.5
    # B: one gap of 396 days
    assert (b["mean_days_between_orders"], b["std_days_between_orders"]) == (396.0, 0.0)
    assert b["overdue_ratio"] == pytest.approx(1 / 396)
    assert b["expected_next_order_in_days"] == 395.0
    # E: a single order, no gap
    for name in ("mean_days_between_orders", "std_days_between_orders", "overdue_ratio"):
        assert math.isnan(e[name]), name


def test_trend_by_hand(table):
    a, b, e = table.loc["A"], table.loc["B"], table.loc["E"]
    # A: last 90 days 02-15 (20) and 03-20 (30); previous 90 days 01-01 10:00 (10)
    assert (a["orders_prev_90d"], a["revenue_prev_90d"]) == (1, 10.0)
    assert (a["orders_trend_90d"], a["revenue_trend_90d"]) == (1, 40.0)
    assert (b["orders_prev_90d"], b["orders_trend_90d"], b["revenue_trend_90d"]) == (0, 1, 5.0)
    assert (e["orders_prev_90d"], e["orders_trend_90d"], e["revenue_trend_90d"]) == (0, 0, 0.0)


def test_returns_by_hand(table):
    a, b = table.loc["A"], table.loc["B"]
    # A: 3 completed orders (60) and 1 return (40) before as_of
    assert (a["returns_lifetime"], a["cancellations_lifetime"]) == (1, 0)
    assert a["return_rate"] == 0.25
    assert a["refunded_revenue_share"] == 0.4
    assert (b["returns_lifetime"], b["return_rate"], b["refunded_revenue_share"]) == (0, 0.0, 0.0)


def test_breadth_by_hand(table):
    # A: qualifying orders in x, y, x via web, web, app (the returned z does not count)
    assert (table.loc["A", "distinct_categories"], table.loc["A", "distinct_channels"]) == (2, 2)
    # B: x and a null category; store twice
    assert (table.loc["B", "distinct_categories"], table.loc["B", "distinct_channels"]) == (1, 1)
    assert (table.loc["E", "distinct_categories"], table.loc["E", "distinct_channels"]) == (1, 1)


def test_engagement_by_hand(table):
    a, b, e = table.loc["A"], table.loc["B"], table.loc["E"]
    assert (a["session_events_30d"], a["session_events_90d"], a["days_since_last_session"]) == (
        1,
        2,
        2,
    )
    assert (a["email_open_events_90d"], a["days_since_last_email_open"]) == (0, 122)
    # nps on 01-15 and 03-01; the one at as_of is not seen
    assert (a["nps_events_30d"], a["nps_events_90d"], a["days_since_last_nps"]) == (0, 2, 31)
    assert a["last_nps"] == 9.0
    assert (b["email_open_events_30d"], b["days_since_last_email_open"]) == (1, 17)
    assert b["session_events_90d"] == 0 and math.isnan(b["days_since_last_session"])
    assert math.isnan(b["last_nps"])
    assert e["session_events_30d"] == 0 and math.isnan(e["days_since_last_email_open"])


def test_spellings_of_one_event_type_count_together(orders, events, customers):
    # B's email opens written three ways: 10, 20 and 40 days before as_of
    more = pd.DataFrame(
        {
            "customer_id": ["B", "B"],
            "occurred_at": pd.to_datetime(["2024-03-22 09:00", "2024-02-21 09:00"]),
            "event_type": [" Email-Open", "EMAIL OPEN"],
            "value": [None, None],
        }
    )
    frame = build_features(
        orders, [HAND_AS_OF], SPEC, events=pd.concat([events, more]), customers=customers
    ).set_index("customer_id")
    b = frame.loc["B"]
    assert (b["email_open_events_30d"], b["email_open_events_90d"]) == (2, 3)
    assert b["days_since_last_email_open"] == 10
    # every night the same dtype, whether or not a value is missing (the model's signature)
    assert str(frame["email_open_events_90d"].dtype) == "float64"


@pytest.mark.parametrize("dates", [[HAND_AS_OF], ["2024-03-01", HAND_AS_OF]])
def test_the_last_nps_is_the_highest_answer_at_the_latest_moment(orders, events, dates):
    # B answers 4 and 8 at one moment (spelled two ways), after a 10 a month earlier; with
    # two snapshots, the answers before the first reach the second as one interval's latest
    answers = pd.DataFrame(
        {
            "customer_id": ["B", "B", "B"],
            "occurred_at": pd.to_datetime(["2024-01-20 09:00", *["2024-02-20 09:00"] * 2]),
            "event_type": ["nps", "NPS", "nps"],
            "value": [10.0, 4.0, 8.0],
        }
    )
    spec = SPEC.model_copy(update={"families": ("rfm", "engagement")})
    dates = [pd.Timestamp(d).date() for d in dates]
    frame = build_features(orders, dates, spec, events=pd.concat([events, answers]))
    b = frame.set_index(["customer_id", "as_of"]).loc[("B", dates[-1])]
    assert b["last_nps"] == 8.0 and b["nps_events_90d"] == 3


def test_attributes_by_hand(table):
    assert table["loyalty_tier"].dtype == object  # text; the model makes it categorical
    assert table.loc["A", "loyalty_tier"] == "gold"
    assert table.loc["A", "days_since_signup"] == 103  # 2023-12-20 -> 2024-04-01
    assert table.loc["B", "loyalty_tier"] == "silver"
    assert math.isnan(table.loc["B", "days_since_signup"])  # signup after as_of: unknown
    assert pd.isna(table.loc["E", "loyalty_tier"]) and math.isnan(
        table.loc["E", "days_since_signup"]
    )


def test_rfm_scores_and_segments_by_hand(table):
    # recency A 12, B 1, E 365 -> R: E 1, A 3, B 5; orders A 3, B 2, E 1 -> F: E 1, B 3, A 5;
    # revenue A 60, B 105, E 70 -> M: A 1, E 3, B 5
    scores = table[["r_score", "f_score", "m_score", "rfm_segment"]].T.to_dict()
    assert scores == {
        "A": {"r_score": 3, "f_score": 5, "m_score": 1, "rfm_segment": "Loyal"},
        "B": {"r_score": 5, "f_score": 3, "m_score": 5, "rfm_segment": "Potential Loyalist"},
        "E": {"r_score": 1, "f_score": 1, "m_score": 3, "rfm_segment": "Lost"},
    }


def test_equal_values_share_a_score():
    orders = pd.DataFrame(
        {
            "customer_id": ["P", "Q", "R", "S"],
            "ordered_at": pd.to_datetime(["2024-03-01"] * 3 + ["2024-03-20"]),
            "amount": [5.0, 5.0, 5.0, 9.0],
            "status": ["completed"] * 4,
        }
    )
    spec = FeatureSpec(windows_days=(30,), activity_days=365)
    frame = build_features(orders, [HAND_AS_OF], spec).set_index("customer_id")
    assert frame["r_score"].to_dict() == {"P": 1, "Q": 1, "R": 1, "S": 5}
    assert frame["f_score"].tolist() == [1, 1, 1, 1]
    assert frame["m_score"].to_dict() == {"P": 1, "Q": 1, "R": 1, "S": 5}


def test_the_segment_map_covers_every_score_pair_once():
    names = {rfm_segment_name(r, f) for r in range(1, 6) for f in range(1, 6)}
    assert names == {name for name, _, _ in RFM_SEGMENTS}
    assert len(RFM_SEGMENTS) == 11
    for r in range(1, 6):
        for f in range(1, 6):
            matches = [n for n, rs, fs in RFM_SEGMENTS if r in rs and f in fs]
            assert len(matches) == 1 or (r, f) == (1, 1), (r, f, matches)


def test_families_can_be_switched_off(orders):
    spec = FeatureSpec(windows_days=(30,), activity_days=365, families=("rfm",))
    frame = build_features(orders, [HAND_AS_OF], spec)
    assert "mean_days_between_orders" not in frame and "r_score" not in frame
    assert "rfm_segment" not in frame
    assert feature_names(spec)[0] == "recency_days"


def test_views_over_parquet_files_give_the_same_features_as_pandas_frames(
    orders, events, customers, tmp_path
):
    import duckdb

    from churnkit.engines.duckdb import copy_features, run_feature_query

    expected = build_features(orders, [HAND_AS_OF], SPEC, events=events, customers=customers)
    con = duckdb.connect()
    # the query turns off one join optimizer for itself; the user's choices stay
    con.execute("SET disabled_optimizers = 'compressed_materialization'")
    for name, frame in (("orders", orders), ("events", events), ("customers", customers)):
        path = tmp_path / f"{name}.parquet"
        frame.to_parquet(path)
        con.execute(f"CREATE VIEW churnkit_{name} AS SELECT * FROM read_parquet('{path}')")
    from_files = run_feature_query(con, [HAND_AS_OF], SPEC)
    pd.testing.assert_frame_equal(from_files, expected)

    rows = copy_features(con, [HAND_AS_OF], SPEC, tmp_path / "features.parquet")
    copied = pd.read_parquet(tmp_path / "features.parquet")
    assert rows == 3
    assert copied["customer_id"].tolist() == ["A", "B", "E"]
    assert copied["r_score"].tolist() == expected["r_score"].tolist()
    setting = "SELECT current_setting('disabled_optimizers')"
    assert con.execute(setting).fetchall()[0][0] == "compressed_materialization"


def test_the_plain_ibis_expression_gives_the_same_features_as_the_compiled_sql(
    orders, events, customers
):
    # the engine-agnostic path, as another Ibis backend (Spark) would run it
    import ibis

    from churnkit.features import feature_table, finish_frame
    from churnkit.features.snapshots import as_of_table

    expr = feature_table(
        ibis.memtable(orders),
        as_of_table([HAND_AS_OF]),
        SPEC,
        events=ibis.memtable(events),
        customers=ibis.memtable(customers),
        event_types=sorted(events["event_type"].unique()),
        horizon_days=90,
    ).order_by(["as_of", "customer_id"])
    via_ibis = finish_frame(ibis.duckdb.connect().execute(expr), SPEC)
    expected = build_features(
        orders, [HAND_AS_OF], SPEC, events=events, customers=customers, horizon_days=90
    )
    pd.testing.assert_frame_equal(via_ibis, expected, check_dtype=False)
