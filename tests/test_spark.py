"""Parity: the same Ibis feature definitions on DuckDB and on a local PySpark session."""

from __future__ import annotations

import datetime as dt
import os
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from pyspark.sql import SparkSession
from tests.conftest import write_config

from churnkit.config import load_config
from churnkit.data.generator import generate_data
from churnkit.engines.duckdb import build_features
from churnkit.engines.spark import spark_feature_frame, spark_features
from churnkit.errors import ConfigError, DataError
from churnkit.features import FAMILIES, FeatureSpec
from churnkit.features.spec import spec_for_data
from churnkit.pipelines import open_source, run_features, run_scoring
from churnkit.scoring import score_customers
from churnkit.training.model import ChurnModel

AS_OF = [dt.date(2025, 3, 1), dt.date(2025, 6, 1)]
BASIC = FeatureSpec(windows_days=(30, 90), activity_days=365)
SPEC = FeatureSpec(
    windows_days=(30, 90, 180, 365),
    activity_days=365,
    families=FAMILIES,
    event_types=("email_open", "nps", "session", "support_ticket"),
    attributes=("loyalty_tier", "acquisition_channel", "country"),
    breadth_columns=("category", "channel"),
    signup=True,
)


@pytest.fixture(scope="session")
def spark():
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers need churnkit too
    session = (
        SparkSession.builder.master("local[1]")
        .appName("churnkit-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture(scope="module")
def small():
    data = generate_data(400, seed=9)
    return {
        "orders": data.orders.to_pandas(),
        "events": data.events.to_pandas(),
        "customers": data.customers.to_pandas(),
    }


def _normalised(frame: pd.DataFrame) -> pd.DataFrame:
    """Engine differences that carry no meaning: integer widths, string and date types."""
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if isinstance(values.dtype, pd.CategoricalDtype) or values.dtype == object:
            out[column] = values.astype("string")
        elif pd.api.types.is_numeric_dtype(values):
            out[column] = values.astype("float64")
        else:
            out[column] = values.astype("string")
    return out


def test_every_family_gives_the_same_features_and_labels_on_spark(spark, small):
    local = build_features(
        small["orders"],
        AS_OF,
        SPEC,
        events=small["events"],
        customers=small["customers"],
        horizon_days=90,
    )
    tables = {name: spark.createDataFrame(frame) for name, frame in small.items()}
    on_spark = spark_features(spark, tables, AS_OF, SPEC, horizon_days=90)
    assert len(local) > 300
    assert list(on_spark.columns) == list(local.columns)
    pd.testing.assert_frame_equal(
        _normalised(on_spark), _normalised(local), check_exact=False, rtol=1e-12, atol=1e-9
    )


def test_a_model_scores_spark_features_like_duckdb_features(spark, trained, tmp_path):
    cfg, outcome, _ = trained
    model = ChurnModel.load(outcome.export_dir)
    orders = pd.read_parquet(cfg.data.orders.path)
    local = build_features(orders, [dt.date(2025, 6, 1)], model.feature_spec)
    orders_on_spark = spark.read.parquet(str(cfg.data.orders.path))
    remote = spark_features(
        spark, {"orders": orders_on_spark}, [dt.date(2025, 6, 1)], model.feature_spec
    )
    a, b = score_customers(model, local), score_customers(model, remote)
    np.testing.assert_allclose(b["churn_probability"], a["churn_probability"], rtol=0, atol=1e-12)
    pd.testing.assert_frame_equal(b, a)


def test_the_spark_frame_stays_on_spark_until_collected(spark, small):
    frame = spark_feature_frame(
        spark, {"orders": spark.createDataFrame(small["orders"])}, AS_OF[:1], BASIC
    )
    assert type(frame).__name__ == "DataFrame" and "pyspark" in type(frame).__module__
    assert frame.count() > 100
    assert frame.columns[:2] == ["customer_id", "as_of"]
    # the temporary views behind it are gone; the frame does not need them
    assert not [t.name for t in spark.catalog.listTables() if t.name.startswith("churnkit_")]


def test_a_session_not_in_utc_is_refused(spark, small):
    spark.conf.set("spark.sql.session.timeZone", "Europe/Berlin")
    try:
        with pytest.raises(ConfigError, match="spark.sql.session.timeZone=UTC"):
            spark_feature_frame(
                spark, {"orders": spark.createDataFrame(small["orders"])}, AS_OF, BASIC
            )
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")


# -- engine: spark in the config --------------------------------------------------------


def _spark_config(tmp_path, generated_dir, **overrides):
    path = write_config(tmp_path / "spark", generated_dir, **overrides)
    raw = yaml.safe_load(path.read_text())
    raw.update(engine="spark", spark={"master": "local[1]", "conf": {"spark.ui.enabled": "false"}})
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


def test_engine_spark_writes_the_same_feature_table(spark, tmp_path, generated_dir):

    local_cfg = load_config(write_config(tmp_path / "local", generated_dir))
    spark_cfg = _spark_config(tmp_path, generated_dir)
    assert spark_cfg.engine == "spark"
    as_of = dt.date(2025, 6, 1)
    local = run_features(local_cfg, as_of=as_of, out=tmp_path / "local.parquet")
    remote = run_features(spark_cfg, as_of=as_of, out=tmp_path / "spark.parquet")
    assert (remote.rows, remote.columns) == (local.rows, local.columns)
    # the files as an analyst reads them: DuckDB writes its own, Spark's goes through pandas
    pd.testing.assert_frame_equal(
        _normalised(pd.read_parquet(remote.path)), _normalised(pd.read_parquet(local.path))
    )


def test_closing_a_spark_engine_drops_its_own_views_only(spark, tmp_path, generated_dir):
    from churnkit.pipelines import open_source

    spark.range(3).createOrReplaceTempView("users_own_view")
    data = open_source(_spark_config(tmp_path, generated_dir))
    prefix = data.engine.prefix
    views = {t.name for t in spark.catalog.listTables() if t.isTemporary}
    assert {f"{prefix}orders", "users_own_view"} <= views
    data.close()
    left = {t.name for t in spark.catalog.listTables() if t.isTemporary}
    assert "users_own_view" in left and not any(name.startswith(prefix) for name in left)


@pytest.mark.parametrize("model", ["registry", "bundle"])
def test_engine_spark_scores_on_spark_like_the_local_engine(
    spark, trained, tmp_path, generated_dir, model
):
    cfg, outcome, scoring = trained
    source = "models:/churn-test@champion" if model == "registry" else str(outcome.export_dir)
    spark_cfg = _spark_config(
        tmp_path,
        generated_dir,
        scoring={"model": source, "output_dir": "s"},
        mlflow={"tracking_uri": f"sqlite:///{cfg.project_dir / 'mlflow.db'}"},
    )
    remote = run_scoring(spark_cfg)
    assert remote.as_of == scoring.as_of and remote.manifest["engine"] == "spark"
    written = pd.read_parquet(remote.partition / "scores.parquet")
    local = scoring.ranked.assign(as_of=scoring.ranked["as_of"].astype(str))
    written = written.assign(as_of=written["as_of"].astype(str))
    pd.testing.assert_frame_equal(written, local, check_dtype=False)
    assert remote.manifest["rows"] == len(local)
    assert remote.manifest["risk_tiers"] == scoring.manifest["risk_tiers"]
    pd.testing.assert_frame_equal(remote.ranked, scoring.ranked.head(len(remote.ranked)))


def test_engine_spark_serves_the_best_baseline_like_the_local_engine(
    spark, trained, tmp_path, generated_dir, monkeypatch
):
    from churnkit import tracking

    cfg, outcome, _ = trained

    def no_champion(self, configured):  # what load_scoring_model serves when no version passed
        model = self.load_model(configured)
        served = model.serving_baseline("bgnbd_baseline")
        served.metadata = {
            **model.metadata,
            "model_name": "baseline:bgnbd_baseline",
            "model_version": "",
            "fallback_reason": "no champion: churn-test v1 did not pass the quality gate",
        }
        return served

    monkeypatch.setattr(tracking.Tracker, "load_scoring_model", no_champion)
    bundle = {"model": str(outcome.export_dir)}
    local = run_scoring(
        load_config(write_config(tmp_path / "local", generated_dir, scoring=bundle)),
        dry_run=True,
    )
    remote = run_scoring(_spark_config(tmp_path, generated_dir, scoring=bundle))
    assert remote.manifest["scorer"]["served"] == "bgnbd_baseline"
    written = pd.read_parquet(remote.partition / "scores.parquet")
    assert (written["model_name"] == "baseline:bgnbd_baseline").all()
    assert (written["reason_1"].fillna("") == "").all()  # no reasons: they explain the model
    # BG/NBD is fitted on each engine (on Spark from a driver sample) and mapped to churn
    # through the baseline's isotonic steps, so a few customers land on a neighbouring
    # step: the probabilities agree to 1e-2 and the ranking exactly; the working order,
    # which weighs those probabilities by value, closely (Spearman 0.97 when measured)
    shown = local.ranked.head(len(remote.ranked))
    exact = [c for c in remote.ranked.columns if c not in ("priority", "expected_value_at_risk")]
    pd.testing.assert_frame_equal(remote.ranked[exact], shown[exact], rtol=1e-2)
    both = written.merge(local.ranked, on="customer_id")
    assert both["priority_x"].corr(both["priority_y"], method="spearman") > 0.95
    assert written["churn_probability"].is_monotonic_decreasing


def _bad_orders(tmp_path, generated_dir, kind):
    if kind == "csv":  # text that does not parse, a missing id, a repeated id, a bad status
        path = tmp_path / "orders.csv"
        path.write_text(
            "order_id,customer_id,ordered_at,amount,status\n"
            "o1,c1,2024-01-01,10.0,completed\n"
            "o1,c2,2024-01-02,-5.0,completed\n"
            "o3,,not a date,abc,lost\n",
            encoding="utf-8",
        )
        return path
    orders = pd.read_parquet(generated_dir / "orders.parquet")
    orders.loc[:2, "amount"] = -5.0
    orders.loc[:2, "status"] = "completed"
    orders.loc[3:4, "status"] = "lost"
    orders.loc[5, "customer_id"] = None
    orders.loc[6, "order_id"] = orders.loc[5000, "order_id"]  # another customer, months on
    path = tmp_path / "orders.parquet"
    orders.to_parquet(path)
    return path


def _with_orders(cfg, path):
    orders = cfg.data.orders.model_copy(update={"path": path})
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"orders": orders})})


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_the_same_bad_inputs_get_the_same_message_on_duckdb_and_spark(
    spark, tmp_path, generated_dir, kind
):
    path = _bad_orders(tmp_path, generated_dir, kind)
    configs = {
        "duckdb": load_config(write_config(tmp_path / "local", generated_dir)),
        "spark": _spark_config(tmp_path, generated_dir),
    }
    messages = {}
    for engine, cfg in configs.items():
        out = tmp_path / f"{engine}.parquet"
        with pytest.raises(DataError) as caught:
            run_features(_with_orders(cfg, path), as_of=dt.date(2025, 6, 1), out=out)
        messages[engine] = str(caught.value)
        assert not out.exists()
    assert messages["spark"] == messages["duckdb"]
    message = messages["spark"]
    assert "orders.customer_id: 1 null value(s)" in message
    assert "order id(s) have lines of several customers" in message
    assert message.startswith("orders breaks the data contract (5 problems):")
    if kind == "csv":
        assert "orders.ordered_at: 1 value(s) do not parse as timestamp, e.g. ['not a date']" in (
            message
        )
        assert "orders.amount: 1 value(s) do not parse as double, e.g. ['abc']" in message
        assert "orders.status: 1 row(s) have values ['lost'] that" in message
    else:
        assert "order id(s) have lines more than a day apart" in message
        assert "orders.status: 2 row(s) have values ['lost'] that" in message
        assert "orders.amount: 3 order(s) whose lines add up to a negative amount are not " in (
            message
        )


def test_ids_written_differently_get_the_same_message_on_duckdb_and_spark(
    spark, tmp_path, generated_dir
):
    customers = pd.read_parquet(generated_dir / "customers.parquet")
    customers["customer_id"] = "X-" + customers["customer_id"]  # another export's ids
    customers.to_parquet(tmp_path / "customers.parquet", index=False)
    data = {"customers": {"path": str(tmp_path / "customers.parquet")}}
    configs = {
        "duckdb": load_config(write_config(tmp_path / "local", generated_dir, data=data)),
        "spark": _spark_config(tmp_path, generated_dir, data=data),
    }
    messages = {}
    for engine, cfg in configs.items():
        with pytest.raises(DataError) as caught:
            run_features(cfg, as_of=dt.date(2025, 6, 1), out=tmp_path / f"{engine}.parquet")
        messages[engine] = str(caught.value)
    assert messages["spark"] == messages["duckdb"]
    assert messages["spark"].startswith(
        "none of the 3,000 customer ids of customers is a customer of the orders "
        "(e.g. customers ['X-C0000001', 'X-C0000002', 'X-C0000003'], orders ['C0000001', "
    )


@pytest.mark.parametrize("dialect", ["german", "us"])
def test_csv_dialects_read_the_same_on_spark(spark, csv_exports, dialect):
    from tests.test_csv_dialects import _config

    local = _config(csv_exports, dialect)
    if dialect == "german":  # the file's letters are the same in latin-1, which Spark reads
        spark_cfg = _with_encoding(local, "cp1252")
        spark_cfg = spark_cfg.model_copy(update={"engine": "spark"})
        with pytest.raises(ConfigError, match="is not one Spark reads CSV in"):
            open_source(spark_cfg)
        local = _with_encoding(local, "latin-1")
    remote = local.model_copy(
        update={"engine": "spark", "spark": local.spark.model_copy(update={"master": "local[1]"})}
    )
    source = open_source(remote)
    spec = spec_for_data(remote, source)[0]
    ours = source.features([dt.date(2025, 6, 1)], spec, horizon_days=90)
    theirs = open_source(local).features([dt.date(2025, 6, 1)], spec, horizon_days=90)
    pd.testing.assert_frame_equal(_normalised(ours), _normalised(theirs))


def _with_encoding(cfg, encoding):
    orders = cfg.data.orders.model_copy(update={"encoding": encoding})
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"orders": orders})})


def test_timestamps_with_their_own_offset_read_the_same_on_spark(spark, tmp_path):
    from tests.test_data_contract import OFFSET_ROWS, _cfg, _orders_csv

    from churnkit.config import config_from_dict

    _orders_csv(tmp_path, OFFSET_ROWS, "order_id,customer_id,ordered_at,amount")
    data = _cfg(tmp_path, orders={"path": "orders.csv"}, timezone="Europe/Berlin")
    local = config_from_dict({"data": data.model_dump()}, base_dir=tmp_path)
    remote = local.model_copy(update={"engine": "spark"})
    frames = [open_source(c).orders_frame().sort_values("order_id") for c in (local, remote)]
    assert frames[0]["ordered_at"].tolist() == frames[1]["ordered_at"].tolist()


def test_the_holdout_group_is_drawn_the_same_on_spark(spark, trained):
    from churnkit.config import HoldoutConfig
    from churnkit.scoring.holdout import assign_holdout
    from churnkit.scoring.spark import with_holdout

    _, _, scoring = trained
    night = scoring.ranked
    cfg = HoldoutConfig(share=0.15, salt="parity")
    as_of = pd.Timestamp(night["as_of"].iloc[0]).date()
    local = night.assign(holdout=assign_holdout(night, as_of, cfg))
    remote = with_holdout(spark.createDataFrame(night), as_of, cfg).toPandas()
    assert local["holdout"].sum() > 100
    pd.testing.assert_series_equal(
        remote.set_index("customer_id")["holdout"],
        local.set_index("customer_id")["holdout"].loc[remote["customer_id"]],
    )


def test_the_readout_reads_contacts_and_revenue_the_same_on_spark(spark, tmp_path, generated_dir):
    """The readout's inputs (who was contacted with which play at what cost, and each
    customer's revenue in the horizon) come from the engine like the other tables."""
    ids = pd.read_parquet(generated_dir / "customers.parquet")["customer_id"].head(60)
    contacts = pd.DataFrame(
        {
            "customer_id": list(ids) + list(ids[:10]),  # ten contacted twice
            "contacted_at": pd.Timestamp("2025-06-03 10:00")
            + pd.to_timedelta(np.arange(70) % 40, unit="D"),
            "play": (["call", "email", None] * 24)[:70],
            "cost": np.linspace(0.5, 5.0, 70),
        }
    )
    contacts.to_parquet(tmp_path / "contacts.parquet", index=False)
    data = {"contacts": {"path": str(tmp_path / "contacts.parquet")}}
    configs = {
        "duckdb": load_config(write_config(tmp_path / "local", generated_dir, data=data)),
        "spark": _spark_config(tmp_path, generated_dir, data=data),
    }
    as_of, horizon = dt.date(2025, 6, 1), 30
    read = {}
    for engine, cfg in configs.items():
        checked = open_source(cfg)
        read[engine] = (
            checked.contacts_in(as_of, horizon),
            checked.horizon_revenue(as_of, horizon).sort_values("customer_id", ignore_index=True),
        )
    local_contacts, local_revenue = read["duckdb"]
    inside = contacts["contacted_at"] < pd.Timestamp("2025-07-01")
    assert len(local_contacts) == contacts.loc[inside, "customer_id"].nunique() == 48
    assert set(local_contacts["play"]) == {"call", "email", "(no play)"}
    assert local_revenue["revenue"].gt(0).all() and len(local_revenue) > 100
    for local, remote in zip(read["duckdb"], read["spark"], strict=True):
        pd.testing.assert_frame_equal(_normalised(remote), _normalised(local))
