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


def _counted():
    calls = []

    def fun(x):
        calls.append(1)
        return _fun(x)

    return fun, calls


CRAFTED_FOR_WRITING = [
    (
        "a trigger on runs",
        ("CREATE TABLE pwned (x)", "CREATE TRIGGER t AFTER INSERT ON runs BEGIN INSERT INTO pwned VALUES (1); END"),
        r"it holds .*\('trigger', 't'\).*not exactly the tables",
    ),
    ("an index on an expression", ("CREATE INDEX e ON runs(abs(n))",), r"it holds \[\('index', 'e'\).*not exactly the tables"),
    ("a generated column", ("ALTER TABLE runs ADD COLUMN g INTEGER GENERATED ALWAYS AS (1 / 0) VIRTUAL",), r"its table runs has columns .*'g'"),
    ("a column dropped", ("ALTER TABLE runs DROP COLUMN message",), r"its table runs has columns .*, not \["),
    ("runs replaced by a view", ("ALTER TABLE runs RENAME TO old", "CREATE VIEW runs AS SELECT * FROM old"), r"it holds .*\('view', 'runs'\)"),
]


@pytest.mark.parametrize("statements, message", [case[1:] for case in CRAFTED_FOR_WRITING], ids=[case[0] for case in CRAFTED_FOR_WRITING])
def test_a_log_of_another_layout_is_refused_before_the_solve_and_runs_none_of_its_sql(tmp_path, statements, message):
    good, path = tmp_path / "good.sqlite", tmp_path / "crafted.sqlite"
    _solve(good)
    with sqlite3.connect(good) as source, sqlite3.connect(path) as target:
        source.backup(target)  # a file this process has not written, as one from elsewhere
    _sql(path, *statements)
    fun, calls = _counted()
    with pytest.raises(am.LogError, match=rf"log='.*crafted.sqlite' is not a log this version wrote: {message}.*give a new file name"):
        am.minimize(fun, np.zeros(3), method="BFGS", backend="numpy", log=path)
    assert calls == []
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT count(*) FROM sqlite_master WHERE name = 'pwned'").fetchone()[0] == 0 or (
            connection.execute("SELECT count(*) FROM pwned").fetchone()[0] == 0
        )
        assert connection.execute("SELECT count(*) FROM evaluation_blocks WHERE run_id = 2").fetchone()[0] == 0
