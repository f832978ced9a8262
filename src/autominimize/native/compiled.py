"""The native functions of one objective, from its backend."""

from __future__ import annotations

from typing import Any

from ..backends import get_backend
from ..backends.native_functions import Call, NativeFunctions
from ..params import ParamSpec

__all__ = ["compile_functions"]


def compile_functions(backend: str, call: Call, spec: ParamSpec, dtype: str, residual: bool, device: Any = None) -> NativeFunctions:
    """The native functions of backend ``backend`` (its ``native_functions``); cache the result per (function, key)."""
    return get_backend(backend).native_functions(call, spec, dtype, residual, device)
