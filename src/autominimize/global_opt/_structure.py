"""Where a global problem's parameter structure and box come from: x0, or else the bounds.

A global optimizer needs bounds, not a start, so ``x0`` is optional: without it the bounds
describe the parameters (:func:`structure_from_bounds`), and the middle of the box stands in
for x0 wherever one is needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.optimize as so

from ..bounds import BoundsError, _is_number, _is_pair_sequence, normalize_bounds
from ..params import ParamSpec, tree_map

__all__ = ["flat_option", "problem_structure", "structure_from_bounds"]


def problem_structure(x0: Any, bounds: Any, finite: bool) -> tuple[Any, ParamSpec, tuple[np.ndarray, np.ndarray] | None]:
    """The structure template (x0 itself when given, else the middle of the box in the
    structure the bounds describe), its spec and the flat bounds.

    ``finite`` requires finite bounds on every parameter.
    """
    template = structure_from_bounds(bounds) if x0 is None else x0
    if x0 is None and isinstance(bounds, (list, tuple, dict)) and not bounds:
        raise BoundsError(f"bounds has no (low, high) pair in it; got {bounds!r}. Give one (low, high) per parameter, or Bounds(lb, ub).")
    spec = ParamSpec.from_tree(template)
    try:
        flat_bounds = normalize_bounds(bounds, spec, template)
    except BoundsError as exc:
        if x0 is None:
            raise
        raise BoundsError(
            f"{exc} x0 was given, so its structure ({spec.size} values) is the parameters'; give bounds for that structure, "
            "fix x0, or leave x0 out for the bounds alone to describe the parameters."
        ) from None
    if finite and (flat_bounds is None or not (np.all(np.isfinite(flat_bounds[0])) and np.all(np.isfinite(flat_bounds[1])))):
        raise BoundsError("bounds must be finite for every parameter (this method samples the whole box); give a finite (low, high) for each.")
    if x0 is None:
        middle = np.zeros(spec.size) if flat_bounds is None else _middle(*flat_bounds)
        template = spec.restore(middle)
    return template, spec, flat_bounds


def structure_from_bounds(bounds: Any) -> Any:
    """A template with the structure the bounds describe (zeros: NumPy arrays, or floats).

    Each ``(low, high)`` pair is one parameter of their broadcast shape (a float for two
    numbers), a list of per-element pairs a vector, ``Bounds(lb, ub)`` an array of lb's
    shape, an array of shape ``(..., 2)`` an array of shape ``(...)``; dicts, lists, tuples
    and namedtuples of those nest.
    """
    if bounds is None:
        raise BoundsError("bounds is required: give finite (low, high) limits for every parameter.")

    def is_leaf(node: Any) -> bool:
        return node is None or _bounds_leaf_shape(node) is not None

    def template(entry: Any) -> Any:
        shape = None if entry is None else _bounds_leaf_shape(entry)
        if shape is None:
            raise BoundsError(
                f"bounds: cannot read {entry!r} as the limits of one parameter. Without x0 every "
                "parameter needs its (low, high) pair (numbers or arrays), a list of per-element "
                "pairs, or a scipy.optimize.Bounds; pass x0= to give the structure instead."
            )
        return 0.0 if shape == () else np.zeros(shape)

    return tree_map(template, bounds, is_leaf=is_leaf, none_is_leaf=True)


def _is_limit(value: Any) -> bool:
    if _is_number(value) or isinstance(value, np.ndarray):
        return True
    if isinstance(value, list):
        try:
            np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            return False
        return True
    return False


def _bounds_leaf_shape(entry: Any) -> tuple[int, ...] | None:
    """The shape of the parameter a bounds entry describes, or None for a container."""
    if isinstance(entry, so.Bounds):
        return np.broadcast_shapes(np.shape(entry.lb), np.shape(entry.ub))
    if isinstance(entry, np.ndarray) and entry.ndim >= 1 and entry.shape[-1] == 2:
        return entry.shape[:-1]
    if isinstance(entry, (list, tuple)) and entry and _is_pair_sequence(entry, len(entry)):
        if not (len(entry) == 2 and all(_is_number(v) for v in entry)):
            return (len(entry),)
    if isinstance(entry, (list, tuple)) and len(entry) == 2 and all(_is_limit(v) for v in entry):
        try:
            return np.broadcast_shapes(np.shape(entry[0]), np.shape(entry[1]))
        except ValueError:
            raise BoundsError(f"bounds entry {entry!r}: low and high do not broadcast to one shape.") from None
    return None


def _middle(lb: np.ndarray, ub: np.ndarray) -> np.ndarray:
    lo = np.where(np.isfinite(lb), lb, np.where(np.isfinite(ub), np.minimum(ub, 0.0), 0.0))
    hi = np.where(np.isfinite(ub), ub, np.maximum(lo, 0.0))
    return 0.5 * (lo + hi)


def flat_option(value: Any, spec: ParamSpec, name: str, dtype: Any = np.float64) -> np.ndarray:
    """A per-parameter option (``integrality``, ...) in x0's structure or flat, as a flat array."""
    try:
        return spec.flatten(value, name).astype(dtype)
    except (ValueError, TypeError):
        pass
    kind = np.asarray(value).dtype.kind if not isinstance(value, dict) else "O"
    if kind not in "biuf" or (dtype is bool and kind == "f"):
        what = "True/False (or 0/1)" if dtype is bool else "numbers"
        raise TypeError(f"{name} must hold {what}, in x0's structure or as one value or a flat array of {spec.size}; got {value!r}.")
    try:
        return np.broadcast_to(np.asarray(value, dtype=dtype).reshape(-1), (spec.size,)).copy()
    except ValueError:
        raise ValueError(
            f"{name} must mirror x0's structure, or be one value or a flat array of {spec.size} (the number of parameters); got {value!r}."
        ) from None
