"""Line searches shared by nonlinear CG, L-BFGS and Hessian-free.

φ(α) = f(x + α d) with φ'(0) = ⟨g, d⟩ < 0. Each search returns the accepted point with its
value (and gradient where it has one), so the caller never evaluates it again.

* :func:`strong_wolfe`: bracketing then zoom with safeguarded cubic interpolation
  (Nocedal & Wright 2006, Algorithms 3.5 and 3.6; interpolation formula eq. 3.59).
* :func:`armijo_backtracking`: sufficient decrease only, along ``x + α d`` or along a
  projection arc ``P(x + α d)`` (Bertsekas 1982); Martens' Hessian-free uses it too.
* :func:`exact_step`: α = −⟨g, d⟩ / ⟨d, H d⟩ from one Hessian-vector product, the exact
  minimiser along d of a quadratic (the "exact line search" of the CG theory).
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

from ._arrays import namespace, vdot

__all__ = ["LineSearchResult", "line_evaluator", "strong_wolfe", "armijo_backtracking", "exact_step", "cubic_minimizer"]


class LineSearchResult(NamedTuple):
    alpha: float
    x: Any
    f: Any
    g: Any  # None for searches that only evaluate values
    success: bool
    evaluations: int


def cubic_minimizer(a: float, fa: float, da: float, b: float, fb: float, db: float, lo: float, hi: float) -> float:
    """Minimiser of the cubic through (a, fa, da), (b, fb, db), clamped to [lo, hi].

    Nocedal & Wright eq. 3.59; falls back to the middle of [lo, hi] when the cubic has no
    minimiser (negative discriminant) or the data are not finite.
    """
    d1 = da + db - 3.0 * (fa - fb) / (a - b)
    disc = d1 * d1 - da * db
    if not math.isfinite(disc) or disc < 0.0:
        return 0.5 * (lo + hi)
    d2 = math.copysign(math.sqrt(disc), b - a)
    denom = db - da + 2.0 * d2
    if denom == 0.0:
        return 0.5 * (lo + hi)
    t = b - (b - a) * (db + d2 - d1) / denom
    return min(max(t, lo), hi) if math.isfinite(t) else 0.5 * (lo + hi)


def strong_wolfe(
    along: Callable[[float], tuple[Any, Any, Any, Any]],
    x: Any,
    f0: float,
    g0: Any,
    dphi0: float,
    alpha0: float,
    *,
    c1: float = 1e-4,
    c2: float = 0.9,
    max_evaluations: int = 20,
    alpha_max: float = 1e10,
    xtol: float = 1e-14,
) -> LineSearchResult:
    """A step satisfying the strong Wolfe conditions along ``d``.

    φ(α) ≤ φ(0) + c1 α φ'(0) and |φ'(α)| ≤ c2 |φ'(0)|. Defaults: c1 = 1e-4, c2 = 0.9 and 20
    evaluations are scipy's (``line_search_wolfe1``; L-BFGS-B's ``maxls``); N&W §3.1 advise
    c2 = 0.1 for nonlinear CG, which that module passes. Extrapolation stays within
    [α + 0.01(α − α_prev), 10 α] and zoom trials at least 10% away from the bracket ends
    (the minFunc / torch ``_strong_wolfe`` safeguards). If the budget runs out, the best
    point with sufficient decrease is returned with ``success=False`` (none: α = 0).

    ``along(α)`` evaluates the line: it returns ``(x + α d, f, g, ⟨g, d⟩)``
    (:func:`line_evaluator`); ``dphi0`` is ⟨g0, d⟩.
    """

    def phi(alpha: float):
        x_new, f, g, dphi = along(alpha)
        return alpha, float(f), float(dphi), (x_new, f, g)

    zero = (0.0, f0, dphi0, (x, f0, g0))
    prev = zero
    alpha = alpha0
    evaluations = 0
    bracket = None
    while evaluations < max_evaluations:
        trial = phi(alpha)
        evaluations += 1
        _, f, dphi, _ = trial
        if not math.isfinite(f) or f > f0 + c1 * alpha * dphi0 or (evaluations > 1 and f >= prev[1]):
            bracket = (prev, trial)
            break
        if abs(dphi) <= -c2 * dphi0:
            return _accept(trial, True, evaluations)
        if dphi >= 0.0:
            bracket = (trial, prev)
            break
        lo, hi = alpha + 0.01 * (alpha - prev[0]), min(10.0 * alpha, alpha_max)
        if alpha >= alpha_max:
            return _accept(trial, False, evaluations)
        next_alpha = cubic_minimizer(prev[0], prev[1], prev[2], alpha, f, dphi, lo, hi)
        prev, alpha = trial, next_alpha
    if bracket is None:
        return _accept(prev, False, evaluations) if prev[0] > 0 else _reject(x, f0, g0, evaluations)
    lo_pt, hi_pt = bracket
    if not math.isfinite(hi_pt[1]):
        hi_pt = (hi_pt[0], math.inf, math.nan, hi_pt[3])
    while evaluations < max_evaluations:
        a, b = lo_pt[0], hi_pt[0]
        left, right = min(a, b), max(a, b)
        width = right - left
        if width <= xtol * max(1.0, right):
            break
        if math.isfinite(hi_pt[1]) and math.isfinite(hi_pt[2]):
            alpha = cubic_minimizer(a, lo_pt[1], lo_pt[2], b, hi_pt[1], hi_pt[2], left + 0.1 * width, right - 0.1 * width)
        else:
            alpha = left + 0.5 * width
        trial = phi(alpha)
        evaluations += 1
        _, f, dphi, _ = trial
        if not math.isfinite(f) or f > f0 + c1 * alpha * dphi0 or f >= lo_pt[1]:
            hi_pt = trial
        else:
            if abs(dphi) <= -c2 * dphi0:
                return _accept(trial, True, evaluations)
            if dphi * (hi_pt[0] - lo_pt[0]) >= 0.0:
                hi_pt = lo_pt
            lo_pt = trial
    if lo_pt[0] > 0.0:
        return _accept(lo_pt, False, evaluations)
    return _reject(x, f0, g0, evaluations)


def line_evaluator(oracle: Any, x: Any, d: Any) -> Callable[[float], tuple[Any, Any, Any, Any]]:
    """α -> (x + α d, f, g, ⟨g, d⟩) at x + α d, as one fused call where the oracle has one.

    The driver's oracle has ``value_and_grad_along`` (one jitted call on JAX); an oracle
    without it, such as the updates interface's, is evaluated step by step.
    """
    fused = getattr(oracle, "value_and_grad_along", None)
    if fused is not None:
        return lambda alpha: fused(x, alpha, d)
    xp = namespace(x)

    def along(alpha: float) -> tuple[Any, Any, Any, Any]:
        x_new = x + alpha * d
        f, g = oracle.value_and_grad(x_new)
        return x_new, f, g, vdot(xp, g, d)

    return along


def _accept(point, success: bool, evaluations: int) -> LineSearchResult:
    alpha, _, _, (x, f, g) = point
    return LineSearchResult(alpha, x, f, g, success, evaluations)


def _reject(x, f0, g0, evaluations: int) -> LineSearchResult:
    return LineSearchResult(0.0, x, f0, g0, False, evaluations)


def armijo_backtracking(
    evaluate: Callable[[Any], Any],
    xp: Any,
    x: Any,
    f0: float,
    g0: Any,
    d: Any,
    alpha0: float = 1.0,
    *,
    c1: float = 1e-4,
    shrink: float = 0.5,
    max_evaluations: int = 20,
    project: Callable[[Any], Any] | None = None,
    with_gradient: bool = False,
) -> LineSearchResult:
    """The first α = α0·shrinkᵏ with f(x_α) ≤ f0 + c1 ⟨g0, x_α − x⟩ (x_α projected if asked).

    With ``project`` this is the Armijo rule along the projection arc (Bertsekas 1982,
    "Projected Newton methods for optimization problems with simple constraints"); without it
    ⟨g0, x_α − x⟩ = α φ'(0), the classical rule. Returns α = 0 and ``success=False`` if no
    trial decreases f enough. ``evaluate`` returns f, or (f, g) with ``with_gradient`` (the
    result's ``g`` is None otherwise).
    """
    alpha = alpha0
    for evaluations in range(1, max_evaluations + 1):
        x_new = x + alpha * d
        if project is not None:
            x_new = project(x_new)
        out = evaluate(x_new)
        f, g = out if with_gradient else (out, None)
        f_float = float(f)
        if math.isfinite(f_float) and f_float <= f0 + c1 * float(vdot(xp, g0, x_new - x)):
            return LineSearchResult(alpha, x_new, f, g, True, evaluations)
        alpha *= shrink
    return LineSearchResult(0.0, x, f0, g0, False, max_evaluations)


def exact_step(hvp: Callable[[Any, Any], Any], xp: Any, x: Any, g: Any, d: Any) -> float | None:
    """α = −⟨g, d⟩ / ⟨d, H d⟩ (exact along d for a quadratic); None if the curvature is ≤ 0."""
    curvature = float(vdot(xp, d, hvp(x, d)))
    if not curvature > 0.0:
        return None
    return -float(vdot(xp, g, d)) / curvature
