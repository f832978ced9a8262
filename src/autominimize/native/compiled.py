"""The native functions of one objective on its backend, each framework's module loaded only for it."""

from __future__ import annotations

from typing import Any

from ..params import ParamSpec
from .oracles import Call, NativeFunctions

__all__ = ["compile_functions"]


def compile_functions(backend: str, call: Call, spec: ParamSpec, dtype: str, residual: bool, device: Any = None) -> NativeFunctions:
    """The native functions for one backend; cache the result per (function, key)."""
    if backend == "jax":
        from .functions_jax import jax_functions

        return jax_functions(call, spec, dtype, residual)
    if backend == "torch":
        from .functions_torch import torch_functions

        return torch_functions(call, spec, residual)
    from .functions_host import host_functions

    return host_functions(backend, call, spec, dtype, residual)
