"""Values the objective captures instead of receiving them in args: hoisted into the derivative
on JAX, refused with an error naming them on torch and TensorFlow."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf
import torch

import autominimize as am

RNG = np.random.default_rng(7)
A = RNG.normal(size=(12, 4))
B = RNG.normal(size=12)
WEIGHTS = np.array([1.0, -2.0, 0.5, 1.5])
TIGHT = {"gtol": 1e-12, "ftol": 0.0}
THETA = np.array([1.0, 0.5])


def objective(x, theta):
    """Ridge regression with a scaled target: theta = (scale, penalty)."""
    return 0.5 * jnp.sum((A @ x - theta[0] * B) ** 2) + 0.5 * theta[1] * jnp.sum(x * x)


def solve_captured(theta):
    return am.minimize(lambda x: objective(x, theta), np.zeros(4), method="L-BFGS-B", options=TIGHT).x


def central_differences(loss, theta, h=1e-5):
    """Central differences of a scalar function of the whole solve, run on concrete values."""
    steps = np.eye(theta.size) * h
    return np.array([(loss(theta + step) - loss(theta - step)) / (2 * h) for step in steps])


def fd_loss(theta):
    with jax.enable_x64(True):
        return float(solve_captured(np.asarray(theta)) @ WEIGHTS)


def test_jax_grad_jacrev_and_jit_of_a_captured_value_match_finite_differences():
    expected = central_differences(fd_loss, THETA)
    with jax.enable_x64(True):
        theta = jnp.asarray(THETA)
        loss = lambda theta: solve_captured(theta) @ WEIGHTS  # noqa: E731
        np.testing.assert_allclose(jax.grad(loss)(theta), expected, rtol=1e-5)
        np.testing.assert_allclose(jax.jit(jax.grad(loss))(theta), expected, rtol=1e-5)
        jacobian = jax.jacrev(solve_captured)(theta)
        assert jacobian.shape == (4, 2)
        np.testing.assert_allclose(WEIGHTS @ jacobian, expected, rtol=1e-5)
        exact = jax.jacfwd(lambda t: jnp.linalg.solve(A.T @ A + t[1] * jnp.eye(4), t[0] * A.T @ B))(theta)
        np.testing.assert_allclose(jacobian, exact, rtol=1e-7, atol=1e-10)


def test_jax_forward_mode_and_second_order_of_a_captured_value():
    with jax.enable_x64(True):
        theta = jnp.asarray(THETA)

        def exact(t):
            return jnp.linalg.solve(A.T @ A + t[1] * jnp.eye(4), t[0] * A.T @ B)

        np.testing.assert_allclose(jax.jacfwd(solve_captured)(theta), jax.jacfwd(exact)(theta), rtol=1e-7, atol=1e-10)
        hessian = jax.hessian(lambda t: solve_captured(t) @ WEIGHTS)(theta)
        np.testing.assert_allclose(hessian, jax.hessian(lambda t: exact(t) @ WEIGHTS)(theta), rtol=1e-6, atol=1e-9)


def test_jax_partial_and_nested_closures_are_hoisted_too():
    """A ``functools.partial``'s argument, and a value captured by a helper the objective calls."""
    expected = central_differences(fd_loss, THETA)
    with jax.enable_x64(True):

        def by_partial(theta):
            fun = functools.partial(lambda t, x: objective(x, t), theta)
            return am.minimize(fun, np.zeros(4), method="L-BFGS-B", options=TIGHT).x @ WEIGHTS

        def nested(theta):
            def penalty(x):
                return 0.5 * theta[1] * jnp.sum(x * x)

            def fun(x):
                return 0.5 * jnp.sum((A @ x - theta[0] * B) ** 2) + penalty(x)

            return am.minimize(fun, np.zeros(4), method="L-BFGS-B", options=TIGHT).x @ WEIGHTS

        np.testing.assert_allclose(jax.grad(by_partial)(jnp.asarray(THETA)), expected, rtol=1e-5)
        np.testing.assert_allclose(jax.grad(nested)(jnp.asarray(THETA)), expected, rtol=1e-5)


def test_jax_args_and_captured_values_are_differentiated_together():
    expected = central_differences(fd_loss, THETA)
    with jax.enable_x64(True):

        def loss(scale, penalty):
            fun = lambda x, penalty: objective(x["w"], jnp.stack([scale, penalty]))  # noqa: E731
            return am.minimize(fun, {"w": np.zeros(4)}, args=(penalty,), method="BFGS", options={"gtol": 1e-10}).x["w"] @ WEIGHTS

        got = jax.grad(loss, argnums=(0, 1))(THETA[0], THETA[1])
        np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_jax_least_squares_and_curve_fit_with_captured_values():
    t = np.linspace(0.0, 1.0, 15)
    y = 2.0 * np.exp(-1.3 * t) + 0.05 * np.sin(7 * t)

    def fit(shift):
        return am.least_squares(lambda p: p[0] * jnp.exp(-p[1] * t) - (y + shift * t), np.array([1.0, 1.0]), ftol=1e-15, xtol=1e-15, gtol=1e-15).x

    def fit_curve(shift):
        popt, _ = am.curve_fit(lambda x, a, k: a * jnp.exp(-k * x) - shift * x, t, y, p0=np.array([1.0, 1.0]))
        return popt

    with jax.enable_x64(True):
        expected = central_differences(lambda s: float(fit(s[0]) @ [1.0, 2.0]), np.array([0.2]))
        np.testing.assert_allclose(jax.grad(lambda s: fit(s) @ jnp.array([1.0, 2.0]))(0.2), expected[0], rtol=1e-5)
        np.testing.assert_allclose(jax.grad(lambda s: fit_curve(s) @ jnp.array([1.0, 2.0]))(0.2), expected[0], rtol=1e-5)


def test_jax_32_bit_mode_differentiates_a_captured_value_in_reverse_mode():
    """The default configuration: the solve runs in float64, the gradient comes back in float32."""
    expected = central_differences(fd_loss, THETA)
    theta = jnp.asarray(THETA, dtype=jnp.float32)
    got = jax.grad(lambda theta: solve_captured(theta) @ WEIGHTS)(theta)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(jax.jit(jax.grad(lambda theta: solve_captured(theta) @ WEIGHTS))(theta), expected, rtol=1e-5)


def test_torch_captured_value_that_requires_grad_is_refused_with_its_name():
    """Without args carrying gradients, a captured tensor that requires grad would get a
    silently zero gradient: it is an error naming it, at any depth of closures."""
    weight = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match="captures weight, a torch value.*Pass it in args, or detach it"):
        am.minimize(lambda x: ((x - weight) ** 2).sum(), np.zeros(3))

    def helper(x):
        return ((x - weight) ** 2).sum()

    with pytest.raises(ValueError, match="captures weight"):
        am.minimize(lambda x: helper(x) + x.sum(), np.zeros(3))
    with pytest.raises(ValueError, match="captures weight"):
        am.least_squares(lambda x: x - weight, np.zeros(3))
    with pytest.raises(ValueError, match="captures weight"):
        am.curve_fit(lambda t, a: a * t - weight, np.arange(4.0), np.arange(4.0), p0=[1.0])
    ring = {"type": "eq", "fun": lambda x: (x**2).sum() - weight}
    with pytest.raises(ValueError, match="a constraint captures weight"):
        am.minimize(lambda x: ((x - 1.0) ** 2).sum(), np.ones(2), method="SLSQP", constraints=ring)
    constant = weight.detach()  # a constant: the ordinary solve
    res = am.minimize(lambda x: ((x - constant) ** 2).sum(), np.zeros(3))
    np.testing.assert_allclose(res.x, 2.0, atol=1e-6)
    with torch.no_grad():
        res = am.minimize(lambda x: ((x - weight) ** 2).sum(), np.zeros(3))
    np.testing.assert_allclose(res.x, 2.0, atol=1e-6)
    assert weight.grad is None


def test_torch_captured_tensor_the_value_does_not_depend_on_takes_the_ordinary_path():
    """A parameter captured for its dtype and device only (as am.torch.function_factory does)."""
    model = torch.nn.Linear(2, 1).double()
    like = dict(model.named_parameters())
    X = torch.randn(30, 2, dtype=torch.float64)
    y = X @ torch.tensor([2.0, -1.0], dtype=torch.float64)

    def loss(w):
        w = w.to(dtype=like["weight"].dtype)
        return ((X @ w - y) ** 2).mean()

    res = am.minimize(loss, [0.0, 0.0], method="L-BFGS-B")  # a list of numbers is a vector
    np.testing.assert_allclose(res.x, [2.0, -1.0], atol=1e-5)
    with pytest.raises(ValueError, match="captures like"):
        am.minimize(lambda w: loss(w) + like["bias"].sum(), [0.0, 0.0], method="L-BFGS-B")
    res = am.least_squares(lambda w: X @ w.to(dtype=like["bias"].dtype) - y, np.zeros(2))
    np.testing.assert_allclose(res.x, [2.0, -1.0], atol=1e-6)


def test_tensorflow_captured_trainable_variable_under_a_tape_is_refused():
    weight = tf.Variable(2.0, dtype=tf.float64)
    fun = lambda x: tf.reduce_sum((x - weight) ** 2)  # noqa: E731
    with tf.GradientTape(), pytest.raises(ValueError, match="captures weight, a tensorflow value"):
        am.minimize(fun, np.zeros(3))
    res = am.minimize(fun, np.zeros(3))  # no tape records: the ordinary solve
    np.testing.assert_allclose(res.x, 2.0, atol=1e-6)


def test_jax_captured_value_with_bounds_and_the_functions_that_would_receive_it():
    """Active bounds get zero sensitivity as with args; a constraint that would receive the
    hoisted values (it receives args), or captures a tracer itself, is an error asking for args."""
    with jax.enable_x64(True):

        def solve(theta):
            fun = lambda x: jnp.sum((x - theta * jnp.array([1.0, -1.0, 2.0])) ** 2)  # noqa: E731
            return am.minimize(fun, np.zeros(3), method="L-BFGS-B", bounds=(-0.5, None), options=TIGHT).x

        np.testing.assert_allclose(jax.jacrev(solve)(1.0), [1.0, 0.0, 2.0], atol=1e-9)  # x = (theta, -0.5, 2 theta)

        def constrained(theta, constraint):
            fun = lambda x: jnp.sum((x - theta) ** 2)  # noqa: E731
            return am.minimize(fun, np.ones(2), method="SLSQP", constraints=constraint(theta)).x.sum()

        with pytest.raises(ValueError, match="constraint function receives args"):
            jax.grad(constrained, argnums=0)(0.3, lambda theta: {"type": "eq", "fun": lambda x: jnp.sum(x) - 1.0})
        with pytest.raises(ValueError, match="a constraint captures theta"):
            jax.grad(constrained, argnums=0)(0.3, lambda theta: {"type": "eq", "fun": lambda x: jnp.sum(x) - theta})


def _sum_fixed(args, framework):
    """An SLSQP solve of min |w|² with w₀ + w₁ = a₀, a passed in the constraint's own args."""
    sq = {"jax": jnp.sum, "torch": torch.sum, "tensorflow": tf.reduce_sum}[framework]
    constraints = [{"type": "ineq", "fun": lambda w: w[0] + 10.0}, {"type": "eq", "fun": lambda w, a: w[0] + w[1] - a[0], "args": args}]
    return am.minimize(lambda w: sq(w**2), np.ones(2), method="SLSQP", constraints=constraints)


@pytest.mark.parametrize("framework", ["jax", "torch", "tensorflow"])
def test_a_differentiable_value_in_a_constraints_own_args_is_refused_by_its_place(framework):
    message = (
        r"minimize: constraints\[1\]\['args'\] holds a "
        + framework
        + r" value to differentiate with respect to, but a constraint's own args are constants"
    )
    if framework == "jax":
        with pytest.raises(ValueError, match=message):
            jax.grad(lambda a: _sum_fixed((a,), "jax").x[0])(jnp.array([2.0]))
    elif framework == "torch":
        with pytest.raises(ValueError, match=message):
            _sum_fixed((torch.tensor([2.0], dtype=torch.float64, requires_grad=True),), "torch")
    else:
        with tf.GradientTape(), pytest.raises(ValueError, match=message):
            _sum_fixed((tf.Variable([2.0], dtype=tf.float64),), "tensorflow")
    constant = {"jax": jnp.array([2.0]), "torch": torch.tensor([2.0], dtype=torch.float64), "tensorflow": tf.constant([2.0], dtype=tf.float64)}
    np.testing.assert_allclose(np.asarray(_sum_fixed((constant[framework],), framework).x), [1.0, 1.0], atol=1e-6)
