"""Event tables as shops have them: one kind of event, hundreds of types, odd names."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from tests.conftest import write_config
from typer.testing import CliRunner

from churnkit.cli import app
from churnkit.config import load_config
from churnkit.features.spec import OTHER_TYPES, spec_for_data
from churnkit.pipelines import open_source

AS_OF = dt.date(2025, 6, 1)


@pytest.fixture(scope="module")
def events(generated_dir):
    return pd.read_parquet(generated_dir / "events.parquet")


def _source(tmp_path, generated_dir, events_frame, **events_config):
    events_frame.to_parquet(tmp_path / "events.parquet")
    data = {"events": {"path": str(tmp_path / "events.parquet"), **events_config}}
    config = write_config(tmp_path / "p", generated_dir, data=data)
    cfg = load_config(config)
    source = open_source(cfg)
    spec, source.notes = spec_for_data(cfg, source)  # the check's notes and the event types'
    return source, spec, config


def test_a_table_of_one_kind_of_event_takes_its_type_from_the_config(
    tmp_path, generated_dir, events
):
    coupons = events[events["event_type"] == "email_open"].drop(columns=["event_type", "value"])
    source, spec, config = _source(tmp_path, generated_dir, coupons, event_type="coupon_redemption")
    assert spec.event_types == ("coupon_redemption",)
    features = source.features([AS_OF], spec)
    assert features["coupon_redemption_events_90d"].sum() > 0
    result = CliRunner().invoke(app, ["train", str(config)])
    assert result.exit_code in (0, 3), result.output + result.stderr  # trained, gate either way
    assert "coupon_redemption_events_30d" in open_source(load_config(config)).features(
        [AS_OF], spec
    )


def test_hundreds_of_event_types_give_the_most_frequent_and_the_rest_together(
    tmp_path, generated_dir, events
):
    rng = np.random.default_rng(3)
    # an id mapped to event_type by mistake: 500 "types", a few of them frequent
    ids = np.where(rng.random(len(events)) < 0.5, rng.integers(0, 5, len(events)), 0)
    ids = np.where(ids == 0, rng.integers(5, 500, len(events)), ids)
    many = events.assign(event_type=ids.astype(str))
    source, spec, _ = _source(tmp_path, generated_dir, many)
    assert len(spec.event_types) == 21 and spec.event_types[-1] == OTHER_TYPES
    assert set(spec.event_types[:-1]) >= {f"type_{i}" for i in range(1, 5)}  # the frequent
    distinct = many["event_type"].nunique()
    assert distinct > 400
    assert any(f"{distinct} event types; the 20 most frequent" in n for n in source.notes)
    assert any("not usable as feature names and were renamed ('" in n for n in source.notes)
    features = source.features([AS_OF], spec)
    per_type = features[[f"{t}_events_90d" for t in spec.event_types]].sum(axis=1)
    window = many[
        (many["occurred_at"] < pd.Timestamp(AS_OF))
        & (many["occurred_at"] >= pd.Timestamp(AS_OF) - pd.Timedelta(days=90))
    ]
    by_hand = window.groupby("customer_id").size()
    got = per_type.set_axis(features["customer_id"])
    pd.testing.assert_series_equal(
        got, by_hand.reindex(got.index).fillna(0).astype(got.dtype), check_names=False
    )
