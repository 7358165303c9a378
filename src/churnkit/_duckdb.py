"""One way to open DuckDB inside churnkit."""

from __future__ import annotations

import duckdb


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection without the progress bar (it prints to stdout)."""
    try:
        return duckdb.connect(config={"enable_progress_bar": False})
    except duckdb.InvalidInputException:
        # inside Jupyter, DuckDB refuses to change the setting without ipywidgets; its
        # notebook progress bar does not print to stdout, so the default is fine there
        return duckdb.connect()
