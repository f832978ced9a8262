"""Ctrl-C on ``am.least_squares``, ``am.curve_fit`` and ``am.minimize``'s least-squares methods.

The residual function sends the main thread a real Ctrl-C (``_thread.interrupt_main()``, what
a SIGINT does) at its n-th call. ``am.least_squares`` and ``am.minimize`` return the point
of lowest cost ``0.5 * r @ r`` evaluated, with ``status=-1``; ``am.curve_fit`` lets the
KeyboardInterrupt propagate with that point (in popt's form) in ``exc.autominimize_best_x``.
"""

from __future__ import annotations

import _thread

import numpy as np
import pytest

import autominimize as am
from autominimize.recording import nested_solves

N = 4
X0 = np.full(N, -1.5)


def _rosenbrock_residuals(x):
    return np.concatenate([10.0 * (x[1:] - x[:-1] ** 2), 1.0 - x[:-1]])


def _rosenbrock_jacobian(x):
    x = np.asarray(x, dtype=np.float64)
    jac = np.zeros((2 * N - 2, N))
    for i in range(N - 1):
        jac[i, i], jac[i, i + 1] = -20.0 * x[i], 10.0
        jac[N - 1 + i, i] = -1.0
    return jac


class Interrupting:
    """Rosenbrock's residuals; keeps the cost of every call and sends a Ctrl-C at call ``at``."""

    def __init__(self, at: int):
        self.at, self.costs = at, []

    def __call__(self, x):
        x = np.asarray(x["x"] if isinstance(x, dict) else x, dtype=np.float64)
        r = _rosenbrock_residuals(x)
        self.costs.append(0.5 * float(r @ r))
        if len(self.costs) == self.at:
            _thread.interrupt_main()
        return r


def _check_best(cost, costs):
    # every call is a point the method asked for (the Jacobian is exact); the last one may
    # have been lost with the interrupt before its residuals were returned
    assert cost in costs
    assert cost <= min(costs[:-1])
    assert cost < costs[0]


@pytest.mark.parametrize("method", ["trf", "dogbox", "lm"])
def test_least_squares_returns_the_best_point_evaluated(method):
    fun = Interrupting(at=8)
    res = am.least_squares(fun, {"x": X0}, jac=lambda p: _rosenbrock_jacobian(p["x"]), method=method, backend="numpy")
    assert (res.status, res.success) == (-1, False)
    assert res.message == "Interrupted by KeyboardInterrupt (Ctrl-C); x is the best point evaluated."
    assert len(fun.costs) == 8  # stopped at the interrupt, not at the end of the solve
    _check_best(res.cost, fun.costs)
    r = _rosenbrock_residuals(res.x["x"])
    assert res.cost == 0.5 * float(r @ r)
    np.testing.assert_array_equal(res.fun, r)
    assert res.nfev in (7, 8)  # the eighth counts if its residuals came back


def test_least_squares_with_a_fixed_variable_returns_the_full_best_point():
    fun = Interrupting(at=8)
    low, high = np.full(N, -3.0), np.full(N, 3.0)
    low[2] = high[2] = -1.5  # x[2] fixed at its start: scipy solves for the other three
    res = am.least_squares(fun, X0, jac=_rosenbrock_jacobian, bounds=(low, high), backend="numpy")
    assert (res.status, res.success) == (-1, False)
    assert res.x.shape == (N,) and res.x[2] == -1.5
    _check_best(res.cost, fun.costs)


def test_least_squares_with_the_backend_jacobian_returns_a_point_better_than_x0():
    fun = Interrupting(at=20)  # past the first finite-difference Jacobian
    res = am.least_squares(fun, X0, backend="numpy")
    assert (res.status, res.success) == (-1, False)
    assert isinstance(res.x, np.ndarray) and res.x.shape == (N,)
    assert res.cost < fun.costs[0]
    r = _rosenbrock_residuals(res.x)
    assert res.cost == 0.5 * float(r @ r)


def test_least_squares_on_torch_returns_the_best_point_as_a_tensor():
    torch = pytest.importorskip("torch")
    fun = Interrupting(at=8)

    def residuals(x):
        fun(x.detach().numpy())
        return torch.cat([10.0 * (x[1:] - x[:-1] ** 2), 1.0 - x[:-1]])

    res = am.least_squares(residuals, torch.tensor(X0), backend="torch")
    assert (res.status, res.success) == (-1, False)
    assert isinstance(res.x, torch.Tensor) and res.x.shape == (N,)
    _check_best(res.cost, fun.costs)


def test_a_nested_least_squares_solve_raises_with_the_best_point():
    fun = Interrupting(at=8)
    with pytest.raises(KeyboardInterrupt) as caught, nested_solves():
        am.least_squares(fun, {"x": X0}, jac=lambda p: _rosenbrock_jacobian(p["x"]), backend="numpy")
    _check_best(caught.value.autominimize_best_f, fun.costs)
    r = _rosenbrock_residuals(caught.value.autominimize_best_x["x"])
    assert caught.value.autominimize_best_f == 0.5 * float(r @ r)


def test_minimize_trf_returns_the_best_point_evaluated_and_logs_it(tmp_path):
    fun = Interrupting(at=8)
    log = str(tmp_path / "run.sqlite")
    res = am.minimize(am.residuals(fun, jac=_rosenbrock_jacobian), X0, method="trf", backend="numpy", log=log)
    assert (res.status, res.success) == (-1, False)
    assert res.message == "Interrupted by KeyboardInterrupt (Ctrl-C); x is the best point evaluated."
    _check_best(res.fun, fun.costs)
    logged = am.read_log(log)
    assert logged.finished is not None and logged.success is False
    assert logged.best_f == res.fun
    np.testing.assert_array_equal(logged.best_x, res.x)


def test_minimize_lm_returns_the_best_point_evaluated():
    fun = Interrupting(at=8)
    res = am.minimize(am.residuals(fun, jac=_rosenbrock_jacobian), X0, method="lm", backend="numpy")
    assert (res.status, res.success) == (-1, False)
    _check_best(res.fun, fun.costs)


@pytest.mark.parametrize(("p0", "bounds"), [(list(X0), None), (X0, (-3.0, 3.0))])
def test_curve_fit_raises_with_the_best_point_attached(p0, bounds):
    fun = Interrupting(at=8)
    xdata = np.arange(2.0 * N - 2)

    def model(x, *p):
        return fun(np.asarray(p)) + 0.0 * x

    kwargs = {} if bounds is None else {"bounds": bounds}
    with pytest.raises(KeyboardInterrupt) as caught:
        am.curve_fit(model, xdata, np.zeros_like(xdata), p0=p0, jac=lambda x, *p: _rosenbrock_jacobian(p), **kwargs)
    best, cost = caught.value.autominimize_best_x, caught.value.autominimize_best_f
    assert isinstance(best, np.ndarray) and best.shape == (N,)  # popt's form
    _check_best(cost, fun.costs)
    r = _rosenbrock_residuals(best)
    assert cost == 0.5 * float(r @ r)


def test_a_curve_fit_differentiated_with_respect_to_the_data_raises_with_the_best_point():
    torch = pytest.importorskip("torch")
    fun = Interrupting(at=8)
    xdata = torch.arange(2.0 * N - 2, dtype=torch.float64)
    ydata = torch.zeros(2 * N - 2, dtype=torch.float64, requires_grad=True)

    def model(x, *p):
        p = torch.stack(p)
        fun(p.detach().numpy())
        return torch.cat([10.0 * (p[1:] - p[:-1] ** 2), 1.0 - p[:-1]]) + 0.0 * x

    with pytest.raises(KeyboardInterrupt) as caught:
        am.curve_fit(model, xdata, ydata, p0=torch.tensor(X0), backend="torch")
    best = caught.value.autominimize_best_x
    assert isinstance(best, torch.Tensor) and best.shape == (N,)
    assert caught.value.autominimize_best_f < fun.costs[0]
