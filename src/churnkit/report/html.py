"""The HTML report: one self-contained file (inline SVG and CSS, no scripts, no network).

:func:`render_report` turns a :class:`ReportData` into HTML with a Jinja2 template;
:func:`kpi_figures`, :func:`cohort_figure` and :func:`value_at_risk_figure` draw the
charts. Gathering the data (KPIs, the scored partition, the training run) happens in
:mod:`churnkit.pipelines`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from markdown_it import MarkdownIt
from matplotlib.figure import Figure
from matplotlib.ticker import StrMethodFormatter

from churnkit.config import Config
from churnkit.kpis import observed_periods
from churnkit.report.figures import calibration_figure, figure_svg, gains_lift_figure
from churnkit.training import SCORER_LABELS

__all__ = [
    "REFERENCE_CRR_PCT",
    "ReportData",
    "cohort_figure",
    "kpi_figures",
    "money",
    "render_report",
    "value_at_risk_figure",
]

REFERENCE_CRR_PCT = 38.0  # average e-commerce CRR a year (docs/retention.md)
GOOD_CRR_PCT = (40.0, 80.0)  # the range usually called good
_TOP_CUSTOMERS = 25
_TOP_LAPSED = 10


@dataclass
class ReportData:
    """Everything the report shows; the model parts are optional."""

    title: str
    as_of: str
    activity_days: int
    kpis: pd.DataFrame
    cohorts: pd.DataFrame
    scored: pd.DataFrame
    manifest: Mapping[str, Any]
    metrics: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    model_card: str | None = None
    test_predictions: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    trailing_year: Mapping[str, Any] | None = None  # KPIs of the year to the data's end
    currency: str = ""
    readout: pd.DataFrame | None = None  # listed/contacted vs held out, once measurable
    readout_note: str | None = None  # why there is no readout (yet)

    @classmethod
    def for_night(
        cls, scored: pd.DataFrame, manifest: Mapping[str, Any], tables: Any, cfg: Config
    ) -> ReportData:
        """The report of one scored night: its list and manifest, and the KPIs per month
        (``tables``, :class:`~churnkit.kpis.RetentionTables`) from the first month with a
        whole activity window of data behind it."""
        first_order = pd.Timestamp(manifest["data"]["first_order_at"]).date()
        activity = cfg.snapshots.activity_days
        return cls(
            title=cfg.mlflow.experiment,
            as_of=manifest["as_of"],
            activity_days=activity,
            kpis=observed_periods(tables.periods, first_order, activity),
            cohorts=tables.cohorts,
            scored=scored,
            manifest=manifest,
            trailing_year=tables.trailing_year,
            currency=cfg.currency,
        )

    def add_readout(self, read: Callable[[], Any]) -> None:
        """The holdout readout from ``read()`` (a :class:`~churnkit.scoring.readout.
        Readout`) for a night that held customers out; when its horizon has not passed
        yet, the report says from when it can be read."""
        from churnkit.errors import ChurnkitError

        if not (self.manifest.get("holdout") or {}).get("held_out"):
            return
        try:
            self.readout = read().table
        except ChurnkitError as err:
            self.readout_note = f"No readout yet: {err}"

    def add_training_run(self, read: Callable[[], Any]) -> None:
        """The model section from ``read()`` (the training run's metrics, card and test
        predictions); when it cannot be read the report says why and shows the rest."""
        from churnkit.errors import ChurnkitError

        try:
            details = read()
        except ChurnkitError as err:
            self.notes.append(f"Model section unavailable: {err}")
            return
        self.metrics = details.metrics
        self.model_card = details.model_card
        self.test_predictions = details.test_predictions


def kpi_figures(kpis: pd.DataFrame, activity_days: int, currency: str = "") -> dict[str, Figure]:
    """CRR; churn and repeat rate; AOV and customer value, per month."""
    x = pd.to_datetime(kpis["period_start"])
    unit = f" ({currency})" if currency else ""
    crr = Figure(figsize=(9.0, 3.6), layout="constrained")
    ax = crr.add_subplot()
    # no yearly reference line here: a month's CRR is not comparable with a year's
    ax.plot(x, kpis["crr_pct"], marker="o", markersize=3, label="CRR per month")
    ax.set(
        ylabel="%",
        ylim=(0, 100),
        title=f"Customer retention rate per month (active = ordered in {activity_days} days)",
    )
    ax.legend(loc="lower right", fontsize="small")

    rates = Figure(figsize=(9.0, 3.2), layout="constrained")
    ax = rates.add_subplot()
    ax.plot(x, kpis["churn_pct"], marker="o", markersize=3, label="churn rate per month")
    ax.plot(
        x, kpis["repeat_customer_rate_pct"], marker="o", markersize=3, label="repeat customer rate"
    )
    ax.set(ylabel="%", title="Churn and repeat customer rate per month")
    ax.legend(fontsize="small")

    money = Figure(figsize=(9.0, 3.2), layout="constrained")
    ax = money.add_subplot()
    ax.plot(x, kpis["aov"], marker="o", markersize=3, label="average order value")
    ax.plot(x, kpis["customer_value"], marker="o", markersize=3, label="value per customer")
    ax.set(ylabel=f"revenue{unit}", title="Average order value and customer value per month")
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.legend(fontsize="small")
    return {"crr": crr, "rates": rates, "money": money}


def cohort_figure(cohorts: pd.DataFrame, last_cohorts: int = 18, periods: int = 13) -> Figure:
    """Heatmap of the share of each first-order cohort buying in each later month."""
    table = cohorts.iloc[-last_cohorts:, :periods]
    fig = Figure(figsize=(9.0, 0.32 * len(table) + 1.5), layout="constrained")
    ax = fig.add_subplot()
    values = table.to_numpy(dtype="float64")
    image = ax.imshow(np.ma.masked_invalid(values), cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for (i, j), value in np.ndenumerate(values):
        if not np.isnan(value):
            ax.text(
                j,
                i,
                f"{value:.0%}",
                ha="center",
                va="center",
                fontsize=6,
                color="white" if value > 0.6 else "black",
            )
    ax.set_xticks(range(table.shape[1]), [str(c) for c in table.columns])
    ax.set_yticks(range(len(table)), [str(i) for i in table.index])
    ax.set(
        xlabel="months since first order",
        ylabel="first-order month",
        title="Cohort retention (blank: not observed yet)",
    )
    fig.colorbar(image, ax=ax, fraction=0.03)
    return fig


def value_at_risk_figure(scored: pd.DataFrame, currency: str = "") -> Figure:
    """Expected value at risk per segment, split by risk tier."""
    table = scored.pivot_table(
        index="segment",
        columns="risk_tier",
        values="expected_value_at_risk",
        aggfunc="sum",
        fill_value=0.0,
        observed=True,
    ).reindex(columns=["high", "medium", "low"], fill_value=0.0)
    table = table.loc[table.sum(axis=1).sort_values().index]
    fig = Figure(figsize=(9.0, 0.35 * len(table) + 1.4), layout="constrained")
    ax = fig.add_subplot()
    left = np.zeros(len(table))
    colors = {"high": "tab:red", "medium": "tab:orange", "low": "tab:gray"}
    for tier in table.columns:
        ax.barh(table.index, table[tier], left=left, label=tier, color=colors[tier])
        left += table[tier].to_numpy()
    unit = f" ({currency})" if currency else ""
    ax.set(xlabel=f"expected value at risk{unit}", title="Value at risk by segment and risk tier")
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.legend(title="tier", fontsize="small")
    return fig


def _summary_by(scored: pd.DataFrame, column: str) -> list[dict[str, Any]]:
    grouped = scored.groupby(column, sort=False, observed=True).agg(
        customers=("customer_id", "size"),
        high=("risk_tier", lambda t: int((t == "high").sum())),
        churn=("churn_probability", "mean"),
        baseline=("baseline_churn_probability", "mean"),
        value_at_risk=("expected_value_at_risk", "sum"),
    )
    if column == "risk_tier":
        grouped = grouped.reindex([t for t in ("high", "medium", "low") if t in grouped.index])
    else:
        grouped = grouped.sort_values("value_at_risk", ascending=False)
    return [{column: str(k), **v} for k, v in grouped.to_dict("index").items()]


def _metric_rows(metrics: Mapping[str, Mapping[str, float]]) -> list[dict[str, Any]]:
    return [
        {"scorer": SCORER_LABELS.get(name, name), **values}
        for name, values in metrics.items()
        if name in SCORER_LABELS
    ]


def render_report(data: ReportData) -> str:
    """The report as one HTML document."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("churnkit.report", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    currency = data.currency
    env.filters["money"] = lambda value, decimals=2: money(value, currency, decimals)
    charts = {
        name: figure_svg(fig)
        for name, fig in kpi_figures(data.kpis, data.activity_days, currency).items()
    }
    charts["cohorts"] = figure_svg(cohort_figure(data.cohorts))
    charts["value_at_risk"] = figure_svg(value_at_risk_figure(data.scored, currency))
    if data.test_predictions is not None:
        charts["calibration"] = figure_svg(calibration_figure(data.test_predictions))
        charts["gains_lift"] = figure_svg(gains_lift_figure(data.test_predictions))
    scored = data.scored.sort_values("priority")
    to_contact = scored[~scored["holdout"]]  # the night's control group is not listed
    lapsed = scored[scored["status"] == "lapsed"]
    return env.get_template("report.html").render(
        data=data,
        charts=charts,
        year=None
        if data.trailing_year is None
        else {
            **data.trailing_year,
            "last_day": data.trailing_year["period_end"] - dt.timedelta(days=1),
        },
        reference_crr=REFERENCE_CRR_PCT,
        good_crr=GOOD_CRR_PCT,
        tiers=_summary_by(scored, "risk_tier"),
        segments=_summary_by(scored, "segment"),
        top=to_contact[to_contact["status"] != "lapsed"].head(_TOP_CUSTOMERS).to_dict("records"),
        holdout=data.manifest.get("holdout"),
        lapsed=lapsed[~lapsed["holdout"]]
        .sort_values("expected_value_at_risk", ascending=False, kind="stable")
        .head(_TOP_LAPSED)
        .to_dict("records"),
        totals={
            "customers": len(scored),
            "high": int((scored["risk_tier"] == "high").sum()),
            "high_saveable": int(
                ((scored["risk_tier"] == "high") & (scored["status"] != "lapsed")).sum()
            ),
            "value_at_risk": float(scored["expected_value_at_risk"].sum()),
            "lapsed": len(lapsed),
            "lapsed_value": float(lapsed["expected_value_at_risk"].sum()),
            "statuses": scored["status"].value_counts().to_dict(),
        },
        drift=data.manifest.get("drift") or {},
        horizon_days=data.manifest.get("horizon_days"),
        metric_rows=_metric_rows(data.metrics),
        model_card=_markdown(data.model_card) if data.model_card else None,
    )


def money(value: float, currency: str = "", decimals: int = 2) -> str:
    """``1,234.50 EUR``: thousands separated, the currency after the amount."""
    text = f"{value:,.{decimals}f}"
    return f"{text} {currency}" if currency else text


def _markdown(text: str) -> str:
    """The model card's Markdown as HTML; raw HTML in it is shown as text, not run."""
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
