"""What every backend offers, on flat float64 NumPy vectors, and the compile cache."""

from __future__ import annotations

import collections
import contextlib
import math
import threading
from typing import TYPE_CHECKING, Any, Callable, Hashable, Protocol

import numpy as np

from ..params import ParamSpec, tree_flatten, tree_leaves
from .compiled_constants import constants_key

if TYPE_CHECKING:
    from .native_functions import NativeFunctions


def grad_norm(grad: np.ndarray | None) -> float:
    """The Euclidean norm of a flat float64 gradient; NaN where there is none."""
    # sqrt(g.dot(g)) is several times cheaper than np.linalg.norm (and twice as cheap as g @ g)
    return math.sqrt(grad.dot(grad)) if grad is not None else math.nan


class ScalarFunctions(Protocol):
    """A compiled scalar objective of a flat float64 vector.

    Callers (the problem layer) pass contiguous 1-D float64 NumPy vectors. ``extra_evaluations``
    counts evaluations made beyond the one each call stands for (finite differences). A
    function set that only evaluates (``differentiable=False``) may leave out the derivatives.
    Beyond these methods a backend may offer those of :class:`OptionalMethods`, which the
    problem layer reads with :func:`offered`.
    """

    extra_evaluations: int

    def value(self, x: np.ndarray) -> float: ...

    def value_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]: ...

    def hvp_at(self, x: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """Linearize the gradient at ``x`` once; the returned map gives H(x) @ v."""
        ...

    def hessian(self, x: np.ndarray) -> np.ndarray: ...


class VectorFunctions(Protocol):
    """A compiled vector function (constraints, residuals) of a flat float64 vector.

    It may offer ``extra_evaluations``, ``flat`` and ``configured`` of :class:`OptionalMethods`.
    """

    def value(self, x: np.ndarray) -> np.ndarray: ...

    def value_and_jacobian(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def weighted_hessian(self, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The Hessian of ``weights @ c(x)`` (what trust-constr asks of a constraint)."""
        ...


class OptionalMethods(Protocol):
    """What compiled functions may offer where their framework does better than the default.

    Each is optional: :func:`offered` gives the functions' own, or None, and the caller then
    uses the default named here.
    """

    #: evaluations beyond the one each call stands for; default 0
    extra_evaluations: int
    #: how the problem layer reports those evaluations; default ``'finite-difference'``
    extra_evaluation_kind: str
    #: the plain function of the flat vector, one that can be sent to worker processes;
    #: default ``value``
    flat: Callable[[np.ndarray], Any]

    def value_without_gradient(self, x: np.ndarray) -> float:
        """The value, recording nothing a later gradient would need (torch keeps no graph);
        default ``value``."""
        ...

    def value_and_grad_once(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Value and gradient where no curvature follows, so the point's graph can go;
        default ``value_and_grad``."""
        ...

    def value_grad_and_norm(self, x: np.ndarray) -> tuple[float, np.ndarray, float]:
        """Value, gradient and the gradient's norm in one call; default: the norm is
        computed from ``value_and_grad``'s gradient."""
        ...

    def value_grad_and_hvp(self, x: np.ndarray) -> tuple[float, np.ndarray, Callable[[np.ndarray], np.ndarray]]:
        """Value, gradient and ``hvp_at(x)`` from one linearization; default: ``hvp_at``
        linearizes on its own."""
        ...

    def with_gradient(self, gradient: Callable[[np.ndarray], np.ndarray]) -> Any:
        """A copy whose curvature (``hvp_at``, ``hessian``) comes from differences of
        ``gradient`` (the user's, exact) where it would come from differences of values;
        default: the functions themselves, whose curvature is exact."""
        ...

    def configured(self, bounds: tuple[np.ndarray, np.ndarray] | None, evaluator: Any, first: tuple | None = None) -> Any:
        """A copy whose finite differences stay within ``bounds`` and run on ``evaluator``
        (a :class:`~autominimize.numdiff.Evaluator`), given ``first``, ``(x, out)``: what
        fun returned at x before the solve, to be read in place of evaluating x again;
        default: the functions themselves."""
        ...

    def check_gradient_path(self, x: np.ndarray) -> None:
        """Raise :class:`~autominimize.backends.common.NoGradientError` when the value does
        not depend on x through operations the framework differentiates (asked once, where
        the first gradient is zero); default: no check (torch and TensorFlow check at each
        evaluation, NumPy cannot tell)."""
        ...


#: the names :func:`offered` reads: OptionalMethods' members, and the derivatives a values-only
#: ScalarFunctions leaves out
_OPTIONAL = frozenset(OptionalMethods.__annotations__) | {name for name in vars(OptionalMethods) if not name.startswith("_")} | {"value_and_grad"}


def offered(functions: Any, name: str) -> Any:
    """``functions``' own ``name``, a member of :class:`OptionalMethods` (or the
    ``value_and_grad`` a values-only set leaves out), or None where it has none."""
    if name not in _OPTIONAL:
        raise AttributeError(f"{name!r} is not an optional method of compiled functions.")
    return getattr(functions, name, None)


def configure_numdiff(functions: Any, bounds: Any, evaluator: Any, first: tuple | None = None) -> Any:
    """Give compiled functions that take finite differences the solve's bounds and evaluator,
    and ``first`` (``(x, out)``: what fun returned at x while the backend was chosen)."""
    configured = offered(functions, "configured")
    if configured is None:
        return functions
    return configured(bounds, evaluator) if first is None else configured(bounds, evaluator, first)


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

    # Array code in the framework, for functions that build the user's arrays (curve_fit's
    # model and data, a residual function's sum of squares): each backend implements these.
    def constant_like(self, value: np.ndarray, like: Any) -> Any:
        """``value`` as an array of ``like``'s framework, dtype and device."""
        raise NotImplementedError

    def squared_sum(self, leaf: Any) -> Any:
        """The sum of the squares of an array's entries, with the framework's own reduction."""
        raise NotImplementedError

    def ravel_concatenated(self, leaves: list) -> Any:
        """The arrays raveled and concatenated into one 1-D array of the framework."""
        raise NotImplementedError

    def matvec(self, matrix: Any, vector: Any) -> Any:
        """``matrix @ vector`` for a 2-D and a 1-D array of the framework."""
        return matrix @ vector

    def finite(self, leaf: Any) -> Any:
        """``leaf`` (an array of the framework) with NaN and inf replaced by finite numbers."""
        raise NotImplementedError

    def masked(self, values: Any, mask: Any) -> Any:
        """``values`` where the boolean ``mask`` holds and 0 elsewhere, arrays of the framework."""
        raise NotImplementedError

    # The native algorithms (am.minimize's native methods, the torch optimizers): their
    # functions of one flat array of the framework, and what they need to know of fun first.
    def native_functions(self, call: Callable, spec: ParamSpec, dtype: str, residual: bool, device: Any = None) -> NativeFunctions:
        """Value, gradient and products of ``call(params, batch)`` on flat arrays of the
        framework (see :mod:`.native_functions`); ``residual``: ``call`` returns residuals r
        and the objective is ½‖r‖²."""
        raise NotImplementedError

    def output_shapes(self, fun: Callable, params: Any) -> list[tuple]:
        """The shapes of the leaves ``fun(params)`` returns, found without recording a
        derivative; by default one plain call."""
        return [tuple(np.shape(leaf)) for leaf in tree_leaves(fun(params))]

    #: whether the batched fits (am.batched_least_squares, am.batched_curve_fit) run on it
    batched_fits: bool = True


def as_flat_float64(x: Any) -> np.ndarray:
    """scipy may hand over int8 probes or float32 vectors: always give the backend float64."""
    return np.ascontiguousarray(x, dtype=np.float64).reshape(-1)


#: compiled functions kept at most (least recently used first out)
COMPILE_CACHE_SIZE = 128
_compiled: "collections.OrderedDict[tuple, tuple[Any, Any]]" = collections.OrderedDict()
_compiled_lock = threading.RLock()


def cached_compile(fun: Any, key: Hashable, build: Callable[[], Any], constants: bool = False) -> Any:
    """Compile once per (function, key), keeping the most recently used entries.

    A second solve with the same function object reuses the entry (nothing retraces). With
    ``constants`` (backends whose compiled code holds what ``fun`` captures as constants: JAX,
    TensorFlow) the key also holds those values' fingerprints
    (:func:`~autominimize.backends.compiled_constants.constants_key`), so a value the caller
    changed between two solves is read again. The
    cache holds at most ``COMPILE_CACHE_SIZE`` entries, so a program that passes a new lambda
    on every call does not accumulate compiled functions without bound. Functions are keys by
    equality (``obj.method`` twice is one key); an unhashable one by identity, kept alive by
    its entry so that its ``id`` is not reused while the entry exists.
    """
    if constants:
        key = (key, constants_key(fun))
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


def _traceable(leaf: Any, roots: tuple[str, ...]) -> bool:
    """A numeric NumPy array, or an array of the backend's framework (module root in ``roots``)."""
    if isinstance(leaf, np.ndarray):
        return leaf.dtype.kind in "biufc"
    return hasattr(leaf, "shape") and hasattr(leaf, "dtype") and type(leaf).__module__.split(".", 1)[0] in roots


class ArgsLayout:
    """Where a call's ``args`` hold arrays, which compiled functions take as inputs.

    Everything else in ``args`` (numbers, strings, objects) stays a constant of the compiled
    code, and is part of the compile-cache key by value (or by identity when unhashable).
    """

    def __init__(self, args: tuple, roots: tuple[str, ...]):
        self.leaves, self.treedef = tree_flatten(args, none_is_leaf=True)
        self.positions = tuple(i for i, leaf in enumerate(self.leaves) if _traceable(leaf, roots))

    def arrays(self) -> list[Any]:
        return [self.leaves[i] for i in self.positions]

    def rebuild(self, inputs: tuple) -> tuple:
        """``args`` with the arrays replaced by ``inputs`` (the compiled function's tracers)."""
        leaves = list(self.leaves)
        for position, value in zip(self.positions, inputs):
            leaves[position] = value
        return self.treedef.unflatten(leaves)

    def signature(self) -> tuple:
        """What a compiled function depends on in ``args``: the arrays' shapes and dtypes, the
        other leaves' values."""
        parts = []
        for i, leaf in enumerate(self.leaves):
            if i in self.positions:
                parts.append(("array", tuple(leaf.shape), str(leaf.dtype)))
                continue
            try:
                hash(leaf)
                parts.append(("value", type(leaf), leaf))
            except TypeError:
                parts.append(("id", id(leaf)))
        return (self.treedef, tuple(parts))


def args_layout(backend: Any, call: Callable) -> ArgsLayout | None:
    """The layout of ``call``'s args when ``backend`` feeds them as inputs, else None (baked in).

    A backend feeds args as inputs when it compiles (``array_roots`` is set) and ``call`` can
    be rebound to other args (``calling.make_caller`` gives it ``args`` and ``rebind``).
    """
    roots = getattr(backend, "array_roots", None)
    args = getattr(call, "args", None)
    if roots is None or not args or getattr(call, "rebind", None) is None:
        return None
    layout = ArgsLayout(args, roots)
    return layout if layout.positions else None


def args_key(backend: Any, call: Callable, args: tuple) -> tuple[tuple, bool]:
    """The compile-cache key part of ``args`` and whether they are compiled as inputs.

    Arrays that are inputs are keyed by shape and dtype, so new data of one shape reuses the
    compiled functions; baked-in args are keyed by identity, as their values are in the code.
    """
    layout = args_layout(backend, call) if getattr(call, "args", None) is args else None
    if layout is None:
        return tuple(id(a) for a in args), False
    return ("inputs", layout.signature()), True
