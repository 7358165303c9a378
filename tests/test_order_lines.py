"""Order lines, as shops export them: summed per order, every line's category counted."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.conftest import write_config
from typer.testing import CliRunner

from churnkit.cli import app
from churnkit.config import load_config
from churnkit.data.generator import generate_data, order_lines
from churnkit.features.spec import spec_for_data
from churnkit.pipelines import open_source

AS_OF = [dt.date(2025, 3, 1), dt.date(2025, 6, 1)]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """A line-level export, and the same orders summed per order by hand."""
    folder = tmp_path_factory.mktemp("lines")
    data = generate_data(800, seed=5)
    lines = order_lines(data.orders, seed=5)
    pq.write_table(lines, folder / "lines.parquet")
    by_hand = (
        lines.to_pandas()
        .groupby("order_id", sort=False)
        .agg(
            customer_id=("customer_id", "first"),
            ordered_at=("ordered_at", "min"),
            amount=("amount", "sum"),
            quantity=("quantity", "sum"),
            status=("status", "first"),  # a generated order's lines share its status
            category=("category", "first"),
            channel=("channel", "first"),
        )
        .reset_index()
    )
    pq.write_table(pa.Table.from_pandas(by_hand, preserve_index=False), folder / "orders.parquet")
    return folder, lines.to_pandas(), by_hand


def _source(folder, name):
    project = folder / f"project-{name.split('.')[0]}"
    config = write_config(project, folder, data={"orders": {"path": str(folder / name)}})
    return open_source(load_config(config)), config


def test_a_line_level_export_gives_the_features_of_its_orders_summed_by_hand(exports):
    folder, lines, by_hand = exports
    from_lines, _ = _source(folder, "lines.parquet")
    from_orders, _ = _source(folder, "orders.parquet")
    cfg = load_config(write_config(folder / "c", folder))
    spec = spec_for_data(cfg, from_lines)[0]
    assert spec.has("breadth") and spec.has("returns")
    assert "product_id" in spec.breadth_columns  # distinct products, from the lines
    assert spec.quantity  # and units per order, from the lines' quantities summed
    ours = from_lines.features(AS_OF, spec, horizon_days=90)
    theirs = from_orders.features(AS_OF, spec_for_data(cfg, from_orders)[0], horizon_days=90)
    assert len(ours) > 500
    assert ours["mean_units_per_order"].between(1, 15).all()
    lines_only = ["distinct_categories", "distinct_products"]
    pd.testing.assert_frame_equal(
        ours.drop(columns=lines_only), theirs.drop(columns="distinct_categories")
    )
    # breadth counts the category and product of every line, not one per order: by hand
    for as_of in AS_OF:
        qualifying = by_hand[
            (by_hand["status"] == "completed") & (by_hand["ordered_at"] < pd.Timestamp(as_of))
        ]
        bought = lines[lines["order_id"].isin(qualifying["order_id"])].groupby("customer_id")
        got = ours[ours["as_of"] == pd.Timestamp(as_of)].set_index("customer_id")
        for feature, column in (
            ("distinct_categories", "category"),
            ("distinct_products", "product_id"),
        ):
            expected = bought[column].nunique().reindex(got.index).fillna(0)
            pd.testing.assert_series_equal(
                got[feature], expected.astype(got[feature].dtype), check_names=False
            )
    assert (ours["distinct_categories"] >= theirs["distinct_categories"]).all()
    assert (ours["distinct_categories"] > theirs["distinct_categories"]).any()


def test_one_night_of_order_lines_gives_what_the_snapshots_give(exports):
    # scoring builds one date, where breadth counts the distinct combinations of each
    # source; training builds several from first purchases: the same counts
    folder, _, _ = exports
    source, _ = _source(folder, "lines.parquet")
    cfg = load_config(write_config(folder / "c", folder))
    spec = spec_for_data(cfg, source)[0]
    together = source.features(AS_OF, spec, horizon_days=None)
    for as_of in AS_OF:
        alone = source.features([as_of], spec, horizon_days=None)
        expected = together[together["as_of"] == as_of].reset_index(drop=True)
        assert len(alone) > 300
        assert alone["distinct_products"].gt(alone["distinct_categories"]).any()
        pd.testing.assert_frame_equal(alone, expected, check_exact=True)


def test_validate_and_train_say_the_rows_were_read_as_order_lines(exports):
    folder, lines, by_hand = exports
    source, config = _source(folder, "lines.parquet")
    assert source.summary().orders == len(by_hand)
    note = f"the {len(lines):,} rows were read as the lines of {len(by_hand):,} orders"
    assert any(note in n for n in source.notes)
    result = CliRunner().invoke(app, ["validate", str(config)])
    assert result.exit_code == 0, result.stderr
    assert note in result.output.replace("\n", " ")


def test_generate_writes_order_lines_that_add_up_to_the_orders(tmp_path):
    result = CliRunner().invoke(
        app, ["generate", "--customers", "60", "--seed", "3", "--lines", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    lines = pd.read_parquet(tmp_path / "orders.parquet")
    orders = generate_data(60, seed=3).orders.to_pandas().set_index("order_id")
    assert {"product_id", "quantity"} <= set(lines.columns)
    assert lines["order_id"].duplicated().any()
    totals = lines.groupby("order_id")["amount"].sum()
    assert (totals - orders["amount"].reindex(totals.index)).abs().max() < 1e-9
    assert lines.groupby("order_id")["customer_id"].nunique().max() == 1


def test_order_lines_without_an_order_id_are_warned_about_naming_the_key(exports):
    folder, lines, by_hand = exports
    lines.drop(columns="order_id").assign(
        ordered_at=lambda f: f["ordered_at"].dt.floor("min")  # lines share the order's minute
    ).to_parquet(folder / "no_ids.parquet")
    source, _ = _source(folder, "no_ids.parquet")
    warning = [n for n in source.notes if "share a customer and a moment" in n]
    assert len(warning) == 1 and "`data.orders.columns.order_id`" in warning[0]
    by_hand.drop(columns="order_id").to_parquet(folder / "orders_no_ids.parquet")
    orders_only, _ = _source(folder, "orders_no_ids.parquet")
    assert not orders_only.notes  # one row per order: nothing to say


@pytest.mark.parametrize(
    ("ids", "repeats"),
    [
        (pa.array([f"O{i}" for i in range(5000)]), False),
        (pa.array([f"O{i}" for i in range(5000)] + ["O4711"]), True),  # one repeat in 5,001
        (pa.array([None, None, "a", "b"]), False),  # missing ids are not repeats
        (pa.array([1, 2, 3, 3]), True),
        (pa.array([], pa.string()), False),
    ],
)
def test_the_duckdb_engine_finds_a_repeated_id_exactly_as_a_distinct_count(ids, repeats):
    """DuckDB sorts the ids' hashes instead of counting distinct ids; same answer."""
    import ibis

    from churnkit._duckdb import connect
    from churnkit.engines import SQLEngine
    from churnkit.engines.duckdb import DuckDBEngine

    engine = DuckDBEngine(connect())
    engine.con.register("ids", pa.table({"order_id": ids}))
    table = ibis.table({"order_id": "int64" if pa.types.is_integer(ids.type) else "string"}, "ids")
    assert engine.repeats(table, "order_id") is repeats
    assert SQLEngine.repeats(engine, table, "order_id") is repeats
