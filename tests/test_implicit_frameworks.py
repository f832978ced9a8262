"""Implicit differentiation: the framework transformations, the detection rule, counts and failures."""

from __future__ import annotations

import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf
import torch

import autominimize as am
from autominimize.implicit import ImplicitDifferentiationWarning, differentiable_framework

RNG = np.random.default_rng(3)
A = RNG.normal(size=(12, 4))
B = RNG.normal(size=12)
WEIGHTS = np.array([1.0, -2.0, 0.5, 1.5])
TIGHT = {"gtol": 1e-12, "ftol": 0.0}


def ridge_jax(x, lam, b):
    return 0.5 * jnp.sum((A @ x - b) ** 2) + 0.5 * lam * jnp.sum(x * x)


def ridge_closed(lam, b):
    return jnp.linalg.solve(A.T @ A + lam * jnp.eye(4), A.T @ b)


def solve_jax(lam, b):
    return am.minimize(ridge_jax, np.zeros(4), args=(lam, b), method="L-BFGS-B", options=TIGHT).x


def test_jax_grad_jit_vmap_and_jacrev_agree_with_the_closed_form():
    with jax.enable_x64(True):
        b = jnp.asarray(B)
        loss = lambda lam, b: solve_jax(lam, b) @ WEIGHTS  # noqa: E731
        expected = jax.grad(lambda lam, b: ridge_closed(lam, b) @ WEIGHTS, argnums=(0, 1))(0.5, b)
        got = jax.grad(loss, argnums=(0, 1))(0.5, b)
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(got[1], expected[1], rtol=1e-6, atol=1e-9)
        jitted = jax.jit(jax.grad(loss))(0.5, b)
        np.testing.assert_allclose(jitted, expected[0], rtol=1e-6, atol=1e-9)
        lams = jnp.array([0.1, 0.5, 2.0])
        batched = jax.vmap(jax.grad(loss), in_axes=(0, None))(lams, b)
        one_by_one = [jax.grad(lambda lam: ridge_closed(lam, b) @ WEIGHTS)(lam) for lam in lams]
        np.testing.assert_allclose(batched, one_by_one, rtol=1e-6, atol=1e-9)
        jacobian = jax.jacrev(lambda lam: solve_jax(lam, b))(0.5)
        np.testing.assert_allclose(jacobian, jax.jacrev(lambda lam: ridge_closed(lam, b))(0.5), rtol=1e-6, atol=1e-9)


def test_jax_forward_mode_and_second_order_agree_with_the_closed_form():
    """64-bit JAX: jvp, jacfwd (under jit and vmap), hessian and res.fun's derivatives."""
    with jax.enable_x64(True):
        b = jnp.asarray(B)
        np.testing.assert_allclose(jax.jacfwd(solve_jax)(0.5, b), jax.jacfwd(ridge_closed)(0.5, b), rtol=1e-6, atol=1e-9)
        jacobian_b = jax.jit(jax.jacfwd(solve_jax, argnums=1))(0.5, b)
        np.testing.assert_allclose(jacobian_b, jax.jacfwd(ridge_closed, argnums=1)(0.5, b), rtol=1e-6, atol=1e-9)
        tangent = jax.jvp(solve_jax, (0.5, b), (1.0, b))[1]
        np.testing.assert_allclose(tangent, jax.jvp(ridge_closed, (0.5, b), (1.0, b))[1], rtol=1e-6, atol=1e-9)
        lams = jnp.array([0.1, 2.0])
        batched = jax.vmap(jax.jacfwd(solve_jax), in_axes=(0, None))(lams, b)
        np.testing.assert_allclose(batched, [jax.jacfwd(ridge_closed)(lam, b) for lam in lams], rtol=1e-6, atol=1e-9)
        loss = lambda lam: solve_jax(lam, b) @ WEIGHTS  # noqa: E731
        expected = jax.hessian(lambda lam: ridge_closed(lam, b) @ WEIGHTS)(0.5)
        np.testing.assert_allclose(jax.hessian(loss)(0.5), expected, rtol=1e-6)
        np.testing.assert_allclose(jax.jacfwd(jax.jacfwd(loss))(0.5), expected, rtol=1e-6)

        def value(lam):
            return am.minimize(ridge_jax, np.zeros(4), args=(lam, b), method="L-BFGS-B", options=TIGHT).fun

        exact_value = lambda lam: ridge_jax(ridge_closed(lam, b), lam, b)  # noqa: E731
        np.testing.assert_allclose(jax.jacfwd(value)(0.5), jax.grad(exact_value)(0.5), rtol=1e-7)
        np.testing.assert_allclose(jax.hessian(value)(0.5), jax.hessian(exact_value)(0.5), rtol=1e-6)


def test_jax_one_factorisation_serves_every_column():
    """jacrev over the 4 components of x: one Hessian (4 products), four linear solves."""
    with jax.enable_x64(True):
        results = []

        def solve(lam):
            res = am.minimize(ridge_jax, np.zeros(4), args=(lam, jnp.asarray(B)), method="L-BFGS-B", options=TIGHT)
            results.append(res)
            return res.x

        jax.jacrev(solve)(0.5)
        assert results[-1].implicit_nhvp == 4 and results[-1].implicit_nbackward == 4


def test_jax_32_bit_mode_is_reverse_mode():
    """Without 64-bit JAX, grad works through the solve; forward mode is refused by JAX."""
    b = jnp.asarray(B, dtype=jnp.float32)
    loss = lambda lam: solve_jax(lam, b) @ WEIGHTS  # noqa: E731
    expected = jax.grad(lambda lam: ridge_closed(lam, b) @ WEIGHTS)(0.5)
    np.testing.assert_allclose(jax.grad(loss)(0.5), expected, rtol=1e-4)
    value = lambda lam: am.minimize(ridge_jax, np.zeros(4), args=(lam, b), method="L-BFGS-B", options=TIGHT).fun  # noqa: E731
    np.testing.assert_allclose(jax.grad(value)(0.5), 0.5 * jnp.sum(ridge_closed(0.5, b) ** 2), rtol=1e-4)  # envelope theorem
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jacfwd(loss)(0.5)


def test_jax_x0_built_inside_jit_and_dict_structure():
    def fun(p, lam, b):
        return ridge_jax(jnp.concatenate([p["head"], p["tail"]]), lam, b)

    def loss(lam):
        x0 = {"head": jnp.zeros(1), "tail": jnp.zeros(3)}
        res = am.minimize(fun, x0, args=(lam, jnp.asarray(B)), method="BFGS", options={"gtol": 1e-11})
        assert set(res.x) == {"head", "tail"} and res.x["tail"].shape == (3,)
        return jnp.concatenate([res.x["head"], res.x["tail"]]) @ WEIGHTS

    with jax.enable_x64(True):
        expected = jax.grad(lambda lam: ridge_closed(lam, jnp.asarray(B)) @ WEIGHTS)(0.5)
        np.testing.assert_allclose(jax.jit(jax.grad(loss))(0.5), expected, rtol=1e-7)


def test_torch_backward_fills_grad_and_keeps_x0_structure():
    At = torch.as_tensor(A)

    def ridge(p, lam, b):
        x = torch.cat([p["w"], p["c"].reshape(1)])
        return 0.5 * torch.sum((At @ x - b) ** 2) + 0.5 * lam * torch.sum(x * x)

    lam = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    b = torch.as_tensor(B).requires_grad_(True)
    x0 = {"w": torch.zeros(3, dtype=torch.float64), "c": torch.tensor(0.0, dtype=torch.float64)}
    res = am.minimize(ridge, x0, args=(lam, b), method="L-BFGS-B", options=TIGHT)
    assert isinstance(res.x["w"], torch.Tensor) and res.x["c"].shape == () and res.success
    (torch.cat([res.x["w"], res.x["c"].reshape(1)]) @ torch.as_tensor(WEIGHTS)).backward()
    with jax.enable_x64(True):
        expected = jax.grad(lambda lam, b: ridge_closed(lam, b) @ WEIGHTS, argnums=(0, 1))(0.5, jnp.asarray(B))
    np.testing.assert_allclose(lam.grad.numpy(), expected[0], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(b.grad.numpy(), expected[1], rtol=1e-6, atol=1e-9)
    assert res.implicit_nbackward == 1 and res.implicit_nhvp == 4  # the dense 4 x 4 Hessian


def test_torch_first_order_only():
    lam = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    At = torch.as_tensor(A)
    res = am.minimize(
        lambda x, lam: 0.5 * torch.sum((At @ x - torch.as_tensor(B)) ** 2) + lam * torch.sum(x * x), np.zeros(4), args=(lam,), method="BFGS"
    )
    (grad,) = torch.autograd.grad(res.x.sum(), lam, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad"):
        torch.autograd.grad(grad, lam)


def test_tensorflow_tape_gradient_with_a_variable():
    At = tf.constant(A)

    def ridge(x, lam, b):
        return 0.5 * tf.reduce_sum((tf.linalg.matvec(At, x) - b) ** 2) + 0.5 * lam * tf.reduce_sum(x * x)

    lam = tf.Variable(0.5, dtype=tf.float64)
    b = tf.constant(B)
    with tf.GradientTape() as tape:
        tape.watch(b)
        res = am.minimize(ridge, np.zeros(4), args=(lam, b), method="L-BFGS-B", options=TIGHT)
        loss = tf.tensordot(res.x, tf.constant(WEIGHTS), 1)
    got = tape.gradient(loss, [lam, b])
    with jax.enable_x64(True):
        expected = jax.grad(lambda lam, b: ridge_closed(lam, b) @ WEIGHTS, argnums=(0, 1))(0.5, jnp.asarray(B))
    np.testing.assert_allclose(got[0].numpy(), expected[0], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(got[1].numpy(), expected[1], rtol=1e-6, atol=1e-9)


def test_tensorflow_inside_a_tf_function():
    At = tf.constant(A)

    def ridge(x, lam, b):
        return 0.5 * tf.reduce_sum((tf.linalg.matvec(At, x) - b) ** 2) + 0.5 * lam * tf.reduce_sum(x * x)

    @tf.function
    def gradient(lam, b):
        with tf.GradientTape() as tape:
            tape.watch([lam, b])
            res = am.minimize(ridge, np.zeros(4), args=(lam, b), method="L-BFGS-B", options=TIGHT)
            loss = tf.tensordot(res.x, tf.constant(WEIGHTS), 1)
        return tape.gradient(loss, [lam, b])

    got = gradient(tf.constant(0.5, dtype=tf.float64), tf.constant(B))
    with jax.enable_x64(True):
        expected = jax.grad(lambda lam, b: ridge_closed(lam, b) @ WEIGHTS, argnums=(0, 1))(0.5, jnp.asarray(B))
    np.testing.assert_allclose(got[0].numpy(), expected[0], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(got[1].numpy(), expected[1], rtol=1e-6, atol=1e-9)


def test_detection_rule():
    assert differentiable_framework((np.ones(2), 1.0)) is None
    assert differentiable_framework((torch.ones(2),)) is None  # no requires_grad
    assert differentiable_framework((torch.ones(2, requires_grad=True),)) == "torch"
    with torch.no_grad():
        assert differentiable_framework((torch.ones(2, requires_grad=True),)) is None
    assert differentiable_framework((tf.ones(2),)) is None  # no tape
    with tf.GradientTape():
        assert differentiable_framework((tf.ones(2),)) == "tensorflow"
    assert differentiable_framework((jnp.ones(2),)) is None
    assert jax.grad(lambda t: jnp.where(differentiable_framework((t,)) == "jax", t, 0.0))(1.0) == 1.0


def test_plain_tensors_in_args_take_the_ordinary_path():
    res = am.minimize(lambda x, b: torch.sum((x - b) ** 2), torch.zeros(3, dtype=torch.float64), args=(torch.ones(3, dtype=torch.float64),))
    assert "implicit_nhvp" not in res and res.x.grad_fn is None
    np.testing.assert_allclose(res.x.numpy(), 1.0, atol=1e-6)


def test_detection_imports_no_framework():
    code = (
        "import sys, numpy as np, autominimize as am\n"
        "from autominimize.implicit import differentiable_framework\n"
        "assert differentiable_framework((np.ones(2),)) is None\n"
        "am.minimize(lambda x, b: ((x - b) ** 2).sum(), np.zeros(2), args=(np.ones(2),), backend='numpy')\n"
        "print(sorted(m for m in ('jax', 'torch', 'tensorflow') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_singular_hessian_gives_nan_with_a_warning():
    # f depends on x[0] + x[1] only: a valley of minima, no derivative of the argmin
    def flat(x, t):
        return (x[0] + x[1] - t) ** 2

    t = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    res = am.minimize(flat, np.zeros(2), args=(t,), method="BFGS")
    with pytest.warns(ImplicitDifferentiationWarning, match="not positive definite"):
        res.x.sum().backward()
    assert torch.isnan(t.grad)


def test_unconverged_solve_gives_nan_with_a_warning():
    lam = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    At = torch.as_tensor(A)
    fun = lambda x, lam: 0.5 * torch.sum((At @ x - torch.as_tensor(B)) ** 2) + lam * torch.sum(x * x)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = am.minimize(fun, np.zeros(4), args=(lam,), method="L-BFGS-B", options={"maxiter": 2})
    assert not res.success
    with pytest.warns(ImplicitDifferentiationWarning, match="not a solution"):
        res.x.sum().backward()
    assert torch.isnan(lam.grad)


def test_conjugate_gradients_count_their_products(monkeypatch):
    monkeypatch.setattr("autominimize.implicit.adjoint.DENSE_LIMIT", 16)
    lam = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    M = torch.as_tensor(RNG.normal(size=(150, 100)))
    b = torch.as_tensor(RNG.normal(size=150))
    res = am.minimize(
        lambda x, lam: 0.5 * torch.sum((M @ x - b) ** 2) + 0.5 * lam * torch.sum(x * x), np.zeros(100), args=(lam,), method="L-BFGS-B", options=TIGHT
    )
    res.x.sum().backward()
    assert 0 < res.implicit_nhvp < 100  # conjugate gradients, one product each, fewer than n
    x = torch.linalg.solve(M.T @ M + lam.detach() * torch.eye(100, dtype=torch.float64), M.T @ b)
    expected = -(torch.linalg.solve(M.T @ M + torch.eye(100, dtype=torch.float64), torch.ones(100, dtype=torch.float64)) @ x)
    np.testing.assert_allclose(lam.grad.item(), expected.item(), rtol=1e-7)


def test_values_captured_instead_of_passed_in_args_are_refused():
    """On torch, the solution is differentiated with respect to args only: a differentiable
    value held by fun's closure (or a constraint's, or a partial's arguments) is an error, not a
    gradient that silently leaves it out. JAX hoists what fun captures into the derivative."""
    import functools

    lam = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    shift = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match="captures shift, a torch value"):
        am.minimize(lambda x, lam: ((x - shift) ** 2).sum() + lam * (x**2).sum(), np.zeros(2), args=(lam,))
    ring = {"type": "eq", "fun": lambda x, lam: (x**2).sum() - shift}
    with pytest.raises(ValueError, match="captures shift"):
        am.minimize(lambda x, lam: ((x - lam) ** 2).sum(), np.ones(2), args=(lam,), method="SLSQP", constraints=ring)
    with pytest.raises(ValueError, match="argument 0"):
        am.least_squares(functools.partial(lambda s, x, lam: x - s * lam, shift), np.zeros(2), args=(lam,))

    def loss(lam, offset):
        return am.minimize(lambda x, lam: jnp.sum((x - offset) ** 2) + lam * jnp.sum(x**2), np.zeros(2), args=(lam,)).x.sum()

    with jax.enable_x64(True):  # x* = offset / (1 + lam)
        np.testing.assert_allclose(jax.grad(loss, argnums=(0, 1))(0.5, 1.0), (-2 / 1.5**2, 2 / 1.5), rtol=1e-6)
    constant = torch.tensor(2.0, dtype=torch.float64)  # no gradient: a constant, accepted
    res = am.minimize(lambda x, lam: ((x - constant) ** 2).sum() + lam * (x**2).sum(), np.zeros(2), args=(lam,))
    res.x.sum().backward()
    np.testing.assert_allclose(lam.grad.item(), -2 * 2.0 / (1 + 0.5) ** 2, rtol=1e-6)  # x* = c / (1 + lam)


def test_clear_errors():
    lam = torch.tensor(0.5, requires_grad=True)
    with pytest.raises(ValueError, match="backend='numpy'"):
        am.minimize(lambda x, lam: ((x - lam) ** 2).sum(), np.zeros(2), args=(lam,), backend="numpy")
    with pytest.raises(ValueError, match="loss='linear' only"):
        am.least_squares(lambda x, lam: x - lam, np.zeros(2), args=(lam,), loss="soft_l1")
    with pytest.raises(ValueError, match="jac=True"):
        am.minimize(lambda x, lam: (((x - lam) ** 2).sum(), 2 * (x - lam)), np.zeros(2), args=(lam,), jac=True)
