"""``batch=True``: the problems stacked along the first axis of x0's leaves, solved in one batched L-BFGS."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Callable

import numpy as np
import scipy.optimize as so

from ..._setup import cached, compile_key, prepare
from ...native import native_method_name
from ...native._arrays import namespace
from ...native.batched import REASONS, BatchedLBFGS, batched_value_and_grad
from ...params import ParamSpec
from .arrays import like, to_framework, to_host

__all__ = ["minimize_batched", "unstack"]

_BATCH_OPTIONS = ("memory", "c1", "c2", "max_line_search", "curvature_eps", "line_search", "gtol", "ftol", "maxiter", "maxfev", "max_time")


def minimize_batched(
    fun: Callable,
    x0: Any,
    args: tuple = (),
    method: str = "lbfgs-native",
    *,
    bounds: Any = None,
    tol: float | None = None,
    options: dict | None = None,
    backend: str | None = None,
    precision: str | None = None,
    unpack: str = "auto",
    torch_device: Any = None,
    **unsupported: Any,
) -> so.OptimizeResult:
    """Solve the B problems stacked along the first axis of x0's leaves in one batched L-BFGS.

    ``fun`` is written for one problem; JAX maps it with ``jax.vmap``, torch with
    ``torch.func.vmap`` (:mod:`autominimize.native.batched`). Each member stops on its own.
    The result's ``x`` and ``jac`` are stacked like x0; ``fun``, ``nit``, ``nfev``, ``njev``,
    ``success`` and ``status`` are NumPy arrays of shape (B,); ``messages`` says why each
    member stopped and ``message`` sums them up.
    """
    options = _batch_options(method, options, tol, unsupported)
    stacked, spec, rows = unstack(x0)
    setup = prepare(fun, spec.restore(rows[0]), args, unpack=unpack, precision=precision, device=torch_device, precision_from_x0=False)
    dtype, unpack, call, args = setup.dtype, setup.unpack, setup.call, setup.args
    backend = setup.choose_backend(backend)
    if backend not in ("jax", "torch"):
        raise ValueError(f"batch=True needs JAX or torch to map fun over the batch (vmap); the backend is {backend!r}.")
    key = compile_key(backend, "native-batched", spec, dtype, unpack, args, torch_device)
    value_and_grad = cached(fun, key, args, lambda: batched_value_and_grad(backend, call, spec))
    with setup.backend_obj.solve_context(dtype):
        flat_bounds = setup.normalize_bounds(bounds) if bounds is not None else None
        if flat_bounds is not None:
            rows = _clip_rows(rows, flat_bounds)
        x = to_framework(backend, rows, dtype, spec, torch_device)
        if flat_bounds is not None:
            xp = namespace(x)
            options.update(lower=xp.asarray(like(x, flat_bounds[0])), upper=xp.asarray(like(x, flat_bounds[1])))
        try:
            state = BatchedLBFGS(**options).run(x, value_and_grad)
        except BaseException as exc:
            latest = exc.__dict__.pop("autominimize_rows", None)  # None: stopped before the first values
            exc.autominimize_best_x = _restack(stacked, spec, rows if latest is None else latest.x)
            exc.autominimize_best_f = np.full(rows.shape[0], np.nan) if latest is None else latest.f
            if not isinstance(exc, Exception):
                raise
            exc.add_note(
                f"(raised while mapping fun over the batch with {'jax.vmap' if backend == 'jax' else 'torch.func.vmap'}: "
                "batch=True needs fun free of .item() and of Python branches on values)"
            )
            raise
        return _batched_result(state, stacked, spec, backend, dtype)


def _batch_options(method: str, options: dict | None, tol: float | None, unsupported: dict) -> dict:
    """The batched L-BFGS's options, ``tol`` included; an error for what batch=True does not take."""
    if native_method_name(method) != "lbfgs-native":
        raise ValueError(f"batch=True runs method='lbfgs-native' only; got method={method!r}.")
    given = sorted(k for k, v in unsupported.items() if v is not None)
    if given:
        raise ValueError(f"batch=True does not take {', '.join(given)}; it takes bounds, tol, options, backend, precision, unpack and torch_device.")
    options = dict(options or {})
    unknown = sorted(set(options) - set(_BATCH_OPTIONS))
    if unknown:
        raise TypeError(f"batch=True has no option {', '.join(map(repr, unknown))}; its options are {', '.join(_BATCH_OPTIONS)}.")
    if options.get("line_search", "armijo") not in ("armijo", "wolfe"):
        raise ValueError("batch=True takes line_search='armijo' (default: each member is the unbatched Armijo solve) or 'wolfe' (strong Wolfe).")
    if tol is not None:
        options.setdefault("gtol", tol)
        options.setdefault("ftol", tol)
    return options


def _clip_rows(rows: np.ndarray, bounds: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The starting points clipped into the bounds, with one warning counting those that moved."""
    clipped = np.clip(rows, bounds[0], bounds[1])
    moved = int(np.count_nonzero(np.any(clipped != rows, axis=1)))
    if moved:
        # stacklevel: the caller of am.minimize, through minimize_recorded, minimize_native and minimize_batched
        warnings.warn(
            f"{moved} of the {rows.shape[0]} starting points are outside the bounds; they were clipped into them.", UserWarning, stacklevel=6
        )
    return clipped


def _batched_result(state: Any, stacked: ParamSpec, member: ParamSpec, backend: str, dtype: str) -> so.OptimizeResult:
    reasons = to_host(state.reason).astype(int)
    nfev = to_host(state.nfev).astype(int)
    return so.OptimizeResult(
        x=_restack(stacked, member, to_host(state.x)),
        fun=to_host(state.f),
        jac=_restack(stacked, member, to_host(state.g)),
        nit=to_host(state.nit).astype(int),
        nfev=nfev,
        njev=nfev.copy(),
        nhev=0,
        nhvp=0,
        success=np.array([REASONS[r][1] for r in reasons], dtype=bool),
        status=np.array([REASONS[r][2] for r in reasons], dtype=int),
        message=_batch_message(reasons),
        messages=[REASONS[r][0] for r in reasons],
        backend=backend,
        precision=dtype,
    )


def unstack(x0: Any) -> tuple[ParamSpec, ParamSpec, np.ndarray]:
    """x0's stacked structure, the structure of one member, and the (B, n) float64 rows."""
    stacked = ParamSpec.from_tree(x0)
    sizes = {leaf.shape[0] if leaf.shape else None for leaf in stacked.leaves}
    if None in sizes or len(sizes) != 1:
        raise ValueError(
            "batch=True stacks the problems along the first axis of every leaf of x0; the leaves' "
            f"shapes are {[leaf.shape for leaf in stacked.leaves]} (numbers have no batch axis)."
        )
    batch = sizes.pop()
    member = ParamSpec(stacked.treedef, tuple(dataclasses.replace(leaf, shape=leaf.shape[1:]) for leaf in stacked.leaves))
    parts = stacked.split(stacked.flatten(x0))
    return stacked, member, np.concatenate([part.reshape(batch, -1) for part in parts], axis=1)


def _restack(stacked: ParamSpec, member: ParamSpec, rows: np.ndarray) -> Any:
    """(B, n) rows back in x0's stacked structure and array types."""
    parts = [rows[:, start:stop].reshape(-1) for start, stop in zip(member.offsets, member.offsets[1:])]
    return stacked.restore(np.concatenate(parts))


def _batch_message(reasons: np.ndarray) -> str:
    counts = np.bincount(reasons, minlength=len(REASONS) + 1)
    parts = [f"{counts[code]} {REASONS[code][0]}" for code in REASONS if counts[code]]
    return f"{reasons.size} problems: " + ", ".join(parts)
