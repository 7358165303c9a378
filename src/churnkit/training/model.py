"""The churn model: a LightGBM booster with its feature spec and CRR baseline.

A :class:`ChurnModel` is what crosses from training to scoring. It is saved as a
folder (a *bundle*): ``booster.txt`` in LightGBM's own text format and
``model.json`` with the feature names, the feature spec and the baseline table. The
MLflow pyfunc in :mod:`churnkit.tracking` wraps the same bundle.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from churnkit.config import ModelConfig
from churnkit.errors import FeatureMismatchError, ModelNotFoundError
from churnkit.features import ID_COLUMNS, INFO_COLUMNS, LABEL_COLUMN, FeatureSpec
from churnkit.training.baselines import BGNBD_COLUMN, CRRBaseline, ScoreBaseline, baseline_from_dict
from churnkit.training.bgnbd import bgnbd_no_purchase_probability
from churnkit.training.calibration import Calibration

__all__ = ["ChurnModel", "fit_booster", "lightgbm_params", "refit_booster"]

logger = logging.getLogger(__name__)

BOOSTER_FILE = "booster.txt"
META_FILE = "model.json"
_KNOWN_NON_FEATURES = {*ID_COLUMNS, *INFO_COLUMNS, LABEL_COLUMN, BGNBD_COLUMN}


def lightgbm_params(cfg: ModelConfig) -> dict[str, Any]:
    """Deterministic LightGBM parameters for a binary churn model."""
    return {
        "objective": "binary",
        "metric": cfg.early_stopping_metric,
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves,
        "min_data_in_leaf": cfg.min_child_samples,
        "feature_fraction": cfg.feature_fraction,
        "lambda_l2": cfg.lambda_l2,
        "seed": cfg.seed,
        "num_threads": cfg.num_threads,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    }


def fit_booster(
    X_train: pd.DataFrame,
    y_train: np.ndarray,
    X_valid: pd.DataFrame,
    y_valid: np.ndarray,
    cfg: ModelConfig,
) -> lgb.Booster:
    """Fit LightGBM with early stopping on the (out-of-time) validation rows.

    Stops when ``cfg.early_stopping_metric`` on the validation rows has not improved
    for ``cfg.early_stopping_rounds``; ``best_iteration`` is the best round.
    """
    X_train, categorical, levels = _with_codes(X_train)
    train_set = lgb.Dataset(
        X_train, label=y_train, categorical_feature=categorical, free_raw_data=True
    )
    valid_set = lgb.Dataset(_with_codes(X_valid, levels)[0], label=y_valid, reference=train_set)
    booster = lgb.train(
        lightgbm_params(cfg),
        train_set,
        num_boost_round=cfg.max_rounds,
        valid_sets=[valid_set],
        valid_names=["validation"],
        callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)],
    )
    booster.pandas_categorical = levels
    logger.info("LightGBM stopped at iteration %d", booster.best_iteration)
    return booster


def refit_booster(X: pd.DataFrame, y: np.ndarray, rounds: int, cfg: ModelConfig) -> lgb.Booster:
    """Fit LightGBM for exactly ``rounds`` rounds on every row (no early stopping)."""
    X, categorical, levels = _with_codes(X)
    train_set = lgb.Dataset(X, label=y, categorical_feature=categorical, free_raw_data=True)
    booster = lgb.train(lightgbm_params(cfg), train_set, num_boost_round=rounds)
    booster.pandas_categorical = levels
    logger.info("LightGBM refit with %d rounds on %d rows", rounds, len(X))
    return booster


def _with_codes(
    X: pd.DataFrame, levels: list[list] | None = None
) -> tuple[pd.DataFrame, list[str], list[list]]:
    """``X`` with its categorical columns as float32 codes of their levels (``levels``,
    default their own), NaN when missing; those columns; their levels.

    What LightGBM does with pandas categoricals, except for the type: it turns the codes
    of a column with missing values into float64, and with them the whole matrix it
    copies from the frame, twice the memory of float32 features (2.2 GB more for 5.8M
    rows × 47 features). The booster gets the levels as its ``pandas_categorical``, so it
    codes the categoricals of the frames it predicts on the same way, as LightGBM would.
    """
    categorical = [c for c, t in X.dtypes.items() if isinstance(t, pd.CategoricalDtype)]
    if levels is None:
        levels = [list(X[c].cat.categories) for c in categorical]
    codes = {}
    for column, own in zip(categorical, levels, strict=True):
        values = X[column].cat.set_categories(own).cat.codes.to_numpy()
        codes[column] = np.where(values < 0, np.nan, values).astype("float32")
    return (X.assign(**codes) if codes else X), categorical, levels


@dataclass
class ChurnModel:
    """A trained booster plus what scoring needs to use it safely.

    ``predict_proba`` takes a features frame, checks its column names against the
    training features (refusing a mismatch, listing both sides), reorders by name, and
    returns churn probabilities, calibrated on out-of-time data when the model has a
    calibration.
    """

    booster: lgb.Booster
    feature_names: list[str]
    feature_spec: FeatureSpec
    baseline: CRRBaseline
    metadata: dict[str, Any] = field(default_factory=dict)
    calibration: Calibration | None = None
    drift_reference: dict[str, Any] | None = None
    score_baselines: dict[str, ScoreBaseline] = field(default_factory=dict)
    serving: str | None = None

    def serving_baseline(self, name: str) -> ChurnModel:
        """A copy that scores with the stored baseline ``name`` instead of the booster.

        Nightly scoring uses it when no model has passed the quality gate yet: the list
        then comes from the best deterministic baseline, and says so.
        """
        if name != "crr_baseline" and name not in self.score_baselines:
            raise ModelNotFoundError(
                f"the model has no stored baseline {name!r}; it has crr_baseline and "
                f"{sorted(self.score_baselines)}"
            )
        return dataclasses.replace(self, serving=name)

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated churn probability per row of ``features``."""
        if self.serving is not None:
            return self._baseline_scores(features)[0]
        raw = self.predict_raw(features)
        return raw if self.calibration is None else self.calibration.apply(raw)

    def predict_raw(self, features: pd.DataFrame) -> np.ndarray:
        """The booster's own (uncalibrated) churn score per row of ``features``; for a
        served baseline, the baseline's own signal (which orders its ties)."""
        if self.serving is not None:
            return self._baseline_scores(features)[1]
        X = self.select_features(features)
        if X.empty:
            return np.empty(0, dtype="float64")
        return self.booster.predict(X, validate_features=True)

    def _baseline_scores(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        if self.serving == "crr_baseline":
            probability = self.baseline_proba(features)
            return probability, probability
        baseline = self.score_baselines[str(self.serving)]
        return baseline.predict_proba(features)[:, 1], baseline.signal(features)

    def baseline_proba(self, features: pd.DataFrame) -> np.ndarray:
        """CRR-baseline churn probability per row of ``features``."""
        return self.baseline.predict_proba(features)[:, 1]

    def days_since_drift_reference(self, as_of: dt.date) -> int:
        """Days from the population the drift reference describes to ``as_of`` (0 when
        the model does not say)."""
        reference = self.metadata.get("drift_reference_as_of")
        if not reference:
            return 0
        return (pd.Timestamp(as_of) - pd.Timestamp(reference)).days

    def add_derived_features(self, features: pd.DataFrame) -> pd.DataFrame:
        """``features`` with the BG/NBD feature when the model uses it and the frame lacks
        it, fitted on the frame's customers of each as_of (so pass whole populations)."""
        needs = ("as_of", "orders_lifetime", "tenure_days", "recency_days")
        if BGNBD_COLUMN not in self.feature_names or BGNBD_COLUMN in features:
            return features
        if any(column not in features for column in needs):
            return features  # select_features then names what is missing
        horizon = int(self.metadata.get("horizon_days", 90))
        return features.assign(**{BGNBD_COLUMN: bgnbd_no_purchase_probability(features, horizon)})

    def select_features(self, features: pd.DataFrame) -> pd.DataFrame:
        """The model's feature columns of ``features``, in training order.

        A model with the BG/NBD feature computes it when the frame lacks it
        (:meth:`add_derived_features`).

        Raises
        ------
        FeatureMismatchError
            When a feature is missing or an unknown column is present.
        """
        features = self.add_derived_features(features)
        columns = list(features.columns)
        missing = [c for c in self.feature_names if c not in columns]
        unknown = [
            c for c in columns if c not in self.feature_names and c not in _KNOWN_NON_FEATURES
        ]
        if missing or unknown:
            raise FeatureMismatchError(
                "the features do not match the model's: "
                f"missing {missing}, unexpected {unknown}; the model expects "
                f"{self.feature_names}. Rebuild features from the model's feature spec "
                "(churnkit score does this) or score with the model they were built for."
            )
        X = features[self.feature_names]
        categorical = set(self.feature_spec.attributes)
        # the dtype the model was trained on: float32 since training keeps its table so,
        # float64 for models trained before
        number = self.metadata.get("feature_dtype", "float64")
        types = {
            c: "category" if c in categorical else number
            for c in self.feature_names
            if not isinstance(X[c].dtype, pd.CategoricalDtype)
        }
        # attributes arrive as plain strings from Spark or a pyfunc caller
        return X.astype(types)

    def save(self, path: Path) -> Path:
        """Write the bundle folder: ``booster.txt`` and ``model.json``."""
        path.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(
            str(path / BOOSTER_FILE), num_iteration=self.booster.best_iteration or None
        )
        meta = {
            # the checksum load() verifies: a truncated or edited booster.txt is refused
            # instead of crashing LightGBM or scoring with other trees
            "booster_sha256": _sha256(path / BOOSTER_FILE),
            "feature_names": self.feature_names,
            "feature_spec": self.feature_spec.model_dump(mode="json"),
            "baseline": self.baseline.to_dict(),
            "calibration": self.calibration.to_dict() if self.calibration else None,
            "drift_reference": self.drift_reference,
            "metadata": self.metadata,
            "score_baselines": {k: v.to_dict() for k, v in self.score_baselines.items()},
        }
        (path / META_FILE).write_text(
            json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        return path

    @classmethod
    def load(cls, path: Path) -> ChurnModel:
        """Read a bundle written by :meth:`save`.

        Raises
        ------
        ModelNotFoundError
            When the folder holds no bundle.
        """
        if not (path / BOOSTER_FILE).is_file() or not (path / META_FILE).is_file():
            raise ModelNotFoundError(
                f"no churnkit model bundle at {str(path)!r} (expected {BOOSTER_FILE} and "
                f"{META_FILE}); train one with `churnkit train` or point `scoring.model` at "
                "a models:/NAME@ALIAS URI"
            )
        try:
            meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ModelNotFoundError(
                f"the model bundle at {str(path)!r} is damaged: {META_FILE} is not JSON; "
                "export it again (churnkit train) or point `scoring.model` at another version"
            ) from None
        expected = meta.get("booster_sha256")
        if expected is not None and _sha256(path / BOOSTER_FILE) != expected:
            raise ModelNotFoundError(
                f"the model bundle at {str(path)!r} is damaged or was changed: {BOOSTER_FILE} "
                "does not match the checksum in model.json; export it again (churnkit train) "
                "or point `scoring.model` at another version"
            )
        return cls(
            booster=lgb.Booster(model_file=str(path / BOOSTER_FILE)),
            feature_names=list(meta["feature_names"]),
            feature_spec=FeatureSpec.model_validate(meta["feature_spec"]),
            baseline=CRRBaseline.from_dict(meta["baseline"]),
            metadata=dict(meta.get("metadata", {})),
            calibration=Calibration.from_dict(meta["calibration"])
            if meta.get("calibration")
            else None,
            drift_reference=meta.get("drift_reference"),
            score_baselines={
                k: baseline_from_dict(v) for k, v in meta.get("score_baselines", {}).items()
            },
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
