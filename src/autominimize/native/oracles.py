"""The oracle a native algorithm evaluates through: one batch bound, evaluations counted.

The functions behind it (:class:`~autominimize.backends.native_functions.NativeFunctions`)
come from the objective's backend (``Backend.native_functions``) or from the user's ``jac``.
"""

from __future__ import annotations

from typing import Any

from ..backends.native_functions import NativeFunctions, make_params_of
from ..backends.native_functions import scalar_check as _scalar_check  # noqa: F401  (native/batched.py reads it here)
from ..problem import Counters

__all__ = ["CountingOracle", "NativeFunctions", "make_params_of"]


class CountingOracle:
    """The oracle a native algorithm sees: one batch bound, every evaluation counted in ``counts``.

    Counts follow scipy: a value-and-gradient is one ``nfev`` and one ``njev``; HVPs and
    Gauss-Newton products both count as ``nhvp``; ``nhev`` stays 0 (no method forms a Hessian).
    """

    def __init__(self, functions: NativeFunctions, batch: Any = None):
        self.functions = functions
        self.batch = batch
        self.counts = Counters()

    @property
    def residual(self) -> bool:
        """Whether the objective is ½‖r‖² of residuals (Gauss-Newton products available)."""
        return self.functions.gnvp is not None

    def value(self, x: Any) -> Any:
        self.counts.nfev += 1
        return self.functions.value(x, self.batch)

    def value_and_grad(self, x: Any) -> tuple[Any, Any]:
        self.counts.nfev += 1
        self.counts.njev += 1
        return self.functions.value_and_grad(x, self.batch)

    def value_and_grad_along(self, x: Any, alpha: float, d: Any) -> tuple[Any, Any, Any, Any]:
        """``(x + alpha d, f, g, ⟨g, d⟩)`` there: one value-and-gradient."""
        self.counts.nfev += 1
        self.counts.njev += 1
        return self.functions.value_and_grad_along(x, alpha, d, self.batch)

    def grad(self, x: Any) -> Any:
        self.counts.njev += 1
        return self.functions.grad(x, self.batch)

    def hvp(self, x: Any, v: Any) -> Any:
        self.counts.nhvp += 1
        return self.functions.hvp(x, v, self.batch)

    def squared_case_gradients(self, x: Any) -> Any:
        """Σ_i (∇f_i)² over the cases of a residual objective: one Jacobian, one ``njev``."""
        if self.functions.squared_case_gradients is None:
            raise ValueError("per-case gradients need fun to return residuals (a vector), not a scalar.")
        self.counts.njev += 1
        return self.functions.squared_case_gradients(x, self.batch)

    def gnvp(self, x: Any, v: Any) -> Any:
        if self.functions.gnvp is None:
            raise ValueError("Gauss-Newton products need fun to return residuals (a vector), not a scalar.")
        self.counts.nhvp += 1
        return self.functions.gnvp(x, v, self.batch)
