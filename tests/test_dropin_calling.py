"""Peer code runs with only the import changed: the calling rule of every user function.

Written from autograd-minimize's README and its matrix-factorization example (a model with
defaulted parameters and a list x0, ``fun(*x0)``), and from scipy's habit of reading a list
of numbers as a vector.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize as so

import autominimize as am


def test_autograd_minimize_matrix_factorisation_with_defaulted_parameters():
    jnp = pytest.importorskip("jax.numpy")
    rng = np.random.default_rng(0)
    prod = rng.random((6, 2)) @ rng.random((2, 5))

    def model(U=None, V=None):  # autograd-minimize's example: called as model(*x0)
        return jnp.mean((U @ V - prod) ** 2)

    res = am.minimize(model, [rng.random((6, 2)), rng.random((2, 5))], method="L-BFGS-B")
    assert isinstance(res.x, list) and [u.shape for u in res.x] == [(6, 2), (2, 5)]
    assert res.fun < 1e-8


def test_dict_x0_with_keyword_defaults_is_spread_as_keywords():
    jnp = pytest.importorskip("jax.numpy")

    def model(U=None, V=None):
        return jnp.sum((U - 1.0) ** 2) + jnp.sum((V + 2.0) ** 2)

    res = am.minimize(model, {"U": np.zeros(2), "V": np.zeros(3)})
    np.testing.assert_allclose(res.x["U"], 1.0, atol=1e-6)
    np.testing.assert_allclose(res.x["V"], -2.0, atol=1e-6)


def test_each_constraint_gets_its_own_calling_rule():
    """fun is spread as keywords; the constraints take the structure whole."""
    jnp = pytest.importorskip("jax.numpy")

    def fun(stocks, bonds):
        return jnp.sum((stocks - 1.0) ** 2) + jnp.sum((bonds - 1.0) ** 2)

    constraints = [{"type": "ineq", "fun": lambda p: 0.5 - p["bonds"]}, so.NonlinearConstraint(lambda p: jnp.sum(p["stocks"]), -np.inf, 1.0)]
    res = am.minimize(fun, {"stocks": np.zeros(2), "bonds": np.zeros(1)}, method="SLSQP", constraints=constraints)
    assert res.success
    np.testing.assert_allclose(res.x["bonds"], [0.5], atol=1e-6)
    np.testing.assert_allclose(res.x["stocks"], [0.5, 0.5], atol=1e-6)


def test_each_derivative_gets_its_own_calling_rule():
    """fun takes the dict whole; jac and hessp are written with the keys as parameters."""

    def fun(p):
        return np.sum((p["a"] - 2.0) ** 2) + np.sum(p["b"] ** 2)

    def jac(a, b):
        return {"a": 2 * (a - 2.0), "b": 2 * b}

    def hessp(a, b, v):
        return {"a": 2 * v["a"], "b": 2 * v["b"]}

    res = am.minimize(fun, {"a": np.zeros(2), "b": np.ones(1)}, method="Newton-CG", jac=jac, hessp=hessp)
    np.testing.assert_allclose(res.x["a"], 2.0, atol=1e-6)
    assert res.nhvp > 0 and res.backend == "numpy"


def test_global_solver_constraint_takes_the_structure_whole():
    jnp = pytest.importorskip("jax.numpy")

    def fun(x, y):
        return jnp.sum((x - 1.0) ** 2) + jnp.sum((y - 1.0) ** 2)

    res = am.shgo(fun, bounds={"x": (-2.0, 2.0), "y": (-2.0, 2.0)}, constraints={"type": "ineq", "fun": lambda p: 0.25 - p["y"]})
    assert res.x["y"] == pytest.approx(0.25, abs=1e-5)
    assert res.x["x"] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("x0", [[0.0, 0.0], (0.0, 0.0), [0, 0]], ids=["list", "tuple", "ints"])
def test_a_list_of_numbers_is_a_vector_as_in_scipy(x0):
    def f(x):
        return (x - 1) @ (x - 1)

    res = am.minimize(f, x0, method="BFGS")
    expected = so.minimize(f, x0, method="BFGS")
    assert isinstance(res.x, np.ndarray) and res.x.dtype == np.float64 and res.x.shape == (2,)
    np.testing.assert_allclose(res.x, expected.x, atol=1e-6)


def test_a_list_of_numbers_is_spread_over_scalar_parameters():
    res = am.minimize(lambda a, b: (a - 1.0) ** 2 + (b + 1.0) ** 2, [0.0, 0.0], method="BFGS")
    assert isinstance(res.x, list)
    np.testing.assert_allclose(res.x, [1.0, -1.0], atol=1e-5)


def test_explicit_unpack_none_keeps_a_list_of_numbers_a_list():
    res = am.minimize(lambda p: (p[0] - 1.0) ** 2 + p[1] ** 2, [0.0, 3.0], unpack="none", method="BFGS")
    assert isinstance(res.x, list)
    np.testing.assert_allclose(res.x, [1.0, 0.0], atol=1e-5)


def test_least_squares_takes_a_list_of_numbers_as_a_vector():
    t = np.linspace(0, 1, 10)
    y = 2.0 * t + 1.0
    res = am.least_squares(lambda p: p[0] * t + p[1] - y, [0.0, 0.0])
    assert isinstance(res.x, np.ndarray)
    np.testing.assert_allclose(res.x, [2.0, 1.0], atol=1e-8)


def test_ambiguous_list_names_unpack():
    def loss(params, reg=0.1):
        return sum(np.sum(p**2) for p in params) * reg

    with pytest.raises(TypeError, match=r"can take it whole \(as 'params'\) or spread.*unpack='none'.*unpack='args'"):
        am.minimize(loss, [np.ones(2), np.ones(3)])
    res = am.minimize(loss, [np.ones(2), np.ones(3)], unpack="none", method="BFGS")
    assert res.fun == pytest.approx(0.0, abs=1e-10)
