"""The MGH test set: every problem solved by trf and lm on JAX and torch, Jacobians vs finite differences."""

import numpy as np
import pytest

import autominimize as am
from autominimize import numdiff
from autominimize.testing import mgh

PROBLEMS = list(mgh.PROBLEMS)


def test_the_set_is_large_and_matches_its_starting_values():
    assert len(PROBLEMS) >= 20
    for problem in mgh.PROBLEMS.values():
        r = problem.residuals(problem.x0)
        assert r.shape == (problem.m,) and problem.x0.shape == (problem.n,)
    assert mgh.get("rosenbrock").f(np.array([-1.2, 1.0])) == pytest.approx(24.2)
    assert mgh.get("wood").f(mgh.get("wood").x0) == pytest.approx(19192.0)
    with pytest.raises(KeyError, match="no MGH problem"):
        mgh.get("nope")


@pytest.mark.parametrize("backend", ["jax", "torch"])
@pytest.mark.parametrize("method", ["trf", "lm"])
@pytest.mark.parametrize("name", PROBLEMS)
def test_solved_to_the_known_optimum(name, method, backend):
    problem = mgh.get(name)
    res = am.least_squares(problem.residuals, problem.x0, method=method, backend=backend, ftol=1e-12, xtol=1e-12, gtol=1e-12, max_nfev=5000)
    assert res.backend == backend
    assert problem.is_solved(2 * res.cost), (2 * res.cost, problem.fstar, problem.local_fstar)
    assert problem.f(res.x) == pytest.approx(2 * res.cost, rel=1e-9, abs=1e-20)


@pytest.mark.parametrize("backend", ["jax", "torch"])
@pytest.mark.parametrize("name", PROBLEMS)
def test_jacobian_equals_finite_differences(name, backend):
    problem = mgh.get(name)
    x = problem.x0 + 0.1  # away from the symmetric start, where some terms vanish
    check = am.check_grad(problem.residuals, x, backend=backend)
    numerical, _ = numdiff.approx_jacobian(problem.residuals, x, method="central")
    scale = np.maximum(np.abs(numerical), 1.0)
    assert np.all(np.abs(check.derivative - numerical) <= 1e-6 * scale)


@pytest.mark.parametrize("name", ["rosenbrock", "helical_valley", "bard", "watson6", "penalty2", "chebyquad7"])
def test_tensorflow_differentiates_the_same_code(name):
    problem = mgh.get(name)
    res = am.least_squares(problem.residuals, problem.x0, method="lm", backend="tensorflow", ftol=1e-12, xtol=1e-12, gtol=1e-12)
    assert problem.is_solved(2 * res.cost)
    assert am.check_grad(problem.residuals, problem.x0 + 0.1, backend="tensorflow", rtol=1e-6).ok
