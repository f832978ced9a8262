"""The strong Wolfe line search of the batched L-BFGS, one masked round per batched evaluation.

Nocedal & Wright's bracketing and zoom (Algorithms 3.5 and 3.6, cubic interpolation
safeguarded by bisection), written as a per-member stage (bracketing, zooming, done) in
:class:`WolfeSearch` and updated with masks: :func:`wolfe_start` sets up every member's search
(with bounds, along the straight line up to the largest step in the box, L-BFGS-B's
``stpmax``), :func:`wolfe_trial` evaluates all rows once and moves each member's bracket, and
:func:`wolfe_finish` gives members whose search ran out of trials the best point with
sufficient decrease. ``state`` is :class:`~.batched.BatchedState` and ``algo``
:class:`~.batched.BatchedLBFGS` (its ``c1`` and ``c2``).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

__all__ = ["WolfeSearch", "project", "row_dot", "wolfe_finish", "wolfe_start", "wolfe_trial"]


def project(xp: Any, x: Any, box: tuple | None) -> Any:
    """x clipped into the box ``(lower, upper)``, or x without one."""
    return x if box is None else xp.clip(x, box[0], box[1])


def row_dot(xp: Any, a: Any, b: Any) -> Any:
    """Row-wise ⟨a, b⟩ over the last axis."""
    return xp.sum(a * b, axis=-1)


class WolfeSearch(NamedTuple):
    """Per-member strong Wolfe search state (Nocedal & Wright, Algorithms 3.5 and 3.6)."""

    alpha: Any  # (B,) the next trial step
    alpha_max: Any  # (B,) the largest step in the box (inf without bounds)
    dphi0: Any  # (B,) ⟨g, d⟩ at the start
    zoom: Any  # (B,) bool: bracketed, zooming between lo and hi
    a_lo: Any  # (B,) bracketing: the previous step; zooming: the best step with sufficient decrease
    f_lo: Any
    dphi_lo: Any
    x_lo: Any  # (B, n) the point at a_lo, with its gradient
    g_lo: Any
    a_hi: Any  # (B,) the other end of the bracket
    f_hi: Any
    dphi_hi: Any


def wolfe_start(xp: Any, state: Any, d: Any, alpha: Any, box: tuple | None) -> tuple[WolfeSearch, Any]:
    """The search state and the direction: with bounds, d stops pointing out of the box where
    x is at a bound (else the largest step would be 0), or becomes the projected −g if that
    leaves it no descent."""
    alpha_max = xp.full_like(alpha, float("inf"))
    if box is not None:
        lower, upper = box
        blocked = xp.logical_or(xp.logical_and(state.x <= lower, d < 0), xp.logical_and(state.x >= upper, d > 0))
        d = xp.where(blocked, xp.zeros_like(d), d)
        binding = xp.logical_or(xp.logical_and(state.x <= lower, state.g > 0), xp.logical_and(state.x >= upper, state.g < 0))
        steepest = xp.where(binding, xp.zeros_like(d), -state.g)
        d = xp.where((row_dot(xp, state.g, d) < 0)[:, None], d, steepest)
        # the largest step along d that stays in the box (L-BFGS-B's stpmax)
        safe = xp.where(d == 0, xp.ones_like(d), d)
        to_bound = xp.where(d < 0, (state.x - lower) / (-safe), xp.where(d > 0, (upper - state.x) / safe, xp.full_like(d, float("inf"))))
        alpha_max = xp.min(to_bound, axis=-1)
    dphi0 = row_dot(xp, state.g, d)
    zeros = xp.zeros_like(alpha)
    search = WolfeSearch(
        xp.minimum(alpha, alpha_max),
        alpha_max,
        dphi0,
        xp.zeros_like(alpha, dtype=xp.bool),
        zeros,
        state.f,
        dphi0,
        state.x,
        state.g,
        zeros,
        state.f,
        dphi0,
    )
    return search, d


def _cubic_step(xp: Any, s: WolfeSearch) -> Any:
    """The minimiser of the cubic through both ends of the bracket, or the midpoint where that
    is not finite or within 10% of an end (Nocedal & Wright eq. 3.59)."""
    span = s.a_hi - s.a_lo
    safe_span = xp.where(span == 0, xp.ones_like(span), span)
    d1 = s.dphi_lo + s.dphi_hi - 3.0 * (s.f_lo - s.f_hi) / (-safe_span)
    radicand = d1 * d1 - s.dphi_lo * s.dphi_hi
    d2 = xp.sign(span) * xp.sqrt(xp.where(radicand > 0, radicand, xp.zeros_like(radicand)))
    denominator = s.dphi_hi - s.dphi_lo + 2.0 * d2
    safe_denominator = xp.where(denominator == 0, xp.ones_like(denominator), denominator)
    cubic = s.a_hi - span * (s.dphi_hi + d2 - d1) / safe_denominator
    low, high = xp.minimum(s.a_lo, s.a_hi), xp.maximum(s.a_lo, s.a_hi)
    width = high - low
    usable = (radicand > 0) & (denominator != 0) & xp.isfinite(cubic) & (cubic >= low + 0.1 * width) & (cubic <= high - 0.1 * width)
    return xp.where(usable, cubic, low + 0.5 * width)


def wolfe_trial(xp: Any, algo: Any, value_and_grad: Callable, state: Any, d: Any, s: WolfeSearch, searching: Any, found: tuple, box: tuple | None):
    """One strong Wolfe round for every member still searching: bracket or zoom, per member."""
    x_best, f_best, g_best, accepted, nfev = found
    x_new = project(xp, state.x + s.alpha[:, None] * d, box)
    f_new, g_new = value_and_grad(x_new)
    f_new = xp.where(xp.isfinite(f_new), f_new, xp.full_like(f_new, float("inf")))
    dphi = row_dot(xp, g_new, d)
    dphi = xp.where(xp.isfinite(dphi), dphi, xp.zeros_like(dphi))
    no_decrease = f_new > state.f + algo.c1 * s.alpha * s.dphi0
    curvature = xp.abs(dphi) <= -algo.c2 * s.dphi0
    bracketing = xp.logical_and(searching, xp.logical_not(s.zoom))
    zooming = xp.logical_and(searching, s.zoom)

    # bracketing (Algorithm 3.5): the new point is the bracket's high end ...
    high_end = xp.logical_and(bracketing, no_decrease | xp.logical_and(s.a_lo > 0, f_new >= s.f_lo))
    settled = xp.logical_and(bracketing, xp.logical_not(high_end))
    accept = xp.logical_and(settled, curvature)
    low_end = xp.logical_and(xp.logical_and(settled, xp.logical_not(curvature)), dphi >= 0)  # ... or its low end
    onward = xp.logical_and(xp.logical_and(settled, xp.logical_not(curvature)), dphi < 0)
    at_box = xp.logical_and(onward, s.alpha >= s.alpha_max)  # still going down where the box ends: stop there
    accept = accept | at_box
    expand = xp.logical_and(onward, xp.logical_not(at_box))

    # zooming (Algorithm 3.6)
    z_high = xp.logical_and(zooming, no_decrease | (f_new >= s.f_lo))
    z_low = xp.logical_and(zooming, xp.logical_not(z_high))
    accept = accept | xp.logical_and(z_low, curvature)
    z_low = xp.logical_and(z_low, xp.logical_not(curvature))
    z_swap = xp.logical_and(z_low, dphi * (s.a_hi - s.a_lo) >= 0)

    # the high end becomes the new point (high_end, z_high), the old low end (low_end, z_swap)
    new_hi = high_end | z_high
    old_lo_to_hi = low_end | z_swap
    a_hi = xp.where(new_hi, s.alpha, xp.where(old_lo_to_hi, s.a_lo, s.a_hi))
    f_hi = xp.where(new_hi, f_new, xp.where(old_lo_to_hi, s.f_lo, s.f_hi))
    dphi_hi = xp.where(new_hi, dphi, xp.where(old_lo_to_hi, s.dphi_lo, s.dphi_hi))
    # the low end becomes the new point (low_end, z_low, and the previous step while expanding)
    new_lo = low_end | z_low | expand
    a_lo = xp.where(new_lo, s.alpha, s.a_lo)
    f_lo = xp.where(new_lo, f_new, s.f_lo)
    dphi_lo = xp.where(new_lo, dphi, s.dphi_lo)
    x_lo = xp.where(new_lo[:, None], x_new, s.x_lo)
    g_lo = xp.where(new_lo[:, None], g_new, s.g_lo)
    zoom = s.zoom | high_end | low_end
    s = s._replace(zoom=zoom, a_lo=a_lo, f_lo=f_lo, dphi_lo=dphi_lo, x_lo=x_lo, g_lo=g_lo, a_hi=a_hi, f_hi=f_hi, dphi_hi=dphi_hi)
    alpha = xp.where(expand, xp.minimum(2.0 * s.alpha, s.alpha_max), xp.where(zoom, _cubic_step(xp, s), s.alpha))
    found = (
        xp.where(accept[:, None], x_new, x_best),
        xp.where(accept, f_new, f_best),
        xp.where(accept[:, None], g_new, g_best),
        xp.logical_or(accepted, accept),
        nfev + xp.astype(searching, nfev.dtype),
    )
    return xp.logical_and(searching, xp.logical_not(accept)), s._replace(alpha=alpha), found


def wolfe_finish(xp: Any, s: WolfeSearch, searching: Any, found: tuple) -> tuple:
    """Members whose search ran out of trials take the best point with sufficient decrease."""
    x_best, f_best, g_best, accepted, nfev = found
    fallback = xp.logical_and(searching, s.a_lo > 0)
    return (
        xp.where(fallback[:, None], s.x_lo, x_best),
        xp.where(fallback, s.f_lo, f_best),
        xp.where(fallback[:, None], s.g_lo, g_best),
        xp.logical_or(accepted, fallback),
        nfev,
    )
