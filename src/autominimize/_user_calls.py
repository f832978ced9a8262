"""The user's own derivatives as functions of the flat vector, for ``am.minimize``.

``jac=`` (a callable, or True: ``fun`` returns the value and the gradient), ``hess=`` and
``hessp=`` take the parameters as ``fun`` does; the solve calls them with flat float64
vectors. Each call hands the user's function a copy of the point (and of an HVP's direction):
it may write into its input, which the method reads back (scipy's Newton-CG hands its own
iterate and direction to ``hessp``).

When the backend is NumPy and x0 is one array, that copy, in x0's shape, is the argument
itself: splitting the vector into x0's leaves and rebuilding the structure around them cost
3 µs per call, on a hand-written Rosenbrock HVP of 8 µs at n = 100.
"""

from __future__ import annotations

import inspect
import math
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from . import backends as _backends
from .backends.numpy_backend import UserValueAndGrad
from .user_derivatives import flatten_hessian, gradient_flattener

if TYPE_CHECKING:
    from ._setup import Setup

__all__ = ["fused_functions", "user_derivatives"]


def point_copy(setup: Setup) -> Callable[[np.ndarray], Any]:
    """A copy of a flat vector in x0's structure, with the backend's arrays: what the user's
    functions receive."""
    spec, backend = setup.spec, setup.backend
    if backend == "numpy" and spec.treedef.is_leaf():
        shape = spec.shapes[0]
        if shape == (spec.size,):
            return np.array
        return lambda x: x.reshape(shape).copy()
    if backend == "numpy":  # framework_params' NumPy case, a call fewer per evaluation
        return spec.copied_views
    return lambda x: _backends.framework_params(backend, spec, x.copy())


def fused_functions(setup: Setup, fun: Callable, value_fun: Callable | None) -> Any:
    """``jac=True``: ``fun`` returns ``(value, gradient)``, as the objective's flat functions;
    ``value_fun``, when given, is used where a value alone is asked for (``fun_and_jac``)."""
    # setup.call is fun's caller already, when fun is the solve's objective
    user, point, spec = setup.call if fun is setup.fun else setup.caller(fun), point_copy(setup), setup.spec
    flatten, scalar = gradient_flattener(spec, "jac"), UserValueAndGrad.scalar

    def call_flat(x: np.ndarray) -> tuple[float, np.ndarray]:
        out = user(point(x))
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise TypeError(_NOT_A_PAIR.format(type(out).__name__))
        f = out[0]
        return (f if type(f) is float else scalar(f)), flatten(out[1])

    # call_flat with the norm a journal records computed here, as base.grad_norm does: a
    # Python call fewer per evaluation of a solve with history
    def call_flat_with_norm(x: np.ndarray) -> tuple[float, np.ndarray, float]:
        out = user(point(x))
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise TypeError(_NOT_A_PAIR.format(type(out).__name__))
        f = out[0]
        f = f if type(f) is float else scalar(f)
        g = flatten(out[1])
        return f, g, math.sqrt(g.dot(g))

    if value_fun is None:
        return UserValueAndGrad(call_flat, spec, with_norm=call_flat_with_norm)
    user_value = setup.caller(value_fun)
    return UserValueAndGrad(call_flat, spec, lambda x: user_value(point(x)), call_flat_with_norm)


_NOT_A_PAIR = "with jac=True, fun must return (value, gradient); got {}."


def user_derivatives(setup: Setup, jac: Any, hess: Any, hessp: Any) -> dict:
    """Flat versions of the derivatives the user supplied; each overrides autodiff alone."""
    derivatives: dict[str, Callable | None] = {"gradient": None, "hessian": None, "hessp": None}
    if not (callable(jac) or callable(hess) or callable(hessp)):
        return derivatives
    spec, point = setup.spec, point_copy(setup)
    if callable(jac):
        user_jac = setup.caller(jac)
        flatten_jac = gradient_flattener(spec, "jac")
        derivatives["gradient"] = lambda x: flatten_jac(user_jac(point(x)))
    if callable(hess):
        user_hess = setup.caller(hess)
        derivatives["hessian"] = lambda x: flatten_hessian(user_hess(point(x)), spec)
    if callable(hessp):
        derivatives["hessp"] = _flat_hessp(_direction_first(setup, hessp), point, spec)
    return derivatives


def _flat_hessp(
    user_hessp: Callable[[Any, Any], Any], point: Callable[[np.ndarray], Any], spec: Any
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``hessp`` as a function of flat vectors. For one leaf, the flattener's common case (an
    array of x0's size) is written out: Newton-CG and trust-ncg make thousands of products
    a solve, each a Python call fewer."""
    flatten = gradient_flattener(spec, "hessp")
    if spec.treedef.num_leaves != 1:
        return lambda x, p: flatten(user_hessp(point(x), point(p)))
    size, float64 = spec.size, np.float64

    def flat_hessp(x: np.ndarray, p: np.ndarray) -> np.ndarray:
        out = user_hessp(point(x), point(p))
        if type(out) is np.ndarray and out.size == size:
            # not copied: the method only reads a product, as it does the user's own in a plain
            # scipy call (a copy cost 0.7 µs of a 16 µs Rosenbrock product at n = 1000)
            out = out.astype(float64, copy=False)
            return out if out.ndim == 1 else out.reshape(-1)
        return flatten(out)

    return flat_hessp


def _direction_first(setup: Setup, hessp: Callable) -> Callable[[Any, Any], Any]:
    """``hessp`` of the parameters and a direction in x0's structure, called by its own
    calling rule: the parameters as ``fun`` takes them, then the direction, then ``args``."""
    args = setup.args
    mode = setup.callers.mode(hessp, len(args) + 1)
    if mode == "kwargs":
        # as make_caller does: the direction and args fill the parameters x0's keys do not name
        free = [p.name for p in inspect.signature(hessp).parameters.values() if p.kind == p.POSITIONAL_OR_KEYWORD and p.name not in setup.callers.x0]
        name, extra = free[0], dict(zip(free[1:], args))
        return lambda params, p: hessp(**params, **{name: p}, **extra)
    if mode == "args":
        return lambda params, p: hessp(*params, p, *args)
    if args:
        return lambda params, p: hessp(params, p, *args)
    return hessp
