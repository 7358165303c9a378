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
import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from churnkit import __version__
from churnkit.cli import render
from churnkit.cli.render import emit, err, out
from churnkit.errors import ChurnkitError, ConfigError, QualityGateError

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
_state = render.state

ConfigArg = Annotated[Path, typer.Argument(help="YAML config file", show_default=False)]


def _date(text: str) -> dt.date:
    """The one date parser of every date option: typer reports a bad one with exit 2."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date; use YYYY-MM-DD") from None


def _as_of(help_text: str) -> Any:
    return typer.Option("--as-of", parser=_date, metavar="YYYY-MM-DD", help=help_text)


LatestNight = Annotated[dt.date | None, _as_of("the scored night; default: the latest")]
DataEnd = Annotated[
    dt.date | None, _as_of("the snapshot date; default: the day after the latest order")
]


_handles_errors = render.handles_errors  # one message and an exit code per error


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
        dt.date | None,
        typer.Option(
            parser=_date, metavar="YYYY-MM-DD", help="first order day; default: the scenario's"
        ),
    ] = None,
    end: Annotated[
        dt.date | None,
        typer.Option(
            parser=_date, metavar="YYYY-MM-DD", help="last order day; default: the scenario's"
        ),
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
            start=start,
            end=end,
            lines=lines,
        )
    if emit({k: str(v) for k, v in paths.items()}):
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
    from churnkit.files import write_file

    if out_path.exists() and not force:
        raise ConfigError(f"{out_path} exists; give another --out, or --force to replace it")
    with _Progress() as step:
        step(f"looking at {len(files)} file(s)")
        guesses = guess_tables(files)
        text = config_text(guesses, out_path, files)
    write_file(out_path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    if emit({"path": str(out_path), "tables": sorted(guesses)}):
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
        outcome = run_validation(cfg)
    render.validation(config, outcome)


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
    render.training(outcome)
    if force_promote:
        err.print("[bold yellow]warning:[/] promoted with --force-promote", highlight=False)
    elif not outcome.result.beats_baseline:
        raise QualityGateError(
            f"model v{outcome.run.version} {outcome.promotion_reason}; kept as challenger"
        )


@app.command()
@_handles_errors
def score(
    config: ConfigArg,
    as_of: DataEnd = None,
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
    with _Progress() as step:
        outcome = run_scoring(
            cfg, as_of=as_of, dry_run=dry_run, allow_drift=allow_drift, on_step=step
        )
    render.scoring(outcome, defaulted=as_of is None, top=top or cfg.scoring.top)


ListFormat = Annotated[str, typer.Option("--format", help="table, csv or json")]


@app.command("at-risk")
@_handles_errors
def at_risk(
    config: ConfigArg,
    as_of: LatestNight = None,
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
    status: Annotated[
        str | None, typer.Option(help="only this status: active, at risk, lapsing or lapsed")
    ] = None,
    sort: Annotated[
        str,
        typer.Option(
            help="priority (saveable customers by value at risk, then the lapsed), risk (by "
            "churn probability), value (by value at risk, lapsed included) or saved (by "
            "uplift x value, with scoring.uplift_model)"
        ),
    ] = "priority",
    min_value: Annotated[
        float | None, typer.Option("--min-value", help="only customers with 365-day value >= V")
    ] = None,
    include_holdout: Annotated[
        bool, typer.Option("--include-holdout", help="keep the holdout group (not to contact)")
    ] = False,
    fmt: ListFormat = "table",
    out_path: Annotated[
        Path | None, typer.Option("--out", help="write csv or json to this file, not stdout")
    ] = None,
) -> None:
    """Pull the at-risk list of a scored night, filtered, as a table, CSV or JSON.

    The night's holdout group (`scoring.holdout`) is left out unless --include-holdout.
    """
    from churnkit.files import table_text, write_file
    from churnkit.scoring.output import filter_at_risk, read_partition, sort_list

    if _state["json"] and fmt == "table":  # --json asks for JSON on stdout, like elsewhere
        fmt = "json"
    if fmt not in ("table", "csv", "json"):
        raise ChurnkitError(f"--format {fmt!r} is not one of table, csv, json")
    if fmt == "table" and out_path is not None:
        raise ChurnkitError("--out needs --format csv or json")
    cfg = _load(config)
    scored, manifest = read_partition(cfg.scoring.output_dir, as_of)
    render.overrides(manifest)
    render.holdout(manifest, included=include_holdout)
    selected = filter_at_risk(
        sort_list(scored, sort),
        segment=segment,
        tier=tier,
        status=status,
        min_value=min_value,
        include_holdout=include_holdout,
    )
    if top is None and fmt == "table":
        top = cfg.scoring.top
    if top is not None:
        selected = selected.head(top)
    selected = selected.assign(as_of=selected["as_of"].astype(str))  # dates, not epoch ms
    if fmt == "table":
        render.at_risk_list(selected, manifest, len(scored))
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
    as_of: Annotated[dt.date, _as_of("the scored night to backtest")],
) -> None:
    """Backtest a night's list once its horizon has passed, read out its holdout group.

    Logged to MLflow as a monitoring run."""
    from churnkit.pipelines import run_evaluation

    cfg = _load(config)
    with _Progress() as step:
        outcome = run_evaluation(cfg, as_of=as_of, on_step=step)
    render.evaluation(outcome)


@app.command()
@_handles_errors
def uplift(config: ConfigArg) -> None:
    """Fit an uplift model on past nights with holdout groups and contacts.

    Tested on the last such night against the churn-risk order; set
    `scoring.uplift_model` to the folder it writes to use it."""
    from churnkit.pipelines import run_uplift

    cfg = _load(config)
    with _Progress() as step:
        fitted, folder = run_uplift(cfg, on_step=step)
    render.uplift(fitted, folder)


@app.command()
@_handles_errors
def features(
    config: ConfigArg,
    out_path: Annotated[Path, typer.Option("--out", help="output file: .parquet, .csv or .json")],
    as_of: DataEnd = None,
) -> None:
    """Write the feature table at AS_OF for the config's data, for analysts to explore."""
    from churnkit.pipelines import run_features

    cfg = _load(config)
    with _Progress() as step:
        step("building features")
        written = run_features(cfg, as_of=as_of, out=out_path)
    if emit({"path": str(written.path), "rows": written.rows, "columns": written.columns}):
        return
    out.print(
        f"wrote {written.rows:,} customers x {len(written.columns)} columns at as_of "
        f"{written.as_of} to {written.path}",
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
        tables = run_kpis(cfg, period=period, out=out_path, cohorts_out=cohorts_path)
    written = {"KPIs": out_path, "cohorts": cohorts_path}
    render.kpis(
        tables,
        period=period,
        activity_days=cfg.snapshots.activity_days,
        currency=cfg.currency,
        written=written,
    )


@app.command()
@_handles_errors
def report(
    config: ConfigArg,
    as_of: LatestNight = None,
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="HTML file; default: <output_dir>/report-AS_OF.html"),
    ] = None,
) -> None:
    """Write one self-contained HTML report: KPIs, cohorts, the at-risk list, the model."""
    from churnkit.pipelines import run_report

    cfg = _load(config)
    with _Progress() as step:
        path = run_report(cfg, as_of=as_of, out=out_path, on_step=step)
    if emit({"report": str(path)}):
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
    render.demo(outcome)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
