"""``am.torch.ScipyOptimizer`` and ``MinimizeWrapper``: a ``torch.optim.Optimizer`` whose
``step(closure)`` runs one whole scipy solve (what each offers is in :mod:`autominimize.torch`).

The closure becomes flat functions in :mod:`.torch_closure`; the solve is am.minimize's
scipy pipeline, through :mod:`.solve`.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable

import numpy as np
import scipy.optimize as so
import torch

from ..backends.base import as_flat_float64
from ..bounds import BoundsError, normalize_bounds
from ..drivers.methods import method_name
from ..drivers.scipy_pipeline import MethodPlan, has_constraints
from ..params import ParamSpec
from ..validation import check_callable, check_known, check_options, check_state_dict, check_switches, check_tolerance, check_torch_params
from .solve import integration_plan, solve
from .torch_autograd import ParameterWriter
from .torch_closure import ClosureFunctions, ConstraintFunctions, functional_objective, is_model_closure, require_no_parameters

__all__ = ["ScipyOptimizer", "MinimizeWrapper"]


class ScipyOptimizer(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` whose ``step(closure)`` runs one whole scipy solve.

    Parameters
    ----------
    params : iterable of tensors or of dicts
        ``model.parameters()`` or param groups. Parameters with ``requires_grad=False`` are
        left unchanged. A group may set its own ``'bounds'``, read against that group's
        parameters.
    method : str or callable, default 'L-BFGS-B'
        Any ``scipy.optimize.minimize`` method; None picks scipy's default for the problem
        (BFGS, whose dense n x n matrix rarely suits a model, L-BFGS-B or SLSQP).
    bounds : optional
        ``(low, high)`` for every parameter; a dict ``{parameter: (low, high)}``; a list with
        one entry per parameter, each None, ``(low, high)`` broadcast to the parameter's shape
        (TF1's ``var_to_bounds`` rule) or per-element pairs; or ``scipy.optimize.Bounds`` over
        the flat vector. Only methods that honour bounds accept them.
    constraints : dict, list of dicts, LinearConstraint or NonlinearConstraint
        Constraint functions take no arguments and read the parameters, like the closure
        (``{'type': 'ineq', 'fun': lambda: 1 - model.weight.sum()}``); their Jacobians (and
        trust-constr's Hessians) come from autograd. ``LinearConstraint.A`` acts on the flat
        vector of the parameters in order.
    options, tol : optional
        As in ``scipy.optimize.minimize``; ``options=None`` keeps scipy's defaults.
    callback : callable, optional
        scipy's callback; ``x`` arrives as a list of tensors like the parameters.
    jac : None, True, False, '2-point' or '3-point'
        None or True: exact gradients by autograd. The others ask scipy for finite differences.
    hessp : bool
        trust-constr only: Hessian-vector products instead of the full Hessian.
    history, log, progress
        As in ``am.minimize``: ``result.history`` records every closure run and iteration
        (``history=False`` records nothing), ``log`` is an SQLite log (a path or ``am.SQLiteLog``) that gets
        one run per ``step``, ``progress=True`` shows a tqdm bar.

    Attributes
    ----------
    result : scipy.optimize.OptimizeResult or None
        The last step's result: flat float64 ``x`` and ``jac`` over the optimized parameters
        in order, ``nfev``/``njev``/``nhev``/``nhvp`` counts, ``backend``, ``precision`` and
        ``history``.

    Notes
    -----
    The closure either calls ``loss.backward()`` and returns the loss (as for
    ``torch.optim.LBFGS``) or only returns the loss. Derivative-free methods call it under
    ``torch.no_grad()``; Hessian and HVP methods differentiate a returned loss twice, or use
    a Closure object's ``loss(model)`` through ``torch.func.functional_call``. After ``step``
    the parameters hold ``result.x`` and ``p.grad`` the gradient there (None when the method
    computed none). If the solve raises, the parameters are restored to their starting values;
    a KeyboardInterrupt (Ctrl-C) ends it at the best point evaluated, as in ``am.minimize``.

    Examples
    --------
    >>> import torch
    >>> import autominimize as am
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <...>
    >>> X = torch.randn(50, 3)
    >>> y = X @ torch.tensor([1.0, -2.0, 0.5]) + 0.3
    >>> model = torch.nn.Linear(3, 1)
    >>> optimizer = am.torch.ScipyOptimizer(model.parameters(), method="L-BFGS-B")
    >>> def closure():
    ...     optimizer.zero_grad()
    ...     loss = torch.mean((model(X).squeeze(1) - y) ** 2)
    ...     loss.backward()
    ...     return loss
    >>> loss = optimizer.step(closure)
    >>> [round(v, 3) for v in model.weight.flatten().tolist()], round(model.bias.item(), 3)
    ([1.0, -2.0, 0.5], 0.3)
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        method: str | Callable | None = "L-BFGS-B",
        bounds: Any = None,
        constraints: Any = (),
        options: dict | None = None,
        tol: float | None = None,
        callback: Callable | None = None,
        *,
        jac: bool | str | None = None,
        hessp: bool = False,
        history: bool = True,
        log: str | os.PathLike | None = None,
        progress: bool = False,
    ):
        if isinstance(method, str) or method is None:
            method_name(method, False, False)  # an unknown name fails here, not at step
        elif not callable(method):
            raise TypeError(f"method must be a scipy method name or a callable; got {type(method).__name__}.")
        if options is not None and not isinstance(options, dict):
            raise TypeError(f"options must be a dict of scipy solver options or None; got {type(options).__name__}.")
        check_options(options, method)  # counts, tolerances and switches, as am.minimize checks them
        check_switches(hessp=hessp, history=history, progress=progress)
        if tol is not None:
            check_tolerance(tol, "tol")
        check_callable(callback, "callback")
        super().__init__(check_torch_params(params, type(self).__name__), {"bounds": bounds})
        self.method = method
        self.constraints = constraints
        self.options = options
        self.tol = tol
        self.callback = callback
        self.jac = jac
        self.hessp = hessp
        self.observing = {"history": history, "log": log, "progress": progress}
        self.result: so.OptimizeResult | None = None

    def step(self, closure: Callable[[], Any]) -> torch.Tensor:  # type: ignore[override]
        """Minimize the closure's loss; the parameters end at the solution.

        Parameters
        ----------
        closure : callable
            Re-evaluates the model and returns the loss (calling ``loss.backward()`` itself
            or not), or a Closure object with ``.model`` and a static ``loss(model)``.

        Returns
        -------
        torch.Tensor
            The loss at the solution, a 0-d tensor with the first parameter's dtype and device.
        """
        if not callable(closure):
            raise TypeError(f"ScipyOptimizer.step needs closure: a function that re-evaluates the model and returns the loss; got {closure!r}.")
        params, bounds = self._problem()
        spec = ParamSpec.from_tree(params, name="params")
        x0 = spec.flatten(params, name="params")
        writer = ParameterWriter(params, spec)
        plan = integration_plan(
            self.method, has_bounds=bounds is not None, has_constraints=has_constraints(self.constraints), jac=self.jac, hessp=self.hessp
        )
        functions = self._functions(closure, plan, writer, spec)

        def call_flat(function: Callable, args: tuple) -> Callable[[np.ndarray], Any]:
            require_no_parameters(function, args, "a constraint 'jac'")

            def call(x: np.ndarray) -> Any:
                writer.load(as_flat_float64(x))
                return function(*args)

            return call

        try:
            result = solve(
                plan,
                functions,
                spec,
                x0,
                bounds=bounds,
                constraints=self.constraints,
                compile_vector=lambda fun, args: ConstraintFunctions(fun, args, writer),
                make_call=call_flat,
                tol=self.tol,
                options=self.options,
                callback=self.callback,
                precision="/".join(sorted({str(p.dtype).removeprefix("torch.") for p in params})),
                backend="torch",
                **self.observing,
            )
        except BaseException:
            writer.load(x0)
            raise
        writer.load(result.x)
        gradient = result.get("grad") if plan.name == "trust-constr" else result.get("jac")
        has_gradient = isinstance(gradient, np.ndarray) and gradient.size == spec.size
        for p, g in zip(params, writer.split(gradient) if has_gradient else [None] * len(params)):
            p.grad = g
        if is_model_closure(closure):
            # gngdb's Closure records what its __call__ sees (its tests read closure._loss after
            # step); second-order and derivative-free methods used loss(model) instead.
            with torch.enable_grad():
                closure()
        self.result = result
        return torch.tensor(result.fun, dtype=params[0].dtype, device=params[0].device)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group; its keys are ``'params'`` and ``'bounds'`` (any other would be ignored)."""
        check_known(param_group, ("params", "bounds"), f"{type(self).__name__}: a param group has unknown key(s)", ValueError)
        super().add_param_group(param_group)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state saved by ``state_dict()`` of this kind of optimizer (not another's)."""
        check_state_dict(state_dict, ("bounds",), (), type(self).__name__)
        super().load_state_dict(state_dict)

    def _functions(self, closure: Any, plan: MethodPlan, writer: ParameterWriter, spec: ParamSpec) -> Any:
        model_closure = is_model_closure(closure)
        if model_closure and plan.second_order is not None:
            return functional_objective(closure, writer.params, spec)
        if model_closure and plan.derivative_free:
            # loss(model) computes no gradient; __call__ would call backward.
            model, loss = closure.model, closure.loss
            return ClosureFunctions(lambda: loss(model), writer, second_order=False)
        return ClosureFunctions(closure, writer, second_order=plan.second_order is not None)

    def _problem(self) -> tuple[list[torch.Tensor], tuple[np.ndarray, np.ndarray] | None]:
        """The trainable parameters in group order, and their flat bounds (or None)."""
        all_ids = {id(p) for group in self.param_groups for p in group["params"]}
        params: list[torch.Tensor] = []
        lows: list[np.ndarray] = []
        highs: list[np.ndarray] = []
        bounded = False
        for index, group in enumerate(self.param_groups):
            group_params = list(group["params"])
            trainable = np.concatenate([np.full(p.numel(), p.requires_grad) for p in group_params] or [np.zeros(0, bool)])
            params += [p for p in group_params if p.requires_grad]
            if group["bounds"] is None or not group_params:
                size = int(trainable.sum())
                lows.append(np.full(size, -np.inf))
                highs.append(np.full(size, np.inf))
                continue
            bounded = True
            where = "bounds" if len(self.param_groups) == 1 else f"param_groups[{index}]['bounds']"
            entries = _bounds_by_tensor(group["bounds"], group_params, all_ids, where)
            try:
                lb, ub = normalize_bounds(entries, ParamSpec.from_tree(group_params, name="params"))
            except BoundsError as exc:
                if len(self.param_groups) == 1:
                    raise
                raise BoundsError(f"{where}: {exc}") from None
            lows.append(lb[trainable])
            highs.append(ub[trainable])
        if not params:
            raise ValueError(
                "ScipyOptimizer has no parameter with requires_grad=True to optimize; pass model.parameters() with at least one trainable parameter."
            )
        return params, (np.concatenate(lows), np.concatenate(highs)) if bounded else None


def _bounds_by_tensor(bounds: Any, group_params: list[torch.Tensor], all_ids: set[int], where: str) -> Any:
    """``{parameter: (low, high)}`` as a list with one entry per parameter of the group."""
    if not isinstance(bounds, dict):
        return bounds
    by_id = {id(key): value for key, value in bounds.items()}
    if not all(isinstance(key, torch.Tensor) for key in bounds) or not by_id.keys() <= all_ids:
        raise BoundsError(f"{where}: a dict of bounds must map parameters of this optimizer (the tensors themselves) to (low, high) pairs.")
    return [by_id.get(id(p)) for p in group_params]


class MinimizeWrapper(ScipyOptimizer):
    """gngdb/pytorch-minimize's ``MinimizeWrapper(params, minimizer_args)``, without its faults.

    ``minimizer_args`` holds ``scipy.optimize.minimize`` arguments: ``method`` (required),
    ``jac`` (True: autograd, the default; False: none for derivative-free methods, scipy's
    finite differences for the others), ``bounds``, ``constraints``, ``tol``, ``callback`` and
    ``options``. It is not modified. Differences from gngdb: scipy's default ``maxiter``
    when ``options`` has none (gngdb set 2), float32 models work with every method (float64
    only at the scipy boundary), ``step`` returns the final loss, Hessians and HVPs come from
    autograd without copying the model, and constraint functions take no arguments and read
    the parameters (see :class:`ScipyOptimizer`). The result is ``optimizer.res``.

    Examples
    --------
    >>> import torch
    >>> import autominimize as am
    >>> w = torch.nn.Parameter(torch.tensor([3.0, -1.0]))
    >>> optimizer = am.torch.MinimizeWrapper([w], dict(method="Nelder-Mead", jac=False))
    >>> loss = optimizer.step(lambda: ((w - 1.0) ** 2).sum())
    >>> [round(v, 3) for v in w.tolist()], optimizer.res.success
    ([1.0, 1.0], True)
    """

    _ACCEPTED = ("method", "jac", "bounds", "constraints", "tol", "callback", "options", "history", "log", "progress")

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]], minimizer_args: dict[str, Any]):
        if not isinstance(minimizer_args, dict) or "method" not in minimizer_args:
            raise TypeError(f"minimizer_args must be a dict with at least 'method' (a scipy.optimize.minimize method name); got {minimizer_args!r}.")
        unknown = sorted(set(minimizer_args) - set(self._ACCEPTED))
        if unknown:
            raise ValueError(f"minimizer_args has unknown keys {unknown}; accepted keys are {list(self._ACCEPTED)}.")
        super().__init__(params, **minimizer_args)

    @property
    def res(self) -> so.OptimizeResult | None:
        """The last step's ``OptimizeResult`` (gngdb's name for :attr:`result`)."""
        return self.result
