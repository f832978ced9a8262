"""One scipy.optimize.minimize solve over flat functions, for ``am.minimize`` and the integrations.

``am.minimize`` compiles a pure function of the parameters with a backend; the torch and TF
integrations evaluate closures that read the framework's parameter objects. Both then meet
here: :func:`plan_method` decides what the method gets, and :func:`solve` starts the
recorders, makes the method's first evaluation a probe (retried in float32 where the
fallback applies), runs :func:`~autominimize.drivers.scipy_local.run_minimize`, ends cleanly at Ctrl-C (or attaches the best point to any other exception) and finishes the
result with honest counts.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from typing import Any, Callable, ContextManager, Sequence

import numpy as np
import scipy.optimize as so

from ..constraints import normalize_constraints
from ..recording import attach_best, in_nested_solve
from ..params import ParamSpec
from ..problem import Objective
from ..recording import recorders
from .methods import CUSTOM_METHOD, METHODS, MethodInfo, check_gradient_use, check_supports, method_name, second_order_for
from .scipy_local import run_minimize, wrap_callback
from ..validation import SHAPED_OPTIONS, STEP_OPTIONS, check_not_complex_step, check_shaped_options, check_step_options

__all__ = ["FD_SCHEMES", "MethodPlan", "Recording", "ScipyProblem", "has_constraints", "plan_method", "solve"]

#: scipy's finite-difference schemes for the gradient (its complex step is refused: fun is
#: evaluated at real points)
FD_SCHEMES = ("2-point", "3-point")

_INTERRUPTED = "Interrupted by KeyboardInterrupt (Ctrl-C); x is the best point evaluated."


@dataclass(frozen=True)
class MethodPlan:
    """What one solve asks of the objective: method, gradient source, second-order kind."""

    name: str
    method: str | Callable
    info: MethodInfo
    second_order: Any
    gradient_scheme: str | None

    @property
    def derivative_free(self) -> bool:
        """True when the objective's gradient is never computed by the framework."""
        return self.info.gradient in (None, "scipy") and self.second_order is None


def plan_method(
    method: str | Callable | None,
    *,
    has_bounds: bool,
    has_constraints: bool,
    jac: Any = None,
    hess: Any = None,
    hessp: Any = None,
    schemes: tuple[str, ...] = FD_SCHEMES,
    callable_jac: bool = True,
) -> MethodPlan:
    """Validate ``method`` against the problem and decide which derivatives it gets.

    ``jac`` is None or True (exact gradients), a callable when ``callable_jac``, or False
    or one of ``schemes`` (scipy's finite differences; False is '2-point'). ``hess`` and
    ``hessp`` choose the second-order information as in ``am.minimize``.
    """
    if callable(method):
        name, info = getattr(method, "__name__", "custom"), CUSTOM_METHOD
    else:
        name = method_name(method, has_bounds, has_constraints)
        info = METHODS[name]
        check_supports(name, info, has_bounds, has_constraints)
    second_order = second_order_for(name, info, hess, hessp)
    gradient_scheme = None
    if not (jac is None or jac is True or (callable_jac and callable(jac))):
        check_not_complex_step(jac, "jac", f"jac=None (exact derivatives; finite differences on NumPy) or one of {schemes}")
        if jac is not False and not (isinstance(jac, str) and jac in schemes):
            accepted = "None (autodiff), a callable, True" if callable_jac else "None (autodiff), True"
            raise ValueError(f"jac={jac!r} is not accepted; use {accepted}, or one of {schemes}.")
        if info.gradient is not None:
            gradient_scheme = "2-point" if jac is False else jac
            info = replace(info, gradient="scipy")
    check_gradient_use(name, info, jac)
    return MethodPlan(name, method if callable(method) else name, info, second_order, gradient_scheme)


def has_constraints(constraints: Any) -> bool:
    """Whether ``constraints`` (one constraint or a sequence of them, or None) holds any."""
    if isinstance(constraints, (dict, so.LinearConstraint, so.NonlinearConstraint)):
        return True
    return bool(constraints)


@dataclass
class Recording:
    """A solve's recording and control options, as the user gave them (see ``am.minimize``)."""

    history: bool = True
    log: Any = None
    resume: Any = None
    progress: bool = False
    callback: Callable | None = None
    step_callback: Callable | None = None
    loss_callback: Callable | None = None
    observers: Sequence = ()

    def refuse_evaluations(self, method: str) -> None:
        """Options told of single evaluations, for a family that reports iterations only."""
        if self.loss_callback is not None:
            raise ValueError(
                f"loss_callback is told of every evaluation, and method={method!r} reports iterations only; "
                "use callback= or step_callback= (called after each iteration)."
            )
        told = [type(o).__name__ for o in self.observers if getattr(o, "evaluation", None) is not None]
        if told:
            raise ValueError(
                f"observers={told}: method={method!r} reports iterations only; an observer for it sets "
                "evaluation = None (and is told of each iteration)."
            )

    def given(self) -> list[str]:
        """The recording options given beyond the default history."""
        named = {
            "log": self.log,
            "resume": self.resume,
            "progress": self.progress or None,
            "callback": self.callback,
            "step_callback": self.step_callback,
            "loss_callback": self.loss_callback,
            "observers": self.observers or None,
        }
        return [name for name, value in named.items() if value is not None]

    def make_recorders(self, method: str, options: dict | None) -> tuple[list, Any]:
        """The observers told of each evaluation and iteration, and the ``Sinks`` to open and close."""
        watchers, sinks = recorders(self.history, self.log, self.progress, self.loss_callback, method, options)
        watchers.extend(self.observers)
        return watchers, sinks


@dataclass
class ScipyProblem:
    """A flat problem for :func:`solve`.

    ``functions(precision)`` builds the objective's flat functions (a ``ScalarFunctions``);
    ``x0`` is the flat float64 start, already inside ``bounds``. ``compile_constraint(fun,
    args, precision)`` turns a constraint function into flat vector functions and
    ``constraint_call(jac, args)`` a user-supplied constraint Jacobian into a function of
    the flat vector (None when the caller's constraints cannot carry one). ``derivatives``
    are user-supplied flat derivatives (``gradient``, ``hessian``, ``hessp``).
    ``float32_fallback(exc)`` says whether a first evaluation that raised ``exc`` is
    retried in float32 (None: never). ``contexts`` are entered around the solve.
    ``in_structure``: ``x`` and ``jac`` come back in x0's structure, else flat.
    ``gradient_with_value``: the functions compute the gradient with every value.
    """

    spec: ParamSpec
    x0: np.ndarray
    functions: Callable[[str], Any]
    backend: str
    precision: str
    bounds: tuple[np.ndarray, np.ndarray] | None = None
    constraints: Any = ()
    compile_constraint: Callable[[Callable, tuple, str], Any] | None = None
    constraint_call: Callable[[Callable, tuple], Callable] | None = None
    derivatives: dict = field(default_factory=dict)
    error_handling: str = "raise"
    float32_fallback: Callable[[BaseException], bool] | None = None
    contexts: Sequence[ContextManager] = ()
    in_structure: bool = True
    gradient_with_value: bool = False


def solve(problem: ScipyProblem, plan: MethodPlan, recording: Recording, *, tol: float | None, options: dict | None) -> so.OptimizeResult:
    """Minimize ``problem`` with ``plan``'s method, recorded as ``recording`` asks.

    The result has scipy's fields with ``x`` and ``jac`` (in x0's structure, or flat), the
    ``nfev``/``njev``/``nhev``/``nhvp`` counts, ``backend``, ``precision``, ``history`` and
    ``log_error``. A KeyboardInterrupt ends the solve at the best point evaluated
    (``status=-1``), unless the solve is nested in another run: it then propagates with the
    best point attached, as any other exception does.
    """
    run = _Run(problem, plan, recording, tol, options)
    try:
        if problem.contexts:
            with contextlib.ExitStack() as stack:
                for context in problem.contexts:
                    stack.enter_context(context)
                result = run.minimize()
        else:  # the NumPy backend's solve: an ExitStack entered for nothing costs about 2.5 µs
            result = run.minimize()
    except KeyboardInterrupt as exc:
        result = run.interrupted(exc)
        if result is None:
            raise
    except BaseException as exc:
        run.failed(exc)
        raise
    return run.finish(result)


class _Run:
    """One solve's state: its recorders, the objective once built, and the precision it runs in."""

    def __init__(self, problem: ScipyProblem, plan: MethodPlan, recording: Recording, tol: float | None, options: dict | None):
        self.problem, self.plan, self.recording, self.tol, self.options = problem, plan, recording, tol, options
        if options and options.keys() & SHAPED_OPTIONS.keys():
            check_shaped_options(options, problem.x0.size)
        if options and options.keys() & set(STEP_OPTIONS):
            check_step_options(options, problem.x0.size)
        self.precision = problem.precision
        self.objective: Objective | None = None
        self.constraint_functions: list = []
        self.watchers, self.sinks = recording.make_recorders(plan.name, options)
        self.sinks.start(
            problem.spec,
            problem.x0,
            method=plan.name,
            backend=problem.backend,
            precision=problem.precision,
            tol=tol,
            options=options,
            has_bounds=problem.bounds is not None,
            has_constraints=has_constraints(problem.constraints),
        )

    def _first_evaluation(self) -> None:
        """A new objective whose first evaluation, wherever the method asks for it, is the probe
        that shows a failure at once (see :meth:`Objective.start`)."""
        self.objective = Objective(
            self.problem.functions(self.precision),
            self.problem.spec,
            differentiable=self.plan.info.gradient not in (None, "scipy"),
            second_order=self.plan.second_order,
            journal=self.sinks.journal,
            observers=self.watchers,
            error_handling=self.problem.error_handling,
            gradient_with_value=self.problem.gradient_with_value,
            **self.problem.derivatives,
        )
        self.objective.start(self.problem.x0)

    def minimize(self) -> so.OptimizeResult:
        try:
            return self._attempt()
        except Exception as exc:
            if not self._falls_back(exc):
                raise
        return self._attempt()

    def _falls_back(self, exc: Exception) -> bool:
        """Whether the solve starts again in float32, after the objective's first evaluation
        (or its compilation) raised ``exc``."""
        fallback, objective = self.problem.float32_fallback, self.objective
        if fallback is None or self.precision == "float32" or (objective is not None and objective.probe_failure is not exc):
            return False
        if not fallback(exc):
            return False
        self.precision = "float32"
        if self.sinks.log is not None:
            self.sinks.log.set_precision(self.precision)
        return True

    def _attempt(self) -> so.OptimizeResult:
        problem, plan = self.problem, self.plan
        self._first_evaluation()
        scipy_constraints: list = []
        if not (problem.constraints is None or type(problem.constraints) in (list, tuple) and not problem.constraints):
            scipy_constraints, self.constraint_functions = normalize_constraints(
                problem.constraints,
                plan.name,
                problem.spec,
                lambda fun, args: problem.compile_constraint(fun, args, self.precision),
                problem.constraint_call,
                problem.error_handling,
                problem.bounds,
            )
        if plan.name == "trust-constr" and problem.error_handling == "continue" and self.constraint_functions:
            self._fail_with_constraints()
        callback = wrap_callback(self.recording.callback, problem.spec, plan.info, plan.name, self.objective, self.recording.step_callback)
        return run_minimize(
            self.objective,
            problem.x0,
            plan.method,
            plan.info,
            second_order=plan.second_order,
            gradient_scheme=plan.gradient_scheme,
            bounds=problem.bounds,
            constraints=scipy_constraints,
            tol=self.tol,
            callback=callback,
            # scipy differences the gradient only with a scheme: no call on a plain solve
            options=self.options if plan.gradient_scheme is None else difference_steps(plan, self.options, self.precision),
        )

    def _fail_with_constraints(self) -> None:
        """trust-constr under 'continue': a point where a constraint fails is a failed point of
        the objective, so its merit is infinite and the step is rejected; the constraint's
        values there stay finite, since the method solves with them before it rejects it."""
        functions = self.constraint_functions
        for function in functions:
            function.finite_failed_values = True
        self.objective.fails_with = lambda x: any([function.fails_at(x) for function in functions])

    def interrupted(self, exc: KeyboardInterrupt) -> so.OptimizeResult | None:
        """The result at the best point, or None when the interrupt must propagate (with the log closed)."""
        objective = self.objective
        if objective is None:
            self.sinks.close(status=-1, success=False, message="Interrupted before the first evaluation.", objective=None)
            return None
        if in_nested_solve():  # the outer run ends too
            if objective.best_x is not None:
                attach_best(exc, self.problem.spec.restore(objective.best_x), objective.best_f)
            self.sinks.close(status=-1, success=False, message="Interrupted by KeyboardInterrupt (Ctrl-C).", objective=objective)
            return None
        self.constraint_functions = []
        return so.OptimizeResult(
            x=objective.best_x if objective.best_x is not None else self.problem.x0,
            fun=objective.best_f,
            success=False,
            status=-1,
            nit=objective.nit,
            message=_INTERRUPTED,
        )

    def failed(self, exc: BaseException) -> None:
        """Attach the best point so far to ``exc`` and close the recorders."""
        objective = self.objective
        if objective is not None and objective.best_x is not None:
            attach_best(exc, self.problem.spec.restore(objective.best_x), objective.best_f)
        self.sinks.close(status=-1, success=False, message=f"{type(exc).__name__}: {exc}", objective=objective)

    def _unknown_where_fixed(self, jac: np.ndarray) -> np.ndarray:
        """NaN, as scipy reports it, where NumPy's differences could not step (lower bound =
        upper bound): the 0 the method was given there is not the derivative."""
        if self.problem.backend != "numpy" or self.objective.user_gradient is not None:
            return jac
        fixed = self.problem.bounds[0] == self.problem.bounds[1]
        if fixed.any():
            jac = jac.copy()
            jac[fixed] = np.nan
        return jac

    def finish(self, result: so.OptimizeResult) -> so.OptimizeResult:
        """Close the recorders; x and jac as the caller asked, counts, backend and precision."""
        objective, spec = self.objective, self.problem.spec
        self.sinks.close(status=result.get("status"), success=result.get("success", False), message=result.get("message", ""), objective=objective)
        restore = spec.restore if self.problem.in_structure else np.copy
        x = np.asarray(result.x, dtype=np.float64).reshape(-1)
        result.x = restore(x)
        jac = result.get("jac")
        if isinstance(jac, np.ndarray) and jac.ndim == 1 and jac.size == spec.size:
            jac = np.asarray(jac, dtype=np.float64).reshape(-1)
        else:
            jac = objective.known_gradient(x) if "jac" not in result else None
        if jac is not None:
            result.jac = restore(jac if self.problem.bounds is None else self._unknown_where_fixed(jac))
        result.fun = float(result.fun) if result.get("fun") is not None else objective.best_f
        result.update(objective.counters.as_dict())
        result.backend = self.problem.backend
        result.precision = self.precision
        if self.constraint_functions:
            result.constraint_evaluations = [{"name": cf.name, "nfev": cf.nfev, "njev": cf.njev, "nhev": cf.nhev} for cf in self.constraint_functions]
        if self.sinks.history is not None:
            result.history = self.sinks.history
        if self.sinks.log is not None:
            result.log_error = self.sinks.log_error
        return result


#: machine epsilon of the parameter dtypes coarser than float64
_EPS = {"float32": 2.0**-23, "float16": 2.0**-10, "bfloat16": 2.0**-7}
#: the methods whose scipy differences take ``finite_diff_rel_step``
_RELATIVE_STEP_METHODS = frozenset({"bfgs", "cg", "l-bfgs-b", "tnc", "slsqp", "trust-constr"})


def difference_steps(plan: MethodPlan, options: dict | None, precision: str) -> dict | None:
    """``options`` with scipy's relative difference step suited to the coarsest parameter
    dtype in ``precision`` (e.g. 'float32/float64'), when scipy differences the gradient.

    The function computes in the parameters' precision, so a step below their resolution is
    rounded away: scipy's default (sqrt of float64's eps, 1.5e-8) left float32 parameters
    where they were, every difference zero and the solve "converged" at the start.
    """
    if (
        plan.gradient_scheme not in ("2-point", "3-point")
        or plan.name not in _RELATIVE_STEP_METHODS
        or (options or {}).keys() & {"eps", "finite_diff_rel_step"}
    ):
        return options
    eps = max(_EPS.get(dtype, 0.0) for dtype in precision.split("/"))
    if eps == 0.0:
        return options  # float64: scipy's default step is the one for it
    step = eps ** (1 / 3) if plan.gradient_scheme == "3-point" else eps**0.5
    return {**(options or {}), "finite_diff_rel_step": step}
