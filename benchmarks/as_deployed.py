"""Benchmark: is the headline `train` prints what tonight's list then achieves?

For each generator scenario: cut the data at a date D (orders and events before D, as if
D were tonight), train with the default config, and score D; then, with the full data,
`churnkit evaluate` the list of D once its label window has passed. The list's ROC-AUC
and PR-AUC should fall inside the 95 % bootstrap interval of the walk-forward headline
(customer resamples of the walk-forward test predictions).

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
from churnkit.training.metrics import bootstrap_intervals

HERE = Path(__file__).resolve().parent
CUSTOMERS = {"default": 10_000, "cohort": 10_000, "grocery": 3_000}
TONIGHT = dt.date(2025, 10, 1)  # a label window of 90 days ends inside every scenario's data


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
    full = generator.generate_data(customers, seed=seed, scenario=scenario)
    generator.write_generated(full, root / "full")
    cut = root / "cut"
    cut.mkdir()
    night = dt.datetime.combine(TONIGHT, dt.time())
    for name, column in (("orders", "ordered_at"), ("events", "occurred_at")):
        table = getattr(full, name)
        pq.write_table(table.filter(pc.less(table[column], night)), cut / f"{name}.parquet")
    pq.write_table(full.customers, cut / "customers.parquet")

    before = load_config(_config(root, "cut"))
    text = (root / "cut.yaml").read_text()
    trained = run_training(before, config_text=text)
    scored = run_scoring(before, as_of=TONIGHT)
    after = load_config(_config(root, "full"))
    night_metrics = run_evaluation(after, as_of=TONIGHT).metrics[MODEL]

    # the list comes from the model, or from the best baseline when none passed the gate
    served = scored.manifest["scorer"]["served"]
    test = trained.result.test_predictions
    headline = trained.result.metrics[served]
    interval = bootstrap_intervals(
        test["churned"].to_numpy(), test[served].to_numpy(), test["customer_id"].to_numpy()
    )
    served = scored.manifest["scorer"]["label"]
    lines = [
        f"| {scenario} ({customers:,}) | {served} |"
        + "".join(
            f" {headline[m]:.4f} [{interval[m][0]:.4f}, {interval[m][1]:.4f}] |"
            f" {night_metrics[m]:.4f} | "
            f"{'yes' if interval[m][0] <= night_metrics[m] <= interval[m][1] else 'no'} |"
            for m in ("roc_auc", "pr_auc")
        )
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=sorted(generator.SCENARIOS), action="append")
    parser.add_argument("--customers", type=int, help="default: per scenario, see CUSTOMERS")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    print(f"tonight = {TONIGHT}; headline = walk-forward metric of `train` on data before it\n")
    print(
        "| scenario | list served by | ROC-AUC headline [95%] | ROC-AUC of the list | inside |"
        " PR-AUC headline [95%] | PR-AUC of the list | inside |"
    )
    print("|---|---|---:|---:|---|---:|---:|---|")
    for scenario in args.scenario or list(CUSTOMERS):
        print(run_scenario(scenario, args.customers or CUSTOMERS[scenario], args.seed), flush=True)


if __name__ == "__main__":
    main()
