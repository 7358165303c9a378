"""Why a customer is at risk: LightGBM ``pred_contrib`` (exact TreeSHAP) in words.

The contributions are LightGBM's, asked once per tree for each distinct way the rows
meet its splits (:mod:`churnkit.scoring.contributions`).

For each customer the features with the largest *positive* contributions to the raw
churn score (those pushing towards churn) become ``reason_1`` .. ``reason_3``, largest
first, ties broken by the model's feature order. Each reason is a sentence with the
customer's own values, e.g. ``"no order for 94 days; usually orders every 21 days"``. A
customer with fewer than three positive contributions gets empty trailing reasons.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from churnkit.scoring.contributions import tree_contributions
from churnkit.training.model import ChurnModel

__all__ = [
    "REASON_COLUMNS",
    "describe_feature",
    "reason_features",
    "reason_sentences",
    "NOT_REASONS",
    "top_contributions",
]

REASON_COLUMNS = ("reason_1", "reason_2", "reason_3")
# features the model may use but a retention team cannot read as a reason to act:
# "largest order 149.58" describes a customer, it is not a change in their behaviour
NOT_REASONS = frozenset({"max_order_value", "mean_order_value", "revenue_lifetime"})

Row = Mapping[str, Any]  # anything with ``get(name)``: a dict, or a row of a frame


def top_contributions(model: ChurnModel, features: pd.DataFrame, k: int = 3) -> np.ndarray:
    """Indices into ``model.feature_names`` of each row's ``k`` largest positive contributions.

    Returns an ``(rows, k)`` int array, largest first; ``-1`` where a row has fewer than
    ``k`` features with a positive contribution.
    """
    X = model.select_features(features)
    if X.empty:
        return np.empty((0, k), dtype="int64")
    contrib = tree_contributions(model.booster, X)[:, :-1]  # last: bias
    positive = np.where(contrib > 0, contrib, -np.inf)
    # an attribute that is unknown (the customer is not in the customers table, or the
    # value is empty) says nothing a retention team can act on: never a reason; nor is
    # the size of a customer's orders, which describes them but is no change in behaviour
    spec = model.feature_spec
    unknowable = [*spec.attributes, *(["days_since_signup"] if spec.signup else [])]
    for j, name in enumerate(model.feature_names):
        if name in NOT_REASONS:
            positive[:, j] = -np.inf
        elif name in unknowable:
            positive[X[name].isna().to_numpy(), j] = -np.inf
    order = np.argsort(-positive, axis=1, kind="stable")[:, :k]
    chosen = np.take_along_axis(positive, order, axis=1)
    return np.where(np.isfinite(chosen), order, -1).astype("int64")


def reason_features(model: ChurnModel, features: pd.DataFrame, k: int = 3) -> list[list[str]]:
    """The feature names behind each row's reasons, largest contribution first."""
    names = model.feature_names
    return [[names[i] for i in row if i >= 0] for row in top_contributions(model, features, k)]


def reason_sentences(
    model: ChurnModel, features: pd.DataFrame, k: int = 3
) -> tuple[pd.DataFrame, list[list[str]]]:
    """``reason_1`` .. ``reason_k`` sentences per row, and the features behind them."""
    features = model.add_derived_features(features)
    chosen = reason_features(model, features, k)
    attributes = frozenset(model.feature_spec.attributes)
    columns = _Columns(features)
    sentences = [
        [describe_feature(name, columns.row(i), attributes) for name in names]
        + [""] * (k - len(names))
        for i, names in enumerate(chosen)
    ]
    columns = [f"reason_{i + 1}" for i in range(k)]
    frame = pd.DataFrame(sentences, columns=columns, index=features.index, dtype="str")
    return frame, chosen


def describe_feature(name: str, row: Row, attributes: frozenset[str] = frozenset()) -> str:
    """One feature of one customer as a short sentence with the customer's own value."""
    if name in attributes:
        return f"{name.replace('_', ' ')}: {_text(row.get(name))}"
    for pattern, render in _RULES:
        match = pattern.fullmatch(name)
        if match:
            return render(match, row)
    return f"{name.replace('_', ' ')}: {_text(row.get(name))}"


class _Columns:
    """Column arrays of a frame, read row by row without building a dict per row."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame
        self._arrays: dict[str, np.ndarray] = {}

    def _array(self, name: str) -> np.ndarray | None:
        if name not in self._arrays:
            if name not in self._frame.columns:
                return None
            column = self._frame[name]
            if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
                self._arrays[name] = column.to_numpy(dtype="float64", na_value=np.nan)
            else:
                self._arrays[name] = column.astype(object).to_numpy()
        return self._arrays[name]

    def row(self, i: int) -> _RowView:
        return _RowView(self, i)


class _RowView:
    __slots__ = ("_columns", "_i")

    def __init__(self, columns: _Columns, i: int) -> None:
        self._columns, self._i = columns, i

    def get(self, name: str) -> Any:
        array = self._columns._array(name)
        return None if array is None else array[self._i]


# -- value formatting ---------------------------------------------------------------


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _int(value: Any) -> str:
    return "?" if _missing(value) else f"{round(float(value)):,}"


def _money(value: Any) -> str:
    return "?" if _missing(value) else f"{float(value):,.2f}"


def _share(value: Any) -> str:
    return "?" if _missing(value) else f"{float(value):.0%}"


def _one_decimal(value: Any) -> str:
    return "?" if _missing(value) else f"{float(value):,.1f}"


def _text(value: Any) -> str:
    return "unknown" if _missing(value) else str(value)


def _plural(count: Any, one: str, many: str) -> str:
    return one if not _missing(count) and round(float(count)) == 1 else many


_EVENT_WORDS = {"nps": ("NPS answer", "NPS answers"), "email_open": ("email open", "email opens")}


def _event_words(event_type: str) -> tuple[str, str]:
    words = event_type.replace("_", " ")
    return _EVENT_WORDS.get(event_type, (words, f"{words}s"))


# -- one renderer per feature family --------------------------------------------------


def _recency(_: re.Match, row: Row) -> str:
    text = f"no order for {_int(row.get('recency_days'))} days"
    gap = row.get("mean_days_between_orders")
    return text if _missing(gap) else f"{text}; usually orders every {_int(gap)} days"


def _orders_window(m: re.Match, row: Row) -> str:
    n = row.get(m.group(0))
    if not _missing(n) and n == 0:
        return f"no orders in the last {m.group(1)} days"
    return f"{_int(n)} {_plural(n, 'order', 'orders')} in the last {m.group(1)} days"


def _revenue_window(m: re.Match, row: Row) -> str:
    value = row.get(m.group(0))
    if not _missing(value) and value == 0:
        return f"no spend in the last {m.group(1)} days"
    return f"spent {_money(value)} in the last {m.group(1)} days"


def _orders_lifetime(m: re.Match, row: Row) -> str:
    n = row.get(m.group(0))
    return "only one order so far" if not _missing(n) and n == 1 else f"{_int(n)} orders in total"


def _expected_next(m: re.Match, row: Row) -> str:
    days = row.get(m.group(0))
    if _missing(days):
        return "no order rhythm yet"
    if days < 0:
        return f"next order was due {_int(-days)} days ago"
    return f"next order expected in {_int(days)} days"


def _trend(m: re.Match, row: Row) -> str:
    kind, days = m.group(1), m.group(2)
    previous = row.get(f"{kind}_prev_{days}d")
    change = row.get(m.group(0))
    if _missing(previous) or _missing(change):
        return f"{kind} trend over {days} days: {_text(change)}"
    fmt = _int if kind == "orders" else _money
    word = "orders" if kind == "orders" else "spend"
    now = float(previous) + float(change)
    return f"{word} {fmt(previous)} -> {fmt(now)} (last {days} days vs the {days} before)"


def _previous(m: re.Match, row: Row) -> str:
    kind, days = m.group(1), m.group(2)
    value = row.get(m.group(0))
    shown = f"{_int(value)} orders" if kind == "orders" else f"spent {_money(value)}"
    return f"{shown} in the {days} days before the last {days}"


def _event_count(m: re.Match, row: Row) -> str:
    one, many = _event_words(m.group(1))
    n = row.get(m.group(0))
    if not _missing(n) and n == 0:
        return f"no {many} in the last {m.group(2)} days"
    return f"{_int(n)} {_plural(n, one, many)} in the last {m.group(2)} days"


def _days_since_event(m: re.Match, row: Row) -> str:
    one, many = _event_words(m.group(1))
    days = row.get(m.group(0))
    return f"no {many} on record" if _missing(days) else f"last {one} {_int(days)} days ago"


def _last_nps(m: re.Match, row: Row) -> str:
    score = row.get(m.group(0))
    return "has not answered an NPS survey" if _missing(score) else f"last NPS score {_int(score)}"


def _score(m: re.Match, row: Row) -> str:
    words = {"r": "recency", "f": "frequency", "m": "monetary"}
    return f"{words[m.group(1)]} score {_int(row.get(m.group(0)))} of 5"


def _simple(
    template: str, fmt: Callable[[Any], str], missing: str | None = None
) -> Callable[[re.Match, Row], str]:
    """The feature's value put into ``template``; ``missing`` when it has none (if given)."""

    def render(m: re.Match, row: Row) -> str:
        value = row.get(m.group(0))
        if missing is not None and _missing(value):
            return missing
        return template.format(fmt(value))

    return render


def _gap_spread(m: re.Match, row: Row) -> str:
    """How regular the gaps between orders are, read against their mean: a customer who
    orders every 46-47 days is regular, not "irregular (gaps vary by about 0 days)"."""
    spread, mean = row.get("std_days_between_orders"), row.get("mean_days_between_orders")
    if _missing(spread):
        return "too few orders to show a rhythm"
    if not _missing(mean) and float(spread) <= 0.25 * float(mean):
        about = "less than a day" if float(spread) < 1 else f"about {_int(spread)} days"
        return f"regular orders, every {_int(mean)} days give or take {about}"
    return f"irregular orders (gaps vary by about {_int(spread)} days)"


def _counted(one: str, many: str) -> Callable[[re.Match, Row], str]:
    def render(m: re.Match, row: Row) -> str:
        n = row.get(m.group(0))
        return f"{_int(n)} {_plural(n, one, many)}"

    return render


_RULES: Sequence[tuple[re.Pattern[str], Callable[[re.Match, Row], str]]] = [
    (re.compile(pattern), render)
    for pattern, render in (
        (r"recency_days", _recency),
        (r"tenure_days", _simple("first order {} days ago", _int)),
        (r"orders_(\d+)d", _orders_window),
        (r"revenue_(\d+)d", _revenue_window),
        (r"orders_lifetime", _orders_lifetime),
        (r"revenue_lifetime", _simple("spent {} in total", _money)),
        (r"mean_order_value", _simple("average order {}", _money)),
        (r"max_order_value", _simple("largest order {}", _money)),
        (
            r"mean_days_between_orders",
            _simple("orders every {} days on average", _int, "no repeat order yet"),
        ),
        (r"std_days_between_orders", _gap_spread),
        (
            r"overdue_ratio",
            _simple(
                "{}x their usual gap since the last order",
                lambda r: f"{float(r):.1f}",
                "no usual gap between orders yet",
            ),
        ),
        (r"expected_next_order_in_days", _expected_next),
        (r"(orders|revenue)_prev_(\d+)d", _previous),
        (r"(orders|revenue)_trend_(\d+)d", _trend),
        (r"returns_lifetime", _counted("returned order", "returned orders")),
        (r"cancellations_lifetime", _counted("cancelled order", "cancelled orders")),
        (r"return_rate", _simple("{} of orders returned", _share)),
        (r"refunded_revenue_share", _simple("{} of spend refunded", _share)),
        (r"distinct_categories", _counted("category bought", "categories bought")),
        (r"distinct_products", _counted("product bought", "products bought")),
        (r"mean_units_per_order", _simple("about {} items an order", _one_decimal)),
        (r"distinct_channels", _counted("channel used", "channels used")),
        (r"(.+)_events_(\d+)d", _event_count),
        (r"days_since_last_(.+)", _days_since_event),
        (r"last_nps", _last_nps),
        (r"days_since_signup", _simple("signed up {} days ago", _int)),
        (r"([rfm])_score", _score),
        (
            r"bgnbd_no_purchase",
            _simple(
                "{} chance of no order in the horizon for their buying pattern (BG/NBD)",
                lambda v: f"{float(v):.0%}",
            ),
        ),
    )
]
