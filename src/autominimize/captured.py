"""What a function captures: its closure's cells, a ``functools.partial``'s arguments, and
those of the functions it captures or wraps.

Two layers read it: the implicit rule (captured values a framework differentiates) and the
compile cache (captured values a compiled function holds as constants).
"""

from __future__ import annotations

import functools
import types
from typing import Any

__all__ = ["captured_values"]


def captured_values(function: Any, found: list | None = None, seen: set[int] | None = None) -> list[tuple[str, Any]]:
    """The values ``function`` captures, by name: its closure's cells and a ``functools.partial``'s
    arguments, and those of the functions it captures or wraps (``__wrapped__``), each once.
    Globals and objects' attributes are not followed."""
    found = [] if found is None else found
    seen = set() if seen is None else seen
    if id(function) in seen:
        return found
    seen.add(id(function))
    if isinstance(function, functools.partial):
        found.extend((f"argument {i}", value) for i, value in enumerate(function.args))
        found.extend((f"keyword {name!r}", value) for name, value in function.keywords.items())
        return captured_values(function.func, found, seen)
    wrapped = getattr(function, "__dict__", {}).get("__wrapped__")  # set by functools.wraps and am.residuals
    if wrapped is not None:
        captured_values(wrapped, found, seen)
    if type(function) is not types.FunctionType or not function.__closure__:
        return found
    for name, cell in zip(function.__code__.co_freevars, function.__closure__):
        try:
            value = cell.cell_contents
        except ValueError:  # a cell not filled yet
            continue
        found.append((name, value))
        if isinstance(value, (types.FunctionType, functools.partial)):
            captured_values(value, found, seen)
    return found
