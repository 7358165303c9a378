"""Out-of-time splits of a snapshot grid: train, then validation, then test.

Validation (early stopping) and test snapshots are the last ones of the grid. A
training snapshot is kept only when its label window ``[as_of, as_of + horizon)`` ends
on or before the first validation ``as_of``, so no training label looks into the
period the model is validated on. There are no random row splits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from churnkit.errors import DataError
from churnkit.features.snapshots import label_window_end

__all__ = ["SnapshotSplit", "split_snapshots"]


@dataclass(frozen=True)
class SnapshotSplit:
    """Snapshot dates of each part of an out-of-time split."""

    train: tuple[dt.date, ...]
    validation: tuple[dt.date, ...]
    test: tuple[dt.date, ...]

    def part_of(self, as_of: dt.date) -> str | None:
        """``train``, ``validation``, ``test``, or None for a snapshot left out."""
        for part in ("train", "validation", "test"):
            if as_of in getattr(self, part):
                return part
        return None


def split_snapshots(
    as_of_dates: Sequence[dt.date], *, horizon_days: int, n_validation: int, n_test: int
) -> SnapshotSplit:
    """Split snapshot dates out of time; see the module docstring.

    Raises
    ------
    DataError
        When no training snapshot's label window ends before the first validation date.
    """
    dates = sorted(set(as_of_dates))
    if len(dates) < n_validation + n_test + 1:
        raise DataError(
            f"{len(dates)} snapshot(s) cannot be split into training, {n_validation} "
            f"validation and {n_test} test snapshot(s)"
        )
    test = dates[len(dates) - n_test :]
    validation = dates[len(dates) - n_test - n_validation : len(dates) - n_test]
    first_validation = validation[0]
    train = [
        d
        for d in dates[: len(dates) - n_test - n_validation]
        if label_window_end(d, horizon_days) <= first_validation
    ]
    if not train:
        raise DataError(
            f"no training snapshot has its {horizon_days}-day label window end by the first "
            f"validation as_of {first_validation} (snapshots {dates[0]} .. {dates[-1]}); "
            "add older data or lower `snapshots.horizon_days`"
        )
    return SnapshotSplit(train=tuple(train), validation=tuple(validation), test=tuple(test))
