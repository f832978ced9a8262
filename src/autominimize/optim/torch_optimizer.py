"""``Optimizer``: a native algorithm as a ``torch.optim.Optimizer`` over ``model.parameters()``."""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch

from ..backends.common import require_real_number, require_scalar_shape
from ..validation import check_callable, check_state_dict, check_torch_params
from ._transform import Transformation

__all__ = ["Optimizer"]


class Optimizer(torch.optim.Optimizer):
    """Train a torch model with any ``am.optim`` transformation.

    ``step()`` uses the gradients in ``p.grad``; ``step(closure)`` re-evaluates the model for
    the algorithms that need the loss at other points (L-BFGS and nonlinear CG line
    searches, Hessian-free). The closure follows torch's convention: it clears the
    gradients, computes the loss, calls ``backward()`` and returns the loss. One ``step`` is
    one outer iteration of the algorithm (torch's own ``LBFGS`` runs up to 20). The learning
    rate in ``param_groups[0]["lr"]`` is the algorithm's ``lr``, so torch's LR schedulers work.

    Parameters
    ----------
    params : iterable of tensors or one parameter group
        ``model.parameters()``; all parameters form one vector (one group only).
    opt : Transformation
        E.g. ``am.optim.lbfgs()`` or ``am.optim.sgd(lr=0.1, momentum=0.9)``.

    Examples
    --------
    >>> import torch
    >>> import autominimize as am
    >>> from autominimize.optim.torch_optimizer import Optimizer
    >>> w = torch.nn.Parameter(torch.tensor([-1.2, 1.0], dtype=torch.float64))
    >>> optimizer = Optimizer([w], am.optim.lbfgs())
    >>> def closure():
    ...     optimizer.zero_grad()
    ...     loss = 100 * (w[1] - w[0] ** 2) ** 2 + (1 - w[0]) ** 2
    ...     loss.backward()
    ...     return loss
    >>> for _ in range(60):
    ...     loss = optimizer.step(closure)
    >>> bool(torch.allclose(w, torch.ones(2, dtype=torch.float64), atol=1e-4))
    True
    """

    def __init__(self, params: Iterable[Any], opt: Transformation):
        if not isinstance(opt, Transformation):
            raise TypeError(f"opt must be an am.optim transformation (e.g. am.optim.lbfgs()); got {type(opt).__name__}.")
        lr = getattr(opt.algorithm, "lr", None)
        defaults = {"lr": lr} if isinstance(lr, (int, float)) else {}
        super().__init__(check_torch_params(params, "Optimizer"), defaults)
        if len(self.param_groups) != 1:
            raise ValueError("autominimize's Optimizer takes one parameter group: the parameters form one vector.")
        self.transformation = opt

    def _params(self) -> list[torch.Tensor]:
        return list(self.param_groups[0]["params"])

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        check_callable(closure, "closure")
        params = self._params()
        opt = self._synced_transformation()
        if closure is None and opt.algorithm.needs_evaluator:
            raise ValueError(f"{opt.algorithm.name} evaluates the loss at several points: call step(closure).")
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = _loss(closure())
        current = [p.detach().clone() for p in params]
        grads = _gradients(params)

        def value_and_grad(trial: list[torch.Tensor]) -> tuple[Any, list[torch.Tensor]]:
            for p, t in zip(params, trial):
                p.copy_(t)
            with torch.enable_grad():
                value = _loss(closure())
            return torch.as_tensor(value).detach(), _gradients(params)

        slot = self.state[params[0]]
        value = None if loss is None else torch.as_tensor(loss).detach()
        updates, slot["autominimize"] = opt.update(
            grads,
            slot.get("autominimize"),
            current,
            value=value,
            value_and_grad_fn=value_and_grad if closure is not None else None,
            grad_fn=(lambda trial: value_and_grad(trial)[1]) if closure is not None else None,
        )
        for p, c, u in zip(params, current, updates):
            p.copy_(c + u)
        return loss

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state saved by ``state_dict()`` of an ``Optimizer`` (not another optimizer's).

        The algorithm's state (a NamedTuple of tensors) is set aside while torch loads the
        rest: torch rebuilds every tuple in a state from a generator, which a NamedTuple
        cannot be built from.
        """
        check_state_dict(state_dict, (), ("autominimize",), "autominimize Optimizer")
        states = {key: state["autominimize"] for key, state in state_dict["state"].items()}
        rest = {**state_dict, "state": {key: {k: v for k, v in state.items() if k != "autominimize"} for key, state in state_dict["state"].items()}}
        super().load_state_dict(rest)
        params = self._params()
        for key, saved in states.items():
            self.state[params[key]]["autominimize"] = saved

    def _synced_transformation(self) -> Transformation:
        """Follow a changed ``param_groups[0]['lr']`` (torch LR schedulers)."""
        lr = self.param_groups[0].get("lr")
        algorithm = self.transformation.algorithm
        if lr is not None and getattr(algorithm, "lr", lr) != lr:
            from ._transform import from_algorithm

            self.transformation = from_algorithm(algorithm.replace(lr=lr))
        return self.transformation


def _loss(value: Any) -> Any:
    """The closure's return value, if it is the loss: one real number."""
    require_real_number(value, "the closure")
    require_scalar_shape(tuple(getattr(value, "shape", ())), "the closure")
    return value


def _gradients(params: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each parameter's ``.grad`` (zero where it is None); an error if none has one, where a
    zero step would pass for convergence."""
    if all(p.grad is None for p in params):
        raise ValueError(
            "no parameter has a gradient after closure(): call loss.backward() in the closure (or "
            "before step()), on a loss computed from the parameters with torch operations (not "
            ".item(), .detach() or NumPy)."
        )
    return [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params]
