"""The DuckDB engine: views over the files give the same features as pandas inputs, and
broken files are refused in one message before anything is written."""

from __future__ import annotations

import datetime as dt

import ibis
import numpy as np
import pandas as pd
import pytest
import yaml
from tests.conftest import write_config

from churnkit._duckdb import connect
from churnkit.config import load_config
from churnkit.data import open_data
from churnkit.data.generator import demo_config, generate_data, write_generated
from churnkit.engines.duckdb import (
    DuckDBEngine,
    _feature_sql,
    build_features,
    run_feature_query,
)
from churnkit.errors import DataError, ResourceError
from churnkit.features import compact_features, feature_names, resolve_feature_spec
from churnkit.features.spec import spec_for_data


def register_views(data):
    engine = DuckDBEngine(connect())
    return open_data(engine, data), engine.con


AS_OF = [dt.date(2025, 3, 1), dt.date(2025, 6, 1)]


@pytest.fixture(scope="module")
def every_table(tmp_path_factory):
    folder = tmp_path_factory.mktemp("views")
    write_generated(generate_data(600, seed=4), folder / "data")
    path = folder / "churnkit.yaml"
    path.write_text(yaml.safe_dump(demo_config("data")))
    return load_config(path)


def test_views_give_the_same_features_as_checked_frames(every_table):
    cfg = every_table
    checked, con = register_views(cfg.data)
    orders, events, customers = (
        checked.engine.fetch(checked.table(name)) for name in ("orders", "events", "customers")
    )
    spec = resolve_feature_spec(cfg, orders, events, customers)
    assert len(spec.families) == 8
    in_memory = build_features(
        orders, AS_OF, spec, events=events, customers=customers, horizon_days=90
    )
    pd.testing.assert_frame_equal(run_feature_query(con, AS_OF, spec, horizon_days=90), in_memory)
    summary = checked.summary()
    assert summary.orders == len(orders)
    assert summary.first_order_at == orders["ordered_at"].min()


def test_the_training_table_built_a_snapshot_per_query_is_the_one_query_table(every_table):
    """Training builds large tables a few snapshots per query, each part compact; the
    parts put together are the table one query gives, made compact (categories too)."""
    checked, _ = register_views(every_table.data)
    spec = resolve_feature_spec(every_table, checked.orders_frame())
    dates = [dt.date(2024, 12, 1), dt.date(2025, 3, 1), dt.date(2025, 6, 1)]
    whole = checked.features(dates, spec, horizon_days=90)
    customers = checked.summary().customers
    parts = checked.training_features(
        dates, spec, horizon_days=90, customers=customers, rows_per_query=customers
    )
    one = checked.training_features(dates, spec, horizon_days=90, customers=customers)
    pd.testing.assert_frame_equal(parts, compact_features(whole, spec))
    pd.testing.assert_frame_equal(one, parts)
    numeric = [name for name in feature_names(spec) if name not in spec.attributes]
    assert set(parts[numeric].dtypes) == {np.dtype("float32")}
    for column in (*spec.attributes, "segment", "rfm_segment"):
        assert list(parts[column].cat.categories) == sorted(whole[column].dropna().unique())
    assert whole["as_of"].nunique() == 3 and len(parts) == len(whole)
    assert len({id(day) for day in parts["as_of"]}) == 3  # one object per date, shared


def test_one_snapshot_is_a_constant_of_its_query_with_the_joined_querys_features(every_table):
    # one as_of: compared with each row, not a joined table (1.9 s of CPU less at 1M
    # customers); the same features as that date's rows of a query over several dates
    cfg = every_table
    checked, con = register_views(cfg.data)
    spec = spec_for_data(cfg, checked)[0]
    with (
        _feature_sql(con, AS_OF[-1:], spec, None) as one,
        _feature_sql(con, AS_OF, spec, None) as both,
    ):
        assert "churnkit_grid" not in one and "churnkit_grid" in both
    alone = run_feature_query(con, AS_OF[-1:], spec)
    joined = run_feature_query(con, AS_OF, spec)
    joined = joined[joined["as_of"] == AS_OF[-1]].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, joined, check_exact=True)


def test_the_engine_reads_the_event_types_once_until_new_events_are_published(
    every_table, monkeypatch
):
    import churnkit.engines.duckdb as duckdb_engine

    reads = []
    read = duckdb_engine._event_types
    monkeypatch.setattr(duckdb_engine, "_event_types", lambda con: reads.append(1) or read(con))
    checked, _ = register_views(every_table.data)
    spec = spec_for_data(every_table, checked)[0]
    first = checked.features(AS_OF[-1:], spec)
    assert checked.features(AS_OF[-1:], spec).equals(first) and len(reads) == 1
    events = checked.engine.fetch(checked.table("events"))
    events["event_type"] = events["event_type"].replace({"session": "visit"})
    checked.engine.con.register("renamed_events", events)
    renamed = ibis.table(checked.table("events").schema(), name="renamed_events")
    checked.engine.publish("events", renamed)  # every session is now a "visit"
    again = checked.features(AS_OF[-1:], spec)
    assert len(reads) == 2
    assert (again["session_events_90d"] == 0).all() and first["session_events_90d"].sum() > 0


def test_features_over_the_memory_limit_raise_a_resource_error(every_table):
    cfg = every_table
    checked, con = register_views(cfg.data)
    spec = resolve_feature_spec(cfg, checked.orders_frame())
    con.execute("SET memory_limit='1MB'")
    con.execute("SET threads=2")
    with pytest.raises(ResourceError, match=r"ran out of memory building features") as caught:
        run_feature_query(con, AS_OF, spec)
    # churnkit's own connection has no spill directory unless the config sets one
    assert "(memory_limit 976.5 KiB, 2 threads, no spill directory)" in str(caught.value)
    assert "Set `duckdb.temp_directory`" in str(caught.value)
    assert "`duckdb.threads: 1`" in str(caught.value)


def test_a_broken_orders_file_is_reported_in_one_message(tmp_path, generated_dir):
    orders = pd.read_parquet(generated_dir / "orders.parquet")
    orders.loc[0, "customer_id"] = None
    orders.loc[1:2, "status"] = "lost"
    orders.loc[3, "amount"] = -4.0
    orders.loc[4, "order_id"] = orders.loc[5000, "order_id"]  # another customer, months on
    orders.to_parquet(tmp_path / "orders.parquet")
    config = write_config(tmp_path / "p", generated_dir)
    raw = yaml.safe_load(config.read_text())
    raw["data"]["orders"]["path"] = str(tmp_path / "orders.parquet")
    config.write_text(yaml.safe_dump(raw))
    with pytest.raises(DataError) as caught:
        register_views(load_config(config).data)
    message = str(caught.value)
    assert message.startswith("orders breaks the data contract (5 problems):")
    shared = orders.loc[4, "order_id"]
    for problem in (
        "orders.customer_id: 1 null value(s)",
        f"orders.order_id: 1 order id(s) have lines of several customers, e.g. ['{shared}']",
        f"orders.order_id: 1 order id(s) have lines more than a day apart, e.g. ['{shared}']",
        "orders.status: 2 row(s) have values ['lost'] that `data.orders.status_values` does not",
        "orders.amount: 1 order(s) whose lines add up to a negative amount are not marked as",
    ):
        assert problem in message


def test_scoring_reads_views_and_refuses_broken_data_before_writing(
    tmp_path, trained, generated_dir
):
    from typer.testing import CliRunner

    from churnkit.cli import app

    _, outcome, _ = trained
    orders = pd.read_parquet(generated_dir / "orders.parquet")
    orders.loc[:9, "ordered_at"] = pd.NaT
    orders.to_parquet(tmp_path / "orders.parquet")
    config = write_config(
        tmp_path / "p", generated_dir, scoring={"model": str(outcome.export_dir), "output_dir": "s"}
    )
    raw = yaml.safe_load(config.read_text())
    raw["data"]["orders"]["path"] = str(tmp_path / "orders.parquet")
    config.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["score", str(config)])
    assert result.exit_code == 2
    assert "orders.ordered_at: 10 null value(s)" in result.stderr
    assert not (tmp_path / "p" / "s").exists()


def test_the_duckdb_section_sets_the_connection_that_reads_the_views(tmp_path, generated_dir):
    from churnkit.pipelines import open_source

    config = write_config(tmp_path / "p", generated_dir)
    raw = yaml.safe_load(config.read_text())
    raw["duckdb"] = {"memory_limit": "1GB", "temp_directory": "spill", "threads": 1}
    config.write_text(yaml.safe_dump(raw))
    source = open_source(load_config(config))
    limit, spill, threads = source.engine.con.execute(
        "SELECT current_setting('memory_limit'), current_setting('temp_directory'), "
        "current_setting('threads')"
    ).fetchall()[0]
    assert limit in ("953.6 MiB", "1.0 GiB", "1000.0 MB")
    assert spill == str(tmp_path / "p" / "spill")
    assert threads == 1
    assert source.summary().orders > 10_000


def test_churnkit_connections_print_no_progress_bar_to_stdout(capfd):
    from churnkit._duckdb import connect

    con = connect({"threads": 1})
    con.execute("SET progress_bar_time = 0")  # DuckDB would draw its bar at once
    count = con.execute("SELECT count(*) FROM range(20_000_000) t(x) WHERE x % 7 = 3").fetchall()
    assert count == [(2_857_143,)]
    assert capfd.readouterr().out == ""


def test_churnkit_connections_spill_only_when_a_limit_or_directory_is_set(tmp_path):
    from churnkit._duckdb import connect

    def spill(settings):
        con = connect(settings)
        return con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0]

    # without either, DuckDB works in memory instead of partitioning joins it need not
    assert spill(None) == ""
    assert spill({"memory_limit": "1GB"}) == ".tmp"  # DuckDB's own default
    assert spill({"temp_directory": tmp_path / "spill"}) == str(tmp_path / "spill")
