"""Checks shared by the framework backends."""

from __future__ import annotations

import math
import reprlib
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
    return flat if dtype is None else flat.astype(dtype)
