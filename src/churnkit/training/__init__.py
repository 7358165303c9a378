"""Training: out-of-time split, LightGBM fit, the CRR baseline, test metrics.

:func:`train_churn_model` is pure: a labelled feature table and a split in, a
:class:`TrainingResult` out. Reading data and logging to MLflow happen in
:mod:`churnkit.pipelines`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from churnkit.config import ModelConfig
from churnkit.errors import DataError
from churnkit.features import LABEL_COLUMN, FeatureSpec, feature_names
from churnkit.training.baselines import CRRBaseline
from churnkit.training.metrics import score_metrics
from churnkit.training.model import ChurnModel, fit_booster
from churnkit.training.splits import SnapshotSplit, split_snapshots

__all__ = [
    "ChurnModel",
    "CRRBaseline",
    "SnapshotSplit",
    "TrainingResult",
    "evaluate_scores",
    "snapshot_table",
    "split_snapshots",
    "train_churn_model",
]

MODEL = "model"
CRR_BASELINE = "crr_baseline"
_MIN_PER_CLASS = 20


@dataclass(frozen=True)
class TrainingResult:
    """A trained model and how it and the CRR baseline did on the test snapshots."""

    model: ChurnModel
    metrics: dict[str, dict[str, float]]
    per_snapshot: pd.DataFrame
    snapshots: pd.DataFrame
    test_predictions: pd.DataFrame

    @property
    def beats_baseline(self) -> bool:
        """The quality gate: higher test PR-AUC and lift at 10 % than the CRR baseline."""
        model, base = self.metrics[MODEL], self.metrics[CRR_BASELINE]
        return model["pr_auc"] > base["pr_auc"] and model["lift_10"] > base["lift_10"]


def snapshot_table(dataset: pd.DataFrame, split: SnapshotSplit) -> pd.DataFrame:
    """Rows and churn rate per snapshot, with the part of the split it belongs to."""
    table = (
        dataset.groupby("as_of", sort=True)[LABEL_COLUMN]
        .agg(rows="size", churn_rate="mean")
        .reset_index()
    )
    table["part"] = [split.part_of(d) or "unused" for d in table["as_of"]]
    return table[["as_of", "part", "rows", "churn_rate"]]


def evaluate_scores(predictions: pd.DataFrame, scorers: list[str]) -> tuple[dict, pd.DataFrame]:
    """Pooled and per-snapshot metrics of each score column against ``churned``."""
    y = predictions[LABEL_COLUMN].to_numpy()
    pooled = {name: score_metrics(y, predictions[name].to_numpy()) for name in scorers}
    rows = [
        {"as_of": as_of, "scorer": name, **score_metrics(group[LABEL_COLUMN], group[name])}
        for as_of, group in predictions.groupby("as_of", sort=True)
        for name in scorers
    ]
    return pooled, pd.DataFrame(rows)


def train_churn_model(
    dataset: pd.DataFrame, split: SnapshotSplit, cfg: ModelConfig, spec: FeatureSpec
) -> TrainingResult:
    """Fit LightGBM and the CRR baseline, and evaluate both on the test snapshots.

    Parameters
    ----------
    dataset
        Output of :func:`churnkit.features.build_features` with labels, for every
        snapshot of ``split``.
    split
        Out-of-time split of the snapshot dates.
    cfg
        LightGBM settings.
    spec
        The feature spec the dataset was built with; stored in the model.

    Raises
    ------
    DataError
        When a part of the split has too few churned or retained customers.
    """
    part = dataset["as_of"].map(split.part_of)
    train, valid, test = (dataset[part == p] for p in ("train", "validation", "test"))
    for name, frame in (("training", train), ("validation", valid), ("test", test)):
        _check_classes(name, frame[LABEL_COLUMN])

    names = feature_names(spec)
    booster = fit_booster(
        train[names],
        train[LABEL_COLUMN].to_numpy(),
        valid[names],
        valid[LABEL_COLUMN].to_numpy(),
        cfg,
    )
    baseline = CRRBaseline().fit(train, train[LABEL_COLUMN])
    model = ChurnModel(
        booster=booster,
        feature_names=names,
        feature_spec=spec,
        baseline=baseline,
        metadata={
            "best_iteration": int(booster.best_iteration),
            "train_as_of": [d.isoformat() for d in split.train],
            "validation_as_of": [d.isoformat() for d in split.validation],
            "test_as_of": [d.isoformat() for d in split.test],
        },
    )
    predictions = test[["customer_id", "as_of", LABEL_COLUMN]].assign(
        **{MODEL: model.predict_proba(test), CRR_BASELINE: model.baseline_proba(test)}
    )
    pooled, per_snapshot = evaluate_scores(predictions, [MODEL, CRR_BASELINE])
    return TrainingResult(
        model=model,
        metrics=pooled,
        per_snapshot=per_snapshot,
        snapshots=snapshot_table(dataset, split),
        test_predictions=predictions.reset_index(drop=True),
    )


def _check_classes(name: str, labels: pd.Series) -> None:
    churned = int(np.sum(labels == 1))
    retained = int(np.sum(labels == 0))
    if churned < _MIN_PER_CLASS or retained < _MIN_PER_CLASS:
        raise DataError(
            f"the {name} snapshots have {churned} churned and {retained} retained customers; "
            f"training needs at least {_MIN_PER_CLASS} of each. Add data or customers, or "
            "change `snapshots.horizon_days` / `snapshots.activity_days`."
        )
