"""``am.minimize``: scipy.optimize.minimize with exact derivatives from the user's framework."""

from __future__ import annotations

import os
import warnings
import weakref
from dataclasses import replace
from typing import Any, Callable

import numpy as np
import scipy.optimize as so

from . import backends as _backends
from ._least_squares import LEAST_SQUARES_METHODS, configure_numdiff, is_residual_function, numdiff_evaluator, residual_scalar_functions
from ._setup import PRECISIONS, prepare
from .constraints import normalize_constraints
from .drivers.methods import CUSTOM_METHOD, METHODS, check_supports, method_name, second_order_for
from .drivers.scipy_local import run_minimize, wrap_callback
from .native import is_native_method
from .params import ParamSpec
from .problem import Objective, check_error_handling
from .interrupts import attach_best, in_nested_solve
from .recording import recorders
from .user_derivatives import flatten_gradient, flatten_hessian

__all__ = ["minimize", "PRECISIONS", "HVP_TYPES"]

#: autograd-minimize's HVP variants; all compute the same exact product.
HVP_TYPES = (None, "forward_over_back", "back_over_forward", "tf_gradients_forward_over_back", "back_over_back", "hvp", "vhp")
_FD_SCHEMES = ("2-point", "3-point", "cs")


class PrecisionFallbackWarning(UserWarning):
    """The objective could not run in float64 and was computed in float32."""


def _is_dtype_mismatch(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "double" in text or "dtype" in text or "float64" in text


#: functions already warned about, so a fallback is told once per function
_fallback_warned: "weakref.WeakSet[Any]" = weakref.WeakSet()


def _warn_precision_fallback(fun: Callable, exc: BaseException) -> None:
    """One PrecisionFallbackWarning per function, quoting the line of the error that names
    the dtypes (TensorFlow's messages start with traceback fragments such as "in user code:")."""
    target = getattr(fun, "__func__", fun)
    try:
        if target in _fallback_warned:
            return
        _fallback_warned.add(target)
    except TypeError:  # not weakly referable: warn each time
        pass
    lines = [line.strip() for line in str(exc).splitlines() if line.strip() and not line.strip().endswith(":")]
    quoted = next((line for line in lines if _is_dtype_mismatch(Exception(line))), lines[0] if lines else type(exc).__name__)
    warnings.warn(
        f"the objective failed in float64 ({quoted}); it embeds float32 constants, so it is computed in "
        "float32. Pass precision='float32' to choose this explicitly (or give x0 as float32 tensors).",
        PrecisionFallbackWarning,
        stacklevel=3,
    )


def minimize(
    fun: Callable,
    x0: Any,
    args: tuple = (),
    method: str | Callable | None = None,
    jac: Callable | bool | str | None = None,
    hess: Callable | bool | str | so.HessianUpdateStrategy | None = None,
    hessp: Callable | bool | None = None,
    bounds: Any = None,
    constraints: Any = (),
    tol: float | None = None,
    callback: Callable | None = None,
    options: dict | None = None,
    *,
    backend: str | None = None,
    precision: str | None = None,
    unpack: str = "auto",
    hvp_type: str | None = None,
    torch_device: Any = None,
    data: Any = None,
    epochs: int | None = None,
    batch: bool = False,
    history: bool = True,
    log: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    progress: bool = False,
    step_callback: Callable | None = None,
    loss_callback: Callable | None = None,
    observers: tuple | list = (),
    fun_and_jac: Callable | None = None,
    workers: int | None = None,
    executor: Any = None,
    error_handling: str = "raise",
) -> so.OptimizeResult:
    """Minimize ``fun`` over a parameter structure with exact derivatives.

    Parameters
    ----------
    fun : callable
        The objective, written with NumPy, JAX, PyTorch or TensorFlow, returning a scalar.
        It receives the parameters in x0's structure (see ``unpack``), then ``*args``.
    x0 : array, scalar, tensor or nested dict/list/tuple/namedtuple of those
        The starting point; ``res.x`` comes back in the same structure and array types.
    args : tuple
        Extra positional arguments for ``fun`` (and constraint functions without their own).
    method : str or callable, optional
        Any ``scipy.optimize.minimize`` method; None picks BFGS, L-BFGS-B or SLSQP as scipy does.
    jac : callable, True, '2-point', '3-point', 'cs' or None
        None (default): the framework's gradient. A callable takes the parameters like ``fun``
        and returns the gradient in x0's structure (or flat). True: ``fun`` returns
        ``(value, gradient)``. A difference scheme: scipy's finite differences.
    hess, hessp : callable, True or None
        User Hessian (an ``(n, n)`` array) or Hessian-vector product ``hessp(params, p)``;
        True asks for the framework's (e.g. ``hessp=True`` gives trust-constr HVPs instead of
        full Hessians). For trust-constr, ``hess`` may also be a ``HessianUpdateStrategy``.
    bounds : optional
        One ``(low, high)`` pair, a structure mirroring x0, per-element pairs, arrays
        broadcasting to each leaf, or ``scipy.optimize.Bounds`` (see the user guide).
        A starting point outside the bounds is clipped into them with a warning.
    constraints : dict, list of dicts, LinearConstraint or NonlinearConstraint
        Constraint functions take the parameter structure and may be written in the framework.
    tol, callback, options
        As in scipy. The callback receives x in x0's structure; returning True stops.
    backend : {'numpy', 'jax', 'torch', 'tensorflow', 'tf'}, optional
        Detected from x0's leaves, then from what ``fun`` returns, when not given.
    precision : {'float64', 'float32'}, optional
        The dtype the framework computes in (float64 by default); scipy always sees float64.
    unpack : {'auto', 'none', 'args', 'kwargs'}
        How ``fun`` receives x0: whole (``fun(params)``), or spread as ``fun(*x0)`` /
        ``fun(**x0)``; 'auto' follows the rule in the user guide.
    hvp_type, torch_device
        autograd-minimize's arguments: every ``hvp_type`` gives the same exact product;
        ``torch_device`` is where torch evaluates when x0 holds no tensors.
    data, epochs, batch
        Native methods only (``method='lbfgs-native'``, ``'cg-native'``, ``'hessian-free'``,
        ``'sgd'``, ``'delta-bar-delta'``, ``'sgd-qn'``, ``'tonga'``; see ``docs/native.md``):
        ``data`` is an iterable of mini-batches for the stochastic methods, which then call
        ``fun(params, batch)``; ``epochs`` the number of passes over it (default 1).
        ``batch=True`` solves independent problems stacked along the leading axis of x0's
        leaves at once (``'lbfgs-native'`` on JAX or torch; see ``docs/native.md``).
    history : bool
        Keep every evaluation and iteration in ``res.history`` (default); False records nothing
        but what ``log`` writes.
    log : path or SQLiteLog, optional
        An SQLite file that receives the run's evaluations and iterations as they happen
        (see ``docs/observing.md`` for the schema; read it back with ``am.read_log``).
        ``am.SQLiteLog(path, iterates=True)`` keeps every iterate's x too.
    resume : path, optional
        Start from the best point of the last run logged in this file (x0 gives the structure).
    progress : bool
        Show a tqdm progress bar (iteration, f, |g|, evaluations per second).
    step_callback, loss_callback
        TF1's callbacks: ``step_callback(x)`` after each iteration (x in x0's structure),
        ``loss_callback(f)`` after each evaluation of the objective.
    observers : sequence
        Objects with ``evaluation(kind, x, f, grad, count)`` and
        ``iteration(nit, x, f, grad, counts)`` methods (flat vectors), told of every
        evaluation and iteration (``evaluation = None``: of iterations only); ``am.iterate``
        follows scipy's methods this way.
    fun_and_jac : callable, optional
        Returns ``(value, gradient)`` in one call (optimagic's argument; for a residual
        function ``(residuals, jacobian)``). ``fun``, when also given, is used where only a
        value is needed.
    workers, executor
        Evaluate the NumPy backend's finite differences on ``workers`` local processes or on
        a ``concurrent.futures.Executor`` (a dask Client's ``get_executor()`` included).
    error_handling : {'raise', 'continue'}
        What a failing evaluation does. 'raise' (default): an exception from ``fun``, a
        derivative or a constraint propagates with the point in ``exc.autominimize_x`` and
        the best point so far in ``exc.autominimize_best_x``. 'continue': a point where
        ``fun`` (or its fused value and gradient, finite differences included) raises or is
        not finite counts as ``+inf`` with zero derivatives, so line searches shorten the step
        and trust regions shrink; it is recorded as a ``'failed'`` evaluation and the solve
        goes on. x0 itself must evaluate to a finite value (see ``docs/guide.md``).

    Notes
    -----
    A function marked with ``am.residuals`` returns residuals: the scalar methods minimize
    ``0.5 * sum(r**2)`` with gradient ``J.T @ r`` (one reverse pass) and Gauss-Newton Hessian
    products ``J.T @ J @ v``; ``method='trf'``, ``'dogbox'`` or ``'lm'`` runs
    ``am.least_squares`` (see ``docs/least-squares.md``).

    A KeyboardInterrupt (Ctrl-C) ends the solve cleanly: the log is flushed and the result
    holds the best point found, with ``success=False`` and a message saying so.

    Returns
    -------
    scipy.optimize.OptimizeResult
        scipy's fields with ``x`` and ``jac`` in x0's structure, honest ``nfev``, ``njev``,
        ``nhev`` and ``nhvp`` counts, and ``backend`` and ``precision``.

    Examples
    --------
    >>> import numpy as np
    >>> import autominimize as am
    >>> def rosen(p):
    ...     x = p["x"]
    ...     return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()
    >>> res = am.minimize(rosen, {"x": np.zeros(5)}, method="L-BFGS-B", backend="numpy")
    >>> bool(np.allclose(res.x["x"], 1, atol=1e-3))
    True
    """
    from .implicit import differentiable_framework

    if differentiable_framework(args) is not None:  # res.x differentiable with respect to args
        from .implicit.entry import minimize as differentiable_minimize

        return differentiable_minimize(minimize, locals())
    check_error_handling(error_handling)
    _check_plain_arguments(tol, options, {"callback": callback, "step_callback": step_callback, "loss_callback": loss_callback})
    recording_options = dict(
        history=history, log=log, resume=resume, progress=progress, callback=callback, step_callback=step_callback,
        loss_callback=loss_callback, observers=observers,
    )
    if isinstance(method, str) and is_native_method(method):
        # the native and least-squares families load on first use: importing them costs a plain
        # NumPy solve in a fresh interpreter about 60 ms, a seventh of what it costs in all
        from ._minimize_families import Recording, minimize_native_recorded

        if error_handling != "raise":
            raise ValueError(f"error_handling={error_handling!r} is for scipy's methods; method={method!r} (native) always raises.")
        if hess is not None or hessp is not None or constraints:
            raise ValueError(f"method={method!r} computes its own curvature and takes no constraints; hess, hessp and constraints are for scipy's methods.")
        _refuse_unused({"fun_and_jac": fun_and_jac, "workers": workers, "executor": executor}, method)
        return minimize_native_recorded(
            fun, x0, args, method, Recording(**recording_options), jac=jac, bounds=bounds, tol=tol, options=options,
            backend=backend, precision=precision, unpack=unpack, torch_device=torch_device,
            data=data, epochs=epochs, batch=batch,
        )
    if data is not None or epochs is not None or batch:
        raise ValueError(
            "data=, epochs= and batch= are for the native methods ('lbfgs-native', 'cg-native', "
            f"'hessian-free', 'sgd', 'delta-bar-delta', 'sgd-qn', 'tonga'); method={method!r} is scipy's."
        )
    if isinstance(method, str) and method.lower() in LEAST_SQUARES_METHODS:
        if hess is not None or hessp is not None or constraints:
            raise ValueError(f"method={method!r} is a least-squares method: it takes no hess, hessp or constraints.")
        from ._minimize_families import Recording, minimize_least_squares_recorded

        return minimize_least_squares_recorded(
            fun, x0, args, method.lower(), Recording(**recording_options), jac=jac, fun_and_jac=fun_and_jac, bounds=bounds, tol=tol,
            options=options, backend=backend, precision=precision, unpack=unpack,
            torch_device=torch_device, workers=workers, executor=executor, error_handling=error_handling,
        )
    residual = is_residual_function(fun)
    value_fun = None
    if fun_and_jac is not None and not residual:
        if jac is not None:
            raise ValueError("give the gradient once: jac= or fun_and_jac=, not both.")
        value_fun, fun, jac = fun, fun_and_jac, True
    if not callable(fun):
        raise TypeError(f"fun must be callable; got {type(fun).__name__}.")
    if hvp_type not in HVP_TYPES:
        raise ValueError(f"hvp_type={hvp_type!r} is not one of {HVP_TYPES}.")
    setup = prepare(fun, x0, args, unpack=unpack, precision=precision, device=torch_device)
    x0, spec, x0_flat, args, unpack, call = setup.x0, setup.spec, setup.x0_flat, setup.args, setup.unpack, setup.call
    dtype, precision_explicit, caller = setup.dtype, setup.precision_explicit, setup.caller
    flat_bounds = setup.normalize_bounds(bounds)
    constraint_items = [] if constraints is None else constraints
    has_constraints = bool(constraint_items) if not isinstance(constraint_items, (dict, so.LinearConstraint, so.NonlinearConstraint)) else True
    if callable(method):
        name, info = getattr(method, "__name__", "custom"), CUSTOM_METHOD
    else:
        name = method_name(method, flat_bounds is not None, has_constraints)
        info = METHODS[name]
        check_supports(name, info, flat_bounds is not None, has_constraints)
    second_order = second_order_for(name, info, hess, hessp)
    gradient_scheme = None
    if jac is False or isinstance(jac, str):
        if jac not in (False,) + _FD_SCHEMES:
            raise ValueError(f"jac={jac!r} is not accepted; use None (autodiff), a callable, True, or one of {_FD_SCHEMES}.")
        gradient_scheme = "2-point" if jac is False else jac
        if info.gradient is not None:
            info = replace(info, gradient="scipy")

    backend_name = setup.choose_backend(backend, from_leaves=jac is True or residual and (fun.jac is not None or fun_and_jac is not None))
    backend_obj = setup.backend_obj
    evaluator = numdiff_evaluator(backend_name, backend_name == "numpy" and jac is None, workers, executor, error_handling)

    flat_call = setup.flat_call

    def compile_scalar(precision_name: str):
        if jac is True:
            from .backends.numpy_backend import UserValueAndGrad

            user = flat_call(fun)

            def call_flat(x):
                f, g = user(x)
                return f, flatten_gradient(g, spec, "jac")

            return UserValueAndGrad(call_flat, spec, flat_call(value_fun) if value_fun is not None else None)
        if residual:
            return residual_scalar_functions(
                backend_obj, fun, call, spec, precision_name, unpack, args, torch_device, flat_call,
                fun_and_jac=fun_and_jac, bounds=flat_bounds, evaluator=evaluator,
            )
        compiled = setup.compile("scalar", fun, call, dtype=precision_name)
        return configure_numdiff(compiled, flat_bounds, evaluator)

    if resume is not None:
        from .log import resume_point

        x0_flat = resume_point(resume, spec)
    derivatives = _user_derivatives(
        spec, jac, hess, hessp, flat_call, lambda v: _backends.framework_params(backend_name, spec, v), args
    )
    x0_flat = setup.clip_start(x0_flat, stacklevel=2)

    watchers, sinks = recorders(history, log, progress, loss_callback, name, options)
    watchers.extend(observers)
    sinks.start(
        spec, x0_flat, method=name, backend=backend_name, precision=dtype, tol=tol, options=options,
        has_bounds=bounds is not None, has_constraints=has_constraints,
    )

    def new_objective(precision_name: str) -> Objective:
        return Objective(
            compile_scalar(precision_name), spec, differentiable=info.gradient not in (None, "scipy"),
            second_order=second_order, journal=sinks.journal, observers=watchers, error_handling=error_handling,
            **derivatives,
        )

    objective = None
    try:
        with backend_obj.solve_context(dtype), evaluator:
            objective = new_objective(dtype)
            try:
                _first_evaluation(objective, info, x0_flat)
            except Exception as exc:
                if precision_explicit or dtype == "float32" or backend_name not in ("torch", "tensorflow") or not _is_dtype_mismatch(exc):
                    raise
                _warn_precision_fallback(fun, exc)
                dtype = "float32"
                objective = new_objective(dtype)
                _first_evaluation(objective, info, x0_flat)
                if sinks.log is not None:
                    sinks.log.set_precision(dtype)
            scipy_constraints, constraint_functions = normalize_constraints(
                constraint_items,
                name,
                spec,
                lambda c, extra: setup.compile("vector", c, extra=extra or args, dtype=dtype),
                lambda f, extra: flat_call(f, extra or args),
                error_handling,
            )
            result = run_minimize(
                objective,
                x0_flat,
                method if callable(method) else name,
                info,
                second_order=second_order,
                gradient_scheme=gradient_scheme,
                bounds=flat_bounds,
                constraints=scipy_constraints,
                tol=tol,
                callback=wrap_callback(callback, spec, info, name, objective, step_callback),
                options=options,
            )
    except KeyboardInterrupt as exc:
        if objective is None:
            sinks.close(status=-1, success=False, message="Interrupted before the first evaluation.", objective=None)
            raise
        if in_nested_solve():  # the outer run ends too
            if objective.best_x is not None:
                attach_best(exc, spec.restore(objective.best_x), objective.best_f)
            sinks.close(status=-1, success=False, message="Interrupted by KeyboardInterrupt (Ctrl-C).", objective=objective)
            raise
        constraint_functions = []
        result = so.OptimizeResult(
            x=objective.best_x if objective.best_x is not None else x0_flat, fun=objective.best_f,
            success=False, status=-1, nit=objective.nit,
            message="Interrupted by KeyboardInterrupt (Ctrl-C); x is the best point evaluated.",
        )
    except BaseException as exc:
        if objective is not None and objective.best_x is not None:
            exc.autominimize_best_x = spec.restore(objective.best_x)
        sinks.close(status=-1, success=False, message=f"{type(exc).__name__}: {exc}", objective=objective)
        raise
    sinks.close(status=result.get("status"), success=result.get("success", False), message=result.get("message", ""), objective=objective)
    result = _finish(result, objective, spec, backend_name, dtype, constraint_functions)
    if sinks.history is not None:
        result.history = sinks.history
    if sinks.log is not None:
        result.log_error = sinks.log_error
    return result


def _refuse_unused(given: dict, method: str) -> None:
    """Arguments a method family does not use: an error rather than silence."""
    unused = [name for name, value in given.items() if value is not None]
    if unused:
        raise ValueError(f"method={method!r} does not use {', '.join(unused)}; they are for scipy's methods.")


def _check_plain_arguments(tol: Any, options: Any, callbacks: dict) -> None:
    """Type errors scipy would report deep inside a method, named here by argument."""
    from .validation import check_options, check_tolerance

    if tol is not None:
        check_tolerance(tol, "tol")
    check_options(options)
    for name, value in callbacks.items():
        if value is not None and not callable(value):
            raise TypeError(f"{name} must be callable; got {type(value).__name__}.")


def _user_derivatives(spec: ParamSpec, jac, hess, hessp, flat_call, framework_params, args: tuple) -> dict:
    """Flat versions of the derivatives the user supplied; each overrides autodiff alone."""
    derivatives: dict[str, Callable | None] = {"gradient": None, "hessian": None, "hessp": None}
    if callable(jac):
        user_jac = flat_call(jac)
        derivatives["gradient"] = lambda x: flatten_gradient(user_jac(x), spec, "jac")
    if callable(hess):
        user_hess = flat_call(hess)
        derivatives["hessian"] = lambda x: flatten_hessian(user_hess(x), spec)
    if callable(hessp):

        def hvp(x: np.ndarray, p: np.ndarray) -> np.ndarray:
            # hessp receives the parameters as fun does, then p in x0's structure, then args.
            p_tree = framework_params(p)
            return flatten_gradient(flat_call(hessp, (p_tree,) + args)(x), spec, "hessp")

        derivatives["hessp"] = hvp
    return derivatives


def _first_evaluation(objective: Objective, info, x0: np.ndarray) -> None:
    """Evaluate at x0 the way the method will, so a failure shows before scipy starts."""
    objective.start(x0, with_gradient=info.gradient == "fused" or (objective.error_handling == "continue" and objective.differentiable))


def _finish(result: so.OptimizeResult, objective: Objective, spec: ParamSpec, backend: str, dtype: str, constraint_functions) -> so.OptimizeResult:
    x_flat = np.asarray(result.x, dtype=np.float64).reshape(-1)
    result.x = spec.restore(x_flat)
    jac = result.get("jac")
    if isinstance(jac, np.ndarray) and jac.ndim == 1 and jac.size == spec.size:
        result.jac = spec.restore(np.asarray(jac, dtype=np.float64).reshape(-1))
    elif "jac" not in result and objective.known_gradient(x_flat) is not None:
        result.jac = spec.restore(objective.known_gradient(x_flat))
    result.fun = float(result.fun) if result.get("fun") is not None else objective.best_f
    result.update(objective.counters.as_dict())
    result.backend = backend
    result.precision = dtype
    if constraint_functions:
        result.constraint_evaluations = [
            {"name": cf.name, "nfev": cf.nfev, "njev": cf.njev, "nhev": cf.nhev} for cf in constraint_functions
        ]
    return result
