"""A log file is data: reading a crafted or damaged one runs nothing and raises am.LogError;
paths are paths; a log that cannot be written never costs a solve its result."""

from __future__ import annotations

import collections
import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import autominimize as am
from autominimize.recording.log_writer import LogWriteWarning

Point = collections.namedtuple("Point", "a b")


def _fun(x):
    return float(np.sum((x - 1.0) ** 2))


def _jac(x):
    return 2.0 * (x - 1.0)


def _solve(path, x0=None, **kwargs):
    x0 = np.zeros(3) if x0 is None else x0
    return am.minimize(_fun, x0, method="L-BFGS-B", backend="numpy", jac=_jac, log=path, **kwargs)


@pytest.fixture(scope="module")
def good_log(tmp_path_factory):
    """A log of two runs over a nested structure, with the iterates."""
    path = tmp_path_factory.mktemp("good") / "good.sqlite"
    log = am.SQLiteLog(path, iterates=True)
    x0 = {"w": np.zeros((2, 2)), "p": Point(np.zeros(2), 0.0), "none": None, "l": [np.zeros(1)]}

    def fun(w, p, none, l):
        return float(np.sum((w - 1) ** 2) + np.sum((p.a + 2) ** 2) + (p.b - 3) ** 2 + np.sum(l[0] ** 2))

    for _ in range(2):
        am.minimize(fun, x0, method="BFGS", backend="numpy", log=log)
    # a copy of the file with the rows of its write-ahead log in it, which no one writes
    copy = path.with_name("copy.sqlite")
    with sqlite3.connect(path) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    return copy


def test_a_structure_is_stored_as_data_and_rebuilt(good_log):
    logged = am.read_log(good_log)
    assert logged.note is None
    assert list(logged.x) == ["w", "p", "none", "l"] and logged.x["none"] is None  # x0's own order
    assert type(logged.x["p"]).__name__ == "Point" and logged.x["p"]._fields == ("a", "b")
    np.testing.assert_allclose(logged.x["w"], np.ones((2, 2)), atol=1e-4)
    np.testing.assert_allclose(logged.x["p"].a, [-2, -2], atol=1e-4)
    assert isinstance(logged.x["p"].b, float) and logged.x["p"].b == pytest.approx(3, abs=1e-4)
    assert [name for name, _, _ in logged.history.leaves] == ["x0['w']", "x0['p'].a", "x0['p'].b", "x0['l'][0]"]
    with sqlite3.connect(good_log) as connection:
        (structure,) = connection.execute("SELECT structure FROM runs WHERE run_id = 1").fetchone()
    assert isinstance(structure, str) and '"kind": "namedtuple"' in structure and '"array": "numpy"' in structure


def test_a_custom_pytree_node_is_stored_by_leaf_path_with_a_note(tmp_path):
    jax = pytest.importorskip("jax")

    @jax.tree_util.register_pytree_node_class
    class Pair:
        def __init__(self, a, b):
            self.a, self.b = a, b

        def tree_flatten(self):
            return (self.a, self.b), None

        @classmethod
        def tree_unflatten(cls, aux, children):
            return cls(*children)

    path = tmp_path / "custom.sqlite"
    am.minimize(lambda p: jax.numpy.sum((p.a - 1) ** 2) + jax.numpy.sum(p.b**2), Pair(np.zeros(2), np.ones(3)), method="BFGS", log=path)
    logged = am.read_log(path)
    assert "custom pytree node" in logged.note and "keyed by leaf path" in logged.note
    assert sorted(logged.x) == sorted(name for name, _, _ in logged.history.leaves) and len(logged.x) == 2
    np.testing.assert_allclose(np.concatenate([logged.x[k] for k, _, _ in logged.history.leaves]), [1, 1, 0, 0, 0], atol=1e-4)


# -- crafted files ---------------------------------------------------------------------------
class _Trap:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_payloads_in_every_column_are_never_run(good_log, tmp_path):
    marker = str(tmp_path / "owned")
    payload = pickle.dumps(_Trap(marker))
    crafted = tmp_path / "crafted.sqlite"
    shutil.copy(good_log, crafted)
    with sqlite3.connect(crafted) as connection:
        for table in ("runs", "evaluation_blocks", "iteration_blocks"):
            columns = [row[1] for row in connection.execute(f"PRAGMA table_info({table})") if row[2] in ("TEXT", "BLOB")]
            connection.execute(f"UPDATE {table} SET " + ", ".join(f"{c} = ?" for c in columns), [payload] * len(columns))
    old = tmp_path / "old_layout.sqlite"  # the previous layout, whose structure column was pickled
    shutil.copy(good_log, old)
    with sqlite3.connect(old) as connection:
        connection.execute("UPDATE runs SET structure = ?", (payload,))
        connection.execute("PRAGMA user_version = 2")
    for path, reason in ((crafted, "is damaged"), (old, "layout 2.*not read, since unpickling")):
        with pytest.raises(am.LogError, match=reason):
            am.read_log(path)
        with pytest.raises(am.LogError, match=reason):
            am.minimize(_fun, np.zeros(8), method="L-BFGS-B", backend="numpy", jac=_jac, resume=path)
        with pytest.raises(am.LogError, match=reason):
            am.plot.criterion(path)
    assert not os.path.exists(marker)


def _damaged_copies(good, tmp_path):
    """(name, path) of copies of a good log damaged in one way each."""

    def sql(name, *statements):
        path = tmp_path / f"{name}.sqlite"
        shutil.copy(good, path)
        with sqlite3.connect(path) as connection:
            for statement in statements:
                connection.execute(statement)
        return name, path

    size = os.path.getsize(good)
    copies = [
        sql("shortened f column", "UPDATE evaluation_blocks SET f = substr(f, 1, length(f) - 8)"),
        sql("count above the columns", "UPDATE iteration_blocks SET count = count + 1"),
        sql("missing block", "DELETE FROM evaluation_blocks WHERE block = 0 AND run_id = 2"),
        sql("text for a blob", "UPDATE iteration_blocks SET nit = 'abc'"),
        sql("bad kind code", "UPDATE evaluation_blocks SET kind = CAST(x'ff' || substr(kind, 2) AS BLOB)"),
        sql("huge n", "UPDATE runs SET n = 9223372036854775807"),
        sql("negative count", "UPDATE evaluation_blocks SET count = -1"),
        sql("structure not JSON", "UPDATE runs SET structure = '{\"tree\": '"),
        sql("deep structure", "UPDATE runs SET structure = '" + "[" * 100000 + "'"),
        sql("structure of another size", "UPDATE runs SET structure = replace(structure, '[2, 2]', '[2, 3]')"),
        sql("options not an object", "UPDATE runs SET options = '[1]'"),
        sql("best point too short", "UPDATE runs SET best_x = x'00'"),
        sql("invalid UTF-8", "UPDATE runs SET method = CAST(x'ff' AS TEXT)"),
        sql("extra view", "CREATE VIEW v AS SELECT 1"),
        sql(
            "recursive view as a table",
            "DROP TABLE runs",
            "CREATE VIEW runs AS WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c) SELECT i AS run_id FROM c",
        ),
        sql("another layout", "PRAGMA user_version = 7"),
    ]
    for cut in (size // 2, 100, 0):
        path = tmp_path / f"truncated{cut}.sqlite"
        path.write_bytes(good.read_bytes()[:cut])
        copies.append((f"truncated to {cut} bytes", path))
    text = tmp_path / "text.sqlite"
    text.write_text("these are not the logs you are looking for\n" * 100)
    copies.append(("text file", text))
    return copies


def test_damaged_and_crafted_files_raise_one_error_naming_the_file(good_log, tmp_path):
    copies = _damaged_copies(good_log, tmp_path)
    for name, path in copies:
        with pytest.raises(am.LogError) as caught:
            am.read_log(path, run=None if "another" in name or "truncated" in name else 2)
        assert str(path) in str(caught.value), name
    assert isinstance(caught.value, ValueError)
    # the error names what is wrong
    messages = {name: _error(path) for name, path in copies}
    assert "f" in messages["shortened f column"] and "bytes" in messages["shortened f column"]
    assert "its blocks hold 0 evaluations of run 2, which wrote" in messages["missing block"]
    assert "evaluation kind 255" in messages["bad kind code"]
    assert "holds no run" in messages["truncated to 0 bytes"]
    assert "its layout is 7" in messages["another layout"]


def _error(path, run=2):
    try:
        am.read_log(path, run=run)
    except am.LogError as exc:
        return str(exc)
    raise AssertionError(f"{path} was read")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=6000), offset=st.integers(0, 40000), header=st.booleans())
def test_fuzzed_bytes_raise_log_error(good_log, tmp_path, data, offset, header):
    """Random files, and good logs with random bytes written over part of them."""
    path = tmp_path / "fuzzed.sqlite"
    if header:
        raw = bytearray(good_log.read_bytes())
        raw[offset : offset + len(data)] = data
        path.write_bytes(bytes(raw))
    else:
        path.write_bytes(data)
    try:
        am.read_log(path)
    except am.LogError:
        pass  # a page the overwrite missed may still read back: that is fine too


# -- paths --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["run%41.sqlite", "a?b.sqlite", "a#b.sqlite", "with space.sqlite", "ünïcødé ☃.sqlite", "file:x.sqlite", "file:%2e?mode=rw"]
)
def test_every_name_opens_exactly_that_file(tmp_path, name, monkeypatch):
    monkeypatch.chdir(tmp_path)
    decoy = tmp_path / "runA.sqlite"
    _solve(decoy, options={"maxiter": 1})
    before = set(os.listdir(tmp_path))
    res = _solve(name)
    assert os.path.isfile(tmp_path / name) and res.log_error is None
    assert set(os.listdir(tmp_path)) - before <= {name, name + "-wal", name + "-shm"}
    logged = am.read_log(name)
    np.testing.assert_allclose(logged.best_x, res.x)
    assert am.read_log(decoy).history.iterations[-1].nit == 1 != res.nit


def test_reading_creates_no_file(tmp_path, good_log):
    missing = tmp_path / "missing?x.sqlite"
    with pytest.raises(FileNotFoundError, match="missing"):
        am.read_log(missing)
    copy = tmp_path / "copy.sqlite"
    shutil.copy(good_log, copy)
    am.read_log(copy)
    assert sorted(os.listdir(tmp_path)) == ["copy.sqlite"]


def test_a_log_that_cannot_be_created_is_refused_before_the_solve(tmp_path):
    calls = []

    def counted(x):
        calls.append(1)
        return _fun(x)

    missing_dir = tmp_path / "no" / "such" / "run.sqlite"
    with pytest.raises(am.LogError, match=r"log='.*no/such/run.sqlite': the directory .* does not exist"):
        am.minimize(counted, np.zeros(2), backend="numpy", log=missing_dir)
    with pytest.raises(am.LogError, match=r"log='.*' is a directory"):
        am.minimize(counted, np.zeros(2), backend="numpy", log=tmp_path)
    with pytest.raises(am.LogError, match=r"log='/proc/self/run.sqlite'"):
        am.minimize(counted, np.zeros(2), backend="numpy", log="/proc/self/run.sqlite")
    assert calls == [] and not missing_dir.parent.exists()


# -- resume= ---------------------------------------------------------------------------------
def test_resume_into_another_structure_of_the_same_size_names_the_leaves(tmp_path):
    path = tmp_path / "resume.sqlite"
    am.minimize(lambda a, b: float(np.sum((a - 1) ** 2) + np.sum(b**2)), {"a": np.zeros(2), "b": np.zeros(3)}, backend="numpy", log=path)
    with pytest.raises(
        am.LogError,
        match=r"resume=.*x0 is not structured as its last run was: x0\['a'\] has shape \(3,\) in x0 but \(2,\) in the log; x0\['b'\] has shape \(2,\)",
    ):
        am.minimize(lambda a, b: 0.0, {"a": np.zeros(3), "b": np.zeros(2)}, backend="numpy", resume=path)
    with pytest.raises(am.LogError, match=r"x0\['c'\] is in x0 but not in the log; x0\['b'\] is in the log but not in x0"):
        am.minimize(lambda a, c: 0.0, {"a": np.zeros(2), "c": np.zeros(3)}, backend="numpy", resume=path)
    with pytest.raises(am.LogError, match=r"x0 is in x0 but not in the log"):
        am.minimize(_fun, np.zeros(5), backend="numpy", resume=path)
    resumed = am.minimize(lambda a, b: float(np.sum((a - 1) ** 2) + np.sum(b**2)), {"a": np.zeros(2), "b": np.zeros(3)}, backend="numpy", resume=path)
    assert resumed.nit <= 1


# -- the solve keeps its result ---------------------------------------------------------------
_HOLD_LOCK = textwrap.dedent(
    """
    import sqlite3, sys, time
    connection = sqlite3.connect(sys.argv[1], isolation_level=None)
    connection.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    connection.execute("COMMIT")
    """
)


def test_a_lock_held_past_the_timeout_costs_the_solve_nothing(tmp_path):
    path = tmp_path / "locked.sqlite"
    log = am.SQLiteLog(path, timeout=0.2, commit_interval=0.1)
    _solve(log, options={"maxiter": 1})  # the file exists, in WAL mode
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(path), "2.5"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.warns(LogWriteWarning, match=r"locked.sqlite.*could not be written \(database is locked.*retried in the background"):
            res = _solve(log)
        assert res.success and np.allclose(res.x, 1.0, atol=1e-5)
        assert "database is locked" in res.log_error
    finally:
        holder.wait(timeout=30)
    # once the lock is let go, the writer thread's next attempt writes the run
    for _ in range(200):
        try:
            logged = am.read_log(path, run=2)
            if logged.finished is not None:
                break
        except am.LogError:
            pass
        time.sleep(0.05)
    assert logged.finished is not None and len(logged.history.iterations) == res.nit
    np.testing.assert_allclose(logged.best_x, res.x)


def test_a_lock_let_go_before_the_last_retry_loses_nothing(tmp_path):
    path = tmp_path / "briefly.sqlite"
    log = am.SQLiteLog(path, timeout=0.3)
    _solve(log, options={"maxiter": 1})
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(path), "0.4"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with warnings.catch_warnings():
        warnings.simplefilter("error", LogWriteWarning)
        res = _solve(log)
    holder.wait(timeout=30)
    assert res.log_error is None and am.read_log(path).history.column("f").size == res.nit


_DISK_FULL = textwrap.dedent(
    """
    import resource, signal, sys, warnings
    import numpy as np
    import autominimize as am

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
    path = sys.argv[1]
    log = am.SQLiteLog(path, iterates=True, commit_interval=0.05)
    am.minimize(lambda x: float(x @ x), np.ones(3), method="BFGS", backend="numpy", log=log)
    limit = 200_000
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    calls = [0]

    def fun(x):
        calls[0] += 1
        return float(np.sum((x - 1.0) ** 2))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = am.minimize(fun, np.zeros(4000), method="L-BFGS-B", backend="numpy", jac=lambda x: 2 * (x - 1.0), log=log,
                          options={"maxiter": 60, "ftol": 0, "gtol": 0})
    print("RESULT", res.success is not None, bool(np.allclose(res.x, 1.0)), repr(res.log_error))
    print("WARNINGS", [str(w.message) for w in caught])
    """
)


def test_a_full_disk_costs_the_solve_nothing(tmp_path):
    path = tmp_path / "full.sqlite"
    done = subprocess.run([sys.executable, "-c", _DISK_FULL, str(path)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result = next(line for line in done.stdout.splitlines() if line.startswith("RESULT"))
    assert result.startswith("RESULT True True") and "disk" in result and "full.sqlite" in result
    assert "could not be written" in next(line for line in done.stdout.splitlines() if line.startswith("WARNINGS"))
    am.read_log(path, run=1)  # the run written before the disk filled is intact


def test_a_log_file_removed_during_the_solve_is_reported(tmp_path):
    path = tmp_path / "removed.sqlite"

    def fun(x):
        if os.path.exists(path):
            os.remove(path)
        return _fun(x)

    with pytest.warns(LogWriteWarning, match=r"removed.sqlite.*removed or replaced"):
        res = am.minimize(fun, np.zeros(3), method="L-BFGS-B", backend="numpy", jac=_jac, log=path)
    assert np.allclose(res.x, 1.0, atol=1e-5) and "removed" in res.log_error
    again = _solve(path)  # a new file at the path
    assert again.log_error is None and am.read_log(path).run_id == 1


# -- atomic creation ----------------------------------------------------------------------------
_KILL_AT = textwrap.dedent(
    """
    import os, signal, sqlite3, sys
    import numpy as np
    import autominimize as am
    import autominimize.recording.log_writer

    fun = lambda x: float(np.sum((x - 1.0) ** 2))
    am.minimize(fun, np.zeros(2), method="BFGS", backend="numpy")  # imports done before the forks
    connect = sqlite3.connect
    for kill_at in range(1, 100):
        pid = os.fork()  # a process of its own per step, killed by a real SIGKILL
        if pid == 0:
            seen = [0]

            def statement(sql):
                seen[0] += 1
                if seen[0] == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)

            def traced(*args, **kwargs):
                connection = connect(*args, **kwargs)
                connection.set_trace_callback(statement)
                return connection

            sqlite3.connect = traced
            path = os.path.join(sys.argv[1], f"killed{kill_at}.sqlite")
            am.minimize(fun, np.zeros(2), method="BFGS", backend="numpy", log=path)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        print(kill_at, "killed" if killed else os.waitstatus_to_exitcode(status), flush=True)
        if not killed:
            break
    """
)


def test_a_kill_at_any_step_of_creation_leaves_an_empty_log_or_a_valid_one(tmp_path):
    done = subprocess.run([sys.executable, "-c", _KILL_AT, str(tmp_path)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    steps = [line.split() for line in done.stdout.splitlines()]
    assert steps[-1][1] == "0" and all(outcome == "killed" for _, outcome in steps[:-1]) and len(steps) > 5
    outcomes = {}
    for kill_at, _ in steps:
        path = tmp_path / f"killed{kill_at}.sqlite"
        if not path.exists():
            outcomes[kill_at] = "no file"
            continue
        try:
            logged = am.read_log(path)
            assert logged.run_id == 1
            outcomes[kill_at] = "a run"
        except am.LogError as exc:
            assert "holds no run" in str(exc), (kill_at, str(exc))
            outcomes[kill_at] = "empty"
        res = _solve(path)  # a solve goes on with the file, whatever state it was left in
        assert res.log_error is None and am.read_log(path).finished is not None
    assert {"empty", "a run"} <= set(outcomes.values()), outcomes


# -- bounded memory ----------------------------------------------------------------------------
def test_the_default_history_keeps_iterates_within_its_budget_spread_over_the_run(monkeypatch):
    import autominimize.recording.sinks

    n = 50
    monkeypatch.setattr(autominimize.recording.sinks, "POINT_BUDGET", 10 * 8 * n)  # ten iterates of n float64
    target = np.linspace(-1, 1, n)
    scale = np.logspace(0, 3, n)  # ill-conditioned: many iterations

    res = am.minimize(
        lambda x: float(np.sum(scale * (x - target) ** 2)),
        np.zeros(n),
        method="L-BFGS-B",
        backend="numpy",
        jac=lambda x: 2 * scale * (x - target),
        options={"maxiter": 300, "ftol": 0, "gtol": 1e-12},
    )
    iterations = res.history.iterations
    kept = [i for i, it in enumerate(iterations) if it.x is not None]
    assert len(iterations) == res.nit > 40 and 2 <= len(kept) <= 10 and kept[0] == 0
    stride = kept[1] - kept[0]
    assert stride > 1 and all(b - a == stride for a, b in zip(kept, kept[1:-1]))  # evenly spread (the last may be newer)
    for i in kept:
        assert res.history.column("f")[i] == pytest.approx(float(np.sum(scale * (iterations[i].x - target) ** 2)))
    assert len(am.plot.params(res).axes) == 1  # plots the iterates it kept


def test_a_small_problem_keeps_every_iterate_and_a_log_with_iterates_gets_them_all(tmp_path, monkeypatch):
    import autominimize.recording.sinks

    res = am.minimize(_fun, np.zeros(3), method="BFGS", backend="numpy")
    assert all(it.x is not None for it in res.history.iterations)
    monkeypatch.setattr(autominimize.recording.sinks, "POINT_BUDGET", 1)
    log = am.SQLiteLog(tmp_path / "all.sqlite", iterates=True)
    res = am.minimize(_fun, np.zeros(3), method="BFGS", backend="numpy", log=log)
    assert all(it.x is not None for it in res.history.iterations)
    assert all(it.x is not None for it in am.read_log(log.path).history.iterations)
    unlogged = am.minimize(_fun, np.zeros(3), method="BFGS", backend="numpy").history.iterations
    assert len(unlogged) >= 2 and sum(it.x is not None for it in unlogged) <= 1  # the latest, until the next record


def test_cached_torch_functions_let_go_of_their_last_graph_when_the_solve_returns():
    torch = pytest.importorskip("torch")
    import gc
    import weakref

    from autominimize.backends.base import _compiled

    graphs = []

    def fun(x):
        y = torch.tanh(x - 1) ** 2 + x**4
        graphs.append(weakref.ref(y))
        return y.sum()

    res = am.minimize(fun, torch.zeros(4, dtype=torch.float64), method="Newton-CG", options={"maxiter": 3})
    gc.collect()
    assert res.nhvp > 0 and graphs and all(ref() is None for ref in graphs)
    entries = [compiled for key, (f, compiled) in _compiled.items() if f is fun]
    assert entries and all(getattr(compiled, "_last", None) is None for compiled in entries)
