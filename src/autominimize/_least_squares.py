"""``am.least_squares``, and residual functions in ``am.minimize``.

A residual function returns any structure of arrays; its leaves are raveled and concatenated
into one residual vector r (m values). The least-squares solvers get r and its Jacobian J,
computed by the backend (forward mode when m >= n, reverse mode otherwise); the scalar
methods of ``am.minimize`` get ``f = 0.5 * r @ r`` (scipy's ``cost``), its gradient
``J.T @ r`` as one reverse pass, and Gauss-Newton products ``J.T @ J @ v``.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import numpy as np
import scipy.optimize as so

from . import numdiff
from ._residuals import Residuals
from .calling import check_keywords
from ._setup import compile_functions, prepare
from .backends.base import configure_numdiff
from .implicit import differentiable_call
from .drivers.scipy_least_squares import LEAST_SQUARES_METHODS, IterationReport, flat_x_scale, run_least_squares, scipy_least_squares_bounds
from .params import ParamSpec
from .problem import GaussNewtonFunctions, ResidualObjective, check_error_handling, numdiff_evaluator, sum_of_squares
from .validation import check_least_squares_method, check_loss, check_mappings, check_not_complex_step, check_settings, check_x_scale, is_one_of

__all__ = ["least_squares", "minimize_least_squares", "residual_scalar_functions"]

_SCIPY_SCHEMES = ("2-point", "3-point", "cs")


def least_squares(
    fun: Callable | None,
    x0: Any,
    jac: Callable | str | None = None,
    bounds: Any = None,
    method: str = "trf",
    ftol: float | None = 1e-8,
    xtol: float | None = 1e-8,
    gtol: float | None = 1e-8,
    x_scale: Any = None,
    loss: str | Callable = "linear",
    f_scale: float = 1.0,
    diff_step: Any = None,
    tr_solver: str | None = None,
    tr_options: dict | None = None,
    jac_sparsity: Any = None,
    max_nfev: int | None = None,
    verbose: int = 0,
    args: tuple = (),
    kwargs: dict | None = None,
    callback: Callable | None = None,
    *,
    fun_and_jac: Callable | None = None,
    backend: str | None = None,
    precision: str | None = None,
    unpack: str = "auto",
    workers: int | None = None,
    executor: Any = None,
    torch_device: Any = None,
    error_handling: str = "raise",
) -> so.OptimizeResult:
    """Nonlinear least squares with the residual Jacobian from the user's framework.

    ``scipy.optimize.least_squares`` with its arguments and meaning, where the residuals may
    be written in NumPy, JAX, PyTorch or TensorFlow, x0 may be any parameter structure and
    the residual output any structure of arrays. The Jacobian is computed by the backend:
    forward mode when there are at least as many residuals as parameters, reverse mode
    otherwise; finite differences (:mod:`autominimize.numdiff`) on the NumPy backend.

    Parameters
    ----------
    fun : callable
        ``fun(params, *args, **kwargs)`` returns the residuals (an array, a scalar, or any
        structure of them, raveled and concatenated). May be None when ``fun_and_jac`` is given.
    x0 : array, scalar, tensor or nested dict/list/tuple/namedtuple of those
        The starting point; ``res.x`` comes back in this structure and these array types.
    jac : callable, '2-point', '3-point', 'forward', 'backward', 'central' or None
        None (default): the backend's Jacobian. A callable takes the parameters like ``fun``
        and returns the ``(m, n)`` Jacobian, or x0's structure with ``(m, *leaf.shape)``
        leaves. A scheme: finite differences, bound-aware, with ``diff_step`` as the relative
        step and evaluated in parallel with ``workers`` / ``executor``.
    bounds : optional
        Any form ``am.minimize`` accepts; a 2-tuple of numbers or flat vectors is read as
        scipy's ``(lb, ub)``, as ``scipy.optimize.least_squares`` does. Not with 'lm'.
    method : {'trf', 'dogbox', 'lm'}
        scipy's methods.
    ftol, xtol, gtol, x_scale, loss, f_scale, diff_step, tr_solver, tr_options, max_nfev, verbose, args, kwargs, callback
        As in scipy (``x_scale`` may also mirror x0's structure; the callback receives an
        ``OptimizeResult`` or ``x`` with x in x0's structure).
    jac_sparsity : None, bool or (m, n) pattern, optional
        With the backend's Jacobian ('trf', 'dogbox'): a pattern (array or ``scipy.sparse``)
        or True (the pattern read from a JAX program, probed on PyTorch/TensorFlow) gives a
        sparse Jacobian from one compressed pass per colour, solved with ``tr_solver='lsmr'``;
        None (default) does so on JAX from 1000 parameters when at most 10% of J can be
        nonzero (``res.sparsity`` then says so); False keeps J dense. With
        ``jac='2-point'`` or ``'3-point'``: scipy's sparse finite differences.
    fun_and_jac : callable, optional
        Returns ``(residuals, jacobian)`` in one call (optimagic's argument).
    backend, precision, unpack, torch_device
        As in ``am.minimize``.
    error_handling : {'raise', 'continue'}
        'continue': residuals that raise or are not finite at a trial point count as
        ``+inf``, so ``trf`` and ``dogbox`` reject the step and shrink their trust region
        (MINPACK's 'lm' shortens its step too); ``res.nfail`` counts such points. x0 must
        evaluate.
    workers : int, optional
        Evaluate finite differences on this many local processes.
    executor : concurrent.futures.Executor, optional
        ... or on this executor (``ProcessPoolExecutor``, a dask Client's ``get_executor()``).

    Returns
    -------
    scipy.optimize.OptimizeResult
        scipy's fields, with ``x`` in x0's structure; ``fun`` the flat residual vector (m,);
        ``jac`` the ``(m, n)`` Jacobian at x over the flat residuals (rows, in the order of
        the output's leaves) and x0's flat parameters (columns, x0's leaves in x0's own order);
        ``grad`` the gradient of ``cost`` in x0's structure; ``nfev`` every residual
        evaluation (finite-difference ones included), ``njev`` Jacobians; ``backend``,
        ``precision``. A Ctrl-C ends the solve at the point of lowest ``cost`` evaluated:
        ``status=-1``, ``success=False``, the message says it was interrupted, and ``jac`` and
        ``grad`` are None unless the Jacobian there was computed already.

    Examples
    --------
    >>> import numpy as np
    >>> import autominimize as am
    >>> t = np.linspace(0, 1, 20)
    >>> y = 2.0 * np.exp(-1.5 * t)
    >>> def r(p):
    ...     return p["a"] * np.exp(-p["k"] * t) - y
    >>> res = am.least_squares(r, {"a": 1.0, "k": 1.0}, method="lm", backend="numpy")
    >>> round(res.x["a"], 6), round(res.x["k"], 6), res.jac.shape
    (2.0, 1.5, (20, 2))
    """
    if differentiable_call(args, fun):  # res.x differentiable with respect to args (or values fun captures)
        from .implicit.entry import least_squares as differentiable_least_squares  # loaded only when used

        return differentiable_least_squares(least_squares, locals())
    _validate_common(fun, fun_and_jac, workers, executor, kwargs=kwargs, tr_options=tr_options)
    loss = check_loss(loss)
    check_settings({"max_nfev": max_nfev}, {"ftol": ftol, "xtol": xtol, "gtol": gtol, "f_scale": f_scale})
    if callback is not None and not callable(callback) and not isinstance(callback, IterationReport):
        raise TypeError(f"callback must be callable; got {type(callback).__name__}.")
    check_least_squares_method(method, LEAST_SQUARES_METHODS, tr_solver, tr_options, verbose)
    if jac_sparsity is not None and jac not in ("2-point", "3-point", None):
        raise ValueError("jac_sparsity is for the backend's Jacobian (jac=None) or scipy's sparse finite differences (jac='2-point' or '3-point').")
    problem, spec, x0_flat, flat_bounds, backend_obj, dtype = _build_problem(
        fun,
        x0,
        jac=jac,
        fun_and_jac=fun_and_jac,
        args=args,
        kwargs=kwargs,
        bounds=bounds,
        backend=backend,
        precision=precision,
        unpack=unpack,
        diff_step=diff_step,
        workers=workers,
        executor=executor,
        torch_device=torch_device,
        error_handling=error_handling,
    )
    check_x_scale(flat_x_scale(x_scale, spec), diff_step, x0_flat.size)
    if method == "lm" and flat_bounds is not None and not (np.isinf(flat_bounds[0]).all() and np.isinf(flat_bounds[1]).all()):
        raise ValueError("method='lm' does not handle bounds; use method='trf' or 'dogbox'.")
    if method == "lm" and callback is not None and not isinstance(callback, IterationReport):
        raise ValueError("method='lm' does not call a callback (scipy would ignore it); use 'trf' or 'dogbox'.")
    options: dict[str, Any] = dict(
        method=method,
        ftol=ftol,
        xtol=xtol,
        gtol=gtol,
        loss=loss,
        f_scale=f_scale,
        tr_solver=tr_solver,
        tr_options=tr_options or {},
        max_nfev=max_nfev,
        verbose=verbose,
    )
    return run_least_squares(
        problem,
        spec,
        x0_flat,
        flat_bounds,
        backend_obj,
        dtype,
        jac=jac,
        jac_sparsity=jac_sparsity,
        diff_step=diff_step,
        x_scale=x_scale,
        callback=callback,
        options=options,
    )


def _validate_common(fun: Any, fun_and_jac: Any, workers: Any, executor: Any, **mappings: Any) -> None:
    check_mappings(**mappings)
    if fun is None and fun_and_jac is None:
        raise TypeError("give fun (the residual function) or fun_and_jac.")
    if fun is not None and not callable(fun):
        raise TypeError(f"fun must be callable; got {type(fun).__name__}.")
    if fun_and_jac is not None and not callable(fun_and_jac):
        raise TypeError(f"fun_and_jac must be a callable returning (residuals, jacobian); got {type(fun_and_jac).__name__}.")


def _build_problem(
    fun: Callable | None,
    x0: Any,
    *,
    jac: Any,
    fun_and_jac: Callable | None,
    args: tuple,
    kwargs: dict | None,
    bounds: Any,
    backend: str | None,
    precision: str | None,
    unpack: str,
    diff_step: Any,
    workers: Any,
    executor: Any,
    torch_device: Any = None,
    error_handling: str = "raise",
):
    """Normalize everything; return what a least-squares solve needs (evaluator still open)."""
    if not isinstance(args, tuple):
        args = (args,)
    if isinstance(fun, Residuals):
        if fun.jac is not None:
            if jac is not None and not isinstance(jac, str):
                raise ValueError("the residual function carries its Jacobian (residuals(jac=...)); do not also pass jac.")
            jac = fun.jac
        fun = fun.fun
    if kwargs:
        for name, function in (("fun", fun), ("fun_and_jac", fun_and_jac)):
            if function is not None:
                check_keywords(function, name, kwargs)
        fun = functools.partial(fun, **kwargs) if fun is not None else None
        fun_and_jac = functools.partial(fun_and_jac, **kwargs) if fun_and_jac is not None else None
    setup = prepare(fun if fun is not None else fun_and_jac, x0, args, unpack=unpack, precision=precision, device=torch_device)
    x0, spec, x0_flat, dtype, call = setup.x0, setup.spec, setup.x0_flat, setup.dtype, setup.call
    if fun is None:  # only fun_and_jac: its first output is the residuals
        call_residuals = lambda params: call(params)[0]  # noqa: E731
    else:
        call_residuals = call
    if jac is not None and not (callable(jac) or is_one_of(jac, (*_SCIPY_SCHEMES, *numdiff.METHODS))):
        raise ValueError(
            f"jac={jac!r} is not accepted; use None (autodiff), a callable returning the residual "
            f"Jacobian, or a difference scheme: {_SCIPY_SCHEMES[:2] + numdiff.METHODS}."
        )
    if fun_and_jac is not None and callable(jac):
        raise ValueError("give the residual Jacobian once: jac= or fun_and_jac=, not both.")
    user_given = callable(jac) or fun_and_jac is not None
    flat_bounds = setup.normalize_bounds(scipy_least_squares_bounds(bounds, spec.size))
    backend_name = setup.choose_backend(backend, from_leaves=user_given and backend is None, call=call_residuals)
    backend_obj = setup.backend_obj
    x0_flat = setup.clip_start(x0_flat, stacklevel=3)
    scheme = None
    if isinstance(jac, str):
        check_not_complex_step(jac, "jac", "jac=None (exact derivatives; finite differences on NumPy), '2-point' or '3-point'")
        scheme = numdiff.canonical_method(jac)
    numerical = scheme is not None or (backend_name == "numpy" and not user_given)
    evaluator = numdiff_evaluator(backend_name, numerical, workers, executor, check_error_handling(error_handling))

    compile_key = fun if fun is not None else fun_and_jac
    functions = setup.compile("vector", compile_key, call_residuals)
    functions = configure_numdiff(functions, flat_bounds, evaluator, setup.probe)
    problem = ResidualObjective(
        functions,
        spec,
        user_jacobian=setup.flat_call(jac) if callable(jac) else None,
        user_fun_and_jac=setup.flat_call(fun_and_jac) if fun_and_jac is not None else None,
        scheme=scheme,
        rel_step=diff_step,
        bounds=flat_bounds,
        evaluator=evaluator,
        error_handling=error_handling,
    )
    return problem, spec, x0_flat, flat_bounds, backend_obj, dtype


# -- am.minimize's side --------------------------------------------------------------
def minimize_least_squares(
    fun: Callable,
    x0: Any,
    args: tuple,
    method: str,
    *,
    jac: Any,
    fun_and_jac: Callable | None,
    bounds: Any,
    tol: float | None,
    callback: Callable | None,
    options: dict | None,
    backend: str | None,
    precision: str | None,
    unpack: str,
    torch_device: Any,
    workers: Any,
    executor: Any,
    error_handling: str = "raise",
) -> so.OptimizeResult:
    """``am.minimize(..., method='trf'|'dogbox'|'lm')``: a least-squares solve, reported like
    the scalar methods: ``fun`` is ``0.5 * r @ r`` and ``jac`` its gradient in x0's structure;
    ``residuals``, ``residual_jac``, ``cost``, ``optimality`` and ``active_mask`` are scipy's.
    """
    if isinstance(fun, Residuals) and fun.jac is not None:
        jac = None  # one call site for both kinds: the scalar gradient is for scalar methods
    kwargs = dict(options or {})
    allowed = set(inspect.signature(least_squares).parameters) - {
        "fun",
        "x0",
        "jac",
        "bounds",
        "method",
        "args",
        "callback",
        "fun_and_jac",
        "backend",
        "precision",
        "unpack",
        "torch_device",
        "workers",
        "executor",
        "error_handling",
    }
    unknown = set(kwargs) - allowed
    if unknown:
        raise ValueError(f"options: {sorted(unknown)} are not options of method={method!r}; accepted: {sorted(allowed)}.")
    if tol is not None:
        for name in ("ftol", "xtol", "gtol"):
            kwargs.setdefault(name, tol)
    res = least_squares(
        fun,
        x0,
        jac=jac,
        bounds=bounds,
        method=method,
        args=args,
        callback=callback,
        fun_and_jac=fun_and_jac,
        backend=backend,
        precision=precision,
        unpack=unpack,
        torch_device=torch_device,
        workers=workers,
        executor=executor,
        error_handling=error_handling,
        **kwargs,
    )
    res.residuals, res.residual_jac = res.fun, res.jac
    res.fun, res.jac = float(res.cost), res.grad
    del res["grad"]
    return res


def residual_scalar_functions(
    backend_obj: Any,
    fun: Residuals,
    call: Callable,
    spec: ParamSpec,
    dtype: str,
    unpack: str,
    args: tuple,
    torch_device: Any,
    framework_flat: Callable[[Callable], Callable],
    *,
    fun_and_jac: Callable | None = None,
    bounds: Any = None,
    evaluator: numdiff.Evaluator | None = None,
) -> GaussNewtonFunctions:
    """What ``am.minimize``'s scalar methods see for a residual function (see
    :class:`GaussNewtonFunctions`); compiled once per function like any objective."""
    vector = configure_numdiff(compile_functions(backend_obj, "vector", fun, call, spec, dtype, unpack, args, torch_device), bounds, evaluator)
    user_jacobian = framework_flat(fun.jac) if fun.jac is not None else None
    user_fun_and_jac = framework_flat(fun_and_jac) if fun_and_jac is not None else None
    residual_objective = ResidualObjective(
        vector, spec, user_jacobian=user_jacobian, user_fun_and_jac=user_fun_and_jac, bounds=bounds, evaluator=evaluator
    )
    scalar = None
    if user_jacobian is None and user_fun_and_jac is None:
        scalar = compile_functions(
            backend_obj, "sum-of-squares", fun, lambda params: sum_of_squares(call(params)), spec, dtype, unpack, args, torch_device
        )
        scalar = configure_numdiff(scalar, bounds, evaluator)
    return GaussNewtonFunctions(scalar, residual_objective)
