"""The HTML report: self-contained, complete, and loading in a real browser."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

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
