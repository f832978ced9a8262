"""Every scipy method on every backend reaches Rosenbrock's minimum with exact derivatives."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize as scipy_minimize

import autominimize as am
from conftest import ALL_BACKENDS, rosen_der, rosen_for, rosen_hess

GRADIENT_METHODS = ["CG", "BFGS", "L-BFGS-B", "TNC", "SLSQP", "trust-constr"]
HESSIAN_METHODS = ["Newton-CG", "trust-ncg", "trust-krylov", "trust-exact", "dogleg"]
FREE_METHODS = ["Nelder-Mead", "Powell", "COBYLA", "COBYQA"]


def _numpy_derivatives(method):
    """The numpy backend has no autodiff: give it hand-written derivatives."""
    kwargs = {"jac": rosen_der}
    if method in HESSIAN_METHODS or method == "trust-constr":
        kwargs["hess"] = rosen_hess
    return kwargs


@pytest.mark.parametrize("method", GRADIENT_METHODS + HESSIAN_METHODS)
def test_rosenbrock_to_1e6(backend, method):
    n = 2 if method == "dogleg" else 4
    x0 = np.array([-1.2, 1.0]) if method == "dogleg" else np.zeros(n)
    kwargs = _numpy_derivatives(method) if backend == "numpy" else {}
    options = {"maxiter": 5000} if method in ("TNC", "trust-constr") else None
    if method == "TNC":
        options = {"maxfun": 5000}
    res = am.minimize(rosen_for(backend), x0, method=method, backend=backend, tol=1e-12, options=options, **kwargs)
    np.testing.assert_allclose(res.x, np.ones(n), atol=1e-6)
    assert res.backend == backend
    assert isinstance(res.x, np.ndarray) and res.x.shape == (n,)
    assert res.nfev > 0
    if method in HESSIAN_METHODS:
        assert res.nhev + res.nhvp > 0


@pytest.mark.parametrize("method", FREE_METHODS)
def test_derivative_free_methods_compute_no_gradient(backend, method):
    # COBYLA's linear models crawl along Rosenbrock's valley: give it a bowl instead.
    fun = (
        rosen_for(backend)
        if method != "COBYLA"
        else (
            lambda x: (
                ((x - 1.0) ** 2 * [1.0, 3.0]).sum()
                if backend == "numpy"
                else rosen_for(backend)(x * 0 + 1) + ((x - 1.0) ** 2)[0] + 3 * ((x - 1.0) ** 2)[1]
            )
        )
    )
    res = am.minimize(fun, np.array([-1.2, 1.0]), method=method, backend=backend, tol=1e-10, options={"maxiter": 4000})
    np.testing.assert_allclose(res.x, np.ones(2), atol=1e-4)
    assert res.njev == 0 and res.nhev == 0 and res.nhvp == 0


def _counting(function, counts, key):
    def counted(*a):
        counts[key] += 1
        return function(*a)

    return counted


@pytest.mark.parametrize("method", ["L-BFGS-B", "BFGS", "CG", "TNC", "SLSQP", "Newton-CG", "trust-ncg", "trust-exact", "trust-constr"])
def test_counts_equal_calls_made_by_plain_scipy(method):
    """The cache and counters add no evaluation: same path, and the counts are the calls
    plain scipy makes to the same functions (counted at the functions, since scipy's own
    nhev misses one Hessian for trust-ncg)."""
    x0 = np.zeros(6)
    calls = {"f": 0, "g": 0, "h": 0}
    f, g, h = (_counting(fn, calls, k) for fn, k in ((rosen_for("numpy"), "f"), (rosen_der, "g"), (rosen_hess, "h")))
    second = method in ("Newton-CG", "trust-ncg", "trust-exact", "trust-constr")
    ref = scipy_minimize(f, x0, jac=g, method=method, **({"hess": h} if second else {}))
    res = am.minimize(rosen_for("numpy"), x0, method=method, backend="numpy", jac=rosen_der, **({"hess": rosen_hess} if second else {}))
    assert calls["f"] == res.nfev
    assert calls["g"] == res.njev
    assert calls["h"] == res.nhev
    assert res.nit == ref.nit
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-10)  # BLAS threading may round differently


@pytest.mark.skipif("jax" not in ALL_BACKENDS, reason="needs jax")
@pytest.mark.parametrize("method", ["L-BFGS-B", "BFGS", "Newton-CG"])
def test_jax_counts_equal_scipy_reference(method):
    x0 = np.zeros(6)
    extra = {"hessp": lambda x, p: rosen_hess(x) @ p} if method == "Newton-CG" else {}
    ref = scipy_minimize(lambda x: (rosen_for("numpy")(x), rosen_der(x)), x0, jac=True, method=method, **extra)
    res = am.minimize(rosen_for("jax"), x0, method=method)
    assert res.backend == "jax"
    assert (res.nfev, res.njev, res.nit) == (ref.nfev, ref.njev, ref.nit)
    if method == "Newton-CG":
        assert res.nhvp == ref.nhev


def test_custom_callable_method():
    def gradient_descent(fun, x0, args=(), jac=None, maxiter=2000, **options):
        x = np.array(x0, dtype=float)
        for _ in range(maxiter):
            x = x - 0.1 * jac(x)
        from scipy.optimize import OptimizeResult

        return OptimizeResult(x=x, fun=fun(x), success=True, nit=maxiter)

    res = am.minimize(
        lambda p: ((p["a"] - 2.0) ** 2).sum(), {"a": np.zeros(3)}, method=gradient_descent, backend="numpy", jac=lambda p: {"a": 2 * (p["a"] - 2.0)}
    )
    np.testing.assert_allclose(res.x["a"], 2.0)


def test_default_method_follows_scipy():
    f = rosen_for("numpy")
    assert am.minimize(f, np.zeros(2), jac=rosen_der).message  # BFGS
    res = am.minimize(f, np.zeros(2), jac=rosen_der, bounds=(0, 0.5))
    assert "CONVERGENCE" in res.message  # L-BFGS-B's message
    np.testing.assert_allclose(res.x[0], 0.5, atol=1e-6)


@pytest.mark.parametrize("jac", ["2-point", "3-point", False])
def test_scipy_finite_difference_schemes_count_every_evaluation(jac):
    res = am.minimize(rosen_for("numpy"), np.zeros(3), method="L-BFGS-B", backend="numpy", jac=jac)
    np.testing.assert_allclose(res.x, 1.0, atol=1e-3)
    assert res.njev == 0
    assert res.nfev >= (3 if jac == "3-point" else 2) * res.nit


@pytest.mark.parametrize("history", [True, False])
@pytest.mark.parametrize("method", ["L-BFGS-B", "BFGS", "CG", "TNC"])
def test_first_order_methods_get_value_and_gradient_from_one_call_per_point(method, history, monkeypatch):
    """scipy gets the value and the cached gradient as two functions: one compiled call per
    point, never two in a row at one point. A recorded solve gets the gradient's norm from
    the same call, and records the norm of the gradient scipy got."""
    pytest.importorskip("jax")
    from autominimize.backends import jax_backend

    points, norms = {"value_and_grad": [], "value_grad_and_norm": []}, []
    for name in points:
        original = getattr(jax_backend.JaxScalar, name)

        def counted(self, x, name=name, original=original):
            points[name].append(x.tobytes())
            out = original(self, x)
            norms.append(np.linalg.norm(out[1]))
            return out

        monkeypatch.setattr(jax_backend.JaxScalar, name, counted)
    res = am.minimize(rosen_for("jax"), np.zeros(6), method=method, backend="jax", history=history)
    called = points["value_grad_and_norm" if history else "value_and_grad"]
    assert len(called) == res.nfev == res.njev > 10 and sum(map(len, points.values())) == res.nfev
    assert all(a != b for a, b in zip(called, called[1:]))
    assert res.fun < 1e-6
    if history:
        np.testing.assert_allclose([e.grad_norm for e in res.history.evaluations], norms, rtol=1e-12)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_recorded_gradient_norms_on_jax_are_the_norms_of_the_gradients_scipy_got(precision):
    """float64 takes the norm from the compiled call, float32 on the host in float64."""
    pytest.importorskip("jax")
    res = am.minimize(rosen_for("jax"), np.zeros(6), method="L-BFGS-B", backend="jax", precision=precision)
    last = res.history.iterations[-1]
    assert np.allclose(last.x, res.x) and res.nit > 10
    np.testing.assert_allclose(last.grad_norm, np.linalg.norm(np.asarray(res.jac, dtype=np.float64)), rtol=1e-12)
    norms = res.history.column("grad_norm", of="evaluations")
    assert np.isfinite(norms).all() and len(norms) == res.nfev
