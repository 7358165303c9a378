"""Every table enters churnkit through here: read by an engine, checked by the contract.

:func:`open_data` reads the config's tables on an engine (:mod:`churnkit.engines`),
checks them (:mod:`churnkit.data.contract`) and returns :class:`CheckedData`, whose
summaries are Ibis expressions written once and run where the data is.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Any

import ibis
import pandas as pd

from churnkit.config import DataConfig
from churnkit.data.contract import Checked, check_data
from churnkit.errors import DataError
from churnkit.features import compact_table, table_columns
from churnkit.files import table_format, write_file, write_table

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    import ibis.expr.types as ir

    from churnkit.engines import Engine
    from churnkit.features.spec import FeatureSpec

__all__ = [
    "ROWS_PER_QUERY",
    "CheckedData",
    "DataSummary",
    "FeatureFile",
    "TableCount",
    "open_data",
]

ROWS_PER_QUERY = 1_000_000  # customer-snapshots per feature query when training


@dataclasses.dataclass(frozen=True)
class FeatureFile:
    """A feature table written for analysts: where, at which as_of, its size."""

    path: Path
    as_of: dt.date
    rows: int
    columns: list[str]


@dataclasses.dataclass(frozen=True)
class DataSummary:
    """The orders in a few figures: for logs, training runs and scoring manifests."""

    orders: int
    customers: int
    first_order_at: dt.datetime
    last_order_at: dt.datetime
    notes: tuple[str, ...] = ()  # what reading the data did that users should know
    snapshot_rows: int | None = None  # labelled rows a model was trained on

    @property
    def first_day(self) -> dt.date:
        return self.first_order_at.date()

    @property
    def data_end(self) -> dt.date:
        """The day after the latest order: the default as_of of features and scoring."""
        return self.last_order_at.date() + dt.timedelta(days=1)

    def with_(self, **changes: Any) -> DataSummary:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: timestamps as ISO text, unset fields left out."""
        values = dataclasses.asdict(self)
        values["first_order_at"] = self.first_order_at.isoformat()
        values["last_order_at"] = self.last_order_at.isoformat()
        values["notes"] = list(self.notes)
        return {key: value for key, value in values.items() if value is not None}

    def no_customers_message(self, activity_days: int, as_of: dt.date) -> str:
        """Why a night has nobody to score, and which dates would."""
        return (
            f"no customer has a qualifying order in the {activity_days} days before "
            f"{as_of}; the data runs from {self.first_day} to {self.last_order_at.date()}. "
            "Choose an --as-of inside that range."
        )


@dataclasses.dataclass(frozen=True)
class TableCount:
    """Rows and distinct customers of a table beside the orders."""

    rows: int
    customers: int
    buyers_not_in_table: int | None = None  # the customers table: buyers it lacks

    def with_(self, **changes: Any) -> TableCount:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, int]:
        """JSON-ready, unset fields left out."""
        values = dataclasses.asdict(self)
        return {key: value for key, value in values.items() if value is not None}


class CheckedData:
    """The checked tables on their engine, and what the steps above ask of them."""

    def __init__(self, engine: Engine, checked: Checked) -> None:
        self.engine = engine
        self.names = checked.names
        self.notes = checked.notes  # what the check did that the user should know

    def has(self, name: str) -> bool:
        return name in self.names

    def table(self, name: str) -> ir.Table:
        table = self.engine.table(name)
        if table is None:
            raise KeyError(name)
        return table

    def columns(self, name: str) -> list[str]:
        return list(self.table(name).columns)

    def summary(self) -> DataSummary:
        """Rows, customers and date range of the orders, and the notes of the check."""
        orders = self.table("orders")
        row = self.engine.fetch(
            orders.aggregate(
                orders=orders.count(),
                customers=orders.customer_id.nunique(),
                first=orders.ordered_at.min(),
                last=orders.ordered_at.max(),
            )
        ).iloc[0]
        return DataSummary(
            orders=int(row["orders"]),
            customers=int(row["customers"]),
            first_order_at=pd.Timestamp(row["first"]).to_pydatetime(),
            last_order_at=pd.Timestamp(row["last"]).to_pydatetime(),
            notes=tuple(self.notes),
        )

    def event_types(self) -> list[str]:
        """The distinct event types, the most frequent first (ties by name); empty
        without an events table."""
        if not self.has("events"):
            return []
        events = self.table("events")
        counts = self.engine.fetch(
            events.filter(events.event_type.notnull())
            .group_by("event_type")
            .aggregate(n=lambda t: t.count())
        )
        counts = counts.assign(event_type=counts["event_type"].astype(str))
        return counts.sort_values(["n", "event_type"], ascending=[False, True])[
            "event_type"
        ].tolist()

    def other_tables(self) -> dict[str, TableCount]:
        """Rows and customers of the events, customers and contacts tables that are
        configured; for the customers table, the buyers it lacks too."""
        counts = {}
        for name in ("events", "customers", "contacts"):
            if self.has(name):
                table = self.table(name)
                row = self.engine.fetch(
                    table.aggregate(rows=table.count(), customers=table.customer_id.nunique())
                ).iloc[0]
                counts[name] = TableCount(int(row["rows"]), int(row["customers"]))
        if self.has("customers"):
            buyers = self.table("orders").select("customer_id").distinct()
            absent = buyers.anti_join(self.table("customers"), "customer_id")
            missing = self.engine.fetch(absent.aggregate(n=absent.count()))["n"].iloc[0]
            counts["customers"] = counts["customers"].with_(buyers_not_in_table=int(missing))
        return counts

    def horizon_revenue(self, as_of: dt.date, horizon_days: int) -> pd.DataFrame:
        """``customer_id`` and ``revenue``: the amounts of the completed orders each
        customer placed in ``[as_of, as_of + horizon_days)`` (customers with none left out)."""
        orders = self.table("orders")
        start = ibis.literal(pd.Timestamp(as_of).to_pydatetime())
        inside = orders.filter(
            orders.ordered_at >= start,
            orders.ordered_at < start + ibis.interval(days=horizon_days),
        )
        if "status" in inside.columns:
            inside = inside.filter(inside.status == "completed")
        return self.engine.fetch(
            inside.group_by("customer_id").aggregate(revenue=inside.amount.sum())
        )

    def contacts_in(self, as_of: dt.date, horizon_days: int) -> pd.DataFrame | None:
        """``customer_id``, ``play`` (of the first contact) and ``cost`` (summed) of the
        customers contacted in ``[as_of, as_of + horizon_days)``; None without a contacts
        table."""
        if not self.has("contacts"):
            return None
        contacts = self.table("contacts")
        start = ibis.literal(pd.Timestamp(as_of).to_pydatetime())
        inside = contacts.filter(
            contacts.contacted_at >= start,
            contacts.contacted_at < start + ibis.interval(days=horizon_days),
        )
        play = (
            inside.play.fill_null("(no play)").argmin(inside.contacted_at)
            if "play" in inside.columns
            else ibis.literal("contacted")
        )
        cost = inside.cost.sum() if "cost" in inside.columns else ibis.null("float64")
        return self.engine.fetch(
            inside.group_by("customer_id").aggregate(play=play, cost=cost).order_by("customer_id")
        )

    def close(self) -> None:
        """Close the engine (see :meth:`churnkit.engines.Engine.close`)."""
        self.engine.close()

    def orders_frame(self) -> pd.DataFrame:
        """The checked orders collected as a pandas frame (for the retention KPIs)."""
        return self.engine.fetch(self.table("orders"))

    def features(
        self, as_of_dates: list[dt.date], spec: FeatureSpec, *, horizon_days: int | None = None
    ) -> pd.DataFrame:
        """The feature table of ``spec`` at each date (and labels with ``horizon_days``),
        computed where the data is and collected as pandas."""
        self._check_tables(spec)
        return self.engine.features(as_of_dates, spec, horizon_days=horizon_days)

    def write_features(self, as_of: dt.date, spec: FeatureSpec, out: Path) -> FeatureFile:
        """Write the feature table of ``spec`` at ``as_of`` to ``out`` (Parquet, CSV or
        JSON by the suffix, whole or not at all).

        Parquet is written by the engine itself, the values and types of :meth:`features`
        without passing through pandas (at 1M customers that saved about 1 s of CPU and
        0.3 GiB of peak memory); CSV and JSON go through :meth:`features`.
        """
        self._check_tables(spec)
        rows = 0
        if table_format(out) != "parquet":
            frame = self.features([as_of], spec)
            write_table(frame, out)
            rows = len(frame)
        else:

            def write(tmp: Path) -> None:
                nonlocal rows
                rows = self.engine.write_features(as_of, spec, tmp)

            write_file(out, write)
        return FeatureFile(out, as_of, rows, table_columns(spec))

    def _check_tables(self, spec: FeatureSpec) -> None:
        needs = {"engagement": "events", "attributes": "customers"}
        for family, table in needs.items():
            if spec.has(family) and not self.has(table):
                raise DataError(
                    f"the model uses {family} features, but the config has no `data.{table}` "
                    f"table; add it, or score with a model trained without {table}"
                )

    def training_features(
        self,
        as_of_dates: list[dt.date],
        spec: FeatureSpec,
        *,
        horizon_days: int | None,
        customers: int,
        rows_per_query: int = ROWS_PER_QUERY,
    ) -> pd.DataFrame:
        """The feature tables training uses: :meth:`features` (with labels when
        ``horizon_days`` is given) in :func:`~churnkit.features.compact_features` form,
        ordered by as_of and customer.

        The snapshots are built a few per query, each query about ``rows_per_query``
        customer-snapshots at most (``customers`` per snapshot), and each part is made
        compact before the next is built (:func:`~churnkit.features.compact_table`): the
        engine then holds one part at a time instead of the whole table, and the table
        itself about a third of the memory.
        Small data takes one query, as :meth:`features` does; every split gives the same
        features.
        """
        dates = sorted(set(as_of_dates))
        step = max(1, rows_per_query // max(1, customers))
        parts = (
            self.features(dates[i : i + step], spec, horizon_days=horizon_days)
            for i in range(0, len(dates), step)
        )
        return compact_table(parts, spec)


def open_data(engine: Engine, cfg: DataConfig) -> CheckedData:
    """Read and check the config's tables on ``engine``; see :func:`check_data`."""
    with engine.running("checking the data contract"):
        return CheckedData(engine, check_data(engine, cfg))
