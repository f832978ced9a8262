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
