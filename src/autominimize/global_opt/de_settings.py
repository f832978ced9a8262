"""The settings of differential evolution that scipy's and the vectorized engine share,
checked where they enter: the first population (``init``) and the mutation scale."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["INITS", "MIN_POPULATION", "check_init", "mutation_scale"]

#: the first population's sampling schemes
INITS = ("latinhypercube", "sobol", "halton", "random")
#: the fewest members of a population (scipy's rule)
MIN_POPULATION = 5


def check_init(init: Any, n: int) -> np.ndarray | None:
    """``init`` for ``n`` parameters: a sampling scheme's name (None is returned), or points
    in the bounds, one row per member (returned as an array); else a ValueError saying which."""
    if isinstance(init, str):
        if init not in INITS:
            raise ValueError(f"init={init!r}: use one of {', '.join(INITS)}, or an array of shape (S, {n}).")
        return None
    try:
        points = np.asarray(init, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"init={init!r}: use one of {', '.join(INITS)}, or an array of shape (S, {n}).") from None
    if points.ndim != 2 or points.shape[1] != n or points.shape[0] < MIN_POPULATION or not np.isfinite(points).all():
        raise ValueError(
            f"init as an array must have shape (S, {n}) with S >= {MIN_POPULATION} members "
            f"(one row per member, one column per parameter) of finite values; got shape {points.shape}."
        )
    return points


def mutation_scale(mutation: Any) -> tuple[float, float]:
    """``mutation`` as ``(low, high)``: one F in [0, 2), or a (min, max) pair for dithering."""
    try:
        scale = None if isinstance(mutation, (str, bytes, bool)) else np.asarray(mutation, dtype=float)
    except (TypeError, ValueError):
        scale = None
    if scale is None or scale.shape not in ((), (2,)) or not (0 <= scale.min() <= scale.max() < 2) or (scale.ndim and scale[0] > scale[1]):
        raise ValueError(f"mutation={mutation!r}: give F in [0, 2), or (min, max) with 0 <= min <= max < 2 for dithering.")
    return (float(scale), float(scale)) if scale.ndim == 0 else (float(scale[0]), float(scale[1]))
