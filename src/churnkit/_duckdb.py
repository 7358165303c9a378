"""One way to open DuckDB inside churnkit."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import PurePath
from typing import Any

import duckdb

from churnkit.errors import ResourceError


def connect(settings: Mapping[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection without the progress bar.

    The progress bar prints to stdout, where it would break ``--json`` output and fill
    scheduler logs. ``settings`` are DuckDB options such as ``memory_limit`` or
    ``temp_directory``; None values are left at DuckDB's defaults, except one: with
    neither ``memory_limit`` nor ``temp_directory`` set, DuckDB gets no spill directory
    and works in memory (up to 80 % of RAM). With one, DuckDB shares its memory out
    among the operators that run at once, two thirds of what is left to each in turn,
    so with several joins and aggregations some get a small share and partition their
    data as if it had to go to disk, even far below the limit: the 1M-customer feature
    query then sometimes peaked 0.5 GiB higher and ran slower. A user who sets a limit
    or a directory gets spilling as DuckDB does it.
    """
    options = {
        key: str(value) if isinstance(value, PurePath) else value
        for key, value in (settings or {}).items()
        if value is not None
    }
    if "memory_limit" not in options and "temp_directory" not in options:
        options["temp_directory"] = ""
    con = duckdb.connect(config=options)
    # DuckDB 2 takes these per connection only (not in `config`). Printing stays off even
    # if a later `SET progress_bar_time` turns the bar back on. Inside Jupyter DuckDB may
    # refuse without ipywidgets; its notebook bar does not print to stdout anyway.
    with contextlib.suppress(duckdb.InvalidInputException):
        con.execute("SET enable_progress_bar = false; SET enable_progress_bar_print = false")
    return con


@contextlib.contextmanager
def memory_limit_as_error(con: duckdb.DuckDBPyConnection, doing: str) -> Iterator[None]:
    """Turn DuckDB running out of memory while ``doing`` something into a
    :class:`~churnkit.errors.ResourceError` that says which settings to change."""
    limit, threads, spill = con.execute(
        "SELECT current_setting('memory_limit'), current_setting('threads'), "
        "current_setting('temp_directory')"
    ).fetchall()[0]
    try:
        yield
    except duckdb.OutOfMemoryException:
        fewer = ", or set `duckdb.threads: 1`, which needs less memory" if threads > 1 else ""
        plural = "s" if threads > 1 else ""
        where = f"spilling to {spill}" if spill else "no spill directory"
        fix = (
            "Raise `duckdb.memory_limit` in the config (or remove it: DuckDB then takes up "
            "to 80 % of RAM)"
            if spill
            else "Set `duckdb.temp_directory` (and `duckdb.memory_limit`) in the config so "
            "that DuckDB can spill to disk"
        )
        raise ResourceError(
            f"DuckDB ran out of memory {doing} (memory_limit {limit}, {threads} "
            f"thread{plural}, {where}). {fix}{fewer}."
        ) from None


@contextlib.contextmanager
def joins_build_as_written(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Make every hash join build its table from its right input, as written.

    DuckDB swaps the sides of a join towards the input it estimates smaller, and its
    estimates of aggregated inputs are rough: the feature query's population (wide,
    one row per customer and as_of) would become the build side of each join that adds
    a family to it, and those tables coexist. With the swap off, each join builds from
    the narrow table it adds. This is DuckDB's documented way to force join sides
    ("Join Operations" in its performance guide); the previous setting comes back after.
    """
    previous = con.execute("SELECT current_setting('disabled_optimizers')").fetchall()[0][0]
    disabled = [name for name in previous.split(",") if name] + ["build_side_probe_side"]
    con.execute(f"SET disabled_optimizers = '{','.join(disabled)}'")
    try:
        yield
    finally:
        con.execute(f"SET disabled_optimizers = '{previous}'")
