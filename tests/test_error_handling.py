"""error_handling='raise' | 'continue': what a failing evaluation does, on every method family.

The objective is Rosenbrock from (-1.2, 1), undefined where x[0] > 0.8 (it raises, or returns
NaN): every method below probes that region on its way to the minimum, which lies outside it.
Inside the region it never counts, so the best reachable point is on the edge x[0] = 0.8,
where f = 0.04.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.optimize as so

import autominimize as am

X0 = np.array([-1.2, 1.0])
EDGE = 0.8


def rosen(x):
    return 100.0 * (x[1] - x[0] ** 2) ** 2 + (1.0 - x[0]) ** 2


def raising(x):
    if x[0] > EDGE:
        raise RuntimeError("the model is undefined here")
    return rosen(x)


def nan_jax(x):
    import jax.numpy as jnp

    return jnp.where(x[0] > EDGE, jnp.nan, rosen(x))


def failed(res) -> int:
    return sum(e.kind == "failed" for e in res.history.evaluations)


@pytest.mark.parametrize(
    "method, fun, backend, best",
    [
        ("BFGS", raising, "numpy", 0.06),  # line search, finite-difference gradients
        ("BFGS", nan_jax, "jax", 0.05),  # line search, NaN from autodiff
        ("L-BFGS-B", nan_jax, "jax", 2.0),  # stops at its last good iterate (see guide)
        ("Newton-CG", nan_jax, "jax", 0.05),
        ("trust-ncg", nan_jax, "jax", 0.041),  # trust region
        ("trust-exact", raising, "numpy", 0.041),  # trust region, numerical Hessian
        ("Nelder-Mead", raising, "numpy", 0.0401),  # derivative-free
        ("COBYLA", nan_jax, "jax", 0.0402),
        ("SLSQP", raising, "numpy", 0.042),
    ],
)
def test_continue_backs_off_and_records_the_failed_points(method, fun, backend, best):
    res = am.minimize(fun, X0, method=method, backend=backend, error_handling="continue")
    assert failed(res) >= 1
    assert math.isfinite(res.fun) and res.fun < best
    assert res.x[0] <= EDGE
    assert res.fun == pytest.approx(rosen(res.x), rel=1e-12)
    f_failed = [e.f for e in res.history.evaluations if e.kind == "failed"]
    assert all(f == math.inf for f in f_failed)


@pytest.mark.parametrize("method", ["BFGS", "trust-ncg", "Nelder-Mead"])
def test_raise_is_the_default_with_the_point_and_the_best_point(method):
    with pytest.raises(RuntimeError, match="undefined here") as info:
        am.minimize(raising, X0, method=method, backend="numpy")
    assert info.value.autominimize_x[0] > EDGE
    best = info.value.autominimize_best_x
    assert best[0] <= EDGE and rosen(best) <= rosen(X0)


def test_continue_needs_a_finite_start():
    with pytest.raises(ValueError, match=r"fun is nan at x0; error_handling='continue' needs a finite value at x0"):
        am.minimize(lambda x: np.nan * x.sum(), X0, method="BFGS", backend="numpy", jac=lambda x: x, error_handling="continue")
    with pytest.raises(RuntimeError, match="undefined here"):
        am.minimize(raising, np.array([1.0, 1.0]), method="Nelder-Mead", backend="numpy", error_handling="continue")


def test_unknown_policy_is_named():
    with pytest.raises(ValueError, match=r"error_handling='ignore' is not accepted; use 'raise' \(default"):
        am.minimize(rosen, X0, backend="numpy", error_handling="ignore")


def test_failed_points_reach_the_log(tmp_path):
    path = tmp_path / "run.sqlite"
    am.minimize(raising, X0, method="Nelder-Mead", backend="numpy", error_handling="continue", log=path)
    kinds = [e.kind for e in am.read_log(path).history.evaluations]
    assert "failed" in kinds


def test_numerical_gradients_step_to_the_other_side_of_a_failing_point():
    """A finite-difference point inside the region is mirrored: the gradient at the edge is exact."""
    from autominimize import numdiff

    x = np.array([EDGE, 0.64])
    with numdiff.Evaluator(tolerate_failures=True) as evaluator:
        g, count = numdiff.approx_jacobian(raising, x, f0=raising(x), evaluator=evaluator)
    np.testing.assert_allclose(g, so.rosen_der(x), rtol=1e-5, atol=1e-5)
    assert count == 3  # two forward points, one of them mirrored
    with pytest.raises(RuntimeError, match="undefined here"):
        numdiff.approx_jacobian(raising, x, f0=raising(x))


def test_failing_constraint_counts_as_violated():
    def circle(x):
        if x[0] > 0.9:
            raise RuntimeError("constraint undefined")
        return 1.0 - x[0] ** 2 - x[1] ** 2

    res = am.minimize(
        rosen, np.array([0.0, 0.0]), method="COBYLA", backend="numpy", constraints={"type": "ineq", "fun": circle}, error_handling="continue"
    )
    assert res.success and res.x[0] <= 0.9 and circle(res.x) >= -1e-6
    with pytest.raises(RuntimeError, match="constraint undefined") as info:
        am.minimize(rosen, np.array([0.0, 0.0]), method="COBYLA", backend="numpy", constraints={"type": "ineq", "fun": circle})
    assert info.value.autominimize_x[0] > 0.9


T = np.linspace(0, 1, 20)


def decay(p):
    if p["k"] < 0.7:
        raise RuntimeError("k out of the model's range")
    return p["a"] * np.exp(-p["k"] * T) - 2.0 * np.exp(-1.5 * T)


@pytest.mark.parametrize("method", ["trf", "dogbox", "lm"])
def test_least_squares_rejects_failing_steps(method):
    res = am.least_squares(decay, {"a": 0.5, "k": 3.0}, method=method, backend="numpy", error_handling="continue")
    assert res.nfail >= 1
    assert res.x["a"] == pytest.approx(2.0, rel=1e-6) and res.x["k"] == pytest.approx(1.5, rel=1e-6)
    with pytest.raises(RuntimeError, match="out of the model's range") as info:
        am.least_squares(decay, {"a": 0.5, "k": 3.0}, method=method, backend="numpy")
    assert info.value.autominimize_x["k"] < 0.7


def test_minimize_with_a_least_squares_method_takes_the_policy():
    res = am.minimize(am.residuals(decay), {"a": 0.5, "k": 3.0}, method="trf", backend="numpy", error_handling="continue")
    assert res.nfail >= 1 and res.x["k"] == pytest.approx(1.5, rel=1e-6)


def shifted(x):
    if x[0] > 1.0:
        raise ValueError("outside")
    return float(np.sum((np.asarray(x) - 0.5) ** 2))


def test_differential_evolution_continues_pointwise_and_batched():
    res = am.differential_evolution(shifted, [(-2, 2)] * 2, rng=0, backend="numpy", error_handling="continue", polish=False)
    np.testing.assert_allclose(res.x, [0.5, 0.5], atol=1e-2)

    def nan_region(p):
        import jax.numpy as jnp

        x = p["x"]
        return jnp.where(x[0] > 1.0, jnp.nan, jnp.sum((x - 0.5) ** 2))

    res = am.differential_evolution(nan_region, {"x": [(-2, 2)] * 2}, rng=0, error_handling="continue")
    assert res.evaluation == "batched"
    np.testing.assert_allclose(res.x["x"], [0.5, 0.5], atol=1e-6)


def test_differential_evolution_raises_the_users_exception_with_the_best_point():
    with pytest.raises(ValueError, match="outside") as info:
        am.differential_evolution(shifted, [(-2, 2)] * 2, x0=np.zeros(2), rng=0, backend="numpy", updating="deferred")
    assert info.value.autominimize_x[0] > 1.0
    assert info.value.autominimize_best_x[0] <= 1.0


def test_native_methods_refuse_the_continue_policy():
    with pytest.raises(ValueError, match=r"error_handling='continue' is for scipy's methods; method='sgd'"):
        am.minimize(rosen, X0, method="sgd", backend="numpy", error_handling="continue")
