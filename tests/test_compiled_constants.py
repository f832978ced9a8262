"""A value the objective captures, changed between two solves, is read again on JAX and TensorFlow.

Their compiled code holds captured values as constants; the compile cache keys them by
content (NumPy arrays), value (numbers) or identity (framework arrays), so a changed value
compiles anew and an unchanged one reuses the compiled functions (counted by the Python
calls of the function body: a compiled function runs it only while tracing).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import autominimize as am
from autominimize.backends.compiled_constants import constants_key


def _ops(backend):
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.asarray, jnp.sum
    import tensorflow as tf

    return (lambda a: tf.constant(a, dtype=tf.float64)), tf.reduce_sum


_GLOBAL_TARGET = np.array([1.0, 2.0])


def _global_objective_jax(x):
    import jax.numpy as jnp

    return jnp.sum((x - jnp.asarray(_GLOBAL_TARGET)) ** 2)


def _solve(fun, backend, method="BFGS"):
    return np.asarray(am.minimize(fun, np.zeros(2), method=method, backend=backend).x)


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
@pytest.mark.parametrize("method", ["BFGS", "lbfgs-native"])
def test_an_array_changed_in_place_is_read_again_and_an_unchanged_one_compiles_nothing(backend, method):
    pytest.importorskip(backend)
    asarray, total = _ops(backend)
    target = np.array([1.0, 2.0])
    traces = [0]

    def fun(x):
        traces[0] += 1
        return total((x - asarray(target)) ** 2)

    np.testing.assert_allclose(_solve(fun, backend, method), [1.0, 2.0], atol=1e-5)
    traced = traces[0]
    np.testing.assert_allclose(_solve(fun, backend, method), [1.0, 2.0], atol=1e-5)
    assert traces[0] == traced  # unchanged: the compiled functions are reused
    target[:] = [5.0, 6.0]
    np.testing.assert_allclose(_solve(fun, backend, method), [5.0, 6.0], atol=1e-5)
    assert traces[0] > traced


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_a_rebound_number_and_a_partials_array_are_read_again(backend):
    pytest.importorskip(backend)
    asarray, total = _ops(backend)
    shift = 1.0

    def fun(x):
        return total((x - shift) ** 2)

    np.testing.assert_allclose(_solve(fun, backend), [1.0, 1.0], atol=1e-5)
    shift = 3.0
    np.testing.assert_allclose(_solve(fun, backend), [3.0, 3.0], atol=1e-5)

    def shifted(x, target):
        return total((x - asarray(target)) ** 2)

    data = np.array([-1.0, 4.0])
    partial = functools.partial(shifted, target=data)
    np.testing.assert_allclose(_solve(partial, backend), [-1.0, 4.0], atol=1e-5)
    data[0] = 7.0
    np.testing.assert_allclose(_solve(partial, backend), [7.0, 4.0], atol=1e-5)


def test_a_module_global_changed_between_solves_is_read_again():
    pytest.importorskip("jax")
    np.testing.assert_allclose(_solve(_global_objective_jax, "jax"), [1.0, 2.0], atol=1e-5)
    _GLOBAL_TARGET[:] = [-3.0, 0.5]
    try:
        np.testing.assert_allclose(_solve(_global_objective_jax, "jax"), [-3.0, 0.5], atol=1e-5)
    finally:
        _GLOBAL_TARGET[:] = [1.0, 2.0]


def test_the_key_follows_contents_numbers_and_containers_and_not_what_stays_equal():
    data = {"X": np.arange(6.0).reshape(2, 3), "calls": 0}
    missing = float("nan")
    count = 0

    def fun(x):
        nonlocal count
        count += 1  # a counter the function keeps: assigned, so not part of the key
        data["calls"] += 1  # a number in a container: not part of the key either
        return (data["X"] @ x).sum() + missing

    key = constants_key(fun)
    fun(np.ones(3))
    assert constants_key(fun) == key  # a captured NaN equals itself; the counters are left out
    data["X"][1, 2] = 0.0
    assert constants_key(fun) != key
    assert constants_key(lambda x: x.sum()) == ()
