"""Regression tests from a fault-injection sweep over the entry points: a failing user
function (an exception, a NaN) never loses the best point evaluated nor reports a value that
is not the value at ``x``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import array_module

import autominimize as am

W = np.array([1.0, 2.0, 3.0])
X0 = np.array([-1.2, 0.7, 2.0])
BOX = [(-3.0, 3.0)] * 3


class SimulationFailed(Exception):
    """The user's own failure, raised at a chosen call."""


def _value(x):
    return float(np.sum(W * (np.asarray(x, dtype=np.float64) - 1.0) ** 2))


class Faulty:
    """A weighted sphere (or its residuals) that fails at call ``k`` and keeps every finite
    value it returned, so that the best point evaluated is known."""

    def __init__(self, k, fault="raise", backend="numpy", residuals=False):
        self.k, self.fault, self.residuals, self.calls, self.values = k, fault, residuals, 0, []
        self.error = SimulationFailed(f"diverged at call {k}")
        self.asarray, self.total = array_module(backend)

    def __call__(self, x):
        self.calls += 1
        if self.calls == self.k and self.fault == "raise":
            raise self.error
        r = self.asarray(np.sqrt(W)) * (x - 1.0)
        if self.calls == self.k:
            r = r * math.nan
        value = self.total(r * r, -1)
        for v in np.atleast_1d(np.asarray(value.detach() if hasattr(value, "detach") else value, dtype=np.float64)):
            if math.isfinite(v):
                self.values.append(float(v))
        return r if self.residuals else value


def _best_attached(info, fun, cost=False):
    exc = info.value
    assert exc is fun.error
    best_f = exc.autominimize_best_f
    best_x = np.asarray(exc.autominimize_best_x, dtype=np.float64)
    value = 2.0 * best_f if cost else best_f
    assert value == pytest.approx(_value(best_x), rel=1e-12)
    # the best point of those the method asked for: a finite-difference step may have been lower
    assert value <= min(fun.values) * (1.0 + 1e-6)
    return value


# -- the user's exception carries best_f with best_x ----------------------------------------


@pytest.mark.parametrize("k", [2, 9])
@pytest.mark.parametrize("method", ["L-BFGS-B", "Nelder-Mead", "ipopt"])
def test_users_exception_from_minimize_carries_best_f(method, k):
    fun = Faulty(k)
    with pytest.raises(SimulationFailed) as info:
        am.minimize(fun, X0, method=method, backend="numpy")
    assert _best_attached(info, fun) < fun.values[0] or k == 2


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("differential_evolution", dict(bounds=BOX, maxiter=5, rng=0, polish=False)),
        ("dual_annealing", dict(bounds=BOX, maxiter=5, rng=0)),
        ("direct", dict(bounds=BOX, maxfun=60)),
        ("shgo", dict(bounds=BOX, n=8, iters=1)),
        ("basinhopping", dict(x0=X0, niter=3, rng=0)),
    ],
)
def test_users_exception_from_a_global_run_carries_best_f(name, kwargs):
    fun = Faulty(9)
    with pytest.raises(SimulationFailed) as info:
        getattr(am, name)(fun, backend="numpy", **kwargs)
    _best_attached(info, fun)


def test_users_exception_from_iterate_carries_best_f():
    fun = Faulty(9)
    with pytest.raises(SimulationFailed) as info:
        with am.iterate(fun, X0, method="BFGS", backend="numpy") as steps:
            for _ in steps:
                pass
    assert _best_attached(info, fun) < fun.values[0]


# -- IPOPT stopped by a NaN reports the value at x, not 0 -----------------------------------


@pytest.mark.parametrize("k", [1, 2, 9])
def test_ipopt_stopped_by_a_nan_returns_the_best_point_and_its_value(k):
    fun = Faulty(k, fault="nan")
    res = am.minimize(fun, X0, method="ipopt", backend="numpy")
    assert not res.success
    assert "invalid number" in res.message
    if k == 1:  # no finite value: x0, and fun says so
        assert math.isnan(res.fun) and np.array_equal(res.x, X0)
        return
    assert res.fun == pytest.approx(_value(res.x), rel=1e-12)
    assert res.fun <= min(fun.values) * (1.0 + 1e-6)
    assert "x is the best finite point evaluated" in res.message


# -- batched fits: the user's exception carries every member's latest point ------------------


@pytest.mark.parametrize("k", [2, 9])
def test_users_exception_from_a_batched_fit_carries_the_members_points(k):
    fun = Faulty(k, residuals=True)
    starts = np.stack([X0, X0 + 0.5])
    with pytest.raises(SimulationFailed) as info:
        am.batched_least_squares(fun, starts, backend="numpy")
    exc = info.value
    assert exc is fun.error
    x = np.asarray(exc.autominimize_best_x, dtype=np.float64)
    assert x.shape == (2, 3)
    costs = np.asarray(exc.autominimize_best_f)
    for row, cost in zip(x, costs):
        if math.isfinite(cost):
            assert 2.0 * cost == pytest.approx(_value(row), rel=1e-12)
        else:  # a member not yet evaluated keeps its start
            assert np.any(np.all(row == starts, axis=1))


def test_users_exception_from_a_batched_minimize_carries_the_members_points():
    import torch

    error, calls = SimulationFailed("diverged"), []

    def fun(x):  # mapped with torch.func.vmap: no values read on the host
        calls.append(1)
        if len(calls) == 6:
            raise error
        return torch.sum(torch.as_tensor(W) * (x - 1.0) ** 2)

    starts = torch.tensor(np.stack([X0, X0 + 0.5]))
    with pytest.raises(SimulationFailed) as info:
        am.minimize(fun, starts, method="lbfgs-native", batch=True, backend="torch")
    exc = info.value
    assert exc is error
    assert any("vmap" in note for note in exc.__notes__)
    x = np.asarray(exc.autominimize_best_x, dtype=np.float64)
    assert x.shape == (2, 3) and not hasattr(exc, "autominimize_rows")
    for row, value in zip(x, np.asarray(exc.autominimize_best_f)):
        assert value == pytest.approx(_value(row), rel=1e-12)
    assert _value(x[0]) < _value(X0)


# -- native methods: the points evaluated inside a step count ------------------------------


def _host(x):
    return np.asarray(x.detach() if hasattr(x, "detach") else x, dtype=np.float64)


@pytest.mark.parametrize("method, backend, k", [("hessian-free", "torch", 9), ("lbfgs-native", "torch", 4), ("lbfgs-native", "numpy", 9)])
def test_users_exception_in_a_native_step_carries_the_best_point_evaluated(method, backend, k):
    fun = Faulty(k, backend=backend)
    with pytest.raises(SimulationFailed) as info:
        am.minimize(fun, X0, method=method, backend=backend)
    exc = info.value
    assert exc is fun.error
    assert exc.autominimize_best_f == pytest.approx(_value(_host(exc.autominimize_best_x)), rel=1e-12)
    assert exc.autominimize_best_f <= min(fun.values) * (1.0 + 1e-6)


def test_ctrl_c_in_a_hessian_free_step_returns_the_best_point_evaluated():
    fun = Faulty(9, backend="torch")  # exact derivatives: every call is a point the method asked for
    fun.error = KeyboardInterrupt()
    res = am.minimize(fun, X0, method="hessian-free", backend="torch")
    assert res.status == -1 and not res.success and "KeyboardInterrupt" in res.message
    assert res.fun == pytest.approx(_value(_host(res.x)), rel=1e-12)
    assert res.fun <= min(fun.values) * (1.0 + 1e-6)
    assert res.fun < _value(X0)


def test_iterate_native_users_exception_carries_the_best_point():
    fun = Faulty(9)
    with pytest.raises(SimulationFailed) as info:
        for _ in am.iterate(fun, X0, method="lbfgs-native", backend="numpy"):
            pass
    assert _best_attached(info, fun) < fun.values[0]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("method", ["sgd", "lbfgs-native"])
def test_native_method_never_returns_a_nan_x(method, backend):
    fun = Faulty(1, fault="nan", backend=backend)
    res = am.minimize(fun, X0, method=method, backend=backend, options={"maxiter": 20})
    assert not res.success and math.isnan(res.fun)
    np.testing.assert_array_equal(_host(res.x), X0)
    assert "x is x0" in res.message
