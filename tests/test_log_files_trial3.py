"""Crafted and damaged log files, third trial: each is refused with an am.LogError naming the
file and what is wrong, or written to without losing the new run; nothing in them is run."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

import autominimize as am


def _fun(x):
    return float(np.sum((x - 1.0) ** 2))


def _solve(path, **kwargs):
    return am.minimize(_fun, np.zeros(3), method="BFGS", backend="numpy", jac=lambda x: 2.0 * (x - 1.0), log=path, **kwargs)


def _sql(path, *statements):
    with sqlite3.connect(path) as connection:
        for statement in statements:
            connection.execute(statement)


@pytest.mark.parametrize(
    "damage",
    ["DELETE FROM runs", "DELETE FROM runs WHERE run_id = 2", "DELETE FROM runs WHERE run_id = 1"],
    ids=["runs emptied", "last run removed", "first run removed"],
)
def test_a_run_appended_to_a_log_whose_runs_rows_were_removed_is_kept(tmp_path, damage):
    path = tmp_path / "emptied.sqlite"
    _solve(path)
    _solve(path)
    _sql(path, damage)
    res = _solve(path, options={"maxiter": 1})
    assert res.log_error is None
    logged = am.read_log(path)
    assert logged.run_id == 3 and logged.finished is not None
    assert len(logged.history.iterations) == res.nit == 1
    np.testing.assert_allclose(logged.best_x, res.x)
