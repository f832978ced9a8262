"""Regression tests from a fourth trial of the defect classes: silent wrong answers, dropped options."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FRAMEWORKS, array_module

import autominimize as am


def _float16_x0(kind: str):
    """[1, 2] as a float16 leaf of ``kind``."""
    if kind == "torch":
        import torch

        return torch.tensor([1.0, 2.0], dtype=torch.float16)
    if kind == "jax":
        import jax.numpy as jnp

        return jnp.array([1.0, 2.0], dtype=jnp.float16)
    if kind == "tensorflow":
        import tensorflow as tf

        return tf.constant([1.0, 2.0], dtype=tf.float16)
    return np.array([1.0, 2.0], dtype=np.float16)


def _squared_distance_to(kind: str, target: float):
    if kind == "tensorflow":
        import tensorflow as tf

        return lambda x: tf.reduce_sum((x - target) ** 2)
    return lambda x: ((x - target) ** 2).sum()


def _dtype_name(x) -> str:
    return str(x.dtype).replace("torch.", "").replace("<dtype: '", "").replace("'>", "")


# -- a float16 x0 is solved in floating point and returned in the precision that ran -----------


@pytest.mark.parametrize("kind", ["numpy"] + FRAMEWORKS)
def test_float16_x0_comes_back_in_the_precision_that_ran(kind):
    res = am.minimize(_squared_distance_to(kind, 0.3), _float16_x0(kind))
    assert res.precision == "float64"
    assert _dtype_name(res.x) == "float64"
    x = np.asarray(res.x)
    # 0.3 is not a float16: a float16 x would be 0.2998, 2e-4 away
    np.testing.assert_allclose(x, [0.3, 0.3], atol=1e-8)
    assert res.fun == pytest.approx(float(np.sum((x - 0.3) ** 2)), abs=1e-15)


def test_float16_leaf_in_a_dict_of_numpy_arrays_comes_back_float64_beside_a_float32_leaf():
    x0 = {"a": np.array([1.0], dtype=np.float16), "b": np.array([2.0], dtype=np.float32)}
    res = am.minimize(lambda p: ((p["a"] - 0.3) ** 2).sum() + ((p["b"] - 0.7) ** 2).sum(), x0)
    assert res.x["a"].dtype == np.float64 and res.x["b"].dtype == np.float32
    np.testing.assert_allclose(res.x["a"], [0.3], atol=1e-8)


def test_float16_x0_with_float32_precision_comes_back_float32():
    res = am.minimize(lambda x: ((x - 0.3) ** 2).sum(), np.array([1.0, 2.0], dtype=np.float16), precision="float32")
    assert res.x.dtype == np.float32
    np.testing.assert_allclose(res.x, [0.3, 0.3], atol=1e-6)


# -- trust-constr under 'continue': a point where a constraint fails is a failed point ----------


def _constraint_undefined_beyond_3(x):
    if x[0] > 3.0:
        raise RuntimeError("outside the constraint's domain")
    return 10.0 - x[0] - x[1]


@pytest.mark.parametrize("method", ["trust-constr", "SLSQP"])
@pytest.mark.parametrize("use_autograd", [True, False], ids=["backend-differences", "use_autograd-False"])
def test_constrained_methods_back_off_from_a_point_where_a_constraint_raises(method, use_autograd):
    calls = []

    def objective(x):
        calls.append(np.array(x))
        return float(np.sum((x - 5.0) ** 2))

    res = am.minimize(
        objective,
        np.zeros(2),
        method=method,
        constraints=[{"type": "ineq", "fun": _constraint_undefined_beyond_3, "use_autograd": use_autograd}],
        backend="numpy",
        error_handling="continue",
    )
    x = np.asarray(res.x)
    # the objective is lowest at (5, 5): the method is held at the edge of the constraint's domain
    assert res.success and np.isfinite(x).all() and x[0] <= 3.0 and x[0] + x[1] <= 10.0 + 1e-6
    np.testing.assert_allclose(x, [3.0, 3.0], atol=1e-5)
    assert res.fun == pytest.approx(np.sum((x - 5.0) ** 2), rel=1e-12)
    assert res.nfev == len(calls)


@pytest.mark.parametrize("backend", [b for b in FRAMEWORKS if b != "tensorflow"])
def test_trust_constr_backs_off_from_a_point_where_a_framework_constraint_is_nan(backend):
    if backend == "jax":
        import jax.numpy as xp
    else:
        import torch as xp

    def constraint(x):
        return xp.where(x[0] > 3.0, xp.nan, 10.0 - x[0] - x[1])

    res = am.minimize(
        lambda x: xp.sum((x - 5.0) ** 2),
        np.zeros(2),
        method="trust-constr",
        constraints=[{"type": "ineq", "fun": constraint}],
        backend=backend,
        error_handling="continue",
    )
    x = np.asarray(res.x, dtype=np.float64)
    assert res.success and x[0] <= 3.0
    np.testing.assert_allclose(x, [3.0, 3.0], atol=1e-5)
    assert res.fun == pytest.approx(np.sum((x - 5.0) ** 2), rel=1e-12)


# -- IPOPT's relaxed bounds: documented, and held exactly on request ---------------------------


def _rosen_for(kind: str):
    if kind == "torch":
        import torch

        return lambda x: torch.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    if kind == "jax":
        import jax.numpy as jnp

        return lambda x: jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    from scipy.optimize import rosen

    return rosen


@pytest.mark.parametrize("backend", ["numpy"] + [b for b in FRAMEWORKS if b != "tensorflow"])
def test_ipopt_ends_within_its_relaxation_of_the_bounds_and_exactly_within_them_on_request(backend):
    pytest.importorskip("cyipopt")
    from scipy.optimize import rosen

    x0, bounds = np.array([-1.2, 1.0, -0.5]), [(-2.0, 0.5)] * 3
    res = am.minimize(_rosen_for(backend), x0, method="ipopt", bounds=bounds, backend=backend)
    x = np.asarray(res.x, dtype=np.float64)
    assert res.success and x[0] == 0.5  # IPOPT's iterate moved onto the bound (honor_original_bounds)
    assert res.fun == pytest.approx(rosen(x), rel=1e-14)
    res = am.minimize(_rosen_for(backend), x0, method="ipopt", bounds=bounds, backend=backend, options={"honor_original_bounds": "no"})
    x = np.asarray(res.x, dtype=np.float64)
    assert res.success and 0.5 < x[0] <= 0.5 + 1e-8  # IPOPT's bound_relax_factor, as documented
    assert res.fun == pytest.approx(rosen(x), rel=1e-14)
    res = am.minimize(_rosen_for(backend), x0, method="ipopt", bounds=bounds, backend=backend, options={"bound_relax_factor": 0.0})
    x = np.asarray(res.x, dtype=np.float64)
    assert res.success and 0.5 - 1e-8 < x[0] <= 0.5 and x.min() >= -2.0
    assert res.fun == pytest.approx(rosen(x), rel=1e-14)
    np.testing.assert_allclose(x[1:], [0.25742574, 0.066268], atol=1e-6)


# -- the user's jitted JAX code called from a callback, inside a float64 solve ------------------


def _callback_runs(jax_loss):
    """One float64 JAX solve per family, each calling ``callback`` as its family does."""
    x0 = np.array([1.0, 2.0])
    return {
        "BFGS": lambda cb: am.minimize(jax_loss, x0, method="BFGS", callback=cb),
        "trust-constr": lambda cb: am.minimize(jax_loss, x0, method="trust-constr", callback=cb),
        "lbfgs-native": lambda cb: am.minimize(jax_loss, x0, method="lbfgs-native", callback=cb),
        "least_squares": lambda cb: am.least_squares(lambda x: x - 0.3, x0, callback=cb),
        "differential_evolution": lambda cb: am.differential_evolution(jax_loss, [(-1.0, 2.0)] * 2, maxiter=3, rng=0, polish=False, callback=cb),
        "basinhopping": lambda cb: am.basinhopping(jax_loss, x0, niter=2, rng=0, callback=cb),
    }


@pytest.mark.skipif("jax" not in FRAMEWORKS, reason="needs jax")
@pytest.mark.parametrize("family", list(_callback_runs(None)))
def test_users_jitted_jax_function_in_a_callback_gives_what_it_gives_outside(family):
    import jax
    import jax.numpy as jnp

    def loss(x):
        return jnp.sum((x - 0.3) ** 2) * jnp.float32(2.0)

    value_and_grad = jax.jit(jax.value_and_grad(loss))
    point = jnp.ones(3)
    before = value_and_grad(point)
    seen = []

    def callback(*_args, **_kwargs):
        seen.append(value_and_grad(point))

    res = _callback_runs(lambda x: jnp.sum((x - 0.3) ** 2))[family](callback)
    assert res.precision == "float64" and seen
    for value, grad in seen + [value_and_grad(point)]:
        assert value.dtype == before[0].dtype == jnp.float32 and grad.dtype == jnp.float32
        assert float(value) == float(before[0])
        np.testing.assert_array_equal(np.asarray(grad), np.asarray(before[1]))


# -- without rng, numpy's global seed makes differential evolution repeatable on either engine ---


@pytest.mark.parametrize("engine", ["scipy", "vectorized"])
def test_differential_evolution_without_rng_follows_numpys_global_seed_on_either_engine(engine):
    def sphere(x):
        return np.sum((x - 0.3) ** 2, axis=0)

    def run():
        np.random.seed(7)
        vectorized = engine == "vectorized"
        return am.differential_evolution(sphere, [(-1.0, 1.0)] * 2, maxiter=3, polish=False, vectorized=vectorized, backend="numpy")

    first, second = run(), run()
    assert first.engine == engine
    np.testing.assert_array_equal(first.x, second.x)
    np.testing.assert_array_equal(first.population, second.population)


# -- torch_device on a solve that torch does not run is refused, not dropped -------------------


@pytest.mark.parametrize("backend", ["numpy"] + [b for b in FRAMEWORKS if b != "torch"])
@pytest.mark.parametrize("entry", ["minimize", "least_squares"])
def test_torch_device_is_refused_where_torch_does_not_evaluate(entry, backend):
    sum_ = array_module(backend)[1]
    solve = am.minimize if entry == "minimize" else am.least_squares
    fun = (lambda x: sum_(x**2)) if entry == "minimize" else (lambda x: x - 1.0)
    with pytest.raises(ValueError, match=rf"torch_device='cuda:3' is where torch evaluates; this solve runs on backend='{backend}'"):
        solve(fun, np.array([-1.2, 1.0]), torch_device="cuda:3", backend=backend)
