"""am.keras: function_factory, fit and load_params on Keras 3 (TensorFlow here, JAX and torch in subprocesses)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import autominimize as am  # noqa: E402

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the in-process tests use Keras's TensorFlow backend")

TRUE_KERNEL, TRUE_BIAS = [1.5, -0.5], 0.25


def regression_data():
    X = np.random.default_rng(0).normal(size=(30, 2)).astype("float32")
    return X, X @ np.array([[1.5], [-0.5]], dtype="float32") + TRUE_BIAS


def linear_model(**dense_kwargs):
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1, **dense_kwargs)])


def test_function_factory_leaves_the_model_alone_until_load_params():
    X, y = regression_data()
    model = linear_model()
    kernel = model.layers[0].kernel
    before = kernel.numpy().copy()
    func, params = am.keras.function_factory(model, "mse", X, y)
    assert set(params) == {kernel.path, model.layers[0].bias.path} and params[kernel.path].dtype == np.float32
    result = am.minimize(func, params, method="trust-ncg")
    assert result.backend == "tensorflow" and result.nhvp > 0
    np.testing.assert_array_equal(kernel.numpy(), before)
    am.keras.load_params(model, result.x)
    assert model.layers[0].kernel is kernel and kernel.dtype == "float32"
    np.testing.assert_allclose(kernel.numpy().ravel(), TRUE_KERNEL, atol=1e-5)
    np.testing.assert_allclose(model.predict(X, verbose=0), y, atol=1e-5)


def test_fit_writes_the_weights_back_and_takes_bounds_by_path():
    X, y = regression_data()
    model = linear_model()
    bias = model.layers[0].bias
    result = am.keras.fit(model, keras.losses.MeanSquaredError(), X, y, bounds={bias.path: (None, 0.1)})
    assert result.success and result.x[bias.path].tolist() == pytest.approx([0.1])
    assert bias.numpy().tolist() == pytest.approx([0.1])


def test_the_loss_includes_regularization_and_is_deterministic_in_inference_mode():
    X, y = regression_data()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(shape=(2,)),
            keras.layers.Dense(4, kernel_regularizer=keras.regularizers.L2(0.1)),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(1),
        ]
    )
    func, params = am.keras.function_factory(model, keras.losses.mean_squared_error, X, y)
    first_kernel = model.layers[0].kernel
    mse = np.mean((model.predict(X, verbose=0) - y) ** 2)
    expected = mse + 0.1 * np.sum(first_kernel.numpy() ** 2)
    assert float(func(params)) == pytest.approx(expected, rel=1e-5)
    assert float(func(params)) == float(func(params))  # dropout is off with training=False


def test_a_small_mlp_fits_with_several_methods():
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, size=(64, 1)).astype("float32")
    y = np.sin(3 * X)
    for method in ("L-BFGS-B", "trust-exact"):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input(shape=(1,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])
        result = am.keras.fit(model, "mse", X, y, method=method, options={"maxiter": 200})
        assert result.fun < 1e-3
        assert np.mean((model.predict(X, verbose=0) - y) ** 2) == pytest.approx(result.fun, rel=1e-3)


def test_bad_input_names_the_argument():
    X, y = regression_data()
    model = linear_model()
    with pytest.raises(TypeError, match="loss must be a Keras loss name"):
        am.keras.function_factory(model, 3, X, y)
    with pytest.raises(KeyError, match="not trainable weights of model"):
        am.keras.load_params(model, {"dense/kernal": np.zeros((2, 1))})
    with pytest.raises(ValueError, match=r"has shape \(2,\); the weight has shape \(2, 1\)"):
        am.keras.load_params(model, {model.layers[0].kernel.path: np.zeros(2)})
    frozen = linear_model()
    frozen.trainable = False
    with pytest.raises(ValueError, match="no trainable weights"):
        am.keras.function_factory(frozen, "mse", X, y)


_OTHER_BACKEND = textwrap.dedent(
    """
    import numpy as np, keras, autominimize as am
    X = np.random.default_rng(0).normal(size=(30, 2)).astype("float32")
    y = X @ np.array([[1.5], [-0.5]], dtype="float32") + 0.25
    model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1)])
    kernel = model.layers[0].kernel
    for method in ("L-BFGS-B", "trust-ncg"):
        kernel.assign(np.zeros((2, 1)))
        result = am.keras.fit(model, "mse", X, y, method=method)
        assert result.backend == keras.backend.backend(), result.backend
        assert model.layers[0].kernel is kernel
        np.testing.assert_allclose(kernel.numpy().ravel(), [1.5, -0.5], atol=1e-4)
    print("ok", keras.backend.backend())
    """
)


def test_the_jax_and_torch_keras_backends_in_subprocesses():
    """Keras fixes its backend per process: run the other two side by side in their own."""
    backends = [name for name in ("jax", "torch") if importlib.util.find_spec(name) is not None]
    if not backends:
        pytest.skip("neither jax nor torch is installed")
    runs = {
        backend: subprocess.Popen(
            [sys.executable, "-c", _OTHER_BACKEND],
            env=dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS="1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for backend in backends
    }
    for backend, run in runs.items():
        stdout, stderr = run.communicate(timeout=120)
        assert run.returncode == 0, f"{backend}: {stderr[-3000:]}"
        assert stdout.split() == ["ok", backend]
