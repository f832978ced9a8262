"""``am.batched_least_squares`` and ``am.batched_curve_fit``: many small fits in one solve.

B independent problems share one residual function and differ in their data and/or start.
They are solved together by the vectorised Levenberg–Marquardt of
:mod:`autominimize.native.batched_lm`: JAX and torch map the residual function and its
forward-mode Jacobian over the members (``jax.vmap`` of ``jax.jacfwd``; on torch,
``torch.func.jvp`` of the member-mapped function along each parameter); NumPy calls it
member by member, with forward differences. ``executor=`` splits the batch into chunks
solved on workers.

Each entry point is a short sequence of steps: the set-up (:mod:`._batched_setup`, and
:mod:`._batched_curve` for curve fits), the driver (:mod:`.drivers.batched_fit`) and the
result (:mod:`._batched_result`).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import scipy.optimize as so

from ._batched_curve import CurveResidual, curve_data, curve_starts, default_p0, spread
from ._batched_result import CurveCovariances, batched_result, best_attached
from ._batched_setup import check_chunk_size, check_member_call, make_problem, member_arrays, select_backend, unstack
from .calling import resolve_unpack
from .drivers.batched_fit import solve_batch
from .native.batched_lm import BatchedLM
from .problem import check_error_handling
from .validation import check_model, check_switch

__all__ = ["batched_least_squares", "batched_curve_fit"]


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
    keep_residuals: bool = True,
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
        Members per chunk. Without an executor, by default one piece; chunks run one after
        the other (less memory). With an executor, by default as many members as keep a
        chunk's residuals and Jacobian within 20 MB (8·m·(n + 1) bytes a member, m taken as
        the values of a member's ``member_args``: 12 500 members of 50 points and 3
        parameters), but no more than give two chunks per worker thread.
    vectorized : bool
        NumPy only: ``fun`` computes k members in one call. Every parameter leaf then has
        the member axis first, (k, *leaf_shape), as has every ``member_args`` array, and
        ``fun`` returns residuals with k rows. n + 1 calls per step instead of k·(n + 1).
    keep_residuals : bool
        True (default): the result holds every member's residuals ``fun`` and Jacobian
        ``jac`` at its solution. False leaves both out: they are B·m·(n + 1) numbers
        (1.6 GB for 10⁶ fits of 50 points and 3 parameters), and with an executor they then
        stay on the workers instead of travelling back to the client.

    Returns
    -------
    scipy.optimize.OptimizeResult
        ``x`` stacked in x0's structure; NumPy arrays with one row per member: ``cost`` (B,),
        ``fun`` (B, m) residuals and ``jac`` (B, m, n) (unless ``keep_residuals=False``),
        ``grad`` (B, n), ``optimality`` (B,)
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
    if not callable(fun):
        raise TypeError(f"fun must be callable; got {type(fun).__name__}.")
    error_handling = check_error_handling(error_handling)
    args = args if isinstance(args, tuple) else (args,)
    stacked, spec, rows = unstack(x0, "x0")
    member_data = member_arrays(member_args, rows.shape[0], "member_args")
    template = spec.restore(rows[0]) if rows.shape[0] else spec.unflatten(np.zeros(spec.size))
    unpack = resolve_unpack(fun, template, unpack, len(member_args) + len(args))
    check_member_call(fun, unpack, template, member_data, args)
    backend = select_backend(backend, spec, fun, unpack, template, None if vectorized else tuple(d[0] for d in member_data) + args)
    problem, rows = make_problem(
        fun,
        spec,
        rows,
        template,
        unpack=unpack,
        args=args,
        backend=backend,
        precision=precision,
        bounds=bounds,
        algo=BatchedLM(ftol=ftol, xtol=xtol, gtol=gtol, max_nfev=max_nfev),
        error_handling=error_handling,
        vectorized=vectorized,
    )
    with best_attached(stacked, spec):
        out = solve_batch(
            problem,
            rows,
            member_data,
            (),
            executor,
            check_chunk_size(chunk_size),
            keep_residuals=check_switch(keep_residuals, "keep_residuals"),
            points=sum(d.size for d in member_data) // max(rows.shape[0], 1),
        )
    return batched_result(out, problem, stacked, spec)


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
    keep_residuals: bool = True,
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
    ftol, xtol, gtol, max_nfev, backend, precision, error_handling, executor, keep_residuals
        As for :func:`batched_least_squares`.
    chunk_size : int, optional
        As for :func:`batched_least_squares`, m being a member's number of points: with an
        executor, by default as many members as keep a chunk's residuals and Jacobian within
        20 MB (12 500 fits of 50 points and 3 parameters), no more than give two chunks per
        worker thread.
    vectorized : bool
        NumPy only: ``f`` computes k members in one call. Each parameter then arrives as a
        column, shape (k, 1, *leaf_shape), ``xdata`` and ``ydata`` with the member axis
        first, (k, ...); an elementwise model such as ``a * np.exp(-k * t) + c`` needs no
        change. n + 1 calls per step instead of k·(n + 1).

    Returns
    -------
    scipy.optimize.OptimizeResult
        ``x``: the fitted parameters, stacked in p0's structure; ``pcov`` (B, n, n), each
        member's covariance as scipy's ``curve_fit`` computes it (pseudo-inverse of JᵀJ, J
        its weighted Jacobian, with scipy's SVD threshold; from the QR decomposition of J
        when every singular value is kept, equal to rounding; times cost/(m_b − n) unless
        ``absolute_sigma``; inf where m_b ≤ n); and every field of :func:`batched_least_squares`. Members that fail do not
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
    data = curve_data(xdata, ydata, sigma, mask)
    stacked, spec, rows, member_p0 = curve_starts(default_p0(f) if p0 is None else p0, data.count)
    check_model(f, spread(member_p0), member_p0)
    residual = CurveResidual(f, spread(member_p0), data.names, bool(vectorized))
    template = spec.restore(rows[0]) if data.count else spec.unflatten(np.zeros(spec.size))
    probe_args = tuple(d[0] for d in data.member) + data.shared
    backend = select_backend(backend, spec, residual, "none", template, probe_args)
    problem, rows = make_problem(
        residual,
        spec,
        rows,
        template,
        unpack="none",
        args=(),
        backend=backend,
        precision=precision,
        bounds=bounds,
        algo=BatchedLM(ftol=ftol, xtol=xtol, gtol=gtol, max_nfev=max_nfev),
        error_handling=error_handling,
        vectorized=vectorized,
    )
    finish = CurveCovariances(check_switch(absolute_sigma, "absolute_sigma"), data.names.index("mask") if "mask" in data.names else None)
    with best_attached(stacked, spec):
        out = solve_batch(
            problem,
            rows,
            data.member,
            data.shared,
            executor,
            check_chunk_size(chunk_size),
            finish,
            check_switch(keep_residuals, "keep_residuals"),
            points=data.member[0].shape[1],
        )
    result = batched_result(out, problem, stacked, spec)
    result.pcov = out["pcov"]
    return result
