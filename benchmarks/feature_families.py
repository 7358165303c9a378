"""Time the feature builder with a chosen set of families, to see what each one costs.

One run per call, in this process; the data comes from `benchmarks/features.py`.

    .venv/bin/python benchmarks/feature_families.py rfm
    .venv/bin/python benchmarks/feature_families.py rfm,cadence,trend,returns,breadth
    MEMORY_LIMIT=1GB .venv/bin/python benchmarks/feature_families.py \\
        rfm,cadence,trend,returns,breadth,engagement,attributes,segments
    SNAPSHOTS=12 .venv/bin/python benchmarks/feature_families.py rfm,engagement

SNAPSHOTS=12 uses the monthly as_of dates of 2025, as measurement (b) does.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from pathlib import Path

from churnkit._duckdb import connect
from churnkit.engines.duckdb import run_feature_query
from churnkit.features import FeatureSpec

DATA = Path(__file__).resolve().parent / "data" / "customers-1000000"


def main() -> None:
    families = tuple(sys.argv[1].split(","))
    con = connect()
    if os.environ.get("MEMORY_LIMIT"):
        con.execute(f"SET memory_limit='{os.environ['MEMORY_LIMIT']}'")
        con.execute(f"SET temp_directory='{DATA}.spill'")
    for name in ("orders", "events", "customers"):
        con.execute(
            f"CREATE VIEW churnkit_{name} AS SELECT * FROM read_parquet('{DATA}/{name}.parquet')"
        )
    spec = FeatureSpec(
        windows_days=(30, 90, 180, 365),
        activity_days=365,
        families=families,
        event_types=("email_open", "nps", "session", "support_ticket")
        if "engagement" in families
        else (),
        attributes=("loyalty_tier", "acquisition_channel", "country")
        if "attributes" in families
        else (),
        breadth_columns=("category", "channel") if "breadth" in families else (),
        signup="attributes" in families,
    )
    start = time.perf_counter()
    snapshots = int(os.environ.get("SNAPSHOTS", "1"))
    if snapshots == 1:
        dates = [dt.date(2025, 6, 1)]
    else:
        dates = [dt.date(2025, month, 1) for month in range(1, snapshots + 1)]
    frame = run_feature_query(con, dates, spec)
    seconds = time.perf_counter() - start
    peak = next(
        int(line.split()[1]) // 1024
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("VmHWM:")
    )
    print(f"{sys.argv[1]}: {seconds:.2f} s, peak {peak} MiB, {len(frame)} rows")


if __name__ == "__main__":
    main()
