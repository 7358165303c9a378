"""The model card: what a retention manager should know before trusting the list.

Markdown, logged with every training run (``model_card.md``) and set as the description
of the registered model version, so the registry UI shows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from churnkit.config import Config
from churnkit.report.figures import feature_importance
from churnkit.training import (
    CRR_BASELINE,
    MODEL,
    SCORER_LABELS,
    UNCALIBRATED,
    TrainingResult,
    describe_comparison,
)

__all__ = ["model_card"]

_METRICS = (
    ("roc_auc", "ROC-AUC"),
    ("pr_auc", "PR-AUC"),
    ("lift_10", "lift@10%"),
    ("capture_10", "capture@10%"),
    ("brier", "Brier"),
    ("ece", "ECE"),
)


def model_card(result: TrainingResult, cfg: Config, data_summary: Mapping[str, Any]) -> str:
    """The model card of a trained model, as Markdown, without its title.

    The caller adds ``# Model card: NAME vVERSION`` once the registry has given the
    version, so the card is built (and can fail) before anything is registered.
    """
    model = result.model
    spec = model.feature_spec
    horizon = cfg.snapshots.horizon_days
    snapshots = result.snapshots
    meta = model.metadata
    segment = "RFM segment" if model.baseline.segment_column == "rfm_segment" else "recency bucket"
    lines = [
        "## Intended use",
        f"Rank the active customers of a night by the probability that they place no "
        f"qualifying order in the next {horizon} days, so a retention team can choose whom "
        "to contact first and how (reasons and recommended actions come with every score). "
        "Not for decisions about a customer without a person reviewing them, nor for "
        "populations unlike the training data: scoring measures drift (PSI) and stops when "
        f"the scores drift beyond {cfg.scoring.drift.psi_threshold}.",
        "",
        "## Data",
        f"- Orders: {data_summary.get('orders', '?'):,} rows, "
        f"{data_summary.get('customers', '?'):,} customers, "
        f"{str(data_summary.get('first_order_at', '?'))[:10]} to "
        f"{str(data_summary.get('last_order_at', '?'))[:10]}.",
        f"- Population at a snapshot date (as_of): every customer with a qualifying order in "
        f"the {spec.activity_days} days before it.",
        f"- Features see only orders and events before as_of; families: "
        f"{', '.join(spec.families)}; {len(model.feature_names)} features.",
        "",
        _snapshot_table(snapshots),
        "",
        "## Label",
        f"`churned = 1` when the customer places no qualifying order (status completed, "
        f"amount at least {spec.min_order_amount:g}) in `[as_of, as_of + {horizon} days)`.",
        "",
        "## Training",
        f"LightGBM on {len(meta['train_as_of'])} labelled snapshots: early stopping on "
        f"{meta.get('early_stopping_metric', 'the validation metric')} of the latest "
        f"({', '.join(meta['validation_as_of'])}) at round {meta['best_iteration']}, then refit "
        f"on all of them with {meta.get('refit_rounds', meta['best_iteration'])} rounds.",
        "",
        "## Metrics against baselines (walk-forward test)",
        "Each test date was scored by a model fitted exactly as this one, on the snapshots "
        "whose label windows ended by that date; the baselines were fitted on the same "
        "snapshots. These are the figures to expect from tonight's list.",
        "",
        _metrics_table(result.metrics, segment),
        "",
        *_comparison_lines(result),
        "",
        "## Calibration",
        f"{_CALIBRATION.get(meta.get('calibration', 'isotonic'))}. Expected calibration error in "
        f"the walk-forward test: {result.metrics[UNCALIBRATED]['ece']:.4f} raw, "
        f"{result.metrics[MODEL]['ece']:.4f} calibrated{_chosen_by(meta)}.",
        "",
        "## Top features (total split gain)",
        "",
        *[
            f"{i}. `{name}`"
            for i, name in enumerate(feature_importance(model).head(10).index, start=1)
        ],
        "",
        "## Limitations",
        "- The CRR baseline is the reference: if the model stops beating it, retrain or "
        "investigate before trusting the ranking.",
        "- Reasons are TreeSHAP contributions: they explain the model, not the customer's motives.",
        f"- The label needs {horizon} days to be known; `churnkit evaluate` backtests a night "
        "once they have passed.",
    ]
    return "\n".join(lines) + "\n"


_CALIBRATION = {
    "sigmoid": "Platt scaling (a sigmoid of the score's log-odds, which keeps the ranking)",
    "beta": "Beta calibration (a logistic map of the score's logarithms, which keeps the ranking)",
    "isotonic": "Isotonic regression",
    "none": "No calibration (the booster's own probabilities were the best calibrated)",
}


def _chosen_by(meta: dict) -> str:
    errors = meta.get("calibration_ece", {})
    if len(errors) < 2:
        return ""
    listed = ", ".join(f"{method} {ece:.4f}" for method, ece in errors.items())
    return f" (chosen as the lowest error of {listed})"


def _comparison_lines(result: TrainingResult) -> list[str]:
    lines = [f"- Model minus {describe_comparison(result, name)}" for name in result.comparisons]
    pr = result.crr_difference
    lines.append(
        f"\n{pr['confidence']:.0%} intervals: paired customer-level bootstrap, "
        f"{int(pr['samples'])} resamples."
    )
    return lines


def _metrics_table(metrics: Mapping[str, Mapping[str, float]], segment: str) -> str:
    header = "| scorer | " + " | ".join(label for _, label in _METRICS) + " |"
    rule = "|---|" + "---:|" * len(_METRICS)
    rows = []
    for scorer, values in metrics.items():
        label = SCORER_LABELS.get(scorer, scorer)
        if scorer == CRR_BASELINE:
            label += f" (per {segment})"
        cells = " | ".join(f"{values[key]:.4f}" for key, _ in _METRICS)
        rows.append(f"| {label} | {cells} |")
    return "\n".join([header, rule, *rows])


def _snapshot_table(snapshots: pd.DataFrame) -> str:
    parts = []
    snapshots = snapshots.assign(
        part=snapshots["part"].where(~snapshots["walk_forward_test"], snapshots["part"] + ", test")
    )
    for part, group in snapshots.groupby("part", sort=False):
        dates = group["as_of"].astype(str)
        span = dates.iloc[0] if len(dates) == 1 else f"{dates.iloc[0]} .. {dates.iloc[-1]}"
        parts.append(
            f"| {part} | {span} | {len(group)} | {int(group['rows'].sum()):,} | "
            f"{(group['rows'] * group['churn_rate']).sum() / group['rows'].sum():.1%} |"
        )
    return "\n".join(
        ["| role | snapshots | count | rows | churn rate |", "|---|---|---:|---:|---:|", *parts]
    )
