"""The TensorFlow backend against hand-written NumPy derivatives."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from autominimize.backends.common import NoGradientError, ObjectiveOutputError  # noqa: E402
from autominimize.backends.tf_backend import TensorFlowBackend  # noqa: E402
from autominimize.params import ParamSpec  # noqa: E402

RNG = np.random.default_rng(0)
Pair = namedtuple("Pair", ["left", "right"])


@pytest.fixture(params=[True, False], ids=["xla", "graph"])
def backend(request) -> TensorFlowBackend:
    backend = TensorFlowBackend()
    backend.jit_compile = request.param
    return backend


@pytest.fixture
def xla() -> TensorFlowBackend:
    return TensorFlowBackend()


def rosen_tf(x):
    return tf.reduce_sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosen_np(x):
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))


def rosen_grad(x):
    grad = np.zeros_like(x)
    grad[:-1] = -400.0 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2.0 * (1.0 - x[:-1])
    grad[1:] += 200.0 * (x[1:] - x[:-1] ** 2)
    return grad


def rosen_hess(x):
    hess = np.diag(-400.0 * x[:-1], 1) + np.diag(-400.0 * x[:-1], -1)
    diagonal = np.zeros_like(x)
    diagonal[:-1] = 1200.0 * x[:-1] ** 2 - 400.0 * x[1:] + 2.0
    diagonal[1:] += 200.0
    return hess + np.diag(diagonal)


def test_available_and_names():
    backend = TensorFlowBackend()
    assert backend.available()
    assert (backend.name, backend.extra) == ("tensorflow", "tensorflow")


def test_rosenbrock(backend):
    x = RNG.uniform(-1.5, 1.5, 5)
    compiled = backend.compile_scalar(rosen_tf, ParamSpec.from_tree(x), "float64")

    value = compiled.value(x)
    assert type(value) is float
    np.testing.assert_allclose(value, rosen_np(x), rtol=1e-14)

    value, grad = compiled.value_and_grad(x)
    np.testing.assert_allclose(value, rosen_np(x), rtol=1e-14)
    np.testing.assert_allclose(grad, rosen_grad(x), rtol=1e-13, atol=1e-13)
    assert grad.dtype == np.float64 and grad.flags.writeable

    hvp = compiled.hvp_at(x)
    for _ in range(2):
        v = RNG.standard_normal(5)
        np.testing.assert_allclose(hvp(v), rosen_hess(x) @ v, rtol=1e-12, atol=1e-12)

    hess = compiled.hessian(x)
    assert hess.shape == (5, 5) and hess.flags.writeable
    np.testing.assert_allclose(hess, rosen_hess(x), rtol=1e-13, atol=1e-13)
    assert compiled.extra_evaluations == 0


def test_dict_with_unsorted_keys(xla):
    x0 = {"b": np.zeros(3), "a": np.zeros((2, 2))}
    spec = ParamSpec.from_tree(x0)
    weights = np.array([1.0, 2.0, 3.0])
    matrix = np.array([[1.0, -2.0], [0.5, 4.0]])

    def fun(params):
        return tf.reduce_sum(weights * params["b"] ** 2) + tf.reduce_sum(matrix * params["a"] ** 3)

    point = {"b": RNG.standard_normal(3), "a": RNG.standard_normal((2, 2))}
    x = spec.flatten(point)
    compiled = xla.compile_scalar(fun, spec, "float64")
    value, grad = compiled.value_and_grad(x)

    expected_value = np.sum(weights * point["b"] ** 2) + np.sum(matrix * point["a"] ** 3)
    expected_grad = spec.flatten({"b": 2 * weights * point["b"], "a": 3 * matrix * point["a"] ** 2})
    np.testing.assert_allclose(value, expected_value, rtol=1e-14)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-14)
    expected_hess = np.diag(spec.flatten({"b": 2 * weights, "a": 6 * matrix * point["a"]}))
    np.testing.assert_allclose(compiled.hessian(x), expected_hess, rtol=1e-14, atol=1e-14)


def test_nested_structure(xla):
    x0 = {"layers": [np.zeros((2, 3)), Pair(np.zeros(2), 0.0)], "scale": np.zeros(())}
    spec = ParamSpec.from_tree(x0)

    def fun(params):
        weights, pair = params["layers"]
        return tf.reduce_sum(weights**2) + tf.reduce_sum(pair.left * pair.right) + tf.exp(params["scale"])

    point = {"layers": [RNG.standard_normal((2, 3)), Pair(RNG.standard_normal(2), 0.7)], "scale": np.array(0.3)}
    x = spec.flatten(point)
    value, grad = xla.compile_scalar(fun, spec, "float64").value_and_grad(x)
    weights, pair = point["layers"]
    np.testing.assert_allclose(value, np.sum(weights**2) + np.sum(pair.left) * 0.7 + np.exp(0.3), rtol=1e-14)
    expected = {"layers": [2 * weights, Pair(np.full(2, 0.7), np.sum(pair.left))], "scale": np.exp(np.array(0.3))}
    np.testing.assert_allclose(grad, spec.flatten(expected), rtol=1e-14)


def test_float32(xla):
    x = RNG.uniform(-1.5, 1.5, 5)
    seen = []

    def fun(x):
        seen.append(x.dtype)
        return rosen_tf(x)

    compiled = xla.compile_scalar(fun, ParamSpec.from_tree(x), "float32")
    value, grad = compiled.value_and_grad(x)
    assert seen == [tf.float32]
    assert type(value) is float and grad.dtype == np.float64
    np.testing.assert_allclose(value, rosen_np(x), rtol=1e-5)
    np.testing.assert_allclose(grad, rosen_grad(x), rtol=1e-4, atol=1e-4)
    hess = compiled.hessian(x)
    assert hess.dtype == np.float64
    np.testing.assert_allclose(hess, rosen_hess(x), rtol=1e-4, atol=1e-3)


def test_non_scalar_output_is_refused(xla):
    compiled = xla.compile_scalar(lambda x: x**2, ParamSpec.from_tree(np.zeros(3)), "float64")
    with pytest.raises(ObjectiveOutputError, match=r"returned an array of shape \(3,\)"):
        compiled.value_and_grad(np.ones(3))


def python_float(x):
    return 2.5


def numpy_scalar(x):
    return np.float32(2.5)


def one_by_one_tensor(x):
    return tf.reshape(2.5 + 0.0 * x[0], [1, 1])


@pytest.mark.parametrize("output", [python_float, numpy_scalar, one_by_one_tensor])
def test_scalar_like_outputs(xla, output):
    compiled = xla.compile_scalar(output, ParamSpec.from_tree(np.zeros(2)), "float64")
    assert compiled.value(np.ones(2)) == 2.5
    if output is one_by_one_tensor:
        value, grad = compiled.value_and_grad(np.ones(2))
        assert value == 2.5
        np.testing.assert_array_equal(grad, np.zeros(2))
    else:  # a constant carries no gradient: refused, as a loss computed outside the tape is
        with pytest.raises(NoGradientError, match="carries no gradient"):
            compiled.value_and_grad(np.ones(2))


def test_unconnected_leaf_has_zero_gradient(xla):
    x0 = {"used": np.zeros(2), "unused": np.zeros(3)}
    spec = ParamSpec.from_tree(x0)
    compiled = xla.compile_scalar(lambda p: tf.reduce_sum(p["used"] ** 3), spec, "float64")
    x = spec.flatten({"used": np.array([1.0, 2.0]), "unused": np.ones(3)})
    _, grad = compiled.value_and_grad(x)
    np.testing.assert_array_equal(grad, spec.flatten({"used": [3.0, 12.0], "unused": np.zeros(3)}))
    hess = compiled.hessian(x)
    expected = spec.flatten({"used": [6.0, 12.0], "unused": np.zeros(3)})
    np.testing.assert_array_equal(hess, np.diag(expected))
    np.testing.assert_array_equal(compiled.hvp_at(x)(np.ones(5)), hess @ np.ones(5))


def test_one_trace_per_computation(xla):
    compiled = xla.compile_scalar(rosen_tf, ParamSpec.from_tree(np.zeros(4)), "float64")
    for _ in range(20):
        x = RNG.standard_normal(4)
        np.testing.assert_allclose(compiled.value_and_grad(x)[1], rosen_grad(x), rtol=1e-12)
    assert compiled.traces == 1
    for _ in range(3):
        hvp = compiled.hvp_at(RNG.standard_normal(4))
        hvp(np.ones(4))
        hvp(np.zeros(4))
    assert compiled.traces == 2


def test_xla_fallback_for_unsupported_ops(xla):
    def fun(x):
        return tf.reduce_sum(tf.numpy_function(np.square, [x], tf.float64))

    compiled = xla.compile_scalar(fun, ParamSpec.from_tree(np.zeros(3)), "float64")
    assert compiled.value(np.array([1.0, 2.0, 3.0])) == 14.0
    assert compiled.value(np.array([1.0, 1.0, 1.0])) == 3.0
    assert compiled.traces == 2  # the XLA trace, then the plain graph


def constraints_tf(p):
    """(a0 * b0, sum(b**2), a11 - a00) on {'b': (3,), 'a': (2, 2)}: m=3 < n=7."""
    a, b = p["a"], p["b"]
    return (a[0, 0] * b[0], {"norm": tf.reduce_sum(b**2), "diff": a[1, 1] - a[0, 0]})


def test_vector_jacobian_dict(xla):
    spec = ParamSpec.from_tree({"b": np.zeros(3), "a": np.zeros((2, 2))})
    a, b = RNG.standard_normal((2, 2)), RNG.standard_normal(3)
    x = spec.flatten({"b": b, "a": a})
    compiled = xla.compile_vector(constraints_tf, spec, "float64")
    assert compiled.m == 3

    value, jac = compiled.value_and_jacobian(x)
    # a dict's entries come out in its own order ('norm' before 'diff'), as in the NumPy backend
    np.testing.assert_allclose(value, [a[0, 0] * b[0], np.sum(b**2), a[1, 1] - a[0, 0]], rtol=1e-14)
    np.testing.assert_allclose(compiled.value(x), value, rtol=1e-14)
    zeros_b, zeros_a = np.zeros(3), np.zeros((2, 2))
    expected = np.stack(
        [
            spec.flatten({"b": [a[0, 0], 0, 0], "a": [[b[0], 0], [0, 0]]}),
            spec.flatten({"b": 2 * b, "a": zeros_a}),
            spec.flatten({"b": zeros_b, "a": [[-1.0, 0], [0, 1.0]]}),
        ]
    )
    assert jac.shape == (3, 7)
    np.testing.assert_allclose(jac, expected, rtol=1e-14)


def test_vector_jacobian_matrix_x0_more_outputs_than_inputs(xla):
    spec = ParamSpec.from_tree(np.zeros((2, 2)))
    x = RNG.standard_normal(4)

    def fun(z):
        return tf.concat([tf.reshape(z**2, [-1]), [z[0, 1]] * 3], axis=0)

    compiled = xla.compile_vector(fun, spec, "float64")
    value, jac = compiled.value_and_jacobian(x)
    assert compiled.traces == 1
    assert (compiled.m, jac.shape) == (7, (7, 4))
    np.testing.assert_allclose(value, np.concatenate([x**2, [x[1]] * 3]), rtol=1e-14)
    expected = np.vstack([np.diag(2 * x), np.tile([0.0, 1.0, 0.0, 0.0], (3, 1))])
    np.testing.assert_allclose(jac, expected, rtol=1e-14)


def test_weighted_hessian(backend):
    spec = ParamSpec.from_tree(np.zeros(3))
    x, w = RNG.standard_normal(3), RNG.standard_normal(2)

    def fun(z):  # c0 = z0 * z1 * z2, c1 = sin(z0) + z2**2
        return tf.stack([z[0] * z[1] * z[2], tf.sin(z[0]) + z[2] ** 2])

    hess_c0 = np.array([[0, x[2], x[1]], [x[2], 0, x[0]], [x[1], x[0], 0]])
    hess_c1 = np.diag([-np.sin(x[0]), 0.0, 2.0])
    compiled = backend.compile_vector(fun, spec, "float64")
    np.testing.assert_allclose(compiled.weighted_hessian(x, w), w[0] * hess_c0 + w[1] * hess_c1, rtol=1e-13, atol=1e-15)
