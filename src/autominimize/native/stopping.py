"""Stopping criteria shared by every native algorithm, combinable with ``|`` and ``&``.

A criterion is called after each outer step with a :class:`Progress` and returns ``None``
(keep going) or a :class:`Stop` saying why, whether that counts as success, and scipy's
status code (0 converged, 1 a budget ran out, 2 the algorithm could not go on).

Examples
--------
>>> from autominimize.native.stopping import GradientTolerance, MaxIterations, Progress
>>> stop = GradientTolerance(1e-5) | MaxIterations(100)
>>> stop(Progress(nit=3, nfev=5, njev=5, fun=1.0, fun_prev=2.0, grad_norm=1e-7)).message
'gradient norm 1e-07 <= gtol=1e-05'
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

__all__ = [
    "Progress",
    "Stop",
    "Criterion",
    "MaxIterations",
    "MaxEvaluations",
    "MaxEpochs",
    "GradientTolerance",
    "FunctionTolerance",
    "TimeBudget",
    "AnyOf",
    "AllOf",
    "as_criterion",
]


@dataclass(frozen=True)
class Progress:
    """What criteria see after a step.

    ``grad_norm`` is the ∞-norm of the gradient (of the projected gradient with bounds) and
    ``fun_prev`` the objective before the step; both are None for stochastic steps, where the
    values are mini-batch estimates. ``epoch`` counts completed passes over ``data``.
    """

    nit: int
    nfev: int
    njev: int
    fun: float | None = None
    fun_prev: float | None = None
    grad_norm: float | None = None
    elapsed: float = 0.0
    epoch: int = 0


@dataclass(frozen=True)
class Stop:
    message: str
    success: bool
    status: int


class Criterion:
    """Base class: ``criterion(progress) -> Stop | None``."""

    def __call__(self, progress: Progress) -> Stop | None:
        raise NotImplementedError

    def start(self) -> None:
        """Reset any clock or memory before a run."""

    def __or__(self, other: "Criterion | Callable") -> "AnyOf":
        return AnyOf(self, as_criterion(other))

    def __and__(self, other: "Criterion | Callable") -> "AllOf":
        return AllOf(self, as_criterion(other))

    def __ror__(self, other: Callable) -> "AnyOf":
        return AnyOf(as_criterion(other), self)

    def __rand__(self, other: Callable) -> "AllOf":
        return AllOf(as_criterion(other), self)


@dataclass(frozen=True)
class MaxIterations(Criterion):
    """Stop after ``maxiter`` outer steps (a budget: not a success, status 1, as scipy)."""

    maxiter: int

    def __call__(self, progress: Progress) -> Stop | None:
        if progress.nit >= self.maxiter:
            return Stop(f"maximum number of iterations reached ({self.maxiter})", False, 1)
        return None


@dataclass(frozen=True)
class MaxEvaluations(Criterion):
    """Stop once ``maxfev`` function evaluations were made (status 1)."""

    maxfev: int

    def __call__(self, progress: Progress) -> Stop | None:
        if progress.nfev >= self.maxfev:
            return Stop(f"maximum number of function evaluations reached ({self.maxfev})", False, 1)
        return None


@dataclass(frozen=True)
class MaxEpochs(Criterion):
    """Stop after ``epochs`` passes over the data; the planned end of a stochastic run."""

    epochs: int

    def __call__(self, progress: Progress) -> Stop | None:
        if progress.epoch >= self.epochs:
            return Stop(f"completed {self.epochs} epoch{'s' if self.epochs != 1 else ''}", True, 0)
        return None


@dataclass(frozen=True)
class GradientTolerance(Criterion):
    """‖g‖_∞ ≤ gtol (projected gradient with bounds), scipy's ``gtol`` (default 1e-5)."""

    gtol: float = 1e-5

    def __call__(self, progress: Progress) -> Stop | None:
        if progress.grad_norm is not None and progress.grad_norm <= self.gtol:
            return Stop(f"gradient norm {progress.grad_norm:.3g} <= gtol={self.gtol:.3g}", True, 0)
        return None


@dataclass(frozen=True)
class FunctionTolerance(Criterion):
    """Relative reduction (f_prev − f) / max(|f_prev|, |f|, 1) ≤ ftol, as scipy's L-BFGS-B.

    The default 2.220446049250313e-09 is L-BFGS-B's ``ftol`` (factr = 1e7 times machine
    epsilon). A step that increases f never triggers it.
    """

    ftol: float = 2.220446049250313e-09

    def __call__(self, progress: Progress) -> Stop | None:
        f, f_prev = progress.fun, progress.fun_prev
        if f is None or f_prev is None:
            return None
        reduction = (f_prev - f) / max(abs(f_prev), abs(f), 1.0)
        if 0.0 <= reduction <= self.ftol:
            return Stop(f"relative reduction of f {reduction:.3g} <= ftol={self.ftol:.3g}", True, 0)
        return None


@dataclass(frozen=True)
class TimeBudget(Criterion):
    """Stop once ``seconds`` of wall time have passed since the run started (status 1)."""

    seconds: float

    def __call__(self, progress: Progress) -> Stop | None:
        if progress.elapsed >= self.seconds:
            return Stop(f"time budget of {self.seconds:g} s used", False, 1)
        return None


@dataclass(frozen=True)
class AnyOf(Criterion):
    """Stop when any criterion says so (the first one listed wins)."""

    criteria: tuple = field(default=())

    def __init__(self, *criteria: "Criterion | Callable"):
        flat: list = []
        for c in criteria:
            c = as_criterion(c)
            flat.extend(c.criteria if isinstance(c, AnyOf) else (c,))
        object.__setattr__(self, "criteria", tuple(flat))

    def __call__(self, progress: Progress) -> Stop | None:
        for criterion in self.criteria:
            stop = criterion(progress)
            if stop is not None:
                return stop
        return None

    def start(self) -> None:
        for criterion in self.criteria:
            criterion.start()


@dataclass(frozen=True)
class AllOf(Criterion):
    """Stop only when every criterion says so; success only if all of them are successes."""

    criteria: tuple = field(default=())

    def __init__(self, *criteria: "Criterion | Callable"):
        object.__setattr__(self, "criteria", tuple(as_criterion(c) for c in criteria))

    def __call__(self, progress: Progress) -> Stop | None:
        stops = [criterion(progress) for criterion in self.criteria]
        if any(stop is None for stop in stops):
            return None
        return Stop(" and ".join(s.message for s in stops), all(s.success for s in stops), max(s.status for s in stops))

    def start(self) -> None:
        for criterion in self.criteria:
            criterion.start()


@dataclass(frozen=True)
class _Callable(Criterion):
    function: Callable[[Progress], object]

    def __call__(self, progress: Progress) -> Stop | None:
        out = self.function(progress)
        if out is None or out is False:
            return None
        if isinstance(out, Stop):
            return out
        return Stop(out if isinstance(out, str) else "stopped by a user criterion", True, 0)


def as_criterion(value: "Criterion | Callable") -> Criterion:
    """A criterion, or a callable ``f(progress)`` returning a falsy value, a message or a Stop."""
    if isinstance(value, Criterion):
        return value
    if callable(value):
        return _Callable(value)
    raise TypeError(f"a stopping criterion must be a Criterion or a callable; got {value!r}.")


def elapsed_since(start: float) -> float:
    return time.perf_counter() - start
