"""Regression tests from a comparison with scipy.optimize: silent wrong answers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize as so
from conftest import ALL_BACKENDS, array_module

import autominimize as am

pytest.importorskip("cyipopt")

_TARGET = np.array([-1.0, 2.0, 0.5])


def _ipopt_problem(backend):
    asarray, total = array_module(backend)
    target = asarray(_TARGET)
    calls = []

    def fun(x):
        calls.append(1)
        return total((x - target) ** 2)

    return fun, calls


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_ipopt_returns_a_point_inside_the_bounds_with_its_own_value_and_gradient(backend):
    # IPOPT relaxes the bounds by 1e-8 and returned x = [-1e-8, 1 + 1e-8, ...]: sqrt(x) was NaN
    fun, calls = _ipopt_problem(backend)
    res = am.minimize(fun, [0.5] * 3, method="ipopt", bounds=[(0, 1)] * 3, backend=backend)
    x = np.asarray(res.x)
    assert res.success
    assert (x >= 0.0).all() and (x <= 1.0).all()
    assert np.isfinite(np.sqrt(x)).all()
    np.testing.assert_array_equal(x[:2], [0.0, 1.0])
    assert res.fun == float(np.sum((x - _TARGET) ** 2))
    np.testing.assert_allclose(np.asarray(res.jac), 2 * (x - _TARGET), atol=1e-6)  # NumPy's by differences
    if backend == "numpy":
        assert res.nfev == len(calls)
    np.testing.assert_allclose(res.mult_x_L, [2.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(res.mult_x_U, [0.0, 2.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_ipopt_relaxed_bounds_stay_available_and_report_their_own_value(backend):
    fun, _ = _ipopt_problem(backend)
    res = am.minimize(fun, [0.5] * 3, method="ipopt", bounds=[(0, 1)] * 3, backend=backend, options={"honor_original_bounds": "no"})
    x = np.asarray(res.x)
    assert x[0] < 0.0 and x[1] > 1.0
    assert res.fun == pytest.approx(float(np.sum((x - _TARGET) ** 2)), rel=1e-15)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_ipopt_constraint_values_are_those_of_the_returned_point(backend):
    asarray, total = array_module(backend)
    target = asarray(_TARGET)
    constraint = {"type": "ineq", "fun": lambda x: 3.0 - total(x)}
    res = am.minimize(lambda x: total((x - target) ** 2), [0.5] * 3, method="ipopt", bounds=[(0, 1)] * 3, constraints=[constraint], backend=backend)
    x = np.asarray(res.x)
    assert (x >= 0.0).all() and (x <= 1.0).all()
    np.testing.assert_array_equal(res.constr[0], [3.0 - np.sum(x)])
    assert res.fun == float(np.sum((x - _TARGET) ** 2))


# -- a scipy-style fun(x, *args) with a list of numbers for x0 ----------------------------------


def _shifted(x, *args):
    x = np.asarray(x, dtype=np.float64)
    return float(np.sum((x - _TARGET) ** 2)) + sum(args)


def _counting(*a):
    return _shifted(*a)


@pytest.mark.parametrize("fun", [_shifted, _counting], ids=["fun(x, *args)", "fun(*a)"])
@pytest.mark.parametrize("x0", [[0.0, 0.5, 1.0], (0, 1, 1)], ids=["float list", "int tuple"])
@pytest.mark.parametrize("args", [(), (1.5,)])
def test_a_list_of_numbers_is_a_vector_for_a_function_taking_star_args(fun, x0, args):
    # spread as fun(0.0, 0.5, 1.0): x[0] alone was solved, x = [1.0, 0.5, 1.0] with success
    res = am.minimize(fun, x0, args=args, method="BFGS")
    reference = so.minimize(fun, x0, args=args, method="BFGS")
    assert isinstance(res.x, np.ndarray) and res.x.dtype == np.float64
    np.testing.assert_allclose(res.x, _TARGET, atol=1e-6)
    np.testing.assert_allclose(res.x, reference.x, atol=1e-6)
    assert res.fun == pytest.approx(sum(args), abs=1e-10)
    assert (res.nit, res.nfev) == (reference.nit, reference.nfev)


def test_a_list_of_arrays_is_still_spread_over_star_args():
    res = am.minimize(lambda *p: sum(float(np.sum((v - 1.0) ** 2)) for v in p), [np.zeros(2), np.zeros(3)], method="BFGS")
    assert [np.shape(v) for v in res.x] == [(2,), (3,)]
    np.testing.assert_allclose(np.concatenate(res.x), np.ones(5), atol=1e-6)


# -- method='lm' with infinite bounds, scipy's own default --------------------------------------

_T = np.linspace(0.0, 1.0, 12)


def _decay(t, a, b, c):
    return a * np.exp(-b * t) + c


@pytest.mark.parametrize("bounds", [(-np.inf, np.inf), ([-np.inf] * 3, [np.inf] * 3), so.Bounds(-np.inf, np.inf)], ids=["scalars", "lists", "Bounds"])
def test_lm_takes_infinite_bounds_as_scipy_does(bounds):
    # refused as "method='lm' does not handle bounds" where scipy solves
    y = _decay(_T, 2.0, 1.3, 0.1)
    popt, _ = am.curve_fit(_decay, _T, y, p0=[1.0, 1.0, 0.0], method="lm", bounds=bounds)
    np.testing.assert_allclose(popt, so.curve_fit(_decay, _T, y, p0=[1.0, 1.0, 0.0], method="lm", bounds=bounds)[0], rtol=1e-8)
    res = am.least_squares(lambda p: _decay(_T, *p) - y, [1.0, 1.0, 0.0], method="lm", bounds=bounds)
    np.testing.assert_allclose(res.x, [2.0, 1.3, 0.1], rtol=1e-8)
    with pytest.raises(ValueError, match="method='lm' does not handle bounds"):
        am.least_squares(lambda p: _decay(_T, *p) - y, [1.0, 1.0, 0.0], method="lm", bounds=(0.0, np.inf))


# -- the gradient reported at a fixed variable (lower bound = upper bound) ----------------------


def _chain(x, np_=np):
    c = np_.asarray(_TARGET) if np_ is np else _TARGET
    return ((x - c) ** 2).sum() + 0.5 * ((x[1:] - x[:-1] ** 2) ** 2).sum()


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("method", ["L-BFGS-B", "SLSQP"])
def test_the_gradient_at_a_fixed_variable_is_not_reported_as_zero(backend, method):
    # NumPy's differences cannot step at x[0] (lb = ub) and took its derivative as 0.0 in res.jac
    # (scipy: nan); the backends that differentiate report it, -1.87
    asarray, total = array_module(backend)
    target = asarray(_TARGET)
    bounds = [(0.3, 0.3), (0.0, 3.0), (-1.0, 1.0)]
    res = am.minimize(
        lambda x: total((x - target) ** 2) + 0.5 * total((x[1:] - x[:-1] ** 2) ** 2),
        np.array([0.3, 0.5, 1.0]),
        method=method,
        bounds=bounds,
        backend=backend,
    )
    x, jac = np.asarray(res.x, dtype=np.float64), np.asarray(res.jac, dtype=np.float64)
    assert x[0] == 0.3
    exact = 2 * (x[0] - _TARGET[0]) - 2 * x[0] * (x[1] - x[0] ** 2)
    if backend == "numpy":
        assert np.isnan(jac[0]) and np.isnan(so.minimize(_chain, np.array([0.3, 0.5, 1.0]), method=method, bounds=bounds).jac[0])
    else:
        assert jac[0] == pytest.approx(exact, rel=1e-6)
    np.testing.assert_allclose(jac[1:], 0.0, atol=1e-3)
