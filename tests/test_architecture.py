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


def test_the_core_does_not_import_the_data_readers():
    for package in CORE:
        for path in (PACKAGE / package).rglob("*.py"):
            assert "churnkit.data.readers" not in _imports(path), path


def test_only_tracking_imports_mlflow_and_only_cli_imports_typer():
    for path in PACKAGE.rglob("*.py"):
        imports = _imports(path)
        module = _module(path)
        if any(name.split(".")[0] == "mlflow" for name in imports):
            assert module == "churnkit.tracking", module
        if "typer" in imports:
            assert module == "churnkit.cli", module


def test_importing_the_core_loads_neither_mlflow_nor_typer():
    code = (
        "import sys, churnkit.features, churnkit.training, churnkit.scoring; "
        "print(sorted(m for m in ('mlflow', 'typer') if m in sys.modules))"
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
