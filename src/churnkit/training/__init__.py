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
from churnkit.training.baselines import CRRBaseline, ScoreBaseline
from churnkit.training.calibration import fit_calibration
from churnkit.training.drift import drift_reference
from churnkit.training.metrics import bootstrap_pr_auc_difference, score_metrics
from churnkit.training.model import ChurnModel, fit_booster
from churnkit.training.splits import SnapshotSplit, split_snapshots

__all__ = [
    "SCORER_LABELS",
    "ChurnModel",
    "CRRBaseline",
    "SnapshotSplit",
    "TrainingResult",
    "beats",
    "evaluate_scores",
    "snapshot_table",
    "split_snapshots",
    "train_churn_model",
]

MODEL = "model"
UNCALIBRATED = "model_uncalibrated"
CRR_BASELINE = "crr_baseline"
RECENCY_BASELINE = "recency_baseline"
RFM_BASELINE = "rfm_baseline"
BASELINES = (CRR_BASELINE, RECENCY_BASELINE, RFM_BASELINE)
SCORER_LABELS = {
    MODEL: "LightGBM (calibrated)",
    UNCALIBRATED: "LightGBM (raw)",
    CRR_BASELINE: "CRR baseline",
    RECENCY_BASELINE: "recency alone",
    RFM_BASELINE: "RFM score",
}
_MIN_PER_CLASS = 20


@dataclass(frozen=True)
class TrainingResult:
    """A trained model and how it and the baselines did on the test snapshots.

    ``crr_difference`` is the model's PR-AUC minus the CRR baseline's, with a 95 %
    customer-level bootstrap interval (``ci_low``, ``ci_high``).
    """

    model: ChurnModel
    metrics: dict[str, dict[str, float]]
    per_snapshot: pd.DataFrame
    snapshots: pd.DataFrame
    test_predictions: pd.DataFrame
    crr_difference: dict[str, float]

    @property
    def baselines_beaten(self) -> dict[str, bool]:
        """For each baseline evaluated: does the model beat it (see :func:`beats`)?"""
        return {
            name: beats(self.metrics[MODEL], self.metrics[name])
            for name in BASELINES
            if name in self.metrics
        }

    @property
    def beats_baseline(self) -> bool:
        """The quality gate: the model beats the CRR baseline (see :func:`beats`)."""
        return beats(self.metrics[MODEL], self.metrics[CRR_BASELINE])


def beats(model: dict[str, float], baseline: dict[str, float]) -> bool:
    """Higher test PR-AUC, and higher lift at 10 % unless nobody can have one.

    When both scorers' top 10 % are all churners (precision 1.0), both sit at the
    highest lift the churn rate allows, so lift cannot separate them and PR-AUC decides.
    """
    lift_capped = model["precision_10"] == baseline["precision_10"] == 1.0
    higher_lift = model["lift_10"] > baseline["lift_10"] or lift_capped
    return model["pr_auc"] > baseline["pr_auc"] and higher_lift


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
    dataset: pd.DataFrame,
    split: SnapshotSplit,
    cfg: ModelConfig,
    spec: FeatureSpec,
    *,
    drift_bins: int = 10,
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
    drift_bins
        Bins per feature of the drift reference (the validation snapshots' distribution).

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
    # the CRR baseline segments by RFM segment when there is one, else by recency bucket
    segment = "rfm_segment" if "rfm_segment" in train else "segment"
    baseline = CRRBaseline(segment_column=segment).fit(train, train[LABEL_COLUMN])
    uncalibrated = ChurnModel(booster, names, spec, baseline)
    valid_raw = uncalibrated.predict_raw(valid)
    calibration = fit_calibration(valid_raw, valid[LABEL_COLUMN].to_numpy())
    model = ChurnModel(
        booster=booster,
        feature_names=names,
        feature_spec=spec,
        baseline=baseline,
        calibration=calibration,
        drift_reference=drift_reference(valid, names, calibration.apply(valid_raw), drift_bins),
        metadata={
            "best_iteration": int(booster.best_iteration),
            "train_as_of": [d.isoformat() for d in split.train],
            "validation_as_of": [d.isoformat() for d in split.validation],
            "test_as_of": [d.isoformat() for d in split.test],
        },
    )
    scores = {
        MODEL: model.predict_proba(test),
        UNCALIBRATED: model.predict_raw(test),
        CRR_BASELINE: model.baseline_proba(test),
    }
    for name, other in _score_baselines(spec).items():
        scores[name] = other.fit(train, train[LABEL_COLUMN]).predict_proba(test)[:, 1]
    predictions = test[["customer_id", "as_of", LABEL_COLUMN]].assign(**scores)
    pooled, per_snapshot = evaluate_scores(predictions, list(scores))
    crr_difference = bootstrap_pr_auc_difference(
        predictions[LABEL_COLUMN].to_numpy(),
        predictions[MODEL].to_numpy(),
        predictions[CRR_BASELINE].to_numpy(),
        predictions["customer_id"].to_numpy(),
        samples=cfg.bootstrap_samples,
        seed=cfg.seed,
    )
    return TrainingResult(
        model=model,
        metrics=pooled,
        per_snapshot=per_snapshot,
        snapshots=snapshot_table(dataset, split),
        test_predictions=predictions.reset_index(drop=True),
        crr_difference=crr_difference,
    )


def _score_baselines(spec: FeatureSpec) -> dict[str, ScoreBaseline]:
    baselines = {RECENCY_BASELINE: ScoreBaseline(("recency_days",), increasing=True)}
    if spec.has("segments"):
        baselines[RFM_BASELINE] = ScoreBaseline(("r_score", "f_score", "m_score"), increasing=False)
    return baselines


def _check_classes(name: str, labels: pd.Series) -> None:
    churned = int(np.sum(labels == 1))
    retained = int(np.sum(labels == 0))
    if churned < _MIN_PER_CLASS or retained < _MIN_PER_CLASS:
        raise DataError(
            f"the {name} snapshots have {churned} churned and {retained} retained customers; "
            f"training needs at least {_MIN_PER_CLASS} of each. Add data or customers, or "
            "change `snapshots.horizon_days` / `snapshots.activity_days`."
        )
