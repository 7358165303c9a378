"""Uplift: whom does a contact change? A T-learner on the churn features, and Qini.

The customers most likely to leave are not necessarily the ones a contact keeps (some
are gone whatever is done, some stay anyway, some are put off). With past nights that
had both contacted and held-out customers, two LightGBM classifiers of retention
(ordered again within the horizon) are fitted on the same features: one on the
contacted customers, one on the held-out ones. A customer's uplift is the difference of
their two predicted retention probabilities (Kuenzel et al. 2019, the T-learner).

Orders of a list are compared by their Qini curve (Radcliffe 2007): going down the list,
the retained contacted customers minus the retained held-out ones scaled to the same
number, ``Q(n) = R_t(n) - R_c(n) * N_t(n) / N_c(n)``. The Qini coefficient is the area
between that curve and the straight line of a random order, per customer; larger is
better, 0 is no better than random.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from churnkit.features import FeatureSpec, feature_names

__all__ = [
    "UPLIFT_FILE",
    "UpliftModel",
    "UpliftTraining",
    "train_uplift",
    "fit_t_learner",
    "qini_coefficient",
    "qini_curve",
    "uplift_at",
]

UPLIFT_FILE = "uplift.json"


@dataclass(frozen=True)
class UpliftModel:
    """Two boosters of retention, contacted and held out, on ``feature_names``."""

    treated: lgb.Booster
    control: lgb.Booster
    feature_names: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Each customer's uplift: P(retained | contacted) - P(retained | not)."""
        missing = [n for n in self.feature_names if n not in features]
        if missing:
            from churnkit.errors import FeatureMismatchError

            raise FeatureMismatchError(
                f"the uplift model needs features {missing} that tonight's table lacks; "
                "train it again with `churnkit uplift CONFIG`"
            )
        frame = features[self.feature_names].astype("float64")
        return self.treated.predict(frame) - self.control.predict(frame)

    def save(self, folder: Path) -> Path:
        """``treated.txt`` and ``control.txt`` (LightGBM text) and ``uplift.json`` with the
        feature names, what it was fitted on and the boosters' SHA-256."""
        folder.mkdir(parents=True, exist_ok=True)
        sums = {}
        for name, booster in (("treated", self.treated), ("control", self.control)):
            text = booster.model_to_string()
            (folder / f"{name}.txt").write_text(text, encoding="utf-8")
            sums[name] = hashlib.sha256(text.encode()).hexdigest()
        meta = {"feature_names": self.feature_names, "metadata": self.metadata, "sha256": sums}
        (folder / UPLIFT_FILE).write_text(json.dumps(meta, indent=1, default=str), "utf-8")
        return folder

    @classmethod
    def load(cls, folder: Path) -> UpliftModel:
        """Read a saved uplift model, refusing a missing, damaged or edited one."""
        from churnkit.errors import ModelNotFoundError

        try:
            meta = json.loads((folder / UPLIFT_FILE).read_text(encoding="utf-8"))
            texts = {n: (folder / f"{n}.txt").read_text(encoding="utf-8") for n in meta["sha256"]}
        except (OSError, ValueError, KeyError) as err:
            raise ModelNotFoundError(
                f"no readable uplift model at {str(folder)!r} ({type(err).__name__}); train "
                "one with `churnkit uplift CONFIG` or fix `scoring.uplift_model`"
            ) from None
        for name, text in texts.items():
            if hashlib.sha256(text.encode()).hexdigest() != meta["sha256"][name]:
                raise ModelNotFoundError(
                    f"the uplift model at {str(folder)!r} is damaged or was changed: {name}.txt "
                    "does not match its checksum; train it again with `churnkit uplift CONFIG`"
                )
        return cls(
            lgb.Booster(model_str=texts["treated"]),
            lgb.Booster(model_str=texts["control"]),
            list(meta["feature_names"]),
            dict(meta.get("metadata", {})),
        )


def fit_t_learner(
    features: pd.DataFrame,
    treated: np.ndarray,
    retained: np.ndarray,
    feature_names: list[str],
    *,
    seed: int = 0,
    rounds: int = 200,
    num_threads: int = 2,
) -> UpliftModel:
    """Fit the contacted and the held-out retention models (small, regularised trees:
    the held-out group is usually a tenth of the contacted one)."""
    params = {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_child_samples": 50,
        "feature_fraction": 0.9,
        "lambda_l2": 1.0,
        "seed": seed,
        "deterministic": True,
        "num_threads": num_threads,
        "verbosity": -1,
    }
    treated = np.asarray(treated, dtype=bool)
    retained = np.asarray(retained, dtype="float64")
    frame = features[feature_names].astype("float64")

    def fit(rows: np.ndarray) -> lgb.Booster:
        data = lgb.Dataset(frame[rows], label=retained[rows], free_raw_data=True)
        return lgb.train(params, data, num_boost_round=rounds)

    return UpliftModel(fit(treated), fit(~treated), list(feature_names))


def qini_curve(
    score: np.ndarray, treated: np.ndarray, retained: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The Qini curve of the order by ``score`` (highest first): the share of customers
    taken and ``Q(n)`` per customer, from (0, 0) to (1, the overall uplift)."""
    order = np.lexsort((np.arange(len(score)), -np.asarray(score, dtype="float64")))
    t = np.asarray(treated, dtype=bool)[order]
    y = np.asarray(retained, dtype="float64")[order]
    n_t, n_c = np.cumsum(t), np.cumsum(~t)
    r_t, r_c = np.cumsum(y * t), np.cumsum(y * ~t)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = r_t - np.where(n_c > 0, r_c * n_t / n_c, 0.0)
    n = len(order)
    return np.concatenate([[0.0], np.arange(1, n + 1) / n]), np.concatenate([[0.0], q / n])


def qini_coefficient(score: np.ndarray, treated: np.ndarray, retained: np.ndarray) -> float:
    """The area between the Qini curve of ``score`` and a random order's straight line."""
    x, q = qini_curve(score, treated, retained)
    return float(np.trapezoid(q, x) - q[-1] / 2)


def uplift_at(score: np.ndarray, treated: np.ndarray, retained: np.ndarray, share: float) -> float:
    """Retention of the contacted minus the held-out customers among the top ``share``
    of the order by ``score``: what contacting only them would add per customer."""
    top = np.argsort(-np.asarray(score, dtype="float64"), kind="stable")[
        : max(1, int(round(share * len(score))))
    ]
    t = np.asarray(treated, dtype=bool)[top]
    y = np.asarray(retained, dtype="float64")[top]
    if not t.any() or t.all():
        return float("nan")
    return float(y[t].mean() - y[~t].mean())


@dataclass(frozen=True)
class UpliftTraining:
    """An uplift model fitted on every night, and how an earlier fit did out of time."""

    model: UpliftModel
    nights: list[str]
    test_night: str | None  # the last night, scored by a fit on the earlier ones
    metrics: dict[str, float]  # qini and uplift@30% of the uplift and the risk order

    def save(self, models_dir: Path, name: str) -> Path:
        """Write the model to ``models_dir/<name>-uplift/to-<last night>/``."""
        return self.model.save(models_dir / f"{name}-uplift" / f"to-{self.nights[-1]}")


def train_uplift(
    table: pd.DataFrame, spec: FeatureSpec, *, seed: int = 0, samples: int = 1000
) -> UpliftTraining:
    """Fit on ``table`` (:func:`churnkit.scoring.readout.uplift_nights`), on the numeric
    features of ``spec`` (the churn model's, customer attributes left out). With two
    nights or more, a fit on all but the last is first tested on the last, out of time:
    the Qini coefficient and uplift@30% of the uplift order against the risk order
    (``churn_probability``), and a bootstrap interval of the Qini difference."""
    names = [n for n in feature_names(spec) if n in table and n not in spec.attributes]
    nights = sorted(table["as_of"].astype(str).unique())
    metrics: dict[str, float] = {}
    test_night = None
    if len(nights) >= 2:
        test_night = nights[-1]
        earlier = table[table["as_of"].astype(str) < test_night]
        test = table[table["as_of"].astype(str) == test_night].reset_index(drop=True)
        fitted = fit_t_learner(earlier, earlier["treated"], earlier["retained"], names, seed=seed)
        t, y = test["treated"].to_numpy(), test["retained"].to_numpy()
        orders = {"uplift": fitted.predict(test), "risk": test["churn_probability"].to_numpy()}
        for name, score in orders.items():
            metrics[f"{name}_qini"] = qini_coefficient(score, t, y)
            metrics[f"{name}_uplift_at_30"] = uplift_at(score, t, y, 0.3)
        rng = np.random.default_rng(seed)
        differences = []
        for _ in range(samples):
            pick = rng.integers(0, len(test), len(test))
            differences.append(
                qini_coefficient(orders["uplift"][pick], t[pick], y[pick])
                - qini_coefficient(orders["risk"][pick], t[pick], y[pick])
            )
        low, high = np.percentile(differences, [2.5, 97.5])
        metrics |= {"qini_difference_low": float(low), "qini_difference_high": float(high)}
    model = fit_t_learner(table, table["treated"], table["retained"], names, seed=seed)
    model.metadata.update(nights=nights, test_night=test_night, metrics=metrics)
    return UpliftTraining(model, nights, test_night, metrics)
