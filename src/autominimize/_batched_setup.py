"""The set-up of a batched fit: stacked starts as rows, per-member data, backend, bounds.

Both batched entry points read their arguments through these functions: the starts stacked
along the first axis of every leaf become (B, n) float64 rows and one member's structure,
per-member data is checked for its batch axis, the backend is chosen as for ``am.minimize``
(on one member's rows) and the bounds and precision become a picklable
:class:`~autominimize.drivers.batched_members.MemberProblem`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
import scipy.optimize as so

from . import backends as _backends
from ._setup import resolve_precision
from .bounds import normalize_bounds
from .calling import make_caller
from .validation import brief, check_call
from .drivers.batched_members import MemberProblem
from .native.batched_lm import BatchedLM
from .params import ParamSpec, leaf_kind, leaf_to_numpy, tree_leaves, tree_map

__all__ = ["as_numpy", "check_chunk_size", "check_member_call", "finite_copy", "make_problem", "member_arrays", "select_backend", "unstack"]


def unstack(x0: Any, name: str) -> tuple[ParamSpec, ParamSpec, np.ndarray]:
    """x0's stacked structure, one member's structure, and the (B, n) float64 rows."""
    leading = {np.shape(leaf_to_numpy(leaf))[:1] for leaf in tree_leaves(x0)}
    if leading == {(0,)}:
        raise ValueError(f"{name} holds no member: the first (batch) axis of its leaves has length 0; give at least one start.")
    stacked = ParamSpec.from_tree(finite_copy(x0), name)  # a NaN start is one member's failure, reported per member
    sizes = {leaf.shape[0] if leaf.shape else None for leaf in stacked.leaves}
    if None in sizes or len(sizes) != 1:
        raise ValueError(
            f"{name} holds one start per member, stacked along the first axis of every leaf; the leaves' "
            f"shapes are {[leaf.shape for leaf in stacked.leaves]} (a number has no batch axis)."
        )
    count = sizes.pop()
    member = ParamSpec(stacked.treedef, tuple(dataclasses.replace(leaf, shape=leaf.shape[1:]) for leaf in stacked.leaves))
    parts = stacked.split(stacked.flatten(x0, name))
    return stacked, member, np.concatenate([part.reshape(count, -1) for part in parts], axis=1)


def finite_copy(tree: Any) -> Any:
    """``tree`` with NaN and inf replaced by numbers (for reading its structure only)."""

    def finite(leaf: Any) -> Any:
        return leaf if leaf_kind(leaf) in ("python", "other") else _backends.array_backend(leaf).finite(leaf)

    return tree_map(finite, tree)


def member_arrays(values: Any, count: int, name: str) -> tuple:
    """Per-member data as NumPy arrays, each checked for its batch axis of length ``count``."""
    if not isinstance(values, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of arrays, each with the batch axis first; got {type(values).__name__}.")
    arrays = tuple(leaf_to_numpy(v) for v in values)
    for i, array in enumerate(arrays):
        if array.ndim == 0 or array.shape[0] != count:
            raise ValueError(f"{name}[{i}] has shape {array.shape}; its first axis must be the batch axis, of length {count} (x0's).")
    return arrays


def check_chunk_size(chunk_size: Any) -> int | None:
    """``chunk_size`` as an int (or None), a ValueError unless it is a positive integer."""
    if chunk_size is not None and (not isinstance(chunk_size, (int, np.integer)) or isinstance(chunk_size, bool) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive integer or None; got {chunk_size!r}.")
    return None if chunk_size is None else int(chunk_size)


def select_backend(backend: str | None, spec: ParamSpec, fun: Callable, unpack: str, template: Any, row_args: tuple | None) -> str:
    """The backend, chosen as for ``am.minimize`` from one member's call (``row_args``: its
    data); NumPy without a choice when ``fun`` is vectorized (``row_args`` None)."""
    if backend is None and (row_args is None or getattr(fun, "vectorized", False)):  # vectorized=True: NumPy
        return "numpy"
    probe = _Probe(make_caller(fun, unpack, row_args, template), fun)
    name = _backends.select_backend(backend, spec, probe, spec.flatten(template))
    if not _backends.get_backend(name).batched_fits:
        raise ValueError(f"batched fits run on NumPy, JAX or torch; the backend is {name!r}.")
    return name


class _Probe:
    """A caller whose ``__wrapped__`` is the user's function (backend detection reads it)."""

    def __init__(self, call: Callable, fun: Callable) -> None:
        self.call, self.__wrapped__ = call, getattr(fun, "f", fun)

    def __call__(self, params: Any) -> Any:
        return self.call(params)


def make_problem(
    fun: Callable,
    spec: ParamSpec,
    rows: np.ndarray,
    template: Any,
    *,
    unpack: str,
    args: tuple,
    backend: str,
    precision: Any,
    bounds: Any,
    algo: BatchedLM,
    error_handling: str,
    vectorized: bool,
) -> tuple[MemberProblem, np.ndarray]:
    """The member problem, and the starting rows clipped into the bounds (in any format of
    ``am.least_squares``, for one member's structure ``template``)."""
    if not isinstance(vectorized, (bool, np.bool_)):
        raise TypeError(f"vectorized must be True or False; got {vectorized!r} ({type(vectorized).__name__}).")
    if vectorized and backend != "numpy":
        raise ValueError(f"vectorized=True is for the NumPy backend; on {backend} fun is mapped over the members (vmap) and written for one.")
    lower = upper = None
    if bounds is not None:
        lower, upper = normalize_bounds(_scipy_pair(bounds, spec.size), spec, template)
        rows = np.clip(rows, lower, upper)
        lower = None if np.all(np.isneginf(lower)) else lower
        upper = None if np.all(np.isposinf(upper)) else upper
    dtype, _ = resolve_precision(precision)
    problem = MemberProblem(fun, spec, unpack, args, backend, dtype, algo, lower, upper, error_handling, bool(vectorized))
    return problem, rows


def _scipy_pair(bounds: Any, n: int) -> Any:
    """A 2-tuple of numbers or flat n-vectors is scipy's ``(lb, ub)``, as in ``least_squares``."""
    if not (isinstance(bounds, tuple) and len(bounds) == 2):
        return bounds
    flat = [part is None or np.ndim(part) == 0 or (np.ndim(part) == 1 and np.size(part) == n) for part in bounds]
    if all(flat) and any(np.ndim(part) == 1 for part in bounds if part is not None):
        low, high = (np.full(n, -np.inf if i == 0 else np.inf) if part is None else part for i, part in enumerate(bounds))
        return so.Bounds(low, high)
    return bounds


def as_numpy(value: Any, name: str) -> np.ndarray:
    """An array argument (of any framework) as a NumPy array of numbers; a TypeError for anything else."""
    array = leaf_to_numpy(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be an array of real numbers; got {brief(value)} ({type(value).__name__}).")
    return array


def check_member_call(fun: Callable, unpack: str, template: Any, member_data: tuple, args: tuple) -> None:
    """``fun`` takes one member's call, ``fun(params, *member_args_b, *args)`` (the parameters
    spread as ``unpack`` says), else a TypeError with the counts, no array printed whole."""
    if unpack == "kwargs":
        return  # chosen from fun's own parameter names
    leading = len(template) if unpack == "args" else 1
    params = "the items of x0 (one member's)" if unpack == "args" else "one member's parameters in x0's structure"
    check_call(
        fun,
        "fun",
        f"fun({'*x' if unpack == 'args' else 'x'}, *member_args_b, *args): {params}, then member b's row of each of the "
        f"{len(member_data)} member_args array(s), then the {len(args)} item(s) of args={brief(args)}",
        leading + len(member_data) + len(args),
        hint="member_args holds per-member data (batch axis first), args data shared by every member",
    )
