"""Derivatives that scipy's trust-region methods refuse as not finite, named with their point.

dogleg, trust-ncg, trust-exact and trust-krylov refuse a gradient (and but for trust-krylov,
a Hessian) holding NaN or inf with NumPy's internal text ("array must not contain infs or
NaNs", from the norms they take), which names neither the function nor the point. Under
``error_handling='raise'`` the function and the point are named:

* a gradient, and trust-ncg's Hessian-vector products, after the fact
  (:func:`not_finite_error`): the objective keeps the gradient and the product it handed
  over last, and names the first that is not finite. Checking each as it was returned
  cost a Python call and a dot product per call (about 1 µs at n = 1000, where a trust-ncg
  solve of Rosenbrock makes 22 000 products of 16 µs each). A product holding inf may let
  trust-ncg warn of an invalid value before it refuses it.
* a Hessian, as it is returned (:func:`check_curvature`): one per iteration, whose check
  costs nothing next to its factorisation, and trust-exact reads it before its own check
  (warning of invalid values). trust-krylov checks no Hessian and no product (trlib goes on
  with NaN and ends unconverged): its products are checked as they are returned too.

Under ``'continue'`` the objective already makes such a point a failed point, which the
method steps back from.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..errors import attach_point

if TYPE_CHECKING:
    from ..problem import Objective

__all__ = ["TRUST_REGION", "check_curvature", "not_finite_error"]

#: the scipy methods that need finite derivatives
TRUST_REGION = frozenset({"dogleg", "trust-ncg", "trust-exact", "trust-krylov"})

#: what ``numpy.asarray_chkfinite`` raises, in scipy's norms
_NUMPY_TEXT = "array must not contain infs or NaNs"


def check_curvature(objective: Objective, method: str, kwargs: dict[str, Any]) -> None:
    """Wrap ``kwargs``' ``hess`` (and trust-krylov's ``hessp``; scipy's keywords) in a check
    that they are finite, for a trust-region ``method`` (one of :data:`TRUST_REGION`) under
    ``error_handling='raise'``."""
    if objective.error_handling != "raise":
        return
    method = method.lower()
    for key in ("hess", "hessp") if method == "trust-krylov" else ("hess",):
        if callable(kwargs.get(key)):
            kwargs[key] = _checked(kwargs[key], _what(objective, key), objective, method)


def not_finite_error(exc: BaseException, objective: Objective, method: str) -> ValueError | None:
    """The error naming the derivative that is not finite, with its point, for NumPy's
    ``exc`` raised by a trust-region ``method`` under ``error_handling='raise'``; None
    when ``exc`` is another error, or every derivative handed over was finite (a NaN of
    the method's own making, or the text raised by the user's function itself)."""
    if not isinstance(exc, ValueError) or str(exc) != _NUMPY_TEXT or objective.error_handling != "raise":
        return None
    return _first_not_finite(objective, method.lower())


def _first_not_finite(objective: Objective, method: str) -> ValueError | None:
    """The error naming the first derivative the objective handed over last that is not
    finite at a finite point (and direction), if any."""
    for key, values, x, inputs in objective.derivatives_given():
        values = np.asarray(values, dtype=np.float64)
        if not np.isfinite(values).all() and all(np.isfinite(a).all() for a in inputs):
            return _not_finite(values, _what(objective, key), objective, method, x)
    return None


def _what(objective: Objective, key: str) -> str:
    given = {"jac": objective.user_gradient, "hess": objective.user_hessian, "hessp": objective.user_hessp}
    return f"the user-supplied {key}" if given[key] is not None else _COMPUTED[key]


_COMPUTED = {"jac": "the gradient of fun", "hess": "the Hessian of fun", "hessp": "a Hessian-vector product of fun"}


def _checked(derivative: Callable, what: str, objective: Objective, method: str) -> Callable:
    def checked(x: np.ndarray, *args: Any) -> Any:
        out = derivative(x, *args)
        values = out if type(out) is np.ndarray else np.asarray(out, dtype=np.float64)
        flat = values if values.ndim == 1 else values.ravel()
        # a dot product is finite when every entry is (or overflows: then the entries are
        # read); a point or direction the method made of NaN (trlib's, near convergence) is
        # the method's own doing, not the function's
        if not math.isfinite(flat.dot(flat)) and not np.isfinite(values).all() and all(np.isfinite(a).all() for a in (x, *args)):
            # a gradient handed over before, not finite, is named first (scipy asks for the
            # Hessian at x0 before it checks the gradient there)
            raise _first_not_finite(objective, method) or _not_finite(values, what, objective, method, x)
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
