"""Benchmark: `churnkit features` as a whole process against a hand-written floor.

Issue 16's target: `churnkit features` for one as_of on the 1M-customer generated data,
as a whole process (reading the config, checking the data contract, building every
default feature family, writing Parquet), within 1.5x the CPU time of
`benchmarks/rich_floor.py` (most of the same features in one hand-written DuckDB
statement), with a peak under 2 GiB.

The commands run alternately, each in a fresh process measured by ``os.wait4`` (CPU
user + system, wall time, peak RSS); medians and the median of the per-round CPU ratios
are printed. ``--other-src`` adds `churnkit features` run with another checkout's
``src`` first on ``PYTHONPATH`` (a before/after comparison in the same run).

Usage, from the repo root after `make install`:

    .venv/bin/python benchmarks/features_cli.py --repeat 3
    .venv/bin/python benchmarks/features_cli.py --repeat 3 --other-src /tmp/before/src
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from scoring import _config, _generated  # noqa: E402

AS_OF = "2025-06-01"


def measure(
    command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> dict[str, float]:
    """Wall time, CPU (user + system) and peak RSS of ``command`` as a fresh process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed with status {status}")
    return {
        "wall": time.perf_counter() - started,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_mib": usage.ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--other-src", type=Path, help="another checkout's src, to compare")
    args = parser.parse_args()

    data = _generated(args.customers, seed=0)
    config = _config(HERE / "data" / "features-cli", data)
    out = HERE / "data" / "features-cli"
    env = dict(os.environ)
    commands = {
        "churnkit features": (
            [sys.executable, "-m", "churnkit", "--quiet", "features", str(config)]
            + ["--as-of", AS_OF, "--out", str(out / "features.parquet")],
            env,
        ),
        "rich_floor.py": (
            [sys.executable, str(HERE / "rich_floor.py"), str(data), AS_OF]
            + [str(out / "floor.parquet")],
            env,
        ),
    }
    if args.other_src:
        other = {**env, "PYTHONPATH": str(args.other_src.resolve())}
        commands["churnkit features (other src)"] = (commands["churnkit features"][0], other)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
    for round_ in range(args.repeat):
        for name, (command, environment) in commands.items():
            runs[name].append(measure(command, environment))
            print(f"round {round_ + 1} {name}: {runs[name][-1]}", file=sys.stderr)

    print("| command | median CPU | CPU runs | median wall | peak RSS |")
    print("|---|---:|---|---:|---:|")
    for name, results in runs.items():
        cpu = [r["cpu"] for r in results]
        wall = statistics.median(r["wall"] for r in results)
        peak = max(r["peak_mib"] for r in results)
        runs_text = ", ".join(f"{c:.1f}" for c in cpu)
        print(
            f"| {name} | {statistics.median(cpu):.1f} s | {runs_text} s | {wall:.1f} s | "
            f"{peak / 1024:.2f} GiB |"
        )
    for name in commands:
        if name == "rich_floor.py":
            continue
        ratios = [
            a["cpu"] / b["cpu"] for a, b in zip(runs[name], runs["rich_floor.py"], strict=True)
        ]
        print(f"\n{name} / rich_floor.py, CPU: median {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
