"""``am.differential_evolution``: each generation evaluated as one batched call.

Generations run in the vectorized engine (:mod:`.de_engine`) whenever it applies, which is
``updating='deferred'`` without constraints or integrality; scipy's own engine runs the rest.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np
import scipy.optimize as so

from ._build import build_problem
from ._generation import ScipyLayout, columnwise, evaluation_mode, evaluator
from ._problem import GlobalProblem, LocalSolver, local_kwargs
from ._running import check_finite_start, finish, intermediate_callback, running
from ._structure import flat_option
from .de_engine import differential_evolution_engine, make_rng, parse_strategy
from .de_settings import check_init, mutation_scale
from ..drivers.methods import METHODS
from ..validation import check_callable, check_constraints, check_named, check_rng, is_one_of

__all__ = ["differential_evolution", "run_differential_evolution"]


#: how am.differential_evolution's settings are checked (see validation.check_named)
SETTINGS: dict = {
    "counts": ("maxiter", "popsize"),
    "tolerances": ("tol", "atol"),
    "positive": ("popsize",),
    "intervals": {"recombination": (0.0, 1.0, "[]")},
    "switches": ("disp",),
}


def differential_evolution(
    fun: Callable,
    bounds: Any,
    args: tuple = (),
    strategy: str | Callable = "best1bin",
    maxiter: int = 1000,
    popsize: int = 15,
    tol: float = 0.01,
    mutation: float | tuple[float, float] = (0.5, 1),
    recombination: float = 0.7,
    rng: Any = None,
    callback: Callable | None = None,
    disp: bool = False,
    polish: bool | str | dict = True,
    init: str | np.ndarray = "latinhypercube",
    atol: float = 0,
    updating: str | None = None,
    workers: int | Callable = 1,
    constraints: Any = (),
    x0: Any = None,
    *,
    integrality: Any = None,
    vectorized: bool | str | None = None,
    seed: Any = None,
    executor: Any = None,
    engine: str = "auto",
    backend: str | None = None,
    precision: str | None = None,
    unpack: str = "auto",
    error_handling: str = "raise",
) -> so.OptimizeResult:
    """Minimize ``fun`` over a box by differential evolution, a generation per batched call.

    The arguments are ``scipy.optimize.differential_evolution``'s; those below differ.

    Parameters
    ----------
    fun : callable
        The objective in NumPy, JAX, PyTorch or TensorFlow, taking the parameters in x0's
        structure (or the structure of ``bounds``), then ``*args``.
    bounds : bounds in any format ``am.minimize`` accepts, finite
        Without ``x0`` they also give the structure: each ``(low, high)`` pair is one
        parameter (a float for two numbers, an array for array limits), a list of
        per-element pairs a vector, ``Bounds(lb, ub)`` an array of lb's shape; dicts, lists,
        tuples and namedtuples of those nest (``{"w": [(-1, 1)] * 3, "b": (0, 5)}``).
    x0 : optional
        A starting point for one member of the population, in any structure; it then gives
        the structure and array types of ``res.x``.
    vectorized : bool, 'rows' or None
        How a generation is evaluated. None (default): as one call, with ``jax.vmap``,
        ``torch.func.vmap`` or ``tf.vectorized_map``, on those backends, and point by point
        for NumPy. True: batched on every backend; a NumPy ``fun`` is then called as scipy
        calls it, with x of shape ``(n, S)`` (every leaf of a structure gets a *trailing*
        axis of size S), and returns S values. ``'rows'``: the same with the batch axis
        first, x of shape ``(S, n)`` (a leading axis on every leaf). On JAX, torch and
        TensorFlow both map ``fun`` over the points, so it may be written for one point;
        torch calls it on the whole batch instead once that gave, on the first generation,
        exactly the mapped values.
        False: point by point. If ``fun`` cannot be mapped over a batch and ``vectorized``
        is None, it is evaluated point by point with a warning.
    strategy : str or callable
        One of scipy's names ('best1bin', 'best1exp', 'rand1bin', 'rand1exp', 'rand2bin',
        'rand2exp', 'best2bin', 'best2exp', 'currenttobest1bin', 'currenttobest1exp',
        'randtobest1bin', 'randtobest1exp'), or scipy's callable (which runs scipy's engine).
    updating : {'immediate', 'deferred'} or None
        None (default): 'deferred' when a generation is evaluated at once (batched or in
        parallel) or ``engine='vectorized'``, 'immediate' otherwise. Batching requires
        'deferred'.
    engine : {'auto', 'vectorized', 'scipy'}
        What runs the generations. 'vectorized': this package's engine, each generation a
        few NumPy operations over the whole population (deferred updating; no constraints,
        integrality or callable strategy). 'scipy': ``scipy.optimize.differential_evolution``.
        'auto' (default): 'vectorized' when it applies, else 'scipy'. The two engines draw
        different random numbers, so one seed gives each its own trajectory.
    workers, executor
        Evaluate each generation in parallel: ``workers`` local processes (-1: one per CPU;
        ``fun`` must be picklable) or a map-like callable, or ``executor``, any
        ``concurrent.futures.Executor`` or a ``dask.distributed.Client``. Alternatives to
        batching.
    polish : bool, str or dict
        True: polish the best member with ``am.minimize`` (L-BFGS-B, or trust-constr with
        constraints) and exact gradients. A method name or a dict of ``am.minimize``
        arguments chooses the local solve.
    constraints
        As for ``am.minimize``: dicts, ``NonlinearConstraint`` (functions of the parameter
        structure, in the framework) or ``LinearConstraint`` over the flat vector.
    integrality : optional
        Booleans mirroring x0's structure, or a flat array over the parameters.
    callback : callable, optional
        ``callback(intermediate_result)`` with ``x`` in x0's structure (``population`` stays
        flat, one row per member), or ``callback(x, convergence)``; returning True stops.
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
        scipy's fields with ``x`` (and ``jac`` when polished) in x0's structure; ``nfev``,
        ``njev`` (polish included), ``backend``, ``precision``, ``evaluation``
        ('batched', 'parallel' or 'pointwise') and ``engine`` ('vectorized' or 'scipy').

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import autominimize as am
    >>> def rastrigin(p):
    ...     x = p["x"]
    ...     return 10 * x.size + jnp.sum(x**2 - 10 * jnp.cos(2 * jnp.pi * x))
    >>> res = am.differential_evolution(rastrigin, {"x": [(-5.12, 5.12)] * 3}, rng=0)
    >>> res.evaluation, round(float(res.fun), 6)
    ('batched', 0.0)
    """
    check_constraints(constraints)
    check_rng(rng)
    check_rng(seed, "seed")
    check_callable(
        callback,
        "callback",
        calls=(("callback(intermediate_result)", (), {"intermediate_result": None}), ("callback(x, convergence)", (None,), {"convergence": None})),
    )
    mutation_scale(mutation)
    if not is_one_of(engine, ENGINES):
        raise ValueError(f"engine={engine!r}: use 'auto' (the vectorized engine when it applies), 'vectorized' or 'scipy'.")
    check_named({"maxiter": maxiter, "popsize": popsize, "tol": tol, "atol": atol, "recombination": recombination, "disp": disp}, **SETTINGS)
    problem, _, flat_bounds = build_problem(
        fun, x0, bounds, args, backend=backend, precision=precision, unpack=unpack, finite=True, error_handling=error_handling
    )
    if vectorized is True and problem.backend == "numpy":
        problem.objective.batched = ScipyLayout(problem)
    start = None if x0 is None else check_finite_start(problem.flat(x0, "x0"), flat_bounds, problem.spec)
    check_init(init, problem.n)
    return run_differential_evolution(
        problem,
        flat_bounds,
        start,
        strategy=strategy,
        maxiter=maxiter,
        popsize=popsize,
        tol=tol,
        mutation=mutation,
        recombination=recombination,
        rng=rng,
        seed=seed,
        callback=callback,
        disp=disp,
        polish=polish,
        init=init,
        atol=atol,
        updating=updating,
        workers=workers,
        executor=executor,
        constraints=constraints,
        integrality=integrality,
        vectorized=vectorized,
        engine=engine,
    )


def run_differential_evolution(
    problem: GlobalProblem,
    flat_bounds: tuple[np.ndarray, np.ndarray],
    x0: np.ndarray | None,
    *,
    callback: Callable | None,
    polish: Any,
    updating: str | None,
    workers: Any,
    executor: Any,
    constraints: Any,
    integrality: Any,
    vectorized: bool | str | None,
    rng: Any,
    seed: Any,
    strategy: str | Callable = "best1bin",
    engine: str = "auto",
    **options: Any,
) -> so.OptimizeResult:
    """Differential evolution of a built problem from the flat start ``x0`` (or None)."""
    mode = evaluation_mode(problem, vectorized, workers, executor, updating)
    if updating is None:
        updating = "deferred" if mode != "pointwise" or engine == "vectorized" else "immediate"
    if integrality is not None:
        integrality = flat_option(integrality, problem.spec, "integrality", bool)
    chosen = _choose_engine(engine, strategy, updating, constraints, integrality)
    polish_solver = _polisher(problem, polish, constraints)
    with running(problem), evaluator(problem, mode, vectorized is None, workers, executor) as (values, func, map_like):
        generation_callback = intermediate_callback(callback, problem, _old_style)
        scipy_constraints = []
        if chosen == "vectorized":
            result = differential_evolution_engine(
                values, flat_bounds, strategy=strategy, rng=make_rng(rng, seed), callback=generation_callback, x0=x0, **options
            )
        else:
            scipy_constraints = problem.scipy_constraints(constraints, "trust-constr")
            if mode == "batched":
                scipy_constraints = [columnwise(c) for c in scipy_constraints]
            seeding = {name: value for name, value in (("rng", rng), ("seed", seed)) if value is not None}
            result = so.differential_evolution(
                func,
                so.Bounds(*flat_bounds),
                strategy=strategy,
                callback=generation_callback,
                workers=map_like,
                constraints=scipy_constraints or (),
                vectorized=mode == "batched",
                updating=updating,
                polish=False,
                x0=x0,
                integrality=integrality,
                **seeding,
                **options,
            )
        if polish_solver is not None and not np.all(integrality if integrality is not None else False):
            _polish(result, problem, polish_solver, flat_bounds, integrality, bool(scipy_constraints))
    result = finish(result, problem, constrained=bool(constraints))
    result.evaluation = mode
    result.engine = chosen
    return result


ENGINES = ("auto", "vectorized", "scipy")


def _choose_engine(engine: str, strategy: Any, updating: str, constraints: Any, integrality: np.ndarray | None) -> str:
    """'vectorized' or 'scipy': what ``engine`` asks for, or what applies under 'auto'."""
    if not callable(strategy):
        parse_strategy(strategy)
    needs_scipy = [
        reason
        for reason, applies in (
            ("updating='immediate'", updating == "immediate"),
            ("constraints", bool(constraints)),
            ("integrality", integrality is not None and bool(np.any(integrality))),
            ("a callable strategy", callable(strategy)),
        )
        if applies
    ]
    if engine == "vectorized" and needs_scipy:
        raise ValueError(
            f"engine='vectorized' evolves whole generations with deferred updating and does not run "
            f"{' or '.join(needs_scipy)}; use engine='auto' or engine='scipy' for them."
        )
    return "scipy" if engine == "scipy" or needs_scipy else "vectorized"


def _old_style(callback: Callable, x: Any, result: so.OptimizeResult) -> Any:
    return callback(x, convergence=result.convergence)


def _polisher(problem: GlobalProblem, polish: Any, constraints: Any) -> LocalSolver | None:
    if polish is False or polish is None:
        return None
    if polish is True:
        kwargs = {"method": "trust-constr" if constraints else "L-BFGS-B"}
    elif isinstance(polish, str):
        if polish.lower() not in METHODS:
            raise ValueError(
                f"polish={polish!r} is not a scipy.optimize.minimize method; polish must be True, False, a method name "
                f"({', '.join(METHODS)}) or a dict of am.minimize arguments."
            )
        kwargs = {"method": polish}
    elif isinstance(polish, dict):
        kwargs = local_kwargs(polish, "polish")
    else:
        raise TypeError(f"polish must be True, False, a method name or a dict of am.minimize arguments; got {polish!r}.")
    if constraints:
        kwargs.setdefault("constraints", constraints)
    return LocalSolver(problem, kwargs, scipy_bounds=True)


def _polish(result: so.OptimizeResult, problem: GlobalProblem, solver: LocalSolver, bounds: tuple, integrality: Any, constrained: bool) -> None:
    """scipy's polishing rule: keep the local solution if it is better, successful and inside."""
    lb, ub = bounds[0].copy(), bounds[1].copy()
    if integrality is not None and np.any(integrality):
        lb[integrality] = ub[integrality] = result.x[integrality]
    if constrained and result.get("constr_violation", 0) > 0:
        warnings.warn(
            "differential evolution found no point satisfying the constraints; polishing from the least infeasible one.", UserWarning, stacklevel=3
        )
    local = solver(None, result.x, bounds=so.Bounds(lb, ub))
    result.nfev = result.nfev + local.get("nfev", 0)
    if local.fun < result.fun and local.success and np.all(local.x <= ub) and np.all(lb <= local.x):
        result.fun = local.fun
        result.x = local.x
        result.jac = local.get("jac")
        if constrained:
            result.maxcv = result.constr_violation = float(local.get("constr_violation", 0.0))
