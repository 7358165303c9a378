"""One way to open DuckDB inside churnkit."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import PurePath
from typing import Any

import duckdb

from churnkit.errors import ResourceError


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


@contextlib.contextmanager
def memory_limit_as_error(con: duckdb.DuckDBPyConnection, doing: str) -> Iterator[None]:
    """Turn DuckDB running out of memory while ``doing`` something into a
    :class:`~churnkit.errors.ResourceError` that says which settings to change."""
    limit, threads = con.execute(
        "SELECT current_setting('memory_limit'), current_setting('threads')"
    ).fetchall()[0]
    try:
        yield
    except duckdb.OutOfMemoryException:
        fewer = ", or set `duckdb.threads: 1`, which needs less memory" if threads > 1 else ""
        plural = "s" if threads > 1 else ""
        raise ResourceError(
            f"DuckDB ran out of memory {doing} (memory_limit {limit}, {threads} thread{plural}). "
            "Raise `duckdb.memory_limit` in the config (or remove it: DuckDB then takes up "
            f"to 80 % of RAM){fewer}."
        ) from None
