"""``am.basinhopping``: random hops between local solves made by ``am.minimize``."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import scipy.optimize as so

from ._build import build_problem
from ._problem import GlobalProblem, LocalSolver, local_kwargs, structured_result
from ._running import finish, running, structured_callback
from ..validation import check_callable, check_named, check_rng

__all__ = ["basinhopping", "run_basinhopping"]


#: how am.basinhopping's settings are checked (interval=0 divides by zero in scipy)
SETTINGS: dict = {
    "counts": ("niter", "interval", "niter_success"),
    "tolerances": ("T", "stepsize"),
    "positive": ("interval",),
    "intervals": {"target_accept_rate": (0.0, 1.0, "()"), "stepwise_factor": (0.0, 1.0, "()")},
    "switches": ("disp",),
}


def basinhopping(
    func: Callable,
    x0: Any,
    niter: int = 100,
    T: float = 1.0,
    stepsize: float = 0.5,
    minimizer_kwargs: dict | None = None,
    take_step: Callable | None = None,
    accept_test: Callable | None = None,
    callback: Callable | None = None,
    interval: int = 50,
    disp: bool = False,
    niter_success: int | None = None,
    rng: Any = None,
    *,
    target_accept_rate: float = 0.5,
    stepwise_factor: float = 0.9,
    seed: Any = None,
    backend: str | None = None,
    precision: str | None = None,
    unpack: str = "auto",
    error_handling: str = "raise",
) -> so.OptimizeResult:
    """Minimize ``func`` by basin hopping, each local solve an ``am.minimize`` call.

    The arguments are ``scipy.optimize.basinhopping``'s, with the parameters in x0's
    structure everywhere.

    Parameters
    ----------
    func : callable
        The objective in NumPy, JAX, PyTorch or TensorFlow, taking x0's structure.
    x0 : array, scalar, tensor or nested structure of those
        The start; ``res.x`` comes back in its structure and array types.
    minimizer_kwargs : dict, optional
        ``am.minimize`` arguments for the local solves: ``method`` (any of its methods, scipy's
        default when absent), ``jac``, ``hess``, ``hessp``, ``bounds`` (any format; a hop
        landing outside is clipped into them), ``constraints``, ``tol``, ``callback``,
        ``options``, ``hvp_type``; and ``args``, extra arguments of ``func`` everywhere.
    take_step : callable, optional
        ``take_step(x) -> x`` on x0's structure; a ``stepsize`` attribute is adapted as
        scipy does.
    accept_test : callable, optional
        ``accept_test(f_new=, x_new=, f_old=, x_old=)`` with x's in x0's structure.
    callback : callable, optional
        ``callback(x, f, accept)`` after each hop, x in x0's structure; True stops.
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
        scipy's fields with ``x`` and ``lowest_optimization_result.x`` in x0's structure,
        ``nfev``/``njev``/``nhev``/``nhvp`` over every evaluation, ``nlocal`` local solves,
        ``backend`` and ``precision``.

    Examples
    --------
    >>> import numpy as np
    >>> import autominimize as am
    >>> def f(p):
    ...     return np.cos(14.5 * p["x"] - 0.3) + (p["x"] + 0.2) * p["x"]
    >>> res = am.basinhopping(f, {"x": 1.0}, niter=50, rng=1, backend="numpy")
    >>> round(res.x["x"], 4), round(res.fun, 4)
    (-0.1951, -1.0009)
    """
    if x0 is None:
        raise TypeError("x0 is required: basinhopping starts its local solves from x0 (an array, a scalar, a tensor or a nested structure of those).")
    kwargs = local_kwargs(minimizer_kwargs, "minimizer_kwargs", allowed=_KEYS)
    args = kwargs.pop("args", ())
    settings = {"niter": niter, "interval": interval, "niter_success": niter_success, "T": T, "stepsize": stepsize}
    check_named({**settings, "target_accept_rate": target_accept_rate, "stepwise_factor": stepwise_factor, "disp": disp}, **SETTINGS)
    check_rng(rng)
    check_rng(seed, "seed")
    check_callable(callback, "callback", calls=(("callback(x, f, accept)", (None, None, None), {}),))
    check_callable(take_step, "take_step", calls=(("take_step(x)", (None,), {}),))
    accept = {"f_new": None, "x_new": None, "f_old": None, "x_old": None}
    check_callable(accept_test, "accept_test", calls=(("accept_test(f_new=, x_new=, f_old=, x_old=)", (), accept),))
    problem, _, flat_bounds = build_problem(
        func,
        x0,
        kwargs.get("bounds"),
        args,
        backend=backend,
        precision=precision,
        unpack=unpack,
        finite=False,
        error_handling=error_handling,
        fun_name="func",
    )
    kwargs.pop("bounds", None)
    return run_basinhopping(
        problem,
        problem.flat(x0),
        LocalSolver(problem, kwargs, flat_bounds),
        take_step=take_step,
        accept_test=accept_test,
        callback=callback,
        rng=rng,
        seed=seed,
        niter=niter,
        T=T,
        stepsize=stepsize,
        interval=interval,
        disp=disp,
        niter_success=niter_success,
        target_accept_rate=target_accept_rate,
        stepwise_factor=stepwise_factor,
    )


def run_basinhopping(
    problem: GlobalProblem,
    x0: np.ndarray,
    solver: LocalSolver,
    *,
    take_step: Callable | None,
    accept_test: Callable | None,
    callback: Callable | None,
    rng: Any,
    seed: Any,
    **options: Any,
) -> so.OptimizeResult:
    """Basin hopping of a built problem from the flat ``x0``, local solves by ``solver``."""
    options.update({name: value for name, value in (("rng", rng), ("seed", seed)) if value is not None})
    with running(problem):
        result = so.basinhopping(
            problem.value,
            x0,
            minimizer_kwargs={"method": solver},
            take_step=None if take_step is None else _StructuredStep(take_step, problem),
            accept_test=None if accept_test is None else _structured_test(accept_test, problem),
            callback=structured_callback(callback, problem),
            **options,
        )
    result.lowest_optimization_result = structured_result(result.lowest_optimization_result, problem.spec)
    return finish(result, problem)


_KEYS = ("args", "method", "jac", "hess", "hessp", "bounds", "constraints", "tol", "callback", "options", "hvp_type")


class _StructuredStep:
    """The user's ``take_step`` on x0's structure; its ``stepsize`` attribute, if it has one,
    is exposed so that scipy's adaptive step size adjusts it."""

    def __init__(self, take_step: Callable, problem: GlobalProblem):
        if not callable(take_step):
            raise TypeError(f"take_step must be callable; got {type(take_step).__name__}.")
        self._take_step = take_step
        self._problem = problem

    @property
    def stepsize(self) -> float:
        return self._take_step.stepsize  # AttributeError (so hasattr is False) when it has none

    @stepsize.setter
    def stepsize(self, value: float) -> None:
        self._take_step.stepsize = value

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._problem.flat(self._take_step(self._problem.restore(x)), "take_step's result")


def _structured_test(accept_test: Callable, problem: GlobalProblem) -> Callable:
    if not callable(accept_test):
        raise TypeError(f"accept_test must be callable; got {type(accept_test).__name__}.")

    def test(f_new: float, x_new: np.ndarray, f_old: float, x_old: np.ndarray) -> Any:
        return accept_test(f_new=f_new, x_new=problem.restore(x_new), f_old=f_old, x_old=problem.restore(x_old))

    return test
