"""L-BFGS (two-loop recursion, strong-Wolfe line search), and projected L-BFGS for box bounds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ._arrays import namespace, norm1, vdot
from .base import Algorithm, Oracle
from .lbfgs_memory import Memory, new_memory
from .linesearch import armijo_backtracking, exact_step, line_evaluator, strong_wolfe
from ..validation import is_one_of


class LBFGSState(NamedTuple):
    x: Any
    f: Any
    g: Any
    nit: int
    memory: Memory  # the last pairs (s, y); only the newest state's memory is valid
    flag: str = ""


@dataclass(frozen=True)
class LBFGS(Algorithm):
    """Limited-memory BFGS (Nocedal 1980; Liu & Nocedal 1989), optionally with box bounds.

    The direction d = −H g comes from the two-loop recursion over the last ``memory``
    pairs (s, y); a pair is stored only if ⟨s, y⟩ > ``curvature_eps``. Without bounds,
    the step satisfies the strong Wolfe conditions (sufficient decrease only with
    ``line_search="armijo"``), trying α = 1 first and α = min(1, 1/‖g‖₁) on the first
    iteration (minFunc and torch ``LBFGS``). The pairs are kept by a memory per framework
    (:mod:`.lbfgs_memory`): jitted kernels over a ring buffer on JAX, in-place tensors on
    torch, both performing the operations of the array-API version (bit for bit on torch).

    With bounds (``lower``/``upper`` set by the driver) this is projected L-BFGS in the
    manner of Bertsekas' projected Newton method (1982) and Kim, Sra & Dhillon (2010):
    the variables at a bound whose gradient points outward form the binding set; the
    two-loop direction is computed from the gradient of the free variables and zeroed on
    the binding set (falling back to −g_free if it does not descend), and the step is an
    Armijo backtracking search along the projection arc P(x + α d). Variables therefore
    leave a bound when the gradient says so and the search never stalls at zero length on
    an active bound (the failure of torchmin's ``l-bfgs-b``). Stationarity is measured by
    the projected gradient x − P(x − g), scipy's L-BFGS-B ``pgtol`` test.

    Parameters
    ----------
    memory : int
        Pairs kept, m; default 10 (scipy L-BFGS-B ``maxcor``, optax, jaxopt).
    line_search : {"strong-wolfe", "armijo", "exact"}
        "armijo" is backtracking by halving to sufficient decrease only (Nocedal & Wright
        Algorithm 3.1), the search of the batched solver (:mod:`.batched`), so one member of
        ``am.minimize(..., batch=True)`` can be reproduced alone; "exact" uses one
        Hessian-vector product per step (exact for quadratics).
    c1, c2 : float
        Wolfe constants 1e-4 and 0.9 (Nocedal & Wright §3.1; scipy, torch, liblbfgs).
    max_line_search : int
        Evaluations per line search; 20 (scipy L-BFGS-B ``maxls``).
    curvature_eps : float
        Pairs with ⟨s, y⟩ ≤ this are skipped; 1e-10 (torch ``LBFGS``).
    lower, upper : array, optional
        Flat bounds on the algorithm's arrays (−inf/inf for none); ``am.minimize`` fills
        them from ``bounds=``.

    Examples
    --------
    >>> import numpy as np
    >>> import autominimize as am
    >>> rosen = lambda x: 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2
    >>> res = am.minimize(rosen, np.array([-1.2, 1.0]), method="lbfgs-native", backend="jax")
    >>> bool(res.success and np.allclose(res.x, 1.0, atol=1e-4))
    True
    >>> res = am.minimize(rosen, np.array([0.2, 0.2]), method="lbfgs-native", backend="jax",
    ...                   bounds=(-2, 0.5))
    >>> [round(float(v), 4) for v in res.x]
    [0.5, 0.25]
    """

    memory: int = 10
    line_search: str = "strong-wolfe"
    c1: float = 1e-4
    c2: float = 0.9
    max_line_search: int = 20
    curvature_eps: float = 1e-10
    lower: Any = None
    upper: Any = None

    name = "lbfgs-native"
    limits = {"memory": "count", "c1": "fraction", "c2": "fraction", "max_line_search": "count", "curvature_eps": "nonnegative"}
    needs_evaluator = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not is_one_of(self.line_search, ("strong-wolfe", "armijo", "exact")):
            raise ValueError(f"line_search={self.line_search!r}: use 'strong-wolfe', 'armijo' or 'exact'.")
        if self.memory < 1:
            raise ValueError(f"memory must be at least 1; got {self.memory}.")
        for name in ("lower", "upper"):
            _check_limit(name, getattr(self, name))

    @property
    def bounded(self) -> bool:
        return self.lower is not None or self.upper is not None

    def project(self, x: Any) -> Any:
        return namespace(x).clip(x, self.lower, self.upper) if self.bounded else x

    def init(self, x: Any, oracle: Oracle) -> LBFGSState:
        x = self.project(x)
        f, g = oracle.value_and_grad(x)
        return LBFGSState(x, f, g, 0, new_memory(x, self.memory))

    def stationarity(self, state: LBFGSState) -> Any:
        if not self.bounded:
            return state.g
        return state.x - self.project(state.x - state.g)

    def step(self, state: LBFGSState, oracle: Oracle) -> LBFGSState:
        xp = namespace(state.x)
        x, f, g = state.x, state.f, state.g
        memory = state.memory
        if memory.capacity != self.memory:  # changed between steps (am.iterate's set)
            memory = memory.with_capacity(self.memory)
        gradient = g
        if self.bounded:
            binding = xp.logical_or(xp.logical_and(x <= self.lower, g > 0), xp.logical_and(x >= self.upper, g < 0))
            gradient = xp.where(binding, xp.zeros_like(g), g)
        d, slope = memory.direction(gradient)
        if self.bounded:
            d = xp.where(binding, xp.zeros_like(d), d)
            slope = vdot(xp, g, d)
        if not float(slope) < 0.0:  # lost descent: forget the curvature pairs
            memory = memory.cleared()
            d = -gradient
            slope = vdot(xp, g, d)
        alpha0 = 1.0 if not memory.empty else min(1.0, 1.0 / max(norm1(xp, gradient), 1e-300))
        f0 = float(f)
        if self.bounded or self.line_search == "armijo":
            ls = armijo_backtracking(
                oracle.value_and_grad,
                xp,
                x,
                f0,
                g,
                d,
                alpha0,
                c1=self.c1,
                max_evaluations=self.max_line_search,
                project=self.project if self.bounded else None,
                with_gradient=True,
            )
            if ls.alpha == 0.0:
                return state._replace(flag="line search failed to find a point with sufficient decrease")
            x_new, f_new, g_new = ls.x, ls.f, ls.g
        elif self.line_search == "exact":
            alpha = exact_step(oracle.hvp, xp, x, g, d)
            if alpha is None:
                return state._replace(flag="non-positive curvature along the search direction")
            x_new = x + alpha * d
            f_new, g_new = oracle.value_and_grad(x_new)
        else:
            ls = strong_wolfe(
                line_evaluator(oracle, x, d), x, f0, g, float(slope), alpha0, c1=self.c1, c2=self.c2, max_evaluations=self.max_line_search
            )
            if ls.alpha == 0.0:
                return state._replace(flag="line search failed to find a point with sufficient decrease")
            x_new, f_new, g_new = ls.x, ls.f, ls.g
        memory = memory.updated(x_new, x, g_new, g, self.curvature_eps)
        return LBFGSState(x_new, f_new, g_new, state.nit + 1, memory)


def _check_limit(name: str, limit: Any) -> None:
    """A box limit is None, a real number or an array of them (NumPy's or a framework's)."""
    if limit is None or hasattr(limit, "shape") and hasattr(limit, "dtype") and not isinstance(limit, np.ndarray):
        return  # a framework's array: read by the algorithm on its own arrays
    try:
        values = np.asarray(limit)
    except (TypeError, ValueError):
        values = np.asarray(None)
    if values.dtype.kind not in "fiu":
        raise TypeError(f"lbfgs-native: {name}={limit!r} is not a box limit; give None, a real number or an array of them.")
    if np.isnan(values.astype(np.float64)).any():
        raise ValueError(f"lbfgs-native: {name}={limit!r} holds NaN; a box limit is a number, or ±inf where there is none.")
