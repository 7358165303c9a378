"""Readers and the data contract: every table enters churnkit through here."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from churnkit.config import DataConfig
from churnkit.data.contract import validate_customers, validate_events, validate_orders
from churnkit.data.readers import RawTable, read_table

__all__ = ["RawTable", "Tables", "load_data", "load_orders", "read_table", "summarise_orders"]


@dataclass(frozen=True)
class Tables:
    """The validated tables of one data set; events and customers are optional."""

    orders: pd.DataFrame
    events: pd.DataFrame | None = None
    customers: pd.DataFrame | None = None


def load_orders(cfg: DataConfig) -> pd.DataFrame:
    """Read and validate the orders table named by the config."""
    raw = read_table(cfg.orders, name="orders", timezone=cfg.timezone, config_file=cfg.config_file)
    return validate_orders(raw, cfg)


def load_data(cfg: DataConfig) -> Tables:
    """Read and validate orders and, when configured, events and customers."""
    orders = load_orders(cfg)
    events = customers = None
    if cfg.events is not None:
        raw = read_table(
            cfg.events, name="events", timezone=cfg.timezone, config_file=cfg.config_file
        )
        events = validate_events(raw)
    if cfg.customers is not None:
        raw = read_table(
            cfg.customers,
            name="customers",
            timezone=cfg.timezone,
            config_file=cfg.config_file,
            extra_columns=cfg.customers.attributes,
        )
        customers = validate_customers(raw)
    return Tables(orders=orders, events=events, customers=customers)


def summarise_orders(orders: pd.DataFrame) -> dict[str, object]:
    """Rows, customers and date range of an orders table, for logs and the run."""
    return {
        "orders": len(orders),
        "customers": int(orders["customer_id"].nunique()),
        "first_order_at": orders["ordered_at"].min().isoformat(),
        "last_order_at": orders["ordered_at"].max().isoformat(),
    }
