"""TONGA: online natural gradient with a low-rank gradient covariance (Le Roux et al. 2008)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from array_api_compat import device as device_of

from ._arrays import namespace
from .base import Algorithm, Oracle
from .schedules import Hyper, value_at


class TongaState(NamedTuple):
    x: Any
    f: Any
    g: Any
    nit: int
    factor: Any  # X (n × (k + b)): the covariance estimate is X Xᵀ; unused columns are 0
    column: int  # where the next gradient goes
    flag: str = ""


@dataclass(frozen=True)
class Tonga(Algorithm):
    """TONGA, "Topmoumoute online natural gradient algorithm" (Le Roux, Manzagol & Bengio,
    NIPS 2007, published 2008).

    Moves along v = (C + λI)⁻¹ ḡ, where C = γ C_prev + ḡ ḡᵀ is a discounted, uncentred
    covariance of the mini-batch gradients kept in low-rank form C = X Xᵀ with
    X ← [√γ X, ḡ]. Since ḡ is X's last column, v = X (XᵀX + λI)⁻¹ e_last (push-through
    identity; a (k + b) × (k + b) solve). Every ``b`` steps X is truncated to its top ``k``
    eigen-directions through the eigendecomposition of the small Gram matrix XᵀX = V D Vᵀ
    (X ← X V_k, so X Xᵀ keeps the top-k part of C). X keeps a fixed shape, with zero
    columns not yet filled, so compiled frameworks see one shape only. The uncentred covariance
    only rescales the step along the natural gradient (Sherman–Morrison).

    This implementation keeps one block (the whole parameter vector) and re-estimates from
    the accumulated gradients, not from ``nb_estimates`` fresh ones as climin did.

    Parameters
    ----------
    lr : float or callable
        Step size η; default 1, as climin's ``tonga`` (which has no step size).
    damping : float
        λ; default 2.67e-2, the best value in climin's ``tonga`` docstring.
    gamma : float
        Discount γ; 0.995 (climin's ``tonga``).
    k : int
        Eigen-directions kept; 5 (climin's ``tonga``).
    b : int
        Steps between eigendecompositions; 50 (climin's ``tonga``).

    Examples
    --------
    >>> import numpy as np
    >>> import autominimize as am
    >>> batches = [np.full(2, v) for v in (0.9, 1.1)] * 25
    >>> res = am.minimize(lambda w, b: 0.5 * ((w - b) ** 2).sum(), np.zeros(2), method="tonga",
    ...                   data=batches, epochs=2, options={"lr": 0.5}, backend="jax")
    >>> bool(np.allclose(res.x, 1.0, atol=0.1))
    True
    """

    lr: Hyper = 1.0
    damping: float = 2.67e-2
    gamma: float = 0.995
    k: int = 5
    b: int = 50

    name = "tonga"
    limits = {"lr": "positive", "damping": "nonnegative", "gamma": "decay", "k": "count", "b": "count"}
    first_order = True

    def init(self, x: Any, oracle: Oracle | None = None) -> TongaState:
        xp = namespace(x)
        width = self.k + self.b
        return TongaState(x, None, None, 0, xp.zeros((x.shape[0], width), dtype=x.dtype, device=device_of(x)), 0)

    def step(self, state: TongaState, oracle: Oracle) -> TongaState:
        xp = namespace(state.x)
        f, g = oracle.value_and_grad(state.x)
        width = state.factor.shape[1]
        eye = xp.eye(width, dtype=state.x.dtype, device=device_of(state.x))
        slot = eye[state.column, :]
        factor = math.sqrt(self.gamma) * state.factor * (1.0 - slot) + xp.reshape(g, (-1, 1)) * slot
        gram = xp.matmul(xp.matrix_transpose(factor), factor)
        coefficients = xp.linalg.solve(gram + self.damping * eye, xp.reshape(slot, (width, 1)))
        direction = xp.reshape(xp.matmul(factor, coefficients), (-1,))
        t, column = state.nit + 1, state.column + 1
        if t % self.b == 0:
            _, vectors = xp.linalg.eigh(gram)
            top = xp.matmul(factor, vectors[:, width - self.k :])
            factor = xp.concat([top, xp.zeros((top.shape[0], width - self.k), dtype=top.dtype, device=device_of(top))], axis=1)
            column = self.k
        return TongaState(state.x - value_at(self.lr, state.nit) * direction, f, g, t, factor, column)
