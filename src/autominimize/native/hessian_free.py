"""Hessian-free optimization / truncated Newton (Martens, ICML 2010)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from ._arrays import namespace, vdot
from .base import Algorithm, Oracle
from .linesearch import armijo_backtracking
from ..validation import is_one_of

CURVATURES = ("auto", "gauss-newton", "hessian")
PRECONDITIONERS = (None, "martens")


class HessianFreeState(NamedTuple):
    x: Any
    f: Any
    g: Any
    nit: int
    damping: float  # λ of the Levenberg-Marquardt heuristic
    p_prev: Any  # last CG solution, the next warm start
    cg_iterations: int  # CG iterations of the last step (for monitoring)
    rho: float  # reduction ratio of the last step
    flag: str = ""


def _identity(v: Any) -> Any:
    return v


def _checkpoints(max_iterations: int, first: float = 5.0, factor: float = 1.3) -> set[int]:
    """CG iterations whose iterate is saved for backtracking: ⌈5·1.3^j⌉ (Martens' conjgrad_1.m)."""
    saved, nxt = set(), first
    while nxt <= max_iterations:
        saved.add(math.ceil(nxt))
        nxt *= factor
    return saved


@dataclass(frozen=True)
class HessianFree(Algorithm):
    """Hessian-free optimization (Martens, "Deep learning via Hessian-free optimization",
    ICML 2010), following his demo code ``nnet_train_2.m`` / ``conjgrad_1.m``.

    Each outer step solves (B + λI) p = −g by conjugate gradient, where B is the
    Gauss-Newton matrix JᵀJ (when ``fun`` returns residuals r and the objective is ½‖r‖²)
    or the Hessian (Hessian-vector products), never formed. Then:

    * CG (preconditioned CG, Nocedal & Wright Alg. 5.3, with ``preconditioner="martens"``)
      starts from ζ·p_prev (warm start) and stops on Martens' relative-progress rule:
      i > k, φ_i < 0 and (φ_i − φ_{i−k})/φ_i < k·ε with k = max(⌈0.1 i⌉, 10), ε = 5e-4,
      on non-positive curvature, or after ``max_cg_iterations``;
    * CG backtracking: of the iterates saved at i = ⌈5·1.3^j⌉ and the last one, take the
      latest after which f no longer decreases;
    * the Levenberg-Marquardt heuristic: ρ = (f(x+p) − f(x)) / (⟨g,p⟩ + ½⟨p,Bp⟩);
      λ ← (3/2)λ if ρ < 1/4, λ ← (2/3)λ if ρ > 3/4;
    * an Armijo backtracking line search: α = 1, 0.8, 0.8², … while
      f(x + αp) > f(x) + 10⁻² α ⟨g, p⟩ (at most 60 tries; else the step is rejected).

    Parameters
    ----------
    curvature : {"auto", "gauss-newton", "hessian"}
        "auto" uses Gauss-Newton products when ``fun`` returns a vector of residuals and
        Hessian-vector products when it returns a scalar.
    damping : float
        Initial λ; default 1 (drasmuss/hessianfree ``init_damping``; Martens' demo uses 45
        on per-case-normalised autoencoder curvature, theano-hf 0.1).
    boost, drop : float
        λ factors 3/2 and 2/3 (Martens' code).
    decay : float
        ζ = 0.95, the CG warm-start decay (Martens' code).
    max_cg_iterations : int
        250, the ICML paper's value (also theano-hf and drasmuss).
    cg_epsilon : float
        ε = 5e-4 of the progress rule (Martens' code).
    armijo_c, armijo_shrink, max_armijo : float, float, int
        1e-2, 0.8 and 60 (Martens' code).
    preconditioner : {None, "martens"}
        None (default): plain CG. "martens": Martens' diagonal preconditioner (ICML 2010,
        §4.7) M = diag(Σ_i (∇f_i ⊙ ∇f_i) + λ)^α, recomputed each outer step with the current
        λ, where the training cases i are the rows of fun's residuals along their leading
        axis (f_i = ½‖r_i‖², ∇f_i = J_iᵀ r_i; a 1-D residual vector has one residual per
        case). It needs fun to return residuals: a scalar objective has no per-case
        gradients, and init raises a ValueError rather than fall back to plain CG.
    preconditioner_exponent : float
        α = 0.75 (Martens §4.7), in [0, 1]; α = 0 is plain CG.

    Examples
    --------
    Rosenbrock as least squares, r = (10(x₂ − x₁²), 1 − x₁):

    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import autominimize as am
    >>> def residuals(x):
    ...     return jnp.stack([10 * (x[1] - x[0] ** 2), 1 - x[0]])
    >>> res = am.minimize(residuals, np.array([-1.2, 1.0]), method="hessian-free")
    >>> bool(res.success and np.allclose(res.x, 1.0, atol=1e-4))
    True
    """

    curvature: str = "auto"
    damping: float = 1.0
    boost: float = 1.5
    drop: float = 2.0 / 3.0
    decay: float = 0.95
    max_cg_iterations: int = 250
    cg_epsilon: float = 5e-4
    armijo_c: float = 1e-2
    armijo_shrink: float = 0.8
    max_armijo: int = 60
    preconditioner: str | None = None
    preconditioner_exponent: float = 0.75

    name = "hessian-free"
    limits = {
        "damping": "nonnegative",
        "boost": "above-one",
        "drop": "fraction",
        "decay": "decay",
        "max_cg_iterations": "count",
        "cg_epsilon": "positive",
        "armijo_c": "fraction",
        "armijo_shrink": "fraction",
        "max_armijo": "count",
        "preconditioner_exponent": "nonnegative",
    }
    needs_evaluator = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not is_one_of(self.curvature, CURVATURES):
            raise ValueError(f"curvature={self.curvature!r} is not one of {CURVATURES}.")
        if not is_one_of(self.preconditioner, PRECONDITIONERS):
            raise ValueError(f"preconditioner={self.preconditioner!r} is not one of {PRECONDITIONERS}.")
        exponent = self.preconditioner_exponent
        if isinstance(exponent, bool) or not isinstance(exponent, numbers.Real) or not 0.0 <= exponent <= 1.0:
            raise ValueError(f"preconditioner_exponent={exponent!r} is not a number in [0, 1] (Martens uses 0.75).")

    def init(self, x: Any, oracle: Oracle) -> HessianFreeState:
        if self.preconditioner == "martens" and not getattr(oracle, "residual", False):
            raise ValueError(
                "preconditioner='martens' needs per-case gradients, which need fun to return residuals "
                "(one row per training case along the leading axis); a scalar objective has none. "
                "Return the residuals, or use preconditioner=None."
            )
        f, g = oracle.value_and_grad(x)
        return HessianFreeState(x, f, g, 0, float(self.damping), namespace(x).zeros_like(x), 0, math.nan)

    def _curvature_product(self, oracle: Oracle):
        if self.curvature == "hessian":
            return oracle.hvp
        if self.curvature == "gauss-newton":
            return oracle.gnvp
        return oracle.gnvp if getattr(oracle, "residual", False) else oracle.hvp

    def step(self, state: HessianFreeState, oracle: Oracle) -> HessianFreeState:
        xp = namespace(state.x)
        x, f, g, lam = state.x, state.f, state.g, state.damping
        product = self._curvature_product(oracle)

        def damped(v):
            return product(x, v) + lam * v

        precondition = self._preconditioner(oracle, x, lam)
        iterates, p_last, cg_iterations = self._cg(xp, damped, g, self.decay * state.p_prev, precondition)
        f0 = float(f)
        # CG backtracking: walk back while the previous saved iterate is at least as good.
        p, f_p = iterates[-1], float(oracle.value(x + iterates[-1]))
        for candidate in reversed(iterates[:-1]):
            f_c = float(oracle.value(x + candidate))
            if not f_c < f_p:
                break
            p, f_p = candidate, f_c
        gp = float(vdot(xp, g, p))
        model = gp + 0.5 * float(vdot(xp, p, product(x, p)))
        rho = (f_p - f0) / model if math.isfinite(f_p) and f_p <= f0 and model < 0 else -math.inf
        if rho < 0.25:
            lam *= self.boost
        elif rho > 0.75:
            lam *= self.drop
        if math.isfinite(f_p) and f_p <= f0 + self.armijo_c * gp:
            x_new = x + p
        else:
            ls = armijo_backtracking(
                oracle.value, xp, x, f0, g, p, self.armijo_shrink, c1=self.armijo_c, shrink=self.armijo_shrink, max_evaluations=self.max_armijo - 1
            )
            if ls.alpha == 0.0:
                return state._replace(damping=lam, p_prev=p_last, flag="no step along the CG solution decreases f")
            x_new = ls.x
        f_new, g_new = oracle.value_and_grad(x_new)
        return HessianFreeState(x_new, f_new, g_new, state.nit + 1, lam, p_last, cg_iterations, rho)

    def _preconditioner(self, oracle: Oracle, x: Any, lam: float) -> Callable[[Any], Any]:
        """v ↦ M⁻¹v with Martens' M = (Σ_i (∇f_i)² + λ)^α; the identity for plain CG."""
        if self.preconditioner is None:
            return _identity
        m = (oracle.squared_case_gradients(x) + lam) ** self.preconditioner_exponent
        return lambda v: v / m

    def _cg(self, xp: Any, A, g: Any, p0: Any, solve: Callable[[Any], Any] = _identity) -> tuple[list, Any, int]:
        """Preconditioned CG on A p = −g from p0; returns the saved iterates, the last one and the count.

        Nocedal & Wright's Algorithm 5.3 with y = M⁻¹r = ``solve(r)``. With the identity, y is
        r itself, so plain CG's arithmetic is unchanged.
        """
        saved_at = _checkpoints(self.max_cg_iterations)
        p = p0
        r = -g - A(p)
        d = solve(r)
        rr = vdot(xp, r, d)  # ⟨r, M⁻¹r⟩
        tiny = (1e-30 + 1e-15 * float(vdot(xp, g, solve(g))) ** 0.5) ** 2
        phis: list[float] = []
        iterates: list = []
        i = 0
        for i in range(1, self.max_cg_iterations + 1):
            if float(rr) <= tiny:
                i -= 1
                break
            Ad = A(d)
            curvature = vdot(xp, d, Ad)
            if not float(curvature) > 0.0:
                i -= 1
                break
            alpha = rr / curvature
            p = p + alpha * d
            r = r - alpha * Ad
            y = solve(r)
            rr_new = vdot(xp, r, y)
            d = y + (rr_new / rr) * d
            rr = rr_new
            phis.append(0.5 * float(vdot(xp, p, g - r)))  # φ(p) = ½⟨p, Ap⟩ + ⟨g, p⟩ = ½⟨p, g − r⟩
            if i in saved_at:
                iterates.append(p)
            k = max(math.ceil(0.1 * i), 10)
            if i > k and phis[-1] < 0 and (phis[-1] - phis[-1 - k]) / phis[-1] < k * self.cg_epsilon:
                break
        if not iterates or iterates[-1] is not p:
            iterates.append(p)
        return iterates, p, i
