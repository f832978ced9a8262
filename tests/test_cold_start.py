"""First-call costs: what a first solve traces and compiles, and what it imports."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from contextlib import contextmanager

import numpy as np
import pytest

import autominimize as am

RNG = np.random.default_rng(0)
X, Y = RNG.normal(size=(50, 3)), RNG.normal(size=50)


@contextmanager
def jax_events(name: str):
    """The ``fun_name`` of every JAX monitoring event ``name`` (a trace, an XLA compilation)."""
    import jax.monitoring

    seen: list = []

    def on_event(event, seconds, **kwargs):
        if event == name:
            seen.append(kwargs.get("fun_name"))

    jax.monitoring.register_event_duration_secs_listener(on_event)
    try:
        yield seen
    finally:
        jax.monitoring.unregister_event_duration_listener(on_event)


COMPILES = "/jax/core/compile/backend_compile_duration"


@pytest.mark.parametrize("line_search", ["wolfe", "armijo"])
def test_a_batched_multistart_compiles_four_functions_once(line_search):
    """init, the start of an iteration, a line-search trial and the update: nothing else is
    compiled, not the other line search's pieces, nor eager operations between the pieces."""
    jnp = pytest.importorskip("jax.numpy")

    def loss(w):  # a new function: its pieces are compiled anew
        return jnp.mean((X @ w - Y) ** 2) + 0.1 * jnp.sum(jnp.cos(3 * w))

    options = {"minimizer_kwargs": {"options": {"line_search": line_search}}}
    am.multistart(lambda w: jnp.sum(w**2), [(-3, 3)] * 3, n_starts=5, method="lbfgs-native", rng=0, **options)  # warm JAX itself
    with jax_events(COMPILES) as compiled:
        first = am.multistart(loss, [(-3, 3)] * 3, n_starts=64, method="lbfgs-native", rng=0, **options)
    assert first.batched and first.success
    assert sorted(compiled) == ["jit(_finish)", "jit(_init)", "jit(_search_trial)", "jit(_start)"]
    with jax_events(COMPILES) as compiled:
        second = am.multistart(loss, [(-3, 3)] * 3, n_starts=64, method="lbfgs-native", rng=1, **options)
    assert second.batched and compiled == []


def test_global_optimizers_import_scipy_stats_only_for_quasi_random_points():
    """scipy.stats (0.6 s to import) is loaded by the samplings that use it, not with the package."""
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        import autominimize as am

        def f(x):
            return np.sum((x - 0.5) ** 2)

        loaded = []
        am.basinhopping(f, np.zeros(2), niter=2, rng=0, backend="numpy")
        loaded.append("scipy.stats" in sys.modules)
        am.multistart(f, [(-1, 1)] * 2, n_starts=4, sampling="random", rng=0, backend="numpy")
        loaded.append("scipy.stats" in sys.modules)
        am.differential_evolution(f, [(-1, 1)] * 2, init="random", maxiter=3, rng=0, backend="numpy")
        loaded.append("scipy.stats" in sys.modules)
        am.multistart(f, [(-1, 1)] * 2, n_starts=4, rng=0, backend="numpy")
        loaded.append("scipy.stats" in sys.modules)
        print(loaded)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[False, False, False, True]"  # the last: Sobol' starts, from scipy.stats.qmc


def test_the_tf_interface_traces_its_loss_and_constraints_once_for_all_solves():
    """A second minimize() of one interface reuses the traced graphs; the loss, whose Python
    branch on a tensor needs AutoGraph, is still converted."""
    tf = pytest.importorskip("tensorflow")
    w = tf.Variable(np.zeros(3))
    traces = {"loss": 0, "constraint": 0}

    def loss():
        traces["loss"] += 1
        residual = tf.linalg.matvec(X, w) - Y
        if tf.reduce_sum(w) > 100.0:  # a tensor condition: AutoGraph makes it a tf.cond
            residual = residual * 2.0
        return tf.reduce_mean(residual**2)

    def constraint():
        traces["constraint"] += 1
        return 1.0 - tf.reduce_sum(w**2)

    interface = am.tf.ScipyOptimizerInterface(loss, var_list=[w], method="L-BFGS-B")
    solutions = []
    for _ in range(2):
        w.assign(np.zeros(3))
        solutions.append(interface.minimize().x)
    np.testing.assert_allclose(solutions[0], np.linalg.lstsq(X, Y, rcond=None)[0], atol=1e-5)
    np.testing.assert_array_equal(solutions[0], solutions[1])
    assert traces == {"loss": 1, "constraint": 0}

    traces["loss"] = 0
    constrained = am.tf.ScipyOptimizerInterface(loss, var_list=[w], inequalities=[constraint], method="SLSQP")
    for _ in range(2):
        w.assign(np.zeros(3))
        result = constrained.minimize()
    assert result.success and np.sum(result.x**2) <= 1 + 1e-8
    assert traces == {"loss": 2, "constraint": 2}  # value and value-and-gradient; value and Jacobian


KERAS_FITS = """
import numpy as np
import keras
import autominimize as am

rng = np.random.default_rng(0)
X = rng.normal(size=(50, 3)).astype("float32")
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)])
mse = keras.losses.get("mse")
traces = []

def loss(y_true, y_pred):
    traces.append(1)
    return mse(y_true, y_pred)

counts = []
for scale in (1.0, 2.0):  # new data of the same shape for the second fit
    result = am.keras.fit(model, loss, X, scale * X[:, :1], method="Newton-CG", options={"maxiter": 20})
    counts.append(len(traces))
print(keras.backend.backend(), counts[0], counts[1] - counts[0], result.fun < 0.05)
"""


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_a_second_keras_fit_of_a_model_traces_nothing(backend):
    """One function per model and loss, the data as arguments: a second fit, on new data of
    the same shape, reuses the compiled functions (each fit compiled them again)."""
    pytest.importorskip("keras")
    pytest.importorskip(backend)
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", KERAS_FITS], capture_output=True, text=True, check=True, env=env).stdout.split()
    expected_first = {"jax": "1", "tensorflow": "2"}[backend]  # JAX linearizes once; TF traces value and HVP
    assert out == [backend, expected_first, "0", "True"]


def test_a_fitted_keras_model_is_not_kept_alive_by_its_cached_loss():
    keras = pytest.importorskip("keras")
    import gc
    import weakref

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    am.keras.fit(model, "mse", X.astype("float32"), Y[:, None].astype("float32"), options={"maxiter": 3})
    held = weakref.ref(model)
    del model
    gc.collect()
    assert held() is None
