"""Delta-bar-delta: one adaptive step size per parameter (Jacobs 1988)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from ._arrays import namespace
from .base import Algorithm, Oracle


class DeltaBarDeltaState(NamedTuple):
    x: Any
    f: Any
    g: Any
    nit: int
    lr: Any  # ε, one per parameter
    bar: Any  # δ̄, the exponential average of past gradients
    flag: str = ""


@dataclass(frozen=True)
class DeltaBarDelta(Algorithm):
    """Delta-bar-delta (Jacobs, "Increased rates of convergence through learning rate
    adaptation", *Neural Networks* 1(4):295–307, 1988).

    Each weight has its own rate ε_i; δ is the current gradient and δ̄ an exponential
    average of past ones. Each step, in this order:

    1. ε_i += κ if δ̄_i(t−1) δ_i(t) > 0; ε_i −= φ ε_i if δ̄_i(t−1) δ_i(t) < 0;
    2. w_i ← w_i − ε_i δ_i with the new ε;
    3. δ̄(t) = (1 − θ) δ(t) + θ δ̄(t−1).

    Meant for full-batch gradients (Gorr's notes: "should be used with batch only").

    Parameters
    ----------
    lr : float
        Initial rate ε_0; default 0.1 (Tveter's backprop program).
    kappa : float
        Additive increase κ; default 0.25 (Tveter).
    phi : float
        Multiplicative decrease φ; default 0.5, i.e. halve ε (Tveter).
    theta : float
        Averaging weight θ of δ̄; default 0.7 (Tveter).
    max_lr : float, optional
        Cap on ε (Tveter's optional maximum, 10 in his program); default None, as the paper.

    Examples
    --------
    >>> import numpy as np
    >>> import autominimize as am
    >>> res = am.minimize(lambda x: 0.5 * (x ** 2).sum(), np.ones(3), method="delta-bar-delta",
    ...                   options={"lr": 0.1, "kappa": 0.05}, backend="numpy", jac=lambda x: x)
    >>> bool(np.abs(res.x).max() < 1e-4)
    True
    """

    lr: float = 0.1
    kappa: float = 0.25
    phi: float = 0.5
    theta: float = 0.7
    max_lr: float | None = None

    name = "delta-bar-delta"
    limits = {"lr": "positive", "kappa": "nonnegative", "phi": "half-open", "theta": "half-open", "max_lr": "positive"}
    first_order = True

    def init(self, x: Any, oracle: Oracle | None = None) -> DeltaBarDeltaState:
        xp = namespace(x)
        return DeltaBarDeltaState(x, None, None, 0, xp.full_like(x, self.lr), xp.zeros_like(x))

    def step(self, state: DeltaBarDeltaState, oracle: Oracle) -> DeltaBarDeltaState:
        xp = namespace(state.x)
        f, g = oracle.value_and_grad(state.x)
        agreement = state.bar * g
        lr = xp.where(agreement > 0, state.lr + self.kappa, xp.where(agreement < 0, (1.0 - self.phi) * state.lr, state.lr))
        if self.max_lr is not None:
            lr = xp.clip(lr, max=self.max_lr)
        bar = (1.0 - self.theta) * g + self.theta * state.bar
        return DeltaBarDeltaState(state.x - lr * g, f, g, state.nit + 1, lr, bar)
