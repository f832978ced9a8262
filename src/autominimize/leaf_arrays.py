"""One leaf of x0 in its own framework: the checks a torch leaf must pass, and the copy of a
NumPy part back in the leaf's framework, dtype and device.

The only framework code :mod:`autominimize.params` needs; it sits below the backends (which
import params) so that ``ParamSpec`` works on its own. Each framework is imported here only
when a leaf of it is met.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_torch_leaf", "torch_dtype_of", "restore_leaf"]


def check_torch_leaf(path: str, leaf: Any) -> None:
    """A torch tensor the solve can read: dense, with data, of a dtype NumPy has."""
    import torch

    if leaf.layout != torch.strided:
        raise TypeError(f"{path} is a sparse torch tensor (layout {leaf.layout}); parameters must be dense tensors: pass {path}.to_dense().")
    if leaf.device.type == "meta":
        raise TypeError(f"{path} is a torch tensor on the meta device, which holds no values; give a tensor on the CPU or a GPU.")
    if leaf.dtype in (torch.bfloat16,) or leaf.is_complex():
        raise TypeError(
            f"{path} has torch dtype {str(leaf.dtype).removeprefix('torch.')}; parameters must be float64, float32, "
            f"float16 or integer tensors: pass {path}.double() or {path}.float() (precision='float32' computes in float32)."
        )


def torch_dtype_of(dtype: np.dtype) -> Any:
    """The torch dtype of a NumPy float64 or float32."""
    import torch

    return {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}[dtype]


def restore_leaf(kind: str, part: np.ndarray, dtype: np.dtype, torch_dtype: Any = None, device: Any = None) -> Any:
    """``part`` as a leaf of ``kind`` (python, numpy, torch, jax or tf) with the leaf's dtype and device."""
    if kind == "python":
        return float(part.reshape(()))
    if kind == "numpy":
        return np.array(part, dtype=dtype)
    if kind == "torch":
        import torch

        return torch.tensor(np.array(part), dtype=torch_dtype, device=device)
    if kind == "jax":
        import jax

        # a float64 leaf stays float64 where the caller's JAX has 64-bit types off (an integer
        # x0 solved in float64, or x0 made under jax.enable_x64)
        with jax.enable_x64(dtype.itemsize == 8 or jax.enable_x64.value):
            return jax.device_put(part.astype(dtype))
    if kind == "tf":
        import tensorflow as tf

        return tf.constant(part.astype(dtype))
    return np.array(part)
