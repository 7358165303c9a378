"""Benchmark: churnkit against baselines, a plain LightGBM and the oracle, on every scenario.

For each generator scenario, trains churnkit with the default config (paths only) exactly
as `churnkit train` does, and compares on its walk-forward test dates, each scored by
fits made with the snapshots labelled by then:

- churnkit (the walk-forward predictions of its protocol);
- the CRR baseline, recency alone, the RFM score and BG/NBD (its probability of no
  purchase in the horizon, fitted per snapshot), fitted on the same snapshots;
- a *plain LightGBM*: LightGBM's default parameters (100 rounds, no early stopping, no
  calibration) on the RFM family only (recency, tenure, orders and revenue in windows,
  lifetime totals, mean and largest order), trained on the same snapshots, out of time;
- an *oracle* that knows every generated customer's true parameters (purchase rate,
  return propensity, dropout day) and the generator's season and fade:

    P(no qualifying order in [as_of, as_of + h)) = exp(-q * integral of rate * season * fade)

with ``q`` the chance that an order qualifies (not returned, not cancelled). No model can
do better in expectation, so the gap churnkit -> oracle is what is left to win.

Differences are churnkit minus each scorer, with 95 % paired customer-level bootstrap
intervals (1000 resamples).

Usage, from the repo root after `make install`:

    .venv/bin/python benchmarks/accuracy.py                       # every scenario
    .venv/bin/python benchmarks/accuracy.py --scenario grocery --customers 3000
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import yaml

from churnkit.config import load_config
from churnkit.data import generator
from churnkit.features import feature_names
from churnkit.features.spec import spec_for_data
from churnkit.pipelines import open_source, run_training
from churnkit.training import SCORER_LABELS, plan_for_data
from churnkit.training.metrics import bootstrap_differences, score_metrics

HERE = Path(__file__).resolve().parent
_CANCELLED_SHARE = 0.015  # generator: u > 0.985 is cancelled, u < return_prob is returned
CUSTOMERS = {"default": 10_000, "cohort": 10_000, "grocery": 3_000}
LABELS = {**SCORER_LABELS, "plain_lightgbm": "plain LightGBM (RFM)", "oracle": "oracle"}


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


def plain_lightgbm(cfg, test: pd.DataFrame, seed: int) -> np.ndarray:
    """Default LightGBM on the RFM family, fitted per walk-forward date on what was known."""
    source = open_source(cfg)
    plan = plan_for_data(source.summary().first_day, source.summary().data_end, cfg.snapshots)
    spec = spec_for_data(cfg, source)[0].model_copy(update={"families": ("rfm",)})
    names = feature_names(spec)
    data = source.features(list(plan.labelled), spec, horizon_days=cfg.snapshots.horizon_days)
    scores = pd.Series(np.nan, index=test.index)
    for test_date, fit in plan.backtests:
        known = data[data["as_of"].isin(fit.dates)]
        params = {"objective": "binary", "seed": seed, "deterministic": True, "verbosity": -1}
        booster = lgb.train(params, lgb.Dataset(known[names], label=known["churned"]))
        rows = test["as_of"] == test_date
        at = data[data["as_of"] == test_date].set_index("customer_id")
        scores[rows] = booster.predict(at.loc[test.loc[rows, "customer_id"], names])
    return scores.to_numpy()


def run_scenario(scenario: str, customers: int, seed: int) -> str:
    root = HERE / "data" / f"accuracy-{scenario}-{customers}-{seed}"
    shutil.rmtree(root, ignore_errors=True)
    data = root / "data"
    generator.write_generated(
        generator.generate_data(customers, seed=seed, scenario=scenario), data
    )
    raw = {
        "data": {
            "orders": {"path": "data/orders.parquet"},
            "events": {"path": "data/events.parquet"},
            "customers": {"path": "data/customers.parquet", "attributes": ["loyalty_tier"]},
        }
    }
    config = root / "churnkit.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    cfg = load_config(config)
    outcome = run_training(cfg, config_text=config.read_text())
    result = outcome.result

    test = result.test_predictions
    truth = pd.read_parquet(data / "truth.parquet").set_index("customer_id")
    rows = truth.loc[test["customer_id"]].reset_index()
    test = test.assign(
        plain_lightgbm=plain_lightgbm(cfg, test, seed),
        oracle=oracle_probability(rows, test["as_of"], cfg.snapshots.horizon_days),
    )
    y = test["churned"].to_numpy()
    scorers = [
        "model",
        "crr_baseline",
        "recency_baseline",
        "rfm_baseline",
        "bgnbd_baseline",
        "plain_lightgbm",
        "oracle",
    ]
    scorers = [s for s in scorers if s in test]
    lines = [
        f"### {scenario}: {customers:,} customers (seed {seed})",
        "",
        f"Walk-forward test dates {', '.join(sorted({str(d) for d in test['as_of']}))}: "
        f"{len(test):,} rows, churn rate {y.mean():.1%}. Gate: "
        f"{'passed' if result.beats_baseline else 'not passed'} ({outcome.promotion_reason}).",
        "",
        "| scorer | ROC-AUC | PR-AUC | churnkit - scorer, ROC-AUC [95%] | PR-AUC [95%] |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in scorers:
        m = score_metrics(y, test[name].to_numpy())
        if name == "model":
            diff_roc = diff_pr = ""
        else:
            d = bootstrap_differences(y, test["model"], test[name], test["customer_id"], seed=0)
            diff_roc, diff_pr = (
                f"{d[k]['difference']:+.4f} [{d[k]['ci_low']:+.4f}, {d[k]['ci_high']:+.4f}]"
                for k in ("roc_auc", "pr_auc")
            )
        label = "churnkit (walk-forward)" if name == "model" else LABELS[name]
        lines.append(
            f"| {label} | {m['roc_auc']:.4f} | {m['pr_auc']:.4f} | {diff_roc} | {diff_pr} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=sorted(generator.SCENARIOS), action="append")
    parser.add_argument("--customers", type=int, help="default: per scenario, see CUSTOMERS")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    for scenario in args.scenario or list(CUSTOMERS):
        print(run_scenario(scenario, args.customers or CUSTOMERS[scenario], args.seed))
        print(flush=True)


if __name__ == "__main__":
    main()
