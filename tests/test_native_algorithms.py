"""Native algorithms against the known answers of the research note §4."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.optimize as so

import autominimize as am
from autominimize.native import MaxIterations

pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402


def rosen(x):
    return 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2


def quadratic_problem(n: int = 10):
    """½xᵀAx − bᵀx with A = QΛQᵀ, Λ = 1..n (distinct eigenvalues)."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    a = q @ np.diag(np.arange(1.0, n + 1)) @ q.T
    b = rng.normal(size=n)
    return (lambda x: 0.5 * x @ (jnp.asarray(a) @ x) - jnp.asarray(b) @ x), np.linalg.solve(a, b)


@pytest.mark.parametrize("beta", ["fr", "pr", "pr+", "hs", "dy"])
def test_ncg_exact_line_search_finishes_quadratic_in_n_steps(beta):
    fun, solution = quadratic_problem()
    res = am.minimize(fun, np.zeros(10), method="cg-native", options={"beta": beta, "line_search": "exact", "gtol": 1e-10})
    assert res.success and res.nit <= 10
    assert np.abs(res.x - solution).max() < 1e-10


@pytest.mark.parametrize("memory", [1, 3, 10])
def test_lbfgs_exact_line_search_finishes_quadratic_in_n_steps(memory):
    fun, solution = quadratic_problem()
    res = am.minimize(fun, np.zeros(10), method="lbfgs-native", options={"memory": memory, "line_search": "exact", "gtol": 1e-10, "ftol": 0})
    assert res.success and res.nit <= 10
    assert np.abs(res.x - solution).max() < 1e-10


def test_lbfgs_rosenbrock_iterations_comparable_to_scipy():
    scipy_res = so.minimize(so.rosen, [-1.2, 1.0], jac=so.rosen_der, method="L-BFGS-B")
    res = am.minimize(rosen, np.array([-1.2, 1.0]), method="lbfgs-native", backend="jax")
    assert res.success, res.message
    assert np.allclose(res.x, 1.0, atol=1e-5) and res.fun < 1e-10
    assert res.nit <= 1.25 * scipy_res.nit and res.nfev <= 1.25 * scipy_res.nfev
    assert (res.nit, res.nfev, res.njev) == (35, 44, 44)
    assert res.backend == "jax" and res.precision == "float64"


def test_ncg_rosenbrock():
    res = am.minimize(rosen, np.array([-1.2, 1.0]), method="cg-native", backend="jax")
    assert res.success and np.allclose(res.x, 1.0, atol=1e-5)
    assert res.nit <= 2 * 36  # scipy CG: 36


def test_chained_rosenbrock_reaches_a_stationary_point():
    x0 = np.tile([-1.2, 1.0], 5)
    res = am.minimize(
        lambda x: (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum(), x0, method="lbfgs-native", backend="jax", options={"ftol": 0}
    )
    assert res.success and np.abs(np.asarray(res.jac)).max() <= 1e-5
    assert res.nit <= 2 * 71  # scipy L-BFGS-B: 71


@pytest.mark.parametrize(
    "bounds, x0, x_expected, f_expected",
    [((-2, 0.5), [-1.0, 1.5], [0.5, 0.25], 0.25), ((-2, 0.5), [0.2, 0.2], [0.5, 0.25], 0.25), ((0, 0.9), [-1.2, 1.0], [0.9, 0.81], 0.01)],
)
def test_bounded_lbfgs_is_right_where_torchmin_stalls(bounds, x0, x_expected, f_expected):
    """torchmin's l-bfgs-b stops at (0.5, 0.5), f = 6.5 on the first case (note pytorch_minimize §6)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "x0 is outside the bounds")
        res = am.minimize(rosen, np.array(x0), method="lbfgs-native", bounds=bounds, backend="torch")
    scipy_res = so.minimize(so.rosen, x0, jac=so.rosen_der, method="L-BFGS-B", bounds=[bounds] * 2)
    assert res.success, res.message
    assert np.allclose(res.x, x_expected, atol=1e-4) and abs(res.fun - f_expected) < 1e-6
    assert abs(res.fun - scipy_res.fun) < 1e-6


def test_hessian_free_solves_rosenbrock_as_least_squares():
    def residuals(x):
        return jnp.stack([10 * (x[1] - x[0] ** 2), 1 - x[0]])

    res = am.minimize(residuals, np.array([-1.2, 1.0]), method="hessian-free")
    assert res.success, res.message
    assert np.allclose(res.x, 1.0, atol=1e-4) and res.fun < 1e-9
    assert res.nit <= 30  # the note's HF loop: 18 outer iterations; MINPACK LM: 16 Jacobians
    assert res.nhvp > 0


def test_hessian_free_with_hessian_vector_products():
    res = am.minimize(rosen, np.array([-1.2, 1.0]), method="hessian-free", options={"curvature": "hessian"}, backend="jax")
    assert res.success and np.allclose(res.x, 1.0, atol=1e-4)


def test_hessian_free_linear_least_squares_one_step():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(20, 5)), rng.normal(size=20)
    res = am.minimize(lambda x: jnp.asarray(a) @ x - jnp.asarray(b), np.zeros(5), method="hessian-free", options={"damping": 1e-12, "maxiter": 1})
    assert np.allclose(res.x, np.linalg.lstsq(a, b, rcond=None)[0], atol=1e-8)


@pytest.mark.parametrize(
    "lr0, expected",
    [
        (0.1, [(0.9, 0.1), (0.765, 0.15), (0.612, 0.2), (0.459, 0.25), (0.3213, 0.3)]),
        (2.5, [(-1.5, 2.5), (0.375, 1.25), (0.140625, 0.625), (0.09668, 0.3125), (0.061633, 0.3625)]),
    ],
)
def test_delta_bar_delta_worked_examples(lr0, expected):
    it = am.iterate(
        lambda w: 0.5 * w**2,
        1.0,
        method="delta-bar-delta",
        jac=lambda w: w,
        backend="numpy",
        options={"lr": lr0, "kappa": 0.05, "phi": 0.5, "theta": 0.7},
        stop=MaxIterations(5),
    )
    got = [(float(s.raw.x[0]), float(s.raw.lr[0])) for s in it]
    assert np.allclose(got, expected, atol=1e-5)


def test_delta_bar_delta_without_adaptation_is_gradient_descent():
    kw = dict(backend="jax", stop=MaxIterations(20))
    dbd = [s.x for s in am.iterate(rosen, np.array([-1.2, 1.0]), method="delta-bar-delta", options={"lr": 1e-3, "kappa": 0, "phi": 0}, **kw)]
    sgd = [s.x for s in am.iterate(rosen, np.array([-1.2, 1.0]), method="sgd", options={"lr": 1e-3}, **kw)]
    assert np.allclose(dbd, sgd, atol=1e-14, rtol=0)


def test_heavy_ball_rate_on_quadratic():
    """Polyak 1964: η* = 0.230886, μ* = 0.269874 give the rate 0.519494 for m = 1, L = 10."""
    h = np.diag([1.0, 10.0])
    it = am.iterate(
        lambda x: 0.5 * x @ (jnp.asarray(h) @ x),
        np.array([1.0, 1.0]),
        method="sgd",
        options={"lr": 0.230886, "momentum": 0.269874},
        stop=MaxIterations(60),
    )
    errors = [np.linalg.norm(s.x) for s in it]
    rate = (errors[-1] / errors[29]) ** (1 / 30)
    assert abs(rate - 0.519494) < 0.02


def test_nesterov_and_classical_momentum_differ_and_converge():
    kw = dict(backend="jax", options={"lr": 0.05, "momentum": 0.9})
    cm = am.minimize(lambda x: ((x - 2.0) ** 2).sum(), np.zeros(2), method="sgd", **kw)
    nag = am.minimize(lambda x: ((x - 2.0) ** 2).sum(), np.zeros(2), method="sgd", **{**kw, "options": {**kw["options"], "nesterov": True}})
    assert cm.success and nag.success and nag.nit < cm.nit


def test_schedules():
    from autominimize.native import schedules as s

    assert s.step_decay(1.0, 10)(25) == pytest.approx(0.01)
    assert s.exponential(1.0, 0.5, min_lr=0.2)(3) == 0.2
    assert s.inverse_time(0.5, 2.0)(1) == pytest.approx(0.25)
    assert s.cosine(1.0, 10)(5) == pytest.approx(0.5)
    assert s.warmup(1.0, 4)(2) == 0.5
    assert s.sutskever_momentum(0.99)(0) == 0.5 and s.sutskever_momentum(0.9)(10**6) == 0.9
    lrs = []
    it = am.iterate(lambda x: (x**2).sum(), np.ones(2), method="sgd", backend="jax", options={"lr": s.step_decay(0.1, 2)}, stop=MaxIterations(5))
    x_prev = 1.0
    for state in it:
        x = float(state.x[0])
        lrs.append((x_prev - x) / (2 * x_prev))
        x_prev = x
    assert np.allclose(lrs, [0.1, 0.1, 0.01, 0.01, 0.001])


def logistic_problem():
    rng = np.random.default_rng(0)
    n, d, lam = 2000, 10, 1e-2
    scales = np.logspace(-0.5, 0.5, d)
    x = rng.normal(size=(n, d)) * scales
    w_true = rng.normal(size=d) / scales
    y = (x @ w_true + 0.5 * rng.normal(size=n) > 0).astype(float)

    def loss(w, batch):
        xb, yb = batch
        z = xb @ w
        return jnp.mean(jnp.logaddexp(0.0, z) - yb * z) + 0.5 * lam * jnp.sum(w * w)

    batches = [(x[i : i + 20], y[i : i + 20]) for i in range(0, n, 20)]
    return loss, batches, (x, y), lam


@pytest.mark.parametrize("method, options", [("sgd-qn", {"lam": 1e-2, "t0": 100}), ("tonga", {})])
def test_sgdqn_and_tonga_beat_plain_sgd_on_logistic_regression(method, options):
    loss, batches, full, _ = logistic_problem()
    optimum = so.minimize(
        lambda w: float(loss(w, full)), np.zeros(10), jac=lambda w: np.asarray(__import__("jax").grad(loss)(w, full)), method="L-BFGS-B"
    ).fun
    sgd = am.minimize(loss, np.zeros(10), method="sgd", data=batches, epochs=2, options={"lr": 0.1})
    res = am.minimize(loss, np.zeros(10), method=method, data=batches, epochs=2, options=options)
    assert res.success and res.nit == sgd.nit == 200 and res.epochs == 2
    gap, sgd_gap = float(loss(res.x, full)) - optimum, float(loss(sgd.x, full)) - optimum
    assert 0 <= gap < 0.5 * sgd_gap


def test_sgdqn_secant_scale_tracks_the_curvature():
    """On a noise-free diagonal quadratic r_i = h_i exactly, so B_i → 1/(λ t0 + Σ Δt h_i)."""
    h = np.array([0.5, 2.0])
    it = am.iterate(
        lambda w, b: 0.5 * (h * w**2).sum(),
        np.ones(2),
        method="sgd-qn",
        data=[None] * 40,
        backend="jax",
        options={"lam": 1.0, "t0": 1.0, "skip": 4, "clip": (0.01, 100.0)},
    )
    state = list(it)[-1].raw
    t = state.last_update
    assert np.allclose(1.0 / np.asarray(state.scale), 1.0 + t * h, rtol=1e-12)


def test_tonga_direction_is_damped_natural_gradient():
    """With γ = 1 and no truncation, v = (Σ g gᵀ + λI)⁻¹ g_last (note §3.8 test 2)."""
    rng = np.random.default_rng(2)
    batches = [rng.normal(size=4) for _ in range(6)]
    it = am.iterate(
        lambda w, b: (w * jnp.asarray(b)).sum(),
        np.zeros(4),
        method="tonga",
        data=batches,
        backend="jax",
        options={"gamma": 1.0, "b": 100, "k": 2, "damping": 0.3},
    )
    states = list(it)
    x_prev, x_last = np.asarray(states[-2].x), np.asarray(states[-1].x)
    c = sum(np.outer(b, b) for b in batches)
    assert np.allclose(x_prev - x_last, np.linalg.solve(c + 0.3 * np.eye(4), batches[-1]), atol=1e-12)


def test_hessian_free_pcg_with_the_exact_diagonal_converges_in_one_iteration():
    from autominimize.native import HessianFree

    diagonal = np.logspace(-3, 3, 7)
    g = np.linspace(1.0, 2.0, 7)
    _, p, count = HessianFree()._cg(np, lambda v: diagonal * v, g, np.zeros(7), lambda v: v / diagonal)
    assert count == 1 and np.allclose(p, -g / diagonal, rtol=1e-14)


def test_hessian_free_squared_case_gradients_are_per_case():
    """Σ_i (∇f_i)², case i the rows r[i] of every residual leaf: f_i = ½‖r_i‖², ∇f_i = J_iᵀ r_i."""
    from autominimize.backends import get_backend
    from autominimize.native.compiled import compile_functions
    from autominimize.params import ParamSpec

    rng = np.random.default_rng(2)
    a, b, y = rng.normal(size=(6, 2, 3)), rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    w = rng.normal(size=3)

    def call(w, batch):  # two leaves, 6 cases: two residuals and one residual per case
        return jnp.einsum("ikj,j->ik", a, w) - y, jnp.tanh(b @ w)

    per_case = np.einsum("ikj,ik->ij", a, np.einsum("ikj,j->ik", a, w) - y)
    t = np.tanh(b @ w)
    per_case += b * (t * (1 - t * t))[:, None]
    functions = compile_functions("jax", call, ParamSpec.from_tree(w), "float64", residual=True)
    with get_backend("jax").solve_context("float64"):
        squares = functions.squared_case_gradients(jnp.asarray(w), None)
    assert np.allclose(squares, (per_case**2).sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"preconditioner": "jacobi"}, r"preconditioner='jacobi' is not one of \(None, 'martens'\)"),
        ({"preconditioner": True}, r"preconditioner=True is not one of"),
        ({"preconditioner": "martens", "preconditioner_exponent": 1.5}, r"preconditioner_exponent=1.5 is not a number in \[0, 1\]"),
        ({"preconditioner": "martens", "preconditioner_exponent": "3/4"}, r"preconditioner_exponent='3/4'"),
    ],
)
def test_hessian_free_bad_preconditioner_options(options, match):
    with pytest.raises(ValueError, match=match):
        am.minimize(lambda x: x - 1.0, np.zeros(2), method="hessian-free", options=options)


def test_hessian_free_martens_preconditioner_needs_residuals():
    with pytest.raises(ValueError, match="preconditioner='martens' needs per-case gradients.*residuals"):
        am.minimize(rosen, np.array([-1.2, 1.0]), method="hessian-free", options={"preconditioner": "martens", "curvature": "hessian"}, backend="jax")


def test_hessian_free_martens_preconditioner_needs_cases_along_one_leading_axis():
    def residuals(x):
        return x - 1.0, (x[0] - x[1]) ** 2

    with pytest.raises(ValueError, match="leading axis of fun's residuals"):
        am.minimize(residuals, np.zeros(2), method="hessian-free", options={"preconditioner": "martens"}, backend="jax")
