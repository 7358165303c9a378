"""The ``churnkit`` command line: a thin layer over :mod:`churnkit.pipelines`.

The only place that reads the clock, sets up logging and maps errors to exit codes:

* 0  success
* 1  a bug (traceback printed)
* 2  a problem you can fix: bad config, bad or stale data, model/feature mismatch
     (one line, no traceback; ``--debug`` shows it)
* 3  quality gate: the model does not beat the CRR baseline (nothing promoted), or the
     scored population drifted from training (nothing written; ``--allow-drift``)
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from churnkit import __version__
from churnkit.errors import ChurnkitError, ConfigError, DriftError, QualityGateError

app = typer.Typer(
    name="churnkit",
    help=(
        "Predict which customers are about to stop buying, next to a deterministic "
        "retention-rate baseline.\n\nExit codes: 0 ok; 1 bug; 2 fixable problem (config, "
        "data, model mismatch); 3 quality gate (model does not beat the CRR baseline, or the "
        "scored population drifted)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True)

_state: dict[str, bool] = {"debug": False, "quiet": False, "json": False}
F = TypeVar("F", bound=Callable[..., Any])

ConfigArg = Annotated[Path, typer.Argument(help="YAML config file", show_default=False)]


def _handles_errors(command: F) -> F:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except ChurnkitError as error:
            if _state["debug"]:
                traceback.print_exc()
            err.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(error.exit_code) from None
        except QualityGateError as error:
            label = "drift" if isinstance(error, DriftError) else "quality gate"
            err.print(f"[bold yellow]{label}:[/] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(QualityGateError.exit_code) from None
        except Exception:  # noqa: BLE001 - anything else is a bug: show it, exit 1
            traceback.print_exc()
            err.print("[bold red]churnkit crashed (a bug); please report the traceback above[/]")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        out.print(f"churnkit {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks and debug logs")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress, only results")] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="print a machine-readable summary instead of tables")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")
    ] = False,
) -> None:
    _state.update(debug=debug, quiet=quiet or json_output, json=json_output)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("mlflow", "alembic", "urllib3", "git"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.ERROR)
    # MLflow resets its loggers when first imported, from this variable
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "DEBUG" if debug else "ERROR")
    if not debug:
        warnings.filterwarnings("ignore")


class _Progress:
    """A spinner on a terminal; nothing with --quiet, --json or when not a terminal."""

    def __init__(self) -> None:
        self._status = None

    def __enter__(self) -> Callable[[str], None]:
        if _state["quiet"] or not err.is_terminal:
            return lambda message: logging.getLogger("churnkit").info(message)
        self._status = err.status("starting")
        self._status.__enter__()
        return lambda message: self._status.update(f"{message} ...")

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.__exit__(*exc)


def _load(config: Path):
    from churnkit.config import load_config

    return load_config(config)


@app.command()
@_handles_errors
def generate(
    out_dir: Annotated[Path, typer.Option("--out", help="folder for the Parquet files")] = Path(
        "data"
    ),
    customers: Annotated[int, typer.Option(min=1, help="number of customers")] = 10_000,
    seed: Annotated[int, typer.Option(help="random seed; the same seed gives the same files")] = 0,
    scenario: Annotated[
        str,
        typer.Option(
            help="default (3 years, growing shop), cohort (one acquisition cohort, 18 months, "
            "high churn) or grocery (one-year household panel, low churn)"
        ),
    ] = "default",
    start: Annotated[
        str | None, typer.Option(help="first order day, YYYY-MM-DD; default: the scenario's")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="last order day, YYYY-MM-DD; default: the scenario's")
    ] = None,
    lines: Annotated[
        bool, typer.Option("--lines", help="write orders as order lines, as shops export them")
    ] = False,
) -> None:
    """Generate orders, events and customers (Parquet) that behave like real ones."""
    from churnkit.data.generator import SCENARIOS, generate_files, parquet_rows

    if scenario not in SCENARIOS:
        raise ConfigError(f"unknown --scenario {scenario!r}; choose one of {sorted(SCENARIOS)}")
    with _Progress() as step:
        step(f"generating {customers} customers ({scenario})")
        paths = generate_files(
            customers,
            out_dir,
            seed=seed,
            scenario=scenario,
            start=_date(start, "--start") if start else None,
            end=_date(end, "--end") if end else None,
            lines=lines,
        )
    if _state["json"]:
        out.print_json(json.dumps({k: str(v) for k, v in paths.items()}))
        return
    for name, path in paths.items():
        out.print(
            f"{name:<10} {parquet_rows(path):>12,} rows  {path}", soft_wrap=True, highlight=False
        )


@app.command()
@_handles_errors
def init(
    files: Annotated[list[Path], typer.Argument(help="the exports: orders, events, customers")],
    out_path: Annotated[Path, typer.Option("--out", help="the config to write")] = Path(
        "churnkit.yaml"
    ),
    force: Annotated[bool, typer.Option(help="replace an existing config")] = False,
) -> None:
    """Look at your exports and write a config that reads them, saying what it guessed."""
    from churnkit.engines.inspect import config_text, guess_tables
    from churnkit.scoring.output import write_file

    if out_path.exists() and not force:
        raise ConfigError(f"{out_path} exists; give another --out, or --force to replace it")
    with _Progress() as step:
        step(f"looking at {len(files)} file(s)")
        guesses = guess_tables(files)
        text = config_text(guesses, out_path, files)
    write_file(out_path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    if _state["json"]:
        out.print_json(json.dumps({"path": str(out_path), "tables": sorted(guesses)}))
        return
    for role, guess in guesses.items():
        mapped = ", ".join(f"{k} <- {v}" for k, v in guess.columns.items())
        out.print(f"{role}: {guess.path.name} ({mapped})", highlight=False, soft_wrap=True)
        for note in guess.notes:
            out.print(f"  guessed: {note}", highlight=False, soft_wrap=True)
    out.print(f"wrote {out_path}; check it, then `churnkit validate {out_path}`", highlight=False)


@app.command()
@_handles_errors
def validate(config: ConfigArg) -> None:
    """Check a config and the data it points to, without training."""
    from churnkit.pipelines import run_validation

    cfg = _load(config)
    with _Progress() as step:
        step("reading and validating data")
        summary = run_validation(cfg)
    if _state["json"]:
        out.print_json(json.dumps(summary, default=str))
        return
    orders = summary["orders"]
    out.print(f"[green]ok[/] {config}")
    out.print(
        f"orders: {orders['orders']:,} rows, {orders['customers']:,} customers, "
        f"{orders['first_order_at'][:10]} .. {orders['last_order_at'][:10]}"
    )
    for name in ("events", "customers"):
        if name in summary:
            out.print(f"{name}: {summary[name]['rows']:,} rows")
    missing = summary.get("customers", {}).get("buyers_not_in_table", 0)
    if missing:
        out.print(
            f"customers: {missing:,} customers with orders are not in the customers table; "
            "their attributes are unknown (counted here, never given as a churn reason)",
            highlight=False,
            soft_wrap=True,
        )
    for note in summary["notes"]:
        out.print(f"note: {note}", highlight=False, soft_wrap=True)
    snaps = summary["snapshots"]
    labelled = snaps["labelled"]
    out.print(
        f"labelled snapshots: {len(labelled)} ({labelled[0]} .. {labelled[-1]}), "
        f"walk-forward test dates {', '.join(snaps['walk_forward_test'])}"
    )


@app.command()
@_handles_errors
def train(
    config: ConfigArg,
    force_promote: Annotated[
        bool,
        typer.Option(
            "--force-promote",
            help="make this version champion even if it loses to the baseline or champion "
            "(recorded on the run)",
        ),
    ] = False,
) -> None:
    """Build features, train LightGBM, compare with the baselines, log and register."""
    from churnkit.pipelines import run_training

    cfg = _load(config)
    with _Progress() as step:
        outcome = run_training(
            cfg,
            config_text=config.read_text(encoding="utf-8"),
            force_promote=force_promote,
            on_step=step,
        )
    _report_training(outcome)
    if force_promote:
        err.print("[bold yellow]warning:[/] promoted with --force-promote", highlight=False)
    elif not outcome.result.beats_baseline:
        raise QualityGateError(
            f"model v{outcome.run.version} {outcome.promotion_reason}; kept as challenger"
        )


AsOfOption = Annotated[
    str | None,
    typer.Option("--as-of", help="score date YYYY-MM-DD; default: the day after the latest order"),
]


@app.command()
@_handles_errors
def score(
    config: ConfigArg,
    as_of: AsOfOption = None,
    top: Annotated[int | None, typer.Option(help="rows of the at-risk list to print")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="score and check drift, but write nothing")
    ] = False,
    allow_drift: Annotated[
        bool,
        typer.Option("--allow-drift", help="write the list even when the population drifted"),
    ] = False,
) -> None:
    """Score the active customers at AS_OF and write the ranked, explained at-risk list."""
    from churnkit.pipelines import run_scoring

    cfg = _load(config)
    requested = _date(as_of, "--as-of") if as_of else None
    with _Progress() as step:
        outcome = run_scoring(
            cfg, as_of=requested, dry_run=dry_run, allow_drift=allow_drift, on_step=step
        )
    if _state["json"]:
        summary = {"partition": str(outcome.partition), "written": outcome.written}
        out.print_json(json.dumps({**summary, **outcome.manifest}, default=str))
        return
    if requested is None:
        out.print(f"as_of {outcome.as_of} (the day after the latest order)")
    rows = outcome.manifest["rows"]
    shown = outcome.ranked.head(top or cfg.scoring.top)
    _print_at_risk(shown, len(shown), title=_top_title(len(shown), rows))
    _print_drift(outcome.manifest["drift"])
    scorer = outcome.manifest.get("scorer") or {}
    if scorer.get("fallback_reason"):
        err.print(
            "[bold yellow]warning:[/] this list comes from a deterministic baseline, "
            f"{scorer['label']}, not a model: {scorer['fallback_reason']} (see `churnkit "
            "train`); recorded in the manifest and the list's model_name column",
            highlight=False,
            soft_wrap=True,
        )
    if outcome.written:
        out.print(f"wrote {rows:,} scored customers to {outcome.partition}/")
    else:
        out.print(f"dry run: would write {rows:,} customers to {outcome.partition}/")


ListFormat = Annotated[str, typer.Option("--format", help="table, csv or json")]


@app.command("at-risk")
@_handles_errors
def at_risk(
    config: ConfigArg,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="partition date YYYY-MM-DD; default: the latest"),
    ] = None,
    top: Annotated[
        int | None,
        typer.Option(min=1, help="first N customers; default: scoring.top for a table, all else"),
    ] = None,
    segment: Annotated[
        str | None, typer.Option(help="only this segment (case-insensitive)")
    ] = None,
    tier: Annotated[
        str | None, typer.Option(help="only this risk tier: high, medium or low")
    ] = None,
    min_value: Annotated[
        float | None, typer.Option("--min-value", help="only customers with 365-day value >= V")
    ] = None,
    fmt: ListFormat = "table",
    out_path: Annotated[
        Path | None, typer.Option("--out", help="write csv or json to this file, not stdout")
    ] = None,
) -> None:
    """Pull the at-risk list of a scored night, filtered, as a table, CSV or JSON."""
    from churnkit.scoring.output import filter_at_risk, read_partition, table_text, write_file

    if _state["json"] and fmt == "table":  # --json asks for JSON on stdout, like elsewhere
        fmt = "json"
    if fmt not in ("table", "csv", "json"):
        raise ChurnkitError(f"--format {fmt!r} is not one of table, csv, json")
    if fmt == "table" and out_path is not None:
        raise ChurnkitError("--out needs --format csv or json")
    cfg = _load(config)
    scored, manifest = read_partition(
        cfg.scoring.output_dir, _date(as_of, "--as-of") if as_of else None
    )
    selected = filter_at_risk(scored, segment=segment, tier=tier, min_value=min_value)
    if top is None and fmt == "table":
        top = cfg.scoring.top
    if top is not None:
        selected = selected.head(top)
    selected = selected.assign(as_of=selected["as_of"].astype(str))  # dates, not epoch ms
    if fmt == "table":
        out.print(
            f"as_of {manifest['as_of']}, model {manifest['model_name']} "
            f"v{manifest['model_version']}: {len(scored):,} customers scored",
            highlight=False,
        )
        _print_at_risk(selected, len(selected), title=_customers(len(selected)))
        return
    text = table_text(selected, fmt)
    if out_path is None:
        sys.stdout.write(text)
        return
    write_file(out_path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    err.print(f"wrote {len(selected):,} customers to {out_path}", highlight=False)


@app.command()
@_handles_errors
def evaluate(
    config: ConfigArg,
    as_of: Annotated[str, typer.Option("--as-of", help="the scored night to backtest")],
) -> None:
    """Backtest a night's list once its horizon has passed; log it to MLflow."""
    from churnkit.pipelines import run_evaluation

    cfg = _load(config)
    with _Progress() as step:
        outcome = run_evaluation(cfg, as_of=_date(as_of, "--as-of"), on_step=step)
    if _state["json"]:
        payload = {
            "as_of": outcome.as_of.isoformat(),
            "rows": outcome.rows,
            "run_id": outcome.run_id,
            "metrics": outcome.metrics,
            "tiers": outcome.tiers.to_dict(orient="records"),
        }
        out.print_json(json.dumps(payload))
        return
    rows = {
        "the list's model": outcome.metrics["model"],
        "CRR baseline": outcome.metrics["crr_baseline"],
    }
    headers = ("roc_auc", "pr_auc", "lift_10", "precision_10", "ece")
    title = f"backtest of the list for {outcome.as_of} ({outcome.rows:,} customers)"
    out.print(_metrics_table(title, rows, headers))
    tiers = Table(title="risk tiers: predicted vs actual churn")
    for column in ("tier", "customers", "predicted", "churned"):
        tiers.add_column(column, justify="left" if column == "tier" else "right")
    for row in outcome.tiers.itertuples(index=False):
        tiers.add_row(
            row.risk_tier, f"{int(row.customers):,}", f"{row.predicted:.1%}", f"{row.churned:.1%}"
        )
    out.print(tiers)
    out.print(f"logged monitoring run {outcome.run_id}", highlight=False)


@app.command()
@_handles_errors
def features(
    config: ConfigArg,
    out_path: Annotated[Path, typer.Option("--out", help="output file: .parquet, .csv or .json")],
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", help="snapshot date YYYY-MM-DD; default: the day after the latest order"
        ),
    ] = None,
) -> None:
    """Write the feature table at AS_OF for the config's data, for analysts to explore."""
    from churnkit.pipelines import run_features

    cfg = _load(config)
    requested = _date(as_of, "--as-of") if as_of else None
    with _Progress() as step:
        step("building features")
        frame, path = run_features(cfg, as_of=requested, out=out_path)
    if _state["json"]:
        summary = {"path": str(path), "rows": len(frame), "columns": list(frame.columns)}
        out.print_json(json.dumps(summary))
        return
    out.print(
        f"wrote {len(frame):,} customers x {frame.shape[1]} columns at as_of "
        f"{frame['as_of'].iloc[0] if len(frame) else requested} to {path}",
        soft_wrap=True,
    )


@app.command()
@_handles_errors
def kpis(
    config: ConfigArg,
    period: Annotated[str, typer.Option(help="month, quarter or year")] = "month",
    out_path: Annotated[
        Path | None, typer.Option("--out", help="write the KPI table (.csv, .json, .parquet)")
    ] = None,
    cohorts_path: Annotated[
        Path | None,
        typer.Option("--cohorts", help="write the cohort table (.csv, .json, .parquet)"),
    ] = None,
) -> None:
    """Retention KPIs per period (CRR, churn, repeat rate, AOV, value, CLV) and cohorts."""
    from churnkit.kpis import PERIODS
    from churnkit.pipelines import run_kpis

    if period not in PERIODS:
        raise ChurnkitError(f"--period {period!r} is not one of {', '.join(PERIODS)}")
    cfg = _load(config)
    with _Progress() as step:
        step("computing retention KPIs")
        table, cohorts = run_kpis(cfg, period=period, out=out_path, cohorts_out=cohorts_path)
    activity = cfg.snapshots.activity_days
    if _state["json"]:
        out.print_json(table.to_json(orient="records", date_format="iso"))
        return
    shown = Table(title=f"retention KPIs per {period}")
    columns = {
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
    for label, _ in columns.values():
        shown.add_column(label, justify="right")
    for row in table.itertuples(index=False):
        shown.add_row(*(_cell(getattr(row, name), fmt) for name, (_, fmt) in columns.items()))
    out.print(shown)
    out.print(
        f"active customer = a qualifying order in the {activity} days before the date "
        f"(`snapshots.activity_days`); CRR = (E - N) / S * 100 with N = new + won back "
        "(neither was retained); CLV est. = value / churn rate",
        soft_wrap=True,
    )
    out.print("reference: e-commerce CRR averages about 38 %; 40-80 % is usually called good")
    for label, path in (("KPIs", out_path), ("cohorts", cohorts_path)):
        if path is not None:
            out.print(f"wrote {label} to {path}", soft_wrap=True)


@app.command()
@_handles_errors
def report(
    config: ConfigArg,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="scored night YYYY-MM-DD; default: the latest"),
    ] = None,
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="HTML file; default: <output_dir>/report-AS_OF.html"),
    ] = None,
) -> None:
    """Write one self-contained HTML report: KPIs, cohorts, the at-risk list, the model."""
    from churnkit.pipelines import run_report

    cfg = _load(config)
    with _Progress() as step:
        path = run_report(
            cfg, as_of=_date(as_of, "--as-of") if as_of else None, out=out_path, on_step=step
        )
    if _state["json"]:
        out.print_json(json.dumps({"report": str(path)}))
        return
    out.print(f"wrote {path} (open it in a browser; it needs no server or network)", soft_wrap=True)


@app.command()
@_handles_errors
def demo(
    directory: Annotated[
        Path, typer.Option("--dir", help="folder for data, MLflow and scores")
    ] = Path("demo"),
    customers: Annotated[int, typer.Option(min=500, help="customers to generate")] = 10_000,
    seed: Annotated[int, typer.Option(help="random seed")] = 7,
) -> None:
    """Generate data, train, score and show the at-risk list: churnkit in one command."""
    from churnkit.pipelines import run_demo

    with _Progress() as step:
        outcome = run_demo(directory, customers=customers, seed=seed, on_step=step)
    db = outcome.training.run.tracking_uri
    if _state["json"]:  # one document, as every other command prints
        payload = {
            "training": _training_summary(outcome.training),
            "scored": len(outcome.scoring.ranked),
            "data_dir": str(outcome.data_dir),
            "config": str(outcome.config_path),
            "scores": str(outcome.scoring.partition),
            "tracking_uri": db,
        }
        out.print_json(json.dumps(payload))
        return
    _report_training(outcome.training)
    _print_at_risk(outcome.scoring.ranked, 10)
    lines = [
        "",
        f"data      {outcome.data_dir}/",
        f"config    {outcome.config_path}",
        f"model     {outcome.training.export_dir}/",
        f"scores    {outcome.scoring.partition}/",
        f"MLflow UI mlflow ui --backend-store-uri {db}   (then open http://127.0.0.1:5000)",
        f"next      churnkit score {outcome.config_path}",
    ]
    for line in lines:
        out.print(line, soft_wrap=True, highlight=False)


def _training_summary(outcome: Any) -> dict[str, Any]:
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


def _report_training(outcome: Any) -> None:
    from churnkit.training import SCORER_LABELS, describe_comparison

    result = outcome.result
    if _state["json"]:
        out.print_json(json.dumps(_training_summary(outcome)))
        return
    for note in outcome.data_summary.get("notes", []):
        err.print(f"note: {note}", highlight=False, soft_wrap=True)
    by_rfm = result.model.baseline.segment_column == "rfm_segment"
    labels = {
        **SCORER_LABELS,
        "crr_baseline": f"CRR baseline (per {'RFM segment' if by_rfm else 'recency bucket'})",
    }
    rows = {label: result.metrics[s] for s, label in labels.items() if s in result.metrics}
    headers = ("roc_auc", "pr_auc", "lift_10", "capture_10", "brier", "ece")
    title = "walk-forward test " + ", ".join(result.model.metadata["test_as_of"])
    out.print(_metrics_table(title, rows, headers))
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


def _metrics_table(
    title: str, rows: dict[str, dict[str, float]], metrics: tuple[str, ...]
) -> Table:
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


def _print_at_risk(ranked: Any, top: int, title: str | None = None) -> None:
    if _state["json"]:
        return
    shown = ranked.head(top)
    table = Table(title=title or _top_title(len(shown), len(ranked)))
    cells = {
        "rank": ("right", lambda r: str(r.rank)),
        "customer": ("left", lambda r: r.customer_id),
        "churn p": ("right", lambda r: f"{r.churn_probability:.3f}"),
        "tier": ("left", lambda r: r.risk_tier),
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


def _print_drift(drift: dict[str, Any]) -> None:
    if not drift.get("checked"):
        out.print("drift: not checked (the model has no drift reference)")
        return
    over = drift["over_threshold"]
    score = "not compared" if drift["score_psi"] is None else f"{drift['score_psi']:.3f}"
    line = (
        f"drift (PSI vs the population at training): score {score}, largest "
        f"feature {drift['max_feature_psi']:.3f}; threshold {drift['threshold']}"
    )
    if drift.get("stops") and drift.get("allowed"):
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


def _customers(n: int) -> str:
    return f"{n:,} customer" + ("" if n == 1 else "s")


def _top_title(shown: int, of: int) -> str:
    return f"top {shown:,} at-risk {'customer' if shown == 1 else 'customers'} of {of:,}"


def _cell(value: Any, fmt: str) -> str:
    if isinstance(value, float) and value != value:  # NaN: undefined, e.g. no customers at start
        return "n/a"
    return fmt.format(value)


def _date(text: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ChurnkitError(f"{option} {text!r} is not a date; use YYYY-MM-DD") from None


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
