"""``am.multistart``: local solves from quasi-random starts, the distinct minima found."""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np
import scipy.optimize as so
from scipy.stats import qmc

from ._parallel import point_map
from ._problem import GlobalProblem, build_problem, check_finite_start, local_kwargs, running, takes_bounds

__all__ = ["multistart", "SAMPLINGS"]

SAMPLINGS = ("sobol", "lhs", "random")


def multistart(
    fun: Callable,
    bounds: Any,
    n_starts: int = 100,
    method: str | Callable | None = None,
    sampling: str = "sobol",
    *,
    x0: Any = None,
    args: tuple = (),
    minimizer_kwargs: dict | None = None,
    xtol: float = 1e-3,
    rng: Any = None,
    workers: int | Callable = 1,
    executor: Any = None,
    backend: str | None = None,
    precision: str | None = None,
    unpack: str = "auto",
) -> so.OptimizeResult:
    """Run ``am.minimize`` from ``n_starts`` points spread over the box; keep every minimum.

    Parameters
    ----------
    fun : callable
        The objective in NumPy, JAX, PyTorch or TensorFlow.
    bounds : bounds in any format ``am.minimize`` accepts, finite
        The box the starts are drawn from; the local solves stay in it when their method
        takes bounds. Without ``x0`` they also give the parameter structure (see
        ``am.differential_evolution``).
    n_starts : int
        The number of local solves.
    method : str or callable, optional
        Any ``am.minimize`` method; None picks L-BFGS-B (bounded).
    sampling : {'sobol', 'lhs', 'random'}
        Scrambled Sobol' points, Latin hypercube (both ``scipy.stats.qmc``) or uniform.
    x0 : optional
        The first start; it also gives the structure and array types of the results.
    minimizer_kwargs : dict, optional
        Other ``am.minimize`` arguments for every solve: ``jac``, ``hess``, ``hessp``,
        ``constraints``, ``tol``, ``callback``, ``options``, ``hvp_type``.
    xtol : float
        Two local solutions are the same minimum when no coordinate differs by more than
        ``xtol`` times the width of the box.
    rng : int or numpy.random.Generator, optional
        Seeds the starts; the same seed gives the same result.
    workers, executor
        Run the local solves in parallel: ``workers`` local processes (-1: one per CPU;
        ``fun`` and ``minimizer_kwargs`` must be picklable), or ``executor``, any
        ``concurrent.futures.Executor`` or a Dask client.
    backend, precision, unpack
        As for ``am.minimize``.

    Returns
    -------
    scipy.optimize.OptimizeResult
        The best local result's ``x`` (in x0's structure), ``fun``, ``jac``, plus
        ``minima``: the distinct local results, best first; ``local_results``: every local
        result, in the order of ``starts`` (flat, one row per start); ``success`` (some solve
        succeeded), ``nfev``/``njev``/``nhev``/``nhvp`` summed over the solves, ``nlocal``,
        ``backend`` and ``precision``.

    Examples
    --------
    >>> import numpy as np
    >>> import autominimize as am
    >>> def himmelblau(x, y):
    ...     return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2
    >>> res = am.multistart(himmelblau, {"x": (-5, 5), "y": (-5, 5)}, n_starts=32, rng=0, backend="numpy")
    >>> sorted((round(m.x["x"], 2), round(m.x["y"], 2)) for m in res.minima if m.fun < 1e-8)
    [(-3.78, -3.28), (-2.81, 3.13), (3.0, 2.0), (3.58, -1.85)]
    """
    if not isinstance(n_starts, (int, np.integer)) or isinstance(n_starts, bool) or n_starts < 1:
        raise ValueError(f"n_starts must be a positive integer; got {n_starts!r}.")
    kwargs = local_kwargs(minimizer_kwargs, "minimizer_kwargs", allowed=_KEYS)
    kwargs["method"] = method
    problem, template, (lb, ub) = build_problem(fun, x0, bounds, args, backend=backend, precision=precision, unpack=unpack, finite=True)
    starts = _starts(sampling, n_starts - (x0 is not None), problem.n, rng, lb, ub)
    if x0 is not None:
        starts = np.vstack([check_finite_start(problem.flat(x0, "x0"), (lb, ub), problem.spec), starts])
    box = (lb, ub) if takes_bounds(kwargs) else None
    parallel = executor is not None or workers not in (1, None)
    with running(problem):
        if parallel:
            task = _RemoteSolve(problem, fun, args, unpack, template, kwargs, box)
            with point_map(task, workers, executor, lambda count: None) as map_like:
                results = list(map_like(task, list(starts)))
            for result in results:
                problem.record_local(result)
        else:
            results = [problem.local(start, box, kwargs) for start in starts]
    return _collect(problem, results, starts, xtol * (ub - lb))


_KEYS = ("jac", "hess", "hessp", "constraints", "tol", "callback", "options", "hvp_type")


def _starts(sampling: str, count: int, n: int, rng: Any, lb: np.ndarray, ub: np.ndarray) -> np.ndarray:
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling={sampling!r} is not one of {SAMPLINGS}.")
    if count <= 0:
        return np.empty((0, n))
    if sampling == "random":
        unit = np.random.default_rng(rng).random((count, n))
    elif sampling == "lhs":
        unit = qmc.LatinHypercube(d=n, rng=rng).random(count)
    else:
        with warnings.catch_warnings():
            # Sobol' points balance best in powers of two; any count is still well spread.
            warnings.filterwarnings("ignore", message=".*balance properties of Sobol")
            unit = qmc.Sobol(d=n, rng=rng).random(count)
    return qmc.scale(unit, lb, ub)


class _RemoteSolve:
    """One local ``am.minimize`` solve from a flat start, picklable for other processes."""

    def __init__(self, problem: GlobalProblem, fun: Callable, args: tuple, unpack: str, template: Any, kwargs: dict, box: Any):
        self.fun, self.args, self.unpack, self.kwargs, self.box = fun, args, unpack, kwargs, box
        self.spec, self.backend, self.precision = problem.spec, problem.backend, problem.precision
        self.template = template if unpack == "kwargs" else None

    def __call__(self, start: np.ndarray) -> so.OptimizeResult:
        from .._minimize import minimize

        bounds = None if self.box is None else so.Bounds(*self.box)
        return minimize(
            self.fun, self.spec.restore(start), args=self.args, bounds=bounds, backend=self.backend,
            precision=self.precision, unpack=self.unpack, **self.kwargs,
        )


def _collect(problem: GlobalProblem, results: list, starts: np.ndarray, tolerance: np.ndarray) -> so.OptimizeResult:
    """The best result, and the distinct minima: solutions within ``tolerance`` are one."""
    flats = [problem.flat(r.x) for r in results]
    values = np.array([float(r.fun) if np.isfinite(r.fun) else np.inf for r in results])
    order = np.argsort(values, kind="stable")
    kept: list[int] = []
    for i in order:
        if not any(np.all(np.abs(flats[i] - flats[j]) <= tolerance) for j in kept):
            kept.append(int(i))
    best = results[order[0]]
    minima = [results[i] for i in kept]
    return so.OptimizeResult(
        x=best.x, fun=float(best.fun), jac=best.get("jac"), success=any(r.success for r in results),
        message=f"{len(results)} local solves found {len(minima)} distinct minima.",
        minima=minima, local_results=results, starts=starts, nlocal=problem.n_local,
        backend=problem.backend, precision=problem.precision, **problem.counts(),
    )
