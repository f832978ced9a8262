"""Smoke test of ``python -m benchmarks``: it runs, and its rows make sense.

The bench runs in a subprocess because it limits every thread pool of its process and
imports every framework; no timing is asserted.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROW_KEYS = {
    "cell",
    "method",
    "n",
    "repeats",
    "contenders",
    "seconds",
    "times",
    "warmup_seconds",
    "f",
    "f_ref",
    "atol",
    "ref_converged",
    "ok",
    "counts",
    "errors",
    "ratios",
    "vs_own_baseline",
    "counts_match",
    "counts_match_jax_hand",
    "counts_match_numpy",
}


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="the bench's JAX columns need jax")
def test_bench_quick_rosen2(tmp_path):
    out_json = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "rosen2", "--no-import-time", "--json", str(out_json)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],  # the benchmarks live beside the package
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rosen2 L-BFGS-B" in proc.stdout

    rows = json.loads(out_json.read_text())
    assert [row["cell"] for row in rows] == ["rosen2 L-BFGS-B"]
    row = rows[0]
    assert ROW_KEYS <= set(row)
    assert row["n"] == 2 and row["method"] == "L-BFGS-B" and row["repeats"] == 1

    # the reference and am-jax ran; every contender that ran took a positive time
    assert row["seconds"]["ref"] is not None and row["seconds"]["am-jax"] is not None, row["errors"]
    for key, seconds in row["seconds"].items():
        if seconds is not None:
            assert seconds > 0 and all(t > 0 for t in row["times"][key])
            assert row["ratios"][key] > 0
        else:
            assert key in row["errors"]  # a contender that did not run says why

    # am.minimize's counts are scipy's: same evaluations as the hand-written reference
    ref, am_jax = row["counts"]["ref"], row["counts"]["am-jax"]
    assert am_jax["nfev"] == ref["nfev"] > 0
    assert am_jax["njev"] == ref["njev"]
    assert row["counts_match"] is True

    # every contender that ran reached the reference's optimum
    assert row["ref_converged"] is True and abs(row["f_ref"]) < 1e-8
    for key, ok in row["ok"].items():
        assert ok is not False, (key, row["f"][key], row["f_ref"])

    # a contender that raises (a backend still being written) is skipped and shown as n/a
    from benchmarks import CELLS, Contender, format_table, run_cell
    from benchmarks.contenders import reference

    def broken(problem):
        raise RuntimeError("not implemented yet")

    pool = [Contender("ref", "reference", reference), Contender("am-torch", "broken", broken)]
    row = run_cell(CELLS[0], repeats=1, contenders=pool)
    assert row["seconds"]["am-torch"] is None and "not implemented yet" in row["errors"]["am-torch"]
    assert "n/a" in format_table([row])


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="the observing section runs on JAX")
def test_observing_section_measures_every_variant_on_the_same_path(tmp_path, monkeypatch):
    from benchmarks import observing
    from benchmarks.observing import format_observing, run_observing

    monkeypatch.setattr(observing, "MIN_ROUNDS", 2)
    rows = run_observing(repeats=1)
    assert {row["rounds"] for row in rows} == {2}
    assert all(q1 <= q3 for q1, q3 in (row["ratio_quartiles"] for row in rows))
    assert [(row["problem"], row["variant"]) for row in rows[:6]] == [
        ("rosen100", "plain (history=False)"),
        ("rosen100", "history=True (default)"),
        ("rosen100", "log=run.sqlite"),
        ("rosen100", "progress=True"),
        ("rosen100", "history + log"),
        ("rosen100", "history + log + progress"),
    ]
    for problem in {row["problem"] for row in rows}:
        same = [row for row in rows if row["problem"] == problem]
        assert len(same) == 6 and len({row["nfev"] for row in same}) == 1  # watching changes no step
        assert same[0]["ratio"] == 1.0 == same[1]["ratio_to_default"] and all(row["seconds"] > 0 for row in same)
    assert "mlp 2000x10-32-1" in format_observing(rows) and "medians over 2 rounds" in format_observing(rows)
