"""churnkit: which customers are about to stop buying, why, and what they are worth.

The public API is small; the CLI (``churnkit --help``) is the main way in.
"""

from __future__ import annotations

from churnkit.errors import ChurnkitError, ConfigError, DataError, QualityGateError

__version__ = "0.1.0"

__all__ = ["ChurnkitError", "ConfigError", "DataError", "QualityGateError", "__version__"]
