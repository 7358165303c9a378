"""Benchmark: is the headline `train` prints what tonight's list then achieves?

For each generator scenario: generate it with 100 more days after its end, keep what
happened before tonight (the day after the scenario's end) as the history, train with
the default config and score tonight; then, with all the data, `churnkit evaluate` the
list once its label window has passed. The list's ROC-AUC and PR-AUC should fall inside
the 95 % prediction interval `train` prints for tonight's list (the mean of the
walk-forward metric over the test dates; Student's t on the spread between them, never
narrower than one night's customer bootstrap). The population shift is the PSI of the
score between the latest test date and tonight, as `train` reports it.

Usage, from the repo root after `make install`:

    .venv/bin/python benchmarks/as_deployed.py                 # every scenario
    .venv/bin/python benchmarks/as_deployed.py --scenario grocery --customers 3000
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from churnkit.config import load_config
from churnkit.data import generator
from churnkit.pipelines import run_evaluation, run_scoring, run_training
from churnkit.training import MODEL

HERE = Path(__file__).resolve().parent
CUSTOMERS = {"default": 10_000, "cohort": 10_000, "grocery": 3_000}
_AFTER_DAYS = 100  # generated after tonight, to see what the list's customers then did


def _config(root: Path, data: str) -> Path:
    raw = {
        "project_dir": ".",
        "data": {
            "orders": {"path": f"{data}/orders.parquet"},
            "events": {"path": f"{data}/events.parquet"},
            "customers": {"path": f"{data}/customers.parquet", "attributes": ["loyalty_tier"]},
        },
        "scoring": {"output_dir": "scores"},
    }
    path = root / f"{data}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def run_scenario(scenario: str, customers: int, seed: int) -> str:
    root = HERE / "data" / f"as-deployed-{scenario}-{customers}-{seed}"
    shutil.rmtree(root, ignore_errors=True)
    shop = generator.SCENARIOS[scenario]
    tonight = shop.end + dt.timedelta(days=1)
    end = shop.end + dt.timedelta(days=_AFTER_DAYS)
    full = generator.generate_data(customers, seed=seed, scenario=scenario, end=end)
    generator.write_generated(full, root / "full")
    cut = root / "cut"
    cut.mkdir()
    night = dt.datetime.combine(tonight, dt.time())
    for name, column in (("orders", "ordered_at"), ("events", "occurred_at")):
        table = getattr(full, name)
        pq.write_table(table.filter(pc.less(table[column], night)), cut / f"{name}.parquet")
    pq.write_table(full.customers, cut / "customers.parquet")

    before = load_config(_config(root, "cut"))
    text = (root / "cut.yaml").read_text()
    trained = run_training(before, config_text=text)
    scored = run_scoring(before, as_of=tonight)
    after = load_config(_config(root, "full"))
    night_metrics = run_evaluation(after, as_of=tonight).backtest.metrics[MODEL]

    # the list comes from the model, or from the best baseline when none passed the gate
    served = scored.manifest["scorer"]["served"]
    expected = trained.result.tonight[served]
    cells = []
    for m in ("roc_auc", "pr_auc"):
        e = expected[m]
        inside = e["low"] <= night_metrics[m] <= e["high"]
        cells.append(
            f"{night_metrics[m]:.4f} | {e['estimate']:.4f} [{e['low']:.4f}, {e['high']:.4f}] | "
            f"{'yes' if inside else 'no'}"
        )
    shift = trained.result.model.metadata["population_shift_psi"]
    return (
        f"| {scenario} ({customers:,}), tonight {tonight} | "
        f"{scored.manifest['scorer']['label']} | {shift:.2f} | {cells[0]} | {cells[1]} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=sorted(generator.SCENARIOS), action="append")
    parser.add_argument("--customers", type=int, help="default: per scenario, see CUSTOMERS")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    print(
        "| scenario | list served by | population shift (PSI) | ROC-AUC of the list | "
        "printed by train [95% prediction interval] | inside | PR-AUC of the list | "
        "printed by train [95%] | inside |"
    )
    print("|---|---|---:|---:|---|---|---:|---|---|")
    for scenario in args.scenario or list(CUSTOMERS):
        print(run_scenario(scenario, args.customers or CUSTOMERS[scenario], args.seed), flush=True)


if __name__ == "__main__":
    main()
