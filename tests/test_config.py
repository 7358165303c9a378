"""Config loading: frozen, strict, paths relative to the file; every example loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from churnkit.config import load_config
from churnkit.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "configs").glob("*.yaml"))


def _write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "cfg" / "train.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_there_are_example_configs():
    assert [p.name for p in EXAMPLES] == ["demo.yaml", "spark-local.yaml"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_config_loads(path):
    cfg = load_config(path)
    assert cfg.data.orders.path.is_absolute()
    assert cfg.project_dir == REPO


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    path = _write(tmp_path, {"data": {"orders": {"path": "../data/orders.csv"}}})
    cfg = load_config(path)
    assert cfg.data.orders.path == (tmp_path / "data" / "orders.csv").resolve()
    assert cfg.data.orders.resolved_format == "csv"
    assert cfg.scoring.output_dir == (tmp_path / "cfg" / "scores").resolve()
    assert cfg.project_dir == (tmp_path / "cfg").resolve()


def test_a_misspelt_key_fails_naming_it(tmp_path):
    path = _write(tmp_path, {"data": {"orders": {"path": "o.parquet"}}, "snapshot": {}})
    with pytest.raises(ConfigError, match=r"`snapshot`: unknown key"):
        load_config(path)


def test_an_unknown_canonical_column_fails_listing_the_allowed_ones(tmp_path):
    raw = {"data": {"orders": {"path": "o.parquet", "columns": {"total": "amount"}}}}
    with pytest.raises(
        ConfigError, match=r"data.orders.columns.*unknown canonical column\(s\) \['total'\]"
    ):
        load_config(_write(tmp_path, raw))


def test_bad_values_and_missing_files_are_config_errors(tmp_path):
    raw = {"data": {"orders": {"path": "o.parquet"}, "timezone": "Mars/Olympus"}}
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        load_config(_write(tmp_path, raw))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_configs_are_frozen(tmp_path):
    cfg = load_config(_write(tmp_path, {"data": {"orders": {"path": "o.parquet"}}}))
    with pytest.raises(Exception, match="frozen"):
        cfg.snapshots.horizon_days = 3  # type: ignore[misc]
