"""Constraints written in the framework, with exact Jacobians, on every backend."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import LinearConstraint, NonlinearConstraint

import autominimize as am
from conftest import array_module

# minimize (x0-1)^2 + (x1-2.5)^2 subject to the five linear inequalities of scipy's tutorial:
# the solution (1.4, 1.7) has the first constraint active.
SOLUTION = np.array([1.4, 1.7])


def _problem(backend):
    asarray, total = array_module(backend)

    def fun(p):
        x = p["x"]
        return (x[0] - 1.0) ** 2 + (x[1] - 2.5) ** 2

    def first(p):
        x = p["x"]
        return x[0] - 2.0 * x[1] + 2.0

    def others(p):
        x = p["x"]
        return [-x[0] - 2.0 * x[1] + 6.0, -x[0] + 2.0 * x[1] + 2.0]

    return fun, first, others


@pytest.mark.parametrize("method", ["SLSQP", "trust-constr", "COBYLA", "COBYQA"])
def test_inequality_constraints_with_dict_x0(backend, method):
    fun, first, others = _problem(backend)
    constraints = [{"type": "ineq", "fun": first}, {"type": "ineq", "fun": others}]
    res = am.minimize(fun, {"x": np.array([2.0, 0.0])}, method=method, constraints=constraints, bounds={"x": (0, None)}, backend=backend, tol=1e-10)
    np.testing.assert_allclose(res.x["x"], SOLUTION, atol=1e-5)
    if method in ("SLSQP", "trust-constr") and backend != "numpy":
        assert all(c["njev"] > 0 for c in res.constraint_evaluations)


def test_equality_constraint_with_2d_x0_and_vector_output(framework):
    """autograd-minimize's torch Jacobian was not reshaped for 2-D x0."""
    asarray, total = array_module(framework)

    def fun(x):
        return total(x**2)

    def rows_sum_to_one(x):
        return total(x, 1) - 1.0 if framework != "tensorflow" else total(x, axis=1) - 1.0

    for method in ("SLSQP", "trust-constr"):
        res = am.minimize(fun, np.zeros((3, 2)), method=method, backend=framework, constraints={"type": "eq", "fun": rows_sum_to_one})
        np.testing.assert_allclose(res.x, np.full((3, 2), 0.5), atol=1e-6)


def test_nonlinear_constraint_object_and_user_jacobian():
    def fun(x):
        return x[0] + x[1]

    circle = NonlinearConstraint(lambda x: x[0] ** 2 + x[1] ** 2, -np.inf, 1.0, jac=lambda x: np.array([[2 * x[0], 2 * x[1]]]))
    # trust-constr's barrier stops at about 4e-4 from the boundary with default tolerances
    res = am.minimize(
        fun,
        np.array([0.1, 0.1]),
        method="trust-constr",
        backend="numpy",
        constraints=circle,
        jac=lambda x: np.ones(2),
        hess=lambda x: np.zeros((2, 2)),
        options={"barrier_tol": 1e-12, "gtol": 1e-12, "xtol": 1e-14},
    )
    np.testing.assert_allclose(res.x, -np.sqrt(0.5) * np.ones(2), atol=5e-5)
    assert res.constraint_evaluations[0]["njev"] > 0 and res.constraint_evaluations[0]["nhev"] > 0


def test_linear_constraint_over_the_flat_vector():
    res = am.minimize(
        lambda p: (p["a"] ** 2).sum() + p["b"] ** 2,
        {"a": np.ones(2), "b": 1.0},
        method="SLSQP",
        backend="numpy",
        constraints=LinearConstraint(np.ones((1, 3)), 3, 3),
    )
    np.testing.assert_allclose(res.x["a"], [1, 1], atol=1e-6)
    assert abs(res.x["b"] - 1) < 1e-6


def test_autograd_minimize_style_lb_ub_keys_for_trust_constr():
    res = am.minimize(
        lambda x: -(x**2).sum(),
        np.array([0.3, 0.2]),
        method="trust-constr",
        backend="jax" if True else "numpy",
        constraints={"fun": lambda x: (x**2).sum(), "lb": 0.0, "ub": 1.0, "use_autograd": True},
        bounds=(-2, 2),
    )
    assert abs((np.asarray(res.x) ** 2).sum() - 1.0) < 1e-5


@pytest.mark.parametrize(
    "constraints, message",
    [
        ({"type": "between", "fun": lambda x: x}, r"constraints\['type'\] is 'between'; use 'eq'"),
        ({"fun": 3}, r"constraints needs a callable 'fun'"),
        ({"type": "eq", "fun": lambda x: x, "jacobian": None}, r"unknown keys \['jacobian'\]"),
        ([{"type": "eq", "fun": lambda x: x}, 5], r"constraints\[1\] is a int"),
        (LinearConstraint(np.ones((1, 3)), 0, 1), r"LinearConstraint.A has 3 columns but there are 2 parameters"),
        ("x > 0", r"constraints must be a dict"),
    ],
)
def test_bad_constraints_get_clear_errors(constraints, message):
    with pytest.raises((am.ConstraintError, TypeError, ValueError), match=message):
        am.minimize(lambda x: (x**2).sum(), np.ones(2), method="SLSQP", constraints=constraints, backend="numpy")


def test_constraints_with_a_method_that_cannot_use_them_is_an_error():
    with pytest.raises(ValueError, match=r"method='l-bfgs-b' cannot handle constraints .* cobyla, cobyqa, slsqp, trust-constr"):
        am.minimize(lambda x: (x**2).sum(), np.ones(2), method="L-BFGS-B", backend="numpy", constraints={"type": "eq", "fun": lambda x: x[0]})


def test_trust_constr_uses_hvps_on_request_and_constraint_hessians(framework):
    asarray, total = array_module(framework)

    def fun(x):
        return total((x - 2.0) ** 2)

    def inside_ball(x):
        return 1.0 - total(x**2)

    for kwargs, used in (({}, "nhev"), ({"hessp": True}, "nhvp")):
        res = am.minimize(
            fun,
            np.zeros(3),
            method="trust-constr",
            backend=framework,
            constraints={"type": "ineq", "fun": inside_ball},
            options={"barrier_tol": 1e-12, "gtol": 1e-12, "xtol": 1e-14},
            **kwargs,
        )
        np.testing.assert_allclose(res.x, np.full(3, 1 / np.sqrt(3)), atol=1e-5)
        assert res[used] > 0
        assert res.constraint_evaluations[0]["nhev"] > 0  # exact constraint Hessians
