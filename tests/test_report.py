"""The HTML report: self-contained, complete, and loading in a real browser."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from churnkit.cli import app
from churnkit.pipelines import run_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report(trained, tmp_path_factory) -> Path:
    cfg, _, _ = trained
    return run_report(cfg, out=tmp_path_factory.mktemp("report") / "report.html")


def test_the_report_has_every_section_and_the_reference_figures(report, trained):
    _, outcome, scoring = trained
    html = report.read_text(encoding="utf-8")
    headings = (
        "Retention KPIs",
        "Cohorts",
        "At-risk list",
        "Whom to contact first: the 25 saveable customers with the most value at risk",
        "Lapsed customers: win-back",
        "Model",
    )
    for heading in headings:
        assert f">{heading}</h2>" in html
    text = " ".join(html.split())
    # the yearly reference beside this shop's yearly CRR, never beside a monthly one
    assert "average e-commerce CRR is about 38 % a year" in text
    assert "40-80 % is usually called good" in text
    assert "over the 12 months from" in text
    assert "Two meanings of churn appear in this report" in text
    assert html.count("<svg") == 7  # 3 KPI charts, cohorts, value at risk, calibration, lift
    first = scoring.ranked.sort_values("priority").iloc[0]
    assert first["status"] != "lapsed"
    assert first["customer_id"] in html and first["reason_1"] in html
    assert first["recommended_action"] in html
    assert f"{outcome.result.metrics['model']['pr_auc']:.4f}" in html


def test_the_model_card_is_html_not_markdown(report):
    html = report.read_text(encoding="utf-8")
    assert "<h1>Model card: churn-test v1</h1>" in html
    assert "<h2>Intended use</h2>" in html and "<table>" in html
    for line in html.splitlines():  # no Markdown left raw
        assert not line.lstrip().startswith(("# ", "## ", "|---", "- **")), line


def test_the_report_is_self_contained(report):
    html = report.read_text(encoding="utf-8")
    assert "<script" not in html
    assert "<link" not in html
    assert re.findall(r'\bsrc="', html) == []
    # links only inside the page: anchors, SVG references, and images inlined as data
    hrefs = re.findall(r'\bhref="([^"]*)"', html)
    assert hrefs and all(h.startswith(("#", "data:image/")) for h in hrefs)
    assert all(u.startswith("#") for u in re.findall(r"url\(([^)]*)\)", html))
    assert "@import" not in html


def test_report_command_writes_beside_the_scores_by_default(trained):
    cfg, _, scoring = trained
    result = CliRunner().invoke(app, ["report", str(cfg.project_dir / "churnkit.yaml")])
    assert result.exit_code == 0, result.output
    expected = cfg.scoring.output_dir / f"report-{scoring.as_of}.html"
    assert expected.is_file()
    assert result.output.startswith("wrote ")


def _console_messages(page: Path) -> tuple[list[str], str]:
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return [line for line in done.stderr.splitlines() if ":CONSOLE" in line], done.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium browser (Debian package `chromium`)")
def test_the_report_loads_in_headless_chromium_without_console_errors(report, tmp_path):
    # the check can see console errors: a page that logs one is caught
    control = tmp_path / "control.html"
    control.write_text('<html><body><script>console.error("boom")</script></body></html>')
    messages, _ = _console_messages(control)
    assert any('"boom"' in m for m in messages)

    messages, dom = _console_messages(report)
    assert messages == []
    assert "who is about to stop buying" in dom
    assert dom.count("<svg") == 7


HOSTILE = {
    "customer_id": '=HYPERLINK("http://x","y")',
    "segment": "<script>alert(1)</script>",
    "reason_1": '<img src=x onerror="alert(2)">',
    "recommended_action": "@SUM(A1)",
}


def _hostile(scored):
    rows = scored.sort_values("priority").head(3).copy()
    for column, value in HOSTILE.items():
        rows[column] = [f"{value}{i}" for i in range(len(rows))]
    return rows


def test_the_report_escapes_every_user_string(trained, tmp_path):
    from churnkit.kpis import cohort_retention
    from churnkit.report.html import ReportData, render_report
    from churnkit.scoring.output import read_partition

    cfg, _, _ = trained
    scored, manifest = read_partition(cfg.scoring.output_dir)
    hostile = _hostile(scored)
    rest = scored[~scored["customer_id"].isin(hostile["customer_id"])]
    data = ReportData(
        title="<b>shop</b>",
        as_of=manifest["as_of"],
        activity_days=365,
        kpis=pd.DataFrame(),
        cohorts=cohort_retention(pd.read_parquet(cfg.data.orders.path)),
        scored=pd.concat([hostile, rest]),
        manifest=manifest,
        model_card="# Card\n\n<script>alert(3)</script>\n",
    )
    from churnkit.kpis import period_kpis

    orders = pd.read_parquet(cfg.data.orders.path)
    data.kpis = period_kpis(orders, period="month", activity_days=365).tail(6)
    html = render_report(data)
    assert "<script" not in html and "<img src=x" not in html and "<b>shop</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in html  # the model card's too
    assert "=HYPERLINK(&#34;http://x&#34;,&#34;y&#34;)0" in html


def test_the_at_risk_csv_neutralises_spreadsheet_formulas(trained, tmp_path):
    from churnkit.scoring.output import write_partition

    _, _, scoring = trained
    hostile = _hostile(scoring.ranked)
    partition = write_partition(hostile, tmp_path / "s", as_of=scoring.as_of, manifest={})
    text = (partition / "at_risk.csv").read_text(encoding="utf-8")
    assert '"\'=HYPERLINK(""http://x"",""y"")0"' in text
    assert '"\'@SUM(A1)0"' in text
    written = pd.read_parquet(partition / "scores.parquet")  # the data itself is unchanged
    assert written["customer_id"].iloc[0] == HOSTILE["customer_id"] + "0"
