"""Benchmark: the feature query alone, this checkout's against another's, in one process.

`benchmarks/features_cli.py` times `churnkit features` as a whole process; its rounds
vary by a few seconds of CPU on this machine, more than a change to one part of the
query moves. This runs only the query, on one DuckDB connection holding the checked
views of the 1M-customer generated data at one as_of: each checkout's SQL (compiled by
a subprocess with that checkout's ``src`` first on ``PYTHONPATH``) is run alternately,
fetched into pandas as `churnkit features` fetches it, and CPU (user + system of the
process, every DuckDB thread included) is measured around each run. It also checks that
both give the same table, exactly.

Usage, from the repo root after `make install`:

    .venv/bin/python benchmarks/feature_query.py --other-src /tmp/before/src --threads 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from features_cli import AS_OF  # noqa: E402
from scoring import _config, _generated  # noqa: E402

_DUMP = """
import datetime as dt, sys
from pathlib import Path
from churnkit.config import load_config
from churnkit.engines import duckdb as engine
from churnkit.pipelines import open_source, spec_for_data
cfg = load_config(Path(sys.argv[1]))
data = open_source(cfg)
spec = spec_for_data(cfg, data)[0]
with engine._feature_sql(data.engine.con, [dt.date.fromisoformat(sys.argv[2])], spec, None) as sql:
    Path(sys.argv[3]).write_text(sql)
"""


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _sql(src: Path, config: Path, out: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(src.resolve())}
    subprocess.run([sys.executable, "-c", _DUMP, str(config), AS_OF, str(out)], env=env, check=True)
    return out.read_text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other-src", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import pandas as pd

    from churnkit._duckdb import joins_build_as_written
    from churnkit.config import load_config
    from churnkit.engines.duckdb import _grid
    from churnkit.pipelines import open_source

    config = _config(HERE / "data" / "features-cli", _generated(1_000_000, seed=0))
    with tempfile.TemporaryDirectory() as tmp:
        queries = {
            "this checkout": _sql(HERE.parent / "src", config, Path(tmp) / "this.sql"),
            "other src": _sql(args.other_src, config, Path(tmp) / "other.sql"),
        }
    con = open_source(load_config(config)).engine.con
    con.register("churnkit_grid", _grid([dt.date.fromisoformat(AS_OF)]))
    con.execute(f"SET threads = {args.threads}")
    cpu: dict[str, list[float]] = {name: [] for name in queries}
    tables = {}
    with joins_build_as_written(con):
        for round_ in range(args.rounds):
            for name, sql in queries.items():
                started = _cpu()
                tables[name] = con.execute(sql).df()
                cpu[name].append(_cpu() - started)
                print(f"round {round_ + 1} {name}: {cpu[name][-1]:.2f} s", file=sys.stderr)
    # values exactly; the types may differ (counts were integers before 2026-12-02)
    pd.testing.assert_frame_equal(*tables.values(), check_exact=True, check_dtype=False)
    print(f"DuckDB threads: {args.threads}; the two tables hold the same values")
    print("| query | median CPU | CPU runs |")
    print("|---|---:|---|")
    for name, runs in cpu.items():
        text = ", ".join(f"{c:.1f}" for c in runs)
        print(f"| {name} | {statistics.median(runs):.1f} s | {text} s |")


if __name__ == "__main__":
    main()
