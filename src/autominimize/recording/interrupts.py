"""Ctrl-C: one KeyboardInterrupt ends a whole run, the solves nested in it included.

A solve on its own ends cleanly at a KeyboardInterrupt and returns the best point found. A
solve nested in another run (the local solves of ``am.basinhopping`` and ``am.multistart``)
re-raises it instead, with its best point attached, so that the outer run ends too and can
report the best point of all.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Iterator

__all__ = ["nested_solves", "in_nested_solve", "attach_best"]

_NESTED = contextvars.ContextVar("autominimize_nested_solve", default=False)


@contextlib.contextmanager
def nested_solves() -> Iterator[None]:
    """Solves started inside re-raise a KeyboardInterrupt rather than return."""
    token = _NESTED.set(True)
    try:
        yield
    finally:
        _NESTED.reset(token)


def in_nested_solve() -> bool:
    """Whether the current solve runs inside another run."""
    return _NESTED.get()


def attach_best(exc: BaseException, x: Any, f: float) -> None:
    """Attach ``x`` (in x0's structure) and ``f`` to ``exc`` unless a better point is already there."""
    known = getattr(exc, "autominimize_best_f", None)
    if x is not None and (known is None or f < known):
        exc.autominimize_best_x, exc.autominimize_best_f = x, f
