"""``am.direct``: DIviding RECTangles over a box, any parameter structure."""

from __future__ import annotations

from typing import Any, Callable

import math

import numpy as np
import scipy.optimize as so

from ._build import build_problem
from ._running import finish, running, structured_callback
from ..validation import check_callable, check_settings, check_switches, is_number

__all__ = ["direct"]


def direct(
    func: Callable,
    bounds: Any,
    *,
    args: tuple = (),
    eps: float = 1e-4,
    maxfun: int | None = None,
    maxiter: int = 1000,
    locally_biased: bool = True,
    f_min: float = -np.inf,
    f_min_rtol: float = 1e-4,
    vol_tol: float = 1e-16,
    len_tol: float = 1e-6,
    callback: Callable | None = None,
    x0: Any = None,
    backend: str | None = None,
    precision: str | None = None,
    unpack: str = "auto",
    error_handling: str = "raise",
) -> so.OptimizeResult:
    """Minimize ``func`` over a box with DIRECT (deterministic, derivative-free).

    The arguments are ``scipy.optimize.direct``'s; those below differ.

    Parameters
    ----------
    func : callable
        The objective in NumPy, JAX, PyTorch or TensorFlow.
    bounds : bounds in any format ``am.minimize`` accepts, finite
        Without ``x0`` they also give the parameter structure (see
        ``am.differential_evolution``).
    callback : callable, optional
        ``callback(xk)`` with xk in x0's structure (scipy passes a list).
    x0 : optional
        Only the structure and array types of the parameters (DIRECT starts at the centre).
    backend, precision, unpack
        As for ``am.minimize``.
    error_handling : {'raise', 'continue'}
        'continue': a point where ``fun`` raises or is not finite counts as ``+inf`` (local
        solves get the same policy); see ``am.minimize``.

    Returns
    -------
    scipy.optimize.OptimizeResult
        scipy's fields with ``x`` in x0's structure; ``nfev``, ``backend``, ``precision``.

    Examples
    --------
    >>> import autominimize as am
    >>> def bowl(p):
    ...     return (p["a"] - 0.25) ** 2 + ((p["b"] + 0.5) ** 2).sum()
    >>> res = am.direct(bowl, {"a": (-1, 1), "b": [(-1, 1)] * 2}, backend="numpy")
    >>> round(res.x["a"], 3), res.x["b"].round(3).tolist()
    (0.25, [-0.5, -0.5])
    """
    check_settings({"maxfun": maxfun, "maxiter": maxiter}, {"eps": eps, "f_min_rtol": f_min_rtol, "vol_tol": vol_tol, "len_tol": len_tol})
    check_switches(locally_biased=locally_biased)
    check_callable(callback, "callback", calls=(("callback(xk)", (None,), {}),))
    if not is_number(f_min) or math.isnan(float(f_min)):
        raise TypeError(f"f_min must be a number (the known minimum, -inf when it is not known); got {f_min!r} ({type(f_min).__name__}).")
    problem, _, flat_bounds = build_problem(
        func, x0, bounds, args, backend=backend, precision=precision, unpack=unpack, finite=True, error_handling=error_handling, fun_name="func"
    )
    free_bounds = problem.fix_variables(flat_bounds)  # scipy refuses a bound with lower = upper
    with running(problem):
        result = so.direct(
            problem.value,
            so.Bounds(*free_bounds),
            eps=eps,
            maxfun=maxfun,
            maxiter=maxiter,
            locally_biased=locally_biased,
            f_min=f_min,
            f_min_rtol=f_min_rtol,
            vol_tol=vol_tol,
            len_tol=len_tol,
            callback=structured_callback(callback, problem),
        )
    return finish(result, problem)
