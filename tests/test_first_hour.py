"""No traps in a user's first hour: new data does not recompile, NumPy code imports no
framework, float32 is inferred."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import autominimize as am

RNG = np.random.default_rng(0)
DATA = [(RNG.normal(size=(40, 3)), RNG.normal(size=40)) for _ in range(3)]


def _fits(loss, method="L-BFGS-B", **kwargs):
    for X, y in DATA:
        res = am.minimize(loss, np.zeros(3), args=(X, y), method=method, **kwargs)
        np.testing.assert_allclose(res.x, np.linalg.lstsq(X, y, rcond=None)[0], atol=1e-4)
    return res


@pytest.mark.parametrize("method", ["L-BFGS-B", "trust-krylov"])
def test_new_data_does_not_retrace_on_jax(method):
    jnp = pytest.importorskip("jax.numpy")
    traces = []

    def loss(w, X, y):
        traces.append(1)
        return jnp.mean((X @ w - y) ** 2)

    res = _fits(loss, method)
    first = len(traces)
    _fits(loss, method)
    assert res.backend == "jax" and 1 <= first <= 2  # one trace per compiled function the method uses
    assert len(traces) == first


def test_new_data_does_not_retrace_on_tensorflow():
    tf = pytest.importorskip("tensorflow")
    traces = []

    def loss(w, X, y):
        traces.append(1)
        return tf.reduce_mean((tf.linalg.matvec(X, w) - y) ** 2)

    res = _fits(loss)
    assert res.backend == "tensorflow" and len(traces) == 1


def test_data_in_a_structure_and_constraints_are_inputs_too():
    jnp = pytest.importorskip("jax.numpy")
    traces = []

    def loss(w, data):
        traces.append(1)
        return jnp.mean((data["X"] @ w - data["y"]) ** 2)

    def inside(w, data):
        return 1.0 - jnp.sum(w**2)

    counts = []
    for X, y in DATA:
        res = am.minimize(loss, np.zeros(3), args=({"X": X, "y": y},), method="SLSQP", constraints={"type": "ineq", "fun": inside})
        assert res.success and np.sum(res.x**2) <= 1 + 1e-8
        counts.append(len(traces))
    assert counts[0] <= 2 and counts == [counts[0]] * len(DATA)  # value, value and gradient


def test_a_function_that_hands_its_data_to_numpy_still_sees_each_data_set():
    """It cannot take the data traced: the data is compiled in, once per solve, as before."""
    jnp = pytest.importorskip("jax.numpy")

    def loss(w, X, y):
        return jnp.mean((X @ w - np.asarray(y, dtype=np.float64).copy()) ** 2)

    _fits(loss)


def test_python_numbers_in_args_are_constants_keyed_by_value():
    jnp = pytest.importorskip("jax.numpy")
    traces = []

    def loss(w, X, y, power):
        traces.append(1)
        return jnp.mean(jnp.abs(X @ w - y) ** power)

    X, y = DATA[0]
    for _ in range(2):
        res = am.minimize(loss, np.zeros(3), args=(X, y, 2), method="BFGS")
    np.testing.assert_allclose(res.x, np.linalg.lstsq(X, y, rcond=None)[0], atol=1e-4)
    assert len(traces) == 1
    am.minimize(loss, np.zeros(3), args=(X, y, 4), method="BFGS")
    assert len(traces) == 2


def test_numpy_code_imports_no_framework():
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        import autominimize as am

        def f(x):
            return np.sum((x - 1.0) ** 2) + np.sum(np.cos(x))

        res = am.minimize(f, np.zeros(3), method="BFGS")
        loaded = sorted(m for m in ("jax", "torch", "tensorflow") if m in sys.modules)
        print(res.backend, loaded)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "numpy []"


def test_a_plain_numpy_solve_loads_no_algorithm_log_nor_framework():
    """Only what the solve runs is imported: no native algorithm, no log writer, no process pool."""
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        import autominimize as am

        am.minimize(lambda x: (x ** 2).sum(), np.ones(3), backend="numpy")
        print(" ".join(sorted(sys.modules)))
        """
    )
    loaded = set(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split())
    algorithms = {f"autominimize.native.{name}" for name in ("lbfgs", "conjugate_gradient", "hessian_free", "gradient_descent", "stopping")}
    unneeded = algorithms | {
        "autominimize.recording.log_writer",
        "autominimize.recording.log_reader",
        "sqlite3",
        "concurrent.futures.process",
        "jax",
        "torch",
        "tensorflow",
    }
    assert "autominimize.backends.numpy_backend" in loaded
    assert unneeded & loaded == set()


def test_native_method_names_are_answered_from_a_table_that_matches_the_algorithms():
    from autominimize import native

    assert native.is_native_method("L-BFGS-native") and native.is_native_method("hf") and not native.is_native_method("bfgs")
    assert {name: cls.name for name, cls in native.ALGORITHMS.items()} == {name: name for name in native.ALGORITHMS}


def test_code_written_with_one_framework_is_not_probed():
    """The code names its framework: no evaluation with NumPy arrays picks it."""
    jnp = pytest.importorskip("jax.numpy")
    kinds = []

    def loss(x):
        kinds.append(type(x).__module__.split(".")[0])
        return jnp.sum((x - 1.0) ** 2)

    res = am.minimize(loss, np.zeros(2), method="BFGS")
    assert res.backend == "jax" and "numpy" not in kinds


def test_float32_tensors_run_in_float32_without_a_warning():
    torch = pytest.importorskip("torch")
    X = torch.randn(20, 3, generator=torch.Generator().manual_seed(0))  # float32, as a model's data

    def loss(w):
        return ((X @ w - 1.0) ** 2).mean()

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = am.minimize(loss, torch.zeros(3), method="L-BFGS-B")
    assert res.precision == "float32" and res.x.dtype == torch.float32 and res.success


def test_float32_jax_x0_runs_in_float32():
    jnp = pytest.importorskip("jax.numpy")
    res = am.minimize(lambda w: jnp.sum((w - 1.0) ** 2), jnp.zeros(3, dtype=jnp.float32), method="BFGS")
    assert res.precision == "float32" and str(res.x.dtype) == "float32"
    assert am.minimize(lambda w: jnp.sum((w - 1.0) ** 2), np.zeros(3, dtype=np.float32)).precision == "float64"  # NumPy: as scipy


def test_a_precision_fallback_is_told_once_per_function_and_quotes_the_dtypes():
    tf = pytest.importorskip("tensorflow")
    M = tf.constant(np.eye(3), dtype=tf.float32)

    def loss(x):
        return tf.reduce_sum(tf.linalg.matvec(M, x) ** 2)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = am.minimize(loss, np.ones(3))
        am.minimize(loss, np.ones(3))
    told = [w for w in caught if issubclass(w.category, am.PrecisionFallbackWarning)]
    assert first.precision == "float32" and len(told) == 1
    message = str(told[0].message)
    assert "float64" in message and "float32" in message and "in user code" not in message


def test_code_written_with_keras_runs_on_keras_backend(monkeypatch):
    """Keras 3 code belongs to the framework Keras runs on, not always to TensorFlow."""
    import types

    from autominimize.backends import _referenced_frameworks

    ops = types.ModuleType("keras.ops")
    for backend, expected in (("torch", "torch"), ("jax", "jax"), ("tensorflow", "tensorflow")):
        fake = types.SimpleNamespace(backend=types.SimpleNamespace(backend=lambda name=backend: name))
        monkeypatch.setitem(sys.modules, "keras", fake)
        assert _referenced_frameworks(lambda w: ops.sum(w)) == [expected]
