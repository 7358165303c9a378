"""Benchmark: the feature builder on local Spark (2 cores) against DuckDB, 10M orders.

The same Ibis feature expression (every family, one as_of) over the same generated
Parquet files of the feature benchmark (1M customers, 10M orders, 21M events), each
engine in a fresh process writing the feature table to Parquet. Reported: wall time
(session start excluded and reported apart for Spark) and the peak RSS of the whole
process tree (Python plus, for Spark, the JVM), sampled every 0.2 s; medians.

Usage, from the repo root after `pip install -e ".[spark]"` (and Java 17+):

    .venv/bin/python benchmarks/spark.py --repeat 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
AS_OF = "2025-06-01"

COMMON = """
import datetime as dt, json, sys, time
from pathlib import Path
from churnkit.features import FAMILIES, FeatureSpec
data, out = Path(sys.argv[1]), Path(sys.argv[2])
spec = FeatureSpec(
    windows_days=(30, 90, 180, 365), activity_days=365, families=FAMILIES,
    event_types=("email_open", "nps", "session", "support_ticket"),
    attributes=("loyalty_tier", "acquisition_channel", "country"),
    breadth_columns=("category", "channel"), signup=True,
)
as_of = [dt.date.fromisoformat(sys.argv[3])]
"""

DUCKDB = (
    COMMON
    + """
from churnkit._duckdb import connect
from churnkit.engines.duckdb import copy_features
start = time.perf_counter()
con = connect()
for name in ("orders", "events", "customers"):
    source = data / f"{name}.parquet"
    con.execute(f"CREATE VIEW churnkit_{name} AS SELECT * FROM read_parquet('{source}')")
rows = copy_features(con, as_of, spec, out)
print(json.dumps({"seconds": time.perf_counter() - start, "rows": rows, "startup": 0.0}))
"""
)

SPARK = (
    COMMON
    + """
import os
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
from pyspark.sql import SparkSession
from churnkit.engines.spark import spark_feature_frame
begin = time.perf_counter()
spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
         .config("spark.sql.session.timeZone", "UTC").config("spark.driver.memory", "8g")
         .config("spark.sql.shuffle.partitions", "8").getOrCreate())
startup = time.perf_counter() - begin
start = time.perf_counter()
tables = {name: spark.read.parquet(str(data / f"{name}.parquet"))
          for name in ("orders", "events", "customers")}
frame = spark_feature_frame(spark, tables, as_of, spec)
frame.write.parquet(str(out), compression="zstd")
rows = spark.read.parquet(str(out)).count()
print(json.dumps({"seconds": time.perf_counter() - start, "rows": rows, "startup": startup}))
spark.stop()
"""
)


def _run(code: str, data: Path, out: Path) -> dict:
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(data), str(out), AS_OF],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = [0]

    def sample() -> None:
        root = psutil.Process(process.pid)
        while process.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
                peak[0] = max(peak[0], sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                pass
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    sampler.join()
    if process.returncode != 0:
        sys.exit(stderr[-3000:])
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_rss_mib"] = peak[0] / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--customers", type=int, default=1_000_000)
    args = parser.parse_args()
    data = HERE / "data" / f"customers-{args.customers}"
    if not (data / "done").exists():
        sys.exit(f"no data in {data}: run benchmarks/features.py first, which generates it")
    results: dict[str, list[dict]] = {"duckdb": [], "spark": []}
    for i in range(args.repeat):
        for engine, code in (("duckdb", DUCKDB), ("spark", SPARK)):
            result = _run(code, data, data / f"features-{engine}.parquet")
            results[engine].append(result)
            print(f"run {i + 1} {engine}: {json.dumps(result)}", flush=True)
    print()
    for engine, runs in results.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        peak = statistics.median(r["peak_rss_mib"] for r in runs)
        startup = statistics.median(r["startup"] for r in runs)
        print(
            f"{engine:<7} {runs[0]['rows']:>9,} rows  median {seconds:6.1f} s "
            f"(+{startup:.1f} s session start)  peak {peak / 1024:.2f} GiB"
        )
    ratio = statistics.median(r["seconds"] for r in results["spark"]) / statistics.median(
        r["seconds"] for r in results["duckdb"]
    )
    print(f"spark / duckdb wall time: {ratio:.1f}x")


if __name__ == "__main__":
    main()
