"""The set-up every entry point shares: precision, backend, bounds at x0, compiled functions.

Each entry point normalises the user's arguments through these functions, so a precision is
read one way, a backend is chosen one way, a starting point outside the bounds is clipped with
one warning, and compiled functions are cached under one key.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Hashable

import numpy as np

from . import backends as _backends
from .bounds import clip_to_bounds
from .params import ParamSpec, leaf_kind

__all__ = ["PRECISIONS", "resolve_precision", "backend_from_leaves", "clip_start", "compile_key", "cached", "compile_functions"]

PRECISIONS = ("float64", "float32")


def resolve_precision(precision: Any, x0: Any = None) -> tuple[str, bool]:
    """``(dtype name, explicitly given)``; None is inferred from x0 (:func:`infer_precision`)."""
    if precision is None:
        return infer_precision(x0), False
    name = np.dtype(precision).name if not isinstance(precision, str) else precision.lower()
    if name not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not supported; use 'float64' (default) or 'float32'.")
    return name, True


def infer_precision(x0: Any) -> str:
    """'float32' when every leaf of x0 is a float32 tensor of a framework (a float32 model runs
    in float32, as it was built), 'float64' otherwise (NumPy and Python numbers included, as
    scipy reads them)."""
    import optree

    leaves = optree.tree_leaves(x0)
    if not leaves or any(leaf_kind(leaf) not in ("torch", "jax", "tf") for leaf in leaves):
        return "float64"
    float32 = all(str(getattr(leaf, "dtype", "")).replace("'", "").removesuffix(">").endswith("float32") for leaf in leaves)
    return "float32" if float32 else "float64"


def backend_from_leaves(spec: ParamSpec) -> str:
    """The framework of x0's leaves when they hold exactly one; NumPy otherwise.

    For user-supplied derivatives, where no evaluation is needed to choose a backend.
    """
    kinds = {k for k in spec.kinds() if k in ("torch", "jax", "tf")}
    return {"torch": "torch", "jax": "jax", "tf": "tensorflow"}[kinds.pop()] if len(kinds) == 1 else "numpy"


def clip_start(x0: np.ndarray, bounds: tuple[np.ndarray, np.ndarray] | None, spec: ParamSpec, *, stacklevel: int) -> np.ndarray:
    """x0 clipped into the bounds, with one warning naming the leaves that moved.

    ``stacklevel`` counts from the caller of this function, as in ``warnings.warn``.
    """
    if bounds is None:
        return x0
    clipped, moved = clip_to_bounds(x0, bounds, spec)
    if moved:
        warnings.warn(f"x0 is outside the bounds at {', '.join(moved)}; it was clipped into them.", UserWarning, stacklevel=stacklevel + 1)
    return clipped


def compile_key(backend: str, kind: str, spec: ParamSpec, dtype: str, unpack: str, args: tuple, device: Any, *extra: Hashable) -> tuple:
    """The compile-cache key of one function: what a compiled function depends on besides the function."""
    return (backend, kind, spec.key, dtype, unpack, tuple(id(a) for a in args), str(device), *extra)


def cached(fun: Callable, key: tuple, args: tuple, build: Callable[[], Any]) -> Any:
    """The compiled function under ``key`` (built once); it keeps ``args`` alive so their ids stay unique."""
    compiled = _backends.cached_compile(fun, key, build)
    compiled.__dict__.setdefault("_args_keepalive", args)
    return compiled


def compile_functions(
    backend_obj: Any, kind: str, fun: Callable, call: Callable, spec: ParamSpec, dtype: str, unpack: str, args: tuple, device: Any
) -> Any:
    """``fun``'s compiled scalar (``kind`` 'scalar', 'sum-of-squares') or vector ('vector') functions.

    On backends that compile, arrays in ``args`` are inputs: the cache key holds their shapes
    and dtypes, and the cached functions are bound to this call's args.
    """
    args_part, args_are_inputs = _backends.args_key(backend_obj, call, args)
    key = compile_key(backend_obj.name, kind, spec, dtype, unpack, (), device, args_part)

    def build() -> Any:
        compile_fn = backend_obj.compile_vector if kind == "vector" else backend_obj.compile_scalar
        if backend_obj.name == "torch" and device is not None:
            return compile_fn(call, spec, dtype, device=device)
        return compile_fn(call, spec, dtype)

    compiled = cached(fun, key, args, build)
    return compiled.bind(call) if args_are_inputs else compiled
