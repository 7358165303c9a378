"""Small Ibis helpers shared by the feature families."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir


def window_start(as_of_ts: ir.TimestampValue, days: int) -> ir.TimestampValue:
    """Inclusive start of the window ``[as_of - days, as_of)``."""
    return as_of_ts - ibis.interval(days=days)


def count_if(condition: ir.BooleanValue) -> ir.IntegerScalar:
    """Rows where ``condition`` holds (nulls count as false)."""
    # COUNT ... FILTER is BIGINT; a SUM of BIGINT becomes HUGEINT (float in pandas) on DuckDB
    holds = condition.fill_null(False)
    return holds.count(where=holds)


def days_since(as_of: ir.DateValue, moment: ir.TimestampValue) -> ir.IntegerValue:
    """Whole calendar days from the date of ``moment`` to ``as_of``."""
    return as_of.delta(moment.date(), unit="day")


def safe_ratio(numerator: ir.NumericValue, denominator: ir.NumericValue) -> ir.FloatingValue:
    """``numerator / denominator``, null where the denominator is 0 or null."""
    return ibis.ifelse(
        denominator.fill_null(0) == 0, ibis.null("float64"), numerator.cast("float64") / denominator
    )


_MICROS = 1_000_000


def money_micros(amount: ir.NumericValue) -> ir.IntegerValue:
    """An amount in integer millionths, so that sums are exact and order-independent.

    Parallel engines add floats in whatever order their threads finish, which changes
    the last bits of a float sum from run to run; integers add exactly.
    """
    return (amount.cast("float64") * _MICROS).round().cast("int64")


def money_sum(micros: ir.IntegerValue) -> ir.FloatingScalar:
    """Sum of micro-unit amounts, back in currency units."""
    return micros.sum().cast("float64") / _MICROS
