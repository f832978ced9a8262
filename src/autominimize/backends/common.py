"""Checks shared by the framework backends."""

from __future__ import annotations

import math
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


def flatten_output(out: Any, what: str = "the function's output") -> np.ndarray:
    """Every leaf of a function's output (a scalar, an array or any structure), raveled and
    concatenated into one float64 vector."""
    leaves = tree_leaves(out)
    if not leaves:
        raise ValueError(f"{what} holds no array.")
    return np.concatenate([np.ravel(leaf_to_numpy(leaf)) for leaf in leaves]).astype(np.float64)
