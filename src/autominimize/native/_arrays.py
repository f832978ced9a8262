"""Array-API helpers shared by the native algorithms.

Every algorithm works on one flat 1-D array of the framework (NumPy, JAX or torch), through
the namespace ``array_api_compat`` gives for it, so the same code runs on each framework's
own arrays and device. Scalars leave the device only where Python control flow needs them
(line-search tests, stopping tests): one number per test, never a vector.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import array_api_compat

__all__ = ["namespace", "vdot", "norm_inf", "norm1", "flatten_leaves", "split_leaves"]


def namespace(*arrays: Any) -> Any:
    """The array-API namespace of ``arrays`` (``array_api_compat.array_namespace``)."""
    return array_api_compat.array_namespace(*arrays)


def vdot(xp: Any, a: Any, b: Any) -> Any:
    """⟨a, b⟩ as a 0-d array on the arrays' device."""
    return xp.sum(a * b)


def norm_inf(xp: Any, a: Any) -> float:
    """max |a_i| (0 for an empty array); one compiled call on JAX, where the stopping test runs it each step."""
    if not a.shape[0]:
        return 0.0
    if array_api_compat.is_jax_array(a):
        return float(_jax_norm_inf()(a))
    return float(xp.max(xp.abs(a)))


@functools.cache
def _jax_norm_inf() -> Callable[[Any], Any]:
    import jax
    import jax.numpy as jnp

    return jax.jit(lambda a: jnp.max(jnp.abs(a)))


def norm1(xp: Any, a: Any) -> float:
    return float(xp.sum(xp.abs(a)))


def flatten_leaves(xp: Any, leaves: Sequence[Any], dtype: Any = None) -> Any:
    """One flat array from leaves of one framework (numbers become 0-d arrays)."""
    parts = [xp.reshape(xp.asarray(leaf), (-1,)) for leaf in leaves]
    flat = parts[0] if len(parts) == 1 else xp.concat(parts)
    return flat if dtype is None else xp.astype(flat, dtype)


def split_leaves(xp: Any, flat: Any, like: Sequence[Any]) -> list[Any]:
    """Split ``flat`` into arrays shaped (and typed) like ``like``; numbers stay 0-d arrays."""
    out, start = [], 0
    for leaf in like:
        leaf = xp.asarray(leaf)
        size = 1
        for dim in leaf.shape:
            size *= dim
        part = xp.reshape(flat[start : start + size], leaf.shape)
        out.append(part if part.dtype == leaf.dtype else xp.astype(part, leaf.dtype))
        start += size
    return out
