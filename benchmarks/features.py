"""Benchmark: the feature builder at 10M orders / 1M customers, and at 100M orders.

Measures, on the same generated Parquet files, each in a fresh process (so peak memory
is that measurement's own), repeated, medians reported:

  (a) the full default feature set (every family) for one as_of, on the connection
      churnkit opens without a `duckdb:` config section (DuckDB's defaults, no spill
      directory), and again under --small-memory-limit (spilling);
  (b) the same for 12 monthly as_of dates in one query;
  (c) the floor: one hand-written DuckDB query for recency, frequency, revenue, tenure
      and mean gap;
  (d) the same five with a pandas groupby;
  (e) with --big: (a) on ~100M orders / 10M customers under a DuckDB memory limit,
      written to Parquet by DuckDB (spilling to disk), once.

Usage, from the repo root after `make install`:

    .venv/bin/python benchmarks/features.py --repeat 3
    .venv/bin/python benchmarks/features.py --repeat 1 --big
    .venv/bin/python benchmarks/features.py --repeat 1 --snapshots-memory-limit 8GB
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
AS_OF = "2025-06-01"
MONTHS = [f"2025-{m:02d}-01" for m in range(1, 13)]

SETUP = """
import datetime as dt, json, sys, time
from pathlib import Path
import duckdb
data, as_ofs = Path(sys.argv[1]), sys.argv[2].split(",")
memory_limit, out = sys.argv[3], sys.argv[4]
dates = [dt.date.fromisoformat(d) for d in as_ofs]
def src(name):
    p = data / name
    return str(p / "*.parquet") if p.is_dir() else str(data / f"{name}.parquet")
def peak_rss_mib():
    # VmHWM is this process's own peak; ru_maxrss keeps the parent's across exec
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
def report(start, rows):
    print(json.dumps({"seconds": time.perf_counter() - start, "rows": int(rows),
                      "peak_rss_mib": peak_rss_mib()}))
"""

CHURNKIT = (
    SETUP
    + """
from churnkit._duckdb import connect
from churnkit.engines.duckdb import copy_features, run_feature_query
from churnkit.features import FAMILIES, FeatureSpec
start = time.perf_counter()
# the connection `churnkit features` opens from a config's `duckdb:` section
spill = f"{out if out != 'none' else data / 'features'}.spill"
limited = {"memory_limit": memory_limit, "temp_directory": spill}
con = connect(limited if memory_limit != "none" else None)
if memory_limit != "none":
    con.execute("SET preserve_insertion_order=false")
con.execute(f"CREATE VIEW churnkit_orders AS SELECT * FROM read_parquet('{src('orders')}')")
con.execute(f"CREATE VIEW churnkit_events AS SELECT * FROM read_parquet('{src('events')}')")
con.execute(f"CREATE VIEW churnkit_customers AS SELECT * FROM read_parquet('{src('customers')}')")
spec = FeatureSpec(
    windows_days=(30, 90, 180, 365), activity_days=365, families=FAMILIES,
    event_types=("email_open", "nps", "session", "support_ticket"),
    attributes=("loyalty_tier", "acquisition_channel", "country"),
    breadth_columns=("category", "channel"), signup=True,
)
if out != "none":
    rows = copy_features(con, dates, spec, Path(out))
else:
    rows = len(run_feature_query(con, dates, spec))
report(start, rows)
"""
)

DUCKDB_FLOOR = (
    SETUP
    + """
start = time.perf_counter()
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
frame = con.execute(f'''
    WITH qualifying AS (
        SELECT customer_id, ordered_at, amount,
               date_diff('day',
                         lag(ordered_at::DATE) OVER (PARTITION BY customer_id ORDER BY ordered_at),
                         ordered_at::DATE) AS gap
        FROM read_parquet('{src('orders')}')
        WHERE status = 'completed' AND ordered_at < DATE '{as_ofs[0]}'
    )
    SELECT customer_id,
           date_diff('day', max(ordered_at)::DATE, DATE '{as_ofs[0]}') AS recency_days,
           count(*) AS orders_lifetime,
           sum(amount) AS revenue_lifetime,
           date_diff('day', min(ordered_at)::DATE, DATE '{as_ofs[0]}') AS tenure_days,
           avg(gap) AS mean_days_between_orders
    FROM qualifying GROUP BY customer_id
    HAVING max(ordered_at) >= DATE '{as_ofs[0]}' - INTERVAL 365 DAY
''').df()
report(start, len(frame))
"""
)

PANDAS_FLOOR = (
    SETUP
    + """
import pandas as pd
start = time.perf_counter()
orders = pd.read_parquet(src("orders"), columns=["customer_id", "ordered_at", "amount", "status"])
as_of = pd.Timestamp(as_ofs[0])
orders = orders[(orders["status"] == "completed") & (orders["ordered_at"] < as_of)]
orders = orders.sort_values(["customer_id", "ordered_at"])
day = orders["ordered_at"].dt.normalize()
orders = orders.assign(day=day, gap=day.groupby(orders["customer_id"]).diff().dt.days)
g = orders.groupby("customer_id")
frame = pd.DataFrame({
    "recency_days": (as_of - g["day"].max()).dt.days,
    "orders_lifetime": g.size(),
    "revenue_lifetime": g["amount"].sum(),
    "tenure_days": (as_of - g["day"].min()).dt.days,
    "mean_days_between_orders": g["gap"].mean(),
})
frame = frame[frame["recency_days"] <= 365]
report(start, len(frame))
"""
)


def run(
    code: str, data: Path, as_ofs: list[str], memory_limit: str = "none", out: str = "none"
) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code, str(data), ",".join(as_ofs), memory_limit, out],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(name: str, repeat: int, *args, **kwargs) -> dict:
    runs = [run(*args, **kwargs) for _ in range(repeat)]
    result = {
        "median_seconds": round(statistics.median(r["seconds"] for r in runs), 2),
        "runs_seconds": [round(r["seconds"], 2) for r in runs],
        "max_peak_rss_mib": round(max(r["peak_rss_mib"] for r in runs)),
        "runs_peak_rss_mib": [round(r["peak_rss_mib"]) for r in runs],
        "rows": runs[0]["rows"],
    }
    print(name, json.dumps(result), flush=True)
    return result


def ensure_data(customers: int) -> Path:
    from churnkit.data.generator import generate_files, parquet_rows

    data = HERE / "data" / f"customers-{customers}"
    if not (data / "done").exists():
        started = time.perf_counter()
        paths = generate_files(customers, data, seed=0)
        (data / "done").write_text(json.dumps({k: str(v) for k, v in paths.items()}))
        print(
            f"generated {customers:,} customers in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    orders = data / "orders" if (data / "orders").is_dir() else data / "orders.parquet"
    print(f"data {data}: {parquet_rows(orders):,} orders", flush=True)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--big", action="store_true", help="only the 100M-order run (e)")
    parser.add_argument("--big-customers", type=int, default=10_000_000)
    parser.add_argument("--memory-limit", default="4GB", help="DuckDB limit of the run (e)")
    parser.add_argument(
        "--small-memory-limit", default="1.2GB", help="DuckDB limit of the run (a) limited"
    )
    parser.add_argument(
        "--snapshots-memory-limit",
        help="only (b), under this DuckDB memory limit (e.g. 8GB), --repeat times",
    )
    args = parser.parse_args()

    if args.snapshots_memory_limit:
        data = ensure_data(args.customers)
        limit = args.snapshots_memory_limit
        measure("b_churnkit_12_as_of_memory_limit", args.repeat, CHURNKIT, data, MONTHS, limit)
        return

    if args.big:
        data = ensure_data(args.big_customers)
        out = data / "features.parquet"
        measure("e_big_one_as_of", 1, CHURNKIT, data, [AS_OF], args.memory_limit, str(out))
        return

    data = ensure_data(args.customers)
    a = measure("a_churnkit_one_as_of", args.repeat, CHURNKIT, data, [AS_OF])
    a_limited = measure(
        "a_churnkit_one_as_of_memory_limit",
        args.repeat,
        CHURNKIT,
        data,
        [AS_OF],
        args.small_memory_limit,
    )
    b = measure("b_churnkit_12_as_of", args.repeat, CHURNKIT, data, MONTHS)
    c = measure("c_duckdb_sql_floor", args.repeat, DUCKDB_FLOOR, data, [AS_OF])
    d = measure("d_pandas_floor", args.repeat, PANDAS_FLOOR, data, [AS_OF])
    print(
        json.dumps(
            {
                "a_over_c": round(a["median_seconds"] / c["median_seconds"], 2),
                "a_limited_over_c": round(a_limited["median_seconds"] / c["median_seconds"], 2),
                "b_over_a": round(b["median_seconds"] / a["median_seconds"], 2),
                "d_over_c": round(d["median_seconds"] / c["median_seconds"], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
