"""The scipy solve behind ``am.torch.ScipyOptimizer``, ``MinimizeWrapper``, ``function_factory``
and ``load_params`` (what each offers is in :mod:`autominimize.torch`).

The closure is evaluated at each point scipy asks for by writing the point into the
parameters in place. It may call ``loss.backward()`` itself (the gradient is read from
``p.grad``, as ``torch.optim.LBFGS`` does) or only return the loss (it is then
differentiated here: once for gradients, twice for Hessian-vector products and Hessians).
A gngdb ``Closure`` object (``.model`` and a static ``loss(model)``) gives second-order
methods the loss as a pure function of the parameters through ``torch.func.functional_call``.
"""

from __future__ import annotations

import inspect
import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import optree
import scipy.optimize as so
import torch
from torch.func import functional_call

from ..backends.base import as_flat_float64
from ..backends.common import require_scalar_shape
from ..backends.torch_backend import TorchBackend
from ..bounds import BoundsError, normalize_bounds
from ..drivers.methods import method_name
from ..params import ParamSpec
from ..drivers.scipy_pipeline import MethodPlan, has_constraints
from .solve import integration_plan, solve


__all__ = ["ScipyOptimizer", "MinimizeWrapper", "function_factory", "load_params"]


# -- the parameters as one flat float64 vector ---------------------------------------------
class _ParameterWriter:
    """Writes flat float64 points into the parameters in place, skipping unchanged points.

    ``generation`` grows with every write: an autograd graph recorded before a write saved
    parameter values that no longer exist, so it must not be differentiated again.
    """

    def __init__(self, params: list[torch.Tensor], spec: ParamSpec):
        self.params = params
        self.spec = spec
        self.generation = 0
        self._x: np.ndarray | None = None

    def load(self, x: np.ndarray) -> None:
        if self._x is not None and np.array_equal(x, self._x):
            return
        self._x = np.array(x, dtype=np.float64)
        source = torch.from_numpy(self._x)
        on_device = {p.device: source.to(p.device) for p in self.params}
        with torch.no_grad():
            for p, start, stop in zip(self.params, self.spec.offsets, self.spec.offsets[1:]):
                p.copy_(on_device[p.device][start:stop].view(p.shape))
        self.generation += 1

    def split(self, v: np.ndarray, batch: int | None = None) -> list[torch.Tensor]:
        """A flat vector (or ``batch`` rows of them) as tensors shaped like the parameters."""
        source = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64))
        lead = () if batch is None else (batch,)
        return [
            source[..., start:stop].reshape(lead + p.shape).to(dtype=p.dtype, device=p.device)
            for p, start, stop in zip(self.params, self.spec.offsets, self.spec.offsets[1:])
        ]


def _flat(tensors: Sequence[torch.Tensor], batch: int | None = None) -> np.ndarray:
    """Tensors (each with an optional leading batch axis) as one float64 array."""
    lead = (-1,) if batch is None else (batch, -1)
    parts = [t.detach().reshape(lead).to("cpu", torch.float64) for t in tensors]
    return torch.cat(parts, dim=-1).numpy()


def _vjp(
    outputs: Sequence[torch.Tensor],
    params: Sequence[torch.Tensor],
    cotangents: Sequence[torch.Tensor],
    *,
    batch: int | None = None,
    create_graph: bool = False,
    retain_graph: bool | None = None,
) -> list[torch.Tensor]:
    """``sum_i cotangent_i . d(output_i)/d(params)``, zero where the outputs ignore a parameter.

    With ``batch``, each cotangent has a leading axis of that length and so has each result.
    """
    lead = () if batch is None else (batch,)
    pairs = [(out, cot) for out, cot in zip(outputs, cotangents) if out.requires_grad]
    grads: Sequence[torch.Tensor | None] = [None] * len(params)
    if pairs:
        outs, cots = zip(*pairs)
        grads = torch.autograd.grad(
            outs,
            params,
            cots,
            create_graph=create_graph,
            retain_graph=retain_graph,
            is_grads_batched=batch is not None,
            allow_unused=True,
        )
    return [
        torch.zeros(lead + p.shape, dtype=p.dtype, device=p.device) if g is None else g
        for g, p in zip(grads, params)
    ]


def _hessian_of(grads: Sequence[torch.Tensor], writer: _ParameterWriter) -> np.ndarray:
    """The full Hessian from gradients that carry their graph: n HVPs in one batched pass."""
    n = writer.spec.size
    rows = _vjp(grads, writer.params, writer.split(np.eye(n), batch=n), batch=n, retain_graph=True)
    return _flat(rows, batch=n)


def _loss_value(loss: Any) -> float:
    if isinstance(loss, torch.Tensor):
        require_scalar_shape(tuple(loss.shape), "the closure")
        return float(loss.detach())
    if isinstance(loss, (int, float, np.number, np.ndarray)) and np.size(loss) == 1:
        return float(np.asarray(loss).reshape(()))
    raise TypeError(
        f"the closure must return the loss as a scalar tensor or a number; got {type(loss).__name__}."
    )


# -- the closure as a flat objective -------------------------------------------------------
@dataclass
class _Evaluation:
    """One run of the closure: its value, and what its gradients need."""

    x: np.ndarray
    generation: int
    value: float
    loss: Any  # the loss tensor with its graph, when the closure left backward to us
    grad: np.ndarray | None = None
    grad_graph: list[torch.Tensor] | None = None  # gradients that carry their graph


class _ClosureFunctions:
    """The closure as a flat objective: each point is written into the parameters first.

    ``extra_evaluations`` is the number of closure runs minus those the ``Objective``
    counts itself (a value, or a value and gradient, at a new point), so that ``nfev``
    counts every run, re-runs included: a point whose graph a later write invalidated is
    evaluated again when asked for more (a trust-region method asking for HVPs at its
    centre after trying a rejected step).
    """

    extra_evaluation_kind = "repeat"

    def __init__(self, closure: Callable[[], Any], writer: _ParameterWriter, *, second_order: bool):
        self.closure = closure
        self.writer = writer
        self.second_order = second_order
        self.runs = 0
        self.objective_counts = 0
        self._objective_x: np.ndarray | None = None
        self._last: _Evaluation | None = None
        self._backward_without_grad = False

    @property
    def extra_evaluations(self) -> int:
        return self.runs - self.objective_counts

    def _counted(self, x: np.ndarray) -> None:
        """The Objective counts one evaluation at x (its one-slot cache missed)."""
        self.objective_counts += 1
        self._objective_x = x.copy()

    def _valid(self, x: np.ndarray) -> _Evaluation | None:
        """The last run if it was at x, the parameters still hold x, and it can be differentiated."""
        last = self._last
        if last is None or last.generation != self.writer.generation or not np.array_equal(last.x, x):
            return None
        return last if last.grad is not None or last.loss is not None else None

    def _run(self, x: np.ndarray, *, with_grad: bool = True) -> _Evaluation:
        self.writer.load(x)
        self.runs += 1
        params = self.writer.params
        if not with_grad:
            with torch.no_grad():
                value = _loss_value(self.closure())
            self._last = _Evaluation(x.copy(), self.writer.generation, value, None)
            return self._last
        for p in params:
            p.grad = None
        with torch.enable_grad():
            loss = self.closure()
        value = _loss_value(loss)
        point = _Evaluation(x.copy(), self.writer.generation, value, loss)
        if all(p.grad is None for p in params) and not (isinstance(loss, torch.Tensor) and loss.requires_grad):
            raise ValueError(
                "the closure's loss carries no gradient: it does not depend on the optimized "
                "parameters (computed under torch.no_grad(), detached, or a Python number). "
                "Return the loss tensor itself."
            )
        if any(p.grad is not None for p in params):  # the closure called backward itself
            if self.second_order:
                raise ValueError(
                    "the closure calls loss.backward(), which leaves no graph to differentiate "
                    "again, but this method needs Hessian-vector products or Hessians. Return "
                    "the loss without calling backward (the optimizer differentiates it twice), "
                    "or pass a Closure object with .model and a static loss(model)."
                )
            point.grad = _flat([p.grad if p.grad is not None else torch.zeros_like(p) for p in params])
            point.loss = None
        self._last = point
        return point

    def value(self, x: np.ndarray) -> float:
        x = as_flat_float64(x)
        self._counted(x)
        return (self._valid(x) or self._run(x)).value

    def value_without_gradient(self, x: np.ndarray) -> float:
        x = as_flat_float64(x)
        self._counted(x)
        if not self._backward_without_grad:
            try:
                return self._run(x, with_grad=False).value
            except RuntimeError as exc:
                if "does not require grad" not in str(exc):
                    raise
            self._backward_without_grad = True
            warnings.warn(
                "the closure calls loss.backward(), so this derivative-free method computes "
                "gradients it never uses; call backward only when torch.is_grad_enabled() "
                "to avoid that.",
                UserWarning,
                stacklevel=2,
            )
        return self._run(x).value

    def value_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        x = as_flat_float64(x)
        if self._objective_x is None or not np.array_equal(x, self._objective_x):
            self._counted(x)
        point = self._valid(x) or self._run(x)
        if point.grad is None:
            grads = _vjp([point.loss], self.writer.params, [torch.ones_like(point.loss)], retain_graph=self.second_order)
            point.grad = _flat(grads)
        return point.value, point.grad.copy()

    def _gradient_graph(self, x: np.ndarray) -> _Evaluation:
        point = self._valid(x) or self._run(x)
        if point.grad_graph is None:
            point.grad_graph = _vjp(
                [point.loss], self.writer.params, [torch.ones_like(point.loss)], create_graph=True, retain_graph=True
            )
        return point

    def hvp_at(self, x: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        x = as_flat_float64(x)
        point = self._gradient_graph(x)

        def hvp(v: np.ndarray) -> np.ndarray:
            nonlocal point
            if point is not self._valid(x):
                point = self._gradient_graph(x)
            cotangents = self.writer.split(as_flat_float64(v))
            return _flat(_vjp(point.grad_graph, self.writer.params, cotangents, retain_graph=True))

        return hvp

    def hessian(self, x: np.ndarray) -> np.ndarray:
        return _hessian_of(self._gradient_graph(as_flat_float64(x)).grad_graph, self.writer)


class _ConstraintFunctions:
    """A zero-argument constraint function reading the parameters, as a flat vector function."""

    def __init__(self, fun: Callable, args: tuple, writer: _ParameterWriter):
        _require_no_parameters(fun, args, "a constraint 'fun'")
        self.fun = fun
        self.args = args
        self.writer = writer

    def _vector(self) -> torch.Tensor:
        leaves = optree.tree_leaves(self.fun(*self.args))
        if not leaves:
            raise ValueError("the constraint function returned no value.")
        like = self.writer.params[0]
        return torch.cat([torch.as_tensor(leaf, device=like.device).reshape(-1).to(like.dtype) for leaf in leaves])

    def value(self, x: np.ndarray) -> np.ndarray:
        self.writer.load(as_flat_float64(x))
        with torch.no_grad():
            return _flat([self._vector()])

    def value_and_jacobian(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.writer.load(as_flat_float64(x))
        with torch.enable_grad():
            out = self._vector()
        m = out.numel()
        eye = torch.eye(m, dtype=out.dtype, device=out.device)
        rows = _vjp([out], self.writer.params, [eye], batch=m)
        return _flat([out]), _flat(rows, batch=m)

    def weighted_hessian(self, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        self.writer.load(as_flat_float64(x))
        with torch.enable_grad():
            out = self._vector()
            w = torch.as_tensor(as_flat_float64(weights), device=out.device).to(out.dtype)
            grads = _vjp([out], self.writer.params, [w], create_graph=True)
        return _hessian_of(grads, self.writer)


def _require_no_parameters(fun: Callable, args: tuple, what: str) -> None:
    """Constraint functions read the parameters themselves, like the closure."""
    try:
        signature = inspect.signature(fun)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*args)
    except TypeError:
        raise TypeError(
            f"{what} must take no arguments (besides its 'args'): it reads the parameters, "
            f"e.g. lambda: model.weight.sum() - 1. {getattr(fun, '__name__', fun)!r} has "
            f"signature {signature}."
        ) from None


# -- gngdb's Closure objects: the loss as a pure function of the parameters -----------------
def _is_model_closure(closure: Any) -> bool:
    return isinstance(getattr(closure, "model", None), torch.nn.Module) and callable(getattr(closure, "loss", None))


class _ModelLoss(torch.nn.Module):
    """``loss(model)`` as a module, so that ``functional_call`` can swap the model's parameters.

    The model is referenced, not copied; ``functional_call`` restores its parameters after
    each call.
    """

    def __init__(self, model: torch.nn.Module, loss: Callable[[torch.nn.Module], Any]):
        super().__init__()
        self.model = model
        self.loss_of = loss

    def forward(self) -> Any:
        return self.loss_of(self.model)


def _names_in(model: torch.nn.Module, params: Sequence[torch.Tensor], where: str) -> list[str]:
    names = {id(p): name for name, p in model.named_parameters()}
    missing = [i for i, p in enumerate(params) if id(p) not in names]
    if missing:
        raise ValueError(
            f"parameters {missing} of the optimizer are not parameters of {where}; a Closure "
            "object's model must own every parameter being optimized."
        )
    return [names[id(p)] for p in params]


def _functional_objective(closure: Any, params: list[torch.Tensor], spec: ParamSpec) -> Any:
    """``closure.loss(closure.model)`` as a pure function of the flat vector (torch backend)."""
    names = [f"model.{name}" for name in _names_in(closure.model, params, "closure.model")]
    wrapper = _ModelLoss(closure.model, closure.loss)

    def loss_of(leaves: list[torch.Tensor]) -> Any:
        values = {name: leaf.to(dtype=p.dtype, device=p.device) for name, leaf, p in zip(names, leaves, params)}
        return functional_call(wrapper, values, ())

    dtype = "float64" if any(p.dtype == torch.float64 for p in params) else "float32"
    return TorchBackend().compile_scalar(loss_of, spec, dtype, device=params[0].device)


# -- the optimizer --------------------------------------------------------------------------
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
        super().__init__(params, {"bounds": bounds})
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
            raise TypeError(
                "ScipyOptimizer.step needs closure: a function that re-evaluates the model and "
                f"returns the loss; got {closure!r}."
            )
        params, bounds = self._problem()
        spec = ParamSpec.from_tree(params, name="params")
        x0 = spec.flatten(params, name="params")
        writer = _ParameterWriter(params, spec)
        plan = integration_plan(
            self.method,
            has_bounds=bounds is not None,
            has_constraints=has_constraints(self.constraints),
            jac=self.jac,
            hessp=self.hessp,
        )
        functions = self._functions(closure, plan, writer, spec)

        def call_flat(function: Callable, args: tuple) -> Callable[[np.ndarray], Any]:
            _require_no_parameters(function, args, "a constraint 'jac'")

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
                compile_vector=lambda fun, args: _ConstraintFunctions(fun, args, writer),
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
        if _is_model_closure(closure):
            # gngdb's Closure records what its __call__ sees (its tests read closure._loss after
            # step); second-order and derivative-free methods used loss(model) instead.
            with torch.enable_grad():
                closure()
        self.result = result
        return torch.tensor(result.fun, dtype=params[0].dtype, device=params[0].device)

    def _functions(self, closure: Any, plan: MethodPlan, writer: _ParameterWriter, spec: ParamSpec) -> Any:
        model_closure = _is_model_closure(closure)
        if model_closure and plan.second_order is not None:
            return _functional_objective(closure, writer.params, spec)
        if model_closure and plan.derivative_free:
            # loss(model) computes no gradient; __call__ would call backward.
            model, loss = closure.model, closure.loss
            return _ClosureFunctions(lambda: loss(model), writer, second_order=False)
        return _ClosureFunctions(closure, writer, second_order=plan.second_order is not None)

    def _problem(self) -> tuple[list[torch.Tensor], tuple[np.ndarray, np.ndarray] | None]:
        """The trainable parameters in group order, and their flat bounds (or None)."""
        all_ids = {id(p) for group in self.param_groups for p in group["params"]}
        params: list[torch.Tensor] = []
        lows: list[np.ndarray] = []
        highs: list[np.ndarray] = []
        bounded = False
        for index, group in enumerate(self.param_groups):
            group_params = list(group["params"])
            trainable = np.concatenate(
                [np.full(p.numel(), p.requires_grad) for p in group_params] or [np.zeros(0, bool)]
            )
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
                "ScipyOptimizer has no parameter with requires_grad=True to optimize; pass "
                "model.parameters() with at least one trainable parameter."
            )
        return params, (np.concatenate(lows), np.concatenate(highs)) if bounded else None


def _bounds_by_tensor(bounds: Any, group_params: list[torch.Tensor], all_ids: set[int], where: str) -> Any:
    """``{parameter: (low, high)}`` as a list with one entry per parameter of the group."""
    if not isinstance(bounds, dict):
        return bounds
    by_id = {id(key): value for key, value in bounds.items()}
    if not all(isinstance(key, torch.Tensor) for key in bounds) or not by_id.keys() <= all_ids:
        raise BoundsError(
            f"{where}: a dict of bounds must map parameters of this optimizer (the tensors "
            "themselves) to (low, high) pairs."
        )
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
            raise TypeError(
                "minimizer_args must be a dict with at least 'method' (a scipy.optimize.minimize "
                f"method name); got {minimizer_args!r}."
            )
        unknown = sorted(set(minimizer_args) - set(self._ACCEPTED))
        if unknown:
            raise ValueError(f"minimizer_args has unknown keys {unknown}; accepted keys are {list(self._ACCEPTED)}.")
        super().__init__(params, **minimizer_args)

    @property
    def res(self) -> so.OptimizeResult | None:
        """The last step's ``OptimizeResult`` (gngdb's name for :attr:`result`)."""
        return self.result


# -- models as functions --------------------------------------------------------------------
def _trainable(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("model has no parameter with requires_grad=True.")
    return named


def _as_model_data(data: Any, like: torch.Tensor) -> Any:
    """Data as tensors on the model's device; floating point data in the model's dtype."""
    if isinstance(data, (tuple, list)):
        return tuple(_as_model_data(item, like) for item in data)
    tensor = torch.as_tensor(data, device=like.device)
    return tensor.to(like.dtype) if tensor.is_floating_point() else tensor


def function_factory(
    model: torch.nn.Module, loss_fn: Callable[[Any, Any], torch.Tensor], X: Any, y: Any
) -> tuple[Callable[[dict[str, torch.Tensor]], torch.Tensor], dict[str, torch.Tensor]]:
    """A model's training loss as a pure function of its parameters, for ``am.minimize``.

    Parameters
    ----------
    model : torch.nn.Module
        Evaluated with ``torch.func.functional_call``: it is neither copied nor modified, and
        keeps its current training/eval mode.
    loss_fn : callable
        ``loss_fn(model(X), y)``; a per-sample (non-scalar) loss is averaged.
    X, y : arrays or tensors
        Moved to the model's device; floating point data takes the model's dtype. A tuple
        ``X`` is spread into ``model(*X)``.

    Returns
    -------
    func : callable
        ``func(params)`` -> the loss, differentiable in ``params``. Each value is cast to
        its parameter's dtype, so the model computes in its own precision whatever
        ``am.minimize``'s ``precision``.
    params : dict of str to torch.Tensor
        Detached copies of the trainable parameters, by name: the starting point.

    Examples
    --------
    >>> import torch
    >>> import autominimize as am
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <...>
    >>> model = torch.nn.Linear(2, 1)
    >>> X = torch.randn(40, 2)
    >>> y = X @ torch.tensor([[2.0], [-1.0]])
    >>> func, params = am.torch.function_factory(model, torch.nn.functional.mse_loss, X, y)
    >>> res = am.minimize(func, params, method="L-BFGS-B")
    >>> am.torch.load_params(model, res.x)
    >>> [round(v, 3) for v in model.weight.flatten().tolist()]
    [2.0, -1.0]
    """
    named = _trainable(model)
    names = [name for name, _ in named]
    like = {name: p for name, p in named}
    inputs = _as_model_data(X, named[0][1])
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    target = _as_model_data(y, named[0][1])

    def func(params: dict[str, torch.Tensor], /) -> torch.Tensor:
        values = {name: params[name].to(dtype=like[name].dtype, device=like[name].device) for name in names}
        loss = loss_fn(functional_call(model, values, inputs), target)
        return loss.mean() if loss.ndim else loss

    return func, {name: p.detach().clone() for name, p in named}


def load_params(model: torch.nn.Module, values: Any) -> None:
    """Copy optimized values into the model's trainable parameters, in place.

    Parameters
    ----------
    model : torch.nn.Module
    values : dict, sequence or flat vector
        A dict by parameter name (``res.x`` of ``am.minimize`` on :func:`function_factory`'s
        function; names left out keep their values), a sequence with one array per trainable
        parameter in ``model.parameters()`` order, or one flat vector of all of them (as
        :class:`ScipyOptimizer`'s ``result.x``). NumPy arrays or tensors of any dtype.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> import autominimize as am
    >>> model = torch.nn.Linear(2, 1)
    >>> am.torch.load_params(model, np.array([1.0, 2.0, 3.0]))
    >>> model.weight.tolist(), model.bias.tolist()
    ([[1.0, 2.0]], [3.0])
    """
    named = _trainable(model)
    if isinstance(values, dict):
        known = {name for name, _ in named}
        unknown = sorted(set(values) - known)
        if unknown:
            raise KeyError(f"values has keys {unknown} that are not trainable parameters of model; those are {sorted(known)}.")
        pairs = [(name, p, values[name]) for name, p in named if name in values]
    elif isinstance(values, (list, tuple)):
        if len(values) != len(named):
            raise ValueError(f"values has {len(values)} arrays; model has {len(named)} trainable parameters.")
        pairs = [(name, p, value) for (name, p), value in zip(named, values)]
    else:
        flat = torch.as_tensor(values).reshape(-1)
        total = sum(p.numel() for _, p in named)
        if flat.numel() != total:
            raise ValueError(
                f"values is a flat vector of {flat.numel()} numbers; model has {total} trainable "
                "parameters. Give a dict by name, a list of arrays, or a flat vector of that length."
            )
        pieces = torch.split(flat, [p.numel() for _, p in named])
        pairs = [(name, p, piece.reshape(p.shape)) for (name, p), piece in zip(named, pieces)]
    with torch.no_grad():
        for name, p, value in pairs:
            tensor = torch.as_tensor(value)
            if tensor.shape != p.shape:
                raise ValueError(f"values[{name!r}] has shape {tuple(tensor.shape)}; the parameter has shape {tuple(p.shape)}.")
            p.copy_(tensor)

