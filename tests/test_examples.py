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
