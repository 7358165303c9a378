"""The generator: deterministic files, and customers that behave plausibly."""

from __future__ import annotations

import pyarrow.compute as pc

from churnkit.data.generator import generate_data, write_generated


def test_the_same_seed_gives_byte_identical_files(tmp_path):
    first = write_generated(generate_data(300, seed=5), tmp_path / "a")
    second = write_generated(generate_data(300, seed=5), tmp_path / "b")
    for name in first:
        assert first[name].read_bytes() == second[name].read_bytes(), name
    other = write_generated(generate_data(300, seed=6), tmp_path / "c")
    assert other["orders"].read_bytes() != first["orders"].read_bytes()


def test_generated_customers_behave_like_a_shop():
    data = generate_data(4000, seed=1)
    orders_per_customer = data.orders.num_rows / data.customers.num_rows
    assert 5 < orders_per_customer < 15
    status = data.orders["status"].to_pylist()
    returned = status.count("returned") / len(status)
    assert 0.03 < returned < 0.15
    assert pc.min(data.orders["amount"]).as_py() > 0
    # every customer has at least the signup order
    assert pc.count_distinct(data.orders["customer_id"]).as_py() == 4000
    # engagement exists for most customers and includes NPS with 0..10 scores
    events = data.events.to_pandas()
    nps = events.loc[events["event_type"] == "nps", "value"]
    assert nps.between(0, 10).all() and len(nps) > 100
    assert events["customer_id"].nunique() > 0.8 * 4000


def test_large_sizes_are_written_in_parts_with_unique_ids(tmp_path):
    import pandas as pd

    from churnkit.data.generator import generate_files, parquet_rows

    paths = generate_files(250, tmp_path, seed=4, chunk_customers=100)
    assert sorted(p.name for p in paths["orders"].iterdir()) == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    orders = pd.read_parquet(paths["orders"])
    customers = pd.read_parquet(paths["customers"])
    assert len(orders) == parquet_rows(paths["orders"])
    assert orders["order_id"].is_unique
    assert customers["customer_id"].is_unique and len(customers) == 250
    assert set(orders["customer_id"]) == set(customers["customer_id"])
    # the first part is what the unchunked generator draws for the same seed
    small = generate_files(100, tmp_path / "small", seed=4, chunk_customers=100)
    first = pd.read_parquet(paths["orders"] / "part-00000.parquet")
    pd.testing.assert_frame_equal(first, pd.read_parquet(small["orders"]))
