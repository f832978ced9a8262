"""The contract every native algorithm follows, and the oracle it evaluates through.

An algorithm is a frozen dataclass of hyperparameters with two pure methods:
``init(x, oracle) -> state`` and ``step(state, oracle) -> state``. ``x`` is one flat 1-D array
of the framework; the state is a NamedTuple of arrays and numbers (a pytree), always with the
fields ``x``, ``f``, ``g``, ``nit`` and ``flag`` (a non-empty message when the algorithm
cannot go on, e.g. a failed line search). Everything else about a run — stopping, data,
counting, structure — lives outside, so one state machine serves ``am.minimize``,
``am.iterate`` and the ``am.optim`` updates.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Protocol

import numpy as np

from ..validation import check_switch

#: what each kind of hyperparameter accepts, and how an error says it
_KINDS = {
    "positive": (lambda v: v > 0, "a positive number"),
    "nonnegative": (lambda v: v >= 0, "a number >= 0"),
    "fraction": (lambda v: 0 < v < 1, "a number in (0, 1)"),
    "half-open": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "decay": (lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "above-one": (lambda v: v > 1, "a number > 1"),
    "count": (lambda v: v >= 1 and float(v).is_integer(), "a whole number >= 1"),
}


class Oracle(Protocol):
    """Evaluations on flat framework arrays; each call is counted by the caller's oracle."""

    def value(self, x: Any) -> Any: ...

    def value_and_grad(self, x: Any) -> tuple[Any, Any]: ...

    def grad(self, x: Any) -> Any: ...

    def hvp(self, x: Any, v: Any) -> Any: ...

    def gnvp(self, x: Any, v: Any) -> Any: ...


class Algorithm:
    """Base class of the native algorithms (subclasses are frozen dataclasses).

    Class attributes: ``name`` (the method name), ``needs_evaluator`` (True when a step
    evaluates at new points — line searches, backtracking — so the updates interface needs
    ``value_and_grad_fn``)
    and ``first_order`` (True when one step needs only the gradient at the current point and
    so can run on mini-batches).
    """

    name: ClassVar[str] = ""
    first_order: ClassVar[bool] = False
    needs_evaluator: ClassVar[bool] = False
    #: numeric hyperparameter -> kind of number it accepts (a key of ``_KINDS``); checked
    #: when the algorithm is made, so a negative step or a momentum of 2 is refused at once
    limits: ClassVar[dict[str, str]] = {}

    def __post_init__(self) -> None:
        for field, kind in self.limits.items():
            _check_hyperparameter(self.name, field, getattr(self, field), kind)
        for field in dataclasses.fields(self):
            if field.type in ("bool", bool):
                check_switch(getattr(self, field.name), f"{self.name}: {field.name}")

    def init(self, x: Any, oracle: Oracle) -> Any:
        raise NotImplementedError

    def step(self, state: Any, oracle: Oracle) -> Any:
        raise NotImplementedError

    def stationarity(self, state: Any) -> Any:
        """The vector whose ∞-norm the gradient tolerance tests (the gradient by default)."""
        return state.g

    def replace(self, **changes: Any) -> "Algorithm":
        """A copy with some hyperparameters changed, with a clear error for unknown names."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"{self.name} has no hyperparameter {', '.join(map(repr, unknown))}; its hyperparameters are {', '.join(sorted(known))}.")
        return dataclasses.replace(self, **changes)

    @classmethod
    def hyperparameters(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))


def _check_hyperparameter(method: str, field: str, value: Any, kind: str) -> None:
    """Refuse a hyperparameter that is not a number of its kind. None (the documented "off"),
    schedules (callables) and framework arrays are left to the algorithm."""
    if value is None or callable(value):
        return
    accepts, description = _KINDS[kind]
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    array = not number and hasattr(value, "shape") and hasattr(value, "dtype")  # a framework's array: the algorithm reads it
    if not (number or array) or (number and not (math.isfinite(value) and accepts(value))):
        raise ValueError(f"{method}: {field}={value!r} is not valid; {field} must be {description}.")
