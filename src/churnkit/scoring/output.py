"""Atomic, locked, partitioned scoring output: ``<output_dir>/as_of=YYYY-MM-DD/``.

A partition holds ``scores.parquet``, ``at_risk.csv`` and ``manifest.json``. It is
written into a temporary folder beside the target and renamed into place, so readers
see the old partition or the new one, never a half-written file. A lock file stops a
second run from writing the same partition at the same time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnkit.errors import PartitionLockedError

__all__ = ["partition_dir", "partition_lock", "write_partition"]

SCORES_FILE = "scores.parquet"
AT_RISK_FILE = "at_risk.csv"
MANIFEST_FILE = "manifest.json"


def partition_dir(output_dir: Path, as_of: dt.date) -> Path:
    """The folder of one ``as_of`` partition."""
    return output_dir / f"as_of={as_of.isoformat()}"


@contextlib.contextmanager
def partition_lock(output_dir: Path, as_of: dt.date) -> Iterator[Path]:
    """Hold an exclusive lock on a partition; a lock left by a dead process is taken over.

    Raises
    ------
    PartitionLockedError
        When a live process holds the lock, naming its pid.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    lock = output_dir / f".as_of={as_of.isoformat()}.lock"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = _lock_holder(lock)
            if holder is not None and _alive(holder):
                raise PartitionLockedError(
                    f"partition {partition_dir(output_dir, as_of)} is being written by process "
                    f"{holder} (lock {lock}); wait for it to finish, or remove the lock file if "
                    "that process is gone"
                ) from None
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(str(os.getpid()))
        break
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)


def write_partition(
    ranked: pd.DataFrame,
    output_dir: Path,
    *,
    as_of: dt.date,
    manifest: Mapping[str, Any],
) -> Path:
    """Write one partition atomically, replacing an existing one for the same ``as_of``.

    The data files are byte-identical for identical input; ``manifest.json`` also
    records what produced them.
    """
    final = partition_dir(output_dir, as_of)
    with partition_lock(output_dir, as_of):
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=output_dir))
        try:
            table = pa.Table.from_pandas(ranked, preserve_index=False)
            pq.write_table(table, tmp / SCORES_FILE, compression="zstd")
            ranked.to_csv(tmp / AT_RISK_FILE, index=False, float_format="%.6f", lineterminator="\n")
            (tmp / MANIFEST_FILE).write_text(
                json.dumps(dict(manifest), indent=2, sort_keys=True, default=str) + "\n",
                encoding="utf-8",
            )
            _fsync_dir(tmp)
            _swap_into_place(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final


def _swap_into_place(tmp: Path, final: Path) -> None:
    if not final.exists():
        tmp.rename(final)
        return
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    final.rename(old)
    try:
        tmp.rename(final)
    except OSError:
        old.rename(final)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    for child in path.iterdir():
        with open(child, "rb") as handle:
            os.fsync(handle.fileno())


def _lock_holder(lock: Path) -> int | None:
    try:
        return int(lock.read_text().strip() or "0") or None
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
