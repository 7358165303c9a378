"""Benchmark: the customer bootstrap of a training run at the scale of 1M customers.

`churnkit train` reports, for the walk-forward test predictions, the model minus each
baseline with a bootstrap interval and each scorer's interval for one more night. On 12
monthly snapshots of the 1M-customer data the test predictions are about 1.5M rows of
600,000 customers, and those intervals took most of an hour. This script times them on
synthetic predictions of that size (four scorers: the model, the CRR baseline with few
distinct scores, BG/NBD and a plain LightGBM), 1000 resamples by default:

- "one by one": three ``bootstrap_differences`` and four ``tonight_intervals`` calls, the
  way training made them before, for its five scorers (only with ``--one-by-one``: it
  takes long);
- "shared": one ``walk_forward_intervals`` call, as training makes them now.

Both give the same numbers (``tests/test_training.py`` checks it); the script checks it
too when it runs both. ``--src`` runs another checkout's metrics module for "one by one".

Usage, from the repo root after `make install`:

    .venv/bin/python benchmarks/bootstrap.py --samples 1000
    .venv/bin/python benchmarks/bootstrap.py --samples 100 --one-by-one
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _metrics(src: Path):
    spec = importlib.util.spec_from_file_location(
        f"metrics_{abs(hash(src))}", src / "churnkit" / "training" / "metrics.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_500_000)
    parser.add_argument("--customers", type=int, default=600_000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--one-by-one", action="store_true")
    parser.add_argument("--src", type=Path, default=HERE.parent / "src")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    ids = rng.integers(0, args.customers, args.rows)
    dates = rng.integers(0, 3, args.rows)
    y = (rng.random(args.rows) < 0.45).astype(int)
    scores = {
        "model": y * 0.8 + rng.random(args.rows),
        "crr_baseline": np.round(y * 0.2 + rng.random(args.rows), 2),
        "bgnbd_baseline": y * 0.3 + rng.random(args.rows),
        "lightgbm_rfm_baseline": y * 0.6 + rng.random(args.rows),
    }
    samples = args.samples
    current = _metrics(HERE.parent / "src")
    started = time.perf_counter()
    shared = current.walk_forward_intervals(
        y, scores, ids, dates, reference="model", samples=samples, seed=0
    )
    print(f"shared: {time.perf_counter() - started:.1f} s for {samples} resamples", flush=True)
    if not args.one_by_one:
        return
    other = _metrics(args.src)
    started = time.perf_counter()
    differences = {
        name: other.bootstrap_differences(y, scores["model"], values, ids, samples=samples, seed=0)
        for name, values in scores.items()
        if name != "model"
    }
    tonight = {
        name: other.tonight_intervals(y, values, ids, dates, samples=samples, seed=0)
        for name, values in scores.items()
    }
    print(f"one by one ({args.src}): {time.perf_counter() - started:.1f} s")
    print("the same numbers:", (differences, tonight) == shared)


if __name__ == "__main__":
    main()
