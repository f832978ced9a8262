"""Regression tests from a third trial of the defect classes: silent wrong answers, lost best points."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FRAMEWORKS

import autominimize as am

NATIVE_BACKENDS = ["numpy"] + [b for b in FRAMEWORKS if b != "tensorflow"]


def _undefined_beyond_3(backend: str):
    """sum((x - 5)^2), NaN wherever x[0] > 3, written in the backend's own operations (JAX and
    torch give a zero gradient there: the NaN branch is a constant)."""
    if backend == "torch":
        import torch

        return lambda x: torch.where(x[0] > 3.0, torch.nan, torch.sum((x - 5.0) ** 2))
    if backend == "jax":
        import jax.numpy as jnp

        return lambda x: jnp.where(x[0] > 3.0, jnp.nan, jnp.sum((x - 5.0) ** 2))
    return lambda x: np.nan if x[0] > 3.0 else float(np.sum((x - 5.0) ** 2))


# -- a native method that ends where fun is NaN is never a success ----------------------------


@pytest.mark.parametrize("backend", NATIVE_BACKENDS)
@pytest.mark.parametrize("method", ["sgd", "delta-bar-delta", "sgd-qn"])
def test_native_method_ending_where_fun_is_not_finite_returns_the_best_finite_point(backend, method):
    res = am.minimize(_undefined_beyond_3(backend), np.zeros(2), method=method, backend=backend, options={"maxiter": 200})
    x = np.asarray(res.x, dtype=np.float64)
    assert not res.success
    assert np.isfinite(x).all() and x[0] <= 3.0
    assert res.fun == pytest.approx(np.sum((x - 5.0) ** 2), rel=1e-6)
    assert "not finite" in res.message


@pytest.mark.parametrize("method", ["sgd", "delta-bar-delta", "sgd-qn", "tonga"])
def test_native_first_order_history_pairs_each_value_with_its_point(method):
    res = am.minimize(lambda x: float(np.sum((x - 1.0) ** 2)), np.zeros(2), method=method, backend="numpy", options={"maxiter": 6})
    iterations = res.history.iterations
    assert len(iterations) == 6
    for it in iterations:
        assert it.f == pytest.approx(np.sum((it.x - 1.0) ** 2), rel=1e-6)


# -- Ctrl-C in a native run: nothing is evaluated after it, x is the best point ----------------


@pytest.mark.parametrize("method", ["sgd", "lbfgs-native", "cg-native", "delta-bar-delta"])
def test_ctrl_c_in_a_native_run_returns_the_best_point_without_evaluating_again(method):
    from scipy.optimize import rosen, rosen_der

    values = []

    def fun(x):
        if len(values) == 8:
            values.append(None)
            raise KeyboardInterrupt
        if len(values) > 8:
            raise AssertionError("fun was called after the interrupt")
        values.append(float(rosen(x)))
        return values[-1]

    options = {"lr": 1e-3} if method == "sgd" else None
    res = am.minimize(fun, np.array([-1.2, 1.0]), jac=rosen_der, method=method, backend="numpy", options=options)
    assert res.status == -1 and not res.success
    assert res.fun == min(v for v in values if v is not None)
    assert res.fun == rosen(np.asarray(res.x))


# -- least squares: an error the method itself raises still carries the best point -------------


@pytest.mark.parametrize("method", ["trf", "dogbox"])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_least_squares_error_from_the_method_carries_the_best_point(method):
    costs = []

    def residuals(x):  # NaN beyond x[0] = 3: the finite-difference Jacobian there holds NaN
        r = np.full(2, np.nan) if x[0] > 3.0 else x - 5.0
        costs.append(0.5 * float(r @ r))
        return r

    with pytest.raises((ValueError, np.linalg.LinAlgError)) as caught:
        am.least_squares(residuals, np.zeros(2), method=method, backend="numpy")
    best = np.asarray(caught.value.autominimize_best_x)
    assert 0.5 * np.sum((best - 5.0) ** 2) == pytest.approx(np.nanmin(costs))
    assert np.nanmin(costs) < 25.0  # it moved from x0


# -- a solve called under torch.inference_mode works as it does under torch.no_grad ------------

needs_torch = pytest.mark.skipif("torch" not in FRAMEWORKS, reason="needs torch")


@needs_torch
@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
@pytest.mark.parametrize(
    "solve",
    [
        lambda f, x0: am.minimize(f, x0, method="BFGS").x,
        lambda f, x0: am.minimize(f, x0, method="trust-exact").x,
        lambda f, x0: am.minimize(f, x0, method="lbfgs-native").x,
        lambda f, x0: am.least_squares(lambda x: x - 1.0, x0).x,
    ],
    ids=["BFGS", "trust-exact", "lbfgs-native", "least_squares"],
)
def test_torch_solve_under_a_no_grad_mode_of_the_caller(mode, solve):
    import torch

    with getattr(torch, mode)():
        x = solve(lambda x: torch.sum((x - 1.0) ** 2), torch.zeros(2, dtype=torch.float64))
        assert torch.is_inference_mode_enabled() == (mode == "inference_mode") and not torch.is_grad_enabled()
    np.testing.assert_allclose(np.asarray(x), [1.0, 1.0], atol=1e-6)


# -- finite differences of a constraint stay within the bounds, as scipy's do ---------------------


@pytest.mark.parametrize("method", ["SLSQP", "trust-constr"])  # IPOPT itself relaxes the bounds by 1e-8
@pytest.mark.parametrize("use_autograd", [True, False], ids=["backend-differences", "use_autograd-False"])
def test_constraint_finite_differences_stay_within_the_bounds(method, use_autograd):
    def constraint(x):  # defined on the box only: the solution lies on its edge x[0] = 1
        if x[0] > 1.0:
            raise ValueError("the constraint was evaluated outside the bounds")
        return np.sqrt(1.0 - x[0]) + 1.0 - x[1]

    res = am.minimize(
        lambda x: float(np.sum((x - 2.0) ** 2)),
        np.zeros(2),
        method=method,
        bounds=[(0.0, 1.0), (0.0, 1.0)],
        constraints=[{"type": "ineq", "fun": constraint, "use_autograd": use_autograd}],
        backend="numpy",
    )
    np.testing.assert_allclose(np.asarray(res.x), [1.0, 1.0], atol=2e-3)


@pytest.mark.parametrize("method", ["SLSQP", "ipopt"])
def test_continue_mirrors_a_failing_finite_difference_point_of_a_constraint(method):
    def constraint(x):  # raises beyond x[0] = 3, where the method's last iterates sit
        if x[0] > 3.0:
            raise RuntimeError("outside the constraint's domain")
        return 10.0 - x[0] - x[1]

    res = am.minimize(
        lambda x: float(np.sum((x - 5.0) ** 2)),
        np.zeros(2),
        method=method,
        constraints=[{"type": "ineq", "fun": constraint}],
        backend="numpy",
        error_handling="continue",
    )
    x = np.asarray(res.x)
    assert np.isfinite(x).all() and x[0] <= 3.0
    assert res.fun == pytest.approx(np.sum((x - 5.0) ** 2))


# -- a global run whose answer is not finite is never a success --------------------------------


def _nan_beyond_half(backend: str):
    if backend == "jax":
        import jax.numpy as jnp

        return lambda x: jnp.where(x[0] > 0.5, jnp.nan, jnp.sum((x - 1.0) ** 2))
    return lambda x: np.nan if x[0] > 0.5 else float(np.sum((x - 1.0) ** 2))


GLOBAL_SOLVES = {
    "differential_evolution": lambda f, backend: am.differential_evolution(f, [(-2.0, 2.0)] * 2, seed=0, backend=backend),
    "dual_annealing": lambda f, backend: am.dual_annealing(f, [(-2.0, 2.0)] * 2, seed=0, backend=backend),
    "direct": lambda f, backend: am.direct(f, [(-2.0, 2.0)] * 2, backend=backend),
    "shgo": lambda f, backend: am.shgo(f, [(-2.0, 2.0)] * 2, backend=backend),
    "multistart": lambda f, backend: am.multistart(f, [(-2.0, 2.0)] * 2, rng=0, backend=backend),
}


@pytest.mark.parametrize("backend", ["numpy"] + [b for b in FRAMEWORKS if b == "jax"])
@pytest.mark.parametrize("solver", list(GLOBAL_SOLVES))
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_global_answer_is_finite_or_not_a_success(solver, backend):
    res = GLOBAL_SOLVES[solver](_nan_beyond_half(backend), backend)
    x = np.asarray(res.x, dtype=np.float64)
    assert np.isfinite(x).all() and np.isfinite(res.fun)
    assert res.fun == pytest.approx(np.sum((x - 1.0) ** 2), rel=1e-9)
    assert x[0] <= 0.5


@pytest.mark.parametrize("solver", list(GLOBAL_SOLVES))
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_global_run_ending_at_minus_infinity_is_not_a_success(solver):
    res = GLOBAL_SOLVES[solver](lambda x: -np.inf if x[0] > 0.5 else float(np.sum((x - 1.0) ** 2)), "numpy")
    assert not res.success
    x = np.asarray(res.x, dtype=np.float64)
    assert np.isfinite(x).all()
    if np.isfinite(res.fun):
        assert res.fun == pytest.approx(np.sum((x - 1.0) ** 2), rel=1e-9)


# -- captured values a compiled function holds: a list of numbers, a default argument -------------

COMPILING = [b for b in FRAMEWORKS if b in ("jax", "tensorflow")]


def _ops(backend: str):
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.sum, lambda v: jnp.asarray(np.asarray(v, dtype=np.float64))
    import tensorflow as tf

    return tf.reduce_sum, lambda v: tf.constant(np.asarray(v, dtype=np.float64))


def _solve_x(fun, backend):
    return np.asarray(am.minimize(fun, np.zeros(2), method="BFGS", backend=backend).x)


@pytest.mark.parametrize("backend", COMPILING)
def test_a_captured_list_of_numbers_changed_between_solves_is_read_again(backend):
    total, asarray = _ops(backend)
    target = [1.0, 2.0]

    def fun(x):
        return total((x - asarray(target)) ** 2)

    np.testing.assert_allclose(_solve_x(fun, backend), [1.0, 2.0], atol=1e-5)
    target[0] = 5.0
    np.testing.assert_allclose(_solve_x(fun, backend), [5.0, 2.0], atol=1e-5)


@pytest.mark.parametrize("backend", COMPILING)
def test_a_default_argument_changed_between_solves_is_read_again(backend):
    total, asarray = _ops(backend)
    target = np.array([1.0, 2.0])

    def fun(x, t=target):
        return total((x - asarray(t)) ** 2)

    np.testing.assert_allclose(_solve_x(fun, backend), [1.0, 2.0], atol=1e-5)
    target[:] = [5.0, 6.0]
    np.testing.assert_allclose(_solve_x(fun, backend), [5.0, 6.0], atol=1e-5)


@pytest.mark.parametrize("backend", COMPILING)
def test_a_list_the_objective_writes_into_is_not_a_constant(backend):
    total, asarray = _ops(backend)
    traces, calls = [0], []

    def fun(x):
        traces[0] += 1
        calls.append(1)
        return total((x - 1.0) ** 2)

    _solve_x(fun, backend)
    traced = traces[0]
    _solve_x(fun, backend)
    assert traces[0] == traced  # the counters it keeps compile nothing again


# -- a JAX objective without a gradient path is an error, as on torch and TensorFlow ----------------

needs_jax = pytest.mark.skipif("jax" not in FRAMEWORKS, reason="needs jax")


@needs_jax
@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B", "trust-exact", "Newton-CG", "SLSQP"])
@pytest.mark.parametrize("history", [True, False])
def test_jax_objective_through_stop_gradient_is_refused(method, history):
    import jax
    import jax.numpy as jnp

    with pytest.raises(ValueError, match=r"fun's output carries no gradient with respect to the parameters.*stop_gradient"):
        am.minimize(lambda x: jnp.sum((jax.lax.stop_gradient(x) - 1.0) ** 2), np.zeros(2), method=method, backend="jax", history=history)


@needs_jax
def test_jax_objective_with_a_zero_gradient_at_x0_still_solves():
    import jax.numpy as jnp

    res = am.minimize(lambda x: jnp.sum((x - 1.0) ** 2), np.ones(2), method="BFGS", backend="jax")
    assert res.success and res.nit == 0
    np.testing.assert_array_equal(np.asarray(res.x), [1.0, 1.0])


@needs_jax
@pytest.mark.parametrize("method", ["lbfgs-native", "cg-native", "sgd", "hessian-free"])
def test_jax_objective_through_stop_gradient_is_refused_by_the_native_methods(method):
    import jax
    import jax.numpy as jnp

    with pytest.raises(ValueError, match=r"fun's output carries no gradient with respect to the parameters.*stop_gradient"):
        am.minimize(lambda x: jnp.sum((jax.lax.stop_gradient(x) - 1.0) ** 2), np.zeros(2), method=method, backend="jax")


@needs_jax
@pytest.mark.parametrize("method", ["trf", "dogbox", "lm"])
def test_jax_residuals_through_stop_gradient_are_refused(method):
    import jax

    with pytest.raises(ValueError, match=r"output carries no gradient with respect to the parameters.*stop_gradient"):
        am.least_squares(lambda x: jax.lax.stop_gradient(x) - 1.0, np.zeros(2), method=method, backend="jax")
