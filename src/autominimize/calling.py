"""How the user's function is called with the parameter structure.

The rule (documented in the user guide):

* ``unpack="none"``: ``fun(params, *args)`` with the whole structure.
* ``unpack="kwargs"``: ``fun(**params, *args)``; x0 must be a dict with string keys.
* ``unpack="args"``: ``fun(*params, *args)``; x0 must be a list or tuple.
* ``unpack="auto"`` (default): ``"kwargs"`` when x0 is a dict whose keys are all parameter
  names of ``fun`` and cover its required parameters (autograd-minimize's convention);
  ``"args"`` when x0 is a *list* of two or more items and ``fun`` has exactly that many
  required positional parameters; ``"none"`` otherwise.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

UNPACK_MODES = ("auto", "none", "args", "kwargs")


def _signature(fun: Callable) -> inspect.Signature | None:
    try:
        return inspect.signature(fun)
    except (TypeError, ValueError):
        return None


def resolve_unpack(fun: Callable, x0: Any, unpack: str, n_extra_args: int = 0) -> str:
    """Decide how ``fun`` receives x0; see the module docstring for the rule."""
    if unpack not in UNPACK_MODES:
        raise ValueError(f"unpack={unpack!r} is not one of {UNPACK_MODES}.")
    if unpack == "kwargs":
        if not (isinstance(x0, dict) and all(isinstance(k, str) for k in x0)):
            raise TypeError("unpack='kwargs' needs x0 to be a dict with string keys.")
        return unpack
    if unpack == "args":
        if not isinstance(x0, (list, tuple)):
            raise TypeError("unpack='args' needs x0 to be a list or a tuple.")
        return unpack
    if unpack == "none":
        return unpack
    named_structure = isinstance(x0, dict) and x0 and all(isinstance(k, str) for k in x0)
    if not named_structure and not (type(x0) is list and len(x0) >= 2):
        return "none"  # nothing to unpack: skip inspecting fun's signature (tens of µs)
    sig = _signature(fun)
    if sig is None:
        return "none"
    params = list(sig.parameters.values())
    if named_structure:
        named = {
            p.name
            for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }
        required = {
            p.name
            for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is p.empty
        }
        if set(x0) <= named and len(required - set(x0)) <= n_extra_args:
            return "kwargs"
        return "none"
    if type(x0) is list and len(x0) >= 2:
        if any(p.kind == p.VAR_POSITIONAL for p in params):
            required_pos = [
                p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                and p.default is p.empty
            ]
            return "args" if len(required_pos) <= 1 else "none"
        required_pos = [
            p
            for p in params
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
        if len(required_pos) == len(x0) + n_extra_args:
            return "args"
    return "none"


def make_caller(fun: Callable, unpack: str, args: tuple = (), x0: Any = None) -> Callable[[Any], Any]:
    """A function of the parameter structure alone that calls ``fun`` the chosen way.

    With ``unpack="kwargs"``, ``args`` fill, in order, the parameters of ``fun`` that x0's
    keys do not name.
    """
    if unpack == "kwargs":
        if not args:
            return lambda params: fun(**params)
        sig = _signature(fun)
        free = [
            p.name
            for p in sig.parameters.values()
            if p.kind == p.POSITIONAL_OR_KEYWORD and p.name not in x0
        ]
        extra = dict(zip(free, args))
        return lambda params: fun(**params, **extra)
    if unpack == "args":
        return lambda params: fun(*params, *args)
    if args:
        return lambda params: fun(params, *args)
    return fun
