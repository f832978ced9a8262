"""Global optimizers as ``torch.optim.Optimizer``\\s over ``model.parameters()``.

``step(closure)`` runs one whole global solve (basin hopping, differential evolution, SHGO
or dual annealing) on the closure's loss and leaves the best point in the parameters. Each
point is written into the parameters in place; population and sampling evaluations run the
closure under ``torch.no_grad()``, local solves are :class:`autominimize.torch.ScipyOptimizer`
steps with autograd gradients. gngdb/pytorch-minimize's class names are aliases with its
argument layout.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable

import numpy as np
import scipy.optimize as so
import torch

from ..backends.base import as_flat_float64
from ..bounds import normalize_bounds
from ..global_opt._problem import GlobalProblem, LocalSolver, local_kwargs, takes_bounds
from ..global_opt.basinhopping import SETTINGS as BH_SETTINGS
from ..global_opt.basinhopping import basinhopping, run_basinhopping
from ..global_opt.differential_evolution import SETTINGS as DE_SETTINGS
from ..global_opt.differential_evolution import differential_evolution, run_differential_evolution
from ..global_opt.dual_annealing import SETTINGS as DA_SETTINGS
from ..global_opt.dual_annealing import default_local_search, dual_annealing, run_dual_annealing
from ..global_opt.shgo import check_shgo_settings, run_shgo
from ..params import ParamSpec
from ..problem import Objective
from ..validation import check_known, check_named, check_torch_params
from .torch_closure import loss_value
from .torch_scipy import ScipyOptimizer

__all__ = [
    "BasinHopping",
    "DifferentialEvolution",
    "SHGO",
    "DualAnnealing",
    "BasinHoppingWrapper",
    "DifferentialEvolutionWrapper",
    "SHGOWrapper",
    "DualAnnealingWrapper",
]

#: ``ScipyOptimizer`` arguments a local solve may be given.
_LOCAL_KEYS = ("method", "jac", "hessp", "constraints", "tol", "callback", "options")


#: arguments of the am.* global solvers that the optimizers supply themselves
_SUPPLIED = {"fun", "func", "bounds", "args", "x0", "minimizer_kwargs", "vectorized", "backend", "precision", "unpack", "error_handling"}


def _accepted(entry: Callable) -> tuple[str, ...]:
    """The keyword arguments an optimizer passes on to the global solver ``entry``."""
    return tuple(name for name in inspect.signature(entry).parameters if name not in _SUPPLIED)


def _write(params: list[torch.Tensor], spec: ParamSpec, x: np.ndarray) -> None:
    source = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
    with torch.no_grad():
        for p, start, stop in zip(params, spec.offsets, spec.offsets[1:]):
            p.copy_(source[start:stop].view(p.shape).to(device=p.device, dtype=p.dtype))


class _ClosureValue:
    """The closure's loss at a flat point, computed without a graph where the closure allows."""

    extra_evaluations = 0

    def __init__(self, closure: Callable[[], Any], params: list[torch.Tensor], spec: ParamSpec):
        self.closure, self.params, self.spec = closure, params, spec

    def value(self, x: np.ndarray) -> float:
        _write(self.params, self.spec, as_flat_float64(x))
        try:
            with torch.no_grad():
                loss = self.closure()
        except RuntimeError as exc:
            if "does not require grad" not in str(exc):
                raise
            loss = self.closure()  # the closure calls backward: let it
        return loss_value(loss)


class _GlobalOptimizer(torch.optim.Optimizer):
    """Shared ``step``: the closure as a global problem, the best point written back."""

    #: the solver's arguments it takes, and how am.<solver> checks their values
    _ACCEPTED: tuple[str, ...] | None = None
    _RULES: dict = {}

    def __init__(self, params: Iterable, bounds: Any, minimizer_kwargs: dict | None, options: dict):
        super().__init__(check_torch_params(params, type(self).__name__), {})
        self.bounds = bounds
        self.minimizer_kwargs = local_kwargs(minimizer_kwargs, "minimizer_kwargs", allowed=_LOCAL_KEYS)
        self.minimizer_kwargs.setdefault("method", "L-BFGS-B")
        self.options = dict(options)
        if self._ACCEPTED is not None:  # checked here, as am.<solver> checks them, not deep in scipy
            check_known(self.options, self._ACCEPTED, f"{type(self).__name__} got unknown argument(s)")
            check_named(self.options, **self._RULES)
        self.result: so.OptimizeResult | None = None

    @property
    def res(self) -> so.OptimizeResult | None:
        """The last step's ``OptimizeResult`` (gngdb's name for :attr:`result`)."""
        return self.result
        #: the last step's scipy result: ``x`` a list of tensors like the parameters
        self.result: so.OptimizeResult | None = None

    def step(self, closure: Callable[[], Any]) -> torch.Tensor:  # type: ignore[override]
        """Run the global solve on the closure's loss; the parameters end at the best point.

        Parameters
        ----------
        closure : callable
            Re-evaluates the model and returns the loss (it may call ``loss.backward()``).

        Returns
        -------
        torch.Tensor
            The best loss found, with the first parameter's dtype and device.
        """
        if not callable(closure):
            raise TypeError(f"{type(self).__name__}.step needs closure: a function returning the loss; got {closure!r}.")
        params = [p for group in self.param_groups for p in group["params"] if p.requires_grad]
        if not params:
            raise ValueError(f"{type(self).__name__} has no parameter with requires_grad=True to optimize.")
        spec = ParamSpec.from_tree(params, name="params")
        x0 = spec.flatten(params, "params")
        flat_bounds = normalize_bounds(self.bounds, spec, params)
        self._local_gradient: str | None = None
        problem = self._problem(closure, params, spec)
        try:
            result = self._run(problem, x0, flat_bounds)
        except BaseException:
            _write(params, spec, x0)
            raise
        _write(params, spec, spec.flatten(result.x))
        if self._local_gradient is not None:
            result.local_gradient = self._local_gradient
            if self._local_gradient == "finite differences":
                result.message = (
                    f"{result.message} Local solves used scipy's finite differences: the closure's loss "
                    "carries no gradient (computed under torch.no_grad())."
                )
        self.result = result
        return torch.tensor(result.fun, dtype=params[0].dtype, device=params[0].device)

    def _problem(self, closure: Callable, params: list[torch.Tensor], spec: ParamSpec) -> GlobalProblem:
        def local_solve(x: np.ndarray, box: tuple | None, kwargs: dict) -> so.OptimizeResult:
            _write(params, spec, x)
            if self._local_gradient is None:
                self._local_gradient = "autograd" if _carries_gradient(closure) else "finite differences"
            if self._local_gradient == "finite differences" and kwargs.get("jac") is None:
                kwargs = {**kwargs, "jac": False}  # scipy's differences; derivative-free methods need none
            optimizer = ScipyOptimizer(params, bounds=None if box is None else so.Bounds(*box), **kwargs)
            optimizer.step(closure)
            result = optimizer.result
            result.x = spec.restore(result.x)
            if isinstance(result.get("jac"), np.ndarray) and result.jac.size == spec.size:
                result.jac = spec.restore(result.jac)
            return result

        precision = "/".join(sorted({str(p.dtype).removeprefix("torch.") for p in params}))
        objective = Objective(_ClosureValue(closure, params, spec), spec, differentiable=False)
        return GlobalProblem(spec, objective, local_solve, backend="torch", precision=precision)

    def _run(self, problem: GlobalProblem, x0: np.ndarray, bounds: tuple | None) -> so.OptimizeResult:
        raise NotImplementedError


def _carries_gradient(closure: Callable[[], Any]) -> bool:
    """Whether the closure's loss can be differentiated (not computed under ``torch.no_grad()``)."""
    with torch.enable_grad():
        loss = closure()
    return isinstance(loss, torch.Tensor) and loss.requires_grad


def _require_finite(bounds: tuple | None, name: str) -> tuple:
    if bounds is None or not (np.all(np.isfinite(bounds[0])) and np.all(np.isfinite(bounds[1]))):
        raise ValueError(f"{name} needs finite bounds for every parameter: (low, high), one entry per parameter, or scipy.optimize.Bounds.")
    return bounds


class BasinHopping(_GlobalOptimizer):
    """Basin hopping from the current parameters (``scipy.optimize.basinhopping``).

    Parameters
    ----------
    params : iterable of tensors or dicts
        ``model.parameters()``.
    minimizer_kwargs : dict, optional
        The local solves' ``ScipyOptimizer`` arguments: ``method`` (default L-BFGS-B),
        ``jac``, ``hessp``, ``constraints``, ``tol``, ``callback``, ``options``.
    bounds : optional
        Bounds of the local solves: ``(low, high)``, one entry per parameter, or
        ``scipy.optimize.Bounds`` over the flat vector.
    **basinhopping_kwargs
        ``niter``, ``T``, ``stepsize``, ``rng``, ``callback`` (x a list of tensors), ...

    Examples
    --------
    >>> import torch
    >>> import autominimize as am
    >>> from autominimize.integrations.torch_global import BasinHopping
    >>> w = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    >>> optimizer = BasinHopping([w], niter=30, rng=0)
    >>> loss = optimizer.step(lambda: torch.cos(14.5 * w - 0.3).sum() + ((w + 0.2) * w).sum())
    >>> round(w.item(), 4), round(loss.item(), 4)
    (-0.1951, -1.0009)
    """

    _ACCEPTED, _RULES = _accepted(basinhopping), BH_SETTINGS

    def __init__(self, params: Iterable, minimizer_kwargs: dict | None = None, bounds: Any = None, **basinhopping_kwargs: Any):
        super().__init__(params, bounds, minimizer_kwargs, basinhopping_kwargs)

    def _run(self, problem, x0, bounds):
        options = dict(self.options)
        solver = LocalSolver(problem, self.minimizer_kwargs, bounds if takes_bounds(self.minimizer_kwargs) else None)
        hooks = {key: options.pop(key, None) for key in ("take_step", "accept_test", "callback", "rng", "seed")}
        return run_basinhopping(problem, x0, solver, **hooks, **options)


class DifferentialEvolution(_GlobalOptimizer):
    """Differential evolution over the bounds, seeded with the current parameters.

    Parameters
    ----------
    params : iterable of tensors or dicts
        ``model.parameters()``; their current values are one member of the first population.
    bounds
        Finite: ``(low, high)``, one entry per parameter, or ``scipy.optimize.Bounds``.
    **de_kwargs
        ``scipy.optimize.differential_evolution``'s arguments (``maxiter``, ``popsize``,
        ``rng``, ``polish``, ``callback``, ...). The closure is evaluated point by point.
    """

    _ACCEPTED, _RULES = _accepted(differential_evolution), DE_SETTINGS

    def __init__(self, params: Iterable, bounds: Any, **de_kwargs: Any):
        super().__init__(params, bounds, None, de_kwargs)

    def _run(self, problem, x0, bounds):
        bounds = _require_finite(bounds, type(self).__name__)
        options = dict(self.options)
        hooks = {key: options.pop(key, default) for key, default in _DE_DEFAULTS.items()}
        start = np.clip(x0, *bounds)
        return run_differential_evolution(problem, bounds, start, vectorized=False, **hooks, **options)


_DE_DEFAULTS = {
    "callback": None,
    "polish": True,
    "updating": None,
    "workers": 1,
    "executor": None,
    "constraints": (),
    "integrality": None,
    "rng": None,
    "seed": None,
}


class SHGO(_GlobalOptimizer):
    """Simplicial homology global optimization over the bounds (``scipy.optimize.shgo``).

    Parameters
    ----------
    params : iterable of tensors or dicts
        ``model.parameters()``.
    bounds
        ``(low, high)``, one entry per parameter, or ``scipy.optimize.Bounds``.
    minimizer_kwargs : dict, optional
        The local solves' ``ScipyOptimizer`` arguments (default L-BFGS-B within shgo's boxes).
    **shgo_kwargs
        ``n``, ``iters``, ``options``, ``sampling_method``.
    """

    def __init__(self, params: Iterable, bounds: Any, minimizer_kwargs: dict | None = None, **shgo_kwargs: Any):
        super().__init__(params, bounds, minimizer_kwargs, shgo_kwargs)
        check_shgo_settings(self.options.get("n", 100), self.options.get("iters", 1), self.options.get("options"))

    def _run(self, problem, x0, bounds):
        lb, ub = bounds if bounds is not None else (np.full(problem.n, -np.inf), np.full(problem.n, np.inf))
        options = dict(self.options)
        settings = {key: options.pop(key, default) for key, default in _SHGO_DEFAULTS.items()}
        if options:
            raise TypeError(f"{type(self).__name__} got unknown shgo argument(s) {sorted(options)}; it accepts {', '.join(_SHGO_DEFAULTS)}.")
        solver = LocalSolver(problem, self.minimizer_kwargs, scipy_bounds=True)
        return run_shgo(problem, lb, ub, solver, constraints=None, workers=1, executor=None, **settings)


_SHGO_DEFAULTS = {"n": 100, "iters": 1, "options": None, "sampling_method": "simplicial"}


class DualAnnealing(_GlobalOptimizer):
    """Dual annealing from the current parameters (``scipy.optimize.dual_annealing``).

    Parameters
    ----------
    params : iterable of tensors or dicts
        ``model.parameters()``; their current values are the start.
    bounds
        Finite: ``(low, high)``, one entry per parameter, or ``scipy.optimize.Bounds``.
    minimizer_kwargs : dict, optional
        The local searches' ``ScipyOptimizer`` arguments (default: scipy's L-BFGS-B search).
    **da_kwargs
        ``maxiter``, ``initial_temp``, ``rng``, ``no_local_search``, ``callback``, ...
    """

    _ACCEPTED, _RULES = _accepted(dual_annealing), DA_SETTINGS

    def __init__(self, params: Iterable, bounds: Any, minimizer_kwargs: dict | None = None, **da_kwargs: Any):
        self._default_search = not minimizer_kwargs
        super().__init__(params, bounds, minimizer_kwargs, da_kwargs)

    def _run(self, problem, x0, bounds):
        bounds = _require_finite(bounds, type(self).__name__)
        kwargs = default_local_search(problem) if self._default_search else self.minimizer_kwargs
        solver = LocalSolver(problem, kwargs, bounds if takes_bounds(kwargs) else None)
        options = dict(self.options)
        hooks = {key: options.pop(key, None) for key in ("callback", "rng", "seed")}
        return run_dual_annealing(problem, bounds, np.clip(x0, *bounds), solver, **hooks, **options)


# -- gngdb/pytorch-minimize's names and argument layout ----------------------------------------
def _gngdb_minimizer(minimizer_args: dict | None) -> tuple[dict, Any]:
    """gngdb's ``minimizer_args`` (scipy.minimize arguments) as local arguments and bounds."""
    args = dict(minimizer_args or {})
    bounds = args.pop("bounds", None)
    if args.get("jac") is True:
        args["jac"] = None  # gngdb's "the closure gives the gradient": autograd here
    return args, bounds


class BasinHoppingWrapper(BasinHopping):
    """gngdb's ``BasinHoppingWrapper(params, minimizer_args, basinhopping_kwargs)``.

    ``minimizer_args`` are ``scipy.optimize.minimize`` arguments for the local solves
    (``method``, ``jac``, ``bounds``, ``constraints``, ``tol``, ``callback``, ``options``);
    scipy's default ``maxiter`` applies, not gngdb's 2.
    """

    def __init__(self, params: Iterable, minimizer_args: dict | None = None, basinhopping_kwargs: dict | None = None):
        local, bounds = _gngdb_minimizer(minimizer_args)
        super().__init__(params, local, bounds, **(basinhopping_kwargs or {}))


class DifferentialEvolutionWrapper(DifferentialEvolution):
    """gngdb's ``DifferentialEvolutionWrapper(params, de_kwargs)``; ``bounds`` is in ``de_kwargs``.

    Unlike gngdb's, the current parameters join the first population.
    """

    def __init__(self, params: Iterable, de_kwargs: dict):
        de_kwargs = dict(de_kwargs)
        if "bounds" not in de_kwargs:
            raise TypeError("DifferentialEvolutionWrapper: de_kwargs must contain 'bounds'.")
        super().__init__(params, **de_kwargs)


class SHGOWrapper(SHGO):
    """gngdb's ``SHGOWrapper(params, minimizer_args, shgo_kwargs)``; ``bounds`` is in ``shgo_kwargs``."""

    def __init__(self, params: Iterable, minimizer_args: dict | None = None, shgo_kwargs: dict | None = None):
        local, _ = _gngdb_minimizer(minimizer_args)
        shgo_kwargs = dict(shgo_kwargs or {})
        super().__init__(params, shgo_kwargs.pop("bounds", None), local, **shgo_kwargs)


class DualAnnealingWrapper(DualAnnealing):
    """gngdb's ``DualAnnealingWrapper(params, minimizer_args, da_kwargs)``; ``bounds`` is in
    ``da_kwargs``. (gngdb's own fails on scipy 1.17: it passes ``local_search_options``.)"""

    def __init__(self, params: Iterable, minimizer_args: dict | None = None, da_kwargs: dict | None = None):
        local, _ = _gngdb_minimizer(minimizer_args)
        da_kwargs = dict(da_kwargs or {})
        if "bounds" not in da_kwargs:
            raise TypeError("DualAnnealingWrapper: da_kwargs must contain 'bounds'.")
        super().__init__(params, da_kwargs.pop("bounds"), local or None, **da_kwargs)
