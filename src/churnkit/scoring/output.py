"""Atomic, locked, partitioned scoring output: ``<output_dir>/as_of=YYYY-MM-DD/``.

A partition holds ``scores.parquet``, ``at_risk.csv`` and ``manifest.json``. It is
written into a temporary folder beside the target and renamed into place, so readers
see the old partition or the new one, never a half-written file. A lock file stops a
second run from writing the same partition at the same time.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypedDict

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from churnkit.config import Config, ScoringConfig
from churnkit.errors import ChurnkitError, ConfigError, DataError, PartitionLockedError
from churnkit.files import csv_safe
from churnkit.scoring.holdout import holdout_design
from churnkit.scoring.status import STATUSES
from churnkit.training import MODEL, SCORER_LABELS

__all__ = [
    "Manifest",
    "night_manifest",
    "scoring_manifest",
    "list_partitions",
    "partition_dir",
    "partition_lock",
    "read_partition",
    "SORTS",
    "filter_at_risk",
    "sort_list",
    "write_atomically",
    "write_partition",
]

SCORES_FILE = "scores.parquet"
AT_RISK_FILE = "at_risk.csv"
MANIFEST_FILE = "manifest.json"


class Manifest(TypedDict):
    """``manifest.json`` of a partition: what served the night and what it saw."""

    as_of: str
    engine: str
    model_name: str
    model_version: str
    run_id: str
    scorer: dict[str, Any]  # served (model or a baseline), label, fallback_reason
    feature_schema_hash: str
    feature_spec: dict[str, Any]
    horizon_days: int | None  # the model's: "churned" = no order in this many days
    rows: int
    explained_rows: int
    risk_tiers: dict[str, Any]  # config, counts per tier
    drift: dict[str, Any]  # DriftReport.to_dict()
    holdout: dict[str, Any] | None  # the design and counts of the control group, if any
    data: dict[str, Any]  # DataSummary.to_dict() and data_end
    seconds: float


def scoring_manifest(
    *,
    as_of: dt.date,
    engine: str,
    model: Any,
    cfg: ScoringConfig,
    rows: int,
    tier_counts: Mapping[str, int],
    drift: dict[str, Any],
    data: dict[str, Any],
    seconds: float,
    held_out: Mapping[str, int] | None = None,
) -> Manifest:
    """What ``manifest.json`` records about a scored night: the model or baseline that
    served it, the feature schema, rows, tiers, drift, the data and the time taken."""
    spec = model.feature_spec
    return {
        "as_of": as_of.isoformat(),
        "engine": engine,
        "model_name": model.metadata.get("model_name", ""),
        "model_version": model.metadata.get("model_version", ""),
        "run_id": model.metadata.get("run_id", ""),
        "scorer": {
            "served": model.serving or "model",
            "label": SCORER_LABELS[model.serving or MODEL],
            "fallback_reason": model.metadata.get("fallback_reason"),
        },
        "feature_schema_hash": _schema_hash(model.feature_names, spec.model_dump(mode="json")),
        "feature_spec": spec.model_dump(mode="json"),
        "horizon_days": model.metadata.get("horizon_days"),
        "rows": rows,
        "explained_rows": min(rows, cfg.explain_top or rows),
        "risk_tiers": {
            "config": cfg.risk_tiers.model_dump(mode="json"),
            "counts": {t: int(tier_counts.get(t, 0)) for t in ("high", "medium", "low")},
        },
        "drift": drift,
        "holdout": holdout_design(cfg.holdout, held_out or {}),
        "data": data,
        "seconds": round(seconds, 3),
    }


def night_manifest(
    cfg: Config, model: Any, as_of: dt.date, summary: Any, started: float
) -> Callable[[int, Mapping[str, int], Any], Manifest]:
    """``manifest(rows, tier_counts, drift_report, held_out)`` for a night scored with
    ``cfg``'s engine and scoring settings: the :func:`scoring_manifest`, with the data's
    ``summary`` (:class:`~churnkit.data.DataSummary`) and the seconds since ``started``
    (``time.perf_counter``)."""
    data = {**summary.to_dict(), "data_end": summary.data_end.isoformat()}

    def manifest(
        rows: int, tier_counts: Mapping[str, int], drift: Any, held_out: Mapping[str, int]
    ) -> Manifest:
        return scoring_manifest(
            as_of=as_of, engine=cfg.engine, model=model, cfg=cfg.scoring, rows=rows,
            tier_counts=tier_counts, drift=drift.to_dict(), data=data,
            seconds=time.perf_counter() - started, held_out=held_out,
        )  # fmt: skip

    return manifest


def _schema_hash(names: list[str], spec: dict[str, Any]) -> str:
    payload = json.dumps({"features": names, "spec": spec}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def partition_dir(output_dir: Path, as_of: dt.date) -> Path:
    """The folder of one ``as_of`` partition; refuses an ``output_dir`` that is a file."""
    if output_dir.exists() and not output_dir.is_dir():
        raise ConfigError(
            f"`scoring.output_dir` {output_dir} is a file, not a folder; point it at a folder "
            "(it is created when missing)"
        )
    return output_dir / f"as_of={as_of.isoformat()}"


def list_partitions(output_dir: Path) -> list[dt.date]:
    """The ``as_of`` dates of the complete partitions under ``output_dir``, oldest first.

    Temporary and lock files of running (or killed) writes start with a dot and are
    never listed.
    """
    if not output_dir.is_dir():
        return []
    dates = []
    for child in output_dir.iterdir():
        if child.name.startswith("as_of=") and (child / MANIFEST_FILE).is_file():
            try:
                dates.append(dt.date.fromisoformat(child.name.removeprefix("as_of=")))
            except ValueError:
                continue
    return sorted(dates)


def read_partition(output_dir: Path, as_of: dt.date | None = None) -> tuple[pd.DataFrame, Manifest]:
    """The scores and manifest of one partition: ``as_of``, or the latest.

    Raises
    ------
    DataError
        When there is no such partition, listing the ones that exist.
    """
    dates = list_partitions(output_dir)
    if not dates:
        raise DataError(f"no scoring partitions in {output_dir}; run `churnkit score CONFIG` first")
    chosen = dates[-1] if as_of is None else as_of
    if chosen not in dates:
        shown = ", ".join(d.isoformat() for d in dates[-5:])
        raise DataError(
            f"no scoring partition for as_of {chosen} in {output_dir}; the latest are {shown}"
        )
    folder = partition_dir(output_dir, chosen)
    manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    scored = pd.read_parquet(folder / SCORES_FILE)
    if "holdout" not in scored:  # a night scored before holdout groups existed
        scored["holdout"] = False
    for column in ("uplift", "expected_saved_value"):  # ... or before uplift models
        if column not in scored:
            scored[column] = float("nan")
    return scored, manifest


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

    ``scores.parquet`` keeps the ranking's order (by churn probability) and every
    customer; ``at_risk.csv``, the list a team opens, is in working order (``priority``)
    and leaves out the holdout group (customers not to contact). The data files are
    byte-identical for identical input; ``manifest.json`` also records what produced them.
    """

    def write(folder: Path) -> None:
        table = pa.Table.from_pandas(ranked, preserve_index=False)
        pq.write_table(table, folder / SCORES_FILE, compression="zstd")
        in_working_order = table.take(pc.sort_indices(table["priority"]))
        to_contact = in_working_order.filter(pc.invert(in_working_order["holdout"]))
        pa_csv.write_csv(csv_safe(to_contact), folder / AT_RISK_FILE)

    return write_atomically(output_dir, as_of, manifest, write)


RISK_TIERS = ("high", "medium", "low")


# --sort: the column and direction of each order of a list
SORTS = {
    "priority": (["priority"], [True]),  # saveable by value at risk, then the lapsed
    "risk": (["rank"], [True]),  # by churn probability
    "value": (["expected_value_at_risk", "rank"], [False, True]),  # value at risk, all
    "saved": (["expected_saved_value", "rank"], [False, True]),  # uplift x value
}


def sort_list(scored: pd.DataFrame, by: str) -> pd.DataFrame:
    """The list in one of the orders of :data:`SORTS`."""
    if by not in SORTS:
        raise ChurnkitError(f"--sort {by!r} is not one of {', '.join(SORTS)}")
    columns, ascending = SORTS[by]
    if by == "saved" and scored["expected_saved_value"].isna().all():
        raise ChurnkitError(
            "--sort saved needs a night scored with an uplift model: train one with "
            "`churnkit uplift CONFIG`, set `scoring.uplift_model` and score again"
        )
    return scored.sort_values(columns, ascending=ascending, kind="stable")


def filter_at_risk(
    scored: pd.DataFrame,
    *,
    segment: str | None = None,
    tier: str | None = None,
    status: str | None = None,
    min_value: float | None = None,
    include_holdout: bool = False,
) -> pd.DataFrame:
    """The rows of a scored night in one segment, risk tier and status (any case) with a
    365-day value of at least ``min_value``, without the holdout group unless
    ``include_holdout``; an unknown segment, tier or status is refused, listing the ones
    there are."""
    keep = pd.Series(True, index=scored.index) if include_holdout else ~scored["holdout"]
    if status is not None:
        if status.lower() not in STATUSES:
            raise ChurnkitError(f"--status {status!r} is not one of {', '.join(STATUSES)}")
        keep &= scored["status"] == status.lower()
    if segment is not None:
        segments = sorted(scored["segment"].unique())
        if segment.lower() not in {s.lower() for s in segments}:
            raise ChurnkitError(
                f"--segment {segment!r} is not in this list; segments: {', '.join(segments)}"
            )
        keep &= scored["segment"].str.lower() == segment.lower()
    if tier is not None:
        if tier.lower() not in RISK_TIERS:
            raise ChurnkitError(f"--tier {tier!r} is not one of {', '.join(RISK_TIERS)}")
        keep &= scored["risk_tier"] == tier.lower()
    if min_value is not None:
        keep &= scored["customer_value_365d"] >= min_value
    return scored[keep]


def write_atomically(
    output_dir: Path,
    as_of: dt.date,
    manifest: Mapping[str, Any],
    write: Callable[[Path], None],
) -> Path:
    """Under the partition's lock, let ``write`` fill a hidden temporary folder, add
    ``manifest.json``, and swap the folder into place."""
    final = partition_dir(output_dir, as_of)
    with partition_lock(output_dir, as_of):
        _recover(final)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=output_dir))
        # mkdtemp makes the folder 0700; a partition is for the BI account to read too
        tmp.chmod(0o777 & ~_umask())
        try:
            write(tmp)
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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _recover(final: Path) -> None:
    """Clean up after a write that was killed; called while holding the lock.

    A killed write leaves a hidden temporary folder (removed here). Only the fallback
    swap of :func:`_swap_into_place` can leave the old partition renamed aside; it is
    put back if the new one never arrived.
    """
    for leftover in sorted(final.parent.glob(f".{final.name}.tmp-*")):
        shutil.rmtree(leftover, ignore_errors=True)
    for old in sorted(final.parent.glob(f".{final.name}.old-*")):
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.rename(final)


def _swap_into_place(tmp: Path, final: Path) -> None:
    """Move ``tmp`` to ``final``; an existing ``final`` is exchanged in one atomic step."""
    if not final.exists():
        tmp.rename(final)
        return
    if _exchange(tmp, final):
        shutil.rmtree(tmp, ignore_errors=True)  # holds the old partition now
        return
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    final.rename(old)
    try:
        tmp.rename(final)
    except OSError:
        old.rename(final)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux ``renameat2(RENAME_EXCHANGE)``; False if unsupported."""
    renameat2 = getattr(_libc(), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    done = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return done == 0


@functools.cache
def _libc() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _fsync_dir(path: Path) -> None:
    for child in path.rglob("*"):
        if child.is_file():
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
