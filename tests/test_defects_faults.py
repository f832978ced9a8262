"""Regression tests: faults in the user's code that once crashed a solve, lost its best point
or came back as another exception."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from conftest import ALL_BACKENDS, array_module

import autominimize as am

# -- the user's exception propagates as the same object -------------------------------------


class _Unconstructible(Exception):
    """An exception whose constructor needs more than a message (as CalledProcessError does)."""

    def __init__(self, code: int, command: str):
        super().__init__(f"{command} exited with {code}")
        self.code, self.command = code, command


@pytest.mark.parametrize(
    "error",
    [subprocess.CalledProcessError(2, ["solver", "--run"]), _Unconstructible(3, "simulate"), KeyError("missing"), ValueError("bad value")],
    ids=["CalledProcessError", "custom", "KeyError", "ValueError"],
)
def test_users_exception_in_the_backend_probe_is_the_same_object(error):
    def fun(x):
        raise error

    with pytest.raises(type(error)) as info:
        am.minimize(fun, np.ones(2), method="BFGS")
    assert info.value is error
    assert any("choose a backend" in note for note in getattr(info.value, "__notes__", []))


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_users_exception_at_the_first_evaluation_is_the_same_object(backend):
    error = subprocess.CalledProcessError(1, "simulate")

    def fun(x):  # JAX and TensorFlow meet it while tracing, NumPy and torch while evaluating
        raise error

    with pytest.raises(subprocess.CalledProcessError) as info:
        am.minimize(fun, np.ones(2), method="BFGS", backend=backend)
    assert info.value is error


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_users_exception_during_the_solve_is_the_same_object(backend):
    _, total = array_module(backend)
    error = subprocess.CalledProcessError(1, "simulate")
    calls = []

    def fun(x):
        calls.append(1)
        if len(calls) > 3:
            raise error
        return total(x**2)

    with pytest.raises(subprocess.CalledProcessError) as info:
        am.minimize(fun, np.ones(2), method="Nelder-Mead", backend=backend)
    assert info.value is error
    assert np.all(np.asarray(info.value.autominimize_best_x) <= 1.0)


# -- the best point survives a failing first finite-difference gradient ---------------------


@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B", "CG", "TNC", "SLSQP"])
def test_best_point_kept_when_the_first_finite_difference_gradient_fails(method):
    calls = []

    def fun(x):
        calls.append(1)
        if len(calls) > 1:  # x0's value is computed; the first difference step raises
            raise RuntimeError("simulation diverged")
        return float(np.sum((x - 1.0) ** 2))

    with pytest.raises(RuntimeError, match="simulation diverged") as info:
        am.minimize(fun, np.array([2.0, 3.0]), method=method, backend="numpy")
    np.testing.assert_array_equal(info.value.autominimize_best_x, [2.0, 3.0])


# -- a fixed variable (lower bound = upper bound) ---------------------------------------------


def _shifted_squares(backend: str):
    _, total = array_module(backend)
    return lambda x: total((x - 1.0) ** 2) + (x[0] - 2.0) ** 2 + (x[2] + 2.0) ** 2


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("method", ["L-BFGS-B", "TNC", "SLSQP", "trust-constr", "Nelder-Mead", "Powell", "COBYLA", "COBYQA", "lbfgs-native"])
def test_fixed_variable_stays_at_its_bound(backend, method):
    bounds = [(-5.0, 5.0), (0.25, 0.25), (-5.0, 5.0)]
    res = am.minimize(_shifted_squares(backend), np.array([0.0, 0.25, 0.0]), method=method, bounds=bounds, backend=backend)
    np.testing.assert_allclose(np.asarray(res.x), [1.5, 0.25, -0.5], atol=2e-3)
    # trust-constr's interior point keeps bounds to its barrier tolerance, as with scipy
    assert float(np.asarray(res.x)[1]) == pytest.approx(0.25, abs=1e-7 if method == "trust-constr" else 1e-12)


def test_finite_differences_of_a_fixed_variable_are_zero_and_not_evaluated():
    from autominimize import numdiff

    points = []

    def fun(x):
        points.append(x.copy())
        return float(np.sum(x**2))

    g = numdiff.gradient(fun, np.array([1.0, 2.0, 3.0]), bounds=([0.0, 2.0, 0.0], [5.0, 2.0, 5.0]))
    np.testing.assert_allclose(g, [2.0, 0.0, 6.0], rtol=1e-6)
    assert all(p[1] == 2.0 for p in points)
    assert len(points) == 5  # x, and a central difference of each free variable


# -- am.optim's L-BFGS at convergence -------------------------------------------------------


def _float32_array(backend: str, values):
    if backend == "torch":
        import torch

        return torch.tensor(values, dtype=torch.float32)
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.asarray(values, dtype=jnp.float32)
    return np.asarray(values, dtype=np.float32)


@pytest.mark.parametrize("backend", [b for b in ("numpy", "torch", "jax") if b in ALL_BACKENDS])
@pytest.mark.parametrize("make", ["lbfgs", "nonlinear_cg"])
def test_optim_update_at_convergence_is_zero_and_says_converged(backend, make):
    def value_and_grad(p):  # 1 + ½‖w‖²: at w = ±1e-6 no decrease is visible in float32
        return 1.0 + 0.5 * float((p["w"] ** 2).sum()), {"w": p["w"] * 1}

    opt = getattr(am.optim, make)()
    params = {"w": _float32_array(backend, [1e-6, -1e-6])}
    state = opt.init(params)
    for _ in range(3):  # a fixed-length training loop goes on
        value, grads = value_and_grad(params)
        updates, state = opt.update(grads, state, params, value=value, value_and_grad_fn=value_and_grad)
        assert float(np.abs(np.asarray(updates["w"])).max()) == 0.0
        assert state.flag.startswith("converged")
        params = am.optim.apply_updates(params, updates)
    np.testing.assert_array_equal(np.asarray(params["w"]), np.float32([1e-6, -1e-6]))


def test_optim_update_with_a_wrong_gradient_still_raises():
    def wrong(p):
        return 0.5 * np.sum(p["w"] ** 2), {"w": -p["w"]}

    opt = am.optim.lbfgs()
    params = {"w": np.ones(3)}
    value, grads = wrong(params)
    with pytest.raises(RuntimeError, match="line search failed to find a point with sufficient decrease"):
        opt.update(grads, opt.init(params), params, value=value, value_and_grad_fn=wrong)


# -- am.iterate's worker thread and why a solve stopped ---------------------------------------


def _iterate_threads() -> list:
    import threading

    return [t for t in threading.enumerate() if t.name == "autominimize-scipy-iterate"]


def _bowl(x):
    return float(np.sum((x - 1.0) ** 2) + np.sum(x**4))


@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B", "Nelder-Mead", "trust-constr"])
def test_breaking_out_of_an_iterate_loop_ends_the_worker_thread(method):
    import time

    for state in am.iterate(_bowl, np.zeros(4), method=method, backend="numpy"):
        if state.nit == 2:
            break
    deadline = time.monotonic() + 0.1
    while _iterate_threads() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert _iterate_threads() == []


def test_a_held_iterator_stopped_by_the_caller_says_so():
    it = am.iterate(_bowl, np.zeros(4), method="BFGS", backend="numpy")
    for state in it:
        if state.nit == 2:
            break
    assert len(_iterate_threads()) == 1  # parked, waiting for the caller
    res = it.result()
    assert _iterate_threads() == []
    assert not res.success
    assert res.message == "stopped by the caller: the iterator was closed before the method converged."


@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B", "TNC", "SLSQP", "Nelder-Mead", "trust-constr"])
def test_a_callback_returning_true_is_named_in_the_message(method):
    res = am.minimize(_bowl, np.zeros(4), method=method, backend="numpy", callback=lambda *a: True)
    assert not res.success
    assert res.message == "callback returned True."
    it = am.iterate(_bowl, np.zeros(4), method=method, backend="numpy", callback=lambda *a: True)
    assert len(list(it)) == 1
    assert it.result().message == "callback returned True."


# -- am.plot with one result ------------------------------------------------------------------


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_plot_criterion_of_one_result(backend):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    _, total = array_module(backend)
    res = am.minimize(lambda x: total((x - 1.0) ** 2), np.zeros(3), method="BFGS", backend=backend)
    for x in ("iterations", "evaluations", "time"):
        fig = am.plot.criterion(res, x=x)
        (line,) = fig.axes[0].get_lines()
        assert line.get_label() == "run"
        assert len(line.get_ydata()) == (len(res.history.iterations) if x != "evaluations" else len(line.get_ydata()))
    fig = am.plot.criterion({"first": res, "second": res})
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["first", "second"]
    without = am.minimize(lambda x: total((x - 1.0) ** 2), np.zeros(3), method="BFGS", backend=backend, history=False)
    with pytest.raises(TypeError, match="runs is a result without a history .*give results of am.minimize \\(with history=True\\)"):
        am.plot.criterion(without)


# -- least squares under 'continue': a Jacobian that cannot be formed -------------------------


@pytest.mark.parametrize("method", ["trf", "dogbox", "lm"])
def test_least_squares_continue_refuses_a_jacobian_that_cannot_be_formed_at_x0(method):
    calls = []

    def residuals(x):  # every finite-difference point around x0 fails, on both sides
        calls.append(1)
        if len(calls) > 1 and 0 < abs(x[0] - 2.0) < 1e-3:
            return np.full(2, np.nan)
        return np.array([x[0] - 1.0, 10 * (x[1] - x[0] ** 2)])

    with pytest.raises(
        ValueError, match=r"Jacobian of the residuals is not finite at x0 \(residual 0 with respect to x0\[0\].*error_handling='continue'"
    ):
        am.least_squares(residuals, np.array([2.0, 0.0]), method=method, backend="numpy", error_handling="continue")


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("method", ["trf", "dogbox", "lm"])
def test_least_squares_continue_rejects_a_step_whose_jacobian_cannot_be_formed(backend, method):
    asarray, _ = array_module(backend)

    def residuals(x):
        return asarray(np.array([1.0, 0.0])) * (x[0] - 1.0) + asarray(np.array([0.0, 10.0])) * (x[1] - x[0] ** 2)

    def jac(x):  # not finite where x[0] < 1.5
        x = np.asarray(x)
        return np.array([[1.0, 0.0], [-20 * x[0], 10.0]]) if x[0] > 1.5 else np.full((2, 2), np.nan)

    res = am.least_squares(residuals, np.array([2.0, 0.0]), jac=jac, method=method, backend=backend, error_handling="continue")
    x = np.asarray(res.x)
    assert np.isfinite(x).all() and x[0] >= 1.5
    assert res.nfail > 0
    np.testing.assert_allclose(res.fun, [x[0] - 1.0, 10 * (x[1] - x[0] ** 2)])


# -- workers= from a script without a main guard ----------------------------------------------


def test_workers_from_a_script_without_a_main_guard_says_how_to_fix_it(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "unguarded.py"
    script.write_text(
        "import numpy as np\n"
        "import autominimize as am\n"
        "am.minimize(lambda x: float(np.sum((x - 1.0) ** 2)), np.zeros(3), method='BFGS', backend='numpy', workers=2)\n"
    )
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert done.returncode != 0
    assert 'must guard its top level with `if __name__ == "__main__":`' in done.stderr
    assert "BrokenProcessPool" in done.stderr  # the cause, chained


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("method", ["trf", "dogbox"])
def test_least_squares_with_a_fixed_variable(backend, method):
    asarray, _ = array_module(backend)
    target = np.array([3.0, -1.0, 2.0])
    seen = []

    def residuals(x):
        return x - asarray(target)

    res = am.least_squares(
        residuals,
        np.array([1.0, 0.5, 0.0]),
        method=method,
        bounds=([0.0, 0.5, -4.0], [5.0, 0.5, 4.0]),
        backend=backend,
        callback=lambda x: seen.append(np.asarray(x).copy()),
    )
    np.testing.assert_allclose(np.asarray(res.x), [3.0, 0.5, 2.0], atol=1e-6)
    assert float(np.asarray(res.x)[1]) == 0.5
    assert res.jac.shape == (3, 3) and np.all(res.jac[:, 1] == 0.0)
    assert np.asarray(res.grad).shape == (3,)
    assert seen and all(x.shape == (3,) and x[1] == 0.5 for x in seen)
    via_minimize = am.minimize(residuals, np.array([1.0, 0.5, 0.0]), method=method, bounds=[(0, 5), (0.5, 0.5), (-4, 4)], backend=backend)
    np.testing.assert_allclose(np.asarray(via_minimize.x), [3.0, 0.5, 2.0], atol=1e-6)
