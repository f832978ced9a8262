"""Checks shared by the framework backends."""

from __future__ import annotations

import math
import reprlib
import warnings
from typing import Any

import numpy as np

from ..params import leaf_to_numpy, tree_leaves


class ObjectiveOutputError(ValueError):
    """The user's function returned something a scalar method cannot use."""


class NoGradientError(ObjectiveOutputError):
    """The objective's output carries no gradient with respect to the parameters.

    A zero gradient in its place would stop every method at x0, reporting success.
    """


def no_gradient_error(how: str) -> NoGradientError:
    """The error for an objective whose output is not connected to the parameters; ``how``
    lists the ways the connection is usually lost in the framework."""
    return NoGradientError(
        f"fun's output carries no gradient with respect to the parameters: it was computed {how}, "
        "or it does not depend on them. Compute it from the parameters with the framework's "
        "operations and return the tensor itself."
    )


def require_real_number(out: Any, what: str = "fun") -> None:
    """Raise a clear error if a scalar objective's output cannot be one real number."""
    # the common outputs pass first: reading a dtype's text below costs about 2.7 µs a call
    if type(out) is float or getattr(getattr(out, "dtype", None), "kind", None) == "f":
        return
    hint = "a scalar method needs one real number: a float, or a 0-d array or tensor"
    if out is None:
        raise ObjectiveOutputError(f"{what} returned None; {hint}. Does it end with a return statement?")
    if isinstance(out, (str, bytes)):
        raise ObjectiveOutputError(f"{what} returned a {type(out).__name__} ({out!r}); {hint}.")
    if isinstance(out, tuple) and len(out) == 2 and any(isinstance(part, (tuple, list, dict)) or len(getattr(part, "shape", ())) for part in out):
        raise ObjectiveOutputError(f"{what} returned a tuple of 2; {hint}. If it returns (value, gradient), pass jac=True.")
    if isinstance(out, complex) or "complex" in str(getattr(out, "dtype", "")):
        raise ObjectiveOutputError(f"{what} returned a complex number; {hint}: return its real part or its absolute value.")


#: relative resolution of the floating types coarser than float32 (their machine epsilon)
_COARSE_FLOATS = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float8_e4m3fn": 2.0**-3, "float8_e5m2": 2.0**-2}


def coarse_output(out: Any) -> str | None:
    """The type name of ``out`` (a number, an array or a tensor of any framework) when its
    values are coarser than float32: an integer, a bool, float16, bfloat16; else None."""
    dtype = getattr(out, "dtype", None)
    return coarse_type(type(out).__name__ if dtype is None else str(getattr(dtype, "name", dtype)))


def coarse_type(name: str) -> str | None:
    """``name`` without its framework's prefix (``torch.int64``: ``int64``) when it names a type
    coarser than float32 (see :func:`coarse_output`); else None."""
    name = name.rsplit(".", 1)[-1]
    if name == "bool" or name.startswith(("int", "uint")) or name in _COARSE_FLOATS:
        return name
    return None


def note_coarse_output(holder: Any, out: Any, what: str = "fun") -> None:
    """Warn once per ``holder`` (a compiled function) when ``out`` is coarser than float32."""
    name = coarse_output(out)
    if name is not None and not getattr(holder, "coarse_warned", False):
        holder.coarse_warned = True
        warn_coarse_output(name, what, stacklevel=3)


def warn_coarse_output(name: str, what: str = "fun", stacklevel: int = 2) -> None:
    """Say once that ``what`` returned values of type ``name`` (see :func:`coarse_output`),
    and what precision the solve then has; the solve goes on in its own precision."""
    if name in _COARSE_FLOATS:
        eps = _COARSE_FLOATS[name]
        what_then = (
            f"{name} values, which resolve about {eps:.0e} relative: the method sees no change in {what} smaller than "
            f"that, so x is located only to about {eps**0.5:.0e} relative near a minimum and the stopping tests may never be met."
        )
    else:
        what_then = (
            f"{name} values; integers change in steps of 1: the method sees no change in {what} smaller than 1, "
            "and the gradient of a rounded value is zero, so a gradient method stops where it starts."
        )
    warnings.warn(
        f"{what} returned {what_then} Return float64 or float32 values (e.g. float(...), .astype(float), .double()).",
        UserWarning,
        stacklevel=stacklevel + 1,
    )


def require_scalar_shape(shape: tuple[int, ...], what: str = "fun") -> None:
    """Raise a clear error unless ``shape`` holds exactly one number."""
    if math.prod(shape) != 1:
        raise ObjectiveOutputError(
            f"{what} must return a scalar for a scalar minimization method, but it returned an "
            f"array of shape {tuple(shape)}. Reduce it (e.g. sum or mean), or pass a residual "
            "function to a least-squares method."
        )


def describe_output(out: Any) -> str:
    return f"{type(out).__module__}.{type(out).__name__}"


def vector_leaves(out: Any, what: str = "fun") -> list:
    """The leaves of a vector function's output (residuals, constraint values, a model's
    values), refused where they cannot be real values: none, complex, text or empty."""
    leaves = tree_leaves(out)
    if not leaves:
        raise ObjectiveOutputError(
            f"{what} returned {reprlib.repr(out)}, which holds no array; return the values (residuals or "
            "constraint values) as an array of real numbers, or any structure of arrays."
        )
    size = 0
    for leaf in leaves:
        if isinstance(leaf, (str, bytes)):
            raise ObjectiveOutputError(f"{what} returned a {type(leaf).__name__} ({reprlib.repr(leaf)}); return an array of real numbers.")
        if isinstance(leaf, complex) or "complex" in str(getattr(leaf, "dtype", "")):
            raise ObjectiveOutputError(
                f"{what} returned complex values; residuals must be real: return the real and "
                "imaginary parts side by side (e.g. concatenate r.real and r.imag)."
            )
        size += math.prod(1 if d is None else d for d in tuple(getattr(leaf, "shape", ())))
    if not size:
        raise ObjectiveOutputError(f"{what} returned no value (its output is empty); return at least one residual.")
    return leaves


def flatten_output(out: Any, what: str = "fun", dtype: Any = np.float64) -> np.ndarray:
    """Every leaf of a function's output (a scalar, an array or any structure), raveled and
    concatenated into one vector of ``dtype`` (None: the leaves' common type)."""
    leaves = vector_leaves(out, what)
    flat = np.concatenate([np.ravel(leaf_to_numpy(leaf)) for leaf in leaves])
    try:
        return flat if dtype is None else flat.astype(dtype)
    except (TypeError, ValueError):  # NumPy's text would name neither the argument nor the value
        kinds = sorted({type(leaf).__name__ for leaf in leaves if np.asarray(leaf_to_numpy(leaf)).dtype.kind not in "biufc"})
        raise TypeError(
            f"{what} must hold real numbers (an array, a scalar or a structure of them); it holds {', '.join(kinds) or 'other values'}."
        ) from None
