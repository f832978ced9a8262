"""History, callbacks, the SQLite log, Ctrl-C, the progress bar and plots."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import autominimize as am
from conftest import rosen_der, rosen_for

ROSEN = rosen_for("numpy")


def _solve(**kwargs):
    return am.minimize(ROSEN, np.zeros(4), method="L-BFGS-B", backend="numpy", jac=rosen_der, **kwargs)


def test_history_records_every_evaluation_and_iteration():
    res = _solve()
    kinds = [e.kind for e in res.history.evaluations]
    # a user jac is a separate call: each point is one value and one gradient evaluation
    assert kinds == ["value", "gradient"] * res.nfev and res.njev == res.nfev
    assert len(res.history.iterations) == res.nit
    assert [it.nit for it in res.history.iterations] == list(range(1, res.nit + 1))
    f = res.history.column("f")
    assert f[-1] == pytest.approx(res.fun) and f[0] > f[-1]
    assert np.all(np.diff(res.history.column("time")) >= 0)
    np.testing.assert_allclose(res.history.iterations[-1].x, res.x)


def test_finite_difference_evaluations_are_recorded_as_such():
    res = am.minimize(ROSEN, np.zeros(3), method="L-BFGS-B", backend="numpy")
    kinds = [e.kind for e in res.history.evaluations]
    assert kinds.count("finite-difference") == res.nfev - kinds.count("value") - kinds.count("value_and_gradient")
    assert kinds.count("finite-difference") >= 3 * res.njev


def test_history_false_records_nothing():
    res = _solve(history=False)
    assert "history" not in res


def test_callbacks_new_old_tf1_styles_and_early_stop():
    seen = {"new": [], "old": [], "step": [], "loss": []}

    def new_style(intermediate_result):
        seen["new"].append(intermediate_result.x["w"].shape)

    res = am.minimize(
        lambda p: ROSEN(p["w"]),
        {"w": np.zeros(4)},
        method="BFGS",
        backend="numpy",
        jac=lambda p: {"w": rosen_der(p["w"])},
        callback=new_style,
        step_callback=lambda x: seen["step"].append(x["w"].copy()),
        loss_callback=lambda f: seen["loss"].append(f),
    )
    assert seen["new"] == [(4,)] * res.nit
    assert len(seen["step"]) == res.nit and len(seen["loss"]) == res.nfev
    stopped = _solve(callback=lambda x: len(seen["old"].append(x) or seen["old"]) >= 3)
    assert stopped.nit == 3 and not stopped.success and "callback" in stopped.message


def test_tnc_callback_can_stop_too():
    res = am.minimize(ROSEN, np.zeros(4), method="TNC", backend="numpy", jac=rosen_der, callback=lambda x: True)
    assert not res.success and res.nit == 1
    assert np.isfinite(res.fun) and res.x.shape == (4,)


def test_log_keeps_several_runs_and_reads_back(tmp_path):
    path = tmp_path / "runs.sqlite"
    first = _solve(log=path, options={"maxiter": 5})
    second = am.minimize(ROSEN, np.zeros(4), method="BFGS", backend="numpy", jac=rosen_der, log=path)
    run1, run2 = am.read_log(path, run=1), am.read_log(path)
    assert (run1.run_id, run2.run_id) == (1, 2)
    assert run1.method == "l-bfgs-b" and run2.method == "bfgs" and run2.backend == "numpy"
    assert run1.options["options"] == {"maxiter": 5}
    assert len(run1.history.iterations) == first.nit == 5
    assert len(run2.history.evaluations) == second.nfev + second.njev
    np.testing.assert_allclose(run2.best_x, second.x)
    assert run2.best_f == pytest.approx(second.fun) and run2.finished is not None and run2.success
    with pytest.raises(ValueError, match=r"run=7 is not in .* its runs are \[1, 2\]"):
        am.read_log(path, run=7)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_log_records_equal_the_history_and_keep_only_best_points_by_default(tmp_path, backend):
    if backend != "numpy":
        pytest.importorskip(backend)
    path = tmp_path / "records.sqlite"
    fun = rosen_for(backend)
    # Newton-CG on JAX: values, gradients and HVPs; L-BFGS-B on NumPy: finite-difference gradients
    method, extra = ("Newton-CG", {}) if backend == "jax" else ("L-BFGS-B", {"options": {"maxiter": 20}})
    res = am.minimize(fun, np.zeros(5), method=method, backend=backend, log=path, **extra)
    logged = am.read_log(path)
    kinds = {e.kind for e in logged.history.evaluations}
    assert kinds >= ({"hvp", "value_and_gradient"} if backend == "jax" else {"finite-difference", "value_and_gradient"})
    # the log writes the history's own rows
    recorded = res.history
    assert len(logged.history.evaluations) == len(recorded.evaluations)
    for field in ("time", "f", "grad_norm"):
        np.testing.assert_array_equal(logged.history.column(field, of="evaluations"), recorded.column(field, of="evaluations"))
    assert [e.kind for e in logged.history.evaluations] == [e.kind for e in recorded.evaluations]
    for field in ("nit", "time", "f", "grad_norm", "nfev"):
        np.testing.assert_array_equal(logged.history.column(field), recorded.column(field))
    assert np.all(np.diff(logged.history.column("time", of="evaluations")) >= 0)
    assert all(it.x is None for it in logged.history.iterations)  # iterates not kept by default
    assert logged.best_f == np.nanmin(recorded.column("f", of="evaluations")) == pytest.approx(res.fun)
    np.testing.assert_allclose(logged.best_x, res.x, atol=1e-6)
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT count(*) FROM iteration_blocks WHERE x IS NOT NULL").fetchone()[0] == 0
    with pytest.raises(ValueError, match=r"iterates=True"):
        am.plot.params(logged)


def test_a_log_object_keeps_the_iterates_and_serves_several_solves(tmp_path):
    log = am.SQLiteLog(tmp_path / "iterates.sqlite", iterates=True)
    first, second = _solve(log=log), _solve(log=log, options={"maxiter": 3})
    runs = [am.read_log(log.path, run=k) for k in (1, 2)]  # each solve wrote its own run
    for res, logged in zip((first, second), runs):
        assert len(logged.history.iterations) == res.nit
        np.testing.assert_array_equal(np.stack([it.x for it in logged.history.iterations]), np.stack([it.x for it in res.history.iterations]))
    with pytest.raises(TypeError, match=r"log must be a file path or an am.SQLiteLog; got int"):
        _solve(log=3)


def test_a_file_of_another_layout_is_refused_with_its_name(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE evaluations (run_id INTEGER, seq INTEGER)")
    with pytest.raises(ValueError, match=r"old.sqlite.* is not an autominimize log of this version \(its layout is 0"):
        _solve(log=path)
    with pytest.raises(ValueError, match=r"is not an autominimize log of this version"):
        am.read_log(path)


def test_log_rows_are_committed_on_return_by_one_writer_thread_per_file(tmp_path):
    import threading

    def writers():
        return [t for t in threading.enumerate() if t.name == "autominimize-log-writer"]

    before = len(writers())
    paths = [tmp_path / "a.sqlite", tmp_path / "b.sqlite"]
    for path in paths * 3:
        res = _solve(log=path)
        # a plain sqlite3 reader sees every row as soon as minimize returns
        with sqlite3.connect(path) as connection:
            run_id, finished = connection.execute("SELECT max(run_id), max(finished) FROM runs").fetchone()
            n_eval, seqs = connection.execute(
                "SELECT sum(count), max(first_seq + count - 1) FROM evaluation_blocks WHERE run_id = ?", (run_id,)
            ).fetchone()
            blocks = connection.execute("SELECT nit FROM iteration_blocks WHERE run_id = ? ORDER BY block", (run_id,)).fetchall()
        assert finished is not None
        assert n_eval == seqs == res.nfev + res.njev
        nits = np.concatenate([np.frombuffer(nit, dtype="<i8") for (nit,) in blocks])
        assert nits.tolist() == list(range(1, res.nit + 1))
    assert len(writers()) == before + 2  # six solves, two files: two writer threads in all
    assert [am.read_log(paths[0], run=k).run_id for k in (1, 2, 3)] == [1, 2, 3]


def test_rows_before_a_slow_evaluation_are_committed_while_it_runs(tmp_path):
    path = tmp_path / "slow.sqlite"
    committed_during_the_fourth = []
    calls = [0]

    def fun(x):
        calls[0] += 1
        if calls[0] == 4:  # poll the file from inside the evaluation: the solve cannot commit now
            deadline = time.time() + 20
            while time.time() < deadline and not committed_during_the_fourth:
                with sqlite3.connect(path) as connection:
                    count = connection.execute("SELECT coalesce(sum(count), 0) FROM evaluation_blocks").fetchone()[0]
                if count:
                    committed_during_the_fourth.append(count)
                time.sleep(0.05)
        return float(np.sum((x - 1.0) ** 2))

    am.minimize(fun, np.zeros(2), method="Nelder-Mead", backend="numpy", log=path, options={"maxiter": 3})
    assert committed_during_the_fourth == [3]


def test_history_rows_read_mid_run_are_one_list_extended_in_place():
    import pickle

    from autominimize.recording.history import Evaluation, History

    history = History()
    x = np.array([3.0, 4.0])
    history.add_evaluation("value_and_gradient", x, 5.0, 2.0)
    first = history.evaluations
    assert first == [Evaluation("value_and_gradient", first[0].time, 5.0, 2.0)]
    history.add_evaluation("finite-difference", x, np.nan, np.nan, count=2)
    history.add_iteration(1, x, 5.0, 2.0, nfev=3, njev=1)
    assert history.evaluations is first and [e.kind for e in first] == ["value_and_gradient"] + ["finite-difference"] * 2
    assert np.isnan(first[2].grad_norm) and first[1].time == first[2].time
    (iteration,) = history.iterations
    assert (iteration.nit, iteration.f, iteration.grad_norm, iteration.nfev) == (1, 5.0, 2.0, 3)
    np.testing.assert_array_equal(iteration.x, [3.0, 4.0])
    np.testing.assert_array_equal(history.column("grad_norm", of="evaluations")[:1], [2.0])
    assert history.column("kind", of="evaluations").tolist() == ["value_and_gradient"] + ["finite-difference"] * 2
    assert history.column("njev").tolist() == [1] and history.column("x").tolist() == [[3.0, 4.0]]
    with pytest.raises(ValueError, match=r"name='g' is not a column of the iterations; use one of \('nit'"):
        history.column("g")
    assert repr(history) == "History(3 evaluations, 1 iterations)"
    copied = pickle.loads(pickle.dumps(history))  # histories come back from worker processes
    assert copied.evaluations[:1] == first[:1] and len(copied.evaluations) == 3 and copied.iterations[0].f == 5.0


def test_resume_continues_from_the_best_point_of_the_last_run(tmp_path):
    path = tmp_path / "resume.sqlite"
    first = _solve(log=path, options={"maxiter": 8})
    resumed = _solve(log=path, resume=path)
    assert resumed.history.iterations[0].f <= first.fun
    assert resumed.nit < _solve().nit
    np.testing.assert_allclose(resumed.x, 1.0, atol=1e-4)
    with pytest.raises(ValueError, match=r"resume=.* has 4 parameters but x0 has 2"):
        am.minimize(ROSEN, np.zeros(2), method="L-BFGS-B", backend="numpy", jac=rosen_der, resume=path)


_SLOW_RUN = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import autominimize as am

    def slow(x):
        time.sleep(0.01)
        return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))

    print("started", flush=True)
    res = am.minimize(slow, np.zeros(6), method="Nelder-Mead", backend="numpy", log=sys.argv[1],
                      options={"maxiter": 100000, "xatol": 1e-14, "fatol": 1e-14})
    print("RESULT", res.success, res.message, res.fun, flush=True)
    """
)


def test_a_log_without_history_lets_go_of_the_rows_it_has_written(tmp_path):
    from autominimize.recording.history import History
    from autominimize.recording.log_writer import RunLog
    from autominimize.params import ParamSpec
    from autominimize.problem import Counters

    journal = History(keep_points=False)
    log = RunLog(am.SQLiteLog(tmp_path / "own.sqlite"), journal, owns_journal=True)
    log.start_run(method="bfgs", backend="numpy", precision="float64", options={}, spec=ParamSpec.from_tree(np.zeros(2)))
    counters = Counters()
    for k, f in enumerate([3.0, 1.0, 2.0]):
        counters.nfev = counters.njev = k + 1
        x = np.full(2, f)
        journal.add_evaluation("value_and_gradient", x, f, f)
        journal.add_iteration(k + 1, x, f, f, counters.nfev, counters.njev)
    assert log._file.attempt([log]) is None  # what the writer thread does every commit_interval
    assert journal._evaluation_rows == [] and journal._iteration_rows == []
    journal.add_evaluation("value", np.zeros(2), 0.5, np.nan)
    log.finish(status=0, success=True, message="done", best_f=0.5, best_x=np.zeros(2))
    logged = am.read_log(tmp_path / "own.sqlite")
    assert [e.f for e in logged.history.evaluations] == [3.0, 1.0, 2.0, 0.5]
    assert [(it.nit, it.nfev, it.x) for it in logged.history.iterations] == [(1, 1, None), (2, 2, None), (3, 3, None)]
    with sqlite3.connect(tmp_path / "own.sqlite") as connection:
        stored = connection.execute("SELECT block, best_seq, best_x FROM evaluation_blocks ORDER BY block").fetchall()
    assert [(block, seq) for block, seq, _ in stored] == [(0, 2), (1, 4)]
    np.testing.assert_array_equal(np.frombuffer(stored[0][2]), [1.0, 1.0])
    assert logged.best_f == 0.5


def test_observers_get_iterates_that_the_method_cannot_change():
    from autominimize.recording.history import History
    from autominimize.params import ParamSpec
    from autominimize.problem import Objective

    class Functions:
        extra_evaluations = 0

        def value(self, x):
            return float(x @ x)

        def value_and_grad(self, x):
            return float(x @ x), 2 * x

    history = History()
    objective = Objective(Functions(), ParamSpec.from_tree(np.zeros(2)), journal=history)
    method_x = np.array([1.0, 2.0])  # scipy's working array, which it overwrites in place
    objective.fused_value(method_x)
    objective.report_iteration(method_x, 5.0)  # the point evaluated last: the cache's copy
    method_x[:] = [3.0, 4.0]
    objective.report_iteration(method_x, 25.0)  # not evaluated: a copy of its own
    method_x[:] = 0.0
    assert [it.x.tolist() for it in history.iterations] == [[1.0, 2.0], [3.0, 4.0]]
    assert [it.grad_norm for it in history.iterations][0] == pytest.approx(np.sqrt(20.0))
    assert np.isnan(history.iterations[1].grad_norm)
    assert history.evaluations[0].kind == "value_and_gradient" and objective.counters.nfev == 1


def _start_slow_run(path):
    process = subprocess.Popen([sys.executable, "-c", _SLOW_RUN, str(path)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "started"
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until some rows are committed
        time.sleep(0.5)
        try:
            with sqlite3.connect(path) as connection:
                if connection.execute("SELECT coalesce(sum(count), 0) FROM evaluation_blocks").fetchone()[0] > 20:
                    return process
        except sqlite3.Error:
            continue
    process.kill()
    pytest.fail("the subprocess wrote no log rows in 60 s")


def test_sigkill_leaves_every_committed_row_readable(tmp_path):
    path = tmp_path / "killed.sqlite"
    process = _start_slow_run(path)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    logged = am.read_log(path)
    assert logged.finished is None  # the run never finished ...
    assert len(logged.history.evaluations) > 20  # ... but what was committed is there
    assert logged.best_x is not None and logged.best_x.shape == (6,)
    assert logged.best_f == min(e.f for e in logged.history.evaluations)
    resumed = am.minimize(ROSEN, np.zeros(6), method="L-BFGS-B", backend="numpy", jac=rosen_der, resume=path)
    assert resumed.success


def test_ctrl_c_returns_the_best_point_and_flushes_the_log(tmp_path):
    path = tmp_path / "interrupted.sqlite"
    process = _start_slow_run(path)
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    line = [entry for entry in out.splitlines() if entry.startswith("RESULT")][0]
    assert line.startswith("RESULT False Interrupted by KeyboardInterrupt")
    logged = am.read_log(path)
    assert logged.finished is not None and not logged.success
    assert float(line.split()[-1]) == pytest.approx(logged.best_f)
    assert len(logged.history.evaluations) > 20


def test_progress_bar_draws_in_a_terminal_and_stays_silent_in_a_pipe():
    pytest.importorskip("tqdm")
    code = "import numpy as np, autominimize as am; am.minimize(lambda x: ((x - 1) ** 2).sum(), np.zeros(3), method='L-BFGS-B', backend='numpy', progress=True)"
    piped = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert piped.stderr == "" and piped.stdout == ""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a real terminal's size
    process = subprocess.Popen([sys.executable, "-c", code], stdout=follower, stderr=follower)
    os.close(follower)
    process.wait(timeout=60)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    text = shown.decode(errors="replace")
    assert "l-bfgs-b" in text and "f=" in text and "evals/s=" in text


def _png_is_drawn(path):
    from matplotlib.image import imread

    image = imread(path)
    assert image.shape[0] > 200 and image.shape[1] > 200
    assert float(np.std(image[..., :3])) > 0.01  # not blank


def test_plots_render(tmp_path):
    pytest.importorskip("matplotlib")
    log_path = tmp_path / "plot.sqlite"
    bfgs = am.minimize(
        lambda p: ROSEN(p["w"]) + (p["b"] ** 2).sum(),
        {"w": np.zeros(4), "b": np.ones(2)},
        method="BFGS",
        backend="numpy",
        jac=lambda p: {"w": rosen_der(p["w"]), "b": 2 * p["b"]},
        log=log_path,
    )
    lbfgs = _solve()
    for x in ("iterations", "evaluations", "time"):
        figure = am.plot.criterion({"BFGS (log)": log_path, "L-BFGS-B": lbfgs}, x=x)
        figure.savefig(tmp_path / f"criterion_{x}.png")
        _png_is_drawn(tmp_path / f"criterion_{x}.png")
    figure = am.plot.params(bfgs)
    assert [ax.get_title() for ax in figure.axes if ax.get_visible()] == ["x0['w']", "x0['b']"]
    figure.savefig(tmp_path / "params.png")
    _png_is_drawn(tmp_path / "params.png")
    rows = [
        {"problem": p, "solver": s, "seconds": t}
        for p, s, t in [("a", "jax", 1.0), ("a", "torch", 2.0), ("b", "jax", 3.0), ("b", "torch", 1.5), ("c", "jax", 1.0), ("c", "torch", None)]
    ]
    figure = am.plot.profile(rows)
    figure.savefig(tmp_path / "profile.png")
    _png_is_drawn(tmp_path / "profile.png")
    with pytest.raises(TypeError, match="runs is of type int, which cannot be plotted"):
        am.plot.criterion(3)


def test_the_history_gets_each_gradient_norm_once_and_keeps_no_gradient_alive():
    import gc
    import weakref

    from autominimize.recording.history import History
    from autominimize.params import ParamSpec
    from autominimize.problem import Objective

    gradients = []

    class Functions:
        extra_evaluations = 0

        def value(self, x):
            return float(x @ x)

        def value_and_grad(self, x):
            gradients.append(np.array([3.0, 4.0, 12.0]) * x[0])
            return float(x @ x), gradients[-1]

    history = History()
    objective = Objective(Functions(), ParamSpec.from_tree(np.zeros(3)), journal=history)
    x = np.ones(3)
    objective.fused_value(x)
    objective.gradient(x)  # the cached gradient: not computed again
    objective.report_iteration(x, 3.0)
    objective.report_iteration(np.zeros(3), 0.0)  # not evaluated: no gradient, no norm
    assert len(gradients) == 1 and [e.grad_norm for e in history.evaluations] == [13.0]
    assert history.column("grad_norm")[0] == 13.0 and np.isnan(history.column("grad_norm")[1])
    alive = weakref.ref(gradients.pop())
    del objective
    gc.collect()
    assert alive() is None  # res.history must not hold a (possibly huge) gradient


@pytest.mark.parametrize("keep", [True, False])
def test_the_recording_callback_records_what_the_general_path_records(keep, tmp_path, monkeypatch):
    """Without a user callback, scipy's callback records each iterate itself; a user callback
    sends it through report_iteration instead. Both must write the same rows."""
    from autominimize.problem import Objective

    general_calls = []
    report_iteration = Objective.report_iteration
    monkeypatch.setattr(Objective, "report_iteration", lambda self, *a: general_calls.append(1) or report_iteration(self, *a))

    def history(name, **kwargs):
        general_calls.clear()
        kwargs = dict(kwargs) if keep else dict(kwargs, history=False, log=tmp_path / f"{name}.sqlite")
        res = am.minimize(ROSEN, np.zeros(5), method="L-BFGS-B", backend="numpy", jac=rosen_der, **kwargs)
        return res.nit, len(general_calls), res.history if keep else am.read_log(tmp_path / f"{name}.sqlite").history

    nit, calls, fast = history("fast")
    assert nit > 10 and calls == 0  # every iterate was the point evaluated last
    nit, calls, general = history("general", callback=lambda intermediate_result: None)
    assert calls == nit == len(fast.iterations) == len(general.iterations)
    for name in ("nit", "f", "grad_norm", "nfev", "njev"):
        np.testing.assert_array_equal(fast.column(name), general.column(name))
    assert not np.isnan(fast.column("grad_norm")).any()
    if keep:
        np.testing.assert_array_equal(fast.column("x"), general.column("x"))


def test_an_observer_whose_evaluation_is_none_is_told_of_iterations_only():
    class Iterations:
        evaluation = None

        def __init__(self):
            self.seen = []

        def iteration(self, nit, x, f, grad, counts):
            self.seen.append((nit, f, counts.nfev))

    class Both(Iterations):
        def __init__(self):
            super().__init__()
            self.kinds = []

        def evaluation(self, kind, x, f, grad, count):
            self.kinds.extend([kind] * count)

    iterations_only, both = Iterations(), Both()
    res = am.minimize(ROSEN, np.zeros(4), method="L-BFGS-B", backend="numpy", jac=rosen_der, history=False, observers=[iterations_only, both])
    assert iterations_only.seen == both.seen and [nit for nit, _, _ in both.seen] == list(range(1, res.nit + 1))
    assert both.kinds == ["value", "gradient"] * res.nfev  # a user jac: the value, then the gradient at that point
    through_report_iteration = Iterations()  # a user callback takes the general path
    am.minimize(
        ROSEN,
        np.zeros(4),
        method="L-BFGS-B",
        backend="numpy",
        jac=rosen_der,
        history=False,
        observers=[through_report_iteration],
        callback=lambda intermediate_result: None,
    )
    assert through_report_iteration.seen == both.seen
