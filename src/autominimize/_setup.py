"""The set-up every entry point shares: precision, backend, bounds at x0, compiled functions.

Each entry point normalises the user's arguments through these functions, so a precision is
read one way, a backend is chosen one way, a starting point outside the bounds is clipped with
one warning, and compiled functions are cached under one key.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Hashable

import numpy as np

from . import backends as _backends
from .bounds import clip_to_bounds, normalize_bounds
from .calling import TAKES, CallerFactory, check_takes, resolve_unpack, vector_x0
from .params import ParamSpec, leaf_kind, tree_leaves

__all__ = ["PRECISIONS", "Setup", "prepare", "resolve_precision", "backend_from_leaves", "clip_start", "compile_key", "cached", "compile_functions"]

PRECISIONS = ("float64", "float32")


def resolve_precision(precision: Any, x0: Any = None) -> tuple[str, bool]:
    """``(dtype name, explicitly given)``; None is inferred from x0 (:func:`infer_precision`)."""
    if precision is None:
        return infer_precision(x0), False
    try:
        name = np.dtype(precision).name if not isinstance(precision, str) else precision.lower()
    except TypeError:  # not a dtype at all (a number, an object)
        name = None
    if name not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not supported; use 'float64' (default) or 'float32'.")
    return name, True


def infer_precision(x0: Any) -> str:
    """'float32' when every leaf of x0 is a float32 tensor of a framework (a float32 model runs
    in float32, as it was built), 'float64' otherwise (NumPy and Python numbers included, as
    scipy reads them)."""
    if isinstance(x0, np.ndarray):
        return "float64"
    if type(x0) in (dict, list, tuple) and np.ndarray in map(type, x0.values() if type(x0) is dict else x0):
        return "float64"  # a NumPy leaf at the top: no walk of the whole structure
    leaves = tree_leaves(x0)
    if not leaves or any(leaf_kind(leaf) not in ("torch", "jax", "tf") for leaf in leaves):
        return "float64"
    float32 = all(str(getattr(leaf, "dtype", "")).replace("'", "").removesuffix(">").endswith("float32") for leaf in leaves)
    return "float32" if float32 else "float64"


def backend_from_leaves(spec: ParamSpec) -> str:
    """The framework of x0's leaves when they hold exactly one; NumPy otherwise.

    For user-supplied derivatives, where no evaluation is needed to choose a backend.
    """
    kinds = {k for k in spec.kinds() if k in ("torch", "jax", "tf")}
    return {"torch": "torch", "jax": "jax", "tf": "tensorflow"}[kinds.pop()] if len(kinds) == 1 else "numpy"


def clip_start(x0: np.ndarray, bounds: tuple[np.ndarray, np.ndarray] | None, spec: ParamSpec, *, stacklevel: int) -> np.ndarray:
    """x0 clipped into the bounds, with one warning naming the leaves that moved.

    ``stacklevel`` counts from the caller of this function, as in ``warnings.warn``.
    """
    if bounds is None:
        return x0
    clipped, moved = clip_to_bounds(x0, bounds, spec)
    if moved:
        warnings.warn(f"x0 is outside the bounds at {', '.join(moved)}; it was clipped into them.", UserWarning, stacklevel=stacklevel + 1)
    return clipped


#: backends whose compiled code holds what a function captures as constants (torch reads it at every call)
COMPILING_BACKENDS = ("jax", "tensorflow")


def compile_key(backend: str, kind: str, spec: ParamSpec, dtype: str, unpack: str, args: tuple, device: Any, *extra: Hashable) -> tuple:
    """The compile-cache key of one function: what a compiled function depends on besides the function."""
    return (backend, kind, spec.key, dtype, unpack, tuple(id(a) for a in args), str(device), *extra)


def cached(fun: Callable, key: tuple, args: tuple, build: Callable[[], Any]) -> Any:
    """The compiled function under ``key`` (built once); it keeps ``args`` alive so their ids stay unique."""
    compiled = _backends.cached_compile(fun, key, build, constants=key[0] in COMPILING_BACKENDS)
    compiled.__dict__.setdefault("_args_keepalive", args)
    return compiled


def compile_functions(
    backend_obj: Any, kind: str, fun: Callable, call: Callable, spec: ParamSpec, dtype: str, unpack: str, args: tuple, device: Any
) -> Any:
    """``fun``'s compiled scalar (``kind`` 'scalar', 'sum-of-squares') or vector ('vector') functions.

    On backends that compile, arrays in ``args`` are inputs: the cache key holds their shapes
    and dtypes, and the cached functions are bound to this call's args.
    """
    args_part, args_are_inputs = _backends.args_key(backend_obj, call, args)
    key = compile_key(backend_obj.name, kind, spec, dtype, unpack, (), device, args_part)

    def build() -> Any:
        compile_fn = backend_obj.compile_vector if kind == "vector" else backend_obj.compile_scalar
        if backend_obj.name == "torch" and device is not None:
            return compile_fn(call, spec, dtype, device=device)
        return compile_fn(call, spec, dtype)

    compiled = cached(fun, key, args, build)
    return compiled.bind(call) if args_are_inputs else compiled


@dataclass
class Setup:
    """What an entry point derives from x0 and the user's function before it solves.

    Built by :func:`prepare`: ``x0`` as the solve reads it (a flat list of numbers given whole
    to fun is a vector), its structure ``spec``, the flat float64 start ``x0_flat``, ``args``
    as a tuple, the precision ``dtype`` (``precision_explicit`` when the user chose it), fun's
    calling rule ``unpack``, ``callers`` for every user function of the solve (each with its
    own rule) and ``call``, fun as a function of the parameter structure. ``bounds`` is set
    by :meth:`normalize_bounds`, ``backend`` and ``backend_obj`` by :meth:`choose_backend`.
    """

    fun: Callable
    x0: Any
    spec: ParamSpec
    x0_flat: np.ndarray
    args: tuple
    dtype: str
    precision_explicit: bool
    unpack: str
    callers: CallerFactory
    call: Callable
    device: Any = None
    bounds: tuple[np.ndarray, np.ndarray] | None = None
    backend: str | None = None
    backend_obj: Any = None
    #: ``(x, out)``: what fun returned at x0 (clipped into the bounds) when choosing the
    #: backend evaluated it; else None
    probe: tuple | None = None

    def caller(self, function: Callable, extra: tuple | None = None) -> Callable[[Any], Any]:
        """``function`` of the parameter structure, called with ``extra`` (default: args)."""
        return self.callers(function, self.args if extra is None else extra)

    def normalize_bounds(self, bounds: Any) -> tuple[np.ndarray, np.ndarray] | None:
        """The bounds in any accepted format as flat ``(lb, ub)``, or None."""
        self.bounds = normalize_bounds(bounds, self.spec, self.x0)
        return self.bounds

    def choose_backend(self, backend: str | None, *, from_leaves: bool = False, call: Callable | None = None) -> str:
        """The backend: ``backend`` if given, else detected from x0's leaves and, unless
        ``from_leaves`` (the user supplies the derivatives), from what ``call`` returns."""
        if from_leaves:
            name = _backends.canonical_name(backend) if backend else backend_from_leaves(self.spec)
        else:
            # x0 as the solve starts from it: clipped into the bounds, where fun is defined
            point, probed = self.x0_flat if self.bounds is None else np.clip(self.x0_flat, *self.bounds), []
            name = _backends.select_backend(backend, self.spec, self.call if call is None else call, point, probed)
            self.probe = (point, probed[0]) if probed and name == "numpy" else None
        if self.device is not None and name != "torch":
            raise ValueError(
                f"torch_device={self.device!r} is where torch evaluates; this solve runs on backend={name!r}, which would "
                "ignore it. Pass backend='torch' (or torch tensors in x0), or leave torch_device out."
            )
        self.backend, self.backend_obj = name, _backends.get_backend(name)
        return name

    def flat_call(self, function: Callable, extra: tuple | None = None) -> Callable[[np.ndarray], Any]:
        """``function`` of a flat float64 vector, given the backend's arrays in x0's structure."""
        user, backend, spec = self.caller(function, extra), self.backend, self.spec
        # a copy of its own: the function may write into its input, which the method's point
        # (or a view of it) must not see
        return lambda x: user(_backends.framework_params(backend, spec, np.array(x)))

    def compile(self, kind: str, function: Callable, call: Callable | None = None, *, extra: tuple | None = None, dtype: str | None = None) -> Any:
        """``function``'s compiled functions (see :func:`compile_functions`), cached."""
        extra = self.args if extra is None else extra
        call = self.caller(function, extra) if call is None else call
        unpack = self.callers.mode(function, len(extra))
        return compile_functions(self.backend_obj, kind, function, call, self.spec, dtype or self.dtype, unpack, extra, self.device)

    def clip_start(self, x_flat: np.ndarray, *, stacklevel: int) -> np.ndarray:
        """``x_flat`` clipped into the bounds, with one warning (``stacklevel`` as in warnings.warn)."""
        return clip_start(x_flat, self.bounds, self.spec, stacklevel=stacklevel + 1)


def prepare(
    fun: Callable, x0: Any, args: Any = (), *, unpack: str = "auto", precision: Any = None, device: Any = None, precision_from_x0: bool = True
) -> Setup:
    """The set-up of a solve of ``fun`` from ``x0``: structure, calling rule and precision.

    Without ``precision``, the precision is inferred from x0 (:func:`infer_precision`) unless
    ``precision_from_x0`` is False (float64).

    Examples
    --------
    >>> import numpy as np
    >>> setup = prepare(lambda p: (p["w"] ** 2).sum(), {"w": np.ones(3)})
    >>> setup.spec.size, setup.unpack, setup.dtype
    (3, 'none', 'float64')
    >>> setup.normalize_bounds((0, 2))[1]
    array([2., 2., 2.])
    """
    args = args if isinstance(args, tuple) else (args,)
    dtype, explicit = resolve_precision(precision, x0 if precision_from_x0 else None)
    requested = unpack
    unpack = resolve_unpack(fun, x0, requested, len(args))
    # takes_key's tuple, written out: a function checked before costs no Python call here
    key = (getattr(fun, "__code__", None), id(getattr(fun, "__defaults__", None)), len(x0) if unpack == "args" else 1, len(args))
    if TAKES.get(key) is None:
        check_takes(fun, "fun", unpack, x0, args)
    x0 = vector_x0(x0, requested, unpack)
    callers = CallerFactory(x0, requested, unpack, fun, len(args))
    spec, x0_flat = ParamSpec.with_start(x0, precision=dtype)
    return Setup(fun, x0, spec, x0_flat, args, dtype, explicit, unpack, callers, callers(fun, args), device)
