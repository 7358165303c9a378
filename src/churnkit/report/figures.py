"""Evaluation figures as matplotlib figures: ROC, PR, calibration, gains and lift, importance.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot, no GUI
backend, no global state), with scikit-learn's display classes where one exists. The
same figures go to MLflow (PNG) and into the HTML report (inline SVG).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.calibration import CalibrationDisplay
from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

from churnkit.features import LABEL_COLUMN
from churnkit.training import SCORER_LABELS, TrainingResult
from churnkit.training.model import ChurnModel

__all__ = [
    "calibration_figure",
    "figure_svg",
    "gains_lift_figure",
    "importance_figure",
    "pr_figure",
    "roc_figure",
    "training_figures",
]

_SIZE = (6.0, 4.5)


def _scorers(predictions: pd.DataFrame, scorers: Sequence[str] | None) -> list[str]:
    chosen = scorers or [s for s in SCORER_LABELS if s in predictions]
    return [s for s in chosen if s in predictions]


def roc_figure(predictions: pd.DataFrame, scorers: Sequence[str] | None = None) -> Figure:
    """ROC curves of each scorer on the same rows."""
    fig, ax = _curves(RocCurveDisplay, predictions, scorers, "ROC on the test snapshots")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1)
    return fig


def pr_figure(predictions: pd.DataFrame, scorers: Sequence[str] | None = None) -> Figure:
    """Precision-recall curves of each scorer, with the churn rate as the floor."""
    title = "Precision-recall on the test snapshots"
    fig, ax = _curves(PrecisionRecallDisplay, predictions, scorers, title)
    ax.axhline(predictions[LABEL_COLUMN].mean(), linestyle=":", color="grey", linewidth=1)
    return fig


def _curves(
    display: type, predictions: pd.DataFrame, scorers: Sequence[str] | None, title: str
) -> tuple[Figure, Any]:
    """One scikit-learn display curve per scorer on shared axes."""
    fig = Figure(figsize=_SIZE, layout="constrained")
    ax = fig.add_subplot()
    y = predictions[LABEL_COLUMN].to_numpy()
    for scorer in _scorers(predictions, scorers):
        display.from_predictions(
            y, predictions[scorer], name=SCORER_LABELS.get(scorer, scorer), ax=ax
        )
    ax.set_title(title)
    return fig, ax


def calibration_figure(
    predictions: pd.DataFrame, scorers: Sequence[str] = ("model", "model_uncalibrated")
) -> Figure:
    """Reliability curves: predicted churn probability vs observed churn rate."""
    fig = Figure(figsize=_SIZE, layout="constrained")
    ax = fig.add_subplot()
    y = predictions[LABEL_COLUMN].to_numpy()
    shown: dict[str, list[str]] = {}  # a scorer equal to one shown already shares its line
    for scorer in _scorers(predictions, scorers):
        same = next(
            (s for s in shown if np.allclose(predictions[s], predictions[scorer], atol=1e-9)),
            None,
        )
        if same is None:
            shown[scorer] = [SCORER_LABELS.get(scorer, scorer)]
        else:
            shown[same].append(SCORER_LABELS.get(scorer, scorer))
    for scorer, labels in shown.items():
        CalibrationDisplay.from_predictions(
            y,
            predictions[scorer].clip(0, 1),
            n_bins=10,
            strategy="quantile",
            name=" = ".join(labels),
            ax=ax,
        )
    ax.set(xlabel="predicted churn probability", ylabel="observed churn rate")
    ax.set_title("Calibration on the test snapshots")
    return fig


def gains_lift_figure(predictions: pd.DataFrame, scorers: Sequence[str] | None = None) -> Figure:
    """Cumulative gains (share of churners found) and lift, by share of customers targeted."""
    fig = Figure(figsize=(10.0, 4.5), layout="constrained")
    gains, lift = fig.subplots(1, 2)
    y = predictions[LABEL_COLUMN].to_numpy()
    share = np.arange(1, len(y) + 1) / len(y)
    curves: list[tuple[np.ndarray, list[str]]] = []
    for scorer in _scorers(predictions, scorers):
        order = np.argsort(-predictions[scorer].to_numpy(), kind="stable")
        found = np.cumsum(y[order]) / max(y.sum(), 1)
        label = SCORER_LABELS.get(scorer, scorer)
        # a calibration keeps the order, so the model's curve before it is the same line:
        # one line with both names, not one hidden under the other
        same = next((c for c in curves if np.allclose(c[0], found, atol=1e-3)), None)
        if same is None:
            curves.append((found, [label]))
        else:
            same[1].append(label)
    styles = ("-", "--", "-.", ":")
    for i, (found, labels) in enumerate(curves):
        label = " = ".join(labels)
        style = {"linestyle": styles[i % len(styles)], "linewidth": 1.6 if i == 0 else 1.2}
        gains.plot(share, found, label=label, **style)
        lift.plot(share, found / share, label=label, **style)
    gains.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1)
    gains.set(xlabel="share of customers targeted", ylabel="share of churners found")
    gains.set_title("Cumulative gains")
    lift.axhline(1.0, linestyle=":", color="grey", linewidth=1)
    lift.set(xlabel="share of customers targeted", ylabel="lift", xlim=(0.01, 1))
    lift.set_title("Lift")
    lift.legend(loc="lower left", fontsize="small")
    return fig


def feature_importance(model: ChurnModel) -> pd.Series:
    """Total split gain per feature, largest first (ties by name)."""
    gain = pd.Series(
        model.booster.feature_importance(importance_type="gain"),
        index=model.booster.feature_name(),
        dtype="float64",
    )
    return gain.sort_index().sort_values(ascending=False, kind="stable")


def importance_figure(model: ChurnModel, top: int = 20) -> Figure:
    """The ``top`` features by total split gain."""
    gain = feature_importance(model).head(top)[::-1]
    fig = Figure(figsize=(6.0, 0.25 * len(gain) + 1.2), layout="constrained")
    ax = fig.add_subplot()
    ax.barh(gain.index, gain.to_numpy())
    ax.set(xlabel="total gain", title=f"Top {len(gain)} features")
    ax.tick_params(axis="y", labelsize="small")
    return fig


def training_figures(result: TrainingResult) -> Mapping[str, Figure]:
    """Every figure of a training run, by file stem."""
    test = result.test_predictions
    return {
        "roc": roc_figure(test),
        "precision_recall": pr_figure(test),
        "calibration": calibration_figure(test),
        "gains_lift": gains_lift_figure(test),
        "feature_importance": importance_figure(result.model),
    }


def figure_svg(fig: Figure) -> str:
    """The figure as an inline ``<svg>`` element (no XML header), for HTML."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]
