"""Bad input gets an error that names the argument and what would be accepted."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import autominimize as am
from autominimize.backends import get_backend


def quadratic(x):
    return (x**2).sum()


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"method": "newton"}, ValueError, r"method='newton' is not a scipy.optimize.minimize method; choose one of: nelder-mead"),
        ({"method": 3}, TypeError, r"method must be a string or a callable; got int"),
        ({"backend": "theano"}, ValueError, r"backend='theano' is not a known backend; use one of 'numpy', 'jax'"),
        ({"precision": "float16"}, ValueError, r"precision='float16' is not supported; use 'float64'"),
        ({"hvp_type": "sideways"}, ValueError, r"hvp_type='sideways' is not one of"),
        ({"method": "BFGS", "hess": np.eye(2)}, ValueError, r"method='bfgs' does not use second-order information"),
        ({"method": "trust-exact", "hessp": lambda x, p: p}, ValueError, r"method='trust-exact' needs the full Hessian"),
        (
            {"method": "L-BFGS-B", "options": {"maxiterations": 3}},
            ValueError,
            r"options: 'maxiterations' is not an option of any scipy.optimize.minimize method; did you mean 'maxiter'",
        ),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        am.minimize(quadratic, np.ones(2), **{"backend": "numpy", **kwargs})


@pytest.mark.parametrize(
    "x0, error, message",
    [
        ({"a": "one"}, TypeError, r"x0\['a'\] is a str; every leaf of x0 must be a number"),
        ({"a": np.array([1.0, np.nan])}, ValueError, r"x0\['a'\] contains NaN or inf \(first at index \(1,\)\)"),
        ([np.array([1 + 2j])], TypeError, r"x0\[0\] has dtype complex128; parameters must be real numbers"),
        ({}, ValueError, r"x0 has no array or number in it"),
    ],
)
def test_bad_x0(x0, error, message):
    with pytest.raises(error, match=message):
        am.minimize(lambda p: 0.0, x0, backend="numpy")


def test_non_scalar_objective_for_a_scalar_method(backend):
    with pytest.raises(ValueError, match=r"fun must return a scalar .* returned an array of shape \(3,\)"):
        am.minimize(lambda x: x * 2.0, np.ones(3), method="L-BFGS-B", backend=backend)


def test_missing_framework_names_the_extra(monkeypatch):
    import autominimize.backends as backends

    real = importlib.util.find_spec
    monkeypatch.setattr(backends, "_available", set())  # as in a process that never found jax
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real(name, *a))
    with pytest.raises(ImportError, match=r"pip install 'autominimize\[jax\]'"):
        get_backend("jax")


def test_exception_in_fun_carries_the_point():
    def fun(x):
        if x[0] > 0.5:
            raise RuntimeError("model blew up")
        return ((x - 1.0) ** 2).sum()

    with pytest.raises(RuntimeError, match="model blew up") as info:
        am.minimize(fun, {"x": np.zeros(2)}["x"], method="BFGS", backend="numpy", jac=lambda x: 2 * (x - 1.0))
    assert info.value.autominimize_x[0] > 0.5
    assert any("autominimize_x" in note for note in info.value.__notes__)


def test_structure_mismatch_in_user_jac_is_named():
    with pytest.raises(ValueError, match=r"jac does not have the structure of x0"):
        am.minimize(lambda p: (p["a"] ** 2).sum(), {"a": np.ones(2), "b": np.ones(1)}, backend="numpy", jac=lambda p: {"a": 2 * p["a"]})
