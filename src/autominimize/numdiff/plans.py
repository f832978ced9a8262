"""Difference plans: per coordinate, the step and the formula, kept inside the bounds.

Steps are relative to the size of each coordinate, ``h_i = rel_step * max(1, |x_i|)``, with
``rel_step = sqrt(eps)`` for one-sided differences and ``eps**(1/3)`` for central ones, each
rounded so that ``x + h`` is exactly representable. Near a bound a step switches side, a
central difference becomes the second-order one-sided formula, and a step shrinks to the
room there is (see :mod:`autominimize.numdiff`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..validation import brief, check_relative_steps, is_one_of

__all__ = ["METHODS", "Plan", "canonical_method", "default_rel_step", "difference_plan", "real_vector"]

#: difference schemes; scipy's names '2-point' and '3-point' are accepted as aliases
METHODS = ("forward", "backward", "central")
_ALIASES = {"2-point": "forward", "3-point": "central"}
_EPS = np.finfo(np.float64).eps


def canonical_method(method: str) -> str:
    """'forward', 'backward' or 'central' for a method name or scipy alias."""
    name = _ALIASES.get(method, method) if isinstance(method, str) else method
    if not is_one_of(name, METHODS):
        raise ValueError(
            f"method={method!r} is not a finite-difference scheme; use one of {METHODS} (or scipy's '2-point' = 'forward', '3-point' = 'central')."
        )
    return name


def default_rel_step(method: str) -> float:
    """sqrt(eps) for one-sided differences, eps**(1/3) for central ones."""
    return _EPS ** (1 / 3) if canonical_method(method) == "central" else _EPS**0.5


@dataclass(frozen=True)
class Plan:
    """Per coordinate: the signed step ``h`` and the formula used.

    ``kind[i]`` is 0 (one-sided, first order: ``(f(x+h) - f(x)) / h``), 1 (central:
    ``(f(x+h) - f(x-h)) / 2h``), 2 (one-sided, second order:
    ``(-3 f(x) + 4 f(x+h) - f(x+2h)) / 2h``) or 3 (a fixed variable, lower bound = upper
    bound: no step, a zero derivative, as the method never moves it); ``h`` carries the side.
    """

    h: np.ndarray
    kind: np.ndarray

    @property
    def needs_f0(self) -> bool:
        return bool(np.any(self.kind != 1))

    def points(self, x: np.ndarray) -> list[np.ndarray]:
        """The points to evaluate, in a fixed order, without ``x`` itself."""
        out = []
        for i, (h, kind) in enumerate(zip(self.h, self.kind)):
            offsets = {0: (h,), 1: (h, -h), 2: (h, 2 * h), 3: ()}[int(kind)]
            for offset in offsets:
                point = x.copy()
                point[i] = x[i] + offset
                out.append(point)
        return out

    def combine(self, f0: np.ndarray | None, values: Sequence[np.ndarray]) -> np.ndarray:
        """The (m, n) Jacobian from the values at :meth:`points`."""
        columns = []
        cursor = 0
        for h, kind in zip(self.h, self.kind):
            if kind == 0:
                columns.append((values[cursor] - f0) / h)
                cursor += 1
            elif kind == 1:
                columns.append((values[cursor] - values[cursor + 1]) / (2 * h))
                cursor += 2
            elif kind == 3:
                columns.append(np.zeros_like(f0))
            else:
                columns.append((-3 * f0 + 4 * values[cursor] - values[cursor + 1]) / (2 * h))
                cursor += 2
        return np.stack(columns, axis=-1)


def difference_plan(
    x: np.ndarray, method: str = "forward", rel_step: float | np.ndarray | None = None, bounds: tuple[np.ndarray, np.ndarray] | None = None
) -> Plan:
    """Choose the step and formula for every coordinate of ``x`` (see the module docstring)."""
    method = canonical_method(method)
    x = real_vector(x, "x").reshape(np.shape(x))
    check_relative_steps(rel_step, "rel_step", x.size)
    rel = default_rel_step(method) if rel_step is None else np.asarray(rel_step, dtype=np.float64)
    size = rel * np.maximum(1.0, np.abs(x))
    sign = -1.0 if method == "backward" else 1.0
    h = sign * np.broadcast_to(size, x.shape).astype(np.float64)
    h = (x + h) - x  # exactly representable steps
    if rel_step is not None:  # the default step is a finite one that changes any finite x
        useless = np.isfinite(x) & (~np.isfinite(h) | (h == 0) | (np.broadcast_to(rel, x.shape) < _EPS))
        if useless.any():
            where = int(np.flatnonzero(useless)[0])
            raise ValueError(
                f"rel_step={brief(rel_step)} gives a step of {float(h[where])!r} at index {where} (x = {float(x[where])!r}): a relative "
                f"step below machine epsilon ({_EPS:.3g}) or one that overflows measures rounding alone; give one between about 1e-15 and 1."
            )
    kind = np.full(x.shape, 1 if method == "central" else 0, dtype=np.int8)
    if bounds is None:
        return Plan(h, kind)
    lb, ub = _flat_bounds(bounds, x.shape)
    room_up, room_down = ub - x, x - lb
    size = np.abs(h)
    h = h.copy()
    if method == "central":
        central_fits = (room_up >= size) & (room_down >= size)
        up2, down2 = room_up >= 2 * size, room_down >= 2 * size
        one_sided = ~central_fits & (up2 | down2)
        kind[one_sided] = 2
        h[one_sided] = np.where(up2[one_sided], size[one_sided], -size[one_sided])
        rest = ~central_fits & ~one_sided
    else:
        rest = np.where(h > 0, room_up < size, room_down < size)
    if np.any(rest):
        # One first-order step, on the side that has room (shrunk if neither side does).
        kind[rest] = 0
        fits_up, fits_down = room_up >= size, room_down >= size
        if method == "backward":
            up = ~fits_down & (fits_up | (room_up > room_down))
        else:
            up = fits_up | (~fits_down & (room_up >= room_down))
        step = np.where(up, np.minimum(size, room_up), -np.minimum(size, room_down))
        h[rest] = step[rest]
        kind[rest & (h == 0)] = 3  # lower bound = upper bound: a fixed variable
    return Plan(h, kind)


def _flat_bounds(bounds: Any, shape: tuple) -> tuple[np.ndarray, np.ndarray]:
    """``bounds`` as a (lower, upper) pair of float64 arrays of ``shape``, else an error naming it."""
    try:
        low, high = bounds
        return tuple(np.broadcast_to(np.asarray(part, dtype=np.float64), shape) for part in (low, high))
    except (TypeError, ValueError):
        raise ValueError(f"bounds must be None or a (lower, upper) pair of numbers or arrays of x's shape {shape}; got {brief(bounds)}.") from None


def real_vector(value: Any, name: str) -> np.ndarray:
    """``value`` as a flat float64 vector, or a TypeError naming ``name`` when it holds no real numbers."""
    array = np.asarray(value) if not isinstance(value, (str, bytes)) else None
    if array is None or array.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a number or an array of real numbers; got {value!r} ({type(value).__name__}).")
    return np.ascontiguousarray(array, dtype=np.float64).reshape(-1)
