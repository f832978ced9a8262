"""Problem catalogue and backend fixtures shared by the tests."""

from __future__ import annotations

import importlib.util
import signal

import numpy as np
import pytest

# The Ctrl-C tests need Python's SIGINT handler. A shell without job control starts a
# background command with SIGINT ignored, and Python then leaves it ignored: a suite started
# that way (`make test &` in a script) would see no KeyboardInterrupt, and its child
# processes would inherit the ignored signal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

FRAMEWORKS = [name for name in ("jax", "torch", "tensorflow") if importlib.util.find_spec(name)]
ALL_BACKENDS = ["numpy"] + FRAMEWORKS


def array_module(backend: str):
    """(asarray, sum) for writing one objective per backend."""
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.asarray, jnp.sum
    if backend == "torch":
        import torch

        return torch.as_tensor, torch.sum
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.convert_to_tensor, tf.reduce_sum
    return np.asarray, np.sum


def rosen_for(backend: str):
    """Rosenbrock written with the backend's own sum."""
    _, total = array_module(backend)

    def rosen(x):
        return total(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    return rosen


def rosen_der(x):
    x = np.asarray(x, dtype=float)
    xm, xm_m1, xm_p1 = x[1:-1], x[:-2], x[2:]
    der = np.zeros_like(x)
    der[1:-1] = 200 * (xm - xm_m1**2) - 400 * (xm_p1 - xm**2) * xm - 2 * (1 - xm)
    der[0] = -400 * x[0] * (x[1] - x[0] ** 2) - 2 * (1 - x[0])
    der[-1] = 200 * (x[-1] - x[-2] ** 2)
    return der


def rosen_hess(x):
    from scipy.optimize import rosen_hess as scipy_rosen_hess

    return scipy_rosen_hess(np.asarray(x, dtype=float))


@pytest.fixture(params=ALL_BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(params=FRAMEWORKS)
def framework(request):
    return request.param


def spy_ipopt_iterates(monkeypatch) -> tuple[list, list]:
    """Count IPOPT's ``get_current_iterate`` calls made by the library (``asked``) and keep
    IPOPT's iterate at each iteration after the first as ``(alg_mod, x)`` (``iterates``)."""
    from autominimize.drivers.ipopt_problem import problem_class

    ipopt_problem = problem_class()
    original_iterate, original_intermediate = ipopt_problem.get_current_iterate, ipopt_problem.intermediate
    asked, iterates = [], []

    def counted(self, scaled=False):
        asked.append(1)
        return original_iterate(self, scaled=scaled)

    def spied(self, alg_mod, iter_count, *rest):
        if iter_count:
            iterates.append((alg_mod, original_iterate(self, scaled=False)["x"]))
        return original_intermediate(self, alg_mod, iter_count, *rest)

    monkeypatch.setattr(ipopt_problem, "get_current_iterate", counted)
    monkeypatch.setattr(ipopt_problem, "intermediate", spied)
    return asked, iterates


def keep_jax_programs(monkeypatch) -> dict[str, list[str]]:
    """The text of every program the JAX backend compiles from here on, by function name."""
    from autominimize.backends import jax_backend

    programs: dict[str, list[str]] = {}
    compile_function = jax_backend.compile_function

    def keeping(function, *avals):
        executable = compile_function(function, *avals)
        programs.setdefault(function.__name__, []).append(executable.as_text())
        return executable

    monkeypatch.setattr(jax_backend, "compile_function", keeping)
    return programs


def check_malformed_call(call, error, message) -> None:
    """A row of a malformed-call table: ``call()`` raises ``error`` with ``message`` (a regex),
    or, with ``error`` None (a value that looks malformed but is valid), works."""
    import pytest

    if error is None:
        call()
        return
    with pytest.raises(error, match=message):
        call()
