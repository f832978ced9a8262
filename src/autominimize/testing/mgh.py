"""Moré–Garbow–Hillstrom least-squares test problems, written once for every backend.

From J. J. Moré, B. S. Garbow and K. E. Hillstrom, "Testing unconstrained optimization
software", ACM TOMS 7(1):17-41, 1981 (the problem numbers below are theirs), with the
dimensions Moré & Wild use in "Benchmarking derivative-free optimization algorithms", SIAM J.
Optim. 20(1):172-191, 2009. Each problem is a residual function ``r(x)`` with
``f(x) = sum(r**2)``; ``fstar`` is the published minimum of f (to its published digits,
refined here to ten), and ``local_fstar`` lists other minima the paper reports, which a local
solver may reach from the standard start.

Every residual function takes a flat vector and finds the array operations it needs from
its argument's type (NumPy, JAX, PyTorch or TensorFlow), so any backend can evaluate and
differentiate it:

>>> import numpy as np
>>> from autominimize.testing import mgh
>>> p = mgh.get("rosenbrock")
>>> round(p.f(p.x0), 10), p.fstar
(24.2, 0.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..params import leaf_kind

__all__ = ["Problem", "PROBLEMS", "get", "namespace"]


# -- array operations by framework ---------------------------------------------------------
class _Namespace:
    """The few operations the problems use, for one framework, with constants like ``x``."""

    def __init__(self, like: Any) -> None:
        self.kind = leaf_kind(like)
        self.like = like
        if self.kind == "torch":
            import torch as module
        elif self.kind == "jax":
            import jax.numpy as module
        elif self.kind == "tf":
            import tensorflow as module
        else:
            module = np
        self.m = module
        for name in ("exp", "sqrt", "sin", "cos", "abs", "log"):
            setattr(self, name, getattr(module.math if self.kind == "tf" else module, name))
        self.atan = module.math.atan if self.kind == "tf" else (module.atan if self.kind == "torch" else module.arctan)

    def const(self, value: Any) -> Any:
        from ..backends import constant_like

        return constant_like(np.asarray(value, dtype=np.float64), self.like)

    def stack(self, items: list) -> Any:
        """A 1-D vector from scalars and 1-D pieces."""
        if self.kind == "tf":
            pieces = [self.m.reshape(item, [-1]) for item in items]
            return self.m.concat(pieces, axis=0)
        if self.kind == "torch":
            return self.m.cat([self.m.reshape(self.m.as_tensor(item), (-1,)) for item in items])
        return self.m.concatenate([self.m.reshape(self.m.asarray(item), (-1,)) for item in items])

    def sum(self, value: Any) -> Any:
        return self.m.reduce_sum(value) if self.kind == "tf" else self.m.sum(value)

    def prod(self, value: Any) -> Any:
        return self.m.reduce_prod(value) if self.kind == "tf" else self.m.prod(value)

    def cumsum(self, value: Any) -> Any:
        return self.m.cumsum(value, axis=0) if self.kind != "torch" else self.m.cumsum(value, dim=0)

    def where(self, condition: Any, a: Any, b: Any) -> Any:
        if self.kind == "tf":
            return self.m.where(
                condition, self.const(a) if np.ndim(a) == 0 and not hasattr(a, "dtype") else a, self.const(b) if not hasattr(b, "dtype") else b
            )
        if self.kind == "torch":
            return self.m.where(condition, self.const(a) if not hasattr(a, "dtype") else a, self.const(b) if not hasattr(b, "dtype") else b)
        return self.m.where(condition, a, b)

    def matvec(self, matrix: Any, vector: Any) -> Any:
        return self.m.linalg.matvec(matrix, vector) if self.kind == "tf" else matrix @ vector


def namespace(x: Any) -> _Namespace:
    """The operations for ``x``'s framework (NumPy, JAX, PyTorch or TensorFlow)."""
    return _Namespace(x)


# -- the problems ----------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """One MGH problem: ``residuals(x)`` for a flat vector x of length n.

    Attributes
    ----------
    name, number : str, int
        The name and the number in Moré, Garbow & Hillstrom (1981).
    n, m : int
        Parameters and residuals.
    x0 : ndarray
        The standard starting point.
    fstar : float
        The global minimum of ``f = sum(r**2)``.
    local_fstar : tuple of float
        Other (local) minima reported in the paper that a solver may reach from ``x0``.
    """

    name: str
    number: int
    n: int
    m: int
    x0: np.ndarray
    fstar: float
    body: Callable[[Any, _Namespace], Any] = field(repr=False)
    local_fstar: tuple[float, ...] = ()

    def residuals(self, x: Any) -> Any:
        """The residual vector at the flat vector ``x``, in ``x``'s array type."""
        return self.body(x, namespace(x))

    def f(self, x: Any) -> float:
        """``sum(r**2)`` as a Python float."""
        from ..params import leaf_to_numpy

        r = leaf_to_numpy(self.residuals(x)).astype(np.float64)
        return float(r @ r)

    def is_solved(self, f: float, rtol: float = 1e-6) -> bool:
        """Whether ``f`` is within ``rtol`` of ``fstar`` (absolutely where ``fstar`` is 0), or
        within 1e-5 of a local minimum (published with about six digits)."""
        if abs(f - self.fstar) <= rtol * max(abs(self.fstar), 1.0):
            return True
        return any(abs(f - local) <= 1e-5 * max(abs(local), 1e-2) for local in self.local_fstar)


def _rosenbrock(x, xp):
    return xp.stack([10 * (x[1] - x[0] ** 2), 1 - x[0]])


def _freudenstein_roth(x, xp):
    return xp.stack([-13 + x[0] + ((5 - x[1]) * x[1] - 2) * x[1], -29 + x[0] + ((x[1] + 1) * x[1] - 14) * x[1]])


def _powell_badly_scaled(x, xp):
    return xp.stack([1e4 * x[0] * x[1] - 1, xp.exp(-x[0]) + xp.exp(-x[1]) - 1.0001])


def _brown_badly_scaled(x, xp):
    return xp.stack([x[0] - 1e6, x[1] - 2e-6, x[0] * x[1] - 2])


def _beale(x, xp):
    y = xp.const([1.5, 2.25, 2.625])
    i = xp.const([1.0, 2.0, 3.0])
    return y - x[0] * (1 - x[1] ** i)


def _jennrich_sampson(x, xp):
    i = xp.const(np.arange(1.0, 11.0))
    return 2 + 2 * i - (xp.exp(i * x[0]) + xp.exp(i * x[1]))


def _helical_valley(x, xp):
    theta = xp.atan(x[1] / x[0]) / (2 * math.pi) + xp.where(x[0] < 0, 0.5, 0.0)
    return xp.stack([10 * (x[2] - 10 * theta), 10 * (xp.sqrt(x[0] ** 2 + x[1] ** 2) - 1), x[2]])


_BARD_Y = [0.14, 0.18, 0.22, 0.25, 0.29, 0.32, 0.35, 0.39, 0.37, 0.58, 0.73, 0.96, 1.34, 2.10, 4.39]


def _bard(x, xp):
    u = np.arange(1.0, 16.0)
    v = 16.0 - u
    w = np.minimum(u, v)
    return xp.const(_BARD_Y) - (x[0] + xp.const(u) / (xp.const(v) * x[1] + xp.const(w) * x[2]))


_GAUSSIAN_Y = [0.0009, 0.0044, 0.0175, 0.0540, 0.1295, 0.2420, 0.3521, 0.3989, 0.3521, 0.2420, 0.1295, 0.0540, 0.0175, 0.0044, 0.0009]


def _gaussian(x, xp):
    t = xp.const((8.0 - np.arange(1.0, 16.0)) / 2)
    return x[0] * xp.exp(-x[1] * (t - x[2]) ** 2 / 2) - xp.const(_GAUSSIAN_Y)


_MEYER_Y = [34780, 28610, 23650, 19630, 16370, 13720, 11540, 9744, 8261, 7030, 6005, 5147, 4427, 3820, 3307, 2872]


def _meyer(x, xp):
    t = xp.const(45.0 + 5.0 * np.arange(1.0, 17.0))
    return x[0] * xp.exp(x[1] / (t + x[2])) - xp.const(_MEYER_Y)


def _box3(x, xp):
    t = np.arange(1.0, 11.0) / 10
    tc = xp.const(t)
    return xp.exp(-tc * x[0]) - xp.exp(-tc * x[1]) - x[2] * xp.const(np.exp(-t) - np.exp(-10 * t))


def _powell_singular(x, xp):
    return xp.stack([x[0] + 10 * x[1], math.sqrt(5) * (x[2] - x[3]), (x[1] - 2 * x[2]) ** 2, math.sqrt(10) * (x[0] - x[3]) ** 2])


def _wood(x, xp):
    return xp.stack(
        [
            10 * (x[1] - x[0] ** 2),
            1 - x[0],
            math.sqrt(90) * (x[3] - x[2] ** 2),
            1 - x[2],
            math.sqrt(10) * (x[1] + x[3] - 2),
            (x[1] - x[3]) / math.sqrt(10),
        ]
    )


_KOWALIK_Y = [0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627, 0.0456, 0.0342, 0.0323, 0.0235, 0.0246]
_KOWALIK_U = [4.0, 2.0, 1.0, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714, 0.0625]


def _kowalik_osborne(x, xp):
    u = xp.const(_KOWALIK_U)
    return xp.const(_KOWALIK_Y) - x[0] * (u**2 + u * x[1]) / (u**2 + u * x[2] + x[3])


def _brown_dennis(x, xp):
    t = np.arange(1.0, 21.0) / 5
    tc = xp.const(t)
    return (x[0] + tc * x[1] - xp.const(np.exp(t))) ** 2 + (x[2] + x[3] * xp.const(np.sin(t)) - xp.const(np.cos(t))) ** 2


_OSBORNE1_Y = [
    0.844,
    0.908,
    0.932,
    0.936,
    0.925,
    0.908,
    0.881,
    0.850,
    0.818,
    0.784,
    0.751,
    0.718,
    0.685,
    0.658,
    0.628,
    0.603,
    0.580,
    0.558,
    0.538,
    0.522,
    0.506,
    0.490,
    0.478,
    0.467,
    0.457,
    0.448,
    0.438,
    0.431,
    0.424,
    0.420,
    0.414,
    0.411,
    0.406,
]


def _osborne1(x, xp):
    t = xp.const(10.0 * np.arange(33.0))
    return xp.const(_OSBORNE1_Y) - (x[0] + x[1] * xp.exp(-t * x[3]) + x[2] * xp.exp(-t * x[4]))


def _biggs_exp6(x, xp):
    t = np.arange(1.0, 14.0) / 10
    y = np.exp(-t) - 5 * np.exp(-10 * t) + 3 * np.exp(-4 * t)
    tc = xp.const(t)
    return x[2] * xp.exp(-tc * x[0]) - x[3] * xp.exp(-tc * x[1]) + x[5] * xp.exp(-tc * x[4]) - xp.const(y)


_OSBORNE2_Y = [
    1.366,
    1.191,
    1.112,
    1.013,
    0.991,
    0.885,
    0.831,
    0.847,
    0.786,
    0.725,
    0.746,
    0.679,
    0.608,
    0.655,
    0.616,
    0.606,
    0.602,
    0.626,
    0.651,
    0.724,
    0.649,
    0.649,
    0.694,
    0.644,
    0.624,
    0.661,
    0.612,
    0.558,
    0.533,
    0.495,
    0.500,
    0.423,
    0.395,
    0.375,
    0.372,
    0.391,
    0.396,
    0.405,
    0.428,
    0.429,
    0.523,
    0.562,
    0.607,
    0.653,
    0.672,
    0.708,
    0.633,
    0.668,
    0.645,
    0.632,
    0.591,
    0.559,
    0.597,
    0.625,
    0.739,
    0.710,
    0.729,
    0.720,
    0.636,
    0.581,
    0.428,
    0.292,
    0.162,
    0.098,
    0.054,
]


def _osborne2(x, xp):
    t = xp.const(np.arange(65.0) / 10)
    model = (
        x[0] * xp.exp(-t * x[4])
        + x[1] * xp.exp(-((t - x[8]) ** 2) * x[5])
        + x[2] * xp.exp(-((t - x[9]) ** 2) * x[6])
        + x[3] * xp.exp(-((t - x[10]) ** 2) * x[7])
    )
    return xp.const(_OSBORNE2_Y) - model


def _watson(x, xp):
    n = 6
    t = np.arange(1.0, 30.0) / 29
    j = np.arange(n)
    # d/dt of the polynomial sum_j x_j t^(j-1) and the polynomial itself, as matrix products
    derivative = xp.matvec(xp.const(np.where(j >= 1, j * t[:, None] ** np.maximum(j - 1, 0), 0.0)), x)
    poly = xp.matvec(xp.const(t[:, None] ** j), x)
    return xp.stack([derivative - poly**2 - 1, x[0], x[1] - x[0] ** 2 - 1])


def _extended_rosenbrock(x, xp):
    odd, even = x[0::2], x[1::2]
    return xp.stack([10 * (even - odd**2), 1 - odd])


def _extended_powell(x, xp):
    a, b, c, d = x[0::4], x[1::4], x[2::4], x[3::4]
    return xp.stack([a + 10 * b, math.sqrt(5) * (c - d), (b - 2 * c) ** 2, math.sqrt(10) * (a - d) ** 2])


def _penalty1(x, xp):
    return xp.stack([math.sqrt(1e-5) * (x - 1), xp.sum(x**2) - 0.25])


def _penalty2(x, xp):
    n = 4
    a = math.sqrt(1e-5)
    i = np.arange(2.0, n + 1)
    y = np.exp(i / 10) + np.exp((i - 1) / 10)
    middle = a * (xp.exp(x[1:] / 10) + xp.exp(x[:-1] / 10) - xp.const(y))
    tail = a * (xp.exp(x[1:] / 10) - math.exp(-0.1))
    last = xp.sum(xp.const(np.arange(n, 0.0, -1)) * x**2) - 1
    return xp.stack([x[0] - 0.2, middle, tail, last])


def _variably_dimensioned(x, xp):
    n = 10
    s = xp.sum(xp.const(np.arange(1.0, n + 1)) * (x - 1))
    return xp.stack([x - 1, s, s**2])


def _trigonometric(x, xp):
    n = 10
    i = xp.const(np.arange(1.0, n + 1))
    return n - xp.sum(xp.cos(x)) + i * (1 - xp.cos(x)) - xp.sin(x)


def _brown_almost_linear(x, xp):
    n = 10
    return xp.stack([x[:-1] + xp.sum(x) - (n + 1), xp.prod(x) - 1])


def _discrete_boundary(x, xp):
    n = 10
    h = 1 / (n + 1)
    t = xp.const(np.arange(1.0, n + 1) * h)
    zero = xp.const([0.0])
    padded = xp.stack([zero, x, zero])
    return 2 * x - padded[:-2] - padded[2:] + h**2 * (x + t + 1) ** 3 / 2


def _discrete_integral(x, xp):
    n = 10
    h = 1 / (n + 1)
    t = np.arange(1.0, n + 1) * h
    cube = (x + xp.const(t) + 1) ** 3
    lower = np.tril(np.ones((n, n)))  # j <= i
    upper = np.triu(np.ones((n, n)), 1)  # j > i
    left = xp.matvec(xp.const(lower * t[None, :]), cube) * xp.const(1 - t)
    right = xp.matvec(xp.const(upper * (1 - t)[None, :]), cube) * xp.const(t)
    return x + h * (left + right) / 2


def _broyden_tridiagonal(x, xp):
    zero = xp.const([0.0])
    padded = xp.stack([zero, x, zero])
    return (3 - 2 * x) * x - padded[:-2] - 2 * padded[2:] + 1


def _broyden_banded(x, xp):
    n = 10
    i = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    band = ((j != i) & (j >= i - 5) & (j <= i + 1)).astype(np.float64)
    return x * (2 + 5 * x**2) + 1 - xp.matvec(xp.const(band), x * (1 + x))


def _linear_full_rank(x, xp):
    n, m = 9, 45
    s = 2 / m * xp.sum(x)
    return xp.stack([x - s - 1, -s - xp.const(np.ones(m - n))])


def _linear_rank1(x, xp):
    n, m = 7, 20
    s = xp.sum(xp.const(np.arange(1.0, n + 1)) * x)
    return xp.const(np.arange(1.0, m + 1)) * s - 1


def _linear_rank1_zero(x, xp):
    n, m = 7, 20
    s = xp.sum(xp.const(np.arange(2.0, n)) * x[1:-1])
    middle = xp.const(np.arange(1.0, m - 1)) * s - 1
    return xp.stack([xp.const([-1.0]), middle, xp.const([-1.0])])


def _chebyquad(x, xp):
    n = m = 7
    # shifted Chebyshev polynomials T_i(2x - 1) by the three-term recurrence
    y = 2 * x - 1
    rows = [xp.const(np.ones(n)), y]
    for _ in range(2, m + 1):
        rows.append(2 * y * rows[-1] - rows[-2])
    exact = [0.0 if i % 2 else -1.0 / (i * i - 1) for i in range(1, m + 1)]
    return xp.stack([xp.sum(rows[i]) / n - exact[i - 1] for i in range(1, m + 1)])


def _p(name, number, n, m, x0, fstar, body, local=()):
    return Problem(name, number, n, m, np.asarray(x0, dtype=np.float64), fstar, body, tuple(local))


#: the problems, by name. f* values are the published ones, refined to 13 digits by solving
#: with scipy to 1e-15 tolerances; the local minima "at infinity" (Bard, Kowalik-Osborne) are
#: reached only approximately and are listed to the paper's digits
PROBLEMS: dict[str, Problem] = {
    p.name: p
    for p in [
        _p("rosenbrock", 1, 2, 2, [-1.2, 1.0], 0.0, _rosenbrock),
        _p("freudenstein_roth", 2, 2, 2, [0.5, -2.0], 0.0, _freudenstein_roth, [48.98425367924]),
        _p("powell_badly_scaled", 3, 2, 2, [0.0, 1.0], 0.0, _powell_badly_scaled),
        _p("brown_badly_scaled", 4, 2, 3, [1.0, 1.0], 0.0, _brown_badly_scaled),
        _p("beale", 5, 2, 3, [1.0, 1.0], 0.0, _beale),
        _p("jennrich_sampson", 6, 2, 10, [0.3, 0.4], 124.3621823556, _jennrich_sampson),
        _p("helical_valley", 7, 3, 3, [-1.0, 0.0, 0.0], 0.0, _helical_valley),
        _p("bard", 8, 3, 15, [1.0, 1.0, 1.0], 8.214877306579e-3, _bard, [17.4286]),
        _p("gaussian", 9, 3, 15, [0.4, 1.0, 0.0], 1.127932769619e-8, _gaussian),
        _p("meyer", 10, 3, 16, [0.02, 4000.0, 250.0], 87.94585517028, _meyer),
        _p("box3", 12, 3, 10, [0.0, 10.0, 20.0], 0.0, _box3),
        _p("powell_singular", 13, 4, 4, [3.0, -1.0, 0.0, 1.0], 0.0, _powell_singular),
        _p("wood", 14, 4, 6, [-3.0, -1.0, -3.0, -1.0], 0.0, _wood),
        _p("kowalik_osborne", 15, 4, 11, [0.25, 0.39, 0.415, 0.39], 3.075056038492e-4, _kowalik_osborne, [1.02734e-3]),
        _p("brown_dennis", 16, 4, 20, [25.0, 5.0, -5.0, -1.0], 85822.20162636, _brown_dennis),
        _p("osborne1", 17, 5, 33, [0.5, 1.5, -1.0, 0.01, 0.02], 5.464894697483e-5, _osborne1),
        _p("biggs_exp6", 18, 6, 13, [1.0, 2.0, 1.0, 1.0, 1.0, 1.0], 0.0, _biggs_exp6, [5.65565e-3]),
        _p("osborne2", 19, 11, 65, [1.3, 0.65, 0.65, 0.7, 0.6, 3.0, 5.0, 7.0, 2.0, 4.5, 5.5], 4.013773629355e-2, _osborne2),
        _p("watson6", 20, 6, 31, np.zeros(6), 2.287670053552e-3, _watson),
        _p("extended_rosenbrock", 21, 10, 10, np.tile([-1.2, 1.0], 5), 0.0, _extended_rosenbrock),
        _p("extended_powell", 22, 12, 12, np.tile([3.0, -1.0, 0.0, 1.0], 3), 0.0, _extended_powell),
        _p("penalty1", 23, 4, 5, np.arange(1.0, 5.0), 2.2499775009e-5, _penalty1),
        _p("penalty2", 24, 4, 8, np.full(4, 0.5), 9.376293007355e-6, _penalty2),
        _p("variably_dimensioned", 25, 10, 12, 1 - np.arange(1.0, 11.0) / 10, 0.0, _variably_dimensioned),
        _p("trigonometric", 26, 10, 10, np.full(10, 0.1), 0.0, _trigonometric, [2.795056121878e-5]),
        _p("brown_almost_linear", 27, 10, 10, np.full(10, 0.5), 0.0, _brown_almost_linear, [1.0]),
        _p("discrete_boundary", 28, 10, 10, (np.arange(1.0, 11.0) / 11) * (np.arange(1.0, 11.0) / 11 - 1), 0.0, _discrete_boundary),
        _p("discrete_integral", 29, 10, 10, (np.arange(1.0, 11.0) / 11) * (np.arange(1.0, 11.0) / 11 - 1), 0.0, _discrete_integral),
        _p("broyden_tridiagonal", 30, 10, 10, -np.ones(10), 0.0, _broyden_tridiagonal),
        _p("broyden_banded", 31, 10, 10, -np.ones(10), 0.0, _broyden_banded),
        _p("linear_full_rank", 32, 9, 45, np.ones(9), 36.0, _linear_full_rank),
        _p("linear_rank1", 33, 7, 20, np.ones(7), 20 * 19 / (2 * 41), _linear_rank1),
        _p("linear_rank1_zero", 34, 7, 20, np.ones(7), (400 + 60 - 6) / (2 * 37), _linear_rank1_zero),
        _p("chebyquad7", 35, 7, 7, np.arange(1.0, 8.0) / 8, 0.0, _chebyquad),
    ]
}


def get(name: str) -> Problem:
    """The problem called ``name`` (see ``PROBLEMS``)."""
    try:
        return PROBLEMS[name]
    except KeyError:
        raise KeyError(f"no MGH problem named {name!r}; choose one of: {', '.join(PROBLEMS)}.") from None
