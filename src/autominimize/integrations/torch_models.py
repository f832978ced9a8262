"""``am.torch.function_factory`` and ``load_params``: a model as a pure function of a
parameter dict, for ``am.minimize``, and the way back into the model."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch.func import functional_call

from ..backends.common import require_real_number
from ..validation import check_callable, check_data, check_real_values, check_sample_counts

__all__ = ["function_factory", "load_params"]


def _trainable(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
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
    check_callable(loss_fn, "loss_fn", optional=False)
    check_data(X, "X")
    check_data(y, "y")
    check_sample_counts(X, y)
    names = [name for name, _ in named]
    like = {name: p for name, p in named}
    inputs = _as_model_data(X, named[0][1])
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    target = _as_model_data(y, named[0][1])

    def func(params: dict[str, torch.Tensor], /) -> torch.Tensor:
        values = {name: torch.as_tensor(params[name]).to(dtype=like[name].dtype, device=like[name].device) for name in names}
        loss = loss_fn(functional_call(model, values, inputs), target)
        require_real_number(loss, "loss_fn")
        return loss.mean() if getattr(loss, "ndim", 0) else loss

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
        if values is None or isinstance(values, (str, bytes)):
            raise TypeError(f"values is a {type(values).__name__}; give a dict by parameter name, a list of arrays or a flat vector.")
        flat = torch.as_tensor(check_real_values(values, "values")).reshape(-1)
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
            tensor = torch.as_tensor(check_real_values(value, f"values[{name!r}]"))
            if tensor.shape != p.shape:
                raise ValueError(f"values[{name!r}] has shape {tuple(tensor.shape)}; the parameter has shape {tuple(p.shape)}.")
            p.copy_(tensor)
