"""Every entry point × every recording and control option: it works, or it is refused by name.

The table below is the contract: ``works`` means the option does what the user guide says
(a history with the iterations, a log file that reads back, a resumed start, a progress bar,
a callback called, an error policy accepted); ``refused`` means a TypeError or ValueError whose
message names the option. Nothing is silently dropped.

Ctrl-C is sent for real: the objective calls ``_thread.interrupt_main()`` (what a SIGINT does
to the main thread) at its fifteenth evaluation (past the first step, finite differences included; the third in
the runs shorter than that). ``returns`` means the entry point returns the best
point with ``status=-1``; ``attaches`` that the KeyboardInterrupt propagates (the whole run
stops, local solves included) with the best point in ``exc.autominimize_best_x``;
``propagates`` that it propagates (the run stops).
"""

from __future__ import annotations

import _thread

import numpy as np
import pytest

import autominimize as am
from autominimize.recording.progress import ProgressBar

W = np.array([1.0, 10.0, 100.0])
OPTIONS = ("history", "log", "resume", "progress", "callback", "error_handling")


class Objective:
    """Σ w (x - 1)², counting its calls; at call ``interrupt_at`` it sends the main thread a Ctrl-C."""

    def __init__(self, interrupt_at: int | None = None, residuals: bool = False):
        self.calls = 0
        self.interrupt_at = interrupt_at
        self.residuals = residuals

    def __call__(self, p):
        self.calls += 1
        if self.calls == self.interrupt_at:
            _thread.interrupt_main()
        x = p["x"] if isinstance(p, dict) else np.asarray(p)
        r = np.sqrt(W) * (x - 1.0)
        return r if self.residuals else float(r @ r)


X0 = {"x": np.zeros(3)}
BOX = [(-2.0, 3.0)] * 3


def _minimize(method, residual=False):
    def run(fun, **options):
        fun.residuals = residual
        target = am.residuals(fun) if residual else fun
        return am.minimize(target, X0, method=method, backend="numpy", **options)

    return run


def _iterate(method):
    def run(fun, **options):
        with am.iterate(fun, X0, method=method, backend="numpy", **options) as it:
            for _ in it:
                pass
            return it.result()

    return run


def _least_squares(fun, **options):
    fun.residuals = True
    return am.least_squares(fun, X0, backend="numpy", **options)


def _line_model(fun):
    """A line a * x + b whose every call also calls ``fun`` (which counts and may interrupt)."""
    fun.residuals = True

    def model(x, a, b):
        fun({"x": np.array([a, b, 1.0])})
        return a * x + b

    return model


XDATA = np.arange(3.0)


def _curve_fit(fun, **options):
    return am.curve_fit(_line_model(fun), XDATA, 2 * XDATA + 1, p0=[0.0, 0.0], **options)


def _batched_least_squares(fun, **options):
    fun.residuals = True
    return am.batched_least_squares(fun, {"x": np.zeros((2, 3))}, **options)


def _batched_curve_fit(fun, **options):
    return am.batched_curve_fit(_line_model(fun), XDATA, np.stack([2 * XDATA + 1, XDATA]), p0=[0.0, 0.0], **options)


def _global(name, **fixed):
    def run(fun, **options):
        return getattr(am, name)(fun, **fixed, backend="numpy", **options)

    return run


def _check_grad(fun, **options):
    return am.check_grad(fun, X0, jac=lambda p: 2 * W * (p["x"] - 1.0), **options)


ENTRY_POINTS = {
    "minimize L-BFGS-B": _minimize("L-BFGS-B"),
    "minimize lbfgs-native": _minimize("lbfgs-native"),
    "minimize ipopt": _minimize("ipopt"),
    "minimize trf": _minimize("trf", residual=True),
    "minimize lm": _minimize("lm", residual=True),
    "least_squares": _least_squares,
    "curve_fit": _curve_fit,
    "batched_least_squares": _batched_least_squares,
    "batched_curve_fit": _batched_curve_fit,
    "iterate BFGS": _iterate("BFGS"),
    "iterate lbfgs-native": _iterate("lbfgs-native"),
    "basinhopping": _global("basinhopping", x0=X0, niter=3, rng=0),
    "differential_evolution": _global("differential_evolution", bounds={"x": BOX}, maxiter=3, rng=0, polish=False),
    "dual_annealing": _global("dual_annealing", bounds={"x": BOX}, maxiter=3, rng=0),
    "shgo": _global("shgo", bounds={"x": BOX}, n=8, iters=1),
    "direct": _global("direct", bounds={"x": BOX}, maxfun=60),
    "multistart": _global("multistart", bounds={"x": BOX}, n_starts=3, rng=0),
    "check_grad": _check_grad,
}

W_, R = "works", "refused"
#: entry point -> (history, log, resume, progress, callback, error_handling, Ctrl-C)
TABLE = {
    "minimize L-BFGS-B": (W_, W_, W_, W_, W_, W_, "returns"),
    "minimize lbfgs-native": (W_, W_, W_, W_, W_, R, "returns"),
    "minimize ipopt": (W_, W_, W_, W_, W_, W_, "returns"),
    "minimize trf": (W_, W_, W_, W_, W_, W_, "returns"),
    "minimize lm": (W_, R, W_, R, R, W_, "returns"),
    "least_squares": (R, R, R, R, W_, W_, "returns"),
    "curve_fit": (R, R, R, R, R, W_, "attaches"),
    "batched_least_squares": (R, R, R, R, R, W_, "attaches"),
    "batched_curve_fit": (R, R, R, R, R, W_, "attaches"),
    "iterate BFGS": (W_, W_, W_, W_, W_, W_, "attaches"),
    "iterate lbfgs-native": (R, R, R, R, W_, R, "attaches"),
    "basinhopping": (R, R, R, R, W_, W_, "attaches"),
    "differential_evolution": (R, R, R, R, W_, W_, "attaches"),
    "dual_annealing": (R, R, R, R, W_, W_, "attaches"),
    "shgo": (R, R, R, R, W_, W_, "attaches"),
    "direct": (R, R, R, R, W_, W_, "attaches"),
    "multistart": (R, R, R, R, R, R, "attaches"),
    "check_grad": (R, R, R, R, R, R, "propagates"),
}

#: runs of fewer than fifteen evaluations: interrupted at the third
SHORT_RUNS = ("minimize lm", "curve_fit", "check_grad")

CASES = [(entry, option, TABLE[entry][i]) for entry in TABLE for i, option in enumerate(OPTIONS)]


def _logged_run(entry, tmp_path):
    """A first run written to a log, to resume from."""
    path = tmp_path / "first.sqlite"
    if entry == "minimize lm":
        am.minimize(am.residuals(Objective(residuals=True)), X0, method="trf", backend="numpy", log=str(path))
    else:
        ENTRY_POINTS[entry](Objective(), log=str(path))
    return path


@pytest.mark.parametrize(("entry", "option", "expected"), CASES, ids=[f"{e}-{o}" for e, o, _ in CASES])
def test_option(entry, option, expected, tmp_path, monkeypatch):
    run = ENTRY_POINTS[entry]
    calls = []
    shown = []
    iteration = ProgressBar.iteration  # outside a terminal tqdm draws nothing: count what the bar is told
    monkeypatch.setattr(ProgressBar, "iteration", lambda self, *args: shown.append(1) or iteration(self, *args))
    values = {
        "history": True,
        "log": str(tmp_path / "run.sqlite"),
        "progress": True,
        "callback": lambda *args, **kwargs: calls.append(1),
        "error_handling": "continue",
    }
    if expected == R:
        value = str(tmp_path / "missing.sqlite") if option == "resume" else values[option]
        with pytest.raises((TypeError, ValueError), match=option):
            run(Objective(), **{option: value})
        return
    if option == "resume":
        first = _logged_run(entry, tmp_path)
        fresh = run(Objective())
        resumed_objective = Objective()
        resumed = run(resumed_objective, resume=str(first))
        assert resumed.fun <= 1e-10
        assert resumed_objective.calls < fresh.nfev + 1  # started at the logged optimum
        return
    result = run(Objective(), **{option: values[option]})
    if option == "history":
        assert isinstance(result.history, am.History)
        if entry != "minimize lm":  # scipy calls no callback from 'lm': no iteration to record
            assert len(result.history.iterations) >= 1
    elif option == "log":
        logged = am.read_log(values["log"])
        assert len(logged.history.iterations) >= 1
        assert logged.best_x is not None
    elif option == "progress":
        assert len(shown) >= 1
    elif option == "callback":
        assert len(calls) >= 1
    elif option == "error_handling":
        value = result[0] if isinstance(result, tuple) else result.fun  # curve_fit: (popt, pcov)
        assert np.all(np.isfinite(value))


@pytest.mark.parametrize("entry", list(TABLE))
def test_one_ctrl_c_stops(entry):
    expected = TABLE[entry][-1]
    fun = Objective(interrupt_at=3 if entry in SHORT_RUNS else 15)
    if expected == "returns":
        result = ENTRY_POINTS[entry](fun)
        assert (result.success, result.status) == (False, -1)
        assert "KeyboardInterrupt" in result.message
        assert float(np.asarray(result.get("cost", result.fun))) < float(W.sum())  # better than x0 (cost: least squares)
        return
    with pytest.raises(KeyboardInterrupt) as caught:
        ENTRY_POINTS[entry](fun)
    assert fun.calls < 100  # stopped soon after the interrupt, not at the end of the run
    if expected == "attaches":
        best = caught.value.autominimize_best_x
        if entry == "curve_fit":  # in popt's form: an array for p0=[0.0, 0.0]
            assert isinstance(best, np.ndarray) and best.shape == (2,)
        elif entry == "batched_curve_fit":  # stacked in p0's form: a list of (B,) arrays
            assert isinstance(best, list) and [v.shape for v in best] == [(2,), (2,)]
        elif entry == "batched_least_squares":
            assert set(best) == {"x"} and best["x"].shape == (2, 3)
        else:
            assert set(best) == {"x"}
        assert np.all(caught.value.autominimize_best_f < float(W.sum()))
