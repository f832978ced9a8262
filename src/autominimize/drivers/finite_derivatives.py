"""Derivatives checked to be finite before scipy's trust-region methods read them.

dogleg, trust-ncg, trust-exact and trust-krylov refuse a gradient or Hessian holding NaN or
inf with NumPy's internal text ("array must not contain infs or NaNs"), which names neither
the function nor the point. Under ``error_handling='raise'`` they get the derivatives through
these checks instead; under ``'continue'`` the objective already makes such a point a failed
point, which the method steps back from.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..errors import attach_point

if TYPE_CHECKING:
    from ..problem import Objective

__all__ = ["check_finite_derivatives"]

#: the scipy methods that check their derivatives with ``asarray_chkfinite``
TRUST_REGION = frozenset({"dogleg", "trust-ncg", "trust-exact", "trust-krylov"})


def check_finite_derivatives(objective: Objective, method: str, kwargs: dict[str, Any]) -> None:
    """Wrap ``kwargs``' ``jac``, ``hess`` and ``hessp`` (scipy's keywords) in a check that
    they are finite, for a trust-region ``method`` (one of :data:`TRUST_REGION`) under
    ``error_handling='raise'``."""
    if objective.error_handling != "raise":
        return
    given = {"jac": objective.user_gradient, "hess": objective.user_hessian, "hessp": objective.user_hessp}
    for key in ("jac", "hess", "hessp"):
        if callable(kwargs.get(key)):
            what = f"the user-supplied {key}" if given[key] is not None else _COMPUTED[key]
            kwargs[key] = _checked(kwargs[key], what, objective, method.lower())


_COMPUTED = {"jac": "the gradient of fun", "hess": "the Hessian of fun", "hessp": "a Hessian-vector product of fun"}


def _checked(derivative: Callable, what: str, objective: Objective, method: str) -> Callable:
    def checked(x: np.ndarray, *args: Any) -> Any:
        out = derivative(x, *args)
        values = out if type(out) is np.ndarray else np.asarray(out, dtype=np.float64)
        flat = values if values.ndim == 1 else values.ravel()
        # a dot product is finite when every entry is (or overflows: then the entries are
        # read); it costs about 1 µs for n = 1000, the entries' check about 4 µs per call
        # a point or direction the method made of NaN (trust-krylov's trlib near convergence)
        # is the method's own doing, not the function's
        if not math.isfinite(flat.dot(flat)) and not np.isfinite(values).all() and all(np.isfinite(a).all() for a in (x, *args)):
            raise _not_finite(values, what, objective, method, x)
        return out

    return checked


def _not_finite(values: np.ndarray, what: str, objective: Objective, method: str, x: np.ndarray) -> ValueError:
    index = int(np.flatnonzero(~np.isfinite(values))[0])
    spec = objective.spec
    if values.ndim == 2:
        row, column = divmod(index, values.shape[1])
        where = f"row {spec.element_name(row)}, column {spec.element_name(column)}"
    else:
        where = spec.element_name(index)
    exc = ValueError(
        f"{what} is not finite at the point in exc.autominimize_x: it is {values.flat[index]} at {where}. "
        f"method={method!r} needs a finite gradient and Hessian at every point it asks for. Check that the function is "
        "defined and smooth there (a log, square root or division outside its domain?), start from another point, or pass "
        "error_handling='continue', under which such a point is a failed point that the method steps back from."
    )
    attach_point(exc, spec, np.asarray(x, dtype=np.float64), what)
    return exc
