"""The values a compiled function holds as constants, and a key that changes when they do.

``jax.jit`` and ``tf.function`` turn what an objective reads from its closure, a
``functools.partial``'s arguments or its module's globals into constants of the compiled code.
A second solve with the same function reuses that code: had the caller changed such a value
in between (``target[:] = new``, or ``scale = 2.0`` rebound in the enclosing scope), the
solve would silently use the old one. The compile-cache key of these backends holds
:func:`constants_key`, so a changed value compiles anew and an unchanged one does not.

NumPy arrays are compared by content (CRC-32 of their bytes: 46 ms for 100 MB, 0.5 µs for
100 numbers, measured on the 2-core test machine), immutable framework arrays by identity,
containers (tuples, lists, dicts) by the arrays they hold, and numbers and strings captured
themselves by value, unless the function assigns them (a counter it keeps). Variables
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
    written = _written_names(code) if code is not None else frozenset()
    for name, value in captured_values(fun):
        if isinstance(value, types.FunctionType):
            if depth > 0:
                _collect(value, depth - 1, found, seen)
        elif name not in written:
            _add(name, value, found)
    if code is not None:
        _collect_globals(code, getattr(target, "__globals__", {}), written, depth, found, seen)


@functools.lru_cache(maxsize=256)  # disassembled once per code object, not at every solve
def _written_names(code: types.CodeType) -> frozenset[str]:
    """Names the function assigns (``nonlocal count; count += 1``, ``global calls``): counters
    it keeps, which change with every trace and would make every solve compile anew."""
    import dis

    stores = ("STORE_DEREF", "STORE_GLOBAL")
    return frozenset(str(instruction.argval) for instruction in dis.get_instructions(code) if instruction.opname in stores)


def _collect_globals(code: types.CodeType, namespace: dict, written: frozenset[str], depth: int, found: list, seen: set[int]) -> None:
    for name in code.co_names:
        if name not in namespace or name in written:
            continue
        value = namespace[name]
        if isinstance(value, types.FunctionType):
            if depth > 0:
                _collect(value, depth - 1, found, seen)
        else:
            _add(name, value, found)
    for const in code.co_consts:  # lambdas and functions defined inside read the same globals
        if isinstance(const, types.CodeType) and id(const) not in seen:
            seen.add(id(const))
            _collect_globals(const, namespace, written, depth, found, seen)


def _add(name: str, value: Any, found: list) -> None:
    fingerprint = _fingerprint(value, numbers=True)
    if fingerprint is not None:
        found.append((name, fingerprint))


def _fingerprint(value: Any, numbers: bool, depth: int = 2) -> Hashable | None:
    """A number or string by value (only where captured itself: inside a container it is more
    often a counter than a constant), an array by content or identity, a container by those."""
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
    if isinstance(value, (tuple, list, dict)):  # only the arrays: a list a counter appends to stays equal
        items = value.items() if isinstance(value, dict) else enumerate(value)
        held = tuple((repr(key), fingerprint) for key, item in items if (fingerprint := _fingerprint(item, False, depth - 1)) is not None)
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
