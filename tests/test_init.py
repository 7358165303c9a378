"""`churnkit init`: configs guessed from exports that validate, train and score."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from tests.test_cli import invoke

from churnkit.data.generator import generate_data, order_lines, write_generated


def _train_and_score(config):
    trained = invoke("--quiet", "train", config)
    # exit 3 is the gate keeping a model that does not clearly beat the best baseline
    assert trained.exit_code in (0, 3), trained.output + trained.stderr
    scored = invoke("--quiet", "score", config)
    assert scored.exit_code == 0, scored.output + scored.stderr
    assert list((config.parent / "scores").glob("as_of=*/at_risk.csv"))


def test_init_on_generated_files_writes_a_config_that_trains_and_scores(tmp_path, fresh_store):
    write_generated(generate_data(1500, seed=4), tmp_path / "data")
    fresh_store(tmp_path)
    files = [tmp_path / "data" / f"{n}.parquet" for n in ("orders", "events", "customers")]
    result = invoke("init", *files, "--out", tmp_path / "churnkit.yaml")
    assert result.exit_code == 0, result.output + result.stderr
    raw = yaml.safe_load((tmp_path / "churnkit.yaml").read_text())
    assert raw["data"]["orders"]["path"] == "data/orders.parquet"  # relative to the config
    assert set(raw["data"]["customers"]["attributes"]) == {
        "loyalty_tier",
        "acquisition_channel",
        "country",
    }
    assert invoke("validate", tmp_path / "churnkit.yaml").exit_code == 0
    _train_and_score(tmp_path / "churnkit.yaml")
    again = invoke("init", *files, "--out", tmp_path / "churnkit.yaml")
    assert again.exit_code == 2 and "--force" in again.stderr


def test_init_on_a_german_line_level_export_guesses_its_dialect_and_lines(tmp_path, fresh_store):
    lines = order_lines(generate_data(1500, seed=6).orders, seed=6).to_pandas()
    export = pd.DataFrame(
        {
            "household_key": lines["customer_id"],
            "BASKET_ID": lines["order_id"],
            "PRODUCT_ID": lines["product_id"],
            "QUANTITY": lines["quantity"].astype(int),
            "SALES_VALUE": lines["amount"].map(lambda x: f"{x:.2f}".replace(".", ",")),
            "TRANS_TIME": lines["ordered_at"].dt.strftime("%d.%m.%Y %H:%M:%S"),
            "Status": lines["status"].map(
                {"completed": "bezahlt", "returned": "Retoure", "cancelled": "storniert"}
            ),
            "Warengruppe": lines["category"].map({"home": "Küche"}).fillna(lines["category"]),
        }
    )
    export.to_csv(tmp_path / "umsaetze.csv", sep=";", index=False, encoding="cp1252")
    fresh_store(tmp_path)
    result = invoke("init", tmp_path / "umsaetze.csv", "--out", tmp_path / "churnkit.yaml")
    assert result.exit_code == 0, result.output + result.stderr
    orders = yaml.safe_load((tmp_path / "churnkit.yaml").read_text())["data"]["orders"]
    assert orders["separator"] == ";" and orders["decimal"] == ","
    assert orders["encoding"] == "cp1252"
    assert orders["timestamp_format"] == "%d.%m.%Y %H:%M:%S"
    assert orders["columns"] == {
        "customer_id": "household_key",
        "order_id": "BASKET_ID",
        "product_id": "PRODUCT_ID",
        "amount": "SALES_VALUE",
        "quantity": "QUANTITY",
        "category": "Warengruppe",
        "status": "Status",
        "ordered_at": "TRANS_TIME",
    }
    assert orders["status_values"] == {
        "Retoure": "returned",
        "bezahlt": "completed",
        "storniert": "cancelled",
    }
    assert "order lines: BASKET_ID repeats" in result.output
    _train_and_score(tmp_path / "churnkit.yaml")


def test_init_refuses_files_without_orders(tmp_path):
    write_generated(generate_data(50, seed=1), tmp_path)
    result = invoke("init", tmp_path / "customers.parquet", "--out", tmp_path / "c.yaml")
    assert result.exit_code == 2
    assert "none of the files looks like orders" in result.stderr
    assert not (tmp_path / "c.yaml").exists()


@pytest.mark.parametrize("name", ["missing.csv"])
def test_init_names_a_missing_file(tmp_path, name):
    result = invoke("init", tmp_path / name, "--out", tmp_path / "c.yaml")
    assert result.exit_code == 2 and f"{name}' does not exist" in result.stderr


def test_init_on_a_folder_of_exports_takes_each_file_as_a_table(tmp_path):
    # what `churnkit generate` writes: orders, events, customers and the hidden truth,
    # which looks like a customers table too
    write_generated(generate_data(300, seed=2), tmp_path / "exports")
    assert (tmp_path / "exports" / "truth.parquet").exists()
    result = invoke("init", tmp_path / "exports", "--out", tmp_path / "churnkit.yaml")
    assert result.exit_code == 0, result.output + result.stderr
    data = yaml.safe_load((tmp_path / "churnkit.yaml").read_text())["data"]
    assert {role: data[role]["path"] for role in data} == {
        "orders": "exports/orders.parquet",
        "events": "exports/events.parquet",
        "customers": "exports/customers.parquet",
    }
    assert "truth.parquet in exports/ looks like a customers table too" in result.output
    assert invoke("validate", tmp_path / "churnkit.yaml").exit_code == 0


def test_init_reads_a_folder_of_parquet_parts_as_one_table(tmp_path):
    write_generated(generate_data(300, seed=3), tmp_path)
    orders = pd.read_parquet(tmp_path / "orders.parquet")
    (tmp_path / "orders").mkdir()
    half = len(orders) // 2
    orders.iloc[:half].to_parquet(tmp_path / "orders" / "part-0.parquet")
    orders.iloc[half:].to_parquet(tmp_path / "orders" / "part-1.parquet")
    config = tmp_path / "churnkit.yaml"
    result = invoke("init", tmp_path / "orders", tmp_path / "customers.parquet", "--out", config)
    assert result.exit_code == 0, result.output + result.stderr
    assert yaml.safe_load(config.read_text())["data"]["orders"]["path"] == "orders"
    assert invoke("validate", config).exit_code == 0


def test_init_refuses_an_unreadable_file_or_an_empty_folder_in_one_line(tmp_path):
    (tmp_path / "orders.parquet").write_text("customer_id,amount\n", encoding="utf-8")
    (tmp_path / "empty").mkdir()
    for given, words in (("orders.parquet", "cannot be read as Parquet"), ("empty", "holds no")):
        result = invoke("init", tmp_path / given, "--out", tmp_path / "c.yaml")
        assert result.exit_code == 2, result.output + result.stderr
        assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.stderr and not (tmp_path / "c.yaml").exists()


def _guessed_orders_that_validate(given, config, orders: pd.DataFrame) -> dict:
    """`churnkit init` on ``given``; the orders section it wrote, once `validate` has read
    every order of ``orders`` through it."""
    result = invoke("init", given, "--out", config)
    assert result.exit_code == 0, result.output + result.stderr
    validated = invoke("validate", config)
    assert validated.exit_code == 0, validated.stderr
    assert f"orders: {len(orders):,} rows" in validated.output
    return yaml.safe_load(config.read_text())["data"]["orders"]


def test_init_reads_a_gzipped_csv_export_like_the_plain_one(tmp_path):
    orders = generate_data(300, seed=5).orders.to_pandas()
    orders["category"] = orders["category"].map({"home": "Küche"}).fillna(orders["category"])
    orders.to_csv(tmp_path / "kasse.csv.gz", sep=";", index=False, encoding="cp1252")
    guessed = _guessed_orders_that_validate(
        tmp_path / "kasse.csv.gz", tmp_path / "churnkit.yaml", orders
    )
    assert guessed["encoding"] == "cp1252" and guessed["separator"] == ";"


def test_init_reads_a_folder_of_csv_parts_as_one_table(tmp_path):
    orders = generate_data(300, seed=7).orders.to_pandas()
    (tmp_path / "monthly").mkdir()
    for month, part in orders.groupby(orders["ordered_at"].dt.to_period("Q")):
        part.to_csv(tmp_path / "monthly" / f"orders-{month}.csv", index=False)
    # what a Mac leaves beside each file it copies: hidden, and not CSV at all
    (tmp_path / "monthly" / "._orders-2023Q1.csv").write_bytes(b"\x00\x05\x16\x07 Mac OS X")
    guessed = _guessed_orders_that_validate(
        tmp_path / "monthly", tmp_path / "churnkit.yaml", orders
    )
    assert guessed["path"] == "monthly" and guessed["format"] == "csv"
    # the first quarter has no return: the status values come from every file
    assert guessed["status_values"]["returned"] == "returned"


def test_init_says_why_amounts_with_a_currency_sign_are_not_orders(tmp_path):
    orders = generate_data(50, seed=1).orders.to_pandas()
    orders["amount"] = orders["amount"].map(lambda x: f"€{x:.2f}")
    orders.to_csv(tmp_path / "orders.csv", index=False)
    result = invoke("init", tmp_path / "orders.csv", "--out", tmp_path / "c.yaml")
    assert result.exit_code == 2, result.output + result.stderr
    assert "orders.csv looks like events (its 'amount' holds text such as '€" in result.stderr
    assert "Export amounts as plain numbers" in result.stderr
    assert not (tmp_path / "c.yaml").exists()
