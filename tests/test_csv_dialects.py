"""CSV exports as shops write them: European and US dialects give the Parquet features."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from tests.conftest import write_config

from churnkit.config import load_config
from churnkit.errors import ConfigError
from churnkit.features.spec import spec_for_data
from churnkit.pipelines import open_source

AS_OF = [dt.date(2025, 3, 1), dt.date(2025, 6, 1)]
DIALECTS = {
    "parquet": ("orders.parquet", {}),
    "german": (
        "bestellungen.csv",
        {
            "separator": ";",
            "decimal": ",",
            "timestamp_format": "%d.%m.%Y %H:%M:%S",
            "encoding": "cp1252",
        },
    ),
    "us": ("orders_us.csv", {"timestamp_format": "%m/%d/%Y %I:%M:%S %p"}),
}
DIALECTS["german, gzipped"] = ("bestellungen.csv.gz", DIALECTS["german"][1])
DIALECTS["german, in parts"] = ("bestellungen", {**DIALECTS["german"][1], "format": "csv"})


def _config(folder, dialect, **overrides):
    name, options = DIALECTS[dialect]
    orders = {"path": str(folder / name), **options}
    return load_config(write_config(folder / dialect, folder, data={"orders": orders}, **overrides))


def _features(cfg):
    source = open_source(cfg)
    return source.features(AS_OF, spec_for_data(cfg, source)[0], horizon_days=90)


@pytest.mark.parametrize("dialect", ["german", "german, gzipped", "german, in parts", "us"])
def test_csv_exports_give_the_features_of_the_parquet_original(csv_exports, dialect):
    expected = _features(_config(csv_exports, "parquet"))
    got = _features(_config(csv_exports, dialect))
    assert len(got) > 300 and got["distinct_categories"].max() > 1
    pd.testing.assert_frame_equal(got, expected)


def test_a_wrong_dialect_is_reported_with_the_text_that_did_not_parse(csv_exports, tmp_path):
    from churnkit.errors import DataError

    name, options = DIALECTS["german"]
    orders = {"path": str(csv_exports / name), **options, "decimal": "."}  # the comma forgotten
    cfg = load_config(write_config(tmp_path, csv_exports, data={"orders": orders}))
    with pytest.raises(DataError) as caught:
        open_source(cfg)
    message = str(caught.value)
    assert "orders.amount: 5,013 value(s) do not parse as double, e.g. ['0,85'" in message
    assert "a decimal comma? set `data.orders.decimal: ','`" in message


def test_csv_options_on_a_parquet_source_are_refused(tmp_path, csv_exports):
    with pytest.raises(ConfigError, match="separator apply to CSV files only"):
        load_config(
            write_config(
                tmp_path,
                csv_exports,
                data={"orders": {"path": str(csv_exports / "orders.parquet"), "separator": ";"}},
            )
        )
