"""am.least_squares, residual functions in am.minimize, fun_and_jac and user Jacobians."""

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize as so
import torch

import autominimize as am

T = np.linspace(0.0, 2.0, 25)
Y = 2.5 * np.exp(-1.3 * T) + 0.3 + 0.01 * np.sin(17 * T)


def decay_np(p):
    return p["a"] * np.exp(-p["k"] * T) + p["c"] - Y


def decay_jnp(p):
    return p["a"] * jnp.exp(-p["k"] * T) + p["c"] - Y


def decay_torch(p):
    t = torch.as_tensor(T)
    return p["a"] * torch.exp(-p["k"] * t) + p["c"] - torch.as_tensor(Y)


def decay_jac(p):
    e = np.exp(-p["k"] * T)
    return np.stack([e, -p["a"] * T * e, np.ones_like(T)], axis=1)  # columns in x0's order: a, k, c


X0 = {"a": 1.0, "k": 1.0, "c": 0.0}
REFERENCE = so.least_squares(lambda v: v[0] * np.exp(-v[1] * T) + v[2] - Y, [1.0, 1.0, 0.0], method="lm", xtol=1e-14, ftol=1e-14, gtol=1e-14)


def _close_to_reference(x):
    np.testing.assert_allclose([x["a"], x["k"], x["c"]], REFERENCE.x, rtol=1e-6)


@pytest.mark.parametrize("method", ["trf", "dogbox", "lm"])
@pytest.mark.parametrize("fun", [decay_np, decay_jnp, decay_torch], ids=["numpy", "jax", "torch"])
def test_pytree_parameters_every_method_and_backend(fun, method):
    res = am.least_squares(fun, X0, method=method)
    _close_to_reference(res.x)
    assert set(res.x) == {"a", "k", "c"} and isinstance(res.x["a"], float)
    assert res.jac.shape == (T.size, 3) and res.fun.shape == (T.size,)
    np.testing.assert_allclose(res.jac, REFERENCE.jac, rtol=1e-4, atol=1e-6)
    assert res.backend == {"decay_np": "numpy", "decay_jnp": "jax", "decay_torch": "torch"}[fun.__name__]
    assert abs(res.grad["a"]) < 1e-6 and res.cost == pytest.approx(REFERENCE.cost, rel=1e-8)


def test_residual_output_may_be_any_structure_and_rows_follow_its_leaves():
    def fun(p):
        return {"fit": p["w"] * T[:3] - 1.0, "penalty": [10 * (p["w"][0] - p["b"]), p["b"]]}

    res = am.least_squares(fun, {"w": jnp.ones(3), "b": 0.5}, method="trf")
    assert res.jac.shape == (5, 4)
    # columns: w[0..2], then b (x0's own order); rows: fit (3), then the penalty list (2)
    np.testing.assert_allclose(res.jac[3], [10.0, 0.0, 0.0, -10.0], atol=1e-12)
    assert type(res.x["w"]).__module__.startswith("jax")


def test_numpy_backend_counts_every_finite_difference_evaluation():
    calls = []

    def fun(p):
        calls.append(1)
        return decay_np(p)

    res = am.least_squares(fun, X0, method="trf", backend="numpy")
    assert res.nfev == len(calls)
    assert res.njev >= 1 and res.nfev >= res.njev * 3


def test_bounds_loss_and_x_scale():
    res = am.least_squares(
        decay_jnp, X0, method="trf", bounds={"c": (0.5, None)}, loss="soft_l1", f_scale=0.1, x_scale={"a": 1.0, "k": 1.0, "c": 0.5}
    )
    assert res.x["c"] == pytest.approx(0.5) and res.active_mask.tolist() == [0, 0, -1]
    with pytest.raises(ValueError, match="'lm' does not handle bounds"):
        am.least_squares(decay_jnp, X0, method="lm", bounds=(0, 5))
    with pytest.raises(ValueError, match="not a least-squares method"):
        am.least_squares(decay_jnp, X0, method="bfgs")


def test_user_jacobian_and_fun_and_jac_override_autodiff():
    seen = []

    def jac(p):
        seen.append(1)
        return decay_jac(p)

    res = am.least_squares(decay_np, X0, jac=jac, method="lm")
    _close_to_reference(res.x)
    assert res.njev == len(seen) and res.nfev < 30  # no finite differences

    def fun_and_jac(p):
        return decay_np(p), decay_jac(p)

    res = am.least_squares(None, X0, fun_and_jac=fun_and_jac, method="trf")
    _close_to_reference(res.x)
    with pytest.raises(ValueError, match="jac= or fun_and_jac="):
        am.least_squares(decay_np, X0, jac=jac, fun_and_jac=fun_and_jac)


def test_jacobian_given_per_leaf():
    def jac(p):
        full = decay_jac(p)
        return {"a": full[:, 0], "c": full[:, 2], "k": full[:, 1]}

    _close_to_reference(am.least_squares(decay_np, X0, jac=jac, method="lm").x)


def test_difference_schemes_in_parallel_with_a_thread_pool():
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        res = am.least_squares(decay_torch, X0, jac="3-point", method="trf", executor=pool)
    _close_to_reference(res.x)
    with pytest.raises(ValueError, match="workers= and executor="):
        am.least_squares(decay_torch, X0, method="trf", workers=2)


@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B", "trust-ncg", "Newton-CG", "trust-exact", "trust-constr"])
def test_residual_function_in_minimize_scalar_methods(method):
    res = am.minimize(am.residuals(decay_torch), X0, method=method, options={"maxiter": 500})
    np.testing.assert_allclose([res.x["a"], res.x["k"], res.x["c"]], REFERENCE.x, rtol=1e-4)
    assert res.fun == pytest.approx(REFERENCE.cost, rel=1e-6)
    if method in ("trust-ncg", "Newton-CG"):
        assert res.nhvp > 0
    assert torch.is_tensor(decay_torch({"a": torch.tensor(1.0), "k": torch.tensor(1.0), "c": torch.tensor(0.0)}))


def test_gauss_newton_products_are_jt_j():
    from autominimize.problem import GaussNewtonFunctions, ResidualObjective
    from autominimize.backends import get_backend
    from autominimize.params import ParamSpec

    spec = ParamSpec.from_tree(np.zeros(3))
    vector = get_backend("jax").compile_vector(lambda v: decay_jnp({"a": v[0], "c": v[1], "k": v[2]}), spec, "float64")
    with get_backend("jax").solve_context("float64"):
        gn = GaussNewtonFunctions(None, ResidualObjective(vector, spec))
        x = np.array([1.0, 0.2, 0.9])
        J = REFERENCE.jac if False else vector.value_and_jacobian(x)[1]
        v = np.array([0.3, -1.0, 2.0])
        np.testing.assert_allclose(gn.hvp_at(x)(v), J.T @ (J @ v))
        np.testing.assert_allclose(gn.hessian(x), J.T @ J)


@pytest.mark.parametrize("method", ["trf", "lm", "dogbox"])
def test_minimize_routes_least_squares_methods(method):
    res = am.minimize(decay_jnp, X0, method=method, tol=1e-12)
    _close_to_reference(res.x)
    assert res.fun == pytest.approx(REFERENCE.cost, rel=1e-8)  # 0.5 * sum(r**2), as for scalar methods
    assert set(res.jac) == {"a", "k", "c"} and res.residual_jac.shape == (T.size, 3)
    assert res.residuals.shape == (T.size,)
    with pytest.raises(ValueError, match="options"):
        am.minimize(decay_jnp, X0, method=method, options={"maxiter": 3})


def test_one_call_site_for_both_kinds_of_solver():
    # optimagic's pattern: a scalar gradient and a residual Jacobian, chosen by the method
    fun = am.residuals(decay_np, jac=decay_jac)

    def grad(p):
        J = decay_jac(p)
        g = J.T @ decay_np(p)
        return {"a": g[0], "k": g[1], "c": g[2]}

    for method in ("lm", "trf", "BFGS", "trust-ncg"):
        res = am.minimize(fun, X0, method=method, jac=grad, tol=1e-10)
        _close_to_reference(res.x)
        assert res.fun == pytest.approx(REFERENCE.cost, rel=1e-6)
    res = am.minimize(fun, X0, method="BFGS")  # the residual Jacobian alone also gives the gradient
    _close_to_reference(res.x)


def test_fun_and_jac_for_scalar_methods():
    def value(x):
        return float(np.sum((x - 2.0) ** 2))

    def value_and_grad(x):
        return value(x), 2 * (x - 2.0)

    res = am.minimize(None, np.zeros(3), method="BFGS", fun_and_jac=value_and_grad)
    np.testing.assert_allclose(res.x, 2.0, atol=1e-6)
    res = am.minimize(value, np.zeros(3), method="SLSQP", fun_and_jac=value_and_grad)
    np.testing.assert_allclose(res.x, 2.0, atol=1e-6)
    with pytest.raises(ValueError, match="jac= or fun_and_jac="):
        am.minimize(value, np.zeros(3), jac=lambda x: x, fun_and_jac=value_and_grad)


def test_residual_marker_keeps_the_signature_and_decorates():
    @am.residuals
    def r(a, b):
        return [a - 1.0, b + 1.0]

    res = am.minimize(r, {"a": 0.0, "b": 0.0}, method="L-BFGS-B", backend="numpy")
    assert res.x["a"] == pytest.approx(1.0, abs=1e-5) and res.x["b"] == pytest.approx(-1.0, abs=1e-5)
    assert am.residuals(r) is r and repr(r).startswith("residuals(")
    with pytest.raises(ValueError, match="must return a scalar"):
        am.minimize(lambda a, b: [a - 1.0, b], {"a": 0.0, "b": 0.0}, method="BFGS", backend="numpy")


def test_callback_gets_the_structure():
    seen = []
    am.least_squares(decay_jnp, X0, method="trf", callback=lambda x: seen.append(sorted(x)))
    assert seen and seen[0] == ["a", "c", "k"]


def test_examples_run():
    import importlib.util
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1] / "examples"
    spec = importlib.util.spec_from_file_location("least_squares_fit", root / "least_squares_fit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main()
    assert out["least_squares"].x["rate"] == pytest.approx(0.7, abs=0.02)
    spec = importlib.util.spec_from_file_location("least_squares_parallel_numdiff", root / "least_squares_parallel_numdiff.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    serial, parallel = module.main(workers=2)
    np.testing.assert_array_equal(serial.x, parallel.x)
    assert serial.nfev == parallel.nfev
