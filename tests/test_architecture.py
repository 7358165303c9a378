"""Dependencies flow one way: the core never imports mlflow, typer or the IO edges."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import churnkit

PACKAGE = Path(churnkit.__file__).parent
EDGES = {"churnkit.tracking", "churnkit.pipelines", "churnkit.cli", "churnkit.__main__"}
CORE = ["features", "training", "scoring"]
FORBIDDEN_IN_CORE = ("mlflow", "typer", "churnkit.tracking", "churnkit.pipelines", "churnkit.cli")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@pytest.mark.parametrize("package", CORE)
def test_the_core_does_not_import_mlflow_typer_or_the_edges(package):
    offenders = {
        _module(path): sorted(name for name in _imports(path) if name.startswith(FORBIDDEN_IN_CORE))
        for path in (PACKAGE / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def _runtime_imports(path: Path) -> set[str]:
    """Imports outside ``if TYPE_CHECKING:`` blocks (those are for annotations only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        for field in ("body", "orelse"):
            block = getattr(node, field, None)
            if isinstance(block, list):
                kept = [
                    child
                    for child in block
                    if not (
                        isinstance(child, ast.If)
                        and isinstance(child.test, ast.Name)
                        and child.test.id == "TYPE_CHECKING"
                    )
                ]
                setattr(node, field, kept)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", ["data", *CORE])
def test_data_and_the_core_never_import_an_engine(package):
    """Engines sit beside data: they read and run; the contract, the summaries and the
    feature definitions are written once above them and take an engine as an argument."""
    offenders = {
        _module(path): sorted(n for n in _runtime_imports(path) if n.startswith("churnkit.engines"))
        for path in (PACKAGE / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_contract_is_written_once_on_ibis():
    """No engine library in the contract: the same rules run on DuckDB and Spark."""
    imports = _runtime_imports(PACKAGE / "data" / "contract.py")
    assert not {name.split(".")[0] for name in imports} & {"duckdb", "pyspark", "pandera"}


def test_only_tracking_imports_mlflow_and_only_cli_imports_typer():
    for path in PACKAGE.rglob("*.py"):
        imports = _imports(path)
        module = _module(path)
        if any(name.split(".")[0] == "mlflow" for name in imports):
            assert module == "churnkit.tracking", module
        if "typer" in imports:  # the CLI package: its commands and how they print and fail
            assert module == "churnkit.cli" or module.startswith("churnkit.cli."), module


def test_importing_the_core_loads_neither_mlflow_nor_typer():
    code = (
        "import sys, churnkit.features, churnkit.training, churnkit.scoring; "
        "print(sorted(m for m in ('mlflow', 'typer') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_data_commands_load_no_model_code():
    """`churnkit features` and `kpis` start without MLflow, LightGBM,
    scikit-learn or matplotlib: about 1.3 s of CPU per run on this machine."""
    heavy = ("mlflow", "lightgbm", "sklearn", "matplotlib")
    code = (
        "import sys, churnkit.cli, churnkit.pipelines, churnkit.engines.duckdb, churnkit.files; "
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_public_api_is_pinned():
    assert churnkit.__all__ == [
        "ChurnkitError",
        "ConfigError",
        "DataError",
        "QualityGateError",
        "__version__",
    ]


def test_features_are_definitions_that_run_no_query():
    """Execution lives in the engines: the feature modules import no engine library."""
    offenders = {
        _module(path): sorted(
            n for n in _runtime_imports(path) if n.split(".")[0] in {"duckdb", "pyspark"}
        )
        for path in (PACKAGE / "features").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_tracking_is_given_the_mlflow_settings_not_the_whole_config():
    names = set()
    for node in ast.walk(ast.parse((PACKAGE / "tracking.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "churnkit.config":
            names |= {alias.name for alias in node.names}
    assert names == {"MlflowConfig"}


def test_pipelines_decide_nothing():
    """Every branch in pipelines.py is on IO or the engine; decisions on metrics, drift
    or promotion live in training/ and scoring/."""
    tree = ast.parse((PACKAGE / "pipelines.py").read_text(encoding="utf-8"))
    tests = {ast.unparse(node.test) for node in ast.walk(tree) if isinstance(node, ast.If)}
    tests |= {
        ast.unparse(cond)
        for node in ast.walk(tree)
        if isinstance(node, ast.comprehension)
        for cond in node.ifs
    }
    allowed = {
        "TYPE_CHECKING",
        "out is not None",
        "cohorts_out is not None",
        "not dry_run",
        "data.engine.name == 'spark'",
        "k != 'notes'",
    }
    assert tests <= allowed, tests - allowed


def test_pipelines_and_the_commands_stay_wiring_sized():
    """Issue 16's bounds: pipelines.py under 350 lines, the commands under 500 (what they
    print lives in cli/render.py)."""
    lines = {
        name: len((PACKAGE / name).read_text(encoding="utf-8").splitlines())
        for name in ("pipelines.py", "cli/__init__.py")
    }
    assert lines["pipelines.py"] < 350 and lines["cli/__init__.py"] < 500, lines
