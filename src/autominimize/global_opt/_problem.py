"""What every global optimizer shares: the flat problem, its local solves and its results.

A :class:`GlobalProblem` is the flat view scipy's global optimizers see of the user's
problem: single values (counted, through :class:`~autominimize.problem.Objective`), batches
of values in one call, and local solves that run through ``am.minimize`` with exact
derivatives. ``am.basinhopping`` and friends build one from a function
(:func:`build_problem`); the torch integration builds one from a closure.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import numpy as np
import optree
import scipy.optimize as so

from .._setup import cached, clip_start, compile_key, prepare
from ..bounds import BoundsError, _is_number, _is_pair_sequence, normalize_bounds
from ..constraints import normalize_constraints
from ..drivers.methods import CUSTOM_METHOD, METHODS, method_name
from ..drivers.scipy_local import _callback_style
from ..params import ParamSpec
from ..errors import attach_point
from ..recording import attach_best, nested_solves
from ..problem import Counters, Objective

__all__ = ["GlobalProblem", "LocalSolver", "build_problem", "local_kwargs", "finish", "flat_option"]

#: ``am.minimize`` arguments a local solve may be given (``minimizer_kwargs``, ``polish``).
LOCAL_KEYS = ("method", "jac", "hess", "hessp", "bounds", "constraints", "tol", "callback", "options", "hvp_type")


class GlobalProblem:
    """The user's problem as flat float64 vectors, with counted evaluations.

    Parameters
    ----------
    spec
        The parameter structure.
    objective
        Single evaluations (cache, counters, the failing point attached to errors).
    local_solve
        ``local_solve(x0, bounds, kwargs)``: one local minimization from the flat ``x0`` with
        flat ``(lb, ub)`` bounds (or None) and ``am.minimize`` keyword arguments; returns a
        result with ``x`` in the parameter structure.
    batched
        Values of ``(S, n)`` points in one call, or None when the problem cannot batch.
    backend, precision
        Reported on the results.
    context
        Held around a whole global solve (JAX enables float64 in it).
    remote
        A picklable ``remote(x) -> float`` for other processes, or None.
    make_constraints
        ``make_constraints(constraints, method)``: the user's constraints as scipy constraint
        objects on the flat vector for ``method`` (``normalize_constraints``), or None.
    """

    def __init__(
        self,
        spec: ParamSpec,
        objective: Objective,
        local_solve: Callable[[np.ndarray, tuple | None, dict], so.OptimizeResult],
        *,
        batched: Callable[[np.ndarray], np.ndarray] | None = None,
        backend: str,
        precision: str,
        context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
        remote: Callable[[np.ndarray], float] | None = None,
        make_constraints: Callable[[Any, str], list] | None = None,
    ):
        self.spec = spec
        self.n = spec.size
        self.objective = objective
        self._local_solve = local_solve
        self.batched = batched
        self.backend = backend
        self.precision = precision
        self.context = context
        self.remote = remote
        self._make_constraints = make_constraints
        self.local_counters = Counters()
        self.n_local = 0

    # -- evaluations ----------------------------------------------------------------
    def value(self, x: Any) -> float:
        return self.objective.value(x)

    def values(self, points: np.ndarray) -> np.ndarray:
        """Values at the rows of ``points`` in one batched call.

        Under ``error_handling='continue'`` non-finite values are +inf, and a batch that raises
        is evaluated point by point (each failing point +inf).
        """
        points = np.ascontiguousarray(points, dtype=np.float64)
        continuing = self.objective.error_handling == "continue"
        try:
            out = self.batched(points)
        except Exception as exc:
            if continuing:
                return np.array([self.objective.value(p) for p in points])
            attach_point(exc, self.spec, points[0], "a batch of objective values (first point shown)")
            raise
        self.objective.counters.nfev += points.shape[0]
        return np.where(np.isfinite(out), out, np.inf) if continuing else out

    def count(self, evaluations: int) -> None:
        """Record evaluations made elsewhere (other processes)."""
        self.objective.counters.nfev += evaluations

    def local(self, x0: np.ndarray, bounds: tuple[np.ndarray, np.ndarray] | None, kwargs: dict) -> so.OptimizeResult:
        """One local solve through ``am.minimize``; its counts are added to the problem's."""
        if bounds is not None:
            x0 = np.clip(x0, bounds[0], bounds[1])  # a random step may leave the box
        result = self._local_solve(np.asarray(x0, dtype=np.float64), bounds, kwargs)
        self.record_local(result)
        return result

    def record_local(self, result: so.OptimizeResult) -> None:
        """Add a local solve's counts (made here or in another process) to the problem's."""
        self.n_local += 1
        for name in Counters.__slots__:
            setattr(self.local_counters, name, getattr(self.local_counters, name) + int(result.get(name, 0) or 0))

    def scipy_constraints(self, constraints: Any, method: str) -> list:
        """The user's constraints on the flat vector, as ``method`` takes them."""
        if not constraints:
            return []
        if self._make_constraints is None:
            raise ValueError("constraints are not supported here; use am.minimize's constraints in the local solves.")
        return self._make_constraints(constraints, method)

    # -- structure ------------------------------------------------------------------
    def restore(self, x: Any) -> Any:
        return self.spec.restore(np.asarray(x, dtype=np.float64).reshape(-1))

    def flat(self, tree: Any, name: str = "x") -> np.ndarray:
        return self.spec.flatten(tree, name)

    def counts(self) -> dict[str, int]:
        own = self.objective.counters.as_dict()
        return {name: own[name] + getattr(self.local_counters, name) for name in own}


# -- the structure when there is no x0 ---------------------------------------------------
def _is_limit(value: Any) -> bool:
    if _is_number(value) or isinstance(value, np.ndarray):
        return True
    if isinstance(value, list):
        try:
            np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            return False
        return True
    return False


def _bounds_leaf_shape(entry: Any) -> tuple[int, ...] | None:
    """The shape of the parameter a bounds entry describes, or None for a container."""
    if isinstance(entry, so.Bounds):
        return np.broadcast_shapes(np.shape(entry.lb), np.shape(entry.ub))
    if isinstance(entry, np.ndarray) and entry.ndim >= 1 and entry.shape[-1] == 2:
        return entry.shape[:-1]
    if isinstance(entry, (list, tuple)) and entry and _is_pair_sequence(entry, len(entry)):
        if not (len(entry) == 2 and all(_is_number(v) for v in entry)):
            return (len(entry),)
    if isinstance(entry, (list, tuple)) and len(entry) == 2 and all(_is_limit(v) for v in entry):
        try:
            return np.broadcast_shapes(np.shape(entry[0]), np.shape(entry[1]))
        except ValueError:
            raise BoundsError(f"bounds entry {entry!r}: low and high do not broadcast to one shape.") from None
    return None


def structure_from_bounds(bounds: Any) -> Any:
    """A template with the structure the bounds describe (zeros: NumPy arrays, or floats).

    Each ``(low, high)`` pair is one parameter of their broadcast shape (a float for two
    numbers), a list of per-element pairs a vector, ``Bounds(lb, ub)`` an array of lb's
    shape, an array of shape ``(..., 2)`` an array of shape ``(...)``; dicts, lists, tuples
    and namedtuples of those nest.
    """
    if bounds is None:
        raise BoundsError("bounds is required: give finite (low, high) limits for every parameter.")

    def is_leaf(node: Any) -> bool:
        return node is None or _bounds_leaf_shape(node) is not None

    def template(entry: Any) -> Any:
        shape = None if entry is None else _bounds_leaf_shape(entry)
        if shape is None:
            raise BoundsError(
                f"bounds: cannot read {entry!r} as the limits of one parameter. Without x0 every "
                "parameter needs its (low, high) pair (numbers or arrays), a list of per-element "
                "pairs, or a scipy.optimize.Bounds; pass x0= to give the structure instead."
            )
        return 0.0 if shape == () else np.zeros(shape)

    return optree.tree_map(template, bounds, is_leaf=is_leaf, none_is_leaf=True)


# -- building the problem from a function ------------------------------------------------
def build_problem(
    fun: Callable,
    x0: Any,
    bounds: Any,
    args: tuple,
    *,
    backend: str | None,
    precision: str | None,
    unpack: str,
    finite: bool,
    torch_device: Any = None,
    error_handling: str = "raise",
) -> tuple[GlobalProblem, Any, tuple[np.ndarray, np.ndarray] | None]:
    """The flat problem of ``fun``; the structure comes from ``x0`` or else from ``bounds``.

    Returns the problem, the structure template (x0 itself when given) and the flat bounds.
    ``finite`` requires finite bounds on every parameter. ``error_handling`` applies to
    every evaluation, batched, remote and local ones included.
    """
    from .._minimize import minimize

    if not callable(fun):
        raise TypeError(f"fun must be callable; got {type(fun).__name__}.")
    args = args if isinstance(args, tuple) else (args,)
    template = structure_from_bounds(bounds) if x0 is None else x0
    spec = ParamSpec.from_tree(template)
    flat_bounds = normalize_bounds(bounds, spec, template)
    if finite and (flat_bounds is None or not (np.all(np.isfinite(flat_bounds[0])) and np.all(np.isfinite(flat_bounds[1])))):
        raise BoundsError("bounds must be finite for every parameter (this method samples the whole box); give a finite (low, high) for each.")
    if x0 is None:
        middle = np.zeros(spec.size) if flat_bounds is None else _middle(*flat_bounds)
        template = spec.restore(middle)
    setup = prepare(fun, template, args, unpack=unpack, precision=precision, device=torch_device, precision_from_x0=False)
    template, spec, dtype, unpack, call = setup.x0, setup.spec, setup.dtype, setup.unpack, setup.call
    requested_unpack = setup.callers.requested
    backend_name = setup.choose_backend(backend)
    backend_obj = setup.backend_obj
    device = torch_device if backend_name == "torch" else None
    functions = setup.compile("scalar", fun, call)
    objective = Objective(functions, spec, differentiable=False, error_handling=error_handling)

    def local_solve(x: np.ndarray, box: tuple | None, kwargs: dict) -> so.OptimizeResult:
        box_bounds = None if box is None else so.Bounds(box[0], box[1])
        return minimize(
            fun, spec.restore(x), args=args, bounds=box_bounds, backend=backend_name, precision=dtype,
            unpack=requested_unpack, torch_device=torch_device, error_handling=error_handling, **kwargs,
        )

    batched_key = compile_key(backend_name, "batched", spec, dtype, unpack, args, device)

    compiled_batched: list = []  # looked up in the compile cache once per problem, not per generation

    def batched(points: np.ndarray) -> np.ndarray:
        def build() -> Any:
            if device is not None:
                return backend_obj.compile_batched(call, spec, dtype, device=device)
            return backend_obj.compile_batched(call, spec, dtype)

        if not compiled_batched:
            compiled_batched.append(cached(fun, batched_key, args, build))
        return compiled_batched[0](points)

    def make_constraints(constraints: Any, method: str) -> list:
        def compile_vector(c: Callable, extra: tuple) -> Any:
            return setup.compile("vector", c, extra=extra or args)

        def make_call(f: Callable, extra: tuple) -> Callable:
            return setup.flat_call(f, extra or args)

        return normalize_constraints(constraints, method, spec, compile_vector, make_call, error_handling)[0]

    from ._parallel import RemoteValue

    problem = GlobalProblem(
        spec, objective, local_solve, batched=batched, backend=backend_name, precision=dtype,
        context=lambda: backend_obj.solve_context(dtype),
        remote=RemoteValue(fun, unpack, args, template if unpack == "kwargs" else None, spec, backend_name, dtype, error_handling),
        make_constraints=make_constraints,
    )
    return problem, template, flat_bounds


def _middle(lb: np.ndarray, ub: np.ndarray) -> np.ndarray:
    lo = np.where(np.isfinite(lb), lb, np.where(np.isfinite(ub), np.minimum(ub, 0.0), 0.0))
    hi = np.where(np.isfinite(ub), ub, np.maximum(lo, 0.0))
    return 0.5 * (lo + hi)


def flat_option(value: Any, spec: ParamSpec, name: str, dtype: Any = np.float64) -> np.ndarray:
    """A per-parameter option (``integrality``, ...) in x0's structure or flat, as a flat array."""
    try:
        return spec.flatten(value, name).astype(dtype)
    except (ValueError, TypeError):
        pass
    try:
        return np.broadcast_to(np.asarray(value, dtype=dtype).reshape(-1), (spec.size,)).copy()
    except ValueError:
        raise ValueError(
            f"{name} must mirror x0's structure, or be one value or a flat array of {spec.size} "
            f"(the number of parameters); got {value!r}."
        ) from None


# -- local solves as a scipy custom method -----------------------------------------------
def local_kwargs(kwargs: dict | None, where: str, allowed: tuple[str, ...] = LOCAL_KEYS) -> dict:
    """Validated ``am.minimize`` keyword arguments for local solves."""
    if kwargs is None:
        return {}
    if not isinstance(kwargs, dict):
        raise TypeError(f"{where} must be a dict of am.minimize arguments; got {type(kwargs).__name__}.")
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise TypeError(f"{where} has unknown key(s) {unknown}; it accepts {', '.join(allowed)}.")
    return dict(kwargs)


def takes_bounds(kwargs: dict) -> bool:
    """Whether the local method of ``kwargs`` can use bounds (scipy's default method can)."""
    method = kwargs.get("method")
    if callable(method):
        return CUSTOM_METHOD.bounds
    return METHODS[method_name(method, True, bool(kwargs.get("constraints")))].bounds


class LocalSolver:
    """A custom ``scipy.optimize.minimize`` method that solves locally with ``am.minimize``.

    scipy's global optimizers call ``minimize(func, x, method=solver, ...)``; the solver
    ignores scipy's flat ``func`` and minimizes the user's function from ``x`` with exact
    derivatives. With ``scipy_bounds`` it restricts the solve to the box scipy passes (shgo's
    local boxes, differential evolution's fixed integers), when the method takes bounds.
    """

    def __init__(self, problem: GlobalProblem, kwargs: dict, bounds: tuple | None = None, *, scipy_bounds: bool = False):
        self.problem = problem
        self.kwargs = kwargs
        self.bounds = bounds
        self.scipy_bounds = scipy_bounds and takes_bounds(kwargs)
        self.results: list[so.OptimizeResult] = []

    @staticmethod
    def lower() -> str:
        # shgo looks the method's name up with ``method.lower()``; "_custom" is the name
        # scipy itself gives a callable method.
        return "_custom"

    def __call__(self, fun: Any, x0: Any, *_: Any, bounds: Any = None, **__: Any) -> so.OptimizeResult:
        box = self.bounds
        if self.scipy_bounds and bounds is not None:
            box = _flat_box(bounds, self.problem.n)
        result = self.problem.local(np.asarray(x0, dtype=np.float64).reshape(-1), box, self.kwargs)
        self.results.append(result)
        return flat_result(result, self.problem.spec)


def _flat_box(bounds: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(bounds, so.Bounds):
        lb, ub = bounds.lb, bounds.ub
    else:
        pairs = np.array([[-np.inf if lo is None else lo, np.inf if hi is None else hi] for lo, hi in bounds], dtype=np.float64)
        lb, ub = pairs[:, 0], pairs[:, 1]
    return np.broadcast_to(np.asarray(lb, np.float64), (n,)).copy(), np.broadcast_to(np.asarray(ub, np.float64), (n,)).copy()


def flat_result(result: so.OptimizeResult, spec: ParamSpec) -> so.OptimizeResult:
    """A copy of a local result with flat ``x`` and ``jac``, as scipy expects."""
    flat = so.OptimizeResult(result)
    flat.x = spec.flatten(result.x)
    if result.get("jac") is not None:
        try:
            flat.jac = spec.flatten(result.jac, "jac")
        except (ValueError, TypeError):  # trust-constr's jac: the constraint Jacobians
            pass
    return flat


def structured_result(result: so.OptimizeResult, spec: ParamSpec) -> so.OptimizeResult:
    """A local result with flat ``x`` (and ``jac``) back in x0's structure."""
    out = so.OptimizeResult(result)
    out.x = spec.restore(np.asarray(result.x, dtype=np.float64).reshape(-1))
    jac = result.get("jac")
    if isinstance(jac, np.ndarray) and jac.ndim == 1 and jac.size == spec.size:
        out.jac = spec.restore(jac)
    return out


# -- callbacks and results ---------------------------------------------------------------
def structured_callback(callback: Callable | None, problem: GlobalProblem) -> Callable | None:
    """``callback(x, *rest)`` from scipy becomes the user's ``callback(x_structured, *rest)``."""
    if callback is None:
        return None
    if not callable(callback):
        raise TypeError(f"callback must be callable; got {type(callback).__name__}.")

    def scipy_callback(x: Any, *rest: Any) -> Any:
        return callback(problem.restore(np.asarray(x, dtype=np.float64)), *rest)

    return scipy_callback


def intermediate_callback(callback: Callable | None, problem: GlobalProblem, old_style: Callable[[Callable, Any, so.OptimizeResult], Any]) -> Callable | None:
    """A new-style scipy callback that serves the user's new- or old-style callback.

    New style (one parameter named ``intermediate_result``) gets scipy's ``OptimizeResult``
    with ``x`` in x0's structure; old style is called by ``old_style(callback, x, result)``.
    """
    if callback is None:
        return None
    if not callable(callback):
        raise TypeError(f"callback must be callable; got {type(callback).__name__}.")
    new = _callback_style(callback) == "new"

    def scipy_callback(intermediate_result: so.OptimizeResult) -> Any:
        x = problem.restore(intermediate_result.x)
        if new:
            fields = dict(intermediate_result)
            fields["x"] = x
            return callback(intermediate_result=so.OptimizeResult(fields))
        return old_style(callback, x, intermediate_result)

    return scipy_callback


def finish(result: so.OptimizeResult, problem: GlobalProblem) -> so.OptimizeResult:
    """scipy's global result with ``x`` in x0's structure, honest counts, backend, precision."""
    result.x = problem.restore(result.x)
    jac = result.get("jac")
    if isinstance(jac, np.ndarray) and jac.ndim == 1 and jac.size == problem.n:
        result.jac = problem.restore(jac)
    result.fun = float(np.asarray(result.fun).reshape(()))
    result.update(problem.counts())
    result.nlocal = problem.n_local
    result.backend = problem.backend
    result.precision = problem.precision
    return result


@contextlib.contextmanager
def running(problem: GlobalProblem):
    """The context of one global solve: the backend's context and one BLAS thread.

    An exception leaving it carries the best point evaluated in ``exc.autominimize_best_x``;
    scipy's wrapping of an exception from ``func`` in a RuntimeError about its map-like
    callable is undone, so the user's own exception propagates.
    """
    from ..drivers.blas_threads import single_blas_thread

    try:
        with problem.context(), single_blas_thread(), nested_solves():
            yield
    except KeyboardInterrupt as exc:  # one Ctrl-C ends the local solves and the global run
        if problem.objective.best_x is not None:
            attach_best(exc, problem.restore(problem.objective.best_x), problem.objective.best_f)
        raise
    except Exception as exc:
        cause = exc.__cause__
        unwrap = isinstance(exc, RuntimeError) and getattr(cause, "autominimize_x", None) is not None
        error = cause if unwrap else exc
        if problem.objective.best_x is not None:
            error.autominimize_best_x = problem.restore(problem.objective.best_x)
        if unwrap:
            raise cause from None
        raise


def check_finite_start(x: np.ndarray, bounds: tuple[np.ndarray, np.ndarray] | None, spec: ParamSpec) -> np.ndarray:
    """x0 clipped into the bounds, with a warning naming the leaves that moved."""
    return clip_start(x, bounds, spec, stacklevel=3)
