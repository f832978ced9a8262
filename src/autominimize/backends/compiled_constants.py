"""The values a compiled function holds as constants, and a key that changes when they do.

``jax.jit`` and ``tf.function`` turn what an objective reads from its closure, a
``functools.partial``'s arguments or its module's globals into constants of the compiled code.
A second solve with the same function reuses that code: had the caller changed such a value
in between (``target[:] = new``, or ``scale = 2.0`` rebound in the enclosing scope), the
solve would silently use the old one. The compile-cache key of these backends holds
:func:`constants_key`, so a changed value compiles anew and an unchanged one does not.

NumPy arrays are compared by content (CRC-32 of their bytes: 46 ms for 100 MB, 0.5 µs for
100 numbers, measured on the 2-core test machine), immutable framework arrays by identity,
numbers and strings by value, unless the function assigns them (a counter it keeps), and
containers (tuples, lists, dicts) by what they hold: the numbers in a container by value
too, unless the function writes into that container (``calls.append(1)``, ``traces[0] += 1``:
counters it keeps). Default argument values count as captured. Variables
(``tf.Variable``) are read by the compiled code at every call and need no key. Attributes of
objects are not followed: data kept on an object and changed between solves belongs in
``args``, which are inputs of the compiled code.
"""

from __future__ import annotations

import functools
import types
import zlib
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from ..captured import captured_values

__all__ = ["constants_key"]

_SCALARS = (bool, int, float, complex, str, bytes, type(None))
_SKIPPED = (types.FunctionType, types.ModuleType, type, types.BuiltinFunctionType, types.MethodType)


def constants_key(fun: Callable, depth: int = 2) -> tuple:
    """What the compiled form of ``fun`` depends on besides its inputs: one fingerprint per value
    it captures or reads from its globals (``depth`` levels of the functions it refers to).

    Examples
    --------
    >>> import numpy as np
    >>> target = np.array([1.0, 2.0])
    >>> fun = lambda x: ((x - target) ** 2).sum()
    >>> before = constants_key(fun)
    >>> target[:] = [5.0, 6.0]
    >>> constants_key(fun) == before
    False
    """
    found: list[tuple[str, Hashable]] = []
    _collect(fun, depth, found, set())
    return tuple(found)


def _collect(fun: Any, depth: int, found: list, seen: set[int]) -> None:
    if id(fun) in seen:
        return
    seen.add(id(fun))
    target = getattr(fun, "__func__", fun)  # a bound method's function
    code = getattr(target, "__code__", None)
    written, filled = _written_names(code) if code is not None else (frozenset(), frozenset())
    for name, value in [*captured_values(fun), *_defaults(target)]:
        if isinstance(value, types.FunctionType):
            if depth > 0:
                _collect(value, depth - 1, found, seen)
        elif name not in written:
            _add(name, value, found, name not in filled)
    if code is not None:
        _collect_globals(code, getattr(target, "__globals__", {}), (written, filled), depth, found, seen)


def _defaults(function: Any) -> list[tuple[str, Any]]:
    """A function's default argument values, by parameter name (compiled in like its closure)."""
    code = getattr(function, "__code__", None)
    if code is None:
        return []
    defaults = getattr(function, "__defaults__", None) or ()
    positional = code.co_varnames[: code.co_argcount]
    named = list(zip(positional[len(positional) - len(defaults) :], defaults))
    return [(f"default {name}", value) for name, value in [*named, *(getattr(function, "__kwdefaults__", None) or {}).items()]]


#: methods that change a container in place
_FILLING = frozenset({"append", "extend", "insert", "pop", "clear", "update", "setdefault", "popitem", "remove", "add", "discard"})


@functools.lru_cache(maxsize=256)  # disassembled once per code object, not at every solve
def _written_names(code: types.CodeType) -> tuple[frozenset[str], frozenset[str]]:
    """``(assigned, filled)``: the names the function assigns (``nonlocal count; count += 1``,
    ``global calls``), and the names read on a line that writes into a container
    (``traces[0] += 1``, ``calls.append(f)``). Both are counters it keeps, which change with
    every trace and would make every solve compile anew."""
    import dis

    assigned, filled, line_names, fills, current = set(), set(), set(), False, None
    for instruction in dis.get_instructions(code):
        # Python 3.13 numbers every instruction's line; before, only a line's first one
        line = getattr(instruction, "line_number", instruction.starts_line)
        if line is not None and line != current:
            filled.update(line_names if fills else ())
            line_names, fills, current = set(), False, line
        name = instruction.opname
        if name in ("STORE_DEREF", "STORE_GLOBAL"):
            assigned.add(str(instruction.argval))
        elif name in ("LOAD_DEREF", "LOAD_GLOBAL", "LOAD_CLASSDEREF", "LOAD_NAME"):
            line_names.add(str(instruction.argval))
        elif name in ("STORE_SUBSCR", "DELETE_SUBSCR") or name in ("LOAD_METHOD", "LOAD_ATTR") and instruction.argval in _FILLING:
            fills = True
    filled.update(line_names if fills else ())
    return frozenset(assigned), frozenset(filled)


def _collect_globals(code: types.CodeType, namespace: dict, writes: tuple, depth: int, found: list, seen: set[int]) -> None:
    written, filled = writes
    for name in code.co_names:
        if name not in namespace or name in written:
            continue
        value = namespace[name]
        if isinstance(value, types.FunctionType):
            if depth > 0:
                _collect(value, depth - 1, found, seen)
        else:
            _add(name, value, found, name not in filled)
    for const in code.co_consts:  # lambdas and functions defined inside read the same globals
        if isinstance(const, types.CodeType) and id(const) not in seen:
            seen.add(id(const))
            _collect_globals(const, namespace, writes, depth, found, seen)


def _add(name: str, value: Any, found: list, held_numbers: bool = True) -> None:
    fingerprint = _fingerprint(value, numbers=True, held_numbers=held_numbers)
    if fingerprint is not None:
        found.append((name, fingerprint))


def _fingerprint(value: Any, numbers: bool, depth: int = 2, held_numbers: bool = False) -> Hashable | None:
    """A number or string by value (inside a container only with ``held_numbers``: a container
    the function writes into holds counters, not constants), an array by content or identity,
    a container by those."""
    if isinstance(value, _SCALARS):
        return (type(value).__name__, repr(value)) if numbers else None  # by repr: a NaN equals itself
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufc":
            return None
        data = np.ascontiguousarray(value).reshape(-1)
        return ("array", value.shape, data.dtype.str, zlib.crc32(data.view(np.uint8)))
    if isinstance(value, np.generic):
        return (value.dtype.str, repr(value.item())) if numbers else None
    if isinstance(value, _SKIPPED) or depth == 0:
        return None
    if isinstance(value, (tuple, list, dict)):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        held = tuple(
            (repr(key), fingerprint) for key, item in items if (fingerprint := _fingerprint(item, held_numbers, depth - 1, held_numbers)) is not None
        )
        return held or None
    if hasattr(value, "shape") and hasattr(value, "dtype") and not hasattr(value, "assign"):
        return ("array", _Identity(value))  # a framework's immutable array (JAX, a TF tensor)
    return None


class _Identity:
    """Equal to another only for the same object, which it keeps alive (so that its ``id`` is
    not reused by a new array while a compiled function is cached under it)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __hash__(self) -> int:
        return id(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Identity) and other.value is self.value
