"""Bounds in every format people use, broadcast to one (lb, ub) pair of flat vectors.

Accepted forms (``None`` or ``±inf`` always means unbounded):

* ``None``: no bounds.
* ``(low, high)`` with two numbers: the same interval for every parameter.
* ``scipy.optimize.Bounds(lb, ub)``: numbers, flat vectors of length ``n``, or (for a single
  array x0) arrays of x0's shape.
* A structure mirroring x0 (a dict with a subset of x0's keys, a list or tuple with one entry
  per item of x0), holding for each leaf one of: ``None``; a ``(low, high)`` pair whose parts
  broadcast to the leaf's shape (TF1's ``var_to_bounds``: ``(0, np.inf)``,
  ``(-np.inf, [1, 2])``, ``(-np.inf, [[1], [2], [3]])``); a list of one ``(low, high)`` pair
  per element (scipy's per-element form); an array of shape ``(*leaf.shape, 2)`` or
  ``(leaf.size, 2)``; or a ``Bounds``.
* scipy's flat form: a sequence of ``n`` ``(low, high)`` pairs, one per element of the flat
  vector.

A sequence of ``leaf.size`` pairs is read as per-element bounds (scipy's convention) whenever
every item is itself a list or tuple of two numbers, even when the leaf has two elements; a
pair of NumPy arrays is always TF1's ``(low, high)``.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
from scipy.optimize import Bounds

from .params import LeafInfo, ParamSpec, structure_text

#: the root name that begins a leaf's path (x0, params, ...)
_ROOT = re.compile(r"^\w+")

__all__ = ["normalize_bounds", "clip_to_bounds", "BoundsError"]


class BoundsError(ValueError):
    """Bounds that cannot be matched to x0."""


def _is_number(value: Any) -> bool:
    if isinstance(value, (list, tuple, dict)):  # np.ndim raises on ragged ones like (0, [1, 2])
        return False
    return value is None or (np.ndim(value) == 0 and _numeric(value))


def _numeric(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _as_limit(value: Any, default: float, where: str) -> np.ndarray:
    if value is None:
        return np.asarray(default, dtype=np.float64)
    if type(value) in (int, float):  # a plain number, as most bounds are: no object array
        return np.asarray(float(value))
    try:
        array = np.asarray(value, dtype=object)
        array = np.where(array == None, default, array)  # noqa: E711 - elementwise None test
        return array.astype(np.float64)
    except (TypeError, ValueError):
        raise BoundsError(f"bounds{where}: {value!r} is not a number, None or an array of numbers.") from None


def _is_pair_sequence(value: Any, count: int) -> bool:
    if isinstance(value, np.ndarray) or not isinstance(value, (list, tuple)) or len(value) != count:
        return False
    # Items must be lists or tuples: a pair of arrays is TF1's (low, high), never two pairs.
    return all(isinstance(item, (list, tuple)) and len(item) == 2 and all(_is_number(v) for v in item) for item in value)


def _broadcast(value: Any, default: float, shape: tuple[int, ...], where: str) -> np.ndarray:
    limit = _as_limit(value, default, where)
    if limit.ndim == 0:  # a number or None: np.broadcast_to's own Python costs 4 µs a limit
        return np.full(math.prod(shape), limit, dtype=np.float64)
    try:
        return np.broadcast_to(limit, shape).reshape(-1)
    except ValueError:
        raise BoundsError(f"bounds{where}: a limit of shape {limit.shape} does not broadcast to the leaf's shape {shape}.") from None


def _leaf_bounds(entry: Any, info: LeafInfo, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-element (lb, ub) of one leaf from its bounds entry."""
    size, shape = info.size, info.shape
    if entry is None:
        return np.full(size, -np.inf), np.full(size, np.inf)
    if isinstance(entry, Bounds):
        lb, ub = entry.lb, entry.ub
        if np.size(lb) == size and np.shape(lb) != shape:
            lb = np.reshape(lb, shape)
        if np.size(ub) == size and np.shape(ub) != shape:
            ub = np.reshape(ub, shape)
        return _broadcast(lb, -np.inf, shape, where), _broadcast(ub, np.inf, shape, where)
    if isinstance(entry, np.ndarray) and entry.ndim >= 1 and entry.shape[-1] == 2 and entry.size == 2 * size:
        pairs = entry.reshape(size, 2)
        return _as_limit(pairs[:, 0], -np.inf, where).reshape(-1), _as_limit(pairs[:, 1], np.inf, where).reshape(-1)
    if _is_pair_sequence(entry, size) and size != 0 and not (size == 1 and _is_number(entry[0])):
        pairs = [(lo, hi) for lo, hi in entry]
        lb = np.array([-np.inf if lo is None else float(lo) for lo, _ in pairs])
        ub = np.array([np.inf if hi is None else float(hi) for _, hi in pairs])
        return lb, ub
    if isinstance(entry, (list, tuple)) and len(entry) == 2:
        low, high = entry
        return _broadcast(low, -np.inf, shape, where), _broadcast(high, np.inf, shape, where)
    raise BoundsError(
        f"bounds{where}: cannot read {entry!r} as bounds for a leaf of shape {shape}; give None, a "
        "(low, high) pair (numbers or arrays broadcasting to the leaf), a list of one (low, high) "
        "pair per element, or scipy.optimize.Bounds."
    )


def _fill_missing_keys(bounds: Any, x0_example: Any) -> Any:
    """Dict bounds may name a subset of x0's keys; the others are unbounded."""
    if isinstance(bounds, dict) and isinstance(x0_example, dict):
        unknown = [k for k in bounds if k not in x0_example]
        if unknown:
            raise BoundsError(f"bounds has keys {unknown} that x0 does not have; x0's keys are {list(x0_example)}.")
        return {k: _fill_missing_keys(bounds.get(k), v) for k, v in x0_example.items()}
    return bounds


def normalize_bounds(bounds: Any, spec: ParamSpec, x0: Any = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Flat ``(lb, ub)`` float64 vectors for ``bounds`` in any accepted form, or None.

    Examples
    --------
    >>> import numpy as np
    >>> x0 = {"U": np.zeros((2, 1)), "V": np.zeros(2)}
    >>> lb, ub = normalize_bounds({"U": (None, 0)}, ParamSpec.from_tree(x0), x0)
    >>> ub.tolist()
    [0.0, 0.0, inf, inf]
    """
    if bounds is None:
        return None
    n = spec.size
    single_leaf = len(spec.leaves) == 1 and spec.treedef.num_nodes == 1
    if isinstance(bounds, Bounds):
        lb, ub = bounds.lb, bounds.ub
        if single_leaf:
            lb_flat, ub_flat = _leaf_bounds(bounds, spec.leaves[0], "")
        else:
            if np.ndim(lb) > 1 or np.ndim(ub) > 1 or np.size(lb) not in (1, n) or np.size(ub) not in (1, n):
                raise BoundsError(
                    f"bounds: scipy.optimize.Bounds must hold numbers or flat vectors of length {n} "
                    f"(the number of parameters); got lb of shape {np.shape(lb)} and ub of shape "
                    f"{np.shape(ub)}. For per-leaf bounds, give a structure mirroring x0."
                )
            lb_flat = _broadcast(lb, -np.inf, (n,), "")
            ub_flat = _broadcast(ub, np.inf, (n,), "")
    elif isinstance(bounds, (list, tuple)) and len(bounds) == 2 and all(_is_number(b) for b in bounds):
        lb_flat = np.full(n, -np.inf if bounds[0] is None else float(bounds[0]))
        ub_flat = np.full(n, np.inf if bounds[1] is None else float(bounds[1]))
    elif single_leaf:
        lb_flat, ub_flat = _leaf_bounds(bounds, spec.leaves[0], "")
    else:
        lb_flat, ub_flat = _structured_bounds(bounds, spec, x0)
    _check_order(lb_flat, ub_flat, spec)
    return lb_flat, ub_flat


def _structured_bounds(bounds: Any, spec: ParamSpec, x0: Any) -> tuple[np.ndarray, np.ndarray]:
    n = spec.size
    if x0 is not None:
        bounds = _fill_missing_keys(bounds, x0)
    try:
        entries = spec.treedef.flatten_up_to(bounds)
    except (ValueError, TypeError):
        if _is_pair_sequence(bounds, n):
            return _leaf_bounds(bounds, LeafInfo("x0", (n,), np.dtype(np.float64), "numpy"), "")
        given = f"a {type(bounds).__name__}" + (f" of {len(bounds)}" if hasattr(bounds, "__len__") else "")
        if isinstance(bounds, tuple) and len(bounds) == 2 and all(np.ndim(b) == 1 for b in bounds):
            given = f"(low, high) arrays of {np.size(bounds[0])} and {np.size(bounds[1])} elements"
        raise BoundsError(
            f"bounds does not mirror x0's structure ({structure_text(spec.treedef)}) and is not a single (low, high) "
            f"pair nor a sequence of {n} per-element pairs; got {given}. Give bounds in x0's structure, "
            f"{n} (low, high) pairs in x0's flat order, or scipy.optimize.Bounds of {n} elements."
        ) from None
    lbs, ubs = [], []
    for info, entry in zip(spec.leaves, entries):
        where = _ROOT.sub("", info.path, count=1)  # the path inside the tree: bounds['b'] for x0['b'] or params['b']
        lb, ub = _leaf_bounds(entry, info, where)
        lbs.append(lb)
        ubs.append(ub)
    return np.concatenate(lbs), np.concatenate(ubs)


def _element(i: int, spec: ParamSpec) -> str:
    """The name of flat element ``i``: its leaf's path and its index in the leaf."""
    leaf_index = int(np.searchsorted(spec.offsets, i, side="right") - 1)
    info = spec.leaves[leaf_index]
    element = [int(k) for k in np.unravel_index(i - spec.offsets[leaf_index], info.shape)] if info.shape else []
    return f"{info.path}{element if element else ''}"


def _check_order(lb: np.ndarray, ub: np.ndarray, spec: ParamSpec) -> None:
    bad = np.flatnonzero(lb > ub)
    if bad.size:
        i = int(bad[0])
        raise BoundsError(f"bounds for {_element(i, spec)}: low {lb[i]} is greater than high {ub[i]}.")
    if np.isnan(lb).any() or np.isnan(ub).any():
        raise BoundsError("bounds contain NaN; use None or ±inf for an unbounded side.")
    # scipy's bounded methods return x = inf with success=True for such a bound
    for side, limits, infinite, free in (("low", lb, np.inf, "-inf"), ("high", ub, -np.inf, "+inf")):
        empty = np.flatnonzero(limits == infinite)
        if empty.size:
            raise BoundsError(
                f"bounds for {_element(int(empty[0]), spec)}: {side} is {infinite:+}, which no number reaches; "
                f"use None or {free} for an unbounded side."
            )


def clip_to_bounds(x: np.ndarray, bounds: tuple[np.ndarray, np.ndarray] | None, spec: ParamSpec) -> tuple[np.ndarray, list[str]]:
    """Clip x into the bounds; return the clipped vector and where it moved, leaf by leaf.

    A leaf is named by its path; where it is an array, with the index of the one element that
    moved (``x0['w'][1, 0]``) or how many moved and the first (``x0['w'] (3 of 6 elements,
    first at [0, 2])``).
    """
    if bounds is None:
        return x, []
    lb, ub = bounds
    clipped = np.clip(x, lb, ub)
    moved = np.flatnonzero(clipped != x)
    if not moved.size:
        return clipped, []
    owners = np.searchsorted(spec.offsets, moved, side="right") - 1
    names = []
    for k in np.unique(owners):
        leaf, inside = spec.leaves[int(k)], moved[owners == k] - spec.offsets[int(k)]
        if not leaf.shape:
            names.append(leaf.path)
            continue
        first = ", ".join(str(int(i)) for i in np.unravel_index(int(inside[0]), leaf.shape))
        names.append(f"{leaf.path}[{first}]" if inside.size == 1 else f"{leaf.path} ({inside.size} of {leaf.size} elements, first at [{first}])")
    return clipped, names
