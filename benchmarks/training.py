"""Benchmark: `churnkit train` on 12 monthly snapshots of the 1M-customer generated data.

Issue 16's target: training on 12 monthly snapshots of the 1M-customer data (10M
orders, 21M events) under a 4 GiB peak (DuckDB's memory limit plus the labelled table),
within 1.5x of the time it took before. This script runs `churnkit train` as a whole
process (reading and checking the data, features for the 12 labelled snapshots and
tonight, the walk-forward test, the final fit, calibration, MLflow logging and export)
and measures it with ``os.wait4``: wall time, CPU (user + system) and peak RSS.

The labelled snapshots are the first of each month from 2024-11-01 to 2025-10-01 (the
data ends on 2025-12-31; the last label window, 90 days, ends inside it). Each run
starts from an empty MLflow store. ``--memory-limit`` adds a ``duckdb:`` section with
that ``memory_limit`` and a spill directory.

Usage, from the repo root after `make install`:

    .venv/bin/python benchmarks/training.py --repeat 1
    .venv/bin/python benchmarks/training.py --repeat 1 --memory-limit 2GB
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from features_cli import measure  # noqa: E402
from scoring import DATA, _config, _generated  # noqa: E402

FIRST, LAST = "2024-11-01", "2025-10-01"  # 12 monthly labelled snapshots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--memory-limit", help="DuckDB memory_limit, e.g. 2GB (with spilling)")
    args = parser.parse_args()

    data = _generated(args.customers, seed=0)
    folder = DATA / f"training-{args.customers}"
    runs = []
    for i in range(args.repeat):
        shutil.rmtree(folder, ignore_errors=True)
        config = _config(folder, data)
        raw = yaml.safe_load(config.read_text())
        raw["snapshots"] = {
            "horizon_days": 90,
            "activity_days": 365,
            "frequency": "month",
            "first_as_of": FIRST,
            "last_as_of": LAST,
        }
        if args.memory_limit:
            raw["duckdb"] = {"memory_limit": args.memory_limit, "temp_directory": "duckdb-spill"}
        config.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
        command = [sys.executable, "-m", "churnkit", "--quiet", "train", str(config)]
        measured = measure(command, cwd=folder)
        runs.append(
            {
                "wall_s": round(measured["wall"], 1),
                "cpu_s": round(measured["cpu"], 1),
                "peak_gib": round(measured["peak_mib"] / 1024, 2),
            }
        )
        print(f"run {i + 1}: {runs[-1]}", flush=True)
    for key in ("wall_s", "cpu_s", "peak_gib"):
        values = [run[key] for run in runs]
        print(f"{key}: median {statistics.median(values)} of {values}")


if __name__ == "__main__":
    main()
