"""Regression tests: solves that once returned a wrong value without saying so."""

from __future__ import annotations

import numpy as np
import pytest

import autominimize as am

from conftest import FRAMEWORKS

TARGET = np.array([1.0, -2.0, 0.5])


# -- the user's own framework code behaves the same before, during and after a solve ----------


@pytest.mark.skipif("jax" not in FRAMEWORKS, reason="needs jax")
@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B", "trust-exact", "lbfgs-native"])
def test_users_jitted_jax_function_unchanged_by_a_solve(method):
    import jax
    import jax.numpy as jnp

    def loss(x):
        return jnp.sum((x - TARGET) ** 2)

    value_and_grad = jax.jit(jax.value_and_grad(loss))
    helper = jax.jit(loss)
    before = value_and_grad(jnp.ones(3))
    assert before[0].dtype == jnp.float32

    def objective(x):  # the user's jitted function, called inside a solve
        return helper(x)

    res = am.minimize(objective, np.zeros(3), method=method)
    np.testing.assert_allclose(res.x, TARGET, atol=1e-4)
    assert res.precision == "float64"
    res = am.minimize(loss, np.zeros(3), method=method)
    np.testing.assert_allclose(res.x, TARGET, atol=1e-4)
    after = value_and_grad(jnp.ones(3))
    assert after[0].dtype == jnp.float32 and after[1].dtype == jnp.float32
    np.testing.assert_allclose(after[0], before[0])
    np.testing.assert_allclose(after[1], before[1])
    assert helper(jnp.ones(3)).dtype == jnp.float32
    assert jnp.ones(2).dtype == jnp.float32


@pytest.mark.skipif("torch" not in FRAMEWORKS, reason="needs torch")
def test_users_torch_code_unchanged_by_a_solve():
    import torch

    def loss(x):
        return torch.sum((x - torch.as_tensor(TARGET, dtype=x.dtype)) ** 2)

    before = loss(torch.ones(3))
    default = torch.get_default_dtype()
    res = am.minimize(loss, torch.zeros(3, dtype=torch.float64), method="BFGS")
    np.testing.assert_allclose(res.x.numpy(), TARGET, atol=1e-4)
    assert torch.get_default_dtype() == default
    assert torch.is_grad_enabled()
    after = loss(torch.ones(3))
    assert after.dtype == before.dtype == torch.float32
    assert float(after) == float(before)


@pytest.mark.skipif("tensorflow" not in FRAMEWORKS, reason="needs tensorflow")
def test_users_tf_function_unchanged_by_a_solve():
    import tensorflow as tf

    def loss(x):
        return tf.reduce_sum((x - tf.constant(TARGET, dtype=x.dtype)) ** 2)

    compiled = tf.function(loss)
    before = compiled(tf.ones(3))
    res = am.minimize(loss, tf.zeros(3, dtype=tf.float64), method="BFGS")
    np.testing.assert_allclose(res.x.numpy(), TARGET, atol=1e-4)
    after = compiled(tf.ones(3))
    assert after.dtype == before.dtype == tf.float32
    assert float(after) == float(before)
    assert tf.executing_eagerly()
