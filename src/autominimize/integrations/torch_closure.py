"""The closure of ``am.torch.ScipyOptimizer`` as flat objective and constraint functions.

The closure is evaluated at each point scipy asks for by writing the point into the
parameters in place. It may call ``loss.backward()`` itself (the gradient is read from
``p.grad``, as ``torch.optim.LBFGS`` does) or only return the loss (it is then
differentiated here: once for gradients, twice for Hessian-vector products and Hessians).
A gngdb ``Closure`` object (``.model`` and a static ``loss(model)``) gives second-order
methods the loss as a pure function of the parameters through ``torch.func.functional_call``.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.func import functional_call

from ..backends.base import as_flat_float64
from ..backends.common import ObjectiveOutputError, require_real_number, require_scalar_shape
from ..backends.torch_backend import TorchBackend
from ..params import ParamSpec, tree_leaves
from ..validation import check_constraint_values
from .torch_autograd import ParameterWriter, flatten, hessian_of, vjp

__all__ = ["ClosureFunctions", "ConstraintFunctions", "loss_value", "require_no_parameters", "is_model_closure", "functional_objective"]


def loss_value(loss: Any) -> float:
    """The closure's loss as a float; an error naming the closure when it is not one real number."""
    require_real_number(loss, "the closure")
    if isinstance(loss, torch.Tensor):
        require_scalar_shape(tuple(loss.shape), "the closure")
        return float(loss.detach())
    if isinstance(loss, (int, float, np.number, np.ndarray)) and np.size(loss) == 1:
        return float(np.asarray(loss).reshape(()))
    raise TypeError(f"the closure must return the loss as a scalar tensor or a number; got {type(loss).__name__}.")


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


class ClosureFunctions:
    """The closure as a flat objective: each point is written into the parameters first.

    ``extra_evaluations`` is the number of closure runs minus those the ``Objective``
    counts itself (a value, or a value and gradient, at a new point), so that ``nfev``
    counts every run, re-runs included: a point whose graph a later write invalidated is
    evaluated again when asked for more (a trust-region method asking for HVPs at its
    centre after trying a rejected step).
    """

    extra_evaluation_kind = "repeat"

    def __init__(self, closure: Callable[[], Any], writer: ParameterWriter, *, second_order: bool):
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
                value = loss_value(self.closure())
            self._last = _Evaluation(x.copy(), self.writer.generation, value, None)
            return self._last
        for p in params:
            p.grad = None
        with torch.enable_grad():
            loss = self.closure()
        value = loss_value(loss)
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
            point.grad = flatten([p.grad if p.grad is not None else torch.zeros_like(p) for p in params])
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
            grads = vjp([point.loss], self.writer.params, [torch.ones_like(point.loss)], retain_graph=self.second_order)
            point.grad = flatten(grads)
        return point.value, point.grad.copy()

    def _gradient_graph(self, x: np.ndarray) -> _Evaluation:
        point = self._valid(x) or self._run(x)
        if point.grad_graph is None:
            point.grad_graph = vjp([point.loss], self.writer.params, [torch.ones_like(point.loss)], create_graph=True, retain_graph=True)
        return point

    def hvp_at(self, x: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        x = as_flat_float64(x)
        point = self._gradient_graph(x)

        def hvp(v: np.ndarray) -> np.ndarray:
            nonlocal point
            if point is not self._valid(x):
                point = self._gradient_graph(x)
            cotangents = self.writer.split(as_flat_float64(v))
            return flatten(vjp(point.grad_graph, self.writer.params, cotangents, retain_graph=True))

        return hvp

    def hessian(self, x: np.ndarray) -> np.ndarray:
        return hessian_of(self._gradient_graph(as_flat_float64(x)).grad_graph, self.writer)


class ConstraintFunctions:
    """A zero-argument constraint function reading the parameters, as a flat vector function."""

    def __init__(self, fun: Callable, args: tuple, writer: ParameterWriter):
        require_no_parameters(fun, args, "a constraint 'fun'")
        self.fun = fun
        self.args = args
        self.writer = writer

    def _vector(self) -> torch.Tensor:
        leaves = tree_leaves(self.fun(*self.args))
        check_constraint_values(leaves, f"the constraint function {getattr(self.fun, '__name__', self.fun)!r}", ObjectiveOutputError)
        like = self.writer.params[0]
        return torch.cat([torch.as_tensor(leaf, device=like.device).reshape(-1).to(like.dtype) for leaf in leaves])

    def value(self, x: np.ndarray) -> np.ndarray:
        self.writer.load(as_flat_float64(x))
        with torch.no_grad():
            return flatten([self._vector()])

    def value_and_jacobian(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.writer.load(as_flat_float64(x))
        with torch.enable_grad():
            out = self._vector()
        m = out.numel()
        eye = torch.eye(m, dtype=out.dtype, device=out.device)
        rows = vjp([out], self.writer.params, [eye], batch=m)
        return flatten([out]), flatten(rows, batch=m)

    def weighted_hessian(self, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        self.writer.load(as_flat_float64(x))
        with torch.enable_grad():
            out = self._vector()
            w = torch.as_tensor(as_flat_float64(weights), device=out.device).to(out.dtype)
            grads = vjp([out], self.writer.params, [w], create_graph=True)
        return hessian_of(grads, self.writer)


def require_no_parameters(fun: Callable, args: tuple, what: str) -> None:
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
def is_model_closure(closure: Any) -> bool:
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
            f"parameters {missing} of the optimizer are not parameters of {where}; a Closure object's model must own every parameter being optimized."
        )
    return [names[id(p)] for p in params]


def functional_objective(closure: Any, params: list[torch.Tensor], spec: ParamSpec) -> Any:
    """``closure.loss(closure.model)`` as a pure function of the flat vector (torch backend)."""
    names = [f"model.{name}" for name in _names_in(closure.model, params, "closure.model")]
    wrapper = _ModelLoss(closure.model, closure.loss)

    def loss_of(leaves: list[torch.Tensor]) -> Any:
        values = {name: leaf.to(dtype=p.dtype, device=p.device) for name, leaf, p in zip(names, leaves, params)}
        return functional_call(wrapper, values, ())

    dtype = "float64" if any(p.dtype == torch.float64 for p in params) else "float32"
    return TorchBackend().compile_scalar(loss_of, spec, dtype, device=params[0].device)
