"""``am.minimize(..., method='lbfgs-native', batch=True)``: stacked problems in one batched L-BFGS."""

from __future__ import annotations

import numpy as np
import pytest

import autominimize as am

pytest.importorskip("jax")
torch = pytest.importorskip("torch")

BACKENDS = ["jax", "torch"]
STARTS = np.random.default_rng(0).uniform(-2.0, 2.0, size=(1000, 2))


def rosen(x):
    return 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2


@pytest.fixture(scope="module", params=BACKENDS)
def thousand(request):
    backend = request.param
    return backend, am.minimize(rosen, STARTS, method="lbfgs-native", batch=True, backend=backend)


def test_thousand_starts_all_reach_the_minimum(thousand):
    backend, res = thousand
    assert res.backend == backend and res.precision == "float64"
    assert res.x.shape == (1000, 2) and isinstance(res.x, np.ndarray)
    for field in ("fun", "nit", "nfev", "njev", "success", "status"):
        assert res[field].shape == (1000,), field
    assert res.success.all() and (res.status == 0).all()
    assert res.message.startswith("1000 problems: ") and "gtol" in res.message
    # gtol = 1e-5 stops three in four; ftol = 2.2e-9 (scipy's defaults) the rest, among them
    # one slow crawl along the valley (Armijo steps, curvature pairs skipped) that stops at
    # f = 2.8e-6, |x − 1| = 3.3e-3.
    assert np.median(res.fun) < 1e-12 and res.fun.max() < 1e-5
    assert np.abs(res.x - 1.0).max() < 5e-3
    assert np.mean(np.abs(res.x - 1.0).max(axis=1) < 1e-4) > 0.99
    assert np.array_equal(res.nfev, res.njev)


def test_members_stop_on_their_own(thousand):
    _, res = thousand
    # a member stops after its own number of iterations, not the batch's
    assert len(np.unique(res.nit)) > 20
    assert res.nit.min() < 20 < 100 < res.nit.max()
    assert (res.nfev > res.nit).all()  # one evaluation at x0, one or more per iteration


def test_without_ftol_every_member_meets_gtol(thousand):
    backend, _ = thousand
    res = am.minimize(rosen, STARTS[:50], method="lbfgs-native", batch=True, backend=backend, options={"ftol": 0})
    assert res.message == "50 problems: 50 gradient norm <= gtol"
    # ‖g‖∞ ≤ 1e-5 and Rosenbrock's Hessian at (1, 1) has smallest eigenvalue 0.3994, so
    # ‖x − 1‖ ≲ √2·1e-5 / 0.3994 ≈ 3.5e-5
    assert np.abs(res.x - 1.0).max() < 4e-5
    assert np.abs(res.jac).max() <= 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_member_is_the_unbatched_armijo_solve(thousand, backend):
    """Member i runs the arithmetic of am.minimize(x0[i], options={'line_search': 'armijo'}).

    torch evaluates each operation eagerly, so the iterates are bit for bit the same; JAX
    compiles the batched step with XLA, which may fuse operations (e.g. into FMAs), so x
    agrees to rounding (measured ≤ 2e-11 over 100 members) while nit and nfev are equal.
    """
    res = thousand[1] if thousand[0] == backend else am.minimize(rosen, STARTS, method="lbfgs-native", batch=True, backend=backend)
    for i in range(25):
        single = am.minimize(rosen, STARTS[i], method="lbfgs-native", backend=backend, options={"line_search": "armijo"})
        assert (single.nit, single.nfev, single.status) == (res.nit[i], res.nfev[i], res.status[i]), i
        if backend == "torch":
            assert np.array_equal(single.x, res.x[i]) and single.fun == res.fun[i]
        else:
            assert np.abs(single.x - res.x[i]).max() < 1e-9


def test_members_agree_with_the_default_strong_wolfe_solve():
    """Both stop at ‖g‖∞ ≤ 1e-5 or at a relative reduction ≤ 2.2e-9 with f < 1e-10, where
    f ≥ ½·0.3994·‖x − 1‖² bounds the distance to the minimum by √(2·1e-10/0.3994) ≈ 2.2e-5
    near it; far along a slow crawl the ftol stop is looser, so the two may differ by up to
    the 5e-3 of the batch test. On these starts they agree within 1e-4."""
    res = am.minimize(rosen, STARTS[:40], method="lbfgs-native", batch=True, backend="jax")
    for i in range(40):
        single = am.minimize(rosen, STARTS[i], method="lbfgs-native", backend="jax")
        assert single.success and np.abs(single.x - res.x[i]).max() < 1e-4, i


def test_structured_torch_parameters_and_float32():
    x0 = {"w": torch.tensor(STARTS[:8]), "c": torch.zeros(8, dtype=torch.float32)}
    res = am.minimize(lambda w, c: rosen(w) + (c - 2) ** 2, x0, method="lbfgs-native", batch=True)
    assert res.backend == "torch" and isinstance(res.x["w"], torch.Tensor)
    assert res.x["w"].shape == (8, 2) and res.x["w"].dtype == torch.float64
    assert res.x["c"].shape == (8,) and res.x["c"].dtype == torch.float32
    assert res.success.all() and np.allclose(res.x["c"].numpy(), 2.0, atol=1e-4)
    low = am.minimize(rosen, STARTS[:4], method="lbfgs-native", batch=True, backend="jax", precision="float32")
    assert low.precision == "float32" and low.success.all() and np.abs(low.x - 1.0).max() < 1e-5


def test_bounds_give_the_projected_solve_of_each_member():
    x0 = STARTS[:6] * 0.2  # inside the box
    res = am.minimize(rosen, x0, method="lbfgs-native", batch=True, backend="torch", bounds=(-2, 0.5))
    assert res.success.all() and np.allclose(res.x, [0.5, 0.25], atol=1e-4)
    for i in range(6):
        single = am.minimize(rosen, x0[i], method="lbfgs-native", backend="torch", bounds=(-2, 0.5))
        assert single.nit == res.nit[i] and np.array_equal(single.x, res.x[i])
    with pytest.warns(UserWarning, match="2 of the 2 starting points are outside the bounds"):
        am.minimize(rosen, np.array([[3.0, 0.0], [0.0, -3.0]]), method="lbfgs-native", batch=True, backend="jax", bounds=(-2, 2))


def test_budgets_and_already_converged_members():
    x0 = np.array([[1.0, 1.0], [-1.2, 1.0]])
    res = am.minimize(rosen, x0, method="lbfgs-native", batch=True, backend="jax", options={"maxiter": 5})
    assert res.nit.tolist() == [0, 5] and res.success.tolist() == [True, False] and res.status.tolist() == [0, 1]
    assert res.nfev[0] == 1 and res.message == "2 problems: 1 gradient norm <= gtol, 1 maximum number of iterations reached"
    assert np.array_equal(res.x[0], [1.0, 1.0])
    res = am.minimize(rosen, x0, method="lbfgs-native", batch=True, backend="jax", options={"maxfev": 10})
    assert res.nfev[1] >= 10 and res.status[1] == 1 and "function evaluations" in res.message


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"method": "cg-native"}, ValueError, "lbfgs-native' only"),
        ({"backend": "numpy"}, ValueError, "JAX or torch"),
        ({"callback": print}, ValueError, "does not take callback"),
        ({"options": {"line_search": "strong-wolfe"}}, ValueError, "Armijo"),
        ({"options": {"stop": None}}, TypeError, "no option 'stop'"),
    ],
)
def test_clear_errors(kwargs, error, match):
    kwargs = {"method": "lbfgs-native", "backend": "jax", **kwargs}
    with pytest.raises(error, match=match):
        am.minimize(rosen, STARTS[:3], batch=True, **kwargs)


def test_leaves_need_the_batch_axis():
    with pytest.raises(ValueError, match="first axis of every leaf"):
        am.minimize(lambda p: rosen(p["x"]) + p["s"] ** 2, {"x": STARTS[:3], "s": 1.0}, method="lbfgs-native", batch=True, backend="jax")
    with pytest.raises(ValueError, match="first axis of every leaf"):
        am.minimize(lambda p: rosen(p["x"]) + p["s"].sum(), {"x": STARTS[:3], "s": np.zeros(4)}, method="lbfgs-native", batch=True, backend="jax")
