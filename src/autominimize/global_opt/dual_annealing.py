"""``am.dual_annealing``: generalized simulated annealing, local searches by ``am.minimize``."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import scipy.optimize as so

from ._build import build_problem
from ._problem import GlobalProblem, LocalSolver, local_kwargs, takes_bounds
from ._running import check_finite_start, finish, running, structured_callback
from ..validation import check_callable, check_named, check_rng

__all__ = ["dual_annealing", "run_dual_annealing", "default_local_search"]

_LS_MAXITER_RATIO, _LS_MAXITER_MIN, _LS_MAXITER_MAX = 6, 100, 1000


#: how am.dual_annealing's settings are checked: scipy documents visit in (1, 3] (1 divides
#: by zero) and accept in (-1e4, -5]
SETTINGS: dict = {
    "counts": ("maxiter", "maxfun"),
    "positive": ("maxiter",),  # scipy loops for ever with maxiter=0
    "tolerances": ("initial_temp",),
    "intervals": {"restart_temp_ratio": (0.0, 1.0, "()"), "visit": (1.0, 3.0, "(]"), "accept": (-1e4, -5.0, "(]")},
    "switches": ("no_local_search",),
}


def dual_annealing(
    func: Callable,
    bounds: Any,
    args: tuple = (),
    maxiter: int = 1000,
    minimizer_kwargs: dict | None = None,
    initial_temp: float = 5230.0,
    restart_temp_ratio: float = 2e-5,
    visit: float = 2.62,
    accept: float = -5.0,
    maxfun: float = 1e7,
    rng: Any = None,
    no_local_search: bool = False,
    callback: Callable | None = None,
    x0: Any = None,
    *,
    seed: Any = None,
    backend: str | None = None,
    precision: str | None = None,
    unpack: str = "auto",
    error_handling: str = "raise",
) -> so.OptimizeResult:
    """Minimize ``func`` by dual annealing; the local searches are ``am.minimize`` calls.

    The arguments are ``scipy.optimize.dual_annealing``'s; those below differ.

    Parameters
    ----------
    func : callable
        The objective in NumPy, JAX, PyTorch or TensorFlow.
    bounds : bounds in any format ``am.minimize`` accepts, finite
        Without ``x0`` they also give the parameter structure (see
        ``am.differential_evolution``).
    minimizer_kwargs : dict, optional
        ``am.minimize`` arguments for the local searches (``method``, ``jac``, ``hess``,
        ``hessp``, ``constraints``, ``tol``, ``callback``, ``options``, ``hvp_type``). Default:
        L-BFGS-B within the bounds, as scipy. A method that takes bounds is given them; the
        result of one that does not is kept only if it lies inside (scipy's rule).
    maxfun : int
        Counts the annealing's own evaluations; those of the local searches are in ``nfev``.
    callback : callable, optional
        ``callback(x, f, context)`` with x in x0's structure; True stops.
    x0 : optional
        The start, in any structure; gives the structure and array types of ``res.x``.
    rng, seed
        scipy's seeding; the same seed gives the same result.
    backend, precision, unpack
        As for ``am.minimize``.
    error_handling : {'raise', 'continue'}
        'continue': a point where ``fun`` raises or is not finite counts as ``+inf`` (local
        solves get the same policy); see ``am.minimize``.

    Returns
    -------
    scipy.optimize.OptimizeResult
        scipy's fields with ``x`` in x0's structure; ``nfev``/``njev``/``nhev``/``nhvp`` over
        every evaluation, ``nlocal`` local searches, ``backend``, ``precision``.

    Examples
    --------
    >>> import torch
    >>> import autominimize as am
    >>> def ackley(x):
    ...     return (-20 * torch.exp(-0.2 * torch.sqrt(torch.mean(x**2)))
    ...             - torch.exp(torch.mean(torch.cos(2 * torch.pi * x))) + 20 + torch.e)
    >>> res = am.dual_annealing(ackley, [(-5, 5)] * 2, rng=0, backend="torch")
    >>> abs(res.fun) < 1e-8
    True
    """
    settings = {"maxiter": maxiter, "maxfun": maxfun, "initial_temp": initial_temp, "restart_temp_ratio": restart_temp_ratio}
    check_named({**settings, "visit": visit, "accept": accept, "no_local_search": no_local_search}, **SETTINGS)
    check_rng(rng)
    check_rng(seed, "seed")
    check_callable(callback, "callback", calls=(("callback(x, f, context)", (None, None, None), {}),))
    problem, _, flat_bounds = build_problem(
        func, x0, bounds, args, backend=backend, precision=precision, unpack=unpack, finite=True, error_handling=error_handling, fun_name="func"
    )
    kwargs = local_kwargs(minimizer_kwargs, "minimizer_kwargs")
    if kwargs:
        box = flat_bounds if "bounds" not in kwargs and takes_bounds(kwargs) else None
    else:
        kwargs, box = default_local_search(problem), flat_bounds
    start = None if x0 is None else check_finite_start(problem.flat(x0, "x0"), flat_bounds, problem.spec)
    return run_dual_annealing(
        problem,
        flat_bounds,
        start,
        LocalSolver(problem, kwargs, box),
        callback=callback,
        rng=rng,
        seed=seed,
        maxiter=maxiter,
        initial_temp=initial_temp,
        restart_temp_ratio=restart_temp_ratio,
        visit=visit,
        accept=accept,
        maxfun=maxfun,
        no_local_search=no_local_search,
    )


def default_local_search(problem: GlobalProblem) -> dict:
    """scipy's default local search: L-BFGS-B, min(max(6 n, 100), 1000) iterations."""
    maxiter = min(max(problem.n * _LS_MAXITER_RATIO, _LS_MAXITER_MIN), _LS_MAXITER_MAX)
    return {"method": "L-BFGS-B", "options": {"maxiter": maxiter}}


def run_dual_annealing(
    problem: GlobalProblem,
    flat_bounds: tuple,
    x0: np.ndarray | None,
    solver: LocalSolver,
    *,
    callback: Callable | None,
    rng: Any,
    seed: Any,
    **options: Any,
) -> so.OptimizeResult:
    """Dual annealing of a built problem over the flat box, local searches by ``solver``."""
    options.update({name: value for name, value in (("rng", rng), ("seed", seed)) if value is not None})
    free_bounds = problem.fix_variables(flat_bounds)  # scipy refuses a bound with lower = upper
    if x0 is not None:
        options["x0"] = x0 if problem.fixed is None else x0[problem.fixed.free]
    with running(problem):
        result = so.dual_annealing(
            problem.value, so.Bounds(*free_bounds), minimizer_kwargs={"method": solver}, callback=structured_callback(callback, problem), **options
        )
    return finish(result, problem)
