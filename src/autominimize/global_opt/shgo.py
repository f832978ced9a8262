"""``am.shgo``: simplicial homology global optimization, local solves by ``am.minimize``."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import scipy.optimize as so

from ._parallel import point_map
from ._build import build_problem
from ._problem import GlobalProblem, LocalSolver, local_kwargs
from ..validation import check_callable, check_constraints, check_workers, is_one_of
from ._running import finish, running

__all__ = ["shgo", "run_shgo"]

#: shgo options that would give the local solver derivatives; exact ones are always used.
_DERIVATIVE_OPTIONS = ("jac", "hess", "hessp")


def shgo(
    func: Callable,
    bounds: Any,
    args: tuple = (),
    constraints: Any = None,
    n: int = 100,
    iters: int = 1,
    callback: Callable | None = None,
    minimizer_kwargs: dict | None = None,
    options: dict | None = None,
    sampling_method: str | Callable = "simplicial",
    *,
    workers: int | Callable = 1,
    x0: Any = None,
    executor: Any = None,
    backend: str | None = None,
    precision: str | None = None,
    unpack: str = "auto",
    error_handling: str = "raise",
) -> so.OptimizeResult:
    """Find the global minimum of ``func`` with SHGO; every local solve is ``am.minimize``.

    The arguments are ``scipy.optimize.shgo``'s; those below differ.

    Parameters
    ----------
    func : callable
        The objective in NumPy, JAX, PyTorch or TensorFlow.
    bounds : bounds in any format ``am.minimize`` accepts
        Without ``x0`` they also give the parameter structure (see
        ``am.differential_evolution``).
    constraints : optional
        As for ``am.minimize`` (functions of the parameter structure, in the framework); they
        restrict the sampling and are handed to the local solves.
    callback : callable, optional
        Called by each local solve as ``am.minimize`` calls it, x in x0's structure.
    minimizer_kwargs : dict, optional
        ``am.minimize`` arguments for the local solves (``method``, ``jac``, ``hess``,
        ``hessp``, ``constraints``, ``tol``, ``options``, ``hvp_type``). Default: SLSQP with
        ``ftol=1e-12``, as scipy. Each solve is confined to the box shgo gives it when the
        method takes bounds.
    options : dict, optional
        shgo's options; ``jac``, ``hess`` and ``hessp`` are refused: the local solves always
        get exact derivatives.
    workers, executor
        Evaluate the sampling points in parallel: local processes (``fun`` picklable) or a
        map-like callable, or any ``concurrent.futures.Executor`` / Dask client.
    x0 : optional
        Only the structure and array types of the parameters (its values are not used).
    backend, precision, unpack
        As for ``am.minimize``.
    error_handling : {'raise', 'continue'}
        'continue': a point where ``fun`` raises or is not finite counts as ``+inf`` (local
        solves get the same policy); see ``am.minimize``.

    Returns
    -------
    scipy.optimize.OptimizeResult
        scipy's fields with ``x`` in x0's structure (``xl`` stays a flat array of the local
        minima, one row each); ``nfev``/``njev``/``nhev``/``nhvp`` over every evaluation.

    Examples
    --------
    >>> import numpy as np
    >>> import autominimize as am
    >>> def styblinski_tang(x):
    ...     return 0.5 * np.sum(x**4 - 16 * x**2 + 5 * x)
    >>> res = am.shgo(styblinski_tang, [(-5, 5)] * 2, backend="numpy")
    >>> np.round(res.x, 4).tolist(), round(res.fun, 4)
    ([-2.9035, -2.9035], -78.3323)
    """
    check_shgo_settings(n, iters, options)
    check_callable(callback, "callback", calls=(("callback(xk)", (None,), {}),))
    if not (callable(sampling_method) or is_one_of(sampling_method, ("simplicial", "halton", "sobol"))):
        raise ValueError(f"sampling_method={sampling_method!r} is not valid; use 'simplicial', 'halton', 'sobol' or a callable sampling(n, d).")
    kwargs = local_kwargs(minimizer_kwargs, "minimizer_kwargs")
    if "bounds" in kwargs:
        raise TypeError("minimizer_kwargs: the local solves are confined to shgo's own boxes; give bounds to shgo instead.")
    options = dict(options or {})
    refused = [key for key in _DERIVATIVE_OPTIONS if key in options]
    if refused:
        raise ValueError(f"options {refused}: the local solves always get exact derivatives; choose them with minimizer_kwargs instead.")
    if minimizer_kwargs is None:
        kwargs = {"method": "SLSQP", "options": {"ftol": 1e-12}}
    check_constraints(constraints)
    if constraints is not None:
        kwargs.setdefault("constraints", constraints)
    if callback is not None:
        kwargs.setdefault("callback", callback)
    problem, _, (lb, ub) = build_problem(
        func, x0, bounds, args, backend=backend, precision=precision, unpack=unpack, finite=False, error_handling=error_handling, fun_name="func"
    )
    return run_shgo(
        problem,
        lb,
        ub,
        LocalSolver(problem, kwargs, scipy_bounds=True),
        constraints=constraints,
        n=n,
        iters=iters,
        options=options,
        sampling_method=sampling_method,
        workers=workers,
        executor=executor,
    )


#: the options scipy.optimize.shgo reads (its documentation's list)
_OPTIONS = ("maxfev", "f_min", "f_tol", "maxiter", "maxev", "maxtime", "minhgrd", "symmetry", "jac", "hess", "hessp")
_OPTIONS += ("minimize_every_iter", "local_iter", "infty_constraints", "disp")


def check_shgo_settings(n: Any, iters: Any, options: Any) -> None:
    """shgo's counts and ``options`` keys, each named if wrong (scipy ignores unknown keys)."""
    from ..validation import check_count, check_known, check_options

    if check_count(n, "n") == 0:
        raise ValueError("n must be a positive integer (the number of sampling points); got 0.")
    if check_count(iters, "iters") == 0:
        raise ValueError("iters must be a positive integer; got 0.")
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"options must be a dict of scipy.optimize.shgo's options; got {type(options).__name__}.")
    check_known(options or {}, _OPTIONS, "options has keys that are not options of scipy.optimize.shgo:", ValueError)
    check_options(options, "shgo")


def run_shgo(
    problem: GlobalProblem,
    lb: np.ndarray,
    ub: np.ndarray,
    solver: LocalSolver,
    *,
    constraints: Any,
    n: int,
    iters: int,
    options: dict,
    sampling_method: Any,
    workers: Any,
    executor: Any,
) -> so.OptimizeResult:
    """SHGO on a built problem over the flat box, local solves by ``solver``."""
    check_workers(workers)
    parallel = executor is not None or workers not in (1, None)
    if parallel and constraints:
        raise ValueError("workers/executor evaluate the objective only; with constraints, shgo here runs in one process (workers=1).")
    with running(problem):
        sampling_constraints = problem.scipy_constraints(constraints, "cobyla") if constraints else None
        if parallel:
            with point_map(problem.remote, workers, executor, problem.count) as map_like:
                result = _run(problem.remote, lb, ub, sampling_constraints, n, iters, solver, options, sampling_method, map_like)
        else:
            result = _run(problem.value, lb, ub, sampling_constraints, n, iters, solver, options, sampling_method, 1)
    result.local_results = list(solver.results)
    return finish(result, problem, constrained=bool(constraints))


def _run(func, lb, ub, constraints, n, iters, solver, options, sampling_method, workers) -> so.OptimizeResult:
    box = [(lo if np.isfinite(lo) else None, hi if np.isfinite(hi) else None) for lo, hi in zip(lb.tolist(), ub.tolist())]
    return so.shgo(
        func,
        box,
        constraints=constraints,
        n=n,
        iters=iters,
        minimizer_kwargs={"method": solver},
        options=options or None,
        sampling_method=sampling_method,
        workers=workers,
    )
