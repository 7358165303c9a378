"""The data contract of DESIGN section 2, checked once at the boundary.

Every problem is collected (pandera's lazy validation plus the values the reader
could not parse) and reported in one :class:`~churnkit.errors.DataError` with counts
and a few example values. Bad rows are never dropped silently: either the config says
how to treat them (``on_negative_amount: treat_as_return``) or the run stops.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from churnkit.config import ORDER_STATUSES, DataConfig
from churnkit.data.readers import RawTable
from churnkit.errors import DataError

__all__ = ["validate_customers", "validate_events", "validate_orders"]

_EXAMPLES = 3


def validate_orders(raw: RawTable, cfg: DataConfig) -> pd.DataFrame:
    """Check the orders table and return it with canonical names and types.

    ``status`` is mapped through ``data.orders.status_values`` to completed, returned
    or cancelled. Without a status column every order counts as completed and the
    returns features are off, unless ``on_negative_amount: treat_as_return`` is set:
    then a status column is made, with negative amounts as returns. Otherwise negative
    amounts must be marked as returns.

    Raises
    ------
    DataError
        Listing every violation with counts and examples.
    """
    frame = raw.frame.copy()
    problems = list(raw.parse_problems)
    mapping = cfg.orders.status_values
    if "status" in frame:
        unknown = frame["status"].notna() & ~frame["status"].isin(list(mapping))
        if unknown.any():
            values = sorted(frame.loc[unknown, "status"].astype(str).unique())
            problems.append(
                f"orders.status: {int(unknown.sum())} row(s) have values {values[:5]} that "
                "`data.orders.status_values` does not map to completed/returned/cancelled"
            )
        frame["status"] = frame["status"].map(mapping)
    elif cfg.on_negative_amount == "treat_as_return":
        frame["status"] = "completed"
    negative = frame["amount"] < 0
    if cfg.on_negative_amount == "treat_as_return":
        frame.loc[negative, "status"] = "returned"
    else:
        marked = frame["status"] == "returned" if "status" in frame else False
        bad = frame.loc[negative & ~marked, "amount"]
        if len(bad):
            problems.append(
                f"orders.amount: {len(bad)} negative amount(s) on orders not marked as returns, "
                f"e.g. {bad.head(_EXAMPLES).tolist()}; mark them in the status column or set "
                "`data.on_negative_amount: treat_as_return`"
            )
    if "status" in frame:
        frame["status"] = pd.Categorical(frame["status"], categories=list(ORDER_STATUSES))

    columns = {
        "customer_id": pa.Column(str, nullable=False),
        "ordered_at": pa.Column("datetime64[us]", nullable=False, coerce=True),
        "amount": pa.Column(float, nullable=False),
    }
    if "order_id" in frame:
        columns["order_id"] = pa.Column(str, nullable=False, unique=True, report_duplicates="all")
    schema = pa.DataFrameSchema(columns, strict=False, name="orders")
    return _validate(raw.name, frame, schema, problems)


def validate_events(raw: RawTable) -> pd.DataFrame:
    """Check the events table: ids, timestamps and event types present."""
    schema = pa.DataFrameSchema(
        {
            "customer_id": pa.Column(str, nullable=False),
            "occurred_at": pa.Column("datetime64[us]", nullable=False, coerce=True),
            "event_type": pa.Column(str, nullable=False),
        },
        name="events",
    )
    return _validate(raw.name, raw.frame, schema, list(raw.parse_problems))


def validate_customers(raw: RawTable) -> pd.DataFrame:
    """Check the customers table: one row per non-null customer id."""
    schema = pa.DataFrameSchema(
        {"customer_id": pa.Column(str, nullable=False, unique=True, report_duplicates="all")},
        name="customers",
    )
    return _validate(raw.name, raw.frame, schema, list(raw.parse_problems))


def _validate(
    name: str, frame: pd.DataFrame, schema: pa.DataFrameSchema, problems: list[str]
) -> pd.DataFrame:
    if frame.empty:
        problems.append(f"{name}: the table has no rows")
    else:
        try:
            frame = schema.validate(frame, lazy=True)
        except SchemaErrors as err:
            unparsable = {p.split(":")[0].split(".", 1)[-1] for p in problems}
            problems += _summarise(name, err.failure_cases, unparsable)
    if problems:
        header = f"{name} breaks the data contract ({len(problems)} problem(s)):"
        raise DataError("\n  - ".join([header, *problems]))
    return frame


def _summarise(name: str, cases: pd.DataFrame, unparsable: set[str]) -> list[str]:
    lines = []
    cases = cases.assign(
        column=cases["column"].fillna("(table)").astype(str),
        check=cases["check"].fillna("").astype(str),
    )
    for (column, check), group in cases.groupby(["column", "check"], sort=True, observed=True):
        examples = group["failure_case"].dropna().astype(str).unique()[:_EXAMPLES].tolist()
        what = _CHECK_WORDS.get(check.split("(")[0], check)
        if what == "null values" and column in unparsable:
            what = "null values (including the unparsable ones above)"
        where = f"{name}.{column}" if column != "(table)" and column != name else name
        rows = group["index"].dropna().unique()[:_EXAMPLES].tolist()
        example_text = f", e.g. {examples}" if examples else ""
        row_text = f" (rows {rows})" if rows and column in ("(table)", name) else ""
        lines.append(f"{where}: {len(group)} failure(s): {what}{example_text}{row_text}")
    return lines


_CHECK_WORDS = {
    "not_nullable": "null values",
    "field_uniqueness": "duplicate values",
    "column_in_dataframe": "column missing",
}
