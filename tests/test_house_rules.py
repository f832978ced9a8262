"""The package's size rules: functions of at most 60 lines, modules of at most 400.

A function's length is its body without the docstring (first to last line of its statements,
nested functions included); a module's, its number of lines. The exceptions that remain are
listed with their size at the time: a listed one may shrink, not grow, and a new one fails.
"""

from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "src" / "autominimize"
FUNCTION_LINES = 60
MODULE_LINES = 400

#: "module path::qualified name" -> body lines
LONG_FUNCTIONS: dict[str, int] = {}

#: module path -> lines
LONG_MODULES = {
    "testing/mgh.py": 538  # a data table: the Moré–Garbow–Hillstrom problems
}


def _body_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = function.body
    if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        body = body[1:]
    return body[-1].end_lineno - body[0].lineno + 1 if body else 0


def _functions(node: ast.AST, prefix: str = "") -> list[tuple[str, int]]:
    """(qualified name, body lines) of every function in ``node``, nested ones included."""
    found = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.append((prefix + child.name, _body_lines(child)))
            found += _functions(child, f"{prefix}{child.name}.")
        elif isinstance(child, ast.ClassDef):
            found += _functions(child, f"{prefix}{child.name}.")
        else:
            found += _functions(child, prefix)
    return found


def _modules() -> dict[str, str]:
    return {path.relative_to(PACKAGE).as_posix(): path.read_text(encoding="utf-8") for path in sorted(PACKAGE.rglob("*.py"))}


def _long_functions() -> dict[str, int]:
    return {
        f"{name}::{qualified}": lines
        for name, source in _modules().items()
        for qualified, lines in _functions(ast.parse(source))
        if lines > FUNCTION_LINES
    }


def _long_modules() -> dict[str, int]:
    return {name: len(source.splitlines()) for name, source in _modules().items() if len(source.splitlines()) > MODULE_LINES}


def _breaches(measured: dict[str, int], allowed: dict[str, int]) -> list[str]:
    return [f"{name}: {size} lines (allowed {allowed.get(name, 'none')})" for name, size in sorted(measured.items()) if size > allowed.get(name, 0)]


def test_the_measure_counts_the_body_without_its_docstring():
    source = 'def f(x):\n    """Doc\n    string."""\n    y = x\n\n    return (\n        y\n    )\n\n\nclass C:\n    def g(self):\n        def h():\n            pass\n\n        return h\n'
    assert _functions(ast.parse(source)) == [("f", 5), ("C.g", 4), ("C.g.h", 1)]


def test_no_function_grows_over_the_limit():
    assert _breaches(_long_functions(), LONG_FUNCTIONS) == []


def test_no_module_grows_over_the_limit():
    assert _breaches(_long_modules(), LONG_MODULES) == []


def test_the_allowed_exceptions_still_exist():
    """An exception brought within the limit leaves the list, so that it stays there."""
    assert sorted(set(LONG_FUNCTIONS) - set(_long_functions())) == []
    assert sorted(set(LONG_MODULES) - set(_long_modules())) == []


def test_the_version_is_one_and_the_changelog_leads_with_it():
    """pyproject.toml, ``am.__version__`` and the CHANGELOG's newest section name one version."""
    import re

    import autominimize as am

    root = PACKAGE.parents[1]
    declared = re.search(r'^version = "([^"]+)"', (root / "pyproject.toml").read_text(), re.MULTILINE).group(1)
    newest = re.search(r"^## (\S+) ", (root / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert am.__version__ == declared
    assert newest is not None and newest.group(1) == declared
    assert re.fullmatch(r"\d+\.\d+\.\d+", declared)
