"""Benchmark: how close the model comes to the best achievable, on generated data.

Trains churnkit on generated customers exactly as `churnkit train` does, then compares
on the same out-of-time test snapshots: the model, each baseline, and an *oracle* that
knows every generated customer's true parameters (purchase rate, return propensity,
dropout day) and the generator's season and fade. The oracle's churn probability is the
generating process's own:

    P(no qualifying order in [as_of, as_of + h)) = exp(-q * integral of rate * season * fade)

with ``q`` the chance that an order qualifies (not returned, not cancelled). No model
can do better in expectation, so the gap model -> oracle is what is left to win; the gap
CRR baseline -> model is what the model already wins.

Usage, from the repo root after `make install`:

    .venv/bin/python benchmarks/accuracy.py --customers 20000 --seed 11
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from churnkit.config import load_config
from churnkit.data import generator
from churnkit.pipelines import demo_config_dict, run_training
from churnkit.training import SCORER_LABELS
from churnkit.training.metrics import bootstrap_pr_auc_difference, score_metrics

HERE = Path(__file__).resolve().parent
_CANCELLED_SHARE = 0.015  # generator: u > 0.985 is cancelled, u < return_prob is returned


def oracle_probability(truth: pd.DataFrame, as_of: pd.Series, horizon_days: int) -> np.ndarray:
    """True churn probability of each (customer, as_of) under the generating process."""
    start = pd.Timestamp(truth["start"].iloc[0])
    t0 = ((pd.to_datetime(as_of) - start).dt.days).to_numpy(dtype="float64")
    rate = truth["purchase_rate_per_day"].to_numpy()
    dropout = truth["dropout_day"].to_numpy()
    qualifying = np.clip(1.0 - truth["return_prob"].to_numpy() - _CANCELLED_SHARE, 0, 1)
    steps = np.linspace(0, horizon_days, horizon_days * 4 + 1)  # quarter-day grid
    days = t0[:, None] + steps[None, :]
    fade = np.clip((dropout[:, None] - days) / generator._FADE_DAYS, 0.0, 1.0)
    intensity = rate[:, None] * generator._season(days) * fade * (days < dropout[:, None])
    expected = np.trapezoid(intensity, steps, axis=1)
    return np.exp(-qualifying * expected)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    root = HERE / "data" / f"accuracy-{args.customers}-{args.seed}"
    shutil.rmtree(root, ignore_errors=True)
    data = root / "data"
    generator.write_generated(generator.generate_data(args.customers, seed=args.seed), data)
    raw = demo_config_dict(str(data))
    raw["mlflow"] = {"experiment": "accuracy", "registered_model_name": "accuracy"}
    config = root / "churnkit.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    cfg = load_config(config)
    outcome = run_training(cfg, config_text=config.read_text())
    result = outcome.result

    test = result.test_predictions
    truth = pd.read_parquet(data / "truth.parquet").set_index("customer_id")
    rows = truth.loc[test["customer_id"]].reset_index()
    test = test.assign(oracle=oracle_probability(rows, test["as_of"], cfg.snapshots.horizon_days))
    y = test["churned"].to_numpy()
    scorers = [*result.metrics, "oracle"]
    metrics = {name: score_metrics(y, test[name].to_numpy()) for name in scorers}
    gap = bootstrap_pr_auc_difference(
        y, test["oracle"], test["model"], test["customer_id"], samples=1000, seed=0
    )

    dates = ", ".join(sorted({str(d) for d in test["as_of"]}))
    print(
        f"{args.customers:,} customers (seed {args.seed}), test snapshots {dates}: "
        f"{len(test):,} rows, churn rate {y.mean():.1%}, {dt.date.today()}"
    )
    print("\n| scorer | ROC-AUC | PR-AUC | lift@10% | Brier | ECE |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in scorers:
        m = metrics[name]
        label = SCORER_LABELS.get(name, "oracle (true parameters)")
        print(
            f"| {label} | {m['roc_auc']:.4f} | {m['pr_auc']:.4f} | {m['lift_10']:.3f} | "
            f"{m['brier']:.4f} | {m['ece']:.4f} |"
        )
    diff = result.crr_difference
    print(
        f"\nmodel - CRR PR-AUC {diff['difference']:+.4f} "
        f"[{diff['ci_low']:+.4f}, {diff['ci_high']:+.4f}]; "
        f"oracle - model PR-AUC {gap['difference']:+.4f} "
        f"[{gap['ci_low']:+.4f}, {gap['ci_high']:+.4f}] (95 %, customer bootstrap)"
    )


if __name__ == "__main__":
    main()
