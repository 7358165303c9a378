"""Shared fixtures: hand-written orders, a small generated data set, a fast MLflow store."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from churnkit.config import Config, load_config
from churnkit.data.generator import generate_data, write_generated

GENERATED_CUSTOMERS = 3000
GENERATED_SEED = 3


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in its own folder with no tracking URI from the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text)


@pytest.fixture
def hand_orders() -> pd.DataFrame:
    """Ten orders whose features at 2024-04-01 are worked out by hand in test_features."""
    rows = [
        ("A", "2024-01-01 10:00", 10.0, "completed"),
        ("A", "2024-02-15 00:00", 20.0, "completed"),
        ("A", "2024-03-20 12:00", 30.0, "completed"),
        ("A", "2024-03-25 09:00", 40.0, "returned"),
        ("A", "2024-04-01 00:00", 50.0, "completed"),  # exactly at as_of: label only
        ("B", "2023-03-01 08:00", 100.0, "completed"),
        ("B", "2024-03-31 23:59", 5.0, "completed"),
        ("B", "2024-06-29 12:00", 8.0, "completed"),  # inside the label window
        ("C", "2023-01-15 12:00", 60.0, "completed"),  # inactive: > 365 days before
        ("D", "2024-03-01 12:00", 15.0, "cancelled"),  # no qualifying order
        ("E", "2023-04-02 00:00", 70.0, "completed"),  # exactly as_of - 365 days: active
        ("E", "2024-06-30 00:00", 10.0, "completed"),  # exactly at the label window's end
    ]
    frame = pd.DataFrame(rows, columns=["customer_id", "ordered_at", "amount", "status"])
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"])
    return frame


HAND_AS_OF = dt.date(2024, 4, 1)


@pytest.fixture(scope="session")
def generated_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Orders, events and customers of a few thousand generated customers."""
    out = tmp_path_factory.mktemp("generated")
    write_generated(generate_data(GENERATED_CUSTOMERS, seed=GENERATED_SEED), out)
    return out


@pytest.fixture(scope="session")
def _migrated_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store migrated once; each test copies it (5 s -> 0.07 s)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


def write_config(project: Path, data_dir: Path, **overrides: Any) -> Path:
    """Write a training/scoring config for generated data into ``project``."""
    raw: dict[str, Any] = {
        "data": {"orders": {"path": str(data_dir / "orders.parquet")}},
        "snapshots": {"horizon_days": 90, "activity_days": 365},
        "model": {"seed": 11, "bootstrap_samples": 200},  # the default 1000 is slower
        "mlflow": {"experiment": "tests", "registered_model_name": "churn-test"},
        "scoring": {"output_dir": "scores"},
    }
    for section, values in overrides.items():
        raw.setdefault(section, {}).update(values)
    project.mkdir(parents=True, exist_ok=True)
    path = project / "churnkit.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path, generated_dir: Path, _migrated_mlflow_db: Path) -> Config:
    """A config on the generated data, with its own pre-migrated MLflow store."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(_migrated_mlflow_db, root / "mlflow.db")
    return load_config(write_config(root, generated_dir))


@pytest.fixture
def fresh_store(_migrated_mlflow_db: Path):
    """Copy the migrated store into a folder; returns a function of the folder."""

    def copy_into(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(_migrated_mlflow_db, folder / "mlflow.db"))

    return copy_into


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, generated_dir: Path, _migrated_mlflow_db):
    """One training run and one scoring run (at the data's end) shared by read-only tests.

    Returns ``(config, TrainingOutcome, ScoringOutcome)``. Tests that write must write
    to other partitions or folders, or rewrite the same bytes.
    """
    from churnkit.pipelines import run_scoring, run_training

    root = tmp_path_factory.mktemp("trained")
    shutil.copy(_migrated_mlflow_db, root / "mlflow.db")
    cfg = load_config(write_config(root, generated_dir))
    outcome = run_training(cfg, config_text="model: {seed: 11}\n")
    scoring = run_scoring(cfg)
    return cfg, outcome, scoring


@pytest.fixture
def bundle_config(trained, tmp_path, generated_dir):
    """A config that scores with the trained bundle (no MLflow) into its own folder."""
    _, outcome, _ = trained
    return write_config(
        tmp_path / "nightly",
        generated_dir,
        scoring={"model": str(outcome.export_dir), "output_dir": "scores"},
    )


def one_line_exit_2(result, *fragments: str) -> None:
    """A CLI result that failed as bad input must: exit 2, one message naming
    ``fragments``, no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr.replace("\n", " "), result.stderr


GERMAN = {
    "apparel": "Kleidung",
    "beauty": "Schönheit",
    "electronics": "Elektronik",
    "grocery": "Lebensmittel",
    "home": "Küche & Haus",
    "sports": "Sport",
}


@pytest.fixture(scope="session")
def csv_exports(tmp_path_factory):
    """The same orders as Parquet, a German spreadsheet export (also gzipped, and in two
    parts in a folder) and a US one."""
    folder = tmp_path_factory.mktemp("dialects")
    orders = generate_data(500, seed=8).orders.to_pandas()
    orders.loc[orders.index[:5], "amount"] += 1000  # thousands separators in the exports
    orders.to_parquet(folder / "orders.parquet")
    german = orders.assign(
        ordered_at=orders["ordered_at"].dt.strftime("%d.%m.%Y %H:%M:%S"),
        amount=orders["amount"].map(
            lambda x: f"{x:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".")
        ),
        category=orders["category"].map(GERMAN),
    )
    german.to_csv(folder / "bestellungen.csv", sep=";", index=False, encoding="cp1252")
    german.to_csv(folder / "bestellungen.csv.gz", sep=";", index=False, encoding="cp1252")
    (folder / "bestellungen").mkdir()  # a table exported in parts, the second gzipped
    half = len(german) // 2
    german.iloc[:half].to_csv(
        folder / "bestellungen" / "1.csv", sep=";", index=False, encoding="cp1252"
    )
    german.iloc[half:].to_csv(
        folder / "bestellungen" / "2.csv.gz", sep=";", index=False, encoding="cp1252"
    )
    us = orders.assign(
        ordered_at=orders["ordered_at"].dt.strftime("%m/%d/%Y %I:%M:%S %p"),
        amount=orders["amount"].map(lambda x: f"{x:.2f}"),
    )
    us.to_csv(folder / "orders_us.csv", index=False)
    return folder


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server of the tests' own on loopback (Debian's package, which
    `.ci/run` installs), with a database `shop`; stopped at the end of the session."""
    import glob
    import os
    import socket
    import subprocess
    import tempfile

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL is not installed; .ci/run installs Debian's postgresql package")
    bin_dir = Path(found[-1]).parent
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="churnkit-pg-"))
    folder.chmod(0o777)
    data = folder / "data"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def run(*command: str) -> None:
        subprocess.run([*as_postgres, *command], check=True, capture_output=True, timeout=120)

    run(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "churnkit", "--no-sync")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    log = str(folder / "server.log")  # the server must not hold our pipes open
    run(
        str(bin_dir / "pg_ctl"),
        "-D",
        str(data),
        "-o",
        options,
        "-l",
        log,
        "-w",
        "-t",
        "60",
        "start",
    )
    try:
        run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "churnkit", "shop")
        yield f"postgresql://churnkit@127.0.0.1:{port}/shop"
    finally:
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)
