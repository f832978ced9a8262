"""Residuals: the vector objective of a least-squares solve, and the scalar one it makes.

A residual function's leaves are raveled and concatenated into one residual vector r (m
values). The least-squares solvers get r and its Jacobian J from :class:`ResidualObjective`;
``am.minimize``'s scalar methods get ``f = 0.5 * r @ r`` (scipy's ``cost``), its gradient
``J.T @ r`` and Gauss-Newton products ``J.T @ J @ v`` from :class:`GaussNewtonFunctions`.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..backends import array_backend
from ..backends.base import as_flat_float64, offered
from .vector import VectorObjective
from ..params import tree_leaves

__all__ = ["ResidualObjective", "GaussNewtonFunctions", "sum_of_squares"]


class ResidualObjective(VectorObjective):
    """The flat residual function scipy sees (see :class:`VectorObjective`).

    With ``error_handling='continue'``, residuals that raise or are not finite at a trial
    point, or whose Jacobian cannot be formed there, become ``+inf`` (``trf`` and ``dogbox``
    then reject the step and shrink their trust region), with a zero Jacobian.

    ``best_x``, ``best_cost`` and ``best_residuals`` are the point of lowest cost
    ``0.5 * r @ r`` evaluated so far (None, inf, None before any): where an interrupted
    solve ends.
    """

    value_label = "the residuals"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.best_x: np.ndarray | None = None
        self.best_cost = np.inf
        self.best_residuals: np.ndarray | None = None
        self._path_checked = False

    def _evaluated(self, x: np.ndarray, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        cost = 0.5 * float(values @ values)
        if cost < self.best_cost:  # a copy: scipy may write into its arrays
            self.best_x, self.best_cost, self.best_residuals = np.array(x, dtype=np.float64), cost, values.copy()

    def jacobian(self, x: Any) -> np.ndarray:
        """The Jacobian; the first one, if zero, is checked for residuals not connected to x
        (JAX's stop_gradient: the method would stop at x0 calling it converged)."""
        jac = super().jacobian(x)
        if not self._path_checked:
            self._path_checked = True
            check = offered(self.functions, "check_gradient_path") if self.user_jacobian is None and self.user_fun_and_jac is None else None
            if check is not None and not jac.any():
                self._run(as_flat_float64(x), "the Jacobian", check, as_flat_float64(x))
        return jac

    def _usable(self, x: np.ndarray, key: bytes, values: np.ndarray | None) -> bool:
        # the Jacobian is computed with the residuals, so that a point where it cannot be
        # formed is rejected as a failed value is, before the method accepts it
        if not super()._usable(x, key, values):
            return False
        self._values = (key, values)
        try:
            return bool(np.isfinite(self.jacobian(x)).all())
        except Exception:
            return False

    def start(self, x0: np.ndarray) -> None:
        """Evaluate the residuals at x0, so that a failure shows before the method starts;
        under 'continue' the Jacobian too, which must be finite there: there is no earlier
        point to back off to."""
        r = self.value(x0)
        if self.error_handling != "continue":
            return
        if not np.isfinite(r).all():
            raise ValueError("the residuals are not finite at x0; error_handling='continue' needs finite residuals at x0 to back off to.")
        jac = self.jacobian(x0)
        if not np.isfinite(jac).all():
            row, column = (int(i) for i in np.argwhere(~np.isfinite(jac))[0])
            raise ValueError(
                f"the Jacobian of the residuals is not finite at x0 (residual {row} with respect to "
                f"{self.spec.element_name(column)}: its finite-difference points fail on both sides, or "
                "jac returned it); error_handling='continue' needs a finite Jacobian at x0 to back off to. "
                "Start from a point where the residuals are differentiable."
            )


def sum_of_squares(out: Any) -> Any:
    """0.5 * sum of squares over every leaf, with the framework's own reduction."""
    terms = [array_backend(leaf).squared_sum(leaf) for leaf in tree_leaves(out)]
    if not terms:
        raise ValueError("the residual function returned no array.")
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return 0.5 * total


class GaussNewtonFunctions:
    """A residual function seen as the scalar ``0.5 * r @ r`` by ``am.minimize``'s methods.

    Value and gradient come from ``scalar`` (the backend's compiled sum of squares: the
    gradient is one reverse pass, ``J.T @ r``), or from the residual objective when the user
    gave the residual Jacobian. Hessian-vector products are Gauss-Newton's ``J.T @ (J @ v)``
    with J computed once per point; ``hessian`` is ``J.T @ J``.
    """

    def __init__(self, scalar: Any, residuals: ResidualObjective) -> None:
        self.scalar = scalar
        self.residuals = residuals
        self.use_residual_gradient = residuals.user_jacobian is not None or residuals.user_fun_and_jac is not None

    @property
    def extra_evaluations(self) -> int:
        # every residual evaluation the Jacobian side made counts as an extra evaluation
        scalar_extra = (offered(self.scalar, "extra_evaluations") or 0) if self.scalar is not None else 0
        return scalar_extra + self.residuals.counters.nfev

    def value(self, x: np.ndarray) -> float:
        if self.use_residual_gradient:
            r = self.residuals.value(x)
            self.residuals.counters.nfev -= 1  # the objective counts this evaluation itself
            return 0.5 * float(r @ r)
        return self.scalar.value(x)

    def value_without_gradient(self, x: np.ndarray) -> float:
        if self.use_residual_gradient:
            return self.value(x)
        return (offered(self.scalar, "value_without_gradient") or self.scalar.value)(x)

    def value_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        if self.use_residual_gradient:
            f = self.value(x)
            return f, self.residuals.jacobian(x).T @ self.residuals.value(x)
        return self.scalar.value_and_grad(x)

    def hvp_at(self, x: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        jac = self.residuals.jacobian(x)
        return lambda v: jac.T @ (jac @ np.asarray(v, dtype=np.float64))

    def hessian(self, x: np.ndarray) -> np.ndarray:
        jac = self.residuals.jacobian(x)
        return jac.T @ jac
