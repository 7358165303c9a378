"""Errors that churnkit raises on purpose.

The tree, and the exit code the CLI maps each branch to::

    ChurnkitError                 a problem the user can fix (exit 2)
    +-- ConfigError               the config file is missing, unparsable or invalid
    +-- DataError                 the data breaks the contract of DESIGN section 2
    |   +-- StaleDataError        the data ends too long before the requested as_of
    +-- FeatureMismatchError      features do not match what the model was trained on
    +-- ModelNotFoundError        no model at the given URI or path
    +-- PartitionLockedError      another run is writing the same scoring partition
    +-- ResourceError             the work does not fit the configured memory limit
    QualityGateError              a quality check failed on purpose (exit 3)
    +-- DriftError                the scored population drifted from training

Anything else that escapes is a bug (exit 1).
"""

from __future__ import annotations

__all__ = [
    "ChurnkitError",
    "ConfigError",
    "DataError",
    "DriftError",
    "FeatureMismatchError",
    "ModelNotFoundError",
    "PartitionLockedError",
    "QualityGateError",
    "ResourceError",
    "StaleDataError",
]


class ChurnkitError(Exception):
    """A problem the user can fix; its message says what, got, expected and how to fix."""

    exit_code = 2


class ConfigError(ChurnkitError):
    """The config file is missing, unparsable, or has invalid or unknown keys."""


class DataError(ChurnkitError):
    """A table breaks the data contract (missing columns, bad types, bad rows)."""


class StaleDataError(DataError):
    """The latest data is older than ``max_staleness_days`` before the requested date."""


class FeatureMismatchError(ChurnkitError):
    """The features offered to a model differ from the ones it was trained on."""


class ModelNotFoundError(ChurnkitError):
    """No model exists at the given registry URI or bundle path."""


class PartitionLockedError(ChurnkitError):
    """Another process holds the lock of the scoring partition being written."""


class ResourceError(ChurnkitError):
    """The work does not fit the configured limits (DuckDB's ``memory_limit``)."""


class QualityGateError(Exception):
    """A quality check failed: e.g. the model does not beat the CRR baseline."""

    exit_code = 3


class DriftError(QualityGateError):
    """The population being scored has drifted from training beyond the PSI threshold."""
