"""Benchmark: time and peak memory of `churnkit generate` at a given size.

Each repetition runs in a fresh process so peak memory is that run's own.

    .venv/bin/python benchmarks/generate.py --customers 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile

CHILD = """
import json, sys, time
from pathlib import Path
from churnkit.data.generator import generate_data, write_generated
n, out = int(sys.argv[1]), Path(sys.argv[2])
start = time.perf_counter()
data = generate_data(n, seed=0)
write_generated(data, out)
print(json.dumps({
    "seconds": time.perf_counter() - start,
    "peak_rss_mib": next(
        int(line.split()[1]) / 1024
        for line in open("/proc/self/status")
        if line.startswith("VmHWM:")
    ),
    "orders": data.orders.num_rows,
    "events": data.events.num_rows,
}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as out:
            done = subprocess.run(
                [sys.executable, "-c", CHILD, str(args.customers), out],
                check=True,
                capture_output=True,
                text=True,
            )
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(
        json.dumps(
            {
                "customers": args.customers,
                "orders": runs[0]["orders"],
                "events": runs[0]["events"],
                "median_seconds": round(statistics.median(r["seconds"] for r in runs), 1),
                "max_peak_rss_mib": round(max(r["peak_rss_mib"] for r in runs)),
                "runs_seconds": [round(r["seconds"], 1) for r in runs],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
