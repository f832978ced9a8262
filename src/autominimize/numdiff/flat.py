"""The finite-difference Jacobian of a flat function, with failed points retried on the other side."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .evaluator import Evaluator
from .plans import Plan, difference_plan, real_vector

__all__ = ["approx_jacobian"]

_SERIAL = Evaluator()


def approx_jacobian(
    fun: Callable[[np.ndarray], Any],
    x: np.ndarray,
    *,
    method: str = "forward",
    rel_step: float | np.ndarray | None = None,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
    f0: Any = None,
    evaluator: Evaluator | None = None,
) -> tuple[np.ndarray, int]:
    """The finite-difference Jacobian of a flat function, and how many evaluations it took.

    ``fun`` maps a flat float64 vector to a number or an array (raveled). Returns an
    ``(m, n)`` array for vector outputs and an ``(n,)`` gradient for scalar ones. ``f0``,
    the value at ``x`` when known, saves one evaluation of the one-sided formulas.
    """
    x = real_vector(x, "x")
    if evaluator is not None and not isinstance(evaluator, Evaluator):
        raise TypeError(f"evaluator must be an am.numdiff.Evaluator or None; got {type(evaluator).__name__}.")
    if f0 is not None:
        f0 = real_vector(f0, "f0").reshape(np.shape(f0))
    plan = difference_plan(x, method, rel_step, bounds)
    points = plan.points(x)
    if plan.needs_f0 and f0 is None:
        points.insert(0, x.copy())
    evaluator = evaluator or _SERIAL
    values = [None if v is None else np.asarray(v, dtype=np.float64) for v in evaluator.map(fun, points)]
    evaluations = len(values)
    if plan.needs_f0 and f0 is None:
        f0, values = values[0], values[1:]
    if any(v is None or not np.isfinite(v).all() for v in values) and evaluator.tolerate_failures:
        if f0 is None:
            f0 = evaluator.map(fun, [x])[0]
            evaluations += 1
            if f0 is None:
                raise FloatingPointError("the function fails at x and at difference points around it.")
        plan, values, retried = _mirror_failures(fun, x, plan, values, np.asarray(f0, dtype=np.float64), bounds, evaluator)
        evaluations += retried
    f0_array = None if f0 is None else np.asarray(f0, dtype=np.float64)
    like = f0_array if f0_array is not None else values[0]
    values = [np.full(like.size, np.nan) if v is None else v.reshape(-1) for v in values]
    jac = plan.combine(None if f0_array is None else f0_array.reshape(-1), values)
    return (jac.reshape(-1) if like.ndim == 0 else jac), evaluations


def _mirror_failures(fun, x, plan: Plan, values: list, f0: np.ndarray, bounds, evaluator: Evaluator) -> tuple[Plan, list, int]:
    """Redo each coordinate whose difference points failed as one first-order step: the point
    of a central difference that worked, else the mirrored step (inside the bounds)."""
    h, kind = plan.h.copy(), plan.kind.copy()
    lb, ub = (np.full(x.shape, -np.inf), np.full(x.shape, np.inf)) if bounds is None else bounds
    good = lambda v: v is not None and np.isfinite(v).all()  # noqa: E731
    new_values, retry = [], []
    cursor = 0
    for i in range(x.size):
        count = {0: 1, 1: 2, 2: 2, 3: 0}[int(kind[i])]
        own = values[cursor : cursor + count]
        cursor += count
        if all(good(v) for v in own):
            new_values.extend(own)
            continue
        kind[i] = 0
        if plan.kind[i] == 1 and good(own[1]):  # the backward point of a central difference
            h[i], value = -h[i], own[1]
        elif plan.kind[i] == 1 and good(own[0]):
            value = own[0]
        else:
            h[i], value = -h[i], None
            if lb[i] <= x[i] + h[i] <= ub[i]:
                retry.append((len(new_values), i))
        new_values.append(value)
    if retry:
        points = []
        for _, i in retry:
            point = x.copy()
            point[i] += h[i]
            points.append(point)
        for (slot, _), value in zip(retry, evaluator.map(fun, points)):
            new_values[slot] = None if value is None else np.asarray(value, dtype=np.float64)
    return Plan(h, kind), new_values, len(retry)
