"""Hock–Schittkowski constrained test problems, written once for every backend.

From W. Hock and K. Schittkowski, "Test Examples for Nonlinear Programming Codes", Lecture
Notes in Economics and Mathematical Systems 187, Springer, 1981 (the numbers below are
theirs): the objective, the constraints (``'eq'``: c(x) = 0, ``'ineq'``: c(x) ≥ 0), the
bounds, the standard start and the published optimum. Every function takes a flat vector and
finds the operations it needs from its argument's type (NumPy, JAX, PyTorch or TensorFlow).

>>> import numpy as np
>>> import autominimize as am
>>> from autominimize.testing import hock_schittkowski as hs
>>> p = hs.get(71)
>>> res = am.minimize(p.f, p.x0, method="SLSQP", bounds=p.bounds, constraints=p.constraints(), backend="jax")
>>> bool(abs(res.fun - p.fstar) < 1e-6 * abs(p.fstar))
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .mgh import namespace

__all__ = ["PROBLEMS", "Problem", "get"]


@dataclass(frozen=True)
class Problem:
    """One Hock–Schittkowski problem over a flat vector of length n.

    Attributes
    ----------
    number, n : int
        The problem's number in Hock & Schittkowski (1981), and its number of parameters.
    x0 : ndarray
        The standard starting point.
    fstar : float
        The published optimal value; ``xstar`` the published solution.
    lower, upper : ndarray or None
        Bounds on x (None: unbounded).
    """

    number: int
    n: int
    x0: np.ndarray
    fstar: float
    xstar: np.ndarray
    objective: Callable[[Any], Any] = field(repr=False)
    equalities: tuple[Callable[[Any], Any], ...] = field(default=(), repr=False)
    inequalities: tuple[Callable[[Any], Any], ...] = field(default=(), repr=False)
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None

    @property
    def name(self) -> str:
        return f"hs{self.number:03d}"

    def f(self, x: Any) -> Any:
        """The objective at a flat vector of any framework."""
        return self.objective(x)

    def constraints(self) -> list[dict]:
        """The constraints as dicts ``{'type': 'eq'|'ineq', 'fun': c}`` for ``am.minimize``."""
        return [{"type": "eq", "fun": c} for c in self.equalities] + [{"type": "ineq", "fun": c} for c in self.inequalities]

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray] | None:
        if self.lower is None and self.upper is None:
            return None
        lower = self.lower if self.lower is not None else np.full(self.n, -np.inf)
        upper = self.upper if self.upper is not None else np.full(self.n, np.inf)
        return lower, upper


def _array(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def _hs006(x):
    return (1 - x[0]) ** 2


def _hs007(x):
    return namespace(x).log(1 + x[0] ** 2) - x[1]


def _hs014(x):
    return (x[0] - 2) ** 2 + (x[1] - 1) ** 2


def _hs015(x):
    return 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2


def _hs028(x):
    return (x[0] + x[1]) ** 2 + (x[1] + x[2]) ** 2


def _hs035(x):
    return 9 - 8 * x[0] - 6 * x[1] - 4 * x[2] + 2 * x[0] ** 2 + 2 * x[1] ** 2 + x[2] ** 2 + 2 * x[0] * x[1] + 2 * x[0] * x[2]


def _hs039(x):
    return -x[0]


def _hs040(x):
    return -x[0] * x[1] * x[2] * x[3]


def _hs042(x):
    return (x[0] - 1) ** 2 + (x[1] - 2) ** 2 + (x[2] - 3) ** 2 + (x[3] - 4) ** 2


def _hs043(x):
    return x[0] ** 2 + x[1] ** 2 + 2 * x[2] ** 2 + x[3] ** 2 - 5 * x[0] - 5 * x[1] - 21 * x[2] + 7 * x[3]


def _hs048(x):
    return (x[0] - 1) ** 2 + (x[1] - x[2]) ** 2 + (x[3] - x[4]) ** 2


def _hs071(x):
    return x[0] * x[3] * (x[0] + x[1] + x[2]) + x[2]


PROBLEMS: dict[int, Problem] = {
    p.number: p
    for p in [
        Problem(6, 2, _array(-1.2, 1.0), 0.0, _array(1.0, 1.0), _hs006, equalities=(lambda x: 10 * (x[1] - x[0] ** 2),)),
        Problem(
            7, 2, _array(2.0, 2.0), -math.sqrt(3.0), _array(0.0, math.sqrt(3.0)), _hs007, equalities=(lambda x: (1 + x[0] ** 2) ** 2 + x[1] ** 2 - 4,)
        ),
        Problem(
            14,
            2,
            _array(2.0, 2.0),
            9 - 2.875 * math.sqrt(7.0),
            _array(0.5 * (math.sqrt(7.0) - 1), 0.25 * (math.sqrt(7.0) + 1)),
            _hs014,
            equalities=(lambda x: x[0] - 2 * x[1] + 1,),
            inequalities=(lambda x: -(x[0] ** 2) / 4 - x[1] ** 2 + 1,),
        ),
        Problem(
            15,
            2,
            _array(-2.0, 1.0),
            306.5,
            _array(0.5, 2.0),
            _hs015,
            inequalities=(lambda x: x[0] * x[1] - 1, lambda x: x[0] + x[1] ** 2),
            upper=_array(0.5, np.inf),
        ),
        Problem(28, 3, _array(-4.0, 1.0, 1.0), 0.0, _array(0.5, -0.5, 0.5), _hs028, equalities=(lambda x: x[0] + 2 * x[1] + 3 * x[2] - 1,)),
        Problem(
            35,
            3,
            _array(0.5, 0.5, 0.5),
            1.0 / 9.0,
            _array(4.0 / 3.0, 7.0 / 9.0, 4.0 / 9.0),
            _hs035,
            inequalities=(lambda x: 3 - x[0] - x[1] - 2 * x[2],),
            lower=np.zeros(3),
        ),
        Problem(
            39,
            4,
            _array(2.0, 2.0, 2.0, 2.0),
            -1.0,
            _array(1.0, 1.0, 0.0, 0.0),
            _hs039,
            equalities=(lambda x: x[1] - x[0] ** 3 - x[2] ** 2, lambda x: x[0] ** 2 - x[1] - x[3] ** 2),
        ),
        Problem(
            40,
            4,
            _array(0.8, 0.8, 0.8, 0.8),
            -0.25,
            _array(2 ** (-1 / 3), 2 ** (-1 / 2), 2 ** (-11 / 12), 2 ** (-1 / 4)),
            _hs040,
            equalities=(lambda x: x[0] ** 3 + x[1] ** 2 - 1, lambda x: x[0] ** 2 * x[3] - x[2], lambda x: x[3] ** 2 - x[1]),
        ),
        Problem(
            42,
            4,
            _array(1.0, 1.0, 1.0, 1.0),
            28 - 10 * math.sqrt(2.0),
            _array(2.0, 2.0, 0.6 * math.sqrt(2.0), 0.8 * math.sqrt(2.0)),
            _hs042,
            equalities=(lambda x: x[0] - 2, lambda x: x[2] ** 2 + x[3] ** 2 - 2),
        ),
        Problem(
            43,
            4,
            np.zeros(4),
            -44.0,
            _array(0.0, 1.0, 2.0, -1.0),
            _hs043,
            inequalities=(
                lambda x: 8 - x[0] ** 2 - x[1] ** 2 - x[2] ** 2 - x[3] ** 2 - x[0] + x[1] - x[2] + x[3],
                lambda x: 10 - x[0] ** 2 - 2 * x[1] ** 2 - x[2] ** 2 - 2 * x[3] ** 2 + x[0] + x[3],
                lambda x: 5 - 2 * x[0] ** 2 - x[1] ** 2 - x[2] ** 2 - 2 * x[0] + x[1] + x[3],
            ),
        ),
        Problem(
            48,
            5,
            _array(3.0, 5.0, -3.0, 2.0, -2.0),
            0.0,
            np.ones(5),
            _hs048,
            equalities=(lambda x: x[0] + x[1] + x[2] + x[3] + x[4] - 5, lambda x: x[2] - 2 * (x[3] + x[4]) + 3),
        ),
        Problem(
            71,
            4,
            _array(1.0, 5.0, 5.0, 1.0),
            17.0140172891563,
            _array(1.0, 4.74299963, 3.82114998, 1.37940829),
            _hs071,
            equalities=(lambda x: x[0] ** 2 + x[1] ** 2 + x[2] ** 2 + x[3] ** 2 - 40,),
            inequalities=(lambda x: x[0] * x[1] * x[2] * x[3] - 25,),
            lower=np.ones(4),
            upper=np.full(4, 5.0),
        ),
    ]
}


def get(number: int) -> Problem:
    """The problem with Hock & Schittkowski's ``number``."""
    if number not in PROBLEMS:
        raise KeyError(f"no Hock-Schittkowski problem {number!r} here; available: {sorted(PROBLEMS)}.")
    return PROBLEMS[number]
