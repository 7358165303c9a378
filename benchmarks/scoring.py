"""Benchmark: nightly scoring of 1M customers (features, predict, reasons, write).

Setup (not timed): a model is trained once on 100,000 generated customers (same
generator, other seed) and exported as a bundle. Then each repeat runs
`churnkit.pipelines.run_scoring` in a fresh process on the 1M-customer data (10M
orders, events, customers) with that bundle: reading and validating the tables,
building every feature family at one as_of, predicting, explaining with pred_contrib,
tiers and actions, drift, and writing the partition. Reported: wall time per stage and
in total, and the process's peak RSS (VmHWM); medians over the repeats.

Usage, from the repo root after `make install`:

    .venv/bin/python benchmarks/scoring.py --repeat 3
    .venv/bin/python benchmarks/scoring.py --repeat 3 --memory-limit 1.5GB
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"

SCORE = """
import json, sys, time
from pathlib import Path
from churnkit.config import load_config
from churnkit.pipelines import run_scoring

stages, last = {}, [time.perf_counter(), None]
def step(message):
    now = time.perf_counter()
    if last[1] is not None:
        stages[last[1]] = round(now - last[0], 2)
    last[0], last[1] = now, message.split(" ")[0] + " " + message.split(" ")[1]
start = time.perf_counter()
outcome = run_scoring(load_config(sys.argv[1]), on_step=step)
step("done done")
peak = next(int(l.split()[1]) / 1024 for l in Path("/proc/self/status").read_text().splitlines()
            if l.startswith("VmHWM:"))
print(json.dumps({"seconds": time.perf_counter() - start, "rows": len(outcome.ranked),
                  "peak_rss_mib": peak, "stages": stages}))
"""


def _generated(customers: int, seed: int) -> Path:
    folder = DATA / f"customers-{customers}"
    if not (folder / "done").exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "churnkit",
                "--quiet",
                "generate",
                "--customers",
                str(customers),
                "--seed",
                str(seed),
                "--out",
                str(folder),
            ],
            check=True,
        )
        (folder / "done").write_text("ok")
    return folder


def _config(folder: Path, data: Path, **scoring: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    from churnkit.data.generator import demo_config

    raw = demo_config(str(data))
    raw["mlflow"] = {"experiment": "bench", "registered_model_name": "bench"}
    raw["scoring"] = {"output_dir": str(folder / "scores"), **scoring}
    path = folder / "churnkit.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def _trained_bundle() -> Path:
    bundle = DATA / "scoring-model" / "bundle"
    if (bundle / "booster.txt").exists():
        return bundle
    from churnkit.config import load_config
    from churnkit.pipelines import run_training

    train_dir = DATA / "scoring-model"
    shutil.rmtree(train_dir, ignore_errors=True)
    config = _config(train_dir, _generated(100_000, seed=0))
    outcome = run_training(load_config(config), config_text=config.read_text())
    shutil.copytree(outcome.export_dir, bundle)
    print(f"trained the benchmark model: {outcome.result.metrics['model']['pr_auc']:.4f} PR-AUC")
    return bundle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument(
        "--memory-limit", default=None, help="DuckDB memory_limit for scoring, e.g. 1.5GB"
    )
    args = parser.parse_args()

    bundle = _trained_bundle()
    data = _generated(args.customers, seed=1)
    config = _config(DATA / f"scoring-{args.customers}", data, model=str(bundle))
    if args.memory_limit:
        raw = yaml.safe_load(config.read_text())
        raw["duckdb"] = {"memory_limit": args.memory_limit, "temp_directory": "duckdb-spill"}
        config.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    runs = []
    for i in range(args.repeat):
        done = subprocess.run(
            [sys.executable, "-c", SCORE, str(config)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            sys.exit(done.stderr)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"run {i + 1}: {json.dumps(runs[-1])}", flush=True)
    seconds = statistics.median(r["seconds"] for r in runs)
    peak = statistics.median(r["peak_rss_mib"] for r in runs)
    stages = {
        name: statistics.median(r["stages"][name] for r in runs) for name in runs[0]["stages"]
    }
    print(
        f"\nscoring {runs[0]['rows']:,} customers: median {seconds:.1f} s, "
        f"peak {peak / 1024:.2f} GiB (targets: issue 5 < 60 s, issue 16 < 40 s; < 3 GiB)"
    )
    for name, value in stages.items():
        print(f"  {name:<24} {value:>6.1f} s")


if __name__ == "__main__":
    main()
