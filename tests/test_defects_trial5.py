"""Regression tests from a fifth trial of the defect classes: silent wrong answers."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ALL_BACKENDS, array_module

import autominimize as am

_COMPLEX_STEP = r"='cs' \(complex step\) is not supported: autominimize evaluates fun at real points"


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B", "CG", "SLSQP", "trust-constr"])
def test_complex_step_gradient_is_refused_rather_than_taken_as_zero(backend, method):
    # scipy's complex points reached fun as their real part: a zero gradient, success at x0
    _, total = array_module(backend)
    fun = lambda x: total((x - 1.0) ** 2)  # noqa: E731
    with pytest.raises(ValueError, match="jac" + _COMPLEX_STEP + r".*Use jac=None .*'2-point', '3-point'"):
        am.minimize(fun, np.zeros(2), jac="cs", method=method, backend=backend)
    res = am.minimize(fun, np.zeros(2), jac="3-point", method=method, backend=backend)
    np.testing.assert_allclose(np.asarray(res.x), [1.0, 1.0], atol=1e-5)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_complex_step_hessian_is_refused_rather_than_taken_as_zero(backend):
    # trust-constr took 26 iterations on a zero Hessian where scipy's complex step takes 6
    _, total = array_module(backend)
    with pytest.raises(ValueError, match="hess" + _COMPLEX_STEP + r".*Use hess=None"):
        am.minimize(lambda x: total((x - 1.0) ** 4) + total(x**2), np.zeros(2), hess="cs", method="trust-constr", backend=backend)


@pytest.mark.parametrize("entry", ["iterate", "basinhopping", "least_squares"])
def test_complex_step_is_refused_by_every_entry_point_that_takes_a_scheme(entry):
    fun = lambda x: np.sum((x - 1.0) ** 2)  # noqa: E731
    with pytest.raises(ValueError, match="jac" + _COMPLEX_STEP):
        if entry == "iterate":
            list(am.iterate(fun, np.zeros(2), jac="cs", method="BFGS"))
        elif entry == "basinhopping":
            am.basinhopping(fun, np.zeros(2), niter=1, minimizer_kwargs={"jac": "cs"})
        else:
            am.least_squares(lambda x: x - 1.0, np.zeros(2), jac="cs")


def _counted(calls: list):
    def f(x):
        calls.append(1)
        return np.sum((x - 1.0) ** 2) + np.sum(x**4)

    return f


@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B", "Nelder-Mead", "SLSQP", "trust-constr", "Newton-CG", "TNC", "Powell"])
def test_every_call_of_a_numpy_objective_is_counted_in_nfev(method):
    # choosing the backend evaluates fun at x0: that value is the solve's first, not a call
    # left out of nfev (every NumPy solve without backend= made one call more than it said)
    calls: list = []
    res = am.minimize(_counted(calls), np.zeros(3), method=method)
    assert res.success and len(calls) == res.nfev


@pytest.mark.parametrize("method", ["trf", "dogbox", "lm"])
def test_every_call_of_a_numpy_residual_or_model_is_counted_in_nfev(method):
    t = np.linspace(0, 3, 20)
    y = 2 * np.exp(-1.1 * t) + 0.3
    calls: list = []

    def model(x, a, k, c):
        calls.append(1)
        return a * np.exp(-k * x) + c

    res = am.least_squares(lambda p: model(t, *p) - y, np.ones(3), method=method)
    assert res.success and len(calls) == res.nfev
    calls.clear()
    popt, _, info, _, _ = am.curve_fit(model, t, y, p0=[1.0, 1.0, 0.0], method=method, full_output=True)
    np.testing.assert_allclose(popt, [2.0, 1.1, 0.3], rtol=1e-6)
    assert len(calls) == info["nfev"]


def test_the_value_seen_while_choosing_the_backend_is_read_once_and_only_at_x0():
    seen: list = []

    def f(x):
        seen.append(x.copy())
        return float(np.sum((x - 2.0) ** 2))

    res = am.minimize(f, np.array([0.5, 0.5]), method="Nelder-Mead")
    np.testing.assert_allclose(res.x, [2.0, 2.0], atol=1e-4)
    assert len(seen) == res.nfev and sum(np.array_equal(x, [0.5, 0.5]) for x in seen) == 1
    assert res.history.evaluations[0].f == 4.5  # the first row is the value read at x0


@pytest.mark.parametrize("method", ["trust-constr", "Newton-CG", "trust-ncg", "trust-exact", "dogleg", "trust-krylov"])
def test_curvature_on_numpy_comes_from_differences_of_the_users_gradient(method):
    # the Hessian's products came from differences of values: trust-constr made 2529
    # evaluations of rosen where scipy's differences of rosen_der take 61
    from scipy.optimize import rosen, rosen_der, rosen_hess_prod

    values, gradients = [], []
    fun = lambda x: values.append(1) or rosen(x)  # noqa: E731
    jac = lambda x: gradients.append(1) or rosen_der(x)  # noqa: E731
    res = am.minimize(fun, np.zeros(5), jac=jac, method=method)
    exact = am.minimize(
        rosen, np.zeros(5), jac=rosen_der, hessp=rosen_hess_prod, method=method if method not in ("trust-exact", "dogleg") else "trust-ncg"
    )
    assert res.success and len(values) == res.nfev <= 70 and len(gradients) == res.njev
    np.testing.assert_allclose(res.x, exact.x, atol=1e-3)
    assert res.fun <= 2e-6


def test_choosing_the_backend_evaluates_x0_clipped_into_the_bounds_where_fun_is_defined():
    # the evaluation that chose the backend was at x0 itself: math.log(-1) raised although
    # the solve starts from x0 clipped into the bounds
    import math

    with pytest.warns(UserWarning, match=r"x0 is outside the bounds at x0\[1\]"):
        res = am.minimize(lambda x: (x[0] - 3) ** 2 + math.log(x[1]), np.array([0.0, -1.0]), bounds=[(0, 5), (0.5, 5)])
    np.testing.assert_allclose(res.x, [3.0, 0.5], atol=1e-6)
    with pytest.warns(UserWarning, match=r"x0 is outside the bounds at x0\[1\]"):
        fit = am.least_squares(lambda p: np.array([p[0] - 3, math.sqrt(p[1] - 0.5)]), np.array([0.0, -1.0]), bounds=([0, 0.5], [5, 5]))
    np.testing.assert_allclose(fit.x, [3.0, 0.5], atol=1e-6)
