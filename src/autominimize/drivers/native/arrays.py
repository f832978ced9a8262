"""The flat vectors a native run moves between NumPy and the backend's arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...params import ParamSpec

__all__ = ["to_framework", "like", "to_host"]


def to_framework(backend: str, flat: np.ndarray, dtype: str, spec: ParamSpec, device: Any) -> Any:
    """x0's flat vector as the backend's array, on x0's device (a one-off copy)."""
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.asarray(flat, dtype=dtype)
    if backend == "torch":
        import torch

        torch_leaves = [leaf for leaf in spec.leaves if leaf.kind == "torch"]
        where = device if device is not None else (torch_leaves[0].device if torch_leaves else "cpu")
        return torch.as_tensor(flat, dtype=getattr(torch, dtype), device=where)
    return np.asarray(flat, dtype=dtype)


def like(x: Any, values: np.ndarray) -> Any:
    """A NumPy vector as an array of x's framework, dtype and device."""
    kind = type(x).__module__.split(".", 1)[0]
    if kind == "torch":
        import torch

        return torch.tensor(values, dtype=x.dtype, device=x.device)  # a copy: bounds may be read-only
    if kind in ("jax", "jaxlib"):
        import jax.numpy as jnp

        return jnp.asarray(values, dtype=x.dtype)
    return np.asarray(values, dtype=x.dtype)


def to_host(x: Any) -> np.ndarray:
    """A framework array as float64 NumPy (a host copy)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    return np.asarray(x, dtype=np.float64)
