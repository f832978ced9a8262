"""Variables fixed by their bounds (lower = upper) for solvers that refuse them.

scipy's ``least_squares`` requires every lower bound to be strictly below its upper bound;
``scipy.optimize.minimize`` removes such variables itself. :class:`FixedVariables` does the
same for ``least_squares``: the solver sees the free variables only, the problem always the
full vector, and the result is the full vector again.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import scipy.optimize as so
import scipy.sparse as sp

__all__ = ["FixedVariables"]


class FixedVariables:
    """The map between the full flat vector and its free part."""

    def __init__(self, x0: np.ndarray, bounds: tuple[np.ndarray, np.ndarray]):
        lb, ub = (np.broadcast_to(np.asarray(b, dtype=np.float64), x0.shape) for b in bounds)
        self.free = lb < ub
        self.template = x0.copy()
        self.template[~self.free] = lb[~self.free]
        self.bounds = (lb[self.free], ub[self.free])

    @classmethod
    def of(cls, x0: np.ndarray, bounds: tuple[np.ndarray, np.ndarray] | None) -> FixedVariables | None:
        """The fixed variables of ``bounds``, or None when none is fixed."""
        if bounds is None or not np.any(np.asarray(bounds[0]) == np.asarray(bounds[1])):
            return None
        return cls(x0, bounds)

    def embed(self, z: Any) -> np.ndarray:
        """The full vector with the free variables ``z``."""
        x = self.template.copy()
        x[self.free] = np.asarray(z, dtype=np.float64).reshape(-1)
        return x

    def reduce(self, x: Any) -> Any:
        """The free entries of a full vector (an array option such as ``x_scale``)."""
        return np.asarray(x)[self.free] if np.ndim(x) == 1 else x

    def function(self, fun: Callable[[np.ndarray], Any]) -> Callable[[np.ndarray], Any]:
        return lambda z: fun(self.embed(z))

    def jacobian(self, jac: Callable[[np.ndarray], Any]) -> Callable[[np.ndarray], Any]:
        """The Jacobian's free columns, dense or sparse as ``jac`` gives them."""

        def free_columns(z: np.ndarray) -> Any:
            full = jac(self.embed(z))
            return full[:, self.free] if sp.issparse(full) else np.asarray(full)[:, self.free]

        return free_columns

    def reduce_columns(self, pattern: Any) -> Any:
        """The free columns of an (m, n) matrix such as a Jacobian's sparsity pattern."""
        return pattern.tocsc()[:, self.free] if sp.issparse(pattern) else np.asarray(pattern)[:, self.free]

    def callback(self, callback: Callable[[so.OptimizeResult], Any]) -> Callable[[so.OptimizeResult], Any]:
        def full(intermediate_result: so.OptimizeResult) -> Any:  # scipy reads this parameter's name
            fields = dict(intermediate_result)
            fields["x"] = self.embed(fields["x"])
            return callback(so.OptimizeResult(fields))

        return full

    def expand(self, result: so.OptimizeResult) -> so.OptimizeResult:
        """The solver's result over the full vector: the fixed variables at their bound, zero
        columns of the Jacobian and zero gradient entries for them."""
        result.x = self.embed(result.x)
        n = self.free.size
        if sp.issparse(result.jac):  # the free columns placed among n by a (k, n) selection
            free = np.flatnonzero(self.free)
            result.jac = sp.csr_matrix(result.jac @ sp.csr_matrix((np.ones(free.size), (np.arange(free.size), free)), shape=(free.size, n)))
        else:
            jac = np.asarray(result.jac)
            full = np.zeros((jac.shape[0], n))
            full[:, self.free] = jac
            result.jac = full
        for name in ("grad", "active_mask"):
            if name in result:
                values = np.zeros(n, dtype=np.asarray(result[name]).dtype)
                values[self.free] = result[name]
                result[name] = values
        return result
