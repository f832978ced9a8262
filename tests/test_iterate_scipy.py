"""am.iterate over scipy's methods: one iteration per next(), clean early stops, no thread left."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import autominimize as am
from autominimize._iterate import Iteration, IterationState
from conftest import rosen_der, rosen_for

ROSEN = rosen_for("numpy")


def _threads():
    return [t for t in threading.enumerate() if t.name == "autominimize-scipy-iterate"]


@pytest.mark.parametrize("method", ["L-BFGS-B", "BFGS", "TNC", "SLSQP", "trust-constr", "Nelder-Mead"])
def test_iterating_gives_the_same_run_as_minimize(method):
    kwargs = dict(method=method, backend="numpy", jac=rosen_der) if method != "Nelder-Mead" else dict(method=method, backend="numpy")
    reference = am.minimize(ROSEN, {"w": np.zeros(3)}["w"], **kwargs)
    iteration = am.iterate(ROSEN, np.zeros(3), **kwargs)
    assert isinstance(iteration, Iteration)
    states = list(iteration)
    assert all(isinstance(state, IterationState) for state in states)
    assert [s.nit for s in states] == list(range(1, len(states) + 1))
    assert len(states) == reference.history.iterations[-1].nit
    result = iteration.result()
    np.testing.assert_allclose(result.x, reference.x)
    assert result.nfev == reference.nfev and states[-1].fun == pytest.approx(reference.history.iterations[-1].f)
    assert not _threads()


def test_stopping_early_ends_the_solve_and_its_thread():
    iteration = am.iterate(lambda p: ROSEN(p["w"]), {"w": np.zeros(5)}, method="BFGS", backend="numpy", jac=lambda p: {"w": rosen_der(p["w"])})
    for state in iteration:
        assert state.x["w"].shape == (5,) and state.grad_norm is not None
        if state.nit == 3:
            break
    assert len(_threads()) == 1  # parked, waiting for the caller
    result = iteration.result()
    assert not result.success and result.nit == 3 and result.message.startswith("stopped by the caller")
    assert not _threads()


def test_context_manager_closes_a_run_never_finished():
    with am.iterate(ROSEN, np.zeros(4), method="L-BFGS-B", backend="numpy", jac=rosen_der) as iteration:
        next(iteration)
    assert not _threads()


def test_an_error_in_fun_reaches_the_caller_at_next():
    def fun(x):
        if x[0] > 0.1:
            raise FloatingPointError("diverged")
        return ((x - 1) ** 2).sum()

    iteration = am.iterate(fun, np.zeros(2), method="BFGS", backend="numpy", jac=lambda x: 2 * (x - 1))
    with pytest.raises(FloatingPointError, match="diverged"):
        list(iteration)
    assert not _threads()


def test_scipy_iteration_refuses_native_only_arguments():
    with pytest.raises(ValueError, match="data=, epochs= and stop= are for the native methods"):
        am.iterate(ROSEN, np.zeros(2), method="BFGS", epochs=3)
    iteration = am.iterate(ROSEN, np.zeros(2), method="BFGS", backend="numpy", jac=rosen_der)
    next(iteration)
    with pytest.raises(TypeError, match="scipy's methods take their options once"):
        iteration.set(lr=0.1)
    iteration.close()
