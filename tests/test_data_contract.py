"""Reading and checking the data contract on DuckDB: one message with every problem.

(``tests/test_spark.py`` runs the same bad inputs through Spark and gets the same message.)
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from churnkit._duckdb import connect
from churnkit.config import config_from_dict
from churnkit.data import CheckedData, open_data
from churnkit.engines.duckdb import DuckDBEngine
from churnkit.errors import DataError


def load_data(data) -> CheckedData:
    return open_data(DuckDBEngine(connect()), data)


def load_orders(data) -> pd.DataFrame:
    return load_data(data).orders_frame()


def _orders_csv(tmp_path: Path, rows: list[tuple], header: str) -> Path:
    path = tmp_path / "orders.csv"
    lines = [header] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _cfg(tmp_path: Path, **data):
    return config_from_dict({"data": data}, base_dir=tmp_path, config_file="train.yaml").data


GOOD = [
    ("o1", "c1", "2024-01-01 10:00:00", 10.5, "paid"),
    ("o2", "c1", "2024-02-01 10:00:00", -3.0, "refund"),
    ("o3", "c2", "2024-02-03 00:00:00", 7.0, "paid"),
]


def test_user_column_names_are_mapped_to_canonical_ones(tmp_path):
    _orders_csv(tmp_path, GOOD, "id,cust,created,total,state")
    cfg = _cfg(
        tmp_path,
        orders={
            "path": "orders.csv",
            "columns": {
                "order_id": "id",
                "customer_id": "cust",
                "ordered_at": "created",
                "amount": "total",
                "status": "state",
            },
            "status_values": {"paid": "completed", "refund": "returned"},
        },
    )
    orders = load_orders(cfg)
    assert orders["customer_id"].tolist() == ["c1", "c1", "c2"]
    assert orders["status"].astype(str).tolist() == ["completed", "returned", "completed"]
    assert orders["amount"].tolist() == [10.5, -3.0, 7.0]
    assert orders["ordered_at"].iloc[0] == pd.Timestamp("2024-01-01 10:00:00")


def test_a_missing_mapped_column_names_the_column_and_the_config_key(tmp_path):
    _orders_csv(tmp_path, [r[:4] for r in GOOD], "order_id,customer_id,ordered_at,total")
    cfg = _cfg(tmp_path, orders={"path": "orders.csv"})
    with pytest.raises(DataError) as info:
        load_orders(cfg)
    message = str(info.value)
    assert "\n" not in message
    assert "orders is missing column 'amount'" in message
    assert "got ['order_id', 'customer_id', 'ordered_at', 'total']" in message
    assert "`data.orders.columns.amount` of train.yaml" in message


def test_every_contract_violation_is_reported_at_once(tmp_path):
    rows = [
        ("o1", "c1", "2024-01-01", 10.0, "completed"),
        ("o1", "c2", "2024-01-02", 2.0, "completed"),  # one order id, two customers
        ("o3", "", "not a date", "abc", "lost"),  # null id, bad date, bad amount, bad status
        ("o4", "c3", "2024-01-03", -5.0, "completed"),  # negative, not a return
    ]
    _orders_csv(tmp_path, rows, "order_id,customer_id,ordered_at,amount,status")
    cfg = _cfg(tmp_path, orders={"path": "orders.csv"})
    with pytest.raises(DataError) as info:
        load_orders(cfg)
    message = str(info.value)
    assert message.startswith("orders breaks the data contract")
    assert "orders.ordered_at: 1 value(s) do not parse as timestamp, e.g. ['not a date']" in message
    assert "orders.amount: 1 value(s) do not parse as double, e.g. ['abc']" in message
    assert "['lost']" in message and "status_values" in message
    assert "orders.order_id: 1 order id(s) have lines of several customers, e.g. ['o1']" in message
    assert "orders.customer_id" in message and "null" in message
    negative = "1 order(s) whose lines add up to a negative amount are not marked as returns"
    assert negative in message
    assert "[-5.0]" in message


def test_amounts_that_are_not_finite_or_absurd_are_refused_together(tmp_path):
    rows = [
        ("o1", "c1", "2024-01-01", 10.0),
        ("o2", "c1", "2024-01-05", "inf"),
        ("o3", "c2", "2024-01-06", "nan"),
        ("o4", "c2", "2024-01-07", 1e13),
        ("o5", "c3", "2024-01-08", 999999999.0),
    ]
    _orders_csv(tmp_path, rows, "order_id,customer_id,ordered_at,amount")
    with pytest.raises(DataError) as refused:
        load_orders(_cfg(tmp_path, orders={"path": "orders.csv"}))
    message = str(refused.value)
    assert "orders.amount: 3 amount(s) that are not finite numbers or not below" in message
    assert "1,000,000,000 in size" in message and "inf" in message


def test_ids_that_are_too_long_or_hold_control_characters_are_refused(tmp_path):
    orders = pd.DataFrame(
        {
            "order_id": ["o1", "o2", "o3", "o4"],
            "customer_id": ["c1", "x" * 10_000, "c\x00nul", "c\rline"],
            "ordered_at": pd.to_datetime(["2024-01-01"] * 4),
            "amount": [1.0, 2.0, 3.0, 4.0],
        }
    )
    orders.to_parquet(tmp_path / "orders.parquet")
    with pytest.raises(DataError) as refused:
        load_orders(_cfg(tmp_path, orders={"path": "orders.parquet"}))
    assert "orders.customer_id: 3 id(s) longer than 256 characters or with control" in str(
        refused.value
    )


def test_ids_of_256_characters_in_more_bytes_pass_the_exact_check_after_the_quick_one(tmp_path):
    """DuckDB first looks at the ids' bytes; 256 characters of two bytes each fail that
    quick test, and the exact one, in characters, lets them through."""
    ids = ["c1", "é" * 256, "Müller-Lüdenscheidt"]
    orders = pd.DataFrame(
        {
            "order_id": ["o1", "o2", "o3"],
            "customer_id": ids,
            "ordered_at": pd.to_datetime(["2024-01-01"] * 3),
            "amount": [1.0, 2.0, 3.0],
        }
    )
    orders.to_parquet(tmp_path / "orders.parquet")
    assert sorted(load_orders(_cfg(tmp_path, orders={"path": "orders.parquet"})).customer_id) == (
        sorted(ids)
    )


@pytest.mark.parametrize(
    ("values", "plain"),
    [
        (["c1", "Müller", None, ""], True),
        (["c1", "c\x00nul"], False),
        (["c\tab"], False),
        (["del\x7f"], False),
        (["x" * 256], True),
        (["x" * 257], False),
        (["é" * 129], False),  # 258 bytes: a false alarm, which the exact check clears
        ([None, None], True),
        ([], True),
    ],
)
def test_the_quick_id_test_reads_the_bytes_of_any_arrow_text(values, plain):
    import pyarrow as pa

    from churnkit.engines.duckdb import _plain_text

    for kind in (pa.string(), pa.large_string()):
        assert _plain_text(pa.array(values, kind), 256) is plain
        # a slice shares its buffers with the whole array: only its own bytes count
        padded = pa.array(["\x00" * 300, *values, "\x00"], kind)
        assert _plain_text(padded.slice(1, len(values)), 256) is plain


def test_times_outside_1970_to_2100_are_refused(tmp_path):
    rows = [
        ("o1", "c1", "2024-01-01", 1.0),
        ("o2", "c1", "1900-01-01", 1.0),
        ("o3", "c2", "2200-06-01 10:00:00", 1.0),
    ]
    _orders_csv(tmp_path, rows, "order_id,customer_id,ordered_at,amount")
    with pytest.raises(DataError) as refused:
        load_orders(_cfg(tmp_path, orders={"path": "orders.csv"}))
    message = str(refused.value)
    assert "orders.ordered_at: 2 time(s) before 1970 or from 2100 on" in message
    assert "1900-01-01" in message


def test_negative_amounts_can_be_declared_returns(tmp_path):
    rows = [("o1", "c1", "2024-01-01", 10.0), ("o2", "c1", "2024-01-05", -10.0)]
    _orders_csv(tmp_path, rows, "order_id,customer_id,ordered_at,amount")
    strict = _cfg(tmp_path, orders={"path": "orders.csv"})
    with pytest.raises(DataError, match="treat_as_return"):
        load_orders(strict)
    lenient = _cfg(tmp_path, orders={"path": "orders.csv"}, on_negative_amount="treat_as_return")
    assert load_orders(lenient)["status"].astype(str).tolist() == ["completed", "returned"]


OFFSET_ROWS = [
    ("o1", "c1", "2024-07-01 10:00:00+02:00", 1.0),  # 08:00 UTC
    ("o2", "c1", "2024-07-01T10:00:00Z", 1.0),  # 10:00 UTC
    ("o3", "c1", "2024-07-01 10:00:00-0500", 1.0),  # 15:00 UTC
    ("o4", "c1", "2024-07-01 02:00:00", 1.0),  # naive: the configured zone
    ("o5", "c1", "2024-07-02", 1.0),  # a date, not an offset
]
OFFSET_UTC = ["2024-07-01 08:00", "2024-07-01 10:00", "2024-07-01 15:00"]


def test_timestamps_with_their_own_offset_are_that_instant(tmp_path):
    _orders_csv(tmp_path, OFFSET_ROWS, "order_id,customer_id,ordered_at,amount")
    cfg = _cfg(tmp_path, orders={"path": "orders.csv"}, timezone="Europe/Berlin")
    got = load_orders(cfg).set_index("order_id")["ordered_at"]
    expected = [*OFFSET_UTC, "2024-07-01 00:00", "2024-07-01 22:00"]  # Berlin is UTC+2
    assert got.tolist() == [pd.Timestamp(t) for t in expected]


def test_naive_timestamps_are_read_in_the_configured_zone_and_stored_as_utc(tmp_path):
    _orders_csv(
        tmp_path,
        [("o1", "c1", "2024-07-01 02:00:00", 1.0)],
        "order_id,customer_id,ordered_at,amount",
    )
    cfg = _cfg(tmp_path, orders={"path": "orders.csv"}, timezone="Europe/Berlin")
    # 02:00 in Berlin summer time is 00:00 UTC
    assert load_orders(cfg)["ordered_at"].iloc[0] == pd.Timestamp("2024-07-01 00:00:00")


def test_a_missing_file_names_the_config_key(tmp_path):
    with pytest.raises(DataError, match=r"does not exist; check `data.orders.path`"):
        load_orders(_cfg(tmp_path, orders={"path": "nowhere.parquet"}))


def test_generated_tables_pass_the_contract(generated_dir):
    cfg = _cfg(
        generated_dir,
        orders={"path": "orders.parquet"},
        events={"path": "events.parquet"},
        customers={"path": "customers.parquet", "attributes": ["loyalty_tier", "country"]},
    )
    tables = load_data(cfg)
    orders = tables.orders_frame()
    assert len(orders) > 10 * 1000
    assert set(orders["status"].astype(str)) == {"completed", "returned", "cancelled"}
    assert {"session", "email_open", "support_ticket", "nps"} == set(tables.event_types())
    assert {"loyalty_tier", "country"} <= set(tables.columns("customers"))
    # buyers missing from the customers table are counted (their attributes are unknown)
    assert tables.other_tables()["customers"].buyers_not_in_table == 0


def test_an_empty_events_table_is_refused(tmp_path):
    (tmp_path / "events.csv").write_text("customer_id,occurred_at,event_type\n", encoding="utf-8")
    _orders_csv(
        tmp_path, [("o1", "c1", "2024-01-01", 1.0)], "order_id,customer_id,ordered_at,amount"
    )
    cfg = _cfg(tmp_path, orders={"path": "orders.csv"}, events={"path": "events.csv"})
    with pytest.raises(DataError, match="(?s)events breaks the data contract.*no rows"):
        load_data(cfg)


def test_a_duckdb_table_is_read_with_its_own_column_names(tmp_path):
    import duckdb

    con = duckdb.connect(str(tmp_path / "shop.duckdb"))
    con.execute(
        "CREATE TABLE sales AS SELECT * FROM (VALUES "
        "(1, TIMESTAMPTZ '2024-01-01 12:00:00+02:00', 9.5), "
        "(2, TIMESTAMPTZ '2024-01-02 00:00:00+00:00', 3.0)) t(client, sold_at, price)"
    )
    con.close()
    cfg = _cfg(
        tmp_path,
        orders={
            "path": "shop.duckdb",
            "table": "sales",
            "columns": {"customer_id": "client", "ordered_at": "sold_at", "amount": "price"},
        },
    )
    orders = load_orders(cfg)
    assert orders["customer_id"].tolist() == ["1", "2"]
    # zone-aware timestamps are converted to naive UTC
    assert orders["ordered_at"].tolist() == [
        pd.Timestamp("2024-01-01 10:00:00"),
        pd.Timestamp("2024-01-02 00:00:00"),
    ]


def test_a_duckdb_source_without_a_table_is_a_config_error(tmp_path):
    from churnkit.errors import ConfigError

    with pytest.raises(ConfigError, match="needs `table:`"):
        _cfg(tmp_path, orders={"path": "shop.duckdb"})


def test_buyers_missing_from_the_customers_table_are_counted(tmp_path):
    _orders_csv(tmp_path, GOOD, "order_id,customer_id,ordered_at,amount,state")
    (tmp_path / "customers.csv").write_text("customer_id,tier\nc1,gold\n", encoding="utf-8")
    cfg = _cfg(
        tmp_path,
        orders={
            "path": "orders.csv",
            "columns": {"status": "state"},
            "status_values": {"paid": "completed", "refund": "returned"},
        },
        customers={"path": "customers.csv", "attributes": ["tier"]},
    )
    assert load_data(cfg).other_tables()["customers"].to_dict() == {
        "rows": 1,
        "customers": 1,
        "buyers_not_in_table": 1,  # c2 ordered but is not in the table
    }
