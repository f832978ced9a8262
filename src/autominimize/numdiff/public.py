"""``am.numdiff.gradient`` and ``jacobian``: finite differences over any parameter structure."""

from __future__ import annotations

import concurrent.futures
from typing import Any, Callable

import numpy as np

from ..bounds import normalize_bounds
from ..calling import check_takes, make_caller, resolve_unpack
from ..params import ParamSpec, leaf_to_numpy, tree_leaves
from ..validation import brief
from .evaluator import Evaluator
from .flat import approx_jacobian

__all__ = ["gradient", "jacobian"]


def _flat_function(fun: Callable, spec: ParamSpec, args: tuple, unpack: str, x0: Any) -> Callable:
    mode = resolve_unpack(fun, x0, unpack, len(args))
    check_takes(fun, "fun", mode, x0, args)
    call = make_caller(fun, mode, args, x0)
    return _FlatCall(call, spec)


class _FlatCall:
    """The user's function of the parameter structure as a function of the flat vector."""

    def __init__(self, call: Callable, spec: ParamSpec) -> None:
        self.call = call
        self.spec = spec

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self.call(self.spec.unflatten(x))
        leaves = [leaf_to_numpy(leaf) for leaf in tree_leaves(out)]
        if not leaves or any(leaf.dtype.kind not in "fiub" for leaf in leaves):
            raise TypeError(
                f"fun returned {brief(out)}; finite differences need real numbers from fun: a number, an array of them, or a structure of those."
            )
        if len(leaves) == 1:
            return leaves[0].astype(np.float64)
        return np.concatenate([np.ravel(leaf) for leaf in leaves]).astype(np.float64)


def _derivative(fun, x0, args, method, rel_step, bounds, workers, executor, unpack):
    if not callable(fun):
        raise TypeError(f"fun must be callable; got {type(fun).__name__}.")
    if not isinstance(args, tuple):
        args = (args,)
    spec = ParamSpec.from_tree(x0)
    x = spec.flatten(x0)
    flat_bounds = normalize_bounds(bounds, spec, x0)
    if flat_bounds is not None and np.any((x < flat_bounds[0]) | (x > flat_bounds[1])):
        raise ValueError("x0 lies outside bounds; finite differences are taken inside the bounds only.")
    flat = _flat_function(fun, spec, args, unpack, x0)
    with Evaluator(workers, executor) as evaluator:
        jac, _ = approx_jacobian(flat, x, method=method, rel_step=rel_step, bounds=flat_bounds, evaluator=evaluator)
    return spec, jac


def gradient(
    fun: Callable,
    x0: Any,
    args: tuple = (),
    *,
    method: str = "central",
    rel_step: float | None = None,
    bounds: Any = None,
    workers: int | None = None,
    executor: concurrent.futures.Executor | None = None,
    unpack: str = "auto",
) -> Any:
    """The finite-difference gradient of a scalar function, in x0's structure.

    Parameters
    ----------
    fun : callable
        Returns a number; receives the parameters like ``am.minimize``'s ``fun`` (NumPy
        arrays in x0's structure), then ``*args``.
    x0 : array, scalar or nested dict/list/tuple of those
        The point.
    method : {'central', 'forward', 'backward'}
        Central (default here: accurate, 2n evaluations) or one-sided (n + 1).
    rel_step : float, optional
        The step relative to ``max(1, |x_i|)``; by default ``sqrt(eps)`` one-sided and
        ``eps**(1/3)`` central.
    bounds : optional
        Any bounds ``am.minimize`` accepts; no point outside them is evaluated.
    workers, executor
        Evaluate the points on ``workers`` local processes or on an Executor (see
        :class:`Evaluator`).

    Examples
    --------
    >>> import numpy as np
    >>> g = gradient(lambda p: p["a"] ** 2 + 3 * p["b"].sum(), {"a": 1.0, "b": np.zeros(2)})
    >>> round(g["a"], 6), np.round(g["b"], 6).tolist()
    (2.0, [3.0, 3.0])
    """
    spec, jac = _derivative(fun, x0, args, method, rel_step, bounds, workers, executor, unpack)
    if jac.ndim != 1:
        raise ValueError(f"fun must return a scalar for gradient(); it returned {jac.shape[0]} values. Use jacobian().")
    return spec.restore(jac)


def jacobian(
    fun: Callable,
    x0: Any,
    args: tuple = (),
    *,
    method: str = "central",
    rel_step: float | None = None,
    bounds: Any = None,
    workers: int | None = None,
    executor: concurrent.futures.Executor | None = None,
    unpack: str = "auto",
) -> np.ndarray:
    """The finite-difference Jacobian ``(m, n)`` of a function with any output structure.

    Rows follow the output's leaves (flattened with optree, each raveled in C order),
    columns x0's flat parameter vector. Arguments as in :func:`gradient`.

    Examples
    --------
    >>> import numpy as np
    >>> J = jacobian(lambda x: np.array([x[0] * x[1], x[1]]), np.array([2.0, 3.0]))
    >>> np.round(J, 6).tolist()
    [[3.0, 2.0], [0.0, 1.0]]
    """
    _, jac = _derivative(fun, x0, args, method, rel_step, bounds, workers, executor, unpack)
    return jac if jac.ndim == 2 else jac.reshape(1, -1)
