"""Implicit differentiation through solves: 20 problems × JAX, torch and TensorFlow.

For each problem, the gradient of a scalar function of the solution with respect to the data
(``args``), taken by the framework through ``res.x``, must match finite differences of the
whole solve (a five-point stencil along one random direction, solves at tight tolerances).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import LinearConstraint, NonlinearConstraint

import autominimize as am

RNG = np.random.default_rng(20260)
TIGHT = {"gtol": 1e-12, "ftol": 0.0, "maxiter": 10000, "maxcor": 30}
SLSQP = {"ftol": 1e-15, "maxiter": 500}


class Ops:
    """The few array functions the problems use, in one framework."""

    def __init__(self, name: str):
        self.name = name
        if name == "jax":
            import jax.numpy as jnp

            self.const, self.sum, self.exp, self.log, self.sqrt = jnp.asarray, jnp.sum, jnp.exp, jnp.log, jnp.sqrt
            self.matvec = lambda a, x: a @ x
            self.x0 = jnp.asarray
            self.backend = "jax"
        elif name == "torch":
            import torch

            self.const = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))
            self.sum, self.exp, self.log, self.sqrt = torch.sum, torch.exp, torch.log, torch.sqrt
            self.matvec = lambda a, x: a @ x
            self.x0 = self.const
            self.backend = "torch"
        else:
            import tensorflow as tf

            self.const = lambda a: tf.constant(np.asarray(a, dtype=np.float64))
            self.sum, self.exp, self.log, self.sqrt = tf.reduce_sum, tf.exp, tf.math.log, tf.sqrt
            self.matvec = tf.linalg.matvec
            self.x0 = self.const
            self.backend = "tensorflow"


def _spd(n: int) -> np.ndarray:
    m = RNG.normal(size=(n, n))
    return m @ m.T / n + np.eye(n)


A_RIDGE, B_RIDGE = RNG.normal(size=(20, 5)), RNG.normal(size=20)
A_BIG, B_BIG = RNG.normal(size=(120, 80)), RNG.normal(size=120)
X_LOGIT = RNG.normal(size=(40, 4))
S_LOGIT = np.where(X_LOGIT @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.5 * RNG.normal(size=40) > 0, 1.0, -1.0)
T_FIT = np.linspace(0.0, 3.0, 25)
Y_FIT = 2.0 * np.exp(-1.3 * T_FIT) + 0.3 + 0.01 * np.sin(7 * T_FIT)
Q6, Q5 = _spd(6), _spd(5)
A_NNLS = RNG.normal(size=(15, 6))
B_NNLS = A_NNLS @ np.array([1.0, -1.0, 0.5, -0.5, 2.0, 0.0]) + 0.1 * RNG.normal(size=15)
E_EQ = RNG.normal(size=(2, 5))
A_LIN = RNG.normal(size=(2, 5))


def _quadratic(F, x, q, Q):
    return 0.5 * F.sum(x * F.matvec(F.const(Q), x)) - F.sum(q * x)


def _ridge(F, solver):
    def fun(x, lam, b):
        return 0.5 * F.sum((F.matvec(F.const(A_RIDGE), x) - b) ** 2) + 0.5 * lam * F.sum(x * x)

    def solve(lam, b):
        return solver(fun, F.x0(np.zeros(5)), (lam, b)).x

    return solve


def ridge(F, lam, b):
    return _ridge(F, lambda fun, x0, args: am.minimize(fun, x0, args=args, method="L-BFGS-B", options=TIGHT))(lam, b)


def ridge_native(F, lam, b):
    return _ridge(F, lambda fun, x0, args: am.minimize(fun, x0, args=args, method="lbfgs-native", tol=1e-13, options={"maxiter": 2000}))(lam, b)


def ridge_dict_conjugate_gradients(F, lam, b):
    def fun(w, lam, b):  # 80 unknowns: the backward pass runs conjugate gradients
        return 0.5 * F.sum((F.matvec(F.const(A_BIG), w) - b) ** 2) + 0.5 * lam * F.sum(w * w)

    return am.minimize(fun, {"w": F.x0(np.zeros(80))}, args=(lam, b), method="L-BFGS-B", options=TIGHT).x


def _logistic(F, w, lam, X):
    z = -F.const(S_LOGIT) * F.matvec(X, w)
    return F.sum(F.log(1.0 + F.exp(z))) + 0.5 * lam * F.sum(w * w)


def logistic(F, lam, X):
    return am.minimize(lambda w, lam, X: _logistic(F, w, lam, X), F.x0(np.zeros(4)), args=(lam, X), method="L-BFGS-B", options=TIGHT).x


def logistic_newton_cg(F, lam, X):
    return am.minimize(lambda w, lam, X: _logistic(F, w, lam, X), F.x0(np.zeros(4)), args=(lam, X), method="Newton-CG", options={"xtol": 1e-14}).x


def decay_least_squares(F, y):
    def residuals(p, y):
        return p["a"] * F.exp(-p["b"] * F.const(T_FIT)) + p["c"] - y

    tight = {"ftol": 1e-15, "xtol": 1e-15, "gtol": 1e-15}
    return am.least_squares(residuals, {"a": 1.0, "b": 1.0, "c": 0.0}, args=(y,), method="trf", backend=F.backend, **tight).x


def decay_curve_fit(F, t, y):
    def model(x, a, k, c):
        return a * F.exp(-k * x) + c

    return am.curve_fit(model, t, y, p0=[1.0, 1.0, 0.0], backend=F.backend, ftol=1e-15, xtol=1e-15, gtol=1e-15)[0]


def decay_residuals_bfgs(F, y):
    @am.residuals
    def residuals(p, y):
        return p[0] * F.exp(-p[1] * F.const(T_FIT)) + p[2] - y

    return am.minimize(residuals, F.x0(np.array([1.0, 1.0, 0.0])), args=(y,), method="BFGS", options={"gtol": 1e-12}).x


def box_qp(F, q):
    fun = lambda x, q: _quadratic(F, x, q, Q6)
    return am.minimize(fun, F.x0(np.zeros(6)), args=(q,), method="L-BFGS-B", bounds=(-0.5, 0.5), options=TIGHT).x


def box_qp_slsqp(F, q):
    fun = lambda x, q: _quadratic(F, x, q, Q6)
    return am.minimize(fun, F.x0(np.zeros(6)), args=(q,), method="SLSQP", bounds=(-0.5, 0.5), options=SLSQP).x


def nonnegative_least_squares(F, b):
    fun = lambda x, b: 0.5 * F.sum((F.matvec(F.const(A_NNLS), x) - b) ** 2)
    return am.minimize(fun, F.x0(np.ones(6)), args=(b,), method="L-BFGS-B", bounds=(0, None), options=TIGHT).x


def equality_qp(F, q, s):
    fun = lambda x, q, s: _quadratic(F, x, q, Q5)
    total = {"type": "eq", "fun": lambda x, q, s: F.sum(x) - s}
    return am.minimize(fun, F.x0(np.zeros(5)), args=(q, s), method="SLSQP", constraints=total, options=SLSQP).x


def equality_qp_two_rows(F, q, e):
    fun = lambda x, q, e: _quadratic(F, x, q, Q5)
    rows = {"type": "eq", "fun": lambda x, q, e: F.matvec(F.const(E_EQ), x) - e}
    return am.minimize(fun, F.x0(np.zeros(5)), args=(q, e), method="SLSQP", constraints=rows, options=SLSQP).x


def equality_qp_trust_constr(F, q, s):
    fun = lambda x, q, s: _quadratic(F, x, q, Q5)
    total = {"type": "eq", "fun": lambda x, q, s: F.sum(x) - s}
    options = {"gtol": 1e-13, "xtol": 1e-15, "maxiter": 5000}
    return am.minimize(fun, F.x0(np.zeros(5)), args=(q, s), method="trust-constr", constraints=total, options=options).x


def inequality_qp(F, q, u):
    fun = lambda x, q, u: _quadratic(F, x, q, Q5)
    below = {"type": "ineq", "fun": lambda x, q, u: u - x}
    return am.minimize(fun, F.x0(np.zeros(5)), args=(q, u), method="SLSQP", constraints=below, options=SLSQP).x


def linear_constraint_qp(F, q):
    fun = lambda x, q: _quadratic(F, x, q, Q5)
    rows = [LinearConstraint(A_LIN[:1], -np.inf, 0.3), LinearConstraint(A_LIN[1:], 0.2, 0.2)]
    return am.minimize(fun, F.x0(np.zeros(5)), args=(q,), method="SLSQP", constraints=rows, options=SLSQP).x


def mixed_qp(F, q, s):
    fun = lambda x, q, s: _quadratic(F, x, q, Q5)
    constraints = [{"type": "eq", "fun": lambda x, q, s: F.sum(x) - s}, {"type": "ineq", "fun": lambda x, q, s: 0.4 - x[0] - x[1]}]
    return am.minimize(fun, F.x0(np.zeros(5)), args=(q, s), method="SLSQP", bounds=(-1.0, 0.6), constraints=constraints, options=SLSQP).x


def ball_projection(F, p):  # x* = p / |p| for |p| > 1
    fun = lambda x, p: F.sum((x - p) ** 2)
    ball = {"type": "ineq", "fun": lambda x, p: 1.0 - F.sum(x * x)}
    return am.minimize(fun, F.x0(np.zeros(3)), args=(p,), method="SLSQP", constraints=ball, options=SLSQP).x


def sphere_linear(F, c, r):  # x* = -r c / |c|
    fun = lambda x, c, r: F.sum(c * x)
    sphere = {"type": "eq", "fun": lambda x, c, r: F.sum(x * x) - r * r}
    return am.minimize(fun, F.x0(-np.ones(3)), args=(c, r), method="SLSQP", constraints=sphere, options=SLSQP).x


def simplex_entropy(F, theta):  # x* = softmax(theta)
    fun = lambda x, theta: F.sum(x * F.log(x)) - F.sum(theta * x)
    total = {"type": "eq", "fun": lambda x, theta: F.sum(x) - 1.0}
    return am.minimize(fun, F.x0(np.full(4, 0.25)), args=(theta,), method="SLSQP", bounds=(1e-6, 1.0), constraints=total, options=SLSQP).x


def rosenbrock_trust_exact(F, a, b):  # x* = (a, a**2)
    fun = lambda x, a, b: (a - x[0]) ** 2 + b * (x[1] - x[0] ** 2) ** 2
    return am.minimize(fun, F.x0(np.array([0.0, 0.0])), args=(a, b), method="trust-exact", options={"gtol": 1e-13}).x


def hyperbola_nonlinear_constraint(F, p):
    fun = lambda x, p: F.sum((x - p) ** 2)
    above = NonlinearConstraint(lambda x, p: x[0] * x[1], 1.0, np.inf)
    return am.minimize(fun, F.x0(np.array([1.5, 1.5])), args=(p,), method="SLSQP", constraints=above, options=SLSQP).x


# -- exact solutions: closed forms, or Newton's method polished to rounding ---------------------
def _qp(Q, q, rows, rhs):
    """min ½xᵀQx - qᵀx subject to rows @ x = rhs (the active constraints), by its KKT system."""
    n, k = Q.shape[0], len(rhs)
    rows = np.asarray(rows, dtype=float).reshape(k, n)
    kkt = np.block([[Q, rows.T], [rows, np.zeros((k, k))]])
    return np.linalg.solve(kkt, np.concatenate([q, rhs]))[:n]


def _active(base, rows, lower, upper):
    """The rows a·x of [lower, upper] active at the base solution, with their limits."""
    picked, limits = [], []
    for a, lo, hi, index in zip(rows, lower, upper, range(len(rows))):
        value = a @ base
        for limit in (lo, hi):
            if np.isfinite(limit) and abs(value - limit) <= 1e-7:
                picked.append(index)
                limits.append(limit)
                break
    return picked, limits


def _active_qp(Q, q, base, rows, lower, upper):
    picked, limits = _active(base, rows, lower, upper)
    return _qp(Q, q, rows[picked], np.array(limits))


def _newton(gradient, hessian, x, steps=30):
    for _ in range(steps):
        x = x - np.linalg.solve(hessian(x), gradient(x))
    return x


def exact_ridge(A):
    return lambda theta, base: np.linalg.solve(A.T @ A + theta[0] * np.eye(A.shape[1]), A.T @ theta[1])


def exact_logistic(theta, base):
    lam, X = theta

    def gradient(w):
        z = -S_LOGIT * (X @ w)
        return X.T @ (-S_LOGIT / (1 + np.exp(-z))) + lam * w

    def hessian(w):
        z = -S_LOGIT * (X @ w)
        p = 1 / (1 + np.exp(-z))
        return X.T @ (X * (p * (1 - p))[:, None]) + lam * np.eye(w.size)

    return _newton(gradient, hessian, base)


def exact_decay(theta, base):
    t, y = theta if len(theta) == 2 else (T_FIT, theta[0])

    def parts(p):
        a, k, c = p
        e = np.exp(-k * t)
        return a * e + c - y, np.stack([e, -a * t * e, np.ones_like(t)], axis=1), e

    def gradient(p):
        r, J, _ = parts(p)
        return J.T @ r

    def hessian(p):
        r, J, e = parts(p)
        second = np.zeros((3, 3))
        second[0, 1] = second[1, 0] = np.sum(r * -t * e)
        second[1, 1] = np.sum(r * p[0] * t * t * e)
        return J.T @ J + second

    return _newton(gradient, hessian, base)


def exact_box(theta, base):
    return _active_qp(Q6, theta[0], base, np.eye(6), np.full(6, -0.5), np.full(6, 0.5))


def exact_nnls(theta, base):
    return _active_qp(A_NNLS.T @ A_NNLS, A_NNLS.T @ theta[0], base, np.eye(6), np.zeros(6), np.full(6, np.inf))


def exact_equality(theta, base):
    return _qp(Q5, theta[0], np.ones((1, 5)), np.array([theta[1]]))


def exact_inequality(theta, base, base_theta=None):
    q, u = theta
    picked, _ = _active(base, np.eye(5), np.full(5, -np.inf), (base_theta or theta)[1])
    return _qp(Q5, q, np.eye(5)[picked], u[picked])


def exact_linear_constraint(theta, base):
    return _active_qp(Q5, theta[0], base, A_LIN, np.array([-np.inf, 0.2]), np.array([0.3, 0.2]))


def exact_mixed(theta, base, base_theta=None):
    q, s = theta

    def limits(s):
        return np.concatenate([[s, -np.inf], np.full(5, -1.0)]), np.concatenate([[s, 0.4], np.full(5, 0.6)])

    rows = np.vstack([np.ones(5), [1.0, 1.0, 0, 0, 0], np.eye(5)])
    picked, _ = _active(base, rows, *limits((base_theta or theta)[1]))
    lower, upper = limits(s)
    rhs = [lower[i] if np.isfinite(lower[i]) and abs(rows[i] @ base - limits((base_theta or theta)[1])[0][i]) <= 1e-7 else upper[i] for i in picked]
    return _qp(Q5, q, rows[picked], np.array(rhs))


def exact_hyperbola(theta, base):  # x = (s, 1/s): Newton on the one-dimensional problem
    p = theta[0]
    s = _newton(
        lambda s: np.array([2 * (s[0] - p[0]) - 2 * (1 / s[0] - p[1]) / s[0] ** 2]),
        lambda s: np.array([[2 + 2 / s[0] ** 4 + 4 * (1 / s[0] - p[1]) / s[0] ** 3]]),
        base[:1],
    )
    return np.array([s[0], 1 / s[0]])


def exact_softmax(theta, base):
    e = np.exp(theta[0] - 1.0)
    return e / e.sum()


PROBLEMS = {
    "ridge": (ridge, (0.7, B_RIDGE), exact_ridge(A_RIDGE)),
    "ridge_native": (ridge_native, (0.7, B_RIDGE), exact_ridge(A_RIDGE)),
    "ridge_dict_conjugate_gradients": (ridge_dict_conjugate_gradients, (2.0, B_BIG), exact_ridge(A_BIG)),
    "logistic": (logistic, (0.3, X_LOGIT), exact_logistic),
    "logistic_newton_cg": (logistic_newton_cg, (0.3, X_LOGIT), exact_logistic),
    "decay_least_squares": (decay_least_squares, (Y_FIT,), exact_decay),
    "decay_curve_fit": (decay_curve_fit, (T_FIT, Y_FIT), exact_decay),
    "decay_residuals_bfgs": (decay_residuals_bfgs, (Y_FIT,), exact_decay),
    "box_qp": (box_qp, (np.array([2.0, -1.5, 0.2, 1.0, -0.1, 0.3]),), exact_box),
    "box_qp_slsqp": (box_qp_slsqp, (np.array([2.0, -1.5, 0.2, 1.0, -0.1, 0.3]),), exact_box),
    "nonnegative_least_squares": (nonnegative_least_squares, (B_NNLS,), exact_nnls),
    "equality_qp": (equality_qp, (RNG.normal(size=5), 1.5), exact_equality),
    "equality_qp_two_rows": (equality_qp_two_rows, (RNG.normal(size=5), np.array([0.3, -0.4])), lambda th, base: _qp(Q5, th[0], E_EQ, th[1])),
    "equality_qp_trust_constr": (equality_qp_trust_constr, (RNG.normal(size=5), 1.5), exact_equality),
    "inequality_qp": (inequality_qp, (np.array([1.0, 2.0, -1.0, 0.5, 3.0]), np.array([0.4, 0.4, 0.4, 5.0, 0.4])), exact_inequality),
    "linear_constraint_qp": (linear_constraint_qp, (np.array([1.0, 2.0, -1.0, 0.5, 3.0]),), exact_linear_constraint),
    "mixed_qp": (mixed_qp, (np.array([1.0, 2.0, -1.0, 0.5, 3.0]), 1.2), exact_mixed),
    "ball_projection": (ball_projection, (np.array([1.5, -1.0, 0.5]),), lambda th, base: th[0] / np.linalg.norm(th[0])),
    "sphere_linear": (sphere_linear, (np.array([1.0, 2.0, -0.5]), 1.3), lambda th, base: -th[1] * th[0] / np.linalg.norm(th[0])),
    "simplex_entropy": (simplex_entropy, (np.array([0.2, -0.3, 0.5, 0.1]),), exact_softmax),
    "rosenbrock_trust_exact": (rosenbrock_trust_exact, (1.3, 5.0), lambda th, base: np.array([th[0], th[0] ** 2])),
    "hyperbola_nonlinear_constraint": (hyperbola_nonlinear_constraint, (np.array([0.5, 0.6]),), exact_hyperbola),
}


def _weights(size: int) -> np.ndarray:
    return np.linspace(1.0, 2.0, size) * np.where(np.arange(size) % 2, -1.0, 1.0)


def _leaves(x) -> list:
    import optree

    return optree.tree_leaves(x)


def _loss(F, x):
    """weights @ (the solution's leaves, flattened in order)."""
    leaves = _leaves(x)
    sizes = [int(np.prod(tuple(getattr(leaf, "shape", ())))) for leaf in leaves]
    weights = _weights(sum(sizes))
    total, offset = 0.0, 0
    for leaf, size in zip(leaves, sizes):
        flat = __import__("tensorflow").reshape(leaf, [-1]) if F.name == "tensorflow" else leaf.reshape(-1)
        total = total + F.sum(flat * F.const(weights[offset : offset + size]))
        offset += size
    return total


def _as_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().numpy()
    if hasattr(value, "numpy"):
        return value.numpy()
    return np.asarray(value)


def _direction(theta: tuple) -> tuple:
    rng = np.random.default_rng(7)
    return tuple(rng.normal(size=np.shape(t)) for t in theta)


_BASE: dict[str, np.ndarray] = {}


def _solution(framework: str, name: str) -> np.ndarray:
    """The tested solve's solution at the base data, flat, without derivatives."""
    solve, theta, _ = PROBLEMS[name]
    F = Ops(framework)
    x = solve(F, *[F.const(t) for t in theta])
    return np.concatenate([np.ravel(_as_numpy(leaf)) for leaf in _leaves(x)])


def _reference(name: str, base: np.ndarray) -> tuple[float, np.ndarray]:
    """The exact solution at the base data, and the directional derivative of the loss by a
    five-point stencil of exact solves (closed forms, or Newton's method from the solve's point)."""
    _, theta, exact = PROBLEMS[name]
    direction = _direction(theta)
    h = 1e-3
    base_theta = tuple(np.asarray(t, dtype=float) for t in theta)
    x_exact = exact(base_theta, base)

    def loss(step: float) -> float:
        moved = tuple(np.asarray(t) + step * d for t, d in zip(theta, direction))
        x = exact(moved, x_exact, base_theta) if name in ("inequality_qp", "mixed_qp") else exact(moved, x_exact)
        return float(x @ _weights(x.size))

    return (8 * (loss(h) - loss(-h)) - (loss(2 * h) - loss(-2 * h))) / (12 * h), x_exact


def _gradient(framework: str, name: str) -> list[np.ndarray]:
    solve, theta, _ = PROBLEMS[name]
    F = Ops(framework)
    if framework == "jax":
        import jax

        with jax.enable_x64(True):
            grads = jax.grad(lambda *t: _loss(F, solve(F, *t)), argnums=tuple(range(len(theta))))(*[F.const(t) for t in theta])
            return [np.asarray(g) for g in grads]
    if framework == "torch":
        tensors = [F.const(t).requires_grad_(True) for t in theta]
        _loss(F, solve(F, *tensors)).backward()
        return [t.grad.numpy() for t in tensors]
    import tensorflow as tf

    tensors = [F.const(t) for t in theta]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        value = _loss(F, solve(F, *tensors))
    return [g.numpy() for g in tape.gradient(value, tensors)]


#: every kind of problem, on JAX and TensorFlow in every run; the other problems there are slow
#: only because each solve compiles the new objective once (torch runs them all)
CORE = ("ridge_dict_conjugate_gradients", "ridge_native", "decay_curve_fit", "box_qp", "mixed_qp", "hyperbola_nonlinear_constraint")
CASES = [
    pytest.param(name, framework, marks=() if framework == "torch" or name in CORE else pytest.mark.slow)
    for name in PROBLEMS
    for framework in ("jax", "torch", "tensorflow")
]


@pytest.mark.parametrize("name, framework", CASES)
def test_gradient_through_the_solve_matches_finite_differences(name, framework, monkeypatch):
    if name.endswith("conjugate_gradients"):
        monkeypatch.setattr("autominimize.implicit.adjoint.DENSE_LIMIT", 64)
    base = _solution("torch", name)
    expected, x_exact = _reference(name, base)
    np.testing.assert_allclose(base, x_exact, rtol=1e-6, atol=1e-7)  # the solve found the solution
    grads = _gradient(framework, name)
    _, theta, _ = PROBLEMS[name]
    direction = _direction(theta)
    directional = sum(float(np.sum(g * d)) for g, d in zip(grads, direction))
    # relative to |g| |d|, the largest a directional derivative can be (Cauchy-Schwarz)
    scale = np.sqrt(sum(float(np.sum(g * g)) for g in grads)) * np.sqrt(sum(float(np.sum(d * d)) for d in direction))
    assert abs(directional - expected) <= 1e-6 * scale


def _jax_directional(name: str) -> tuple[float, float]:
    """``jax.jvp`` of the loss along the test direction, and ``|g| |d|`` from ``jax.grad``."""
    import jax

    solve, theta, _ = PROBLEMS[name]
    F = Ops("jax")
    with jax.enable_x64(True):
        primals = tuple(F.const(t) for t in theta)
        tangents = tuple(F.const(d) for d in _direction(theta))
        loss = lambda *t: _loss(F, solve(F, *t))  # noqa: E731
        directional = float(jax.jvp(loss, primals, tangents)[1])
        grads = jax.grad(loss, argnums=tuple(range(len(theta))))(*primals)
    norm_g = np.sqrt(sum(float(np.sum(np.asarray(g) ** 2)) for g in grads))
    return directional, norm_g * np.sqrt(sum(float(np.sum(t * t)) for t in _direction(theta)))


@pytest.mark.parametrize("name", [pytest.param(name, marks=() if name in CORE else pytest.mark.slow) for name in PROBLEMS])
def test_jax_forward_mode_through_the_solve_matches_finite_differences(name, monkeypatch):
    if name.endswith("conjugate_gradients"):
        monkeypatch.setattr("autominimize.implicit.adjoint.DENSE_LIMIT", 64)
    expected, _ = _reference(name, _solution("torch", name))
    directional, scale = _jax_directional(name)
    assert abs(directional - expected) <= 1e-6 * scale


def _closed_form_loss(name: str):
    """The loss of the exact solution as a JAX function of the data (closed forms only)."""
    import jax.numpy as jnp

    if name == "sphere_linear":
        return lambda c, r: -r * c / jnp.linalg.norm(c) @ _weights(3)
    if name == "ball_projection":
        return lambda p: p / jnp.linalg.norm(p) @ _weights(3)
    if name == "simplex_entropy":
        return lambda theta: jnp.exp(theta - jnp.max(theta)) / jnp.sum(jnp.exp(theta - jnp.max(theta))) @ _weights(4)
    return lambda a, b: jnp.array([a, a**2]) @ _weights(2)


@pytest.mark.parametrize("name", ["sphere_linear", "ball_projection", "simplex_entropy", "rosenbrock_trust_exact"])
def test_jax_hessian_through_the_solve_matches_the_closed_form(name):
    """Second order: the multipliers' tangent enters the linearised system (an active
    nonlinear constraint), and reverse-over-forward equals forward-over-forward."""
    import jax

    solve, theta, _ = PROBLEMS[name]
    F = Ops("jax")
    with jax.enable_x64(True):
        primals = tuple(F.const(t) for t in theta)
        argnums = tuple(range(len(theta)))
        got = jax.hessian(lambda *t: _loss(F, solve(F, *t)), argnums=argnums)(*primals)
        forward = jax.jacfwd(jax.jacfwd(lambda *t: _loss(F, solve(F, *t)), argnums=argnums), argnums=argnums)(*primals)
        expected = jax.hessian(_closed_form_loss(name), argnums=argnums)(*primals)
    for i in argnums:
        for j in argnums:
            scale = 1.0 + np.abs(np.asarray(expected[i][j])).max()
            np.testing.assert_allclose(got[i][j], expected[i][j], atol=1e-6 * scale)
            np.testing.assert_allclose(forward[i][j], expected[i][j], atol=1e-6 * scale)
