"""A solve differentiated implicitly records as any other: history, log and callback.

The solve runs on concrete values (on JAX in a host callback, on TensorFlow in a
``tf.numpy_function`` inside a ``tf.function``); what it records reaches the result the user
holds, whichever framework differentiates it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf
import torch

import autominimize as am

RNG = np.random.default_rng(5)
A = RNG.normal(size=(10, 3))
B = RNG.normal(size=10)


def _jax(jit):
    def ridge(x, lam):
        return 0.5 * jnp.sum((A @ x - B) ** 2) + 0.5 * lam * jnp.sum(x * x)

    def run(options):
        box = {}

        def outer(lam):
            box["res"] = am.minimize(ridge, np.zeros(3), args=(lam,), method="L-BFGS-B", **options)
            return jnp.sum(box["res"].x)

        with jax.enable_x64(True):
            grad = (jax.jit(jax.grad(outer)) if jit else jax.grad(outer))(0.5)
        return box["res"], float(grad)

    return run


def _torch(options):
    def ridge(x, lam):
        return 0.5 * torch.sum((torch.as_tensor(A) @ x - torch.as_tensor(B)) ** 2) + 0.5 * lam * torch.sum(x * x)

    lam = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    res = am.minimize(ridge, np.zeros(3), args=(lam,), method="L-BFGS-B", **options)
    res.x.sum().backward()
    return res, float(lam.grad)


def _tf(in_function):
    At, Bt = tf.constant(A), tf.constant(B)

    def ridge(x, lam):
        return 0.5 * tf.reduce_sum((tf.linalg.matvec(At, x) - Bt) ** 2) + 0.5 * lam * tf.reduce_sum(x * x)

    def run(options):
        box = {}

        def gradient(lam):
            with tf.GradientTape() as tape:
                tape.watch(lam)
                box["res"] = am.minimize(ridge, np.zeros(3), args=(lam,), method="L-BFGS-B", **options)
                loss = tf.reduce_sum(box["res"].x)
            return tape.gradient(loss, lam)

        grad = (tf.function(gradient) if in_function else gradient)(tf.constant(0.5, dtype=tf.float64))
        return box["res"], float(grad)

    return run


RUNS = {"jax": _jax(False), "jax jit": _jax(True), "torch": _torch, "tf": _tf(False), "tf.function": _tf(True)}


def _expected_gradient():
    with jax.enable_x64(True):
        return float(jax.grad(lambda lam: jnp.sum(jnp.linalg.solve(A.T @ A + lam * jnp.eye(3), A.T @ B)))(0.5))


@pytest.mark.parametrize("framework", list(RUNS))
def test_history_log_and_callback_of_a_differentiated_solve(framework, tmp_path):
    path = tmp_path / "solve.sqlite"
    seen = []
    res, grad = RUNS[framework]({"log": str(path), "callback": lambda xk: seen.append(np.array(xk, dtype=float))})
    np.testing.assert_allclose(grad, _expected_gradient(), rtol=1e-5)
    assert "history" in res, "the differentiated solve's history is missing"
    nit = int(np.asarray(res.history.column("nit"))[-1])
    assert len(res.history.iterations) == nit == len(seen) > 0
    logged = am.read_log(str(path))
    assert len(logged.history.iterations) == nit
    np.testing.assert_allclose(logged.x, seen[-1], rtol=1e-12)


@pytest.mark.parametrize("framework", ["jax", "torch", "tf"])
def test_history_false_records_nothing(framework):
    res, _ = RUNS[framework]({"history": False})
    assert "history" not in res


def test_jax_least_squares_keeps_the_host_residuals_beside_the_traced_cost():
    def residuals(x, lam):
        return jnp.concatenate([A @ x - B, jnp.sqrt(lam) * x])

    box = {}

    def outer(lam):
        box["res"] = am.least_squares(residuals, np.zeros(3), args=(lam,))
        return box["res"].cost

    with jax.enable_x64(True):
        cost, _ = jax.value_and_grad(outer)(0.5)
    res = box["res"]
    assert isinstance(res.fun, np.ndarray) and res.fun.shape == (13,)
    np.testing.assert_allclose(0.5 * res.fun @ res.fun, float(cost), rtol=1e-12)
    assert res.jac.shape == (13, 3) and res.njev > 0
