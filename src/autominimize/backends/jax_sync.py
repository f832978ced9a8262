"""Run compiled JAX functions synchronously on the CPU.

JAX dispatches a CPU computation asynchronously: the call returns at once and a worker
thread runs the computation, so Python can queue more work meanwhile. A scipy method cannot
use that: it needs every value and gradient before it takes its next step, so each call
waits for a thread hand-off that buys nothing. On a small objective the hand-off costs
several times the computation (about 28 µs of a 36 µs call at n = 100 on the project's
2-core machine; ``python -m benchmarks`` measures it).

:func:`compile_function` therefore places the function on a private CPU client created with
``asynchronous=False`` (the client JAX itself builds when ``jax_cpu_enable_async_dispatch``
is off): its input and output shardings name that client's device, so JAX compiles for it,
and JAX's own C++ dispatch runs the executable inline in the calling thread. The user's own
JAX code is untouched: its default client and its async dispatch stay as they are. The
private client is made through jaxlib's client API, which is not part of JAX's public API
(:mod:`.private_jax`); wherever it is missing or refuses the function (another jaxlib, a
default backend that is not the CPU, host callbacks such as ``jax.debug.print`` in the
function), the function is compiled for JAX's default device instead, with the same results;
so is a function large enough that the hand-off no longer counts (``SYNCHRONOUS_MOST_FLOPS``).
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from .private_jax import has_host_effects, synchronous_cpu_client

__all__ = ["compile_function", "estimated_flops", "synchronous_client", "SYNCHRONOUS_MOST_FLOPS"]

_client_lock = threading.Lock()
_client: list = []  # [] not tried yet; [None] unavailable; [(client, device, sharding)]


def synchronous_client() -> tuple[Any, Any, Any] | None:
    """The private synchronous CPU client, its device and that device's sharding, or None."""
    with _client_lock:
        if not _client:
            _client.append(_make_client())
        return _client[0]


def _make_client() -> tuple[Any, Any, Any] | None:
    import jax

    try:
        if jax.default_backend() != "cpu" or not jax.config.read("jax_cpu_enable_async_dispatch"):
            return None  # an accelerator needs its own client; without async dispatch JAX's is already inline
        from jax.sharding import SingleDeviceSharding

        client = synchronous_cpu_client()
        if client is None:
            return None
        device = client.local_devices()[0]
        return client, device, SingleDeviceSharding(device)
    except Exception:  # a client this jaxlib cannot make: the public path serves
        return None


#: XLA's estimate of a call's floating-point operations past which a function is compiled
#: for JAX's default client rather than the private one. XLA splits a large computation
#: over its intra-op threads, and run inline by the private client it took longer than
#: dispatched by JAX's: on the project's 2-core machine under load, a logistic loss and
#: gradient on 200 features ran 0.36x (0.16 MFLOP, 200 rows), 0.91x (2.4 MFLOP, 3000 rows),
#: 1.18x (8.2 MFLOP) and 1.77x (16 MFLOP, the benchmark's logreg) the time of JAX's own
#: dispatch, whose hand-off (tens of µs) no longer counts at that size.
SYNCHRONOUS_MOST_FLOPS = 4e6


def estimated_flops(lowered: Any) -> float:
    """XLA's estimate of the floating-point operations of one call of ``lowered``; 0 where
    it gives none."""
    try:
        cost = lowered.cost_analysis()
    except Exception:  # a backend without the analysis: the private client serves
        return 0.0
    if isinstance(cost, (list, tuple)):  # one dict per computation in older JAX
        cost = cost[0] if cost else None
    try:
        return float((cost or {}).get("flops", 0.0) or 0.0)
    except (TypeError, ValueError):
        return 0.0


def compile_function(function: Callable[..., Any], *avals: Any) -> Callable[..., Any]:
    """``jax.jit(function, keep_unused=True).lower(*avals).compile()``, placed on the private
    synchronous CPU client where it allows.

    The placement is JAX's own: input and output shardings on the private client's device.
    JAX then compiles for that client and its C++ dispatch runs the executable, which the
    client runs inline. A function with host callbacks or other effects, or one the private
    client refuses, is compiled for JAX's default device instead, as is one whose calls
    XLA estimates above ``SYNCHRONOUS_MOST_FLOPS``.
    """
    import jax

    synchronous = synchronous_client()
    if synchronous is not None:
        sharding = synchronous[2]
        try:
            lowered = jax.jit(function, keep_unused=True, in_shardings=sharding, out_shardings=sharding).lower(*avals)
            if not has_host_effects(lowered) and estimated_flops(lowered) <= SYNCHRONOUS_MOST_FLOPS:
                return lowered.compile()
        except Exception:  # a function this client cannot take runs the public way
            pass
    return jax.jit(function, keep_unused=True).lower(*avals).compile()
