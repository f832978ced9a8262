"""The array methods every backend offers the layers above (declared in ``backends/base.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from autominimize.backends import get_backend

FRAMEWORKS = ["numpy", "jax", "torch", "tensorflow"]


def _backend(name: str):
    pytest.importorskip({"tensorflow": "tensorflow"}.get(name, name))
    return get_backend(name)


def _array(name: str, values: list) -> object:
    """``values`` as a float32 array of the framework."""
    _backend(name)
    array = np.asarray(values, dtype=np.float32)
    if name == "jax":
        import jax.numpy as jnp

        return jnp.asarray(array)
    if name == "torch":
        import torch

        return torch.as_tensor(array)
    if name == "tensorflow":
        import tensorflow as tf

        return tf.constant(array)
    return array


def _numpy(value: object) -> np.ndarray:
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value)


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_finite_replaces_nan_and_inf_by_numbers_in_the_framework(name):
    values = _array(name, [1.0, np.nan, np.inf, -2.0])
    finite = _backend(name).finite(values)
    assert type(finite) is type(values)
    out = _numpy(finite)
    assert np.isfinite(out).all() and out[0] == 1.0 and out[3] == -2.0


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_masked_keeps_the_values_where_the_mask_holds(name):
    values = _array(name, [1.0, 2.0, 3.0])
    mask = _numpy(values) > 1.5
    if name == "torch":
        import torch

        mask = torch.as_tensor(mask)
    assert _numpy(_backend(name).masked(values, mask)).tolist() == [0.0, 2.0, 3.0]


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_output_shapes_of_each_leaf(name):
    params = _array(name, [1.0, 2.0])
    assert _backend(name).output_shapes(lambda p: {"a": p * 2, "b": p[:1]}, params) == [(2,), (1,)]


def test_output_shapes_on_jax_trace_instead_of_running():
    jax = pytest.importorskip("jax")
    seen = []
    get_backend("jax").output_shapes(lambda p: seen.append(p) or p, jax.numpy.ones(3))
    assert len(seen) == 1 and isinstance(seen[0], jax.core.Tracer)


def test_output_shapes_on_torch_record_no_graph():
    torch = pytest.importorskip("torch")
    seen = []
    params = torch.ones(3, requires_grad=True)
    get_backend("torch").output_shapes(lambda p: seen.append(torch.is_grad_enabled()) or p * 2, params)
    assert seen == [False]


def test_batched_fits_run_on_numpy_jax_and_torch():
    assert [name for name in FRAMEWORKS if _backend(name).batched_fits] == ["numpy", "jax", "torch"]


def test_native_residuals_given_as_python_numbers_on_numpy():
    """Hessian-free on NumPy residuals returned as a list of floats: ½‖r‖² is summed by the
    NumPy backend (it went through TensorFlow before, and the solve did not move)."""
    import autominimize as am

    def residuals(w):
        return [float(w[0] - 1.0), float(2 * (w[1] + 0.5))]

    res = am.minimize(residuals, np.zeros(2), method="hessian-free", backend="numpy")
    np.testing.assert_allclose(res.x, [1.0, -0.5], atol=1e-5)
    assert res.fun < 1e-10
