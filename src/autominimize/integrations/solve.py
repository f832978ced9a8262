"""What the torch and TF integrations add to the scipy pipeline of ``am.minimize``.

The integrations evaluate closures that read the framework's parameter objects, so they
build their own flat functions; :func:`integration_plan` checks their own ``jac`` and ``hessp``
arguments and :func:`solve` hands the functions to
:func:`~autominimize.drivers.scipy_pipeline.solve`, the one pipeline ``am.minimize`` runs
too, with the result's ``x`` and ``jac`` kept flat (the parameters in order).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np
import scipy.optimize as so

from ..bounds import clip_to_bounds
from ..drivers import scipy_pipeline
from ..drivers.scipy_pipeline import MethodPlan, Recording, ScipyProblem
from ..params import ParamSpec

__all__ = ["integration_plan", "solve"]


def integration_plan(
    method: str | Callable | None, *, has_bounds: bool, has_constraints: bool, jac: bool | str | None = None, hessp: bool = False
) -> MethodPlan:
    """Validate ``method`` against the problem and decide which derivatives it gets.

    ``jac`` is None or True (the framework's gradient), or False, '2-point' or '3-point'
    (scipy's finite differences). ``hessp=True`` gives trust-constr Hessian-vector products
    instead of full Hessians.
    """
    if not isinstance(hessp, bool):
        raise TypeError(f"hessp must be True or False; got {hessp!r}.")
    return scipy_pipeline.plan_method(
        method,
        has_bounds=has_bounds,
        has_constraints=has_constraints,
        jac=jac,
        hessp=True if hessp else None,
        schemes=("2-point", "3-point"),
        callable_jac=False,
    )


def solve(
    method_plan: MethodPlan,
    functions: Any,
    spec: ParamSpec,
    x0: np.ndarray,
    *,
    bounds: tuple[np.ndarray, np.ndarray] | None,
    constraints: Any,
    compile_vector: Callable[[Callable, tuple], Any],
    make_call: Callable[[Callable, tuple], Callable] | None,
    tol: float | None,
    options: dict | None,
    callback: Callable | None,
    precision: str,
    backend: str,
    history: bool = True,
    log: Any = None,
    progress: bool = False,
) -> so.OptimizeResult:
    """Minimize the flat objective ``functions`` (a ``ScalarFunctions``) from ``x0``.

    ``compile_vector(fun, args)`` turns a constraint function into flat vector functions;
    ``make_call(jac, args)`` a user-supplied constraint Jacobian into a function of the flat
    vector (None when the integration's constraints cannot carry one).
    The result keeps scipy's flat ``x`` and ``jac`` (float64, the parameters in order), with
    honest ``nfev``/``njev``/``nhev``/``nhvp`` counts, ``backend`` and ``precision``.
    ``callback`` receives x as ``spec.restore`` gives it (or an ``intermediate_result``).
    ``history``, ``log`` and ``progress`` are ``am.minimize``'s, and so is Ctrl-C: it ends
    the solve at the best point evaluated.
    """
    if bounds is not None:
        x0, moved = clip_to_bounds(x0, bounds, spec)
        if moved:
            warnings.warn(f"the starting point is outside the bounds at {', '.join(moved)}; it was clipped into them.", UserWarning, stacklevel=3)
    problem = ScipyProblem(
        spec,
        x0,
        lambda precision: functions,
        backend,
        precision,
        bounds=bounds,
        constraints=constraints,
        compile_constraint=lambda fun, args, precision: compile_vector(fun, args),
        constraint_call=make_call,
        in_structure=False,
    )
    recording = Recording(history=history, log=log, progress=progress, callback=callback)
    return scipy_pipeline.solve(problem, method_plan, recording, tol=tol, options=options)
