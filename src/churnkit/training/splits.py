"""Which labelled snapshots each fit may use: walk-forward tests and the deployment fit.

A *fit* is what production does with the snapshots it has: grow trees on all but the
latest ``n_validation`` of them, stop early and calibrate on those latest ones, then refit
on all of them (:mod:`churnkit.training`). A :class:`FitPlan` names those dates.

Evaluation is *walk-forward*: for each of the last ``n_backtests`` labelled dates ``T``,
a fit uses exactly the snapshots whose label window ``[as_of, as_of + horizon)`` ends on
or before ``T`` — what production would have known on ``T`` — and is scored on ``T``.
The deployment fit uses every labelled snapshot. There are no random row splits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from churnkit.config import SnapshotConfig
from churnkit.errors import DataError
from churnkit.features.snapshots import label_window_end, observed_as_of_dates

__all__ = ["FitPlan", "WalkForward", "plan_fit", "plan_for_data", "plan_walk_forward"]


@dataclass(frozen=True)
class FitPlan:
    """Snapshot dates of one fit: trees on ``fit``, early stopping and calibration on
    ``validation`` (the latest dates), then a refit on both."""

    fit: tuple[dt.date, ...]
    validation: tuple[dt.date, ...]

    @property
    def dates(self) -> tuple[dt.date, ...]:
        return self.fit + self.validation


@dataclass(frozen=True)
class WalkForward:
    """The deployment fit and, for each walk-forward test date, the fit made before it."""

    labelled: tuple[dt.date, ...]
    backtests: tuple[tuple[dt.date, FitPlan], ...]
    deployment: FitPlan

    @property
    def test(self) -> tuple[dt.date, ...]:
        """The walk-forward test dates, oldest first."""
        return tuple(date for date, _ in self.backtests)


def plan_fit(dates: Sequence[dt.date], n_validation: int) -> FitPlan:
    """Split the dates a fit may use: the latest ``n_validation`` validate, the rest fit."""
    ordered = sorted(set(dates))
    if len(ordered) < n_validation + 1:
        raise ValueError(f"a fit needs at least {n_validation + 1} snapshots, got {len(ordered)}")
    cut = len(ordered) - n_validation
    return FitPlan(fit=tuple(ordered[:cut]), validation=tuple(ordered[cut:]))


def plan_walk_forward(
    labelled: Sequence[dt.date], *, horizon_days: int, n_validation: int, n_backtests: int
) -> WalkForward:
    """The walk-forward plan of the module docstring.

    Each of the last ``n_backtests`` labelled dates becomes a test date when at least
    ``n_validation + 1`` snapshots have their label window end by it; older test dates
    without that much history are left out.

    Raises
    ------
    DataError
        When no labelled date has enough snapshots before it, naming the dates and the
        settings that would help.
    """
    dates = tuple(sorted(set(labelled)))
    needed = n_validation + 1
    backtests = []
    for test_date in dates[-n_backtests:]:
        known = [d for d in dates if label_window_end(d, horizon_days) <= test_date]
        if len(known) >= needed:
            backtests.append((test_date, plan_fit(known, n_validation)))
    if not backtests:
        span = f"{dates[0]} .. {dates[-1]}" if dates else "none"
        raise DataError(
            f"{len(dates)} labelled snapshot(s) ({span}) are too few for a walk-forward test: "
            f"a test date needs {needed} snapshots whose {horizon_days}-day label windows end "
            "by it (1 to fit, "
            f"{n_validation} to stop early). Add data, lower `snapshots.horizon_days` or "
            "`snapshots.min_history_days`, set an earlier `snapshots.first_as_of`, or use "
            "`snapshots.frequency: week` for more snapshots."
        )
    return WalkForward(
        labelled=dates,
        backtests=tuple(backtests),
        deployment=plan_fit(dates, n_validation),
    )


def plan_for_data(first_day: dt.date, data_end: dt.date, cfg: SnapshotConfig) -> WalkForward:
    """The walk-forward plan of data running from ``first_day`` to the day before
    ``data_end``, with the snapshot settings of the config."""
    return plan_walk_forward(
        observed_as_of_dates(first_day, data_end, cfg),
        horizon_days=cfg.horizon_days,
        n_validation=cfg.validation_snapshots,
        n_backtests=cfg.test_snapshots,
    )
