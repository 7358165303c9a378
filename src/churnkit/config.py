"""Configuration: frozen pydantic models loaded from YAML.

Every relative path in a config file is resolved against the directory of that file,
so ``churnkit train configs/demo.yaml`` behaves the same from any working directory.
Unknown keys fail at load time, naming the key.
"""

from __future__ import annotations

import codecs
import datetime as dt
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from churnkit.errors import ConfigError

__all__ = [
    "Config",
    "ContactsSource",
    "CustomersSource",
    "DriftConfig",
    "HoldoutConfig",
    "DuckDBConfig",
    "DataConfig",
    "EventsSource",
    "FeatureConfig",
    "MlflowConfig",
    "ModelConfig",
    "OrdersSource",
    "RiskTierConfig",
    "ScoringConfig",
    "SnapshotConfig",
    "SparkConfig",
    "StatusConfig",
    "TableSource",
    "load_config",
]

ORDER_STATUSES = ("completed", "returned", "cancelled")


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    if base is None or value.is_absolute():
        return value
    return (Path(base) / value).resolve()


ResolvedPath = Annotated[Path, AfterValidator(_resolve_path)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TableSource(_Frozen):
    """Where one table lives and how its columns map to churnkit's canonical names.

    ``columns`` maps a canonical name to the name in the user's file; names left out
    map to themselves.
    """

    required_columns: ClassVar[tuple[str, ...]] = ()
    optional_columns: ClassVar[tuple[str, ...]] = ()

    path: ResolvedPath | None = None
    url: str | None = Field(
        default=None,
        description="a PostgreSQL database, postgresql://user@host:5432/db; the password "
        "from $PGPASSWORD or ${VAR} in the URL, never written in it",
    )
    query: str | None = Field(default=None, description="PostgreSQL: SQL to read, not a table")
    timeout_seconds: int = Field(
        default=600, gt=0, description="PostgreSQL: bound on connecting and on the query"
    )
    format: Literal["csv", "parquet", "duckdb"] | None = None
    table: str | None = Field(
        default=None, description="table name inside a DuckDB file or a PostgreSQL database"
    )
    columns: dict[str, str] = Field(default_factory=dict)
    separator: str | None = Field(
        default=None, description="CSV: the field separator, e.g. ';'; default: detected"
    )
    decimal: Literal[".", ","] = Field(
        default=".", description="CSV: the decimal mark; with ',' a '.' is a thousands separator"
    )
    timestamp_format: str | None = Field(
        default=None,
        description="CSV: how dates are written, in strftime codes, e.g. '%d.%m.%Y %H:%M'",
    )
    encoding: str = Field(default="utf-8", description="CSV: the text encoding, e.g. cp1252")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, encoding: str) -> str:
        try:
            return codecs.lookup(encoding).name
        except LookupError:
            raise ValueError(
                f"unknown encoding {encoding!r}; use a Python codec name such as utf-8, "
                "cp1252 or latin-1"
            ) from None

    @field_validator("columns")
    @classmethod
    def _known_canonical_names(cls, columns: dict[str, str]) -> dict[str, str]:
        allowed = cls.required_columns + cls.optional_columns
        unknown = sorted(set(columns) - set(allowed))
        if unknown:
            raise ValueError(
                f"unknown canonical column(s) {unknown}; expected some of {list(allowed)}"
            )
        return columns

    @model_validator(mode="after")
    def _format_known(self) -> TableSource:
        if (self.path is None) == (self.url is None):
            raise ValueError("give either `path:` (a file, folder or glob) or `url:` (a database)")
        if self.url is not None:
            if not self.url.startswith(("postgresql://", "postgres://")):
                raise ValueError(f"`url:` must start with postgresql://; got {self.url[:30]!r}")
            if re.match(r"^[a-z]+://[^/@:]+:(?!\$\{)[^@/]+@", self.url):
                raise ValueError(
                    "`url:` holds a password; put it in $PGPASSWORD, or write ${VAR} in its "
                    "place and set VAR in the environment, so it is never in a config, a log "
                    "or MLflow"
                )
            if (self.table is None) == (self.query is None):
                raise ValueError("a database source needs `table:` or `query:` (one of them)")
        if self.resolved_format == "duckdb" and not self.table:
            raise ValueError("a DuckDB source needs `table:` naming the table to read")
        csv_only = {
            "separator": self.separator is not None,
            "decimal": self.decimal != ".",
            "timestamp_format": self.timestamp_format is not None,
            "encoding": self.encoding != "utf-8",
        }
        given = [key for key, set_ in csv_only.items() if set_]
        if given and self.resolved_format != "csv":
            raise ValueError(
                f"{', '.join(given)} apply to CSV files only; this source is "
                f"{self.resolved_format} (set `format: csv` if it is a CSV file)"
            )
        return self

    @property
    def resolved_format(self) -> str:
        """The format given, else inferred from the file suffix (Parquet for folders);
        ``postgresql`` for a database URL."""
        if self.url is not None:
            return "postgresql"
        if self.format:
            return self.format
        assert self.path is not None
        suffix = self.path.suffix.lower()
        if suffix in {".csv", ".tsv"} or self.path.name.endswith(".csv.gz"):
            return "csv"
        if suffix in {".duckdb", ".db"}:
            return "duckdb"
        return "parquet"

    def source_column(self, canonical: str) -> str:
        """The user's name for a canonical column."""
        return self.columns.get(canonical, canonical)

    def needs(self, canonical: str) -> bool:
        """Whether a required column must come from the file (not from the config)."""
        return True


class OrdersSource(TableSource):
    required_columns: ClassVar[tuple[str, ...]] = ("customer_id", "ordered_at", "amount")
    optional_columns: ClassVar[tuple[str, ...]] = (
        "order_id",
        "status",
        "quantity",
        "product_id",
        "category",
        "channel",
    )
    status_values: dict[str, Literal["completed", "returned", "cancelled"]] = Field(
        default_factory=lambda: {s: s for s in ORDER_STATUSES},
        description="maps each value of the status column to completed/returned/cancelled",
    )


class EventsSource(TableSource):
    required_columns: ClassVar[tuple[str, ...]] = ("customer_id", "occurred_at", "event_type")
    optional_columns: ClassVar[tuple[str, ...]] = ("value",)

    event_type: str | None = Field(
        default=None,
        description="one type for every row, for a table of one kind of event (e.g. "
        "coupon_redemption); then the table needs no event_type column",
    )

    def needs(self, canonical: str) -> bool:
        return canonical != "event_type" or self.event_type is None


class ContactsSource(TableSource):
    """Who the retention team contacted, when, with which play (and at what cost): the
    treated side of a holdout readout (``churnkit evaluate``)."""

    required_columns: ClassVar[tuple[str, ...]] = ("customer_id", "contacted_at")
    optional_columns: ClassVar[tuple[str, ...]] = ("play", "cost")


class CustomersSource(TableSource):
    required_columns: ClassVar[tuple[str, ...]] = ("customer_id",)
    optional_columns: ClassVar[tuple[str, ...]] = ("signed_up_at",)
    attributes: tuple[str, ...] = Field(
        default=(), description="extra columns used as categorical features"
    )


class DataConfig(_Frozen):
    orders: OrdersSource
    events: EventsSource | None = None
    customers: CustomersSource | None = None
    contacts: ContactsSource | None = None
    timezone: str = Field(default="UTC", description="zone of naive timestamps")
    on_negative_amount: Literal["error", "treat_as_return"] = "error"
    min_order_amount: float = Field(default=0.0, ge=0)
    config_file: str = Field(default="the config", exclude=True, validate_default=True)

    @field_validator("config_file")
    @classmethod
    def _from_context(cls, value: str, info: ValidationInfo) -> str:
        return (info.context or {}).get("config_file", value)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name like 'Europe/Berlin'"
            ) from err
        return value


MAX_DAYS = 3660  # ten years: a window or horizon beyond is a typo (1e9 days crashed)


class SnapshotConfig(_Frozen):
    """The as_of grid. Features see ``[.., as_of)``; labels ``[as_of, as_of + horizon_days)``."""

    horizon_days: int = Field(default=90, gt=0, le=MAX_DAYS)
    activity_days: int = Field(default=365, gt=0, le=MAX_DAYS)
    frequency: Literal["month", "week"] = "month"
    min_history_days: int | None = Field(
        default=None,
        ge=0,
        le=MAX_DAYS,
        description="history before the first snapshot; default: the horizon",
    )
    first_as_of: dt.date | None = None
    last_as_of: dt.date | None = None
    validation_snapshots: int = Field(
        default=1, ge=1, description="latest snapshots of each fit that stop it early"
    )
    test_snapshots: int = Field(
        default=3, ge=1, description="last labelled dates of the walk-forward test"
    )


FeatureFamily = Literal[
    "rfm", "cadence", "trend", "returns", "breadth", "engagement", "attributes", "segments"
]


class FeatureConfig(_Frozen):
    families: tuple[FeatureFamily, ...] | None = Field(
        default=None, description="families to build; default: every one the data supports"
    )
    windows_days: tuple[int, ...] = (30, 90, 180, 365)
    trend_days: int = Field(
        default=90, gt=0, le=MAX_DAYS, description="last N days vs the N before"
    )
    engagement_windows_days: tuple[int, ...] = (30, 90)
    event_types: tuple[str, ...] | None = Field(
        default=None, description="event types to count; default: those in the data"
    )
    max_event_types: int = Field(
        default=20,
        ge=1,
        description="without `event_types`: the most frequent N types get features, the "
        "rest are counted together as other_types",
    )

    @field_validator("windows_days", "engagement_windows_days")
    @classmethod
    def _positive_sorted(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(w <= 0 or w > MAX_DAYS for w in value):
            raise ValueError(f"needs at least one number of days from 1 to {MAX_DAYS}")
        return tuple(sorted(set(value)))


class ModelConfig(_Frozen):
    seed: int = 42
    num_threads: int = Field(default=2, ge=1)
    learning_rate: float = Field(default=0.05, gt=0)
    num_leaves: int = Field(default=15, ge=2)
    min_child_samples: int = Field(default=100, ge=1)
    feature_fraction: float = Field(default=0.9, gt=0, le=1)
    lambda_l2: float = Field(default=1.0, ge=0)
    max_rounds: int = Field(default=1000, ge=1)
    early_stopping_rounds: int = Field(default=30, ge=1)
    early_stopping_metric: Literal["auc", "average_precision", "binary_logloss"] = "auc"
    bgnbd_feature: bool = Field(
        default=True,
        description="BG/NBD probability of no purchase in the horizon as a LightGBM feature",
    )
    calibration: Literal["auto", "sigmoid", "beta", "none", "isotonic"] = Field(
        default="auto",
        description="auto: sigmoid, beta or none, whichever is best calibrated on the "
        "walk-forward test dates (all keep the ranking); isotonic can tie many",
    )
    bootstrap_samples: int = Field(
        default=1000, ge=100, description="resamples of the model-minus-baseline intervals"
    )


class MlflowConfig(_Frozen):
    tracking_uri: str | None = Field(
        default=None,
        description="else $MLFLOW_TRACKING_URI, else sqlite:///<project_dir>/mlflow.db",
    )
    experiment: str = "churnkit"
    registered_model_name: str = "churnkit"


class RiskTierConfig(_Frozen):
    """How churn probabilities become the tiers ``high``, ``medium`` and ``low``.

    ``method: share`` (the default): ``high`` and ``medium`` are shares of the night's
    ranking, from the top: the first 10 % are ``high``, the rest of the first 30 %
    ``medium``, whatever the base rate (fixed probabilities put 2 of 2,446 customers in
    ``high`` at a 6 % churn rate, and nearly everyone at 80 %). ``method: probability``:
    they are the lowest churn probabilities of each tier. ``method: top``: the numbers of
    customers, counted from the top, in ``high`` and in ``high`` plus ``medium``.
    """

    method: Literal["share", "probability", "top"] = "share"
    high: float = Field(default=0.10, gt=0)
    medium: float = Field(default=0.30, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> RiskTierConfig:
        if self.method == "share":
            if not (0 < self.high <= self.medium <= 1):
                raise ValueError(
                    "with method 'share', need 0 < high <= medium <= 1 "
                    f"(got high={self.high}, medium={self.medium})"
                )
        elif self.method == "probability":
            if not (0 < self.medium <= self.high <= 1):
                raise ValueError(
                    "with method 'probability', need 0 < medium <= high <= 1 "
                    f"(got high={self.high}, medium={self.medium})"
                )
        elif self.high != int(self.high) or self.medium != int(self.medium):
            raise ValueError("with method 'top', high and medium are numbers of customers")
        elif self.medium < self.high:
            raise ValueError(
                "with method 'top', medium counts from the top too, so it must be >= high "
                f"(got high={int(self.high)}, medium={int(self.medium)})"
            )
        return self


class StatusConfig(_Frozen):
    """When a customer counts as lapsing or lapsed: days since their last order over their
    usual gap between orders (the shop's usual gap for one-order customers)."""

    lapsing_after_gaps: float = Field(default=1.5, gt=0, description="overdue from here")
    lapsed_after_gaps: float = Field(
        default=3.0, gt=0, description="lapsed from here: a win-back play, after the saveable"
    )

    @model_validator(mode="after")
    def _ordered(self) -> StatusConfig:
        if self.lapsed_after_gaps < self.lapsing_after_gaps:
            raise ValueError(
                "need lapsing_after_gaps <= lapsed_after_gaps "
                f"(got {self.lapsing_after_gaps} and {self.lapsed_after_gaps})"
            )
        return self


class DriftConfig(_Frozen):
    """Population stability (PSI) of the features and the score against training."""

    psi_threshold: float = Field(
        default=0.25, gt=0, description="a PSI above this stops scoring (exit 3)"
    )
    bins: int = Field(default=10, ge=2, le=100)
    exclude: tuple[str, ...] = Field(
        default=(),
        description="features whose drift is not measured (tenure and days since signup "
        "are already compared as they were at training)",
    )


class HoldoutConfig(_Frozen):
    """A control group per night that the retention team does not contact, so the plays
    can be measured against it (:mod:`churnkit.scoring.holdout`)."""

    share: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="share of each risk tier held out (not contacted); 0: no holdout",
    )
    salt: str = Field(
        default="churnkit",
        min_length=1,
        description="with the night and the customer id, decides the group: change it to "
        "draw other groups",
    )


class ScoringConfig(_Frozen):
    output_dir: ResolvedPath = Field(default=Path("scores"), validate_default=True)
    model: str | None = Field(
        default=None,
        description="models:/NAME@ALIAS URI or a bundle folder; default: the champion",
    )
    max_staleness_days: int = Field(default=7, ge=0, le=MAX_DAYS)
    top: int = Field(default=20, ge=1, description="rows printed after scoring")
    risk_tiers: RiskTierConfig = Field(default_factory=dict, validate_default=True)
    high_value_share: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description="the top share of customers by 365-day value treated as high value",
    )
    status: StatusConfig = Field(default_factory=dict, validate_default=True)
    drift: DriftConfig = Field(default_factory=dict, validate_default=True)
    holdout: HoldoutConfig = Field(default_factory=dict, validate_default=True)
    uplift_model: ResolvedPath | None = Field(
        default=None,
        description="a folder written by `churnkit uplift`: adds uplift and "
        "expected_saved_value to the list (`at-risk --sort saved`)",
    )
    explain_top: int | None = Field(
        default=10_000,
        ge=1,
        description="reasons for this many customers from the top of the list (by priority); "
        "null: all",
    )


class DuckDBConfig(_Frozen):
    """Settings of the DuckDB connection that scoring, features and backtests use."""

    memory_limit: str | None = Field(
        default=None,
        description="e.g. 2GB or 4GiB; DuckDB spills to temp_directory beyond it (default: "
        "80 % of RAM)",
    )
    temp_directory: ResolvedPath | None = Field(default=None, description="where DuckDB spills")
    threads: int | None = Field(default=None, ge=1, description="default: every core")

    @field_validator("memory_limit")
    @classmethod
    def _a_size(cls, value: str | None) -> str | None:
        size = r"\s*\d+(\.\d+)?\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)\s*"
        if value is not None and not re.fullmatch(size, value, flags=re.IGNORECASE):
            raise ValueError(f"{value!r} is not a size; write it like 2GB or 4GiB")
        return value


class SparkConfig(_Frozen):
    """The Spark session for ``engine: spark``; the session time zone is always UTC."""

    master: str | None = Field(
        default=None, description="e.g. local[2] or spark://host:7077; default: the active session"
    )
    app_name: str = "churnkit"
    conf: dict[str, str] = Field(default_factory=dict, description="extra Spark settings")


class Config(_Frozen):
    project_dir: ResolvedPath = Field(default=Path("."), validate_default=True)
    engine: Literal["duckdb", "spark"] = Field(
        default="duckdb", description="where features are computed"
    )
    spark: SparkConfig = Field(default_factory=dict, validate_default=True)
    duckdb: DuckDBConfig = Field(default_factory=dict, validate_default=True)
    data: DataConfig
    currency: str = Field(
        default="",
        max_length=8,
        description="shown after money in the report and the KPI table, e.g. EUR or $",
    )
    # sections default to {} and are validated, so their paths resolve like given ones
    snapshots: SnapshotConfig = Field(default_factory=dict, validate_default=True)
    features: FeatureConfig = Field(default_factory=dict, validate_default=True)
    model: ModelConfig = Field(default_factory=dict, validate_default=True)
    mlflow: MlflowConfig = Field(default_factory=dict, validate_default=True)
    scoring: ScoringConfig = Field(default_factory=dict, validate_default=True)

    @property
    def models_dir(self) -> Path:
        """Where training exports model bundles: ``<project_dir>/models``."""
        return self.project_dir / "models"


def load_config(path: str | Path) -> Config:
    """Load and validate a YAML config; relative paths resolve against its folder.

    Raises
    ------
    ConfigError
        When the file is missing, is not YAML, or has invalid or unknown keys; the
        message names every offending key.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"config file {str(path)!r} does not exist; pass the path to a YAML config"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {err.start}); save the config as UTF-8"
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    return config_from_dict(raw, base_dir=path.resolve().parent, config_file=str(path))


def config_from_dict(raw: Any, *, base_dir: Path, config_file: str = "the config") -> Config:
    """Validate a parsed config mapping; see :func:`load_config`."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{config_file} must be a YAML mapping with at least a `data:` section")
    try:
        return Config.model_validate(
            raw, context={"base_dir": base_dir, "config_file": config_file}
        )
    except ValidationError as err:
        raise ConfigError(f"{config_file} is invalid: {_describe(err)}") from err


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        parts.append(f"`{key}`: {msg}")
    return "; ".join(parts)
