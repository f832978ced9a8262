"""The package is layered: imports go down the layers and no module imports itself back."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

grimp = pytest.importorskip("grimp")
importlinter_cli = pytest.importorskip("importlinter.cli")

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _cycles(graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles():
    graph = grimp.build_graph("autominimize", cache_dir=None, exclude_type_checking_imports=True)
    assert _cycles(graph) == []


def test_the_layer_contract_is_kept():
    # in a process of its own: import-linter's console output closes the streams pytest captures
    code = (
        "import sys; from importlinter.cli import lint_imports; "
        f"sys.exit(lint_imports(config_filename={str(ROOT / 'pyproject.toml')!r}, no_cache=True, no_logo=True))"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


def test_no_driver_imports_an_entry_point():
    graph = grimp.build_graph("autominimize", cache_dir=None, exclude_type_checking_imports=True)
    entry_points = {
        "autominimize._minimize",
        "autominimize._least_squares",
        "autominimize._curve_fit",
        "autominimize._check_grad",
        "autominimize._iterate",
    }
    drivers = {m for m in graph.modules if m.startswith("autominimize.drivers")}
    reached = {imported for driver in drivers for imported in graph.find_upstream_modules(driver)}
    assert sorted(reached & entry_points) == []


def test_the_facades_offer_the_names_they_list():
    pytest.importorskip("torch")
    import autominimize.torch as am_torch

    assert sorted(name for name in am_torch.__all__ if not hasattr(am_torch, name)) == []
    assert am_torch.ScipyOptimizer.__module__ == "autominimize.integrations.torch_scipy"
