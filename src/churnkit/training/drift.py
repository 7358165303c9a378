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

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["SCORE", "drift_reference", "population_stability"]

SCORE = "churn_probability"
_FLOOR = 1e-4


def drift_reference(
    frame: pd.DataFrame, feature_names: list[str], scores: np.ndarray, bins: int = 10
) -> dict[str, dict[str, Any]]:
    """Bins and shares of every feature of ``frame`` and of ``scores``."""
    reference = {name: _reference(frame[name], bins) for name in feature_names}
    reference[SCORE] = _reference(pd.Series(scores, dtype="float64"), bins)
    return reference


def population_stability(
    reference: Mapping[str, Mapping[str, Any]], frame: pd.DataFrame, scores: np.ndarray
) -> dict[str, float]:
    """PSI of each referenced feature of ``frame``, and of ``scores`` under ``SCORE``."""
    result = {}
    for name, ref in reference.items():
        values = pd.Series(scores, dtype="float64") if name == SCORE else frame[name]
        actual = _shares(values, ref)
        expected = np.asarray(ref["shares"], dtype="float64")
        result[name] = _psi(expected, actual)
    return result


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
