"""One way to open DuckDB inside churnkit."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import duckdb


def connect(settings: Mapping[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection without the progress bar (it prints to stdout).

    ``settings`` are DuckDB options such as ``memory_limit`` or ``temp_directory``;
    None values are left at DuckDB's defaults.
    """
    options = {
        key: str(value) if isinstance(value, PurePath) else value
        for key, value in (settings or {}).items()
        if value is not None
    }
    try:
        return duckdb.connect(config={"enable_progress_bar": False, **options})
    except duckdb.InvalidInputException:
        # inside Jupyter, DuckDB refuses to change the setting without ipywidgets; its
        # notebook progress bar does not print to stdout, so the default is fine there
        return duckdb.connect(config=options)
