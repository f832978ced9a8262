"""``am.batched_least_squares`` and ``am.batched_curve_fit``: many small fits in one solve.

B independent problems share one residual function and differ in their data and/or start.
They are solved together by the vectorised Levenberg–Marquardt of
:mod:`autominimize.native.batched_lm`: JAX and torch map the residual function and its
forward-mode Jacobian over the members (``jax.vmap``/``torch.func.vmap`` of ``jacfwd``);
NumPy calls it member by member, with forward differences. ``executor=`` splits the batch
into chunks solved on workers.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import scipy.optimize as so

from . import backends as _backends
from .bounds import normalize_bounds
from .calling import make_caller, resolve_unpack
from .native.batched_lm import REASONS, BatchedLM
from .native.oracles import make_params_of
from .params import ParamSpec, leaf_kind, leaf_to_numpy, tree_leaves, tree_map
from .problem import check_error_handling

__all__ = ["batched_least_squares", "batched_curve_fit"]

#: the code of a member whose chunk failed twice on the executor (status -2)
_CHUNK_FAILED = 7
_EPS = np.finfo(np.float64).eps


# -- the problem a worker solves ---------------------------------------------------------
@dataclass(frozen=True)
class _Problem:
    """Everything a chunk needs besides its rows: picklable, so it can go to other processes."""

    fun: Callable  # one member's residuals: fun(params, *member_data, *args)
    spec: ParamSpec  # one member's parameter structure
    unpack: str
    args: tuple
    backend: str
    precision: str
    algo: BatchedLM
    lower: np.ndarray | None
    upper: np.ndarray | None
    error_handling: str
    vectorized: bool = False


def _solve(problem: _Problem, rows: np.ndarray, member_data: tuple, shared_data: tuple = ()) -> dict:
    """Solve the members ``rows`` (b, n); ``member_data`` has one row per member, ``shared_data``
    is the same for all (broadcast here, so it travels to a worker once)."""
    count = rows.shape[0]
    data = tuple(member_data) + tuple(np.broadcast_to(d, (count,) + np.shape(d)) for d in shared_data)
    backend = _backends.get_backend(problem.backend)
    with backend.solve_context(problem.precision):
        x = _framework_array(problem.backend, rows, problem.precision)
        framework_data = tuple(_framework_array(problem.backend, d, problem.precision) for d in data)
        lower = None if problem.lower is None else _like(x, problem.lower)
        upper = None if problem.upper is None else _like(x, problem.upper)
        evaluate = _evaluator(problem)
        state = problem.algo.run(x, evaluate, framework_data, lower, upper)
        return {
            "x": _to_numpy(state.x), "cost": _to_numpy(state.cost), "fun": _to_numpy(state.r), "jac": _to_numpy(state.J),
            "grad": _to_numpy(state.g), "nfev": _to_numpy(state.nfev).astype(int), "reason": _to_numpy(state.reason).astype(int),
            "errors": [None] * count,
        }


def _framework_array(backend: str, values: np.ndarray, dtype: str) -> Any:
    values = np.asarray(values)
    target = dtype if values.dtype.kind == "f" else values.dtype
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.asarray(values, dtype=target)
    if backend == "torch":
        import torch

        return torch.as_tensor(np.ascontiguousarray(values, dtype=target))
    return np.asarray(values, dtype=target)


def _evaluator(problem: _Problem) -> Callable:
    """``evaluate(x, *data)`` → residuals (k, m) and Jacobian (k, m, n) of k members."""
    if problem.vectorized:
        return _vectorized_differences(_stacked_residual(problem), problem.upper)
    residual = _row_residual(problem)
    if problem.backend == "numpy":
        return _forward_differences(residual, problem.upper, problem.error_handling)
    key = ("batched-lm", problem.backend, problem.spec.key, problem.precision, problem.unpack, tuple(id(a) for a in problem.args))
    return _backends.cached_compile(problem.fun, key, lambda: _mapped_jacobian(problem.backend, residual))


def _row_residual(problem: _Problem) -> Callable:
    """One member's flat residual vector from its flat parameter row and data rows."""
    params_of = make_params_of(problem.spec)
    template = problem.spec.unflatten(np.zeros(problem.spec.size))

    def residual(x: Any, *data: Any) -> Any:
        call = make_caller(problem.fun, problem.unpack, tuple(data) + problem.args, template)
        return _ravel(call(params_of(x)), x)

    return residual


def _stacked_residual(problem: _Problem) -> Callable:
    """``vectorized=True``: the residuals of k members from one call, (k, m)."""
    template = problem.spec.unflatten(np.zeros(problem.spec.size))
    bounds = list(zip(problem.spec.shapes, problem.spec.offsets, problem.spec.offsets[1:]))

    def residual(x: np.ndarray, *data: np.ndarray) -> np.ndarray:
        count = x.shape[0]
        params = problem.spec.unflatten_leaves([x[:, start:stop].reshape((count,) + shape) for shape, start, stop in bounds])
        call = make_caller(problem.fun, problem.unpack, tuple(data) + problem.args, template)
        out = [np.asarray(leaf, dtype=np.float64) for leaf in tree_leaves(call(params))]
        return np.concatenate([np.broadcast_to(leaf, (count,) + leaf.shape[1:]).reshape(count, -1) for leaf in out], axis=1)

    return residual


def _vectorized_differences(residual: Callable, upper: np.ndarray | None) -> Callable:
    """NumPy, ``vectorized=True``: residuals of all k members in one call, and n more calls for
    forward differences with scipy's '2-point' step."""

    def evaluate(x: np.ndarray, *data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = residual(x, *data)
        step = _EPS**0.5 * np.maximum(1.0, np.abs(x))
        if upper is not None:
            step = np.where(x + step > upper, -step, step)
        jac = np.empty(r.shape + (x.shape[1],))
        for j in range(x.shape[1]):
            shifted = x.copy()
            shifted[:, j] += step[:, j]
            jac[:, :, j] = (residual(shifted, *data) - r) / (shifted[:, j] - x[:, j])[:, None]
        return r, jac

    return evaluate


def _ravel(out: Any, like: Any) -> Any:
    leaves = tree_leaves(out)
    if not leaves:
        raise ValueError("the residual function returned no array.")
    kind = leaf_kind(like)
    if kind == "jax":
        import jax.numpy as jnp

        return jnp.concatenate([jnp.ravel(jnp.asarray(v)) for v in leaves]).astype(like.dtype)
    if kind == "torch":
        import torch

        return torch.cat([torch.as_tensor(v).reshape(-1) for v in leaves]).to(like.dtype)
    return np.concatenate([np.ravel(np.asarray(v, dtype=np.float64)) for v in leaves])


def _mapped_jacobian(backend: str, residual: Callable) -> Callable:
    """Residuals and their forward-mode Jacobian, mapped over the members."""

    def with_value(x: Any, *data: Any) -> tuple[Any, Any]:
        r = residual(x, *data)
        return r, r

    if backend == "jax":
        import jax

        jacobian = jax.jacfwd(with_value, has_aux=True)
        return jax.vmap(lambda x, *data: jacobian(x, *data)[::-1])
    if backend == "torch":
        import torch

        jacobian = torch.func.jacfwd(with_value, has_aux=True)
        return torch.func.vmap(lambda x, *data: jacobian(x, *data)[::-1])
    raise ValueError(f"batched fits run on NumPy, JAX or torch; got backend={backend!r}.")


def _forward_differences(residual: Callable, upper: np.ndarray | None, error_handling: str) -> Callable:
    """NumPy: each member's residuals, and forward differences with scipy's '2-point' step."""

    def guarded(x: np.ndarray, data: list) -> np.ndarray:
        if error_handling == "raise":
            return residual(x, *data)
        try:
            return residual(x, *data)
        except Exception:  # error_handling='continue': the member's point counts as not finite
            return None

    def evaluate(x: np.ndarray, *data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        count, n = x.shape
        rs, js = [], []
        for i in range(count):
            row = [d[i] for d in data]
            r = guarded(x[i], row)
            if r is None:
                rs.append(None)
                js.append(None)
                continue
            step = _EPS**0.5 * np.maximum(1.0, np.abs(x[i]))
            if upper is not None:
                step = np.where(x[i] + step > upper, -step, step)
            jac = np.empty((r.size, n))
            for j in range(n):
                shifted = x[i].copy()
                shifted[j] += step[j]
                r_j = guarded(shifted, row)
                jac[:, j] = np.nan if r_j is None else (r_j - r) / (shifted[j] - x[i, j])
            rs.append(r)
            js.append(jac)
        m = next((r.size for r in rs if r is not None), 0)
        r_all = np.stack([np.full(m, np.nan) if r is None else r for r in rs])
        j_all = np.stack([np.full((m, n), np.nan) if j is None else j for j in js])
        return r_all, j_all

    return evaluate


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    return np.asarray(x)


def _like(x: Any, values: np.ndarray) -> Any:
    """A NumPy vector as an array of x's framework, dtype and device."""
    if leaf_kind(x) == "torch":
        import torch

        return torch.tensor(values, dtype=x.dtype, device=x.device)
    if leaf_kind(x) == "jax":
        import jax.numpy as jnp

        return jnp.asarray(values, dtype=x.dtype)
    return np.asarray(values, dtype=x.dtype)


def _precision(precision: Any) -> str:
    name = "float64" if precision is None else np.dtype(precision).name
    if name not in ("float64", "float32"):
        raise ValueError(f"precision={precision!r} is not supported; use 'float64' (default) or 'float32'.")
    return name


def _unstack(x0: Any, name: str) -> tuple[ParamSpec, ParamSpec, np.ndarray]:
    """x0's stacked structure, one member's structure, and the (B, n) float64 rows."""
    stacked = ParamSpec.from_tree(_finite_copy(x0), name)  # a NaN start is one member's failure, reported per member
    sizes = {leaf.shape[0] if leaf.shape else None for leaf in stacked.leaves}
    if None in sizes or len(sizes) != 1:
        raise ValueError(
            f"{name} holds one start per member, stacked along the first axis of every leaf; the leaves' "
            f"shapes are {[leaf.shape for leaf in stacked.leaves]} (a number has no batch axis)."
        )
    count = sizes.pop()
    member = ParamSpec(stacked.treedef, tuple(dataclasses.replace(leaf, shape=leaf.shape[1:]) for leaf in stacked.leaves))
    parts = stacked.split(stacked.flatten(x0, name))
    return stacked, member, np.concatenate([part.reshape(count, -1) for part in parts], axis=1)


def _finite_copy(tree: Any) -> Any:
    def finite(leaf: Any) -> Any:
        kind = leaf_kind(leaf)
        if kind == "torch":
            import torch

            return torch.nan_to_num(leaf) if leaf.is_floating_point() else leaf
        if kind == "jax":
            import jax.numpy as jnp

            return jnp.nan_to_num(leaf)
        return np.nan_to_num(leaf) if kind == "numpy" else leaf

    return tree_map(finite, tree)


def _restack(stacked: ParamSpec, member: ParamSpec, rows: np.ndarray) -> Any:
    """(B, n) rows back in the stacked structure and array types."""
    parts = [rows[:, start:stop].reshape(-1) for start, stop in zip(member.offsets, member.offsets[1:])]
    return stacked.restore(np.concatenate(parts))


# -- splitting over an executor ----------------------------------------------------------
def _solve_all(problem: _Problem, rows: np.ndarray, member_data: tuple, shared_data: tuple, executor: Any, chunk_size: int | None) -> dict:
    """The whole batch: in one piece, in chunks one after the other, or in chunks on ``executor``."""
    count = rows.shape[0]
    if chunk_size is None:
        if executor is None:
            return _solve(problem, rows, member_data, shared_data)
        chunk_size = math.ceil(count / (2 * _worker_count(executor)))
    starts = list(range(0, count, chunk_size))
    pieces = [(rows[a : a + chunk_size], tuple(d[a : a + chunk_size] for d in member_data)) for a in starts]
    if executor is None:
        outputs = [_solve(problem, chunk, data, shared_data) for chunk, data in pieces]
    else:
        outputs = _on_executor(executor, problem, pieces, shared_data)
    solved = [out for out in outputs if out["fun"] is not None]
    m = solved[0]["fun"].shape[1] if solved else 0
    for out in outputs:  # a failed chunk's residuals and Jacobian are unknown: NaN
        if out["fun"] is None:
            out["fun"] = np.full((out["x"].shape[0], m), np.nan)
            out["jac"] = np.full(out["x"].shape + (m,), np.nan).swapaxes(1, 2)
    merged = {key: np.concatenate([out[key] for out in outputs]) for key in outputs[0] if key != "errors"}
    merged["errors"] = [error for out in outputs for error in out["errors"]]
    return merged


def _worker_count(executor: Any) -> int:
    if callable(getattr(executor, "scheduler_info", None)):  # a dask.distributed Client
        return max(1, sum(w.get("nthreads", 1) for w in executor.scheduler_info().get("workers", {}).values()))
    return max(1, int(getattr(executor, "_max_workers", 1) or 1))


def _on_executor(executor: Any, problem: _Problem, pieces: list, shared_data: tuple) -> list[dict]:
    """Each chunk as one task; a failed chunk is retried once, then reported per member."""
    dask = callable(getattr(executor, "scatter", None)) and callable(getattr(executor, "submit", None))
    if not dask and not callable(getattr(executor, "submit", None)):
        raise TypeError(
            "executor must be a concurrent.futures.Executor (ProcessPoolExecutor, ThreadPoolExecutor, ...) "
            f"or a dask.distributed Client; got {type(executor).__name__}."
        )
    if dask:
        shared = executor.scatter(shared_data, broadcast=True) if shared_data else ()
        payloads = [executor.scatter(piece) for piece in pieces]

        def submit(i: int) -> Any:  # pure=False: a retry must run again, not reuse the failed key
            return executor.submit(_solve_piece, problem, payloads[i], shared, pure=False)
    else:

        def submit(i: int) -> Any:
            return executor.submit(_solve_piece, problem, pieces[i], shared_data)

    futures = [submit(i) for i in range(len(pieces))]
    outputs: list[Any] = [None] * len(pieces)
    failed = []
    for i, future in enumerate(futures):
        try:
            outputs[i] = future.result()
        except Exception:
            failed.append(i)
    retries = {i: submit(i) for i in failed}
    for i, future in retries.items():
        try:
            outputs[i] = future.result()
        except Exception as exc:
            outputs[i] = _failed_chunk(pieces[i][0], exc)
    return outputs


def _solve_piece(problem: _Problem, piece: tuple, shared_data: tuple) -> dict:
    return _solve(problem, piece[0], piece[1], tuple(shared_data))


def _failed_chunk(rows: np.ndarray, exc: BaseException) -> dict:
    count, n = rows.shape
    message = f"its chunk failed twice on the executor: {type(exc).__name__}: {exc}"
    return {
        "x": rows.astype(np.float64), "cost": np.full(count, np.nan), "fun": None, "jac": None,
        "grad": np.full((count, n), np.nan), "nfev": np.zeros(count, int),
        "reason": np.full(count, _CHUNK_FAILED), "errors": [message] * count,
    }


# -- public entries -----------------------------------------------------------------------
def batched_least_squares(
    fun: Callable,
    x0: Any,
    bounds: Any = None,
    *,
    args: tuple = (),
    member_args: tuple = (),
    ftol: float | None = 1e-8,
    xtol: float | None = 1e-8,
    gtol: float | None = 1e-8,
    max_nfev: int | None = None,
    backend: str | None = None,
    precision: str | None = None,
    unpack: str = "auto",
    error_handling: str = "raise",
    executor: Any = None,
    chunk_size: int | None = None,
    vectorized: bool = False,
) -> so.OptimizeResult:
    """Solve B independent least-squares problems at once: one vectorised Levenberg–Marquardt.

    Parameters
    ----------
    fun : callable
        The residuals of **one** member, written in NumPy, JAX or torch, returning an array or
        any structure of arrays (raveled), called ``fun(params, *member_args_b, *args)``.
    x0 : structure
        The starts, stacked: every leaf has the batch axis first, shape (B, *leaf_shape).
    bounds : optional
        One box for every member, in any format ``am.least_squares`` accepts for a member's
        structure; active-set projected steps keep each member in it.
    args : tuple
        Arguments shared by every member.
    member_args : tuple of arrays
        Per-member data, each with the batch axis first: member b receives row ``a[b]`` of
        each array, before ``args``.
    ftol, xtol, gtol, max_nfev
        scipy ``least_squares``'s stopping tests, per member (defaults 1e-8, 1e-8, 1e-8 and
        100·n evaluations per member).
    backend, precision, unpack
        As for ``am.minimize``; JAX and torch map ``fun`` and its forward-mode Jacobian over
        the members, NumPy calls it member by member with forward differences.
    error_handling : {'raise', 'continue'}
        What to do when a member's residuals are not finite at its start: raise (default),
        or give that member status -1 and solve the others.
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Split the batch into chunks of ``chunk_size`` members, each solved as one batch in a
        task, results reassembled in order. A chunk that fails is retried once; if it fails
        again its members get status -2 and their ``messages`` say why. ``fun`` must be
        picklable (defined at module level).
    chunk_size : int, optional
        Members per chunk; by default two chunks per worker with an executor, one piece
        without. Without an executor, chunks run one after the other (less memory).
    vectorized : bool
        NumPy only: ``fun`` computes k members in one call. Every parameter leaf then has
        the member axis first, (k, *leaf_shape), as has every ``member_args`` array, and
        ``fun`` returns residuals with k rows. n + 1 calls per step instead of k·(n + 1).

    Returns
    -------
    scipy.optimize.OptimizeResult
        ``x`` stacked in x0's structure; NumPy arrays with one row per member: ``cost`` (B,),
        ``fun`` (B, m) residuals, ``jac`` (B, m, n), ``grad`` (B, n), ``optimality`` (B,)
        (∞-norm of the projected gradient), ``active_mask`` (B, n), ``nfev``/``njev`` (B,),
        ``status`` (B,) with scipy's codes (plus -1 and -2 above), ``success`` (B,),
        ``messages`` (one per member); ``message`` sums them up.

    Examples
    --------
    >>> import numpy as np
    >>> import autominimize as am
    >>> t = np.linspace(0, 3, 20)
    >>> y = np.stack([2 * np.exp(-1.5 * t), 3 * np.exp(-0.5 * t)])
    >>> res = am.batched_least_squares(lambda p, y: p["a"] * np.exp(-p["k"] * t) - y,
    ...                                {"a": np.ones(2), "k": np.ones(2)}, member_args=(y,))
    >>> np.round(res.x["a"], 6).tolist(), np.round(res.x["k"], 6).tolist(), res.status.tolist()
    ([2.0, 3.0], [1.5, 0.5], [1, 1])
    """
    error_handling = check_error_handling(error_handling)
    args = args if isinstance(args, tuple) else (args,)
    stacked, spec, rows = _unstack(x0, "x0")
    member_data = _member_arrays(member_args, rows.shape[0], "member_args")
    template = spec.restore(rows[0]) if rows.shape[0] else spec.unflatten(np.zeros(spec.size))
    unpack = resolve_unpack(fun, template, unpack, len(member_args) + len(args))
    backend = _select_backend(backend, spec, fun, unpack, template, None if vectorized else tuple(d[0] for d in member_data) + args)
    problem, rows = _make_problem(fun, spec, unpack, args, backend, precision, bounds, template, rows, error_handling, ftol, xtol, gtol, max_nfev, vectorized)
    out = _solve_all(problem, rows, member_data, (), executor, _check_chunk_size(chunk_size))
    return _result(out, problem, stacked, spec)


def _member_arrays(values: Any, count: int, name: str) -> tuple:
    if not isinstance(values, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of arrays, each with the batch axis first; got {type(values).__name__}.")
    arrays = tuple(leaf_to_numpy(v) if leaf_kind(v) != "other" else np.asarray(v) for v in values)
    for i, array in enumerate(arrays):
        if array.ndim == 0 or array.shape[0] != count:
            raise ValueError(f"{name}[{i}] has shape {array.shape}; its first axis must be the batch axis, of length {count} (x0's).")
    return arrays


def _check_chunk_size(chunk_size: Any) -> int | None:
    if chunk_size is not None and (not isinstance(chunk_size, (int, np.integer)) or isinstance(chunk_size, bool) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive integer or None; got {chunk_size!r}.")
    return None if chunk_size is None else int(chunk_size)


def _select_backend(backend: str | None, spec: ParamSpec, fun: Callable, unpack: str, template: Any, row_args: tuple) -> str:
    if backend is None and (row_args is None or getattr(fun, "vectorized", False)):  # vectorized=True: NumPy
        return "numpy"
    probe = _Probe(make_caller(fun, unpack, row_args, template), fun)
    name = _backends.select_backend(backend, spec, probe, spec.flatten(template))
    if name not in ("numpy", "jax", "torch"):
        raise ValueError(f"batched fits run on NumPy, JAX or torch; the backend is {name!r}.")
    return name


class _Probe:
    """A caller whose ``__wrapped__`` is the user's function (backend detection reads it)."""

    def __init__(self, call: Callable, fun: Callable) -> None:
        self.call, self.__wrapped__ = call, getattr(fun, "f", fun)

    def __call__(self, params: Any) -> Any:
        return self.call(params)


def _make_problem(fun, spec, unpack, args, backend, precision, bounds, template, rows, error_handling, ftol, xtol, gtol, max_nfev, vectorized):
    if vectorized and backend != "numpy":
        raise ValueError(f"vectorized=True is for the NumPy backend; on {backend} fun is mapped over the members (vmap) and written for one.")
    lower = upper = None
    if bounds is not None:
        lower, upper = normalize_bounds(_scipy_pair(bounds, spec.size), spec, template)
        rows = np.clip(rows, lower, upper)
        lower = None if np.all(np.isneginf(lower)) else lower
        upper = None if np.all(np.isposinf(upper)) else upper
    algo = BatchedLM(ftol=ftol, xtol=xtol, gtol=gtol, max_nfev=max_nfev)
    problem = _Problem(fun, spec, unpack, args, backend, _precision(precision), algo, lower, upper, error_handling, bool(vectorized))
    return problem, rows


def _scipy_pair(bounds: Any, n: int) -> Any:
    """A 2-tuple of numbers or flat n-vectors is scipy's ``(lb, ub)``, as in ``least_squares``."""
    if not (isinstance(bounds, tuple) and len(bounds) == 2):
        return bounds
    flat = [part is None or np.ndim(part) == 0 or (np.ndim(part) == 1 and np.size(part) == n) for part in bounds]
    if all(flat) and any(np.ndim(part) == 1 for part in bounds if part is not None):
        low, high = (np.full(n, -np.inf if i == 0 else np.inf) if part is None else part for i, part in enumerate(bounds))
        return so.Bounds(low, high)
    return bounds


def _result(out: dict, problem: _Problem, stacked: ParamSpec, spec: ParamSpec) -> so.OptimizeResult:
    reasons = out["reason"]
    bad = np.flatnonzero(reasons == 6)
    if bad.size and problem.error_handling == "raise":
        raise ValueError(
            f"the residuals or their Jacobian are not finite at the start of member(s) {bad[:10].tolist()}"
            f"{' ...' if bad.size > 10 else ''}; fix those starts or data, or pass error_handling='continue' "
            "to report them per member (status -1) and solve the others."
        )
    messages = [error or (REASONS[int(c)][0] if c in REASONS else "") for c, error in zip(reasons, out["errors"])]
    status = np.array([REASONS[int(c)][2] if c in REASONS else -2 for c in reasons], dtype=int)
    success = np.array([REASONS[int(c)][1] if c in REASONS else False for c in reasons], dtype=bool)
    x, grad = out["x"], out["grad"]
    lower = np.full(spec.size, -np.inf) if problem.lower is None else problem.lower
    upper = np.full(spec.size, np.inf) if problem.upper is None else problem.upper
    active = np.where(x <= lower, -1, np.where(x >= upper, 1, 0))
    optimality = np.max(np.abs(x - np.clip(x - grad, lower, upper)), axis=1) if spec.size else np.zeros(x.shape[0])
    nfev = out["nfev"]
    counts = {code: int(np.sum(reasons == code)) for code in sorted(set(reasons.tolist()))}
    summary = ", ".join(f"{n} {'failed on the executor' if code == _CHUNK_FAILED else REASONS[code][0].rstrip('.')}" for code, n in counts.items())
    return so.OptimizeResult(
        x=_restack(stacked, spec, x), cost=out["cost"], fun=out["fun"], jac=out["jac"], grad=grad, optimality=optimality,
        active_mask=active, nfev=nfev, njev=nfev.copy(), status=status, success=success, messages=messages,
        message=f"{reasons.size} problems: {summary}", backend=problem.backend, precision=problem.precision,
    )


# -- curve fits -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _CurveResidual:
    """One member's weighted residuals ``(f(x, p) - y) / sigma``, zero at masked points.

    ``names`` gives the meaning of the data arguments in order ('y', 'x', 'w', 'mask');
    equal instances are one key of the compile cache, so a second fit with the same ``f``
    does not recompile.
    """

    f: Callable
    spread: str
    names: tuple
    vectorized: bool = False

    def __call__(self, params: Any, *data: Any) -> Any:
        d = dict(zip(self.names, data))
        like = tree_leaves(params)[0]
        if self.vectorized:  # (k, *shape) leaves as (k, 1, *shape) columns against (k, m) data
            params = tree_map(lambda v: v.reshape((v.shape[0], 1) + v.shape[1:]), params)
            if self.spread == "array":
                params = [params[:, :, i] for i in range(params.shape[2])]
        if self.spread == "kwargs":
            out = self.f(d["x"], **params)
        elif self.spread == "args" or self.vectorized and self.spread == "array":
            out = self.f(d["x"], *params)
        elif self.spread == "array":
            out = self.f(d["x"], *[params[i] for i in range(params.shape[0])])
        else:
            out = self.f(d["x"], params)
        if self.vectorized:
            count = like.shape[0]
            diff = np.broadcast_to(np.asarray(out, dtype=np.float64), (count,) + np.shape(out)[1:]).reshape(count, -1) - d["y"]
        else:
            diff = _ravel(out, like) - d["y"]
        if "w" in d:
            diff = diff * d["w"]
        if "mask" in d:
            diff = _where(d["mask"], diff)
        return diff


def _where(mask: Any, values: Any) -> Any:
    kind = leaf_kind(values)
    if kind == "jax":
        import jax.numpy as jnp

        return jnp.where(mask, values, 0.0)
    if kind == "torch":
        import torch

        return torch.where(mask, values, torch.zeros_like(values))
    return np.where(mask, values, 0.0)


def _spread(p0: Any) -> str:
    """How ``f`` receives the parameters: scipy's ``f(x, *p)`` for a flat sequence or array."""
    if isinstance(p0, dict):
        return "kwargs"
    if isinstance(p0, (list, tuple)) and not hasattr(p0, "_fields"):
        return "args"
    if leaf_kind(p0) in ("numpy", "jax", "torch"):
        return "array"
    return "none"


def batched_curve_fit(
    f: Callable,
    xdata: Any,
    ydata: Any,
    p0: Any = None,
    sigma: Any = None,
    absolute_sigma: bool = False,
    bounds: Any = None,
    *,
    mask: Any = None,
    ftol: float | None = 1e-8,
    xtol: float | None = 1e-8,
    gtol: float | None = 1e-8,
    max_nfev: int | None = None,
    backend: str | None = None,
    precision: str | None = None,
    error_handling: str = "raise",
    executor: Any = None,
    chunk_size: int | None = None,
    vectorized: bool = False,
) -> so.OptimizeResult:
    """Fit ``f(xdata, *params)`` to every row of ``ydata`` at once; one covariance per fit.

    Parameters
    ----------
    f : callable
        The model of **one** member, as for ``am.curve_fit`` (``f(x, *p)`` for a flat
        sequence or array p0, ``f(x, **p)`` for a dict, ``f(x, p)`` otherwise).
    xdata : array
        Shared by every member, or one per member when it has ``ydata``'s shape.
    ydata : array (B, ...)
        One row of observations per member (each row raveled to m points).
    p0 : optional
        One start for every member (a flat sequence of numbers, a 1-D array, a dict...), or
        one per member: every leaf with the batch axis first (a 2-D array (B, n) for the array
        form). By default ones, one per parameter of ``f`` after the first.
    sigma, absolute_sigma
        As in scipy, 1-D form: shape (m,) for all members or ``ydata``'s shape per member;
        residuals are divided by sigma.
    bounds : optional
        One box for every member (any ``am.least_squares`` form).
    mask : bool array, optional
        ``ydata``'s shape; False marks a point that does not exist. Members of different
        lengths are padded to a common m and masked: a masked point adds nothing to the
        residuals and does not count in the degrees of freedom of ``pcov`` (its ``ydata``
        may be NaN; its ``xdata`` must be a value where ``f`` is finite).
    ftol, xtol, gtol, max_nfev, backend, precision, error_handling, executor, chunk_size
        As for :func:`batched_least_squares`.
    vectorized : bool
        NumPy only: ``f`` computes k members in one call. Each parameter then arrives as a
        column, shape (k, 1, *leaf_shape), ``xdata`` and ``ydata`` with the member axis
        first, (k, ...); an elementwise model such as ``a * np.exp(-k * t) + c`` needs no
        change. n + 1 calls per step instead of k·(n + 1).

    Returns
    -------
    scipy.optimize.OptimizeResult
        ``x``: the fitted parameters, stacked in p0's structure; ``pcov`` (B, n, n), each
        member's covariance as scipy's ``curve_fit`` computes it (SVD pseudo-inverse of its
        weighted Jacobian, times cost/(m_b − n) unless ``absolute_sigma``; inf where
        m_b ≤ n); and every field of :func:`batched_least_squares`. Members that fail do not
        raise: see ``status``/``success``/``messages``.

    Examples
    --------
    >>> import numpy as np
    >>> import autominimize as am
    >>> t = np.linspace(0, 4, 30)
    >>> y = np.stack([a * np.exp(-k * t) + 0.5 for a, k in [(3.0, 0.7), (1.0, 2.0)]])
    >>> res = am.batched_curve_fit(lambda t, a, k, c: a * np.exp(-k * t) + c, t, y, p0=[1.0, 1.0, 0.0])
    >>> [np.round(v, 6).tolist() for v in res.x], res.pcov.shape
    ([[3.0, 1.0], [0.7, 2.0], [0.5, 0.5]], (2, 3, 3))
    """
    if not callable(f):
        raise TypeError(f"f must be callable; got {type(f).__name__}.")
    error_handling = check_error_handling(error_handling)
    y = _as_numpy(ydata, "ydata")
    if y.ndim < 2:
        raise ValueError(f"ydata has shape {y.shape}; it needs one row per member, shape (B, m) (B fits of m points).")
    count = y.shape[0]
    y = y.reshape(count, -1).astype(np.float64)
    m = y.shape[1]
    x = _as_numpy(xdata, "xdata")
    x_per_member = x.shape == np.shape(ydata)
    keep = None if mask is None else _as_numpy(mask, "mask")
    if keep is not None:
        if keep.shape != np.shape(ydata) or keep.dtype != bool:
            raise ValueError(f"mask must be a boolean array of ydata's shape {np.shape(ydata)}; got {keep.dtype} of shape {keep.shape}.")
        keep = keep.reshape(count, m)
        y = np.where(keep, y, 0.0)
    weights = None
    if sigma is not None:
        s = _as_numpy(sigma, "sigma").astype(np.float64)
        if s.shape == np.shape(ydata):
            weights = 1.0 / s.reshape(count, m)
        elif s.shape == (m,):
            weights = np.broadcast_to(1.0 / s, (count, m))
        else:
            raise ValueError(f"sigma has shape {s.shape}; expected ({m},) for every member or ydata's shape {np.shape(ydata)} per member.")
    valid = np.ones((count, m), bool) if keep is None else keep
    bad = ~np.isfinite(y) | (False if weights is None else ~np.isfinite(weights))
    bad_members = np.flatnonzero((bad & valid).any(axis=1))
    if bad_members.size:
        raise ValueError(
            f"ydata or sigma is NaN or inf at points of member(s) {bad_members[:10].tolist()}; mark points that do "
            "not exist with mask= (False)."
        )

    if p0 is None:
        import inspect

        parameters = [p for p in inspect.signature(f).parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(parameters) < 2:
            raise ValueError("p0 is not given and f's signature names no parameter after xdata; pass p0.")
        p0 = [1.0] * (len(parameters) - 1)
    stacked, spec, rows, member_p0 = _curve_starts(p0, count)

    member_data, shared_data, names = [y], [], ["y"]
    (member_data if x_per_member else shared_data).append(x)
    names_shared = ["x"] if not x_per_member else []
    if x_per_member:
        names.append("x")
    if weights is not None:
        member_data.append(np.ascontiguousarray(weights))
        names.append("w")
    if keep is not None:
        member_data.append(keep)
        names.append("mask")
    residual = _CurveResidual(f, _spread(member_p0), tuple(names + names_shared), bool(vectorized))
    template = spec.restore(rows[0]) if count else spec.unflatten(np.zeros(spec.size))
    probe_args = tuple(d[0] for d in member_data) + tuple(shared_data)
    backend = _select_backend(backend, spec, residual, "none", template, probe_args)
    problem, rows = _make_problem(residual, spec, "none", (), backend, precision, bounds, template, rows, error_handling, ftol, xtol, gtol, max_nfev, vectorized)
    out = _solve_all(problem, rows, tuple(member_data), tuple(shared_data), executor, _check_chunk_size(chunk_size))
    result = _result(out, problem, stacked, spec)
    result.pcov = _covariances(out["jac"], 2 * out["cost"], valid.sum(axis=1), absolute_sigma)
    return result


def _as_numpy(value: Any, name: str) -> np.ndarray:
    kind = leaf_kind(value)
    array = leaf_to_numpy(value) if kind in ("jax", "torch", "tf") else np.asarray(value)
    if array.dtype == object:
        raise TypeError(f"{name} must be an array; got {type(value).__name__}.")
    return array


def _curve_starts(p0: Any, count: int) -> tuple[ParamSpec, ParamSpec, np.ndarray, Any]:
    """The stacked starts from p0: one per member (batch axis first) or one for all."""
    leaves = tree_leaves(p0)
    if _spread(p0) == "array":
        per_member = np.ndim(leaf_to_numpy(p0)) == 2
    else:
        per_member = bool(leaves) and all(np.ndim(leaf_to_numpy(v)) >= 1 and np.shape(leaf_to_numpy(v))[0] == count for v in leaves)
    if per_member:
        stacked, spec, rows = _unstack(p0, "p0")
        return stacked, spec, rows, tree_map(lambda v: leaf_to_numpy(v)[0], p0) if _spread(p0) != "array" else leaf_to_numpy(p0)[0]
    spec = ParamSpec.from_tree(_finite_copy(p0), "p0")
    stacked = ParamSpec(spec.treedef, tuple(
        dataclasses.replace(leaf, shape=(count,) + leaf.shape, kind="numpy" if leaf.kind == "python" else leaf.kind) for leaf in spec.leaves
    ))
    rows = np.tile(spec.flatten(p0, "p0"), (count, 1))
    return stacked, spec, rows, p0


def _covariances(jac: np.ndarray, chi2: np.ndarray, points: np.ndarray, absolute_sigma: bool) -> np.ndarray:
    """scipy's curve_fit covariance per member: (JᵀJ)⁺ by SVD, times chi2/(m_b − n)."""
    _, m, n = jac.shape
    finite = np.isfinite(jac).all(axis=(1, 2))
    safe = np.where(finite[:, None, None], jac, 0.0)
    _, s, vt = np.linalg.svd(safe, full_matrices=False)
    kept = s > _EPS * max(m, n) * s[:, :1]
    inverse = np.where(kept, 1.0 / np.where(kept, s, 1.0) ** 2, 0.0)
    pcov = np.matmul(np.swapaxes(vt, 1, 2) * inverse[:, None, :], vt)
    if not absolute_sigma:
        dof = points - n
        factor = np.where(dof > 0, chi2 / np.where(dof > 0, dof, 1), np.inf)
        with np.errstate(invalid="ignore"):  # inf·0 for a member that failed at its start (NaN below)
            pcov = np.where((dof > 0)[:, None, None], pcov * factor[:, None, None], np.inf)
    return np.where(finite[:, None, None], pcov, np.nan)
