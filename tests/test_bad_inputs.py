"""The table of bad data and bad configs: each must exit 2 with one message naming what is
wrong (no traceback) and write nothing: no MLflow store, no run, no partition, no file.

Each case starts from a small copy of the generated shop (orders, events, customers,
a config that trains), spoils one thing and runs one command. Run alone with
`-m bad_inputs`.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from tests.conftest import one_line_exit_2
from typer.testing import CliRunner

from churnkit.cli import app

pytestmark = pytest.mark.bad_inputs

Frame = Callable[[pd.DataFrame], pd.DataFrame]


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    expect: str  # a fragment of the one message (newlines read as spaces)
    command: tuple[str, ...] = ("train", "{config}")
    orders: Frame | None = None
    events: Frame | None = None
    customers: Frame | None = None
    config: Callable[[dict[str, Any]], None] | None = None
    files: Callable[[Path], None] | None = None  # spoils files in the project folder


def _set(row: int, column: str, value: Any) -> Frame:
    def spoil(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        if frame[column].dtype.kind not in "fiuM" or isinstance(value, str):
            frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
        return frame

    return spoil


def _drop(column: str) -> Frame:
    return lambda frame: frame.drop(columns=[column])


def _cfg(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def spoil(raw: dict[str, Any]) -> None:
        *parents, key = path.split(".")
        node = raw
        for parent in parents:
            node = node.setdefault(parent, {})
        node[key] = value

    return spoil


def _write(name: str, content: bytes) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes(content)


def _append(name: str, text: str) -> Callable[[Path], None]:
    def spoil(folder: Path) -> None:
        with open(folder / name, "a", encoding="utf-8") as handle:
            handle.write(text)

    return spoil


def _truncate(name: str) -> Callable[[Path], None]:
    def spoil(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2])

    return spoil


CASES = [
    # orders: columns and values
    Case("orders without customer_id", "customer_id", orders=_drop("customer_id")),
    Case("orders without ordered_at", "ordered_at", orders=_drop("ordered_at")),
    Case("orders without amount", "amount", orders=_drop("amount")),
    Case("a NaN amount", "amount", orders=_set(5, "amount", np.nan)),
    Case("an infinite amount", "amount", orders=_set(5, "amount", np.inf)),
    Case("an amount of 1e13", "amount", orders=_set(5, "amount", 1e13)),
    Case("a negative amount", "negative", orders=_set(5, "amount", -20.0)),
    Case(
        "a text amount",
        "amount",
        orders=lambda f: _set(5, "amount", "twelve")(f.astype({"amount": str})),
    ),
    Case("a missing customer id", "customer_id", orders=_set(5, "customer_id", None)),
    Case("a 10,000-character id", "customer_id", orders=_set(5, "customer_id", "C" * 10_000)),
    Case("an id with a NUL byte", "customer_id", orders=_set(5, "customer_id", "C1\x00")),
    Case("an id with a carriage return", "customer_id", orders=_set(5, "customer_id", "C1\r")),
    Case(
        "an order in 1900", "ordered_at", orders=_set(5, "ordered_at", pd.Timestamp("1900-01-01"))
    ),
    Case(
        "an order in 2200", "ordered_at", orders=_set(5, "ordered_at", pd.Timestamp("2200-01-01"))
    ),
    Case("a missing order time", "ordered_at", orders=_set(5, "ordered_at", pd.NaT)),
    Case("an unmapped status", "status", orders=_set(5, "status", "lost in transit")),
    Case(
        "no orders at all",
        "orders breaks the data contract: the table has no rows",
        orders=lambda frame: frame.head(0),
    ),
    Case("a history of two weeks", "history", orders=lambda f: f[f["ordered_at"] < "2023-01-15"]),
    # orders: files
    Case(
        "an orders file that is missing",
        "orders.parquet",
        files=lambda f: (f / "orders.parquet").unlink(),
    ),
    Case(
        "an orders file that is not Parquet",
        "orders.parquet",
        files=_write("orders.parquet", b"PAR1 not really"),
    ),
    Case("a truncated orders file", "orders.parquet", files=_truncate("orders.parquet")),
    Case(
        "a glob that matches nothing",
        "no-such-*.parquet",
        config=_cfg("data.orders.path", "no-such-*.parquet"),
    ),
    Case(
        "a CSV glob that matches nothing",
        "no-such-*.csv' matches no CSV file",
        config=_cfg("data.orders.path", "no-such-*.csv"),
    ),
    Case(
        "a CSV in another encoding than the config says",
        "orders is not ascii text (byte 0xc3",
        config=_cfg("data.orders", {"path": "orders.csv", "encoding": "ascii"}),
        files=_write(
            "orders.csv", "customer_id,ordered_at,amount\nKöln-1,2024-01-02,9.5\n".encode()
        ),
    ),
    Case(
        "a folder of CSV parts without a CSV",
        "matches no CSV file",
        config=_cfg("data.orders", {"path": "exports", "format": "csv"}),
        files=lambda folder: (folder / "exports").mkdir(),
    ),
    Case(
        "a mapped column that is not there",
        "order_time",
        config=_cfg("data.orders.columns", {"ordered_at": "order_time"}),
    ),
    # events and customers
    Case("events without event_type", "event_type", events=_drop("event_type")),
    Case("an event without a time", "occurred_at", events=_set(3, "occurred_at", pd.NaT)),
    Case(
        "an event in 2200", "occurred_at", events=_set(3, "occurred_at", pd.Timestamp("2200-01-01"))
    ),
    Case("an event id with a NUL byte", "customer_id", events=_set(3, "customer_id", "C\x00")),
    Case("a customer listed twice", "customer_id", customers=lambda f: pd.concat([f, f.head(1)])),
    Case("a customer without an id", "customer_id", customers=_set(0, "customer_id", None)),
    Case(
        "an attribute that is not a column",
        "favourite_colour",
        config=_cfg("data.customers.attributes", ["favourite_colour"]),
    ),
    Case(
        "an attribute named like a feature",
        "recency_days",
        customers=lambda f: f.rename(columns={"country": "recency_days"}),
        config=_cfg("data.customers.attributes", ["recency_days"]),
    ),
    Case(
        "customer ids zero-padded where orders have numbers",
        "none of the 3,000 customer ids of customers is a customer of the orders",
        orders=lambda f: f.assign(customer_id=f["customer_id"].str[1:].astype("int64")),
        events=lambda f: f.assign(customer_id=f["customer_id"].str[1:].astype("int64")),
        customers=lambda f: f.assign(customer_id=f["customer_id"].str[1:].str.zfill(9)),
    ),
    Case(
        "events of another shop",
        "customer ids of events is a customer of the orders",
        events=lambda f: f.assign(customer_id="other-" + f["customer_id"]),
    ),
    Case(
        "a contact without a time",
        "contacts breaks the data contract: contacts.contacted_at: 1 null value(s)",
        config=_cfg("data.contacts", {"path": "contacts.parquet"}),
        files=lambda folder: pd.DataFrame(
            {
                "customer_id": ["C0000001", "C0000002"],
                "contacted_at": pd.to_datetime(["2025-09-02", None]),
                "play": ["call", "email"],
            }
        ).to_parquet(folder / "contacts.parquet"),
    ),
    # config files
    Case("an unknown key", "colour", config=_cfg("model.colour", "blue")),
    Case(
        "a config that is not UTF-8",
        "UTF-8",
        files=_write(
            "churnkit.yaml",
            "data: {orders: {path: 'bestellungen-\xfc.parquet'}}\n".encode("cp1252"),
        ),
    ),
    Case(
        "a YAML syntax error", "churnkit.yaml", files=_write("churnkit.yaml", b"data: {orders: [\n")
    ),
    Case(
        "a python tag in YAML",
        "churnkit.yaml",
        files=_write("churnkit.yaml", b"data: !!python/object/apply:os.system ['true']\n"),
    ),
    Case(
        "a config that is a list",
        "churnkit.yaml",
        files=_write("churnkit.yaml", b"- data\n- model\n"),
    ),
    Case(
        "a config file that is missing", "nowhere.yaml", command=("train", "{folder}/nowhere.yaml")
    ),
    Case(
        "a memory limit of 'lots'",
        "duckdb.memory_limit",
        config=_cfg("duckdb.memory_limit", "lots"),
    ),
    Case("a horizon of 1e9 days", "horizon_days", config=_cfg("snapshots.horizon_days", 10**9)),
    Case(
        "a negative activity window", "activity_days", config=_cfg("snapshots.activity_days", -30)
    ),
    Case(
        "a time zone that does not exist",
        "Mars/Olympus",
        config=_cfg("data.timezone", "Mars/Olympus"),
    ),
    Case("a learning rate of zero", "learning_rate", config=_cfg("model.learning_rate", 0)),
    Case(
        "risk tiers that overlap",
        "risk_tiers",
        config=_cfg("scoring.risk_tiers", {"high": 0.5, "medium": 0.2}),
    ),
    Case(
        "an unreachable tracking server",
        "http://127.0.0.1:9",
        config=_cfg("mlflow.tracking_uri", "http://127.0.0.1:9"),
    ),
    # other commands
    Case(
        "a date that is no date",
        "2025-13-45",
        command=("features", "{config}", "--as-of", "2025-13-45", "--out", "{folder}/f.parquet"),
    ),
    Case(
        "an output suffix nobody can write",
        ".xlsx",
        command=("features", "{config}", "--out", "{folder}/f.xlsx"),
    ),
    Case(
        "an unknown KPI period", "fortnight", command=("kpis", "{config}", "--period", "fortnight")
    ),
    Case("scoring without a model", "train one with", command=("score", "{config}")),
    Case(
        "a scoring model folder that is missing",
        "no-such-bundle",
        command=("score", "{config}"),
        config=_cfg("scoring.model", "models/no-such-bundle"),
    ),
    Case(
        "scores to a folder that is a file",
        "`scoring.output_dir` {folder}/a-file is a file, not a folder",
        command=("score", "{config}"),
        config=_cfg("scoring", {"output_dir": "a-file", "model": "bundle"}),
        files=_write("a-file", b"not a folder"),
    ),
    Case(
        "a truncated booster",
        "does not match the checksum",
        command=("score", "{config}"),
        config=_cfg("scoring.model", "bundle"),
        files=_truncate("bundle/booster.txt"),
    ),
    Case(
        "a model.json that is not JSON",
        "model.json is not JSON",
        command=("score", "{config}"),
        config=_cfg("scoring.model", "bundle"),
        files=_write("bundle/model.json", b"{not json"),
    ),
    Case(
        "a night long after the data",
        "max_staleness_days",
        command=("score", "{config}", "--as-of", "2030-01-01"),
        config=_cfg("scoring.model", "bundle"),
    ),
    Case("at-risk before any night was scored", "score", command=("at-risk", "{config}")),
]


@pytest.fixture(scope="module")
def bundle(trained) -> Path:
    """The trained model's exported bundle, copied into each shop as `bundle/`."""
    return trained[1].export_dir


@pytest.fixture(scope="module")
def shop(generated_dir) -> dict[str, pd.DataFrame]:
    return {
        table: pd.read_parquet(generated_dir / f"{table}.parquet")
        for table in ("orders", "events", "customers")
    }


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case: Case, shop, bundle, tmp_path):
    folder = tmp_path / "shop"
    folder.mkdir()
    shutil.copytree(bundle, folder / "bundle")
    for table in ("orders", "events", "customers"):
        frame = shop[table]
        spoil = getattr(case, table)
        (spoil(frame) if spoil else frame).to_parquet(folder / f"{table}.parquet", index=False)
    raw: dict[str, Any] = {
        "data": {
            "orders": {"path": "orders.parquet"},
            "events": {"path": "events.parquet"},
            "customers": {"path": "customers.parquet", "attributes": ["loyalty_tier"]},
        },
        "model": {"seed": 11, "bootstrap_samples": 200},
        "mlflow": {"experiment": "bad-inputs", "registered_model_name": "bad"},
    }
    if case.config:
        case.config(raw)
    (folder / "churnkit.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    if case.files:
        case.files(folder)
    before = _files(tmp_path)

    args = [arg.format(config=folder / "churnkit.yaml", folder=folder) for arg in case.command]
    result = CliRunner().invoke(app, args)

    one_line_exit_2(result, case.expect.format(folder=folder))
    message = result.stderr.strip()
    if message.startswith("Usage:"):  # the command line itself: Click's one error box
        assert message.count("Error") == 1, message
    else:
        assert message.startswith("error:") and message.count("error:") == 1, message
    assert _files(tmp_path) == before, "a bad input left files behind"


def test_the_table_covers_forty_kinds_of_bad_input():
    assert len({case.name for case in CASES}) == len(CASES) >= 40


def test_event_types_with_quotes_json_and_html_go_through_every_command(
    shop, tmp_path, fresh_store
):
    """Not bad input: event types are free text in real exports. They are renamed for
    feature names (the rename is noted), and escaped wherever churnkit shows them."""
    folder = tmp_path / "shop"
    fresh_store(folder)
    hostile = {
        "email_open": 'he said "hi"',
        "nps": '{"a": 1}',
        "support_ticket": "<script>alert(1)</script>",
    }
    shop["orders"].to_parquet(folder / "orders.parquet", index=False)
    events = shop["events"].assign(event_type=shop["events"]["event_type"].replace(hostile))
    events.to_parquet(folder / "events.parquet", index=False)
    raw = {
        "data": {"orders": {"path": "orders.parquet"}, "events": {"path": "events.parquet"}},
        "model": {"seed": 11, "bootstrap_samples": 100},
        "mlflow": {"experiment": "hostile", "registered_model_name": "hostile"},
    }
    config = folder / "churnkit.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    runner = CliRunner()
    for args in (
        ["train", str(config)],
        ["--quiet", "score", str(config)],
        ["report", str(config), "--out", str(folder / "report.html")],
        ["at-risk", str(config), "--format", "csv", "--out", str(folder / "list.csv")],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code in (0, 3), (args, result.output)  # 3: the quality gate
        assert "Traceback" not in result.output
    report = (folder / "report.html").read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in report
    listed = pd.read_csv(folder / "list.csv")
    reasons = " ".join(listed.filter(like="reason").fillna("").to_numpy().ravel())
    assert "he said" in reasons  # the renamed type still reads as itself in reasons
