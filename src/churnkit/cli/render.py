"""How the command line shows results: rich tables and lines on a terminal, one JSON
document with ``--json``. The commands in :mod:`churnkit.cli` parse, run a pipeline
and hand its outcome to one function here."""

from __future__ import annotations

import datetime as dt
import functools
import json
import sys
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from churnkit.errors import ChurnkitError, DriftError, QualityGateError

if TYPE_CHECKING:
    from churnkit.training.drift import DriftReport

__all__ = ["err", "handles_errors", "out", "state"]

out = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True)
state: dict[str, bool] = {"debug": False, "quiet": False, "json": False}
F = TypeVar("F", bound=Callable[..., Any])


def handles_errors(command: F) -> F:
    """Run ``command``, turning churnkit's errors into one message and their exit code
    (2, or 3 for the quality gate and drift), an unwritable path into exit 2, and
    anything else into a traceback and exit 1 (a bug)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except ChurnkitError as error:
            if state["debug"]:
                traceback.print_exc()
            # escaped: an example such as [inf, nan] in a message reads as rich markup
            err.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
            raise typer.Exit(error.exit_code) from None
        except OSError as error:  # a path that cannot be written or read: fixable, exit 2
            where = f" {error.filename}" if error.filename else ""
            reason = error.strerror or str(error)
            err.print(
                f"[bold red]error:[/] {escape(reason)}:{escape(where)}; check the path, its "
                "folder and their permissions (and free space). Nothing was left half-written.",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(2) from None
        except QualityGateError as error:
            label = "drift" if isinstance(error, DriftError) else "quality gate"
            err.print(
                f"[bold yellow]{label}:[/] {escape(str(error))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(QualityGateError.exit_code) from None
        except Exception:  # noqa: BLE001 - anything else is a bug: show it, exit 1
            traceback.print_exc()
            err.print("[bold red]churnkit crashed (a bug); please report the traceback above[/]")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def emit(payload: Any) -> bool:
    """Print ``payload`` as JSON when ``--json`` asked for it; True if printed."""
    if state["json"]:
        out.print_json(json.dumps(payload, default=str))
    return state["json"]


def validation_summary(outcome: Any) -> dict[str, Any]:
    """What ``validate --json`` prints."""
    return {
        "orders": {k: v for k, v in outcome.orders.to_dict().items() if k != "notes"},
        **{name: count.to_dict() for name, count in outcome.tables.items()},
        "families": list(outcome.families),
        "notes": list(outcome.notes),
        "snapshots": {
            "labelled": [d.isoformat() for d in outcome.plan.labelled],
            "walk_forward_test": [d.isoformat() for d in outcome.plan.test],
        },
    }


def validation(config: Any, outcome: Any) -> None:
    if emit(validation_summary(outcome)):
        return
    orders = outcome.orders
    out.print(f"[green]ok[/] {config}")
    out.print(
        f"orders: {orders.orders:,} rows, {orders.customers:,} customers, "
        f"{orders.first_order_at.date()} .. {orders.last_order_at.date()}"
    )
    for name, count in outcome.tables.items():
        out.print(f"{name}: {count.rows:,} rows")
    missing = (
        outcome.tables["customers"].buyers_not_in_table if "customers" in outcome.tables else 0
    )
    if missing:
        out.print(
            f"customers: {missing:,} customers with orders are not in the customers table; "
            "their attributes are unknown (counted here, never given as a churn reason)",
            highlight=False,
            soft_wrap=True,
        )
    for note in outcome.notes:
        out.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)
    labelled = outcome.plan.labelled
    out.print(
        f"labelled snapshots: {len(labelled)} ({labelled[0]} .. {labelled[-1]}), "
        f"walk-forward test dates {', '.join(map(str, outcome.plan.test))}"
    )


def training_summary(outcome: Any) -> dict[str, Any]:
    """What ``--json`` prints of a training run."""
    return {
        "run_id": outcome.run.run_id,
        "model": outcome.run.model_name,
        "version": outcome.run.version,
        "promoted": outcome.promoted,
        "promotion": outcome.promotion_reason,
        "metrics": outcome.result.metrics,
        "best_baseline": outcome.result.best_baseline,
        "model_minus_baseline": outcome.result.comparisons,
        "export_dir": str(outcome.export_dir),
    }


def training(outcome: Any) -> None:
    from churnkit.training import SCORER_LABELS, describe_comparison

    result = outcome.result
    if emit(training_summary(outcome)):
        return
    for note in outcome.data_summary.notes:
        err.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)
    by_rfm = result.model.baseline.segment_column == "rfm_segment"
    labels = {
        **SCORER_LABELS,
        "crr_baseline": f"CRR baseline (per {'RFM segment' if by_rfm else 'recency bucket'})",
    }
    rows = {label: result.metrics[s] for s, label in labels.items() if s in result.metrics}
    headers = ("roc_auc", "pr_auc", "lift_10", "capture_10", "brier", "ece")
    title = "walk-forward test " + ", ".join(result.model.metadata["test_as_of"])
    out.print(metrics_table(title, rows, headers))
    for name in result.comparisons:
        out.print(f"model - {describe_comparison(result, name)}", highlight=False)
    pr = result.crr_difference
    meta = result.model.metadata
    out.print(
        f"{pr['confidence']:.0%} intervals from {int(pr['samples'])} customer-level bootstrap "
        f"resamples. Each test date was scored by a model fitted as production would on the "
        f"snapshots labelled by then; the registered model is refit on all "
        f"{len(meta['train_as_of'])} labelled snapshots ({meta['refit_rounds']} rounds).",
        highlight=False,
    )
    per_date = result.per_snapshot[result.per_snapshot["scorer"] == "model"]
    out.print(
        "model per test date (ROC-AUC / PR-AUC): "
        + ", ".join(f"{r.as_of} {r.roc_auc:.4f} / {r.pr_auc:.4f}" for r in per_date.itertuples()),
        highlight=False,
    )
    served = "model" if result.beats_baseline else result.best_baseline
    expected = result.tonight[served]
    out.print(
        f"tonight's list ({SCORER_LABELS[served]}) should reach "
        + ", ".join(
            f"{label} {expected[m]['estimate']:.4f} (95% prediction interval "
            f"{expected[m]['low']:.4f}-{expected[m]['high']:.4f})"
            for m, label in (("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"))
        )
        + "; `churnkit evaluate` measures it once the horizon has passed",
        highlight=False,
    )
    shift = meta.get("population_shift_psi")
    if shift is not None and shift > _MAJOR_SHIFT_PSI:
        err.print(
            "[yellow]warning:[/] the population at the data's end "
            f"({meta['drift_reference_as_of']}) differs from the walk-forward test dates' "
            f"(score PSI {shift:.2f}): expect "
            "tonight's list to do differently from the figures above",
            highlight=False,
            soft_wrap=True,
        )
    alias = "champion" if outcome.promoted else "challenger"
    out.print(
        f"registered {outcome.run.model_name} v{outcome.run.version} as [bold]{alias}[/]: "
        f"{outcome.promotion_reason}"
    )
    out.print(f"run {outcome.run.run_id} in {outcome.run.tracking_uri}", soft_wrap=True)


_MAJOR_SHIFT_PSI = 0.25  # the usual reading of PSI: above 0.25, a major shift

_METRIC_HEADERS = {
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC",
    "lift_10": "lift@10%",
    "capture_10": "capture@10%",
    "precision_10": "precision@10%",
    "brier": "Brier",
    "ece": "ECE",
}


def metrics_table(title: str, rows: dict[str, dict[str, float]], metrics: tuple[str, ...]) -> Table:
    """One row per scorer, one column per metric; lifts with 3 decimals, the rest 4."""
    table = Table(title=title)
    table.add_column("scorer")
    for metric in metrics:
        table.add_column(_METRIC_HEADERS[metric], justify="right")
    for label, values in rows.items():
        cells = (
            f"{values[m]:.3f}" if m.startswith("lift") else f"{values[m]:.4f}" for m in metrics
        )
        table.add_row(label, *cells)
    return table


def at_risk(ranked: Any, top: int, title: str | None = None) -> None:
    if state["json"]:
        return
    shown = ranked.head(top)
    table = Table(title=title or top_title(len(shown), len(ranked)))
    cells = {
        "#": ("right", lambda r: str(r.priority)),
        "customer": ("left", lambda r: r.customer_id),
        "churn p": ("right", lambda r: f"{r.churn_probability:.3f}"),
        "tier": ("left", lambda r: r.risk_tier),
        "status": ("left", lambda r: r.status),
        "CRR p": ("right", lambda r: f"{r.baseline_churn_probability:.3f}"),
        "segment": ("left", lambda r: r.segment),
        "at risk": ("right", lambda r: f"{r.expected_value_at_risk:,.2f}"),
        "top reason": ("left", lambda r: r.reason_1),
        "action": ("left", lambda r: r.recommended_action.split(":")[0]),
    }
    # on a narrow terminal the words matter more than the baseline and the segment:
    # without this the reason and action columns were squeezed to 3 characters at 80
    if out.width < 120:
        del cells["CRR p"], cells["segment"]
    if out.width < 100:
        del cells["tier"]
    for column, (justify, _) in cells.items():
        wraps = column in ("top reason", "action")
        table.add_column(
            column, justify=justify, no_wrap=not wraps, min_width=14 if wraps else None
        )
    for row in shown.itertuples(index=False):
        table.add_row(*(cell(row) for _, cell in cells.values()))
    out.print(table)


def drift(report: DriftReport) -> None:
    if not report.checked:
        out.print("drift: not checked (the model has no drift reference)")
        return
    over = report.over_threshold
    score = "not compared" if report.score_psi is None else f"{report.score_psi:.3f}"
    line = (
        f"drift (PSI vs the population at training): score {score}, largest "
        f"feature {report.max_feature_psi:.3f}; threshold {report.threshold}"
    )
    if report.calendar_shift_days:
        line += f"; tenure compared as at training ({report.calendar_shift_days:+,} days)"
    if report.excluded:
        line += f"; not compared: {', '.join(report.excluded)}"
    if report.stops and report.allowed:
        line += "; [bold yellow]score drift over the threshold, written with --allow-drift[/]"
    out.print(line, highlight=False, soft_wrap=True)
    features = [name for name in over if name != "churn_probability"]
    if features:
        err.print(
            f"[yellow]warning:[/] features drifted beyond the threshold (recorded in the "
            f"manifest; only score drift stops a night): {', '.join(features[:8])}"
            + (f" and {len(features) - 8} more" if len(features) > 8 else ""),
            highlight=False,
            soft_wrap=True,
        )


def customers(n: int) -> str:
    return f"{n:,} customer" + ("" if n == 1 else "s")


def top_title(shown: int, of: int) -> str:
    return (
        f"the first {customers(shown)} to contact, of {of:,} (#: priority, the saveable by "
        "value at risk, then the lapsed)"
    )


def cell(value: Any, fmt: str) -> str:
    if isinstance(value, float) and value != value:  # NaN: undefined, e.g. no customers at start
        return "n/a"
    return fmt.format(value)


def scoring(outcome: Any, *, defaulted: bool, top: int) -> None:
    from churnkit.training.drift import DriftReport

    if emit({"partition": str(outcome.partition), "written": outcome.written, **outcome.manifest}):
        return
    if defaulted:
        out.print(f"as_of {outcome.as_of} (the day after the latest order)")
    rows = outcome.manifest["rows"]
    listed = outcome.ranked[~outcome.ranked["holdout"]]  # the control group is not listed
    shown = listed.sort_values("priority").head(top)
    at_risk(shown, len(shown), title=top_title(len(shown), rows))
    drift(DriftReport.from_dict(outcome.manifest["drift"]))
    scorer = outcome.manifest.get("scorer") or {}
    if scorer.get("fallback_reason"):
        err.print(
            "[bold yellow]warning:[/] this list comes from a deterministic baseline, "
            f"{scorer['label']}, not a model: {scorer['fallback_reason']} (see `churnkit "
            "train`); recorded in the manifest and the list's model_name column",
            highlight=False,
            soft_wrap=True,
        )
    holdout(outcome.manifest, included=False)
    if outcome.written:
        out.print(f"wrote {rows:,} scored customers to {outcome.partition}/")
    else:
        out.print(f"dry run: would write {rows:,} customers to {outcome.partition}/")


def overrides(manifest: Any) -> None:
    """On stderr, whatever a night's list was written despite: a score drift let
    through with --allow-drift, or a baseline serving for want of a model."""
    from churnkit.training.drift import DriftReport

    drifted = DriftReport.from_dict(manifest["drift"]) if manifest.get("drift") else None
    if drifted is not None and drifted.stops and drifted.allowed:
        err.print(
            f"[bold yellow]warning:[/] the list of {manifest['as_of']} was written with "
            f"--allow-drift: its scores drifted from training (score PSI "
            f"{drifted.score_psi:.3f} > {drifted.threshold})",
            highlight=False,
            soft_wrap=True,
        )
    scorer = manifest.get("scorer") or {}
    if scorer.get("fallback_reason"):
        err.print(
            f"[bold yellow]warning:[/] the list of {manifest['as_of']} comes from a baseline, "
            f"{scorer['label']}: {scorer['fallback_reason']}",
            highlight=False,
            soft_wrap=True,
        )


def holdout(manifest: Any, *, included: bool) -> None:
    """On stderr: how many customers the night holds out, and whether they are listed."""
    design = manifest.get("holdout")
    if not design or not design["held_out"]:
        return
    what = (
        "included here (column holdout): do not contact them"
        if included
        else "left out of the list and at_risk.csv (`at-risk --include-holdout` shows them)"
    )
    err.print(
        f"holdout: {design['held_out']:,} customers ({design['share']:.0%} of each risk tier) "
        f"are the control group of {manifest['as_of']}, {what}",
        highlight=False,
        soft_wrap=True,
    )


def at_risk_list(selected: Any, manifest: Any, scored_rows: int) -> None:
    out.print(
        f"as_of {manifest['as_of']}, model {manifest['model_name']} "
        f"v{manifest['model_version']}: {scored_rows:,} customers scored",
        highlight=False,
    )
    at_risk(selected, len(selected), title=customers(len(selected)))


def evaluation(outcome: Any) -> None:
    backtest = outcome.backtest
    payload = {
        "as_of": outcome.as_of.isoformat(),
        "rows": backtest.rows,
        "run_id": outcome.run_id,
        "metrics": backtest.metrics,
        "tiers": backtest.tiers.to_dict(orient="records"),
        "readout": None
        if outcome.readout is None
        else outcome.readout.table.astype(object)
        .where(outcome.readout.table.notna(), None)
        .to_dict(orient="records"),
    }
    if emit(payload):
        return
    rows = {
        "the list's model": backtest.metrics["model"],
        "CRR baseline": backtest.metrics["crr_baseline"],
    }
    headers = ("roc_auc", "pr_auc", "lift_10", "precision_10", "ece")
    title = f"backtest of the list for {outcome.as_of} ({backtest.rows:,} customers)"
    out.print(metrics_table(title, rows, headers))
    tiers = Table(title="risk tiers: predicted vs actual churn")
    for column in ("tier", "customers", "predicted", "churned"):
        tiers.add_column(column, justify="left" if column == "tier" else "right")
    for row in backtest.tiers.itertuples(index=False):
        tiers.add_row(
            row.risk_tier, f"{int(row.customers):,}", f"{row.predicted:.1%}", f"{row.churned:.1%}"
        )
    out.print(tiers)
    if outcome.readout is not None:
        readout(outcome.readout)
    out.print(f"logged monitoring run {outcome.run_id}", highlight=False)


def readout(result: Any) -> None:
    """The holdout readout: retention and revenue of the compared groups and the held-out
    customers, the uplift with its interval, and customers to contact per one kept."""
    share = f"{result.confidence:.0%}"
    table = Table(
        title=f"did the plays work? listed or contacted vs held-out customers ({share} intervals)"
    )
    for column in (
        "group", "customers", "held out", "retention", "held-out retention",
        "uplift [interval]", "revenue / customer", "uplift [interval] ", "contact to save 1",
    ):  # fmt: skip
        table.add_column(
            column, justify="left" if column == "group" else "right", no_wrap=column == "group"
        )

    def points(low: Any, value: Any, high: Any) -> str:
        if value is None or pd.isna(value):
            return "n/a"
        return f"{value * 100:+.1f} pp [{low * 100:+.1f}, {high * 100:+.1f}]"

    def amount(low: Any, value: Any, high: Any) -> str:
        if value is None or pd.isna(value):
            return "n/a"
        return f"{value:+,.2f} [{low:+,.2f}, {high:+,.2f}]"

    for row in result.table.to_dict("records"):
        held = row["retention_held_out"]
        table.add_row(
            escape(str(row["group"])),
            f"{row['customers']:,}",
            f"{row['held_out']:,}",
            f"{row['retention']:.1%}",
            "n/a" if held is None or pd.isna(held) else f"{held:.1%}",
            points(*(row[f"retention_uplift{end}"] for end in ("_low", "", "_high"))),
            f"{row['revenue_per_customer']:,.2f}",
            amount(*(row[f"revenue_uplift{end}"] for end in ("_low", "", "_high"))),
            "-" if row["contact_to_save"] is None or pd.isna(row["contact_to_save"])
            else f"{row['contact_to_save']:.1f}",
        )  # fmt: skip
    out.print(table)


_KPI_COLUMNS = {
    "period_start": ("period", "{}"),
    "customers_start": ("S", "{:,}"),
    "new_customers": ("new", "{:,}"),
    "won_back": ("won back", "{:,}"),
    "customers_end": ("E", "{:,}"),
    "crr_pct": ("CRR %", "{:.1f}"),
    "churn_pct": ("churn %", "{:.1f}"),
    "repeat_customer_rate_pct": ("repeat %", "{:.1f}"),
    "purchase_frequency": ("orders/cust", "{:.2f}"),
    "aov": ("AOV", "{:,.2f}"),
    "customer_value": ("value/cust", "{:,.2f}"),
    "clv_estimate": ("CLV est.", "{:,.0f}"),
}


def kpis(
    tables: Any, *, period: str, activity_days: int, currency: str, written: dict[str, Any]
) -> None:
    table = tables.periods
    if state["json"]:
        out.print_json(table.to_json(orient="records", date_format="iso"))
        return
    unit = f" ({currency})" if currency else ""
    shown = Table(title=f"retention KPIs per {period}")
    for name, (label, _) in _KPI_COLUMNS.items():
        money = name in ("aov", "customer_value", "clv_estimate")
        shown.add_column(label + (unit if money else ""), justify="right")
    for row in table.itertuples(index=False):
        shown.add_row(*(cell(getattr(row, name), fmt) for name, (_, fmt) in _KPI_COLUMNS.items()))
    out.print(shown)
    out.print(
        f"active customer = a qualifying order in the {activity_days} days before the date "
        f"(`snapshots.activity_days`); CRR = (E - N) / S * 100 with N = new + won back "
        "(neither was retained); churn = active at the start, not at the end; CLV est. = "
        "revenue per active customer (mean of S and E) / churn rate, nearly the same for "
        "any --period",
        soft_wrap=True,
    )
    year = tables.trailing_year
    reference = (
        "e-commerce CRR averages about 38 % a year; 40-80 % is usually called good (yearly figures"
    )
    if year is not None:
        out.print(
            f"reference: {reference}; this shop's CRR over the year to "
            f"{year['period_end'] - dt.timedelta(days=1)}: {year['crr_pct']:.1f} %)",
            soft_wrap=True,
        )
    else:
        out.print(f"reference: {reference}: compare them with --period year)", soft_wrap=True)
    for label, path in written.items():
        if path is not None:
            out.print(f"wrote {label} to {path}", soft_wrap=True)


def demo(outcome: Any) -> None:
    db = outcome.training.run.tracking_uri
    payload = {
        "training": training_summary(outcome.training),
        "scored": len(outcome.scoring.ranked),
        "data_dir": str(outcome.data_dir),
        "config": str(outcome.config_path),
        "scores": str(outcome.scoring.partition),
        "tracking_uri": db,
    }
    if emit(payload):  # one document, as every other command prints
        return
    training(outcome.training)
    at_risk(outcome.scoring.ranked.sort_values("priority"), 10)
    # a second demo in the same folder registers v2 as challenger: the list comes from the
    # champion, so name the model that scored it
    served = outcome.scoring.manifest.get("model_version") or outcome.training.run.version
    model = outcome.training.export_dir.parent / f"v{served}"
    lines = [
        "",
        f"data      {outcome.data_dir}/",
        f"config    {outcome.config_path}",
        f"model     {model}/ (scored tonight's list)",
        f"scores    {outcome.scoring.partition}/",
        f"MLflow UI mlflow ui --backend-store-uri {db}   (then open http://127.0.0.1:5000)",
        f"next      churnkit score {outcome.config_path}",
    ]
    for line in lines:
        out.print(line, soft_wrap=True, highlight=False)


def uplift(fitted: Any, folder: Any) -> None:
    """The uplift model: the nights it learnt from, its out-of-time test, where it is."""
    metrics = fitted.metrics
    if emit({"nights": fitted.nights, "test_night": fitted.test_night, "metrics": metrics,
             "folder": str(folder)}):  # fmt: skip
        return
    out.print(f"uplift model fitted on {len(fitted.nights)} night(s): {', '.join(fitted.nights)}")
    if fitted.test_night is None:
        out.print("not tested: score and contact one more night to test it out of time")
    else:
        table = Table(title=f"out of time: the night {fitted.test_night}, by a fit on the earlier")
        for column in ("order", "Qini coefficient", "uplift@30%"):
            table.add_column(column, justify="left" if column == "order" else "right")
        for name, label in (("uplift", "uplift (T-learner)"), ("risk", "churn risk")):
            table.add_row(
                label,
                f"{metrics[f'{name}_qini']:.4f}",
                f"{metrics[f'{name}_uplift_at_30'] * 100:+.1f} pp",
            )
        out.print(table)
        out.print(
            "Qini, uplift minus risk: 95 % interval "
            f"[{metrics['qini_difference_low']:+.4f}, {metrics['qini_difference_high']:+.4f}]",
            highlight=False,
        )
    out.print(
        f"wrote {folder}: set `scoring.uplift_model` to it to add uplift and "
        "expected_saved_value to the list (`at-risk --sort saved`)",
        highlight=False,
    )
