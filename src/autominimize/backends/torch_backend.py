"""PyTorch backend: eager autograd on one flat tensor, reusing the forward pass where it can.

Every method builds a leaf tensor from the flat NumPy vector (zero-copy on CPU float64),
splits it into views shaped like x0's leaves and calls the user's function on them, so all
derivatives are taken with respect to the flat vector whatever the parameter structure.
"""

from __future__ import annotations

import contextlib
import importlib.util
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..params import ParamSpec
from .base import Backend
from .torch_batched import TorchBatched
from .torch_compiled import TorchScalar, TorchVector, _solve_scope, _torch

if TYPE_CHECKING:
    from .native_functions import NativeFunctions


class TorchBackend(Backend):
    """Differentiate with PyTorch autograd.

    Parameters
    ----------
    device : torch.device or str, optional
        Where the tensors are created. By default the device of x0's first torch leaf,
        else the CPU.
    """

    name = "torch"
    extra = "torch"

    def __init__(self, device: Any = None):
        self.device = device

    def available(self) -> bool:
        return importlib.util.find_spec("torch") is not None

    def solve_context(self, dtype: str) -> contextlib.AbstractContextManager:
        """When the thread's outermost solve ends, its compiled functions let go of the point
        (and forward graph) they kept for it: a cached function holds no per-point state."""
        return _solve_scope()

    def compile_scalar(self, call: Callable, spec: ParamSpec, dtype: str, device: Any = None) -> "TorchScalar":
        return TorchScalar(call, spec, dtype, self._device(spec, device))

    def compile_vector(self, call: Callable, spec: ParamSpec, dtype: str, device: Any = None) -> "TorchVector":
        return TorchVector(call, spec, dtype, self._device(spec, device))

    def compile_batched(self, call: Callable, spec: ParamSpec, dtype: str, device: Any = None) -> "TorchBatched":
        return TorchBatched(call, spec, dtype, self._device(spec, device))

    def _device(self, spec: ParamSpec, device: Any) -> Any:
        torch = _torch()
        device = device if device is not None else self.device
        if device is not None:
            try:
                return torch.device(device)
            except (RuntimeError, TypeError):
                raise ValueError(f"torch_device={device!r} is not a torch device; give e.g. 'cpu', 'cuda', 'cuda:0' or a torch.device.") from None
        torch_leaves = [leaf for leaf in spec.leaves if leaf.kind == "torch"]
        return torch_leaves[0].device if torch_leaves else torch.device("cpu")

    def constant_like(self, value: np.ndarray, like: Any) -> Any:
        return _torch().as_tensor(value, dtype=like.dtype, device=like.device)

    def squared_sum(self, leaf: Any) -> Any:
        return (leaf * leaf).sum()

    def ravel_concatenated(self, leaves: list) -> Any:
        torch = _torch()
        return torch.cat([torch.as_tensor(v).reshape(-1) for v in leaves])

    def finite(self, leaf: Any) -> Any:
        return _torch().nan_to_num(leaf) if leaf.is_floating_point() else leaf

    def masked(self, values: Any, mask: Any) -> Any:
        return _torch().where(mask, values, _torch().zeros_like(values))

    def native_functions(self, call: Callable, spec: ParamSpec, dtype: str, residual: bool, device: Any = None) -> NativeFunctions:
        from .native_torch import torch_functions

        return torch_functions(call, spec, residual)

    def output_shapes(self, fun: Callable, params: Any) -> list[tuple]:
        with _torch().no_grad():  # the call records no graph
            return super().output_shapes(fun, params)
