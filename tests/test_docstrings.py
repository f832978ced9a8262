"""Every example in the package's docstrings runs and prints what it shows."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil

import pytest

import autominimize


def _has_examples(name: str) -> bool:
    with open(importlib.util.find_spec(name).origin, encoding="utf-8") as source:
        return any(">>>" in line and "+SKIP" not in line for line in source)


#: the modules whose docstrings hold examples that run (found without importing them); the
#: benchmarks' examples are marked +SKIP: they take minutes
MODULES = [
    name
    for name in ["autominimize"] + sorted(info.name for info in pkgutil.walk_packages(autominimize.__path__, prefix="autominimize."))
    if not name.endswith("__main__") and _has_examples(name)
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name):
        if test.examples:
            runner.run(test)
    failures, tried = runner.summarize(verbose=False)
    assert tried > 0
    assert failures == 0, f"{failures} of {tried} docstring examples in {name} failed (output above)"
