"""Files a person or a scheduler reads: written whole or not at all, in the format the
suffix names.

Every file churnkit writes goes through :func:`write_file`: a hidden temporary file
beside the target, renamed into place, so a reader sees the old file or the new one and
never half of one (a partition folder is swapped the same way by
:func:`churnkit.scoring.output.write_atomically`). CSV meant for spreadsheets is made
safe first (:func:`csv_safe`). This module imports no model code, so commands that only
read data (``features``, ``kpis``) start fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from churnkit.errors import ChurnkitError

__all__ = ["FORMULA_START", "csv_safe", "table_format", "table_text", "write_file", "write_table"]

_TABLE_FORMATS = {".csv": "csv", ".json": "json", ".parquet": "parquet", ".pq": "parquet"}


def table_format(path: Path) -> str:
    """``csv``, ``json`` or ``parquet`` by the file's suffix; others are refused (before
    any work is done, when called first)."""
    fmt = _TABLE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ChurnkitError(
            f"cannot tell the format of {str(path)!r} from its suffix; end it in .csv, .json "
            "or .parquet"
        )
    return fmt


def table_text(frame: pd.DataFrame, fmt: str) -> str:
    """``frame`` as CSV (floats to 6 decimals, text that would start a spreadsheet
    formula behind an apostrophe, see :func:`csv_safe`) or as JSON records (ISO dates)."""
    if fmt == "csv":
        text = {c: frame[c] for c in frame.columns if pd.api.types.is_string_dtype(frame[c])}
        safe = {
            c: values.where(~values.astype("string").str.match(FORMULA_START).fillna(False),
                            "'" + values.astype("string"))
            for c, values in text.items()
        }  # fmt: skip
        return frame.assign(**safe).to_csv(index=False, float_format="%.6f", lineterminator="\n")
    return frame.to_json(orient="records", indent=1, date_format="iso") + "\n"


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` as CSV, JSON or Parquet by the suffix, atomically."""
    fmt = table_format(path)
    if fmt == "parquet":
        return write_file(path, lambda tmp: frame.to_parquet(tmp, index=False))
    return write_file(path, lambda tmp: tmp.write_text(table_text(frame, fmt), encoding="utf-8"))


def write_file(path: Path, write: Callable[[Path], None]) -> Path:
    """Let ``write`` fill a hidden temporary file beside ``path``, then rename it into
    place: a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# a spreadsheet runs a cell that starts with one of these as a formula (CSV injection)
FORMULA_START = r"^[=+\-@\t\r]"


def csv_safe(table: pa.Table, decimals: int = 6) -> pa.Table:
    """``table`` for a CSV that people open: floats rounded, text made spreadsheet-safe.

    Arrow writes the shortest text that reads back as the same float, so rounded values
    stay short (``0.984824``, ``3127.73``); ``scores.parquet`` keeps full precision. A
    text cell that a spreadsheet would run as a formula (it starts with ``=``, ``+``,
    ``-``, ``@``, a tab or a carriage return: a customer id ``=HYPERLINK(...)``, say)
    gets a leading apostrophe, the usual convention (OWASP); ``scores.parquet`` keeps
    the value as it is.
    """
    for i, field in enumerate(table.schema):
        if pa.types.is_floating(field.type):
            table = table.set_column(i, field, pc.round(table.column(i), decimals))
        elif pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            column = table.column(i)
            risky = pc.fill_null(pc.match_substring_regex(column, FORMULA_START), False)
            if not pc.any(risky).as_py():  # the usual case: copying 524k cells took 0.3 s
                continue
            quote, empty = pa.scalar("'", column.type), pa.scalar("", column.type)
            safe = pc.if_else(risky, pc.binary_join_element_wise(quote, column, empty), column)
            table = table.set_column(i, field, safe)
    return table
