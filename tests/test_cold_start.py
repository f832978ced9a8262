"""First-call costs: what a first solve traces and compiles, and what it imports."""

from __future__ import annotations

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
