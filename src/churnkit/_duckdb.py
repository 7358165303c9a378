"""One way to open DuckDB inside churnkit."""

from __future__ import annotations

import duckdb


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection without the progress bar (it prints to stdout)."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    return con
