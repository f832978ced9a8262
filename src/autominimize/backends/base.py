"""What every backend offers, on flat float64 NumPy vectors, and the compile cache."""

from __future__ import annotations

import collections
import contextlib
import math
import threading
from typing import Any, Callable, Hashable, Protocol

import numpy as np

from ..params import ParamSpec


def grad_norm(grad: np.ndarray | None) -> float:
    """The Euclidean norm of a flat float64 gradient; NaN where there is none."""
    # sqrt(g.dot(g)) is several times cheaper than np.linalg.norm (and twice as cheap as g @ g)
    return math.sqrt(grad.dot(grad)) if grad is not None else math.nan


class ScalarFunctions(Protocol):
    """A compiled scalar objective of a flat float64 vector.

    Callers (the problem layer) pass contiguous 1-D float64 NumPy vectors. ``extra_evaluations``
    counts evaluations made beyond the one each call stands for (finite differences).
    """

    extra_evaluations: int

    def value(self, x: np.ndarray) -> float: ...

    # Optional: ``value_without_gradient(x)``, used by methods that never differentiate, where
    # a backend would otherwise record what a later gradient needs (torch keeps its graph).

    def value_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]: ...

    def hvp_at(self, x: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """Linearize the gradient at ``x`` once; the returned map gives H(x) @ v."""
        ...

    def hessian(self, x: np.ndarray) -> np.ndarray: ...


class VectorFunctions(Protocol):
    """A compiled vector function (constraints, residuals) of a flat float64 vector."""

    def value(self, x: np.ndarray) -> np.ndarray: ...

    def value_and_jacobian(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def weighted_hessian(self, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The Hessian of ``weights @ c(x)`` (what trust-constr asks of a constraint)."""
        ...


class BatchedFunction(Protocol):
    """A compiled objective evaluated on a whole batch of flat points in one call.

    Called with a C-contiguous ``(S, n)`` float64 array (one point per row), it returns the
    ``S`` values as a float64 vector. ``traces`` counts how often the user's function was
    traced (frameworks that compile) or called (NumPy).
    """

    traces: int

    def __call__(self, points: np.ndarray) -> np.ndarray: ...


class Backend:
    """A framework able to evaluate and differentiate the user's function."""

    name: str = ""
    #: the pip extra that installs the framework
    extra: str = ""

    def available(self) -> bool:
        raise NotImplementedError

    def compile_scalar(self, call: Callable, spec: ParamSpec, dtype: str) -> ScalarFunctions:
        raise NotImplementedError

    def compile_vector(self, call: Callable, spec: ParamSpec, dtype: str) -> VectorFunctions:
        raise NotImplementedError

    def compile_batched(self, call: Callable, spec: ParamSpec, dtype: str) -> BatchedFunction:
        """Values of a ``(S, n)`` batch of points in one call (vectorized over the rows)."""
        raise NotImplementedError

    def solve_context(self, dtype: str) -> contextlib.AbstractContextManager:
        """A context held for the whole solve (JAX uses it to enable float64)."""
        return contextlib.nullcontext()


def as_flat_float64(x: Any) -> np.ndarray:
    """scipy may hand over int8 probes or float32 vectors: always give the backend float64."""
    return np.ascontiguousarray(x, dtype=np.float64).reshape(-1)


#: compiled functions kept at most (least recently used first out)
COMPILE_CACHE_SIZE = 128
_compiled: "collections.OrderedDict[tuple, tuple[Any, Any]]" = collections.OrderedDict()
_compiled_lock = threading.RLock()


def cached_compile(fun: Any, key: Hashable, build: Callable[[], Any]) -> Any:
    """Compile once per (function, key), keeping the most recently used entries.

    A second solve with the same function object reuses the entry (nothing retraces). The
    cache holds at most ``COMPILE_CACHE_SIZE`` entries, so a program that passes a new lambda
    on every call does not accumulate compiled functions without bound. Functions are keys by
    equality (``obj.method`` twice is one key); an unhashable one by identity, kept alive by
    its entry so that its ``id`` is not reused while the entry exists.
    """
    try:  # bound methods are new objects at every access but compare (and hash) equal
        cache_key = (fun, key)
        hash(cache_key)
    except TypeError:
        cache_key = (id(fun), key)
    with _compiled_lock:
        entry = _compiled.get(cache_key)
        if entry is not None:
            _compiled.move_to_end(cache_key)
            return entry[1]
        compiled = build()
        _compiled[cache_key] = (fun, compiled)
        while len(_compiled) > COMPILE_CACHE_SIZE:
            _compiled.popitem(last=False)
        return compiled


def clear_compile_cache() -> None:
    """Forget every compiled function (tests use this to count traces)."""
    with _compiled_lock:
        _compiled.clear()
