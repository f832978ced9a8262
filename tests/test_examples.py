"""Every example script runs (so the README and docs do not rot)."""

from __future__ import annotations

import os
import runpy
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def test_quickstart_runs(capsys):
    runpy.run_path(os.path.join(EXAMPLES, "quickstart.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "Rosenbrock n=10, L-BFGS-B" in out and "matrix factorization" in out
    assert out.count(" ok") >= 6


def test_observing_example_draws_its_pictures(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setattr(sys, "argv", ["observing.py", str(tmp_path)])
    module = runpy.run_path(os.path.join(EXAMPLES, "observing.py"))
    written = module["main"](str(tmp_path))
    assert sorted(os.path.basename(p) for p in written) == ["criterion.png", "params.png", "profile.png"]
    assert all(os.path.getsize(p) > 5000 for p in written)


def test_readme_quickstart_runs():
    pytest.importorskip("jax")
    import re

    readme = open(os.path.join(EXAMPLES, "..", "README.md")).read()
    block = re.search(r"## Quickstart\s+```python\n(.*?)```", readme, re.S).group(1)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    res = namespace["res"]
    assert res.success and res.backend == "jax"
    assert (res.x["U"] <= 0).all() and (res.x["V"] >= -1).all()
