"""Population stability index (PSI): is tonight's population like the one trained on?

Training stores a *reference* with the model: for each feature (and for the churn
score) the bins of its distribution on the validation snapshots and the share of rows
in each. Scoring puts tonight's rows into the same bins and compares the shares:

    PSI = sum over bins of (actual - expected) * ln(actual / expected)

with shares floored at 1e-4 so that an empty bin does not make it infinite. A common
reading: below 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a major one.

Numeric features get quantile bins (ties merged, so a mostly-zero count gets few
bins) plus one bin for missing values; categorical features get one bin per category
seen in training, one for unseen categories and one for missing values.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CALENDAR_FEATURES",
    "SCORE",
    "DriftReport",
    "drift_reference",
    "drift_report",
    "population_stability",
]

SCORE = "churn_probability"
_FLOOR = 1e-4


def drift_reference(
    frame: pd.DataFrame, feature_names: list[str], scores: np.ndarray, bins: int = 10
) -> dict[str, dict[str, Any]]:
    """Bins and shares of every feature of ``frame`` and of ``scores``."""
    reference = {name: _reference(frame[name], bins) for name in feature_names}
    reference[SCORE] = _reference(pd.Series(scores, dtype="float64"), bins)
    return reference


# features that grow by one a day for every customer: a fixed panel ages, and its tenure
# drifted with PSI 8 to 12 on real logs a few months after training
CALENDAR_FEATURES = ("tenure_days", "days_since_signup")


def population_stability(
    reference: Mapping[str, Mapping[str, Any]],
    frame: pd.DataFrame,
    scores: np.ndarray,
    *,
    elapsed_days: int = 0,
    exclude: tuple[str, ...] = (),
) -> dict[str, float]:
    """PSI of each referenced feature of ``frame``, and of ``scores`` under ``SCORE``.

    :data:`CALENDAR_FEATURES` are compared as they were ``elapsed_days`` ago (tonight's
    values minus the days since the reference date), so a population that merely aged
    does not drift; features in ``exclude`` are not compared.
    """
    result = {}
    for name, ref in reference.items():
        if name in exclude:
            continue
        if name == SCORE:
            values = pd.Series(scores, dtype="float64")
        elif name in CALENDAR_FEATURES and elapsed_days:
            values = frame[name] - elapsed_days
        else:
            values = frame[name]
        actual = _shares(values, ref)
        expected = np.asarray(ref["shares"], dtype="float64")
        result[name] = _psi(expected, actual)
    return result


@dataclass(frozen=True)
class DriftReport:
    """Tonight's PSI against the model's reference, as recorded in the manifest.

    Only the score's drift stops a night (``stops``): features such as tenure grow with
    calendar time for everyone, so their drift is recorded and warned about instead.
    """

    checked: bool
    threshold: float
    score_psi: float | None = None
    max_feature_psi: float | None = None
    over_threshold: tuple[str, ...] = ()
    stops: bool = False
    top: dict[str, float] = dataclasses.field(default_factory=dict)
    allowed: bool = False
    sampled_rows: int | None = None
    excluded: tuple[str, ...] = ()  # not compared (`scoring.drift.exclude`)
    calendar_shift_days: int = 0  # calendar features compared this many days back

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftReport:
        """The report a manifest recorded (:meth:`to_dict`); keys this version does not
        know, or lacks in an older manifest, are left to their defaults."""
        known = {field.name for field in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        for key in ("over_threshold", "excluded"):
            values[key] = tuple(values.get(key, ()))
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["over_threshold"] = list(self.over_threshold)
        data["excluded"] = list(self.excluded)
        if self.sampled_rows is None:
            del data["sampled_rows"]
        return data

    def message(self, as_of: dt.date) -> str:
        """Why the night stopped, for the error a stopped night raises."""
        features = [name for name in self.over_threshold if name != SCORE]
        shown = ", ".join(f"{n} {self.top.get(n, float('nan')):.2f}" for n in features[:5])
        also = f" (features over it too: {shown})" if shown else ""
        return (
            f"the churn scores at {as_of} have drifted from training: score PSI "
            f"{self.score_psi:.2f} is above {self.threshold}{also}. Nothing was written. "
            "Check the data, retrain, or score anyway with --allow-drift (recorded in the "
            "manifest); the threshold is `scoring.drift.psi_threshold`."
        )


def drift_report(
    reference: Mapping[str, Mapping[str, Any]] | None,
    frame: pd.DataFrame,
    scores: np.ndarray,
    threshold: float,
    *,
    compare_score: bool = True,
    allowed: bool = False,
    sampled_rows: int | None = None,
    elapsed_days: int = 0,
    exclude: tuple[str, ...] = (),
) -> DriftReport:
    """PSI of the score and of every feature of ``frame`` against ``reference``.

    ``compare_score`` is False when the scores are not the referenced model's (a served
    baseline's): then only the features are compared and the night never stops.
    ``elapsed_days`` (since the reference's date) and ``exclude``: see
    :func:`population_stability`.
    """
    excluded = tuple(name for name in exclude if reference and name in reference)
    extra = {
        "allowed": allowed,
        "sampled_rows": sampled_rows,
        "excluded": excluded,
        "calendar_shift_days": elapsed_days,
    }
    if not reference:
        return DriftReport(checked=False, threshold=threshold, **extra)
    psi = population_stability(
        reference, frame, scores, elapsed_days=elapsed_days, exclude=excluded
    )
    if not compare_score:
        del psi[SCORE]
    worst = sorted(psi.items(), key=lambda item: (-item[1], item[0]))
    return DriftReport(
        checked=True,
        threshold=threshold,
        score_psi=round(psi[SCORE], 4) if SCORE in psi else None,
        max_feature_psi=round(max((v for k, v in psi.items() if k != SCORE), default=0.0), 4),
        over_threshold=tuple(name for name, value in worst if value > threshold),
        stops=psi.get(SCORE, 0.0) > threshold,
        top={name: round(value, 4) for name, value in worst[:10]},
        **extra,
    )


def _reference(values: pd.Series, bins: int) -> dict[str, Any]:
    if isinstance(values.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(values):
        categories = sorted(values.astype("string").dropna().unique())
        ref: dict[str, Any] = {"kind": "categorical", "categories": categories}
    else:
        numbers = values.to_numpy(dtype="float64", na_value=np.nan)
        present = numbers[~np.isnan(numbers)]
        quantiles = np.linspace(0, 1, bins + 1)[1:-1]
        edges = np.unique(np.quantile(present, quantiles)) if present.size else np.array([])
        ref = {"kind": "numeric", "edges": [float(e) for e in edges]}
    ref["shares"] = [float(s) for s in _shares(values, ref)]
    return ref


def _shares(values: pd.Series, ref: Mapping[str, Any]) -> np.ndarray:
    """Share of rows per bin: the regular bins, then 'other' (categorical), then missing."""
    if ref["kind"] == "categorical":
        categories = list(ref["categories"])
        if isinstance(values.dtype, pd.CategoricalDtype):  # each category looked up once
            known = values.cat.categories.astype("string").to_numpy(dtype=object)
            category = values.cat.codes.to_numpy()  # -1: missing
            missing = category < 0
            index = np.append(pd.Index(categories).get_indexer(known), -1)[category]
        else:
            text = values.astype("string")
            missing = text.isna().to_numpy()
            index = pd.Index(categories).get_indexer(text.fillna("").to_numpy(dtype=object))
        codes = np.where(missing, len(categories) + 1, np.where(index < 0, len(categories), index))
        size = len(categories) + 2
    else:
        numbers = values.to_numpy(dtype="float64", na_value=np.nan)
        edges = np.asarray(ref["edges"], dtype="float64")
        missing = np.isnan(numbers)
        codes = np.where(missing, len(edges) + 1, np.searchsorted(edges, numbers, side="left"))
        size = len(edges) + 2
    counts = np.bincount(codes.astype("int64"), minlength=size).astype("float64")
    return counts / max(len(values), 1)


def _psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.maximum(expected, _FLOOR)
    a = np.maximum(actual, _FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))
