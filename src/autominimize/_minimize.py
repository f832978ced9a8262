"""``am.minimize``: scipy.optimize.minimize with exact derivatives from the user's framework."""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass
from typing import Any, Callable

import scipy.optimize as so

from ._flat_bounds import flat_bounds as _flat_bounds
from ._least_squares import residual_scalar_functions
from ._residuals import is_residual_function
from .calling import check_takes
from ._setup import PRECISIONS, Setup, prepare
from .backends.base import configure_numdiff
from .drivers.scipy_least_squares import LEAST_SQUARES_METHODS
from .drivers.scipy_pipeline import Recording, ScipyProblem, has_constraints, plan_method, solve
from .drivers.step_options import STEP_OPTIONS, honour_step_options
from .implicit import differentiable_call
from .native import is_native_method
from .problem import check_error_handling, numdiff_evaluator
from ._precision_fallback import float32_fallback, stacklevel_outside
from ._user_calls import fused_functions, user_derivatives
from .validation import check_constraints, check_second_order, check_observers, check_solve_arguments, check_settings, check_switches

__all__ = ["minimize", "PRECISIONS", "HVP_TYPES"]

#: autograd-minimize's HVP variants; all compute the same exact product.
HVP_TYPES = (None, "forward_over_back", "back_over_forward", "tf_gradients_forward_over_back", "back_over_back", "hvp", "vhp")


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
    jac : callable, True, '2-point', '3-point' or None
        None (default): the framework's gradient. A callable takes the parameters like ``fun``
        and returns the gradient in x0's structure (or flat). True: ``fun`` returns
        ``(value, gradient)``. A difference scheme: scipy's finite differences (its
        complex step ``'cs'`` is refused: ``fun`` is evaluated at real points). A
        derivative-free method refuses a callable or a scheme (it would be ignored); with
        True it reads the value alone, as scipy does.
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
        ``torch_device`` is where torch evaluates when x0 holds no tensors (refused on
        another backend, which would ignore it).
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
    # the arguments as given, read first: under TF's autograph (a call inside a tf.function),
    # locals() read within a conditional branch holds only the branch's variables
    call = dict(locals())
    if type(constraints) is not tuple or constraints:  # the default () costs no call
        check_constraints(constraints)
    if differentiable_call(args, fun, constraints=constraints):  # res.x differentiable (args, captured values)
        from .implicit.entry import minimize as differentiable_minimize

        return differentiable_minimize(minimize, call)
    check_error_handling(error_handling)
    check_solve_arguments(
        tol, options, method, {"callback": callback, "step_callback": step_callback, "loss_callback": loss_callback, "fun_and_jac": fun_and_jac}
    )
    if batch is not False:
        check_switches(batch=batch)
    recording = Recording(
        history=history,
        log=log,
        resume=resume,
        progress=progress,
        callback=callback,
        step_callback=step_callback,
        loss_callback=loss_callback,
        observers=[] if type(observers) is tuple and not observers else check_observers(observers),
    )
    if isinstance(method, str) and is_native_method(method):
        _check_native_arguments(
            method, error_handling, hess, hessp, constraints, {"fun_and_jac": fun_and_jac, "workers": workers, "executor": executor}
        )
        check_settings({"epochs": epochs}, positive=("epochs",))
        # the native and least-squares families load on first use: importing them costs a plain
        # NumPy solve in a fresh interpreter about 60 ms, a seventh of what it costs in all
        from ._minimize_families import minimize_native_recorded

        return minimize_native_recorded(method=method, recording=recording, **_pick(call, _NATIVE_ARGUMENTS))
    if data is not None or epochs is not None or batch:
        raise ValueError(
            "data=, epochs= and batch= are for the native methods ('lbfgs-native', 'cg-native', "
            f"'hessian-free', 'sgd', 'delta-bar-delta', 'sgd-qn', 'tonga'); method={method!r} is scipy's."
        )
    if isinstance(method, str) and method.lower() in LEAST_SQUARES_METHODS:
        if hess is not None or hessp is not None or constraints:
            raise ValueError(f"method={method!r} is a least-squares method: it takes no hess, hessp or constraints.")
        from ._minimize_families import minimize_least_squares_recorded

        return minimize_least_squares_recorded(method=method.lower(), recording=recording, **_pick(call, _LEAST_SQUARES_ARGUMENTS))
    source = _ObjectiveSource.of(fun, jac, fun_and_jac)
    if not (hvp_type is None or type(hvp_type) is str and hvp_type in HVP_TYPES):
        raise ValueError(f"hvp_type={hvp_type!r} is not one of {HVP_TYPES}.")
    setup = prepare(source.fun, x0, args, unpack=unpack, precision=precision, device=torch_device)
    flat_bounds = None if bounds is None else _flat_bounds(setup, bounds)
    constraints = [] if constraints is None else constraints
    plan = plan_method(
        method, has_bounds=flat_bounds is not None, has_constraints=has_constraints(constraints), jac=source.jac, hess=hess, hessp=hessp
    )
    compiled = dict(backend=backend, hess=hess, hessp=hessp, resume=resume, workers=workers, executor=executor, error_handling=error_handling)
    problem = _compile(setup, source, constraints, **compiled)
    if isinstance(options, dict) and options.keys() & STEP_OPTIONS:  # no call on the common path
        user_gradient, parallel = source.jac is True or callable(source.jac), workers is not None or executor is not None
        plan = honour_step_options(plan, options, backend=problem.backend, user_gradient=user_gradient, parallel=parallel)
    return solve(problem, plan, recording, tol=tol, options=options)


#: what each family takes of am.minimize's arguments, by name
_COMMON_ARGUMENTS = ("fun", "x0", "args", "jac", "bounds", "tol", "options", "backend", "precision", "unpack", "torch_device")
_NATIVE_ARGUMENTS = _COMMON_ARGUMENTS + ("data", "epochs", "batch")
_LEAST_SQUARES_ARGUMENTS = _COMMON_ARGUMENTS + ("fun_and_jac", "workers", "executor", "error_handling")


def _pick(call: dict, names: tuple[str, ...]) -> dict:
    """The arguments ``names`` of a call, as keywords."""
    return {name: call[name] for name in names}


def _refuse_unused(given: dict, method: str) -> None:
    """Arguments a method family does not use: an error rather than silence."""
    unused = [name for name, value in given.items() if value is not None]
    if unused:
        raise ValueError(f"method={method!r} does not use {', '.join(unused)}; they are for scipy's methods.")


def _check_native_arguments(method: str, error_handling: str, hess: Any, hessp: Any, constraints: Any, unused: dict) -> None:
    """What a native method refuses: an error policy, curvature, constraints and scipy's extras."""
    if error_handling != "raise":
        raise ValueError(f"error_handling={error_handling!r} is for scipy's methods; method={method!r} (native) always raises.")
    if hess is not None or hessp is not None or constraints:
        raise ValueError(
            f"method={method!r} computes its own curvature and takes no constraints; hess, hessp and constraints are for scipy's methods."
        )
    _refuse_unused(unused, method)


@dataclass(frozen=True)
class _ObjectiveSource:
    """Where the objective's value and gradient come from.

    ``fun`` is what the solve calls: the user's ``fun``, or ``fun_and_jac`` returning
    ``(value, gradient)`` (then ``jac`` is True and ``value_fun`` the user's ``fun``, for
    values alone). A residual function keeps its ``fun_and_jac`` giving ``(residuals, jacobian)``.
    """

    fun: Callable
    jac: Any
    value_fun: Callable | None = None
    fun_and_jac: Callable | None = None
    residual: bool = False

    @classmethod
    def of(cls, fun: Any, jac: Any, fun_and_jac: Callable | None) -> "_ObjectiveSource":
        residual = is_residual_function(fun)
        if fun_and_jac is not None and not residual:
            if jac is not None:
                raise ValueError("give the gradient once: jac= or fun_and_jac=, not both.")
            return cls(fun_and_jac, True, value_fun=fun)
        if not callable(fun):
            raise TypeError(f"fun must be callable; got {type(fun).__name__}.")
        return cls(fun, jac, fun_and_jac=fun_and_jac, residual=residual)

    @property
    def user_derivatives(self) -> bool:
        """Whether the user supplies the gradient (the backend then follows x0's leaves)."""
        return self.jac is True or self.residual and (self.fun.jac is not None or self.fun_and_jac is not None)

    def compile(self, setup: Setup, evaluator: Any, precision: str) -> Any:
        """The objective's flat functions (a ``ScalarFunctions``) in ``precision``."""
        if self.jac is True:
            return fused_functions(setup, self.fun, self.value_fun)
        if self.residual:
            return residual_scalar_functions(
                setup.backend_obj,
                self.fun,
                setup.call,
                setup.spec,
                precision,
                setup.unpack,
                setup.args,
                setup.device,
                setup.flat_call,
                fun_and_jac=self.fun_and_jac,
                bounds=setup.bounds,
                evaluator=evaluator,
            )
        compiled = setup.compile("scalar", self.fun, setup.call, dtype=precision)
        return configure_numdiff(compiled, setup.bounds, evaluator, setup.probe)


def _compile(
    setup: Setup,
    source: _ObjectiveSource,
    constraints: Any,
    *,
    backend: str | None,
    hess: Any,
    hessp: Any,
    resume: Any,
    workers: int | None,
    executor: Any,
    error_handling: str,
) -> ScipyProblem:
    """The backend chosen, the start read, the user's derivatives flattened: the flat problem."""
    if callable(source.jac):
        check_takes(source.jac, "jac", setup.callers.mode(source.jac, len(setup.args)), setup.x0, setup.args)
    if hess is not None or hessp is not None:  # after the method plan's own refusal of second-order information
        check_second_order(hess, hessp)
    backend_name = setup.choose_backend(backend, from_leaves=source.user_derivatives)
    evaluator = numdiff_evaluator(backend_name, backend_name == "numpy" and source.jac is None, workers, executor, error_handling)
    x0_flat = setup.x0_flat
    if resume is not None:
        from .recording.log_reader import resume_point

        x0_flat = resume_point(resume, setup.spec)
    derivatives = user_derivatives(setup, source.jac, hess, hessp)
    return ScipyProblem(
        setup.spec,
        setup.clip_start(x0_flat, stacklevel=stacklevel_outside() if setup.bounds is not None else 1),
        functools.partial(source.compile, setup, evaluator),
        backend_name,
        setup.dtype,
        bounds=setup.bounds,
        constraints=constraints,
        compile_constraint=lambda fun, extra, precision: setup.compile("vector", fun, extra=extra or setup.args, dtype=precision),
        constraint_call=lambda jac, extra: setup.flat_call(jac, extra or setup.args),
        derivatives=derivatives,
        error_handling=error_handling,
        float32_fallback=functools.partial(float32_fallback, source.fun, setup),
        contexts=_solve_contexts(setup, evaluator),
        gradient_with_value=source.jac is True and source.value_fun is None,
    )


def _solve_contexts(setup: Setup, evaluator: Any) -> tuple:
    """What the solve holds: the backend's context and the evaluator's process pool, each
    only where it does something (entering and leaving them for nothing cost about 3 µs a solve)."""
    context = setup.backend_obj.solve_context(setup.dtype)
    held = () if isinstance(context, contextlib.nullcontext) else (context,)
    return held + ((evaluator,) if evaluator.workers is not None else ())
