"""``am.residuals``: the marker of a residual function for ``am.minimize``."""

from __future__ import annotations

import functools
from typing import Any, Callable

__all__ = ["Residuals", "residuals", "is_residual_function"]


class Residuals:
    """A residual function, optionally with its Jacobian; made by :func:`residuals`.

    Calling it calls the wrapped function, so it can be used anywhere the function can.
    """

    def __init__(self, fun: Callable, jac: Callable | None = None) -> None:
        if not callable(fun):
            raise TypeError(f"residuals() needs a callable; got {type(fun).__name__}.")
        if jac is not None and not callable(jac):
            raise TypeError(f"residuals(jac=...) must be a callable returning the residual Jacobian; got {type(jac).__name__}.")
        self.fun = fun
        self.jac = jac
        functools.update_wrapper(self, fun)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fun(*args, **kwargs)

    def __repr__(self) -> str:
        return f"residuals({getattr(self.fun, '__name__', self.fun)!r}{', jac=...' if self.jac else ''})"


def residuals(fun: Callable | None = None, *, jac: Callable | None = None) -> Any:
    """Mark ``fun`` as a residual function: ``am.minimize`` then minimizes ``0.5 * sum(r**2)``.

    Parameters
    ----------
    fun : callable
        Returns the residuals: an array or any structure of arrays (raveled and concatenated).
    jac : callable, optional
        The residual Jacobian, called like ``fun``: an ``(m, n)`` array over the flat
        residuals and x0's flat parameters, or x0's structure with leaves of shape
        ``(m, *leaf.shape)``. It replaces autodiff for every method (the gradient for the
        scalar methods is then ``J.T @ r``).

    Returns
    -------
    Residuals
        A callable wrapper (or, used as ``@residuals(jac=...)``, a decorator).

    Examples
    --------
    >>> import numpy as np
    >>> import autominimize as am
    >>> @am.residuals
    ... def r(p):
    ...     return {"a": p["x"] - 1.0, "b": 10 * (p["y"] - p["x"] ** 2)}
    >>> res = am.minimize(r, {"x": 0.0, "y": 0.0}, method="BFGS", backend="numpy")
    >>> round(res.x["x"], 4), round(res.x["y"], 4)
    (1.0, 1.0)
    """
    if fun is None:
        return lambda f: Residuals(f, jac)
    if isinstance(fun, Residuals) and jac is None:
        return fun
    return Residuals(getattr(fun, "fun", fun) if isinstance(fun, Residuals) else fun, jac)


def is_residual_function(fun: Any) -> bool:
    """Whether ``fun`` is marked with :func:`residuals`."""
    return isinstance(fun, Residuals)
