"""Run compiled JAX functions synchronously on the CPU.

JAX dispatches a CPU computation asynchronously: the call returns at once and a worker
thread runs the computation, so Python can queue more work meanwhile. A scipy method cannot
use that: it needs every value and gradient before it takes its next step, so each call
waits for a thread hand-off that buys nothing. On a small objective the hand-off costs
several times the computation (about 28 µs of a 36 µs call at n = 100 on the project's
2-core machine; ``python -m autominimize.bench`` measures it).

:func:`compile_lowered` therefore compiles the lowered function for a private CPU client
created with ``asynchronous=False`` (the client JAX itself builds when
``jax_cpu_enable_async_dispatch`` is off) and runs it inline in the calling thread. The
user's own JAX code is untouched: its default client and its async dispatch stay as they
are. The private client is reached through jaxlib's client API, which is not part of JAX's
public API; wherever it is missing or refuses the function (another jaxlib, a default
backend that is not the CPU, host callbacks such as ``jax.debug.print`` in the function),
the public ahead-of-time compiled function runs instead, with the same results.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import numpy as np

__all__ = ["compile_lowered", "synchronous_client"]

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
        from jax._src.lib import xla_client
        from jax.sharding import SingleDeviceSharding

        client = xla_client.make_cpu_client(asynchronous=False)
        device = client.local_devices()[0]
        return client, device, SingleDeviceSharding(device)
    except Exception:  # another jaxlib: the public path serves
        return None


class SynchronousCall:
    """A lowered function compiled for the synchronous client; called like the compiled one."""

    def __init__(self, lowered: Any, client: Any, device: Any, sharding: Any):
        from jax._src.lib import xla_client
        from jax.tree_util import tree_leaves as jax_leaves
        from jax.tree_util import tree_structure

        self._executable = client.compile_and_load(lowered.as_text(), [device])
        self._devices = {device}
        self._array_type = xla_client.ArrayImpl  # what the executable returns
        self._put = xla_client.batched_device_put
        self._avals = jax_leaves(lowered.in_avals)
        self._device = device
        self._sharding = sharding
        self._out_tree = lowered.out_tree
        # When every argument is an array (as the backend passes them), they are the leaves.
        self._flat = lowered.in_tree == tree_structure((tuple(range(len(self._avals))), {}))

    def __call__(self, *args: Any) -> Any:
        if self._flat and len(args) == len(self._avals):
            leaves = args
        else:
            from jax.tree_util import tree_leaves

            leaves = tree_leaves(args)
        buffers = [
            value if type(value) is self._array_type and value.devices() == self._devices else self._on_device(value, aval)
            for value, aval in zip(leaves, self._avals)
        ]
        return self._out_tree.unflatten(self._executable.execute(buffers))

    def _on_device(self, value: Any, aval: Any) -> Any:
        return self._put(aval, self._sharding, [np.asarray(value, dtype=aval.dtype)], [self._device], True, enable_x64=True)


def compile_lowered(lowered: Any) -> Callable[..., Any]:
    """``lowered.compile()``, run synchronously on the CPU where the private client allows.

    ``lowered`` must come from ``jax.jit(f, keep_unused=True).lower(...)``: the executable
    then takes every argument leaf, in order.
    """
    synchronous = synchronous_client()
    if synchronous is not None and not _has_host_callbacks(lowered):
        try:
            return SynchronousCall(lowered, *synchronous)
        except Exception:  # a function this client cannot take runs the public way
            pass
    return lowered.compile()


def _has_host_callbacks(lowered: Any) -> bool:
    try:
        arguments = lowered._lowering.compile_args
        return bool(arguments["host_callbacks"] or arguments["ordered_effects"] or arguments["unordered_effects"])
    except Exception:
        return True
