"""The arguments the framework integrations share: training data, values written into a
model, the values of constraint callables, and the parameters of torch optimizers."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

__all__ = ["check_data", "check_sample_counts", "check_real_values", "check_constraint_values", "check_torch_params", "check_state_dict"]


def check_data(data: Any, name: str) -> None:
    """``data`` arrays of numbers (a list, tuple or dict of them for a model of several inputs
    or outputs), else a TypeError naming ``name``: a framework would fail with its own text."""
    if isinstance(data, dict):
        for key, value in data.items():
            check_data(value, f"{name}[{key!r}]")
        return
    if isinstance(data, (list, tuple)) and any(isinstance(v, (list, tuple, dict)) or hasattr(v, "dtype") for v in data):
        for i, value in enumerate(data):
            check_data(value, f"{name}[{i}]")
        return
    if hasattr(data, "dtype") and not isinstance(data, np.ndarray):
        return  # a framework's tensor: its dtype is cast with the model's
    if np.asarray(data).dtype.kind not in "biuf":
        raise TypeError(f"{name} must be an array of numbers (or a list or dict of them, one per model input or output); got {type(data).__name__}.")


def _samples(data: Any, name: str) -> list[tuple[str, int]]:
    """``(name, number of samples)`` of each array in ``data`` (see :func:`check_data`)."""
    if isinstance(data, dict):
        return [pair for key, value in data.items() for pair in _samples(value, f"{name}[{key!r}]")]
    if isinstance(data, (list, tuple)) and any(isinstance(v, (list, tuple, dict)) or hasattr(v, "dtype") for v in data):
        return [pair for i, value in enumerate(data) for pair in _samples(value, f"{name}[{i}]")]
    shape = tuple(getattr(data, "shape", None) or np.shape(data))
    return [(name, int(shape[0]))] if shape and shape[0] is not None else []


def check_sample_counts(X: Any, y: Any) -> None:
    """Every array of the inputs ``X`` and the targets ``y`` holds the same number of samples
    (its first axis), else a ValueError naming the two that differ: a loss would broadcast
    them, or fail with the framework's text."""
    counts = _samples(X, "X") + _samples(y, "y")
    for name, count in counts[1:]:
        if count != counts[0][1]:
            raise ValueError(
                f"{counts[0][0]} has {counts[0][1]} samples but {name} has {count}; give one target per sample (the first axis of each array)."
            )


def check_real_values(value: Any, name: str) -> np.ndarray:
    """``value`` (an array, tensor or number) as a NumPy array of finite real numbers, else an
    error naming ``name``: writing it into a model would drop an imaginary part or store NaN."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    try:
        array = np.asarray(value)
    except (TypeError, ValueError, RuntimeError):
        array = np.asarray(None)
    if array.dtype.kind == "c":
        raise TypeError(f"{name} is complex ({array.dtype}); give real numbers (its .real part, or its absolute value).")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} is a {type(value).__name__}; give an array or tensor of numbers.")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds NaN or inf; give finite values (a solve that ended at NaN has nothing to load).")
    return array


def check_constraint_values(leaves: list, name: str, error: type[Exception] = ValueError) -> None:
    """The leaves a constraint callable returned: at least one, each real numbers, else an
    ``error`` naming ``name``."""
    accepted = "a constraint returns real numbers: a number, an array or a tensor (or a list of them)"
    if not leaves:
        raise error(f"{name} returned None or an empty structure; {accepted}.")
    for leaf in leaves:
        if leaf is None or isinstance(leaf, (str, bytes)):
            raise error(f"{name} returned a {type(leaf).__name__} ({leaf!r}); {accepted}.")
        dtype = str(getattr(leaf, "dtype", type(leaf).__name__))
        if "complex" in dtype:
            raise error(f"{name} returned complex values ({dtype}); {accepted}.")
        if not hasattr(leaf, "dtype") and not isinstance(leaf, (int, float, np.number)):
            raise error(f"{name} returned a {type(leaf).__name__}; {accepted}.")


def check_torch_params(params: Any, owner: str) -> list:
    """The ``params`` argument of a torch optimizer: tensors, or param groups (dicts with
    ``'params'``), as a list; else an error naming ``params`` (torch's own text names neither
    the argument nor what ``owner`` accepts)."""
    import torch

    accepted = "model.parameters(), a list of tensors, or a list of param groups (dicts with 'params')"
    if isinstance(params, (str, bytes, dict)) or isinstance(params, torch.Tensor) or not isinstance(params, Iterable):
        kind = "a dict (param groups are a list of dicts with 'params')" if isinstance(params, dict) else f"a {type(params).__name__}"
        raise TypeError(f"{owner}'s params is {kind}; give {accepted}.")
    items = list(params)
    if not items:
        raise ValueError(f"{owner}'s params is empty; give {accepted} with at least one tensor.")
    for index, item in enumerate(items):
        tensors = [(f"params[{index}]", item)]
        if isinstance(item, dict):
            group = item.get("params")
            group = [group] if isinstance(group, torch.Tensor) else group
            if not isinstance(group, Iterable) or isinstance(group, (str, bytes, dict)):
                raise TypeError(f"params[{index}] is a param group whose 'params' is {type(group).__name__}; give a list of tensors.")
            group = list(group)
            item["params"] = group
            tensors = [(f"params[{index}]['params'][{i}]", p) for i, p in enumerate(group)]
        for where, p in tensors:
            if not isinstance(p, torch.Tensor):
                raise TypeError(f"{where} is a {type(p).__name__}; {owner} optimizes torch tensors: give {accepted}.")
            if not p.is_leaf:
                raise ValueError(
                    f"{where} is not a leaf tensor (it was computed from others, so writing into it changes nothing they "
                    "hold); give the tensors themselves, e.g. torch.nn.Parameter or torch.tensor(..., requires_grad=True)."
                )
    return items


def check_state_dict(state_dict: Any, group_keys: tuple[str, ...], state_keys: tuple[str, ...], owner: str) -> None:
    """A torch optimizer's ``state_dict`` saved by an ``owner``: its param groups hold
    ``group_keys`` and its per-parameter states ``state_keys``; else a ValueError (another
    optimizer's state would fail at the next step, or be used as if it were this one's)."""
    if not isinstance(state_dict, dict) or not isinstance(state_dict.get("param_groups"), list) or not isinstance(state_dict.get("state"), dict):
        raise TypeError(
            f"state_dict must be the dict of an optimizer's state_dict() (with 'state' and 'param_groups'); got {type(state_dict).__name__}."
        )
    for index, group in enumerate(state_dict["param_groups"]):
        missing = [key for key in group_keys if key not in group]
        if missing:
            raise ValueError(
                f"state_dict['param_groups'][{index}] has no {missing[0]!r}: it was saved by another optimizer "
                f"(its keys are {sorted(group)}); give the state_dict() of a {owner}."
            )
    for key, state in state_dict["state"].items():
        missing = [name for name in state_keys if name not in state]
        if missing:
            raise ValueError(
                f"state_dict['state'][{key!r}] has no {missing[0]!r}: it was saved by another optimizer "
                f"(its keys are {sorted(state)}); give the state_dict() of a {owner}."
            )
