"""Breadth: how many distinct categories and channels a customer has bought through.

Counted over qualifying orders before ``as_of``, for each of ``category`` and
``channel`` that the orders have. Missing values: null category or channel values are
not counted, so a customer whose orders all lack a category has 0.
"""

from __future__ import annotations

import ibis.expr.types as ir

from churnkit.features.spec import FeatureSpec

_NAMES = {"category": "distinct_categories", "channel": "distinct_channels"}


def names(spec: FeatureSpec) -> list[str]:
    return [_NAMES[c] for c in spec.breadth_columns]


def aggregates(h: ir.Table, spec: FeatureSpec) -> dict[str, ir.Scalar]:
    return {_NAMES[c]: h[c].nunique(where=h.qualifying) for c in spec.breadth_columns}


def derive(t: ir.Table, spec: FeatureSpec) -> dict[str, ir.Value]:
    return {}
