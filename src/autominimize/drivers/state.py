"""The state one step of a run yields, whatever the method (``am.iterate``'s items)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

__all__ = ["IterationState"]


@dataclass(frozen=True)
class IterationState:
    """One step of a run, whatever the method.

    ``nit`` steps were taken; ``fun`` is the objective at ``x`` (for the first-order native
    methods, 'sgd', 'delta-bar-delta', 'sgd-qn' and 'tonga', at the point the step started
    from, where it measured the gradient; for stochastic steps, the mini-batch loss of the step); ``stop`` is None while the run goes on and otherwise says
    why it ends (``message``, ``success``, ``status``); ``raw`` is the algorithm's own state.
    ``x`` and ``jac`` are restored to x0's structure and array types when first read.
    """

    nit: int
    nfev: int
    njev: int
    nhvp: int
    elapsed: float
    epoch: int
    fun_value: Any = field(repr=False)
    grad_norm: float | None
    stop: Any
    raw: Any = field(repr=False)
    _restore: Callable[[Any], Any] = field(repr=False, compare=False)

    @cached_property
    def fun(self) -> float:
        return float(self.fun_value)

    @cached_property
    def x(self) -> Any:
        return self._restore(self.raw.x)

    @cached_property
    def jac(self) -> Any:
        return None if self.raw.g is None else self._restore(self.raw.g)
