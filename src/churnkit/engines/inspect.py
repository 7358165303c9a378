"""`churnkit init`: look at a shop's exports and guess the config that reads them.

For each file (CSV or Parquet) DuckDB reads a sample: for CSV its encoding (UTF-8, else
Windows-1252), separator and timestamp format (DuckDB's ``sniff_csv``) and a decimal
comma in the amounts. The table's role follows from its columns (an amount and a time:
orders; a time and no amount: events; neither: customers), and each canonical column
from the names shops use (``household_key`` is a customer id, ``BASKET_ID`` an order id)
and the column types. Order lines are recognised by a repeating order id; status values
are mapped by their words. Everything guessed is said, in the config's comments and on
screen, and nothing that can be inferred is asked.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from churnkit._duckdb import connect
from churnkit.engines.duckdb import as_utf8, csv_files, is_csv, visible
from churnkit.errors import ConfigError

__all__ = ["TableGuess", "config_text", "guess_tables"]

_SAMPLE_ROWS = 50_000
_ID = r"(_?(id|key|no|nr|number|code))"
_NAMES: dict[str, str] = {
    "customer_id": rf"^(customer|cust|client|household|user|member|buyer|account|shopper|kunde)"
    rf"{_ID}?$",
    "order_id": rf"^(order|basket|receipt|transaction|invoice|cart|bestellung){_ID}$",
    "product_id": rf"^(product|sku|item|article|artikel){_ID}?$",
    "amount": r"^(amount|total|sales?_?value|sales|revenue|price|spend|net_?amount|gross|"
    r"order_?total|line_?total|turnover|umsatz|betrag)$",
    "quantity": r"^(qty|quantity|units|menge|anzahl)$",
    "category": r"^(category|categories|department|dept|commodity|product_?category|"
    r"kategorie|warengruppe)",
    "channel": r"^(channel|platform|sales_?channel|kanal)$",
    "status": r"^(status|state|order_?status)$",
    "event_type": r"^(event_?type|event|type|kind|action|activity|event_?name)$",
    "value": r"^(value|score|rating)$",
}
_TIME = r"(date|time|_at$|_ts$|timestamp|day|datum|zeit)"
_STATUS_WORDS = {
    "completed": (
        "complet",
        "paid",
        "deliver",
        "ship",
        "success",
        "ok",
        "done",
        "fulfil",
        "bezahlt",
        "geliefert",
    ),
    "returned": ("return", "refund", "retour"),
    "cancelled": ("cancel", "void", "fail", "storn", "abort"),
}
_TIMESTAMPS = {"TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "DATE", "TIMESTAMP_NS", "TIMESTAMP_MS"}


@dataclass
class TableGuess:
    """The config of one table, and the lines of what was guessed."""

    role: str
    path: Path
    options: dict[str, str] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)  # canonical -> the file's name
    status_values: dict[str, str] = field(default_factory=dict)
    attributes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unread: str = ""  # why a column named like an amount was not read as one


def guess_tables(paths: list[Path]) -> dict[str, TableGuess]:
    """A guess per role (orders, events, customers) from the files given.

    A folder is one table when its files are all Parquet with the same columns, or all
    CSV with the same header (a table written in parts, a CSV per month say); otherwise
    each file or folder in it is an export of its own,
    and when two of them look like the same table, the one named after the table is
    taken (``customers.parquet`` over ``truth.parquet``) and the other is said to be
    left out.

    Raises
    ------
    ConfigError
        When a file is missing or unreadable, no file looks like orders, or two given
        files look like the same table.
    """
    con = connect()
    guesses: dict[str, TableGuess] = {}
    for given in paths:
        if not given.exists():
            raise ConfigError(f"{str(given)!r} does not exist")
        for path in _exports(con, given):
            guess = _guess(con, path)
            kept = guesses.get(guess.role)
            if kept is not None:
                guess = _one_of(kept, guess, folder=given if path != given else None)
            guesses[guess.role] = guess
    if "orders" not in guesses:
        raise ConfigError(
            "none of the files looks like orders (a customer id, a time and an amount): "
            + "; ".join(
                f"{g.path.name} looks like {g.role}" + (f" ({g.unread})" if g.unread else "")
                for g in guesses.values()
            )
            + (
                ". Export amounts as plain numbers (1234.50, or 1234,50 with a decimal comma)"
                if any(g.unread for g in guesses.values())
                else ""
            )
        )
    return guesses


def _is_data(path: Path) -> bool:
    return is_csv(path) or path.suffix.lower() == ".parquet"


def _exports(con: duckdb.DuckDBPyConnection, path: Path) -> list[Path]:
    """The exports ``path`` stands for: itself when a file or a folder of one table's
    parts (see :func:`guess_tables`), else each data file or folder in it."""
    if not path.is_dir():
        return [path]
    files = [f for f in sorted(path.rglob("*")) if f.is_file() and _is_data(f) and visible(f)]
    if not files:
        raise ConfigError(f"{str(path)!r} holds no CSV or Parquet file")
    parquet = all(f.suffix.lower() == ".parquet" for f in files)
    if parquet and len({tuple(_read(con, f).columns) for f in files}) == 1:
        return [path]
    if all(map(is_csv, files)) and len({_header(f) for f in files}) == 1:
        return [path]  # a table exported in parts, e.g. a CSV per month
    return [
        entry
        for entry in sorted(path.iterdir())
        if visible(entry) and (entry.is_dir() or _is_data(entry))
    ]


def _one_of(kept: TableGuess, new: TableGuess, *, folder: Path | None) -> TableGuess:
    """Of two exports that look like the same table, the one named after it, when they
    came from one folder and only one is; else refuse."""
    named = [g for g in (kept, new) if g.role in g.path.stem.lower()]
    if folder is None or len(named) != 1:
        raise ConfigError(
            f"{new.path.name} and {kept.path.name} both look like the {new.role} table; "
            "give one file per table"
        )
    chosen, other = named[0], new if named[0] is kept else kept
    chosen.notes.append(
        f"{other.path.name} in {folder.name}/ looks like a {new.role} table too and was left "
        "out (pass the files themselves to choose)"
    )
    return chosen


def _read(con: duckdb.DuckDBPyConnection, path: Path) -> duckdb.DuckDBPyRelation:
    """A Parquet file or folder of parts, refused in one line when it cannot be read."""
    target = str(path / "**" / "*.parquet") if path.is_dir() else str(path)
    try:
        return con.read_parquet(target)
    except duckdb.Error as err:
        first = str(err).strip().splitlines()[0]
        raise ConfigError(
            f"{path.name}: cannot be read as Parquet ({first}); give CSV or Parquet exports"
        ) from err


def _guess(con: duckdb.DuckDBPyConnection, path: Path) -> TableGuess:
    given = path  # the file, or the folder of a table in parts
    options: dict[str, str] = {}
    notes: list[str] = []
    unread = ""  # why a column named like an amount is not read as one
    parts = [path]
    if path.is_dir() and not any(path.rglob("*.parquet")):  # a table in CSV parts
        options["format"] = "csv"
        notes.append(f"a table in parts: the CSV files in {path.name}/")
        parts = csv_files(path, "the table")
        path = parts[0]
    if is_csv(path):
        encoding = _encoding(path)
        if encoding != "utf-8":
            options["encoding"] = encoding
            notes.append(f"encoding {encoding} (the file is not UTF-8)")
        sample, types, sniffed, statuses = _csv_sample(con, parts, encoding)
        if sniffed["separator"] != ",":
            options["separator"] = sniffed["separator"]
            notes.append(f"separator {sniffed['separator']!r}")
        if sniffed["timestamp_format"]:
            options["timestamp_format"] = sniffed["timestamp_format"]
            notes.append(f"dates written as {sniffed['timestamp_format']}")
    else:
        relation = _read(con, path)
        types = dict(zip(relation.columns, map(str, relation.dtypes), strict=True))
        sample = relation.limit(_SAMPLE_ROWS).df()
        statuses = _statuses(relation)
    names = {c: _normal(c) for c in sample.columns}
    columns = _named(names)
    times = [c for c in sample.columns if _is_time(sample[c], types.get(c, ""))]
    time = _first(times, lambda c: re.search(_TIME, names[c]))
    if "amount" in columns and not _numeric(sample[columns["amount"]]):
        if _decimal_comma(sample[columns["amount"]]):
            options["decimal"] = ","
            notes.append("decimal comma in the amounts")
        else:  # not an amount: said when no file turns out to be the orders
            text = sample[columns["amount"]].dropna().astype(str)
            example = text.iloc[0] if len(text) else ""
            unread = f"its {columns.pop('amount')!r} holds text such as {example!r}, not numbers"
    if "customer_id" not in columns:
        raise ConfigError(
            f"{path.name}: no column looks like a customer id; columns: {list(sample.columns)}"
        )
    one_row_each = not sample[columns["customer_id"]].dropna().duplicated().any()
    if time is not None and "amount" in columns:
        role = "orders"
        columns["ordered_at"] = time
        columns.pop("event_type", None)
        columns.pop("value", None)
    elif time is not None and not one_row_each:
        role = "events"
        columns = {k: v for k, v in columns.items() if k in ("customer_id", "event_type", "value")}
        columns["occurred_at"] = time
    else:
        role = "customers"
        columns = {"customer_id": columns["customer_id"]}
    guess = TableGuess(role, given, options, columns, notes=notes, unread=unread)
    if role == "orders":
        _orders(guess, sample, statuses)
    elif role == "events" and "event_type" not in columns:
        guess.options["event_type"] = _identifier(given.name.split(".")[0])
        notes.append(f"no event type column: every row is a {guess.options['event_type']!r} event")
    elif role == "customers":
        _customers(guess, sample, types, names)
    return guess


def _normal(column: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", column.strip().lower())


def _statuses(relation: duckdb.DuckDBPyRelation) -> dict[str, list[str]]:
    """The values (at most 50) of each column named like an order status, over the whole
    table: a status only later rows have (refunds, in a later month's file) is mapped too."""
    found = {}
    for column in relation.columns:
        if re.search(_NAMES["status"], _normal(column)):
            quoted = '"' + column.replace('"', '""') + '"'
            rows = relation.query(
                "t",
                f"SELECT DISTINCT CAST({quoted} AS VARCHAR) AS v FROM t WHERE {quoted} IS NOT "
                "NULL ORDER BY v LIMIT 50",
            ).fetchall()
            found[column] = [value for (value,) in rows]
    return found


def _orders(guess: TableGuess, sample: pd.DataFrame, statuses: dict[str, list[str]]) -> None:
    order_id = guess.columns.get("order_id")
    if order_id is not None:
        ids = sample[order_id].dropna()
        if ids.duplicated().any():
            guess.notes.append(
                f"order lines: {order_id} repeats ({len(ids):,} rows of {ids.nunique():,} "
                "orders in the sample), so rows are summed per order"
            )
    status = guess.columns.get("status")
    if status is not None:
        for value in (
            statuses.get(status) or sorted(sample[status].dropna().astype(str).unique())[:50]
        ):
            mapped = next(
                (
                    canonical
                    for canonical, words in _STATUS_WORDS.items()
                    if any(w in value.lower() for w in words)
                ),
                None,
            )
            if mapped is None:
                mapped = "completed"
                guess.notes.append(f"status {value!r} read as completed (guessed: check it)")
            guess.status_values[value] = mapped


def _customers(
    guess: TableGuess, sample: pd.DataFrame, types: dict[str, str], names: dict[str, str]
) -> None:
    for column in sample.columns:
        if column == guess.columns["customer_id"]:
            continue
        if _is_time(sample[column], types.get(column, "")) and re.search(
            r"(sign|regist|creat|join|since)", names[column]
        ):
            guess.columns.setdefault("signed_up_at", column)
        elif sample[column].dtype == object or str(sample[column].dtype) in ("str", "string"):
            distinct = sample[column].nunique()
            if 1 < distinct <= 50:
                guess.attributes.append(column)
    if guess.attributes:
        guess.notes.append(
            f"attributes {', '.join(guess.attributes)} (text columns with at most 50 values)"
        )


def config_text(guesses: dict[str, TableGuess], out: Path, files: list[Path]) -> str:
    """The config as YAML, commented with what was guessed; paths relative to ``out``."""
    lines = [
        f"# churnkit config written by `churnkit init` on {dt.date.today()} from "
        + ", ".join(p.name for p in files),
        "# What was guessed is said in the comments; check it, then run",
        f"#   churnkit validate {out.name}",
        "data:",
    ]
    for role in ("orders", "events", "customers"):
        guess = guesses.get(role)
        if guess is None:
            continue
        lines.append(f"  {role}:")
        lines += [f"    # {note}" for note in guess.notes]
        lines.append(f"    path: {json.dumps(_relative(guess.path, out.parent))}")
        lines += [f"    {key}: {json.dumps(value)}" for key, value in guess.options.items()]
        mapped = {k: v for k, v in guess.columns.items() if k != v}
        if mapped:
            lines.append("    columns:   # canonical name: the file's column")
            lines += [f"      {k}: {json.dumps(v)}" for k, v in mapped.items()]
        if guess.status_values:
            lines.append("    status_values:")
            lines += [f"      {json.dumps(k)}: {v}" for k, v in guess.status_values.items()]
        if guess.attributes:
            lines.append(f"    attributes: {json.dumps(guess.attributes)}")
    return "\n".join(lines) + "\n"


def _named(names: dict[str, str]) -> dict[str, str]:
    columns: dict[str, str] = {}
    for canonical, pattern in _NAMES.items():
        for original, name in names.items():
            if re.search(pattern, name) and original not in columns.values():
                columns[canonical] = original
                break
    return columns


def _first(columns: list[str], preferred) -> str | None:
    return next((c for c in columns if preferred(c)), columns[0] if columns else None)


def _is_time(values: pd.Series, duckdb_type: str) -> bool:
    return duckdb_type.upper() in _TIMESTAMPS or pd.api.types.is_datetime64_any_dtype(values)


def _numeric(values: pd.Series) -> bool:
    if pd.api.types.is_numeric_dtype(values):
        return True
    parsed = pd.to_numeric(values.dropna().astype(str), errors="coerce")
    return bool(len(parsed)) and parsed.notna().mean() > 0.95


def _decimal_comma(values: pd.Series) -> bool:
    text = values.dropna().astype(str)
    return bool(len(text)) and text.str.fullmatch(r"-?[\d.]*\d,\d+").mean() > 0.9


def _header(path: Path) -> bytes:
    """The first line of a CSV file (decompressed), without a byte-order mark."""
    with (gzip.open if path.name.lower().endswith(".gz") else open)(path, "rb") as handle:
        return handle.readline().removeprefix(b"\xef\xbb\xbf").strip()


def _encoding(path: Path) -> str:
    with (gzip.open if path.name.lower().endswith(".gz") else open)(path, "rb") as handle:
        head = handle.read(1 << 20)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 4:  # not just a character cut at the 1 MiB boundary
            return "cp1252"
    return "utf-8"


def _csv_sample(
    con: duckdb.DuckDBPyConnection, parts: list[Path], encoding: str
) -> tuple[pd.DataFrame, dict[str, str], dict[str, str | None], dict[str, list[str]]]:
    """The first rows of a CSV table (its first part's dialect, as sniffed), the types
    DuckDB sniffed, the dialect, and the status values of all its rows."""
    with as_utf8(parts, encoding) as files:
        sniff = con.execute("SELECT * FROM sniff_csv(?)", [str(files[0])]).df().iloc[0]
        separator = str(sniff["Delimiter"])
        types = {c["name"]: str(c["type"]) for c in sniff["Columns"]}
        fmt = sniff["TimestampFormat"] or sniff["DateFormat"]
        relation = con.read_csv([str(f) for f in files], all_varchar=True, sep=separator)
        sample = relation.limit(_SAMPLE_ROWS).df()
        statuses = _statuses(relation)
    iso = fmt in (None, "%Y-%m-%d %H:%M:%S", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S")
    dialect = {"separator": separator, "timestamp_format": None if iso else fmt}
    return sample, types, dialect, statuses


def _relative(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path.resolve(), base.resolve())
    except ValueError:  # another drive on Windows
        return str(path.resolve())


def _identifier(text: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", text.lower()).strip("_") or "event"
