"""Uplift: a T-learner finds whom a contact changes where risk alone does not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnkit.training.uplift import fit_t_learner, qini_coefficient, qini_curve, uplift_at


def _customers(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Risk grows with recency; a contact keeps only the middle (the lapsing), not the
    long gone or the ones who stay anyway; half of everyone is contacted at random."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {"recency_days": rng.uniform(0, 365, n), "orders_365d": rng.poisson(3, n).astype(float)}
    )
    risk = 1 / (1 + np.exp(-(frame["recency_days"] - 180) / 40))
    persuadable = ((frame["recency_days"] > 90) & (frame["recency_days"] < 180)).to_numpy()
    treated = rng.random(n) < 0.5
    stay = 1 - risk.to_numpy() + np.where(treated & persuadable, 0.3, 0.0)
    retained = rng.random(n) < np.clip(stay, 0, 1)
    return frame, treated, retained, risk.to_numpy()


def test_qini_of_a_perfect_and_a_random_order():
    treated = np.array([True, False] * 50)
    retained = np.array([True, False] * 25 + [False, False] * 25)  # contact works in the first half
    good = -np.arange(100)  # the first half first
    # the curve climbs to 0.25 at half the list, then stays: area 0.1875, random 0.125
    assert abs(qini_coefficient(good, treated, retained) - 0.0625) < 0.002  # steps of 1/100
    assert qini_coefficient(-good, treated, retained) < 0
    x, q = qini_curve(good, treated, retained)
    assert x[0] == q[0] == 0 and x[-1] == 1
    assert q[-1] == qini_curve(-good, treated, retained)[1][-1]  # the same customers in all
    assert uplift_at(good, treated, retained, 0.5) == 1.0


def test_the_t_learner_ranks_the_persuadable_above_the_most_at_risk_out_of_sample():
    train, treated, retained, _ = _customers(20_000, seed=1)
    model = fit_t_learner(train, treated, retained, ["recency_days", "orders_365d"], rounds=100)
    test, t_test, y_test, risk = _customers(20_000, seed=2)
    uplift = model.predict(test)
    by_uplift = qini_coefficient(uplift, t_test, y_test)
    by_risk = qini_coefficient(risk, t_test, y_test)
    # the best order's area here is about 0.014 (a quarter persuadable, +30 points, half
    # contacted); the risk order puts the long gone first and does no better than random
    assert by_uplift > 0.009 and by_risk < 0.003
    assert uplift_at(uplift, t_test, y_test, 0.25) > uplift_at(risk, t_test, y_test, 0.25) + 0.1


def test_churnkit_uplift_learns_from_past_nights_and_orders_the_list(trained, tmp_path):
    """Three nights scored with a holdout and followed by campaigns (whose effect depends
    on the status), then `churnkit uplift`, then a night scored with the uplift model."""
    import json

    import yaml
    from tests.conftest import write_config
    from typer.testing import CliRunner

    from churnkit.cli import app
    from churnkit.config import load_config
    from churnkit.data.generator import simulate_campaign
    from churnkit.errors import ModelNotFoundError
    from churnkit.pipelines import run_scoring, run_uplift
    from churnkit.training.uplift import UpliftModel

    cfg, outcome, _ = trained
    orders = pd.read_parquet(cfg.data.orders.path)
    scoring = {
        "model": str(outcome.export_dir),
        "output_dir": "scores",
        "holdout": {"share": 0.3, "salt": "uplift"},
    }
    contacts = []
    for index, night in enumerate(pd.to_datetime(["2025-06-01", "2025-07-01", "2025-08-01"])):
        (tmp_path / f"orders-{index}.parquet").unlink(missing_ok=True)
        orders.to_parquet(tmp_path / f"orders-{index}.parquet", index=False)
        data = {"orders": {"path": str(tmp_path / f"orders-{index}.parquet")}}
        config = write_config(
            tmp_path / "p", cfg.data.orders.path.parent, data=data, scoring=scoring
        )
        scored = run_scoring(load_config(config), as_of=night.date()).ranked
        campaign = simulate_campaign(
            orders,
            scored,
            horizon_days=90,
            persuadable={"at risk": 0.6, "lapsing": 0.5, "lapsed": 0.02, "active": 0.05},
            annoyed={"active": 0.2},
            seed=index,
        )
        orders = campaign.orders
        contacts.append(campaign.contacts)
    orders.to_parquet(tmp_path / "orders-final.parquet", index=False)
    pd.concat(contacts).to_parquet(tmp_path / "contacts.parquet", index=False)
    data = {
        "orders": {"path": str(tmp_path / "orders-final.parquet")},
        "contacts": {"path": str(tmp_path / "contacts.parquet")},
    }
    config = write_config(tmp_path / "p", cfg.data.orders.path.parent, data=data, scoring=scoring)

    fitted, folder = run_uplift(load_config(config))
    assert fitted.nights == ["2025-06-01", "2025-07-01", "2025-08-01"]
    assert fitted.test_night == "2025-08-01"
    assert set(fitted.metrics) >= {"uplift_qini", "risk_qini", "qini_difference_low"}
    assert all(np.isfinite(v) for v in fitted.metrics.values())
    model = UpliftModel.load(folder)
    assert (
        model.feature_names == fitted.model.feature_names and "recency_days" in model.feature_names
    )

    shown = CliRunner().invoke(app, ["uplift", str(config)])
    assert shown.exit_code == 0, shown.output
    assert "out of time: the night 2025-08-01" in shown.stdout

    raw = yaml.safe_load(config.read_text())
    raw["scoring"]["uplift_model"] = str(folder)
    config.write_text(yaml.safe_dump(raw))
    runner = CliRunner()
    assert runner.invoke(app, ["--quiet", "score", str(config)]).exit_code == 0
    night = next(p for p in sorted((config.parent / "scores").iterdir()) if "2026-01-01" in p.name)
    scores = pd.read_parquet(night / "scores.parquet")
    assert scores["uplift"].notna().all() and scores["uplift"].between(-1, 1).all()
    expected = (scores["uplift"] * scores["customer_value_365d"]).round(2)
    assert np.allclose(scores["expected_saved_value"], expected)
    pulled = runner.invoke(app, ["at-risk", str(config), "--sort", "saved", "--format", "json"])
    saved = [row["expected_saved_value"] for row in json.loads(pulled.stdout)]
    assert saved == sorted(saved, reverse=True)

    (folder / "treated.txt").write_text("tree\n", encoding="utf-8")  # an edited model
    with pytest.raises(ModelNotFoundError, match="does not match its checksum"):
        UpliftModel.load(folder)
