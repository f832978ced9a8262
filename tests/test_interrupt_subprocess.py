"""A real Ctrl-C (SIGINT sent by another process) on every entry point.

One subprocess (the import is paid once) runs the entry points one after the other. Each
objective sleeps 20 ms per evaluation and prints ``started <case>`` once the solve is past
its first finite-difference gradient (the in-process option matrix interrupts there too);
this process then sends SIGINT, and the child prints one ``RESULT`` line per case with
what came out: the result returned (status, message, best x and f, the log read back with
``am.read_log``), or the exception raised and the best point attached to it. The contract
is the option matrix's (``tests/test_option_matrix.py``): ``returns``, ``attaches`` or
``propagates``; ``am.iterate``'s attaches except in a loop body outside a ``with`` block
(``UNATTACHED``), and its worker thread has ended by then. The best point is checked against
the log where there is one, else against the values of fun (the local solves of the global
runs and the least-squares fits get the exact derivatives, so that every call of fun is a
point they asked for); for residuals the value is the cost ``0.5 * r @ r``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from test_option_matrix import TABLE

_CHILD = textwrap.dedent(
    """
    import json, os, sys, threading, time
    import numpy as np
    import autominimize as am

    N = 6
    X0 = np.full(N, -1.5)
    BOX = [(-2.0, 2.0)] * N
    WARM_UP = N + 1  # the first value and finite-difference gradient


    def residuals(x):
        return np.concatenate([10.0 * (x[1:] - x[:-1] ** 2), 1.0 - x[:-1]])


    def jacobian(x):  # of the residuals, given to the least-squares fits
        jac = np.zeros((2 * N - 2, N))
        for i in range(N - 1):
            jac[i, i], jac[i, i + 1], jac[N - 1 + i, i] = -20.0 * x[i], 10.0, -1.0
        return jac


    class Slow:
        # Rosenbrock's residuals or their squared norm, 20 ms per evaluation; says "started"
        # past the first gradient and keeps the value of every evaluation that completed
        # (the cost 0.5 * r @ r for residuals)
        def __init__(self, case, vector=False):
            self.case, self.vector, self.calls, self.fs = case, vector, 0, []

        def __call__(self, p):
            self.calls += 1
            if self.calls == WARM_UP + 3:
                print("started", self.case, flush=True)
            time.sleep(0.02)
            x = np.asarray(p["x"] if isinstance(p, dict) else p, dtype=np.float64)
            r = residuals(x)
            self.fs.append(0.5 * float(r @ r) if self.vector else float(r @ r))
            return r if self.vector else float(r @ r)


    def flat(x):
        x = x["x"] if isinstance(x, dict) else x
        return None if x is None else np.asarray(x, dtype=np.float64).ravel().tolist()


    def report(case, fun, **fields):
        threads = [t.name for t in threading.enumerate()]  # when the exception or result came out
        print("RESULT " + json.dumps(dict(case=case, fs=fun.fs, threads=threads, **fields)), flush=True)


    def run(case, fun, call, log=None, extra=dict):
        try:
            res = call()
        except KeyboardInterrupt as exc:
            fields = extra()
            best = getattr(exc, "autominimize_best_x", None)
            return report(case, fun, kind="raised", type=type(exc).__name__, x=flat(best),
                          f=getattr(exc, "autominimize_best_f", None), **fields)
        fields = extra()
        fields.update(kind="returned", status=int(res.status), success=bool(res.success),
                      message=str(res.message), x=flat(res.x), f=float(res.get("cost", res.fun)))
        if log is not None:
            logged = am.read_log(log)
            fields.update(log_finished=logged.finished is not None, log_success=logged.success,
                          log_fs=[e.f for e in logged.history.evaluations], log_best_f=logged.best_f,
                          log_steps=[step.f for step in logged.history.iterations])
        report(case, fun, **fields)


    def minimize(method, **kwargs):
        fun = Slow(method)
        log = os.path.join(sys.argv[1], method + ".sqlite")
        run(method, fun, lambda: am.minimize(fun, X0, method=method, backend="numpy", log=log,
                                             options={"maxiter": 100000}, **kwargs), log)


    def iterate(case, in_loop_body, within):
        # the Ctrl-C lands in the loop body, or in next() while the worker thread evaluates
        fun = Slow(case)
        steps = []
        if in_loop_body:
            fun.calls = -10**9  # the loop body says "started"

        def loop(it):
            for state in it:
                steps.append(state.fun)
                if in_loop_body:
                    if len(steps) == 3:
                        print("started", case, flush=True)
                    time.sleep(0.1)

        def iteration():
            if within:
                with am.iterate(fun, X0, method="BFGS", backend="numpy") as it:
                    loop(it)
            else:
                loop(am.iterate(fun, X0, method="BFGS", backend="numpy"))

        run(case, fun, iteration, extra=lambda: {"last_step": steps[-1] if steps else None})
        print("AFTER " + json.dumps([case, [t.name for t in threading.enumerate()]]), flush=True)


    def torch_minimize():
        import torch

        fun = Slow("torch L-BFGS-B")

        def objective(x):
            fun(x.detach().numpy())  # counts, sleeps and keeps the value
            r = torch.cat([10.0 * (x[1:] - x[:-1] ** 2), 1.0 - x[:-1]])
            return r @ r

        log = os.path.join(sys.argv[1], "torch.sqlite")
        x0 = torch.full((N,), -1.5, dtype=torch.float64)
        run("torch L-BFGS-B", fun, lambda: am.minimize(objective, x0, method="L-BFGS-B", backend="torch", log=log), log)


    def least_squares():
        fun = Slow("least_squares", vector=True)
        run("least_squares", fun, lambda: am.least_squares(fun, X0, jac=jacobian, backend="numpy"))


    def curve_fit():
        fun = Slow("curve_fit", vector=True)
        xdata = np.arange(2 * N - 2, dtype=np.float64)

        def model(x, *p):
            return fun(np.asarray(p)) + 0.0 * x

        run("curve_fit", fun, lambda: am.curve_fit(model, xdata, np.zeros_like(xdata), p0=X0,
                                                    jac=lambda x, *p: jacobian(np.asarray(p))))


    def gradient(p):  # given to the local solves: every call of fun is then a point they asked for
        x = p["x"]
        r = residuals(x)
        g = np.zeros(N)
        g[1:] += 20.0 * r[: N - 1]
        g[:-1] += -40.0 * x[:-1] * r[: N - 1] - 2.0 * r[N - 1 :]
        return {"x": g}


    def global_run(name, **kwargs):
        fun = Slow(name)
        run(name, fun, lambda: getattr(am, name)(fun, backend="numpy", **kwargs))


    CASES = {
        "BFGS": lambda: minimize("BFGS"),
        "SLSQP": lambda: minimize("SLSQP"),
        "trust-constr": lambda: minimize("trust-constr"),
        "L-BFGS-B": lambda: minimize("L-BFGS-B"),
        "lbfgs-native": lambda: minimize("lbfgs-native"),
        "ipopt": lambda: minimize("ipopt"),
        "torch L-BFGS-B": torch_minimize,
        "least_squares": least_squares,
        "curve_fit": curve_fit,
        "iterate BFGS": lambda: iterate("iterate BFGS", False, True),
        "iterate BFGS without with": lambda: iterate("iterate BFGS without with", False, False),
        "iterate loop body": lambda: iterate("iterate loop body", True, True),
        "iterate loop body without with": lambda: iterate("iterate loop body without with", True, False),
        "differential_evolution": lambda: global_run("differential_evolution", bounds={"x": BOX}, rng=0, polish=False),
        "basinhopping": lambda: global_run("basinhopping", x0={"x": X0}, niter=50, rng=0, minimizer_kwargs={"jac": gradient}),
        "multistart": lambda: global_run("multistart", bounds={"x": BOX}, n_starts=20, rng=0, minimizer_kwargs={"jac": gradient}),
    }
    for case in sys.argv[2:]:
        CASES[case]()
    """
)

#: case -> the option matrix's row for its entry point
CONTRACT = {
    **dict.fromkeys(["BFGS", "SLSQP", "trust-constr", "L-BFGS-B", "lbfgs-native", "ipopt", "torch L-BFGS-B"], "minimize L-BFGS-B"),
    "least_squares": "least_squares",
    "curve_fit": "curve_fit",
    **dict.fromkeys(["iterate BFGS", "iterate BFGS without with", "iterate loop body", "iterate loop body without with"], "iterate BFGS"),
    "differential_evolution": "differential_evolution",
    "basinhopping": "basinhopping",
    "multistart": "multistart",
}
ITERATE = ("iterate BFGS", "iterate BFGS without with", "iterate loop body", "iterate loop body without with")
#: am.iterate's Ctrl-C attaches the best point wherever it lands (the matrix), except in a loop
#: body outside a ``with`` block: nothing tells the iterator of it there, it propagates
UNATTACHED = ("iterate loop body without with",)
#: residuals: the value kept is the cost 0.5 * r @ r
LEAST_SQUARES = ("least_squares", "curve_fit")


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """Run every case in one subprocess, sending SIGINT at each "started" line."""
    pytest.importorskip("cyipopt")
    pytest.importorskip("torch")
    folder = tmp_path_factory.mktemp("interrupted")
    process = subprocess.Popen([sys.executable, "-c", _CHILD, str(folder), *CONTRACT], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watchdog = threading.Timer(300, process.kill)  # a child that never ends fails the tests, not the session
    watchdog.start()
    lines, results = [], {}
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("started"):
                process.send_signal(signal.SIGINT)
            elif line.startswith("RESULT "):
                result = json.loads(line[len("RESULT ") :])
                results[result["case"]] = result
            elif line.startswith("AFTER "):  # the threads once the exception was handled
                case, threads = json.loads(line[len("AFTER ") :])
                results[case]["threads_after"] = threads
        returncode = process.wait()
    finally:
        watchdog.cancel()
    return returncode, "".join(lines), results


def test_the_process_ends_normally_after_one_ctrl_c_per_case(interrupted):
    returncode, output, results = interrupted
    assert "Traceback" not in output, output
    assert returncode == 0
    assert sorted(results) == sorted(CONTRACT)
    for case in set(ITERATE) - set(UNATTACHED):  # am.iterate's worker thread ended before the exception came out ...
        assert "autominimize-scipy-iterate" not in results[case]["threads"]
    for result in results.values():  # ... or, in a loop body outside `with`, once it was handled
        assert "autominimize-scipy-iterate" not in result.get("threads_after", result["threads"])


def _value(case, x):
    x = np.asarray(x)
    r = np.concatenate([10.0 * (x[1:] - x[:-1] ** 2), 1.0 - x[:-1]])
    return (0.5 if case in LEAST_SQUARES else 1.0) * float(r @ r)


@pytest.mark.parametrize("case", list(CONTRACT))
def test_one_ctrl_c_from_another_process(case, interrupted):
    result = interrupted[2][case]
    expected = "propagates" if case in UNATTACHED else TABLE[CONTRACT[case]][-1]
    completed = result["fs"]
    assert len(completed) >= 7  # interrupted past the first gradient, not at the start ...
    if expected == "returns":
        assert result["kind"] == "returned"
        assert (result["status"], result["success"]) == (-1, False)
        assert "KeyboardInterrupt" in result["message"]
    else:
        assert (result["kind"], result["type"]) == ("raised", "KeyboardInterrupt")
    if case in ITERATE and expected == "attaches":
        assert result["f"] <= (result["last_step"] or np.inf)  # no worse than the last step yielded
    if expected == "propagates":
        assert result["x"] is None
        return
    x, f = np.array(result["x"]), result["f"]
    assert x.shape == (6,) and np.all(np.isfinite(x))
    assert f == pytest.approx(_value(case, x), rel=1e-12)
    if "log_fs" in result:
        assert result["log_finished"] and result["log_success"] is False
    if case == "lbfgs-native":  # a native method logs its steps and ends at the best one
        assert "best point evaluated" in result["message"]
        steps = result["log_steps"]
        assert f == min(steps) == result["log_best_f"] if steps else x.tolist() == [-1.5] * 6
    elif "log_fs" in result:  # the best value evaluated (finite-difference rows have none)
        assert f == np.nanmin(np.array(result["log_fs"], dtype=np.float64)) == result["log_best_f"]
    elif case not in ITERATE:
        # every call is a point the method asked for; the last one may have completed in the
        # user's function and been lost with the interrupt before it was returned
        assert f in completed and f <= min(completed[:-1])
