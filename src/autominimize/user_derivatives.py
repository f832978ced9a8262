"""Derivatives the user supplies, read in x0's structure or flat, as flat float64 arrays.

A gradient (``jac=``, ``hessp=``), a Hessian (``hess=``) and a Jacobian of residuals or
constraints (``jac=``, ``fun_and_jac=``) may each come back flat or in x0's structure; these
functions read them all one way and name the argument when the shape is wrong.
"""

from __future__ import annotations

import operator
from typing import Any, Callable

import numpy as np

from .params import ParamSpec, leaf_to_numpy, tree_leaves

__all__ = ["flatten_gradient", "gradient_flattener", "flatten_hessian", "flatten_jacobian"]

_size = operator.attrgetter("size")
_ravel = np.ndarray.ravel


def flatten_gradient(value: Any, spec: ParamSpec, name: str) -> np.ndarray:
    """A gradient as a flat vector of its own: an array of x0's size, or x0's structure."""
    if type(value) is np.ndarray and value.size == spec.size:  # the common case, in 0.3 µs of the 2.3
        array = value.astype(np.float64)
        return array if array.ndim == 1 else array.reshape(-1)
    if not isinstance(value, (dict, list, tuple)):
        array = leaf_to_numpy(value)
        if array.size == spec.size:
            return array.astype(np.float64).reshape(-1)
    return spec.flatten(value, name)


def gradient_flattener(spec: ParamSpec, name: str) -> Callable[[Any], np.ndarray]:
    """:func:`flatten_gradient` for the gradients of one solve, made for x0's structure.

    The first gradient is read by :func:`flatten_gradient`, which checks it in full. If it
    came in x0's structure with NumPy leaves of the right sizes, each later one is read in a
    few C calls (its structure and leaf sizes checked, its leaves concatenated in x0's order),
    where :func:`flatten_gradient` makes three Python calls and loops over the leaves. One
    that differs is read by :func:`flatten_gradient` again, with its error naming ``name``.

    Examples
    --------
    >>> import numpy as np
    >>> from autominimize.params import ParamSpec
    >>> flatten = gradient_flattener(ParamSpec.from_tree({"a": np.zeros(2), "b": 0.0}), "jac")
    >>> flatten({"a": np.ones(2), "b": np.float64(2.0)})
    array([1., 1., 2.])
    """
    if spec.treedef.num_leaves == 1:
        size, float64 = spec.size, np.float64

        def flatten_one(value: Any) -> np.ndarray:
            if type(value) is np.ndarray and value.size == size:  # flatten_gradient's common case: a call fewer
                array = value.astype(float64)
                return array if array.ndim == 1 else array.reshape(-1)
            return flatten_gradient(value, spec, name)

        return flatten_one
    flatten_up_to, sizes = spec.treedef.flatten_up_to, list(spec.sizes)
    concatenate, float64 = np.concatenate, np.dtype(np.float64)
    structured = False

    def flatten(value: Any) -> np.ndarray:
        nonlocal structured
        if structured:
            try:
                leaves = flatten_up_to(value)
                if list(map(_size, leaves)) == sizes:
                    # ravel'd leaves concatenated take 1.3 µs, concatenate(axis=None, dtype=)
                    # 1.5; a gradient of float32 leaves alone is converted after
                    out = concatenate(list(map(_ravel, leaves)))
                    return out if out.dtype == float64 else out.astype(float64)
            except (TypeError, ValueError, AttributeError):
                pass
            return flatten_gradient(value, spec, name)
        out = flatten_gradient(value, spec, name)
        if isinstance(value, (dict, list, tuple)):
            structured = set(map(type, flatten_up_to(value))) == {np.ndarray}
        return out

    return flatten


def flatten_hessian(value: Any, spec: ParamSpec, name: str = "hess") -> np.ndarray:
    """A Hessian as an (n, n) array of its own."""
    array = (value if type(value) is np.ndarray else leaf_to_numpy(value)).astype(np.float64)
    if array.size != spec.size**2:
        raise ValueError(f"{name} must return an ({spec.size}, {spec.size}) array; got shape {array.shape}.")
    return array.reshape(spec.size, spec.size)


def flatten_jacobian(out: Any, spec: ParamSpec, m: int, name: str = "jac") -> np.ndarray:
    """A Jacobian of m outputs as (m, n): a flat 2-D array, or x0's structure with (m, *leaf) leaves.

    Examples
    --------
    >>> import numpy as np
    >>> from autominimize.params import ParamSpec
    >>> spec = ParamSpec.from_tree({"a": np.zeros(2), "b": 0.0})
    >>> flatten_jacobian({"a": np.ones((3, 2)), "b": np.full(3, 2.0)}, spec, 3)[0]
    array([1., 1., 2.])
    """
    n = spec.size
    if not isinstance(out, (dict, list, tuple)) or spec.treedef.num_leaves == 1 and not isinstance(out, dict):
        leaves = tree_leaves(out)
        if len(leaves) == 1:
            array = leaf_to_numpy(leaves[0]).astype(np.float64)
            if array.size == m * n:
                return array.reshape(m, n)
            raise ValueError(f"{name} must return the ({m}, {n}) Jacobian; got shape {array.shape}.")
    blocks = []
    for leaf, info in zip(spec.leaves_of(out, name), spec.leaves):
        array = leaf_to_numpy(leaf).astype(np.float64)
        if array.size != m * info.size:
            raise ValueError(f"{name}: the block for {info.path} has shape {array.shape}; expected ({m}, *{info.shape}).")
        blocks.append(array.reshape(m, info.size))
    return np.hstack(blocks)
