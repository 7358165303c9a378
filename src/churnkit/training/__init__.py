"""Training: walk-forward evaluation, the deployment fit, baselines, metrics.

:func:`train_churn_model` is pure: a labelled feature table and a
:class:`~churnkit.training.splits.WalkForward` plan in, a :class:`TrainingResult` out.
Reading data and logging to MLflow happen in :mod:`churnkit.pipelines`.

One *fit* (:func:`fit_churn_model`) is what production does with the labelled snapshots
it has: LightGBM on all but the latest, early stopping (on ROC-AUC by default) and
calibration on the latest, then a refit on all of them with the early-stopping rounds
scaled by the rows added. The walk-forward test repeats that fit for each of the last
few labelled dates ``T`` with the snapshots whose label windows end by ``T``, and scores
``T``: those metrics, beside every baseline fitted on the same snapshots, are the ones
printed, logged and gated on. The registered model is the fit on every labelled snapshot.
With ``model.calibration: auto`` every walk-forward fit calibrates with each map that
keeps the ranking, and the deployment fit uses the one with the lowest calibration error
on the test dates.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from churnkit.config import ModelConfig
from churnkit.errors import DataError
from churnkit.features import LABEL_COLUMN, FeatureSpec, compact_features, feature_names
from churnkit.training.baselines import BGNBD_COLUMN, BGNBDBaseline, CRRBaseline, ScoreBaseline
from churnkit.training.bgnbd import bgnbd_no_purchase_probability
from churnkit.training.calibration import (
    AUTO_CANDIDATES,
    Calibration,
    choose_calibration,
    fit_calibration,
)
from churnkit.training.drift import SCORE, drift_reference, population_stability
from churnkit.training.metrics import (
    expected_calibration_error,
    score_metrics,
    walk_forward_intervals,
)
from churnkit.training.model import ChurnModel, fit_booster, refit_booster
from churnkit.training.splits import (
    FitPlan,
    WalkForward,
    plan_fit,
    plan_for_data,
    plan_walk_forward,
)

__all__ = [
    "BASELINES",
    "SCORER_LABELS",
    "ChurnModel",
    "CRRBaseline",
    "FitPlan",
    "TrainingResult",
    "WalkForward",
    "decide_promotion",
    "describe_comparison",
    "evaluate_scores",
    "fit_churn_model",
    "plan_fit",
    "plan_for_data",
    "plan_walk_forward",
    "snapshot_table",
    "train_churn_model",
]

MODEL = "model"
UNCALIBRATED = "model_uncalibrated"
CRR_BASELINE = "crr_baseline"
RECENCY_BASELINE = "recency_baseline"
RFM_BASELINE = "rfm_baseline"
BGNBD_BASELINE = "bgnbd_baseline"
BASELINES = (CRR_BASELINE, RECENCY_BASELINE, RFM_BASELINE, BGNBD_BASELINE)
SCORER_LABELS = {
    MODEL: "LightGBM (as served)",
    UNCALIBRATED: "LightGBM (raw)",
    CRR_BASELINE: "CRR baseline",
    RECENCY_BASELINE: "recency alone",
    RFM_BASELINE: "RFM score",
    BGNBD_BASELINE: "BG/NBD",
}
_MIN_PER_CLASS = 20


@dataclass(frozen=True)
class TrainingResult:
    """The deployment model and how its protocol did in the walk-forward test.

    ``metrics`` are pooled over the walk-forward test dates, for the model and every
    baseline; ``comparisons`` holds, per baseline, the model's PR-AUC and ROC-AUC minus
    the baseline's with a 95 % paired customer-level bootstrap interval; ``tonight``, per
    scorer, what one more night's list should achieve
    (:func:`~churnkit.training.metrics.tonight_intervals`).
    """

    model: ChurnModel
    metrics: dict[str, dict[str, float]]
    per_snapshot: pd.DataFrame
    snapshots: pd.DataFrame
    test_predictions: pd.DataFrame
    comparisons: dict[str, dict[str, dict[str, float]]]
    tonight: dict[str, dict[str, dict[str, float]]] = dataclasses.field(default_factory=dict)

    @property
    def crr_difference(self) -> dict[str, float]:
        """PR-AUC of the model minus the CRR baseline's, with its interval."""
        return self.comparisons[CRR_BASELINE]["pr_auc"]

    @property
    def best_baseline(self) -> str:
        """The baseline with the highest walk-forward PR-AUC (ties: the first in BASELINES)."""
        present = [name for name in BASELINES if name in self.metrics]
        return max(present, key=lambda name: self.metrics[name]["pr_auc"])

    @property
    def baselines_beaten(self) -> dict[str, bool]:
        """For each baseline: is the model's PR-AUC higher beyond the bootstrap noise?"""
        return {name: diffs["pr_auc"]["ci_low"] > 0 for name, diffs in self.comparisons.items()}

    @property
    def beats_baseline(self) -> bool:
        """The quality gate: the model clearly beats the best baseline (interval above 0)."""
        return self.baselines_beaten[self.best_baseline]


def describe_comparison(result: TrainingResult, name: str) -> str:
    """``recency alone (best baseline): PR-AUC +0.0404 [+0.0352, +0.0459], ROC-AUC ...``."""
    parts = []
    for metric, label in (("pr_auc", "PR-AUC"), ("roc_auc", "ROC-AUC")):
        d = result.comparisons[name][metric]
        parts.append(f"{label} {d['difference']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]")
    best = " (best baseline)" if name == result.best_baseline else ""
    return f"{SCORER_LABELS[name]}{best}: {', '.join(parts)}"


def decide_promotion(
    result: TrainingResult, champion: str | None, incumbent: dict | None, *, force: bool = False
) -> tuple[bool, str]:
    """Promote when the model clearly beats the best baseline and the champion (or when
    ``force``d, saying what the comparisons said); and why.

    ``incumbent`` is the champion version's metadata. Versions are compared as deployed:
    on the walk-forward test dates both were tested on, each scored by a fit made before
    that date (mean PR-AUC over those dates). A champion with no such date in common
    (older data, or trained before walk-forward tests) gives way to the newer model,
    which passed the gate on fresher data.
    """
    promoted, reason = _compare_for_promotion(result, champion, incumbent)
    if force and not promoted:
        return True, f"forced with --force-promote; otherwise: {reason}"
    return promoted, reason


def _compare_for_promotion(
    result: TrainingResult, champion: str | None, incumbent: dict | None
) -> tuple[bool, str]:
    ours = result.metrics[MODEL]
    best = result.best_baseline
    if not result.beats_baseline:
        diff = result.comparisons[best]["pr_auc"]
        return False, (
            f"does not clearly beat the best baseline, {SCORER_LABELS[best]} (walk-forward "
            f"PR-AUC {ours['pr_auc']:.4f} vs {result.metrics[best]['pr_auc']:.4f}; difference "
            f"{diff['difference']:+.4f}, 95% interval [{diff['ci_low']:+.4f}, "
            f"{diff['ci_high']:+.4f}])"
        )
    if champion is None:
        return True, f"first model that clearly beats the best baseline, {SCORER_LABELS[best]}"
    theirs = (incumbent or {}).get("walk_forward_pr_auc", {})
    mine = result.model.metadata["walk_forward_pr_auc"]
    common = sorted(set(mine) & set(theirs))
    if not common:
        return True, (
            f"clearly beats the best baseline; champion v{champion} has no walk-forward test "
            "date in common with it, so the newer model replaces it"
        )
    ours_mean = float(np.mean([mine[d] for d in common]))
    theirs_mean = float(np.mean([theirs[d] for d in common]))
    dates = ", ".join(common)
    verdict = "beats" if ours_mean > theirs_mean else "does not beat"
    return ours_mean > theirs_mean, (
        f"{verdict} champion v{champion} on the walk-forward test dates both had, {dates} "
        f"(mean PR-AUC {ours_mean:.4f} vs {theirs_mean:.4f})"
    )


def snapshot_table(dataset: pd.DataFrame, plan: WalkForward) -> pd.DataFrame:
    """Rows and churn rate per labelled snapshot, with its role in the deployment fit
    and whether it is a walk-forward test date."""
    table = (
        dataset.groupby("as_of", sort=True)[LABEL_COLUMN]
        .agg(rows="size", churn_rate="mean")
        .reset_index()
    )
    deployment = plan.deployment
    table["part"] = ["validation" if d in deployment.validation else "fit" for d in table["as_of"]]
    table["walk_forward_test"] = table["as_of"].isin(plan.test)
    return table[["as_of", "part", "walk_forward_test", "rows", "churn_rate"]]


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


def fit_churn_model(
    dataset: pd.DataFrame,
    plan: FitPlan,
    cfg: ModelConfig,
    spec: FeatureSpec,
    *,
    horizon_days: int = 90,
    calibration: str | None = None,
) -> ChurnModel:
    """One production fit on the snapshots of ``plan`` (see the module docstring).

    Parameters
    ----------
    dataset
        Labelled features (:func:`churnkit.features.build_features`) of at least the
        snapshots of ``plan``.
    plan
        Which snapshots grow the trees and which stop them early and calibrate.
    cfg
        LightGBM and calibration settings.
    spec
        The feature spec the dataset was built with; stored in the model.
    horizon_days
        The label window, for the BG/NBD baseline's probability of no purchase in it.
    calibration
        The calibration method; default ``cfg.calibration``, where ``auto`` means the
        first of the candidates (:func:`train_churn_model` chooses among them).

    Raises
    ------
    DataError
        When the fitting or validation snapshots have too few churned or retained
        customers.
    """
    method = calibration or cfg.calibration
    dataset = _training_table(dataset, spec)
    model, _ = _fit(dataset, plan, cfg, spec, horizon_days, _candidates(method))
    return model


def _candidates(method: str) -> tuple[str, ...]:
    return AUTO_CANDIDATES if method == "auto" else (method,)


def _fit(
    dataset: pd.DataFrame,
    plan: FitPlan,
    cfg: ModelConfig,
    spec: FeatureSpec,
    horizon_days: int,
    methods: tuple[str, ...],
) -> tuple[ChurnModel, dict[str, Calibration]]:
    """:func:`fit_churn_model`, calibrated with each of ``methods`` (the model carries
    the first); the maps are returned by method."""
    used = _rows(dataset, plan.dates)
    fit, valid = _rows(used, plan.fit), _rows(used, plan.validation)
    _check_classes(f"fitting snapshots ({_dates(plan.fit)})", fit[LABEL_COLUMN])
    _check_classes(f"early-stopping snapshots ({_dates(plan.validation)})", valid[LABEL_COLUMN])

    names = feature_names(spec) + ([BGNBD_COLUMN] if cfg.bgnbd_feature else [])
    stopped = fit_booster(
        fit[names], fit[LABEL_COLUMN].to_numpy(), valid[names], valid[LABEL_COLUMN].to_numpy(), cfg
    )
    best = int(stopped.best_iteration) or stopped.current_iteration()
    stopped_scores = stopped.predict(valid[names], num_iteration=best)
    calibrations = {
        method: fit_calibration(stopped_scores, valid[LABEL_COLUMN].to_numpy(), method)
        for method in methods
    }
    # the refit sees more rows than the early-stopped fit: scale its rounds alike
    rounds = min(cfg.max_rounds, max(1, math.ceil(best * len(used) / len(fit))))
    booster = refit_booster(used[names], used[LABEL_COLUMN].to_numpy(), rounds, cfg)
    # the CRR baseline segments by RFM segment when there is one, else by recency bucket
    segment = "rfm_segment" if "rfm_segment" in used else "segment"
    baseline = CRRBaseline(segment_column=segment).fit(used, used[LABEL_COLUMN])
    model = ChurnModel(
        booster=booster,
        feature_names=names,
        feature_spec=spec,
        baseline=baseline,
        calibration=calibrations[methods[0]],
        metadata={
            "feature_dtype": "float32",  # what predict_raw casts features to, as trained
            "best_iteration": best,
            "refit_rounds": rounds,
            "early_stopping_metric": cfg.early_stopping_metric,
            "horizon_days": horizon_days,
            "calibration": methods[0],
            "train_as_of": [d.isoformat() for d in plan.dates],
            "validation_as_of": [d.isoformat() for d in plan.validation],
        },
    )
    model.score_baselines = {
        name: other.fit(used, used[LABEL_COLUMN])
        for name, other in _score_baselines(spec, horizon_days).items()
    }
    return model, calibrations


def train_churn_model(
    dataset: pd.DataFrame,
    plan: WalkForward,
    cfg: ModelConfig,
    spec: FeatureSpec,
    *,
    horizon_days: int = 90,
    drift_bins: int = 10,
    drift_population: pd.DataFrame | None = None,
) -> TrainingResult:
    """The walk-forward test, then the deployment fit; see the module docstring.

    Parameters
    ----------
    dataset
        Labelled features for every labelled snapshot of ``plan``.
    plan
        The walk-forward test dates with the fit made before each, and the deployment fit.
    cfg
        LightGBM settings, the seed and the bootstrap resamples.
    spec
        The feature spec the dataset was built with; stored in the model.
    horizon_days
        The label window the dataset's labels were made with.
    drift_bins
        Bins per feature of the drift reference.
    drift_population
        Features of the population the model is trained for (at the data's end, no
        labels needed): the drift reference, so scoring measures change since training.
        Default: the latest labelled snapshot.

    Raises
    ------
    DataError
        When a fit or a test date has too few churned or retained customers.
    """
    dataset = _training_table(dataset, spec)
    # BG/NBD is fitted once per snapshot, on its customers' history before it
    bgnbd = bgnbd_no_purchase_probability(dataset, horizon_days).astype("float32")
    dataset = dataset.assign(**{BGNBD_COLUMN: bgnbd})
    methods = _candidates(cfg.calibration)
    scored, calibrated = [], {method: [] for method in methods}
    for test_date, fit_plan in plan.backtests:
        test = dataset[dataset["as_of"] == test_date]
        _check_classes(f"walk-forward test snapshot {test_date}", test[LABEL_COLUMN])
        model, calibrations = _fit(dataset, fit_plan, cfg, spec, horizon_days, methods)
        raw = model.predict_raw(test)
        for method, calibration in calibrations.items():
            calibrated[method].append(calibration.apply(raw))
        scores = {UNCALIBRATED: raw, CRR_BASELINE: model.baseline_proba(test)}
        for name, other in model.score_baselines.items():
            scores[name] = other.predict_proba(test)[:, 1]
        scored.append(test[["customer_id", "as_of", LABEL_COLUMN]].assign(**scores))
    predictions = pd.concat(scored, ignore_index=True)
    # the calibration the deployment fit uses: the lowest error on the test dates
    candidates = {method: np.concatenate(parts) for method, parts in calibrated.items()}
    chosen = choose_calibration(predictions[LABEL_COLUMN].to_numpy(), candidates)
    predictions.insert(3, MODEL, candidates[chosen])
    scorers = [c for c in predictions.columns if c in SCORER_LABELS]
    pooled, per_snapshot = evaluate_scores(predictions, scorers)
    comparisons, tonight = walk_forward_intervals(
        predictions[LABEL_COLUMN].to_numpy(),
        {name: predictions[name].to_numpy() for name in (MODEL, *BASELINES) if name in predictions},
        predictions["customer_id"].to_numpy(),
        predictions["as_of"].to_numpy(),
        reference=MODEL,
        samples=cfg.bootstrap_samples,
        seed=cfg.seed,
    )
    model = fit_churn_model(
        dataset, plan.deployment, cfg, spec, horizon_days=horizon_days, calibration=chosen
    )
    model.metadata["calibration_ece"] = {
        method: round(expected_calibration_error(predictions[LABEL_COLUMN], p), 6)
        for method, p in candidates.items()
    }
    population = (
        dataset[dataset["as_of"] == max(plan.labelled)]
        if drift_population is None
        else model.add_derived_features(drift_population)
    )
    tonight_scores = model.predict_proba(population)
    model.drift_reference = drift_reference(
        population, model.feature_names, tonight_scores, drift_bins
    )
    model.metadata["drift_reference_as_of"] = max(population["as_of"]).isoformat()
    # does the population the model is made for look like the one it was tested on?
    last_test = dataset[dataset["as_of"] == plan.test[-1]]
    tested = drift_reference(last_test, [], model.predict_proba(last_test), drift_bins)
    model.metadata["population_shift_psi"] = round(
        population_stability(tested, population, tonight_scores)[SCORE], 4
    )
    result = TrainingResult(
        model=model,
        metrics=pooled,
        per_snapshot=per_snapshot,
        snapshots=snapshot_table(dataset, plan),
        test_predictions=predictions,
        comparisons=comparisons,
        tonight=tonight,
    )
    model.metadata["test_as_of"] = [d.isoformat() for d in plan.test]
    model.metadata["best_baseline"] = result.best_baseline
    # what the protocol achieved on each test date, for comparing later versions fairly
    model.metadata["walk_forward_pr_auc"] = {
        row.as_of.isoformat(): round(float(row.pr_auc), 6)
        for row in per_snapshot[per_snapshot["scorer"] == MODEL].itertuples()
    }
    return result


def _training_table(dataset: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """``dataset`` as every fit reads it: compact (float32 features, categorical text;
    :func:`~churnkit.features.compact_features`), ordered by as_of, so that the
    snapshots of a fit, always the earliest ones, are a slice of it and not a copy."""
    dataset = compact_features(dataset, spec)
    if not dataset["as_of"].is_monotonic_increasing:
        dataset = dataset.sort_values("as_of", kind="stable", ignore_index=True)
    return dataset


def _rows(dataset: pd.DataFrame, dates: tuple[dt.date, ...]) -> pd.DataFrame:
    """The rows of ``dates``: a slice of ``dataset`` (no copy) when they are adjacent."""
    positions = np.flatnonzero(dataset["as_of"].isin(dates).to_numpy())
    if positions.size and positions[-1] + 1 - positions[0] == positions.size:
        return dataset.iloc[positions[0] : positions[-1] + 1]
    return dataset.iloc[positions]


def _dates(dates: tuple) -> str:
    return ", ".join(d.isoformat() for d in dates)


def _score_baselines(spec: FeatureSpec, horizon_days: int) -> dict[str, ScoreBaseline]:
    baselines = {RECENCY_BASELINE: ScoreBaseline(("recency_days",), increasing=True)}
    if spec.has("segments"):
        baselines[RFM_BASELINE] = ScoreBaseline(("r_score", "f_score", "m_score"), increasing=False)
    baselines[BGNBD_BASELINE] = BGNBDBaseline(horizon_days)
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
