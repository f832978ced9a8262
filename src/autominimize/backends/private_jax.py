"""JAX's private entry points, each behind a named function with its public fallback.

Where this JAX lacks an entry point (ImportError or AttributeError), the fallback serves,
with the same numbers. The reasons were measured on the project's 2-core machine with JAX
0.10.2 (the least of several rounds):

* :func:`clear_trace_caches`: a float64 solve forgets JAX's traces on entry and on exit.
  ``jax.clear_caches`` forgets the compiled executables as well, so after each solve the
  user's own ``jax.jit`` functions are compiled again: the first call of a small jitted
  function after an L-BFGS-B solve took 79 ms when only the traces were forgotten and 245 ms
  when everything was, and a repeated solve of the same objective 18 ms against 25 ms.
* :func:`synchronous_cpu_client`: value and gradient of Rosenbrock at n = 100 took 11 µs per
  call on a CPU client that runs the executable inline, and 38 to 65 µs on JAX's default
  client, which hands every call to a worker thread (see :mod:`.jax_sync`).
* :func:`has_host_effects`: tells which functions that client may run; where JAX does not
  say, every function is taken to have effects, and JAX's default client runs them all.
"""

from __future__ import annotations

from typing import Any

__all__ = ["clear_trace_caches", "has_host_effects", "synchronous_cpu_client"]


def clear_trace_caches() -> None:
    """Forget JAX's traces but keep its compiled executables (keyed by the 64-bit switch
    already), so that a function compiled on either side is not compiled again.

    Private entry point: ``jax._src.util.clear_all_caches``. Public fallback:
    :func:`jax.clear_caches`, which forgets the executables too.
    """
    try:
        from jax._src.util import clear_all_caches
    except (ImportError, AttributeError):
        import jax

        jax.clear_caches()
        return
    clear_all_caches()


def synchronous_cpu_client() -> Any | None:
    """A new CPU client that runs every executable inline in the calling thread, or None.

    Private entry point: ``jax._src.lib.xla_client.make_cpu_client(asynchronous=False)``
    (the client JAX itself builds when ``jax_cpu_enable_async_dispatch`` is off). Public
    fallback: None, and JAX's default client serves.
    """
    try:
        from jax._src.lib import xla_client

        make_cpu_client = xla_client.make_cpu_client
    except (ImportError, AttributeError):
        return None
    return make_cpu_client(asynchronous=False)


def has_host_effects(lowered: Any) -> bool:
    """Whether a lowered function has host callbacks (``jax.debug.print``, ``pure_callback``)
    or other effects, which only JAX's default client runs.

    Private entry point: the arguments JAX keeps to compile ``lowered``
    (``lowered._lowering.compile_args``). Public fallback: True, for every function.
    """
    try:
        arguments = lowered._lowering.compile_args
    except AttributeError:
        return True
    try:
        return bool(arguments["host_callbacks"] or arguments["ordered_effects"] or arguments["unordered_effects"])
    except (KeyError, TypeError):  # another JAX names them otherwise
        return True
