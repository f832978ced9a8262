"""Nonlinear conjugate gradient: Fletcher-Reeves, Polak-Ribière(+), Hestenes-Stiefel, Dai-Yuan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from ._arrays import namespace, norm1, vdot
from .base import Algorithm, Oracle
from .linesearch import exact_step, line_evaluator, strong_wolfe
from ..validation import is_one_of

FORMULAS = ("fr", "pr", "pr+", "hs", "dy")


class CGState(NamedTuple):
    x: Any
    f: Any
    g: Any
    nit: int
    d: Any  # the last search direction (None before the first step)
    f_prev: float | None
    since_restart: int
    flag: str = ""


@dataclass(frozen=True)
class NonlinearCG(Algorithm):
    """Nonlinear conjugate gradient with restarts (Nocedal & Wright 2006, ch. 5).

    d_0 = −g_0; after a line search x_{k+1} = x_k + α_k d_k, y_k = g_{k+1} − g_k and
    d_{k+1} = −g_{k+1} + β d_k with β from ``beta``:

    ============  ==========================================  ==========================
    ``"fr"``      ‖g_{k+1}‖² / ‖g_k‖²                          Fletcher & Reeves 1964
    ``"pr"``      ⟨g_{k+1}, y_k⟩ / ‖g_k‖²                      Polak & Ribière 1969
    ``"pr+"``     max(0, β_PR)                                 Gilbert & Nocedal 1992
    ``"hs"``      ⟨g_{k+1}, y_k⟩ / ⟨d_k, y_k⟩                  Hestenes & Stiefel 1952
    ``"dy"``      ‖g_{k+1}‖² / ⟨d_k, y_k⟩                      Dai & Yuan 1999
    ============  ==========================================  ==========================

    β is reset to 0 (a steepest-descent restart) every ``restart_every`` steps (n by
    default), when |⟨g_{k+1}, g_k⟩| ≥ ν‖g_{k+1}‖² (Powell 1977, ν = ``powell_nu``), and when
    d_{k+1} is not a descent direction.

    Parameters
    ----------
    beta : {"pr+", "fr", "pr", "hs", "dy"}
        Default "pr+", scipy's ``CG`` choice (globally convergent with strong Wolfe).
    line_search : {"strong-wolfe", "exact"}
        "exact" takes α = −⟨g, d⟩/⟨d, Hd⟩ from one Hessian-vector product (exact on a
        quadratic; the CG theory's exact line search).
    c1, c2 : float
        Strong Wolfe constants; 1e-4 and 0.1 (Nocedal & Wright §3.1 for CG; Fletcher-Reeves
        needs c2 < ½).
    max_line_search : int
        Evaluations per line search; 20 (scipy L-BFGS-B's ``maxls``).
    powell_nu : float or None
        Powell's restart threshold ν = 0.1 (Powell 1977); None disables the test.
    restart_every : int or None
        Restart period; None means n (Nocedal & Wright §5.2).

    Examples
    --------
    >>> import numpy as np
    >>> import autominimize as am
    >>> rosen = lambda x: 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2
    >>> res = am.minimize(rosen, np.array([-1.2, 1.0]), method="cg-native", backend="jax")
    >>> bool(res.success and np.allclose(res.x, 1.0, atol=1e-4))
    True
    """

    beta: str = "pr+"
    line_search: str = "strong-wolfe"
    c1: float = 1e-4
    c2: float = 0.1
    max_line_search: int = 20
    powell_nu: float | None = 0.1
    restart_every: int | None = None

    name = "cg-native"
    limits = {"c1": "fraction", "c2": "fraction", "max_line_search": "count", "powell_nu": "nonnegative", "restart_every": "count"}
    needs_evaluator = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not is_one_of(self.beta, FORMULAS):
            raise ValueError(f"beta={self.beta!r} is not one of {FORMULAS}.")
        if not is_one_of(self.line_search, ("strong-wolfe", "exact")):
            raise ValueError(f"line_search={self.line_search!r}: use 'strong-wolfe' or 'exact'.")

    def init(self, x: Any, oracle: Oracle) -> CGState:
        f, g = oracle.value_and_grad(x)
        return CGState(x, f, g, 0, None, None, 0)

    def step(self, state: CGState, oracle: Oracle) -> CGState:
        xp = namespace(state.x)
        x, f, g = state.x, state.f, state.g
        d = -g if state.d is None else state.d
        f0 = float(f)
        dphi0 = float(vdot(xp, g, d))
        if self.line_search == "exact":
            alpha = exact_step(oracle.hvp, xp, x, g, d)
            if alpha is None:
                return state._replace(flag="non-positive curvature along the search direction")
            x_new = x + alpha * d
            f_new, g_new = oracle.value_and_grad(x_new)
        else:
            if state.f_prev is None:
                alpha0 = min(1.0, 1.0 / norm1(xp, g))
            else:  # Nocedal & Wright eq. 3.60
                alpha0 = min(1.0, 1.01 * 2.0 * (f0 - state.f_prev) / dphi0)
                alpha0 = alpha0 if alpha0 > 0 else 1.0
            ls = strong_wolfe(line_evaluator(oracle, x, d), x, f0, g, dphi0, alpha0, c1=self.c1, c2=self.c2, max_evaluations=self.max_line_search)
            if ls.alpha == 0.0:
                return state._replace(flag="line search failed to find a point with sufficient decrease")
            x_new, f_new, g_new = ls.x, ls.f, ls.g
        since = state.since_restart + 1
        d_new = -g_new + self._beta(xp, g, g_new, d, since, x.shape[0]) * d
        if float(vdot(xp, g_new, d_new)) >= 0.0:
            d_new, since = -g_new, 0
        elif self._restart(xp, g, g_new, since, x.shape[0]):
            d_new, since = -g_new, 0
        return CGState(x_new, f_new, g_new, state.nit + 1, d_new, f0, since)

    def _restart(self, xp: Any, g: Any, g_new: Any, since: int, n: int) -> bool:
        period = self.restart_every or n
        if since % period == 0:
            return True
        if self.powell_nu is None:
            return False
        return abs(float(vdot(xp, g_new, g))) >= self.powell_nu * float(vdot(xp, g_new, g_new))

    def _beta(self, xp: Any, g: Any, g_new: Any, d: Any, since: int, n: int) -> Any:
        y = g_new - g
        gg = vdot(xp, g, g)
        if self.beta == "fr":
            return vdot(xp, g_new, g_new) / gg
        if self.beta in ("pr", "pr+"):
            beta = vdot(xp, g_new, y) / gg
            return xp.maximum(beta, xp.zeros_like(beta)) if self.beta == "pr+" else beta
        dy = vdot(xp, d, y)
        if self.beta == "hs":
            return vdot(xp, g_new, y) / dy
        return vdot(xp, g_new, g_new) / dy
