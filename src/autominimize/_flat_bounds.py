"""The flat bounds of ``am.minimize``, read once per x0 structure and bounds' numbers.

Bounds in x0's structure (``{"U": (None, 0), "V": (-1, None)}``) are read into flat vectors and
checked on every solve: 4% of a 60-evaluation L-BFGS-B solve of a 75-parameter matrix
factorisation (the benchmark's matfac), whose fixed cost shows next to its cheap evaluations.
Bounds made of numbers and None alone are read once, into read-only vectors that later solves
share (and with them scipy's ``Bounds``, see :func:`~autominimize.drivers.scipy_local.run_minimize`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .params import tree_flatten

if TYPE_CHECKING:
    from ._setup import Setup

__all__ = ["flat_bounds"]

#: flat (lb, ub) by (x0's structure, the bounds' structure, their numbers); cleared when full
_READ: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
_MOST = 64
_NUMBERS = {int, float, type(None)}


def flat_bounds(setup: Setup, bounds: Any) -> tuple[np.ndarray, np.ndarray]:
    """``setup.normalize_bounds(bounds)`` for bounds that are not None; for bounds of numbers
    and None, read-only vectors read at the first solve with x0's structure and these bounds.

    Examples
    --------
    >>> import numpy as np
    >>> from autominimize._setup import prepare
    >>> setup = prepare(lambda p: 0.0, {"U": np.zeros(2), "V": np.zeros(1)})
    >>> lb, ub = flat_bounds(setup, {"U": (None, 0)})
    >>> ub.tolist(), flat_bounds(setup, {"U": (None, 0)})[1] is ub, ub.flags.writeable
    ([0.0, 0.0, inf], True, False)
    """
    leaves, structure = tree_flatten(bounds, none_is_leaf=True)
    if not set(map(type, leaves)) <= _NUMBERS:  # arrays, scipy's Bounds: read each time
        return setup.normalize_bounds(bounds)
    key = (setup.spec.key, structure, tuple(leaves))
    read = _READ.get(key)
    if read is None:
        read = setup.normalize_bounds(bounds)
        for vector in read:
            vector.setflags(write=False)
        if len(_READ) >= _MOST:
            _READ.clear()
        _READ[key] = read
    setup.bounds = read
    return read
