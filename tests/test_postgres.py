"""A PostgreSQL source: the same checks and features as the files it was loaded from."""

from __future__ import annotations

import datetime as dt

import adbc_driver_postgresql.dbapi as dbapi
import pandas as pd
import pyarrow.parquet as pq
import pytest
from tests.conftest import write_config

from churnkit.config import load_config
from churnkit.errors import ConfigError, DataError
from churnkit.features.spec import spec_for_data
from churnkit.pipelines import open_source

AS_OF = [dt.date(2025, 3, 1), dt.date(2025, 6, 1)]


@pytest.fixture(scope="module")
def shop(postgres_url, generated_dir):
    """The generated tables loaded into PostgreSQL (orders with a timestamptz column)."""
    with dbapi.connect(postgres_url) as connection, connection.cursor() as cursor:
        for name in ("orders", "events", "customers"):
            cursor.adbc_ingest(
                name, pq.read_table(generated_dir / f"{name}.parquet"), mode="replace"
            )
        connection.commit()
    return postgres_url


def _config(tmp_path, generated_dir, orders, events, customers):
    data = {
        "orders": orders,
        "events": events,
        "customers": {**customers, "attributes": ["loyalty_tier", "country"]},
    }
    return load_config(write_config(tmp_path, generated_dir, data=data))


def test_tables_in_postgresql_give_the_features_of_the_same_files(shop, generated_dir, tmp_path):
    files = _config(
        tmp_path / "files",
        generated_dir,
        *({"path": str(generated_dir / f"{n}.parquet")} for n in ("orders", "events", "customers")),
    )
    database = _config(
        tmp_path / "db",
        generated_dir,
        {"url": shop, "table": "orders"},
        {"url": shop, "query": "SELECT customer_id, occurred_at, event_type, value FROM events"},
        {"url": shop, "table": "public.customers"},
    )
    ours, theirs = open_source(database), open_source(files)
    spec = spec_for_data(files, theirs)[0]
    assert spec.has("engagement") and spec.has("attributes")
    assert spec_for_data(database, ours)[0] == spec
    assert ours.summary() == theirs.summary()
    pd.testing.assert_frame_equal(
        ours.features(AS_OF, spec, horizon_days=90), theirs.features(AS_OF, spec, horizon_days=90)
    )


def test_a_password_in_the_url_is_refused_and_one_from_the_environment_is_used(
    shop, generated_dir, tmp_path, monkeypatch
):
    inline = shop.replace("churnkit@", "churnkit:secret@")
    with pytest.raises(ConfigError, match=r"`url:` holds a password; put it in \$PGPASSWORD"):
        _config(tmp_path / "a", generated_dir, {"url": inline, "table": "orders"}, {}, {})
    placeholder = shop.replace("churnkit@", "churnkit:${SHOP_PASSWORD}@")
    orders = {"url": placeholder, "table": "orders"}
    cfg = load_config(write_config(tmp_path / "b", generated_dir, data={"orders": orders}))
    with pytest.raises(ConfigError, match=r"uses \$\{SHOP_PASSWORD\}, which is not set"):
        open_source(cfg)
    monkeypatch.setenv("SHOP_PASSWORD", "any: the test server trusts loopback")
    assert open_source(cfg).summary().orders > 10_000
    assert "any: the test" not in str(cfg.model_dump())  # the config keeps the placeholder


def test_an_unreachable_database_or_a_missing_table_is_one_clear_error(
    shop, generated_dir, tmp_path
):
    for url, table, expected in (
        (shop, "nowhere", "cannot read orders from PostgreSQL"),
        ("postgresql://churnkit@127.0.0.1:1/shop", "orders", "that the server is up"),
    ):
        orders = {"url": url, "table": table, "timeout_seconds": 5}
        cfg = load_config(write_config(tmp_path / table, generated_dir, data={"orders": orders}))
        with pytest.raises(DataError, match=expected):
            open_source(cfg)
