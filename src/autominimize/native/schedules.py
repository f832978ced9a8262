"""Learning-rate (and momentum) schedules: callables ``schedule(t) -> float`` of the step count.

``t`` is the number of steps already taken (0 on the first step). Any such callable is
accepted wherever a native algorithm takes ``lr`` or ``momentum``.

Examples
--------
>>> from autominimize.native.schedules import cosine, warmup
>>> lr = warmup(cosine(0.1, 100), 10)
>>> round(lr(0), 4), round(lr(10), 4), round(lr(110), 4)
(0.0, 0.1, 0.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Union

__all__ = ["Schedule", "constant", "step_decay", "exponential", "inverse_time", "cosine", "warmup", "sutskever_momentum", "value_at"]

Schedule = Callable[[int], float]
Hyper = Union[float, Schedule]


def value_at(hyper: Hyper, t: int) -> float:
    """The value of a constant or a schedule at step ``t``."""
    return float(hyper(t)) if callable(hyper) else float(hyper)


@dataclass(frozen=True)
class constant:
    """η_t = η."""

    lr: float

    def __call__(self, t: int) -> float:
        return self.lr


@dataclass(frozen=True)
class step_decay:
    """η_t = η_0 · γ^⌊t / step_size⌋ (torch ``StepLR``; its default γ = 0.1)."""

    lr: float
    step_size: int
    gamma: float = 0.1

    def __call__(self, t: int) -> float:
        return self.lr * self.gamma ** (t // self.step_size)


@dataclass(frozen=True)
class exponential:
    """η_t = max(η_0 · γ^t, η_min) (pylearn2 ``ExponentialDecay`` with γ = 1/d)."""

    lr: float
    gamma: float
    min_lr: float = 0.0

    def __call__(self, t: int) -> float:
        return max(self.lr * self.gamma**t, self.min_lr)


@dataclass(frozen=True)
class inverse_time:
    """η_t = η_0 / (1 + λ η_0 t) (Bottou's ``svmsgd``; Robbins–Monro conditions hold)."""

    lr: float
    decay: float

    def __call__(self, t: int) -> float:
        return self.lr / (1.0 + self.decay * self.lr * t)


@dataclass(frozen=True)
class cosine:
    """η_t = η_min + ½(η_0 − η_min)(1 + cos(π·min(t, T)/T)) (Loshchilov & Hutter, SGDR, 2017)."""

    lr: float
    decay_steps: int
    min_lr: float = 0.0

    def __call__(self, t: int) -> float:
        progress = min(t, self.decay_steps) / self.decay_steps
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class warmup:
    """Linear warm-up from 0 over ``steps`` steps, then ``schedule(t − steps)`` (Goyal et al. 2017)."""

    schedule: Hyper
    steps: int

    def __call__(self, t: int) -> float:
        if t < self.steps:
            return value_at(self.schedule, 0) * t / self.steps
        return value_at(self.schedule, t - self.steps)


@dataclass(frozen=True)
class sutskever_momentum:
    """μ_t = min(1 − 2^(−1 − log2(⌊t/250⌋ + 1)), μ_max) (Sutskever et al., ICML 2013)."""

    max_momentum: float = 0.99

    def __call__(self, t: int) -> float:
        return min(1.0 - 2.0 ** (-1.0 - math.log2(t // 250 + 1)), self.max_momentum)
