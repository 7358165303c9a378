"""Every table enters churnkit through here: read by an engine, checked by the contract.

:func:`open_data` reads the config's tables on an engine (:mod:`churnkit.engines`),
checks them (:mod:`churnkit.data.contract`) and returns :class:`CheckedData`, whose
summaries are Ibis expressions written once and run where the data is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from churnkit.config import DataConfig
from churnkit.data.contract import Checked, check_data

if TYPE_CHECKING:  # pragma: no cover
    import ibis.expr.types as ir

    from churnkit.engines import Engine

__all__ = ["CheckedData", "open_data"]


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

    def summary(self) -> dict[str, Any]:
        """Rows, customers and date range of the orders, for logs, runs and manifests."""
        orders = self.table("orders")
        row = self.engine.fetch(
            orders.aggregate(
                orders=orders.count(),
                customers=orders.customer_id.nunique(),
                first=orders.ordered_at.min(),
                last=orders.ordered_at.max(),
            )
        ).iloc[0]
        return {
            "orders": int(row["orders"]),
            "customers": int(row["customers"]),
            "first_order_at": pd.Timestamp(row["first"]).isoformat(),
            "last_order_at": pd.Timestamp(row["last"]).isoformat(),
        }

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

    def other_tables(self) -> dict[str, dict[str, int]]:
        """Rows and customers of the events and customers tables that are configured."""
        counts = {}
        for name in ("events", "customers"):
            if self.has(name):
                table = self.table(name)
                row = self.engine.fetch(
                    table.aggregate(rows=table.count(), customers=table.customer_id.nunique())
                ).iloc[0]
                counts[name] = {"rows": int(row["rows"]), "customers": int(row["customers"])}
        if self.has("customers"):
            buyers = self.table("orders").select("customer_id").distinct()
            absent = buyers.anti_join(self.table("customers"), "customer_id")
            missing = self.engine.fetch(absent.aggregate(n=absent.count()))["n"].iloc[0]
            counts["customers"]["buyers_not_in_table"] = int(missing)
        return counts

    def orders_frame(self) -> pd.DataFrame:
        """The checked orders collected as a pandas frame (for the retention KPIs)."""
        return self.engine.fetch(self.table("orders"))


def open_data(engine: Engine, cfg: DataConfig) -> CheckedData:
    """Read and check the config's tables on ``engine``; see :func:`check_data`."""
    return CheckedData(engine, check_data(engine, cfg))
