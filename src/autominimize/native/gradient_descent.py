"""Stochastic gradient descent with classical or Nesterov momentum and schedules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from ._arrays import namespace
from .base import Algorithm, Oracle
from .schedules import Hyper, value_at


class SGDState(NamedTuple):
    x: Any
    f: Any
    g: Any
    nit: int
    velocity: Any
    flag: str = ""


@dataclass(frozen=True)
class SGD(Algorithm):
    """Gradient descent with classical (CM) or Nesterov (NAG) momentum.

    Sutskever, Martens, Dahl & Hinton (ICML 2013), with NAG in the form of Bengio,
    Boulanger-Lewandowski & Pascanu (arXiv:1212.0901, eq. 7), which needs no gradient at a
    shifted point::

        v ← μ v − η g(θ)
        CM:  θ ← θ + v
        NAG: θ ← θ + μ v − η g(θ)

    The velocity holds η (Keras and pylearn2 convention), so a changing η affects only new
    gradients; with constant η the iterates equal torch's ``SGD`` (the note's §3.1 check).

    Parameters
    ----------
    lr : float or callable
        Step size η, or a schedule ``lr(t)`` (:mod:`autominimize.native.schedules`).
        Default 0.01, Keras ``SGD``'s.
    momentum : float or callable
        μ in [0, 1); default 0 (torch, Keras and optax). May be a schedule, e.g.
        :class:`~autominimize.native.schedules.sutskever_momentum`.
    nesterov : bool
        Nesterov momentum; default False (torch, Keras, optax).

    Examples
    --------
    >>> import numpy as np
    >>> import autominimize as am
    >>> res = am.minimize(lambda x: ((x - 2.0) ** 2).sum(), np.zeros(2), method="sgd",
    ...                   options={"lr": 0.1, "momentum": 0.5}, backend="jax")
    >>> bool(np.allclose(res.x, 2.0, atol=1e-4))
    True
    """

    lr: Hyper = 0.01
    momentum: Hyper = 0.0
    nesterov: bool = False

    name = "sgd"
    limits = {"lr": "positive", "momentum": "half-open"}
    first_order = True

    def init(self, x: Any, oracle: Oracle | None = None) -> SGDState:
        xp = namespace(x)
        return SGDState(x, None, None, 0, xp.zeros_like(x))

    def step(self, state: SGDState, oracle: Oracle) -> SGDState:
        f, g = oracle.value_and_grad(state.x)
        lr, mu = value_at(self.lr, state.nit), value_at(self.momentum, state.nit)
        velocity = mu * state.velocity - lr * g if mu else -lr * g
        delta = mu * velocity - lr * g if self.nesterov else velocity
        return SGDState(state.x + delta, f, g, state.nit + 1, velocity)
