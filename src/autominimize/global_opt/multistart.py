"""``am.multistart``: local solves from quasi-random starts, the distinct minima found."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Callable

import numpy as np
import scipy.optimize as so

from ..native import native_method_name
from ..params import ParamSpec
from ._parallel import point_map
from ._build import build_problem
from ._problem import GlobalProblem, local_kwargs, takes_bounds
from ._running import check_finite_start, running
from ..validation import check_rng, check_settings, check_switch, check_tolerance, check_workers, is_one_of

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
    batched: bool | None = None,
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
        Any ``am.minimize`` method; None picks L-BFGS-B (bounded). ``'lbfgs-native'`` on
        JAX or torch runs every solve at once (see ``batched``).
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
    batched : bool, optional
        Run all the local solves as **one** batched L-BFGS (``am.minimize(..., batch=True)``:
        the function mapped with ``jax.vmap`` / ``torch.func.vmap``, each start stopping on its
        own, within the box). None (default) does so when ``method='lbfgs-native'``, the
        backend is JAX or torch and no ``workers``/``executor`` are given; True requires it;
        False solves one start after another. The batched solves search with strong Wolfe
        along the straight line up to the box (``options={'line_search': 'wolfe'}``, see
        :class:`~autominimize.native.batched.BatchedLBFGS`); with
        ``minimizer_kwargs={'options': {'line_search': 'armijo'}}`` every start's result
        equals the unbatched ``'lbfgs-native'`` solve within the box (both then use the
        Armijo search along the projection arc).
    backend, precision, unpack
        As for ``am.minimize``.

    Returns
    -------
    scipy.optimize.OptimizeResult
        The best local result's ``x`` (in x0's structure), ``fun``, ``jac``, plus
        ``minima``: the distinct local results, best first; ``local_results``: every local
        result, in the order of ``starts`` (flat, one row per start); ``success`` (some solve
        succeeded), ``nfev``/``njev``/``nhev``/``nhvp`` summed over the solves, ``nlocal``,
        ``batched`` (whether the solves ran as one batch), ``backend`` and ``precision``.

    Examples
    --------
    >>> import numpy as np
    >>> import autominimize as am
    >>> def himmelblau(x, y):
    ...     return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2
    >>> res = am.multistart(himmelblau, {"x": (-5, 5), "y": (-5, 5)}, n_starts=32, rng=0, backend="numpy")
    >>> sorted((round(m.x["x"], 2), round(m.x["y"], 2)) for m in res.minima if m.fun < 1e-8)
    [(-3.78, -3.28), (-2.81, 3.13), (3.0, 2.0), (3.58, -1.85)]
    >>> res = am.multistart(himmelblau, {"x": (-5, 5), "y": (-5, 5)}, n_starts=32, method="lbfgs-native", rng=0, backend="jax")
    >>> res.batched, len([m for m in res.minima if m.fun < 1e-8])
    (True, 4)
    """
    check_settings({"n_starts": n_starts}, positive=("n_starts",))
    check_switch(batched, "batched", none=True)
    check_rng(rng)
    check_tolerance(xtol, "xtol")
    kwargs = local_kwargs(minimizer_kwargs, "minimizer_kwargs", allowed=_KEYS)
    kwargs["method"] = method
    problem, template, (lb, ub) = build_problem(fun, x0, bounds, args, backend=backend, precision=precision, unpack=unpack, finite=True)
    starts = _starts(sampling, n_starts - (x0 is not None), problem.n, rng, lb, ub)
    if x0 is not None:
        starts = np.vstack([check_finite_start(problem.flat(x0, "x0"), (lb, ub), problem.spec), starts])
    native = native_method_name(method)
    box = (lb, ub) if (native == "lbfgs-native" if native else takes_bounds(kwargs)) else None
    check_workers(workers)
    parallel = executor is not None or workers not in (1, None)
    batched = _batched(batched, native, problem.backend, parallel)
    with running(problem):
        if batched:
            # the batched bounded L-BFGS searches with strong Wolfe unless told otherwise
            options = {"line_search": "wolfe", **(kwargs.get("options") or {})}
            results = _batched_solves(problem, fun, args, unpack, starts, box, {**kwargs, "options": options})
            for result in results:
                problem.record_local(result)
        elif parallel:
            task = _RemoteSolve(problem, fun, args, unpack, template, kwargs, box)
            with point_map(task, workers, executor, lambda count: None) as map_like:
                results = list(map_like(task, list(starts)))
            for result in results:
                problem.record_local(result)
        else:
            results = [problem.local(start, box, kwargs) for start in starts]
    result = _collect(problem, results, starts, xtol * (ub - lb))
    result.batched = batched
    return result


_KEYS = ("jac", "hess", "hessp", "constraints", "tol", "callback", "options", "hvp_type")


def _starts(sampling: str, count: int, n: int, rng: Any, lb: np.ndarray, ub: np.ndarray) -> np.ndarray:
    if not is_one_of(sampling, SAMPLINGS):
        raise ValueError(f"sampling={sampling!r} is not one of {SAMPLINGS}.")
    if count <= 0:
        return np.empty((0, n))
    if sampling == "random":
        unit = np.random.default_rng(rng).random((count, n))
    else:
        unit = _quasi_random(sampling, count, n, rng)
    return lb + unit * (ub - lb)  # qmc.scale refuses a fixed variable (lb = ub)


def _quasi_random(sampling: str, count: int, n: int, rng: Any) -> np.ndarray:
    """``count`` points of ``scipy.stats.qmc``'s Latin hypercube or scrambled Sobol' sequence."""
    from scipy.stats import qmc  # 0.6 s to import: not for uniform starts

    if sampling == "lhs":
        return qmc.LatinHypercube(d=n, rng=rng).random(count)
    with warnings.catch_warnings():
        # Sobol' points balance best in powers of two; any count is still well spread.
        warnings.filterwarnings("ignore", message=".*balance properties of Sobol")
        return qmc.Sobol(d=n, rng=rng).random(count)


def _batched(batched: bool | None, native: str | None, backend: str, parallel: bool) -> bool:
    """Whether the local solves run as one batched native L-BFGS (see ``batched``)."""
    possible = native == "lbfgs-native" and backend in ("jax", "torch") and not parallel
    if batched and not possible:
        raise ValueError(
            "batched=True runs the local solves as one method='lbfgs-native' solve mapped with "
            f"jax.vmap or torch.func.vmap, without workers or executor; here method is "
            f"{native or 'not lbfgs-native'}, the backend {backend!r}{' and workers are given' if parallel else ''}."
        )
    return possible if batched is None else bool(batched)


def _batched_solves(problem: GlobalProblem, fun: Callable, args: tuple, unpack: str, starts: np.ndarray, box: Any, kwargs: dict) -> list:
    """Every start solved in one ``am.minimize(..., batch=True)``, one result per start."""
    from .._minimize import minimize
    from ..drivers.native.batched import unstack

    count = starts.shape[0]
    stacked = ParamSpec(
        problem.spec.treedef,
        tuple(
            dataclasses.replace(leaf, shape=(count,) + leaf.shape, kind="numpy" if leaf.kind == "python" else leaf.kind)
            for leaf in problem.spec.leaves
        ),
    )
    parts = [starts[:, a:b].reshape(-1) for a, b in zip(problem.spec.offsets, problem.spec.offsets[1:])]
    batch = minimize(
        fun,
        stacked.restore(np.concatenate(parts)),
        args=args,
        batch=True,
        backend=problem.backend,
        precision=problem.precision,
        unpack=unpack,
        bounds=None if box is None else so.Bounds(*box),
        **kwargs,
    )
    rows, jacs = unstack(batch.x)[2], unstack(batch.jac)[2]
    return [
        so.OptimizeResult(
            x=problem.spec.restore(rows[i]),
            fun=float(batch.fun[i]),
            jac=problem.spec.restore(jacs[i]),
            nit=int(batch.nit[i]),
            nfev=int(batch.nfev[i]),
            njev=int(batch.njev[i]),
            nhev=0,
            nhvp=0,
            success=bool(batch.success[i]),
            status=int(batch.status[i]),
            message=batch.messages[i],
            backend=batch.backend,
            precision=batch.precision,
        )
        for i in range(count)
    ]


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
            self.fun,
            self.spec.restore(start),
            args=self.args,
            bounds=bounds,
            backend=self.backend,
            precision=self.precision,
            unpack=self.unpack,
            **self.kwargs,
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
        x=best.x,
        fun=float(best.fun),
        jac=best.get("jac"),
        success=any(r.success for r in results),
        message=f"{len(results)} local solves found {len(minima)} distinct minima.",
        minima=minima,
        local_results=results,
        starts=starts,
        nlocal=problem.n_local,
        backend=problem.backend,
        precision=problem.precision,
        **problem.counts(),
    )
