"""Benchmark: LightGBM settings compared by churnkit's walk-forward test.

Each data set is generated, its labelled snapshots built once, and `train_churn_model`
run with each variant of the model settings (100 bootstrap resamples, which do not change
the metrics). Prints churnkit's and BG/NBD's walk-forward ROC-AUC / PR-AUC and the
early-stopping round of the deployed fit. The variants are changes from the settings
before issue 15 (31 leaves, 50 rows a leaf, patience 100).

Usage, from the repo root after `make install` (about 10 minutes on 2 cores):

    .venv/bin/python benchmarks/learner_sweep.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from churnkit.config import load_config
from churnkit.data import generator
from churnkit.features.spec import spec_for_data
from churnkit.pipelines import open_source
from churnkit.training import plan_for_data, train_churn_model

HERE = Path(__file__).resolve().parent
OLD = {"num_leaves": 31, "min_child_samples": 50, "early_stopping_rounds": 100}
VARIANTS = [
    {},
    {"num_leaves": 15, "min_child_samples": 100},
    {"num_leaves": 7, "min_child_samples": 200},
    {"num_leaves": 15, "min_child_samples": 100, "learning_rate": 0.02, "max_rounds": 3000},
    {"num_leaves": 15, "min_child_samples": 100, "lambda_l2": 10.0, "feature_fraction": 0.7},
    {"num_leaves": 15, "min_child_samples": 100, "early_stopping_rounds": 30},
]
# name: (scenario, customers, seed, tables)
DATA = {
    "t3": ("default", 3_000, 3, ("orders",)),  # the test suite's data
    "grocery3k": ("grocery", 3_000, 11, ("orders", "events", "customers")),
    "default10k": ("default", 10_000, 11, ("orders", "events", "customers")),
}


def main() -> None:
    for name, (scenario, customers, seed, tables) in DATA.items():
        root = HERE / "data" / f"sweep-{name}"
        shutil.rmtree(root, ignore_errors=True)
        data = generator.generate_data(customers, seed=seed, scenario=scenario)
        generator.write_generated(data, root / "data")
        raw = {"data": {t: {"path": f"data/{t}.parquet"} for t in tables}}
        if "customers" in tables:
            raw["data"]["customers"]["attributes"] = ["loyalty_tier"]
        (root / "churnkit.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
        cfg = load_config(root / "churnkit.yaml")
        source = open_source(cfg)
        plan = plan_for_data(source.summary().first_day, source.summary().data_end, cfg.snapshots)
        spec = spec_for_data(cfg, source)[0]
        dataset = source.features(list(plan.labelled), spec, horizon_days=90)
        for variant in VARIANTS:
            settings = cfg.model.model_copy(update={**OLD, "bootstrap_samples": 100, **variant})
            result = train_churn_model(dataset, plan, settings, spec, horizon_days=90)
            model, bgnbd = result.metrics["model"], result.metrics["bgnbd_baseline"]
            print(
                f"| {name} | `{variant}` | {model['roc_auc']:.4f} / {model['pr_auc']:.4f} | "
                f"{bgnbd['roc_auc']:.4f} / {bgnbd['pr_auc']:.4f} | "
                f"{result.model.metadata['best_iteration']} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
