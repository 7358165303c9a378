"""Benchmark: does an uplift order keep more customers per contact than the risk order?

Issue 20. On generated data (default scenario), churnkit is trained once; then, month by
month, each night is scored with a holdout group (`scoring.holdout.share`) and a
campaign is run on its listed high and medium tiers with a known effect that depends on
the customer's status: the lapsing and at-risk customers are often persuadable, the
lapsed rarely, and active ones are sometimes put off (`generator.simulate_campaign`).
Each campaign's orders feed the next night, as in a real shop.

A T-learner (`churnkit.training.uplift`) is fitted on the first nights (contacted vs
held-out customers of the contacted tiers, the churn model's features, retention in the
horizon) and tested on the last night, out of time, against ordering by churn
probability (the risk order a list is worked in) and a random order: the Qini
coefficient, and the retention a contact adds among the top 30 % of each order
(uplift@30%), with 95 % bootstrap intervals of the difference uplift - risk (customers
resampled, 1000 times).

Usage, from the repo root after `make install`:

    .venv/bin/python benchmarks/uplift.py
    .venv/bin/python benchmarks/uplift.py --customers 20000 --nights 6
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
from churnkit.pipelines import open_source, run_scoring, run_training
from churnkit.scoring.backtest import night_labels
from churnkit.training.uplift import fit_t_learner, qini_coefficient, uplift_at

HERE = Path(__file__).resolve().parent
PERSUADABLE = {"active": 0.05, "at risk": 0.5, "lapsing": 0.4, "lapsed": 0.03}
ANNOYED = {"active": 0.15, "at risk": 0.03, "lapsing": 0.03, "lapsed": 0.0}
TIERS = ("high", "medium")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--nights", type=int, default=6)
    parser.add_argument("--holdout", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    folder = HERE / "data" / f"uplift-{args.customers}-{args.seed}"
    shutil.rmtree(folder, ignore_errors=True)
    data_dir = folder / "data"
    generator.write_generated(generator.generate_data(args.customers, seed=args.seed), data_dir)
    raw = {
        "data": {
            "orders": {"path": "data/orders.parquet"},
            "events": {"path": "data/events.parquet"},
            "customers": {"path": "data/customers.parquet", "attributes": ["loyalty_tier"]},
        },
        "model": {"seed": args.seed, "bootstrap_samples": 200},
        "mlflow": {"experiment": "uplift", "registered_model_name": "uplift"},
        "scoring": {"holdout": {"share": args.holdout, "salt": "uplift"}},
    }
    config = folder / "churnkit.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    cfg = load_config(config)
    trained = run_training(cfg, config_text=config.read_text())
    bundle = str(trained.export_dir)
    raw["scoring"]["model"] = bundle
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")

    horizon = cfg.snapshots.horizon_days
    nights = [dt.date(2025, m, 1) for m in range(9 - args.nights, 9)]  # to 2025-08-01
    frames = []
    for index, night in enumerate(nights):
        cfg = load_config(config)
        scored = run_scoring(cfg, as_of=night).ranked
        orders = pd.read_parquet(folder / raw["data"]["orders"]["path"])
        campaign = generator.simulate_campaign(
            orders,
            scored,
            horizon_days=horizon,
            tiers=TIERS,
            persuadable=PERSUADABLE,
            annoyed=ANNOYED,
            seed=args.seed + index,
        )
        path = data_dir / f"orders-after-{night}.parquet"
        campaign.orders.to_parquet(path, index=False)
        raw["data"]["orders"]["path"] = str(path.relative_to(folder))
        config.write_text(yaml.safe_dump(raw), encoding="utf-8")
        frames.append((night, scored, campaign))
        print(
            f"{night}: {len(campaign.contacts):,} contacted, {scored['holdout'].sum():,} held out"
        )

    # outcomes come from the data after every campaign: each night's horizon has passed
    cfg = load_config(config)
    data = open_source(cfg)
    model_spec = trained.result.model.feature_spec
    names = [n for n in trained.result.model.feature_names if n not in model_spec.attributes]
    rows = []
    for night, scored, campaign in frames:
        manifest = {"feature_spec": model_spec.model_dump(mode="json")}
        labels = night_labels(data, manifest, night, horizon)
        features = data.features([night], model_spec)
        part = scored[scored["risk_tier"].isin(TIERS)][
            ["customer_id", "holdout", "churn_probability", "status"]
        ]
        part = part.merge(features, on="customer_id").merge(
            labels[["customer_id", "churned"]], on="customer_id"
        )
        part["night"] = night
        part["true_flip"] = (
            campaign.truth.set_index("customer_id")["flipped"]
            .reindex(part["customer_id"])
            .fillna(0)
            .to_numpy()
        )
        rows.append(part)
    table = pd.concat(rows, ignore_index=True)
    table["treated"] = ~table["holdout"]
    table["retained"] = 1 - table["churned"]
    names = [n for n in names if n in table.columns]  # not BG/NBD: the model derives it
    train = table[table["night"] < nights[-1]]
    test = table[table["night"] == nights[-1]].reset_index(drop=True)
    model = fit_t_learner(train, train["treated"], train["retained"], names, seed=args.seed)
    scores = {
        "uplift (T-learner)": model.predict(test),
        "risk (churn probability)": test["churn_probability"].to_numpy(),
        "random": np.random.default_rng(args.seed).random(len(test)),
    }
    t, y = test["treated"].to_numpy(), test["retained"].to_numpy()
    print(
        f"\ntrain: {len(train):,} customer-nights ({train['treated'].sum():,} contacted); "
        f"test night {nights[-1]}: {len(test):,} customers of the {'/'.join(TIERS)} tiers "
        f"({t.sum():,} contacted, {(~t).sum():,} held out)\n"
    )
    print("| order | Qini coefficient | uplift@30% | true saved per contact, top 30% |")
    print("|---|---:|---:|---:|")
    flips = test["true_flip"].to_numpy()
    for name, score in scores.items():
        top = np.argsort(-score, kind="stable")[: int(0.3 * len(score))]
        contacted = top[t[top]]
        print(
            f"| {name} | {qini_coefficient(score, t, y):.4f} | "
            f"{uplift_at(score, t, y, 0.3) * 100:+.1f} pp | "
            f"{flips[contacted].mean():.3f} |"
        )
    rng = np.random.default_rng(0)
    differences = []
    for _ in range(1000):
        pick = rng.integers(0, len(test), len(test))
        differences.append(
            qini_coefficient(scores["uplift (T-learner)"][pick], t[pick], y[pick])
            - qini_coefficient(scores["risk (churn probability)"][pick], t[pick], y[pick])
        )
    low, high = np.percentile(differences, [2.5, 97.5])
    print(f"\nQini, uplift - risk: 95 % bootstrap interval [{low:+.4f}, {high:+.4f}]")


if __name__ == "__main__":
    main()
