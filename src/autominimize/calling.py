"""How the user's functions are called with the parameter structure.

The rule (documented in the user guide), applied to each user function on its own (``fun``,
``jac``, ``hess``, ``hessp``, each constraint and its Jacobian), from that function's own
signature:

* ``unpack="none"``: ``fun(params, *args)`` with the whole structure.
* ``unpack="kwargs"``: ``fun(**params, *args)``; x0 must be a dict with string keys.
* ``unpack="args"``: ``fun(*params, *args)``; x0 must be a list or tuple.
* ``unpack="auto"`` (default):

  - ``"kwargs"`` when x0 is a dict whose keys are all parameter names of the function and
    cover its required parameters (autograd-minimize's convention);
  - for a *list* x0 of two or more items (``L`` items, ``k`` extra arguments): ``"args"``
    when ``L + k`` is the number of the function's required positional parameters, or of
    all its positional parameters, required or defaulted (``def model(U=None, V=None)``
    with ``[U0, V0]``), or when it takes ``*args`` and at most one required one (a list
    of arrays: a list of numbers is a vector for it, scipy's ``fun(x, *args)``); where the
    function could also take the list whole (``L + k`` equals all its positional parameters
    and exactly ``1 + k`` of them are required, ``def loss(params, reg=0.1)``), a list of
    arrays is ambiguous and an error asks for ``unpack=``;
  - ``"none"`` otherwise.

  A flat list or tuple of numbers that the function takes whole is a vector, as in scipy:
  it becomes a float64 array (and ``res.x`` is one).
"""

from __future__ import annotations

import inspect
import itertools
import numbers
import operator
import types
import weakref
from typing import Any, Callable

import numpy as np

from .validation import brief


UNPACK_MODES = ("auto", "none", "args", "kwargs")


#: Signatures of plain functions and of methods bound to them, read once per function (about
#: 6 µs each, paid for fun and jac on every solve otherwise). Each is kept with what it was
#: read from, so a function whose code, defaults or ``__signature__`` changes is read again.
_FUNCTION_SIGNATURES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_METHOD_SIGNATURES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _read_signature(fun: Callable) -> inspect.Signature | None:
    try:
        return inspect.signature(fun)
    except (TypeError, ValueError):
        return None


def _signature(fun: Callable) -> inspect.Signature | None:
    """``inspect.signature(fun)``, or None where it cannot be read; cached for plain functions
    and methods bound to them, read anew for any other callable (a ``functools.partial``, an
    object with ``__call__``, a wrapper whose signature is its wrapped function's)."""
    entry = _signature_entry(fun)
    return _read_signature(fun) if entry is None else entry[1]


def _signature_entry(fun: Callable) -> tuple | None:
    """The cache entry ``(source, signature, dict rules)`` of a plain function or a method
    bound to one, None for any other callable. ``dict rules`` holds the auto rule for a dict
    x0 by ``(its keys, number of extra arguments)``, read from the signature once (about 4 µs
    a solve from a dict x0 otherwise)."""
    if isinstance(fun, types.MethodType) and type(fun.__func__) is types.FunctionType:
        function, cache = fun.__func__, _METHOD_SIGNATURES
    elif type(fun) is types.FunctionType:
        function, cache = fun, _FUNCTION_SIGNATURES
    else:
        return None
    if "__wrapped__" in function.__dict__:
        return None
    source = (function.__code__, function.__defaults__, function.__kwdefaults__, function.__dict__.get("__signature__"))
    entry = cache.get(function)
    if entry is None or any(map(operator.is_not, entry[0], source)):
        entry = cache[function] = (source, _read_signature(fun), {})
    return entry


def _unpackable(x0: Any) -> bool:
    """Whether the auto rule could spread x0 over the function's parameters: a dict with
    string keys, or a list of two or more items."""
    # the keys checked by a mapped C call: no Python frame per key
    return (isinstance(x0, dict) and bool(x0) and all(map(isinstance, x0, itertools.repeat(str)))) or (type(x0) is list and len(x0) >= 2)


def is_number_list(x0: Any) -> bool:
    """A plain list or tuple (not a namedtuple) of one or more real numbers."""
    return type(x0) in (list, tuple) and len(x0) >= 1 and all(isinstance(item, numbers.Real) and not isinstance(item, bool) for item in x0)


def resolve_unpack(fun: Callable, x0: Any, unpack: str, n_extra_args: int = 0) -> str:
    """Decide how ``fun`` receives x0; see the module docstring for the rule."""
    if not (type(unpack) is str and unpack in UNPACK_MODES):
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
    if not _unpackable(x0):
        return "none"  # nothing to unpack: skip inspecting fun's signature
    entry = _signature_entry(fun)
    sig = _read_signature(fun) if entry is None else entry[1]
    if sig is None:
        return "none"
    if not isinstance(x0, dict):
        return _list_rule(fun, sig, x0, n_extra_args)
    if entry is None:
        return _dict_rule(sig, x0, n_extra_args)
    key = (tuple(x0), n_extra_args)
    rule = entry[2].get(key)
    if rule is None:
        rule = entry[2][key] = _dict_rule(sig, x0, n_extra_args)
    return rule


def _dict_rule(sig: inspect.Signature, x0: dict, n_extra_args: int) -> str:
    """The auto rule for a dict x0 with string keys: 'kwargs' when its keys name the
    function's parameters and cover the required ones, else 'none' (or an error, where the
    function cannot take x0 whole either)."""
    params = list(sig.parameters.values())
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    required = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is p.empty}
    if set(x0) <= named and len(required - set(x0)) <= n_extra_args:
        return "kwargs"
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    if len(positional) > 1 + n_extra_args:  # fun(x0) cannot be called either
        raise TypeError(
            f"x0's keys {sorted(x0)} do not match fun's parameters {[p.name for p in params]} "
            f"(missing {sorted(required - set(x0))}, unknown {sorted(set(x0) - named)}). A dict x0 is "
            "passed as fun(**x0) when its keys name fun's parameters, else as one argument, fun(x0), "
            "which this fun cannot take. Rename x0's keys to fun's parameter names, or write fun(params)."
        )
    return "none"


def _list_rule(fun: Callable, sig: inspect.Signature, x0: list, n_extra_args: int) -> str:
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    wanted = len(x0) + n_extra_args
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        if len(required) > 1 or is_number_list(x0):
            return "none"  # numbers to fun(x, *args) or a wrapper(*a): a vector, as scipy hands it
        return "args"
    if wanted == len(required):
        return "args"
    if wanted != len(positional):
        return "none"
    if len(required) != 1 + n_extra_args:
        return "args"  # it cannot take the list whole: model(U=None, V=None) with [U0, V0]
    if is_number_list(x0):
        return "none"  # scipy's habit wins for numbers: the list is a vector
    name = getattr(fun, "__qualname__", type(fun).__name__)
    raise TypeError(
        f"x0 is a list of {len(x0)} items and {name}{sig} can take it whole (as "
        f"{positional[0].name!r}) or spread over its "
        f"{len(positional)} positional parameters; pass unpack='none' to give it the whole list "
        "or unpack='args' to spread it."
    )


def vector_x0(x0: Any, requested: str, resolved: str) -> Any:
    """x0 as scipy reads it: a flat list or tuple of numbers that the auto rule gives whole to
    the function is a float64 array (``unpack='none'`` given explicitly keeps the list)."""
    if requested == "auto" and resolved == "none" and is_number_list(x0):
        return np.asarray(x0, dtype=np.float64)
    return x0


class CallerFactory:
    """Callers for every user function of one solve, each with its own calling rule.

    ``requested`` other than ``"auto"`` applies to every function; ``"auto"`` is resolved
    from each function's own signature (once per function and number of extra arguments),
    see :func:`unpack_for`.
    """

    def __init__(self, x0: Any, requested: str, resolved_for_fun: str, fun: Callable | None = None, n_extra_args: int = 0):
        self.x0 = x0
        self.requested = requested
        self.resolved_for_fun = resolved_for_fun
        self._modes: dict[tuple[int, int], tuple[Callable, str]] = {}
        if fun is not None:  # the objective's rule, resolved already (for a dict x0, from its signature)
            self._modes[(id(fun), n_extra_args)] = (fun, resolved_for_fun)

    def mode(self, function: Callable, n_extra_args: int) -> str:
        key = (id(function), n_extra_args)
        entry = self._modes.get(key)
        if entry is None or entry[0] is not function:
            mode = unpack_for(function, self.x0, self.requested, self.resolved_for_fun, n_extra_args)
            entry = self._modes[key] = (function, mode)
        return entry[1]

    def __call__(self, function: Callable, args: tuple = ()) -> Callable[[Any], Any]:
        return make_caller(function, self.mode(function, len(args)), args, self.x0)


def unpack_for(function: Callable, x0: Any, requested: str, resolved_for_fun: str, n_extra_args: int = 0) -> str:
    """The calling rule of one more user function of a solve (a constraint, a derivative):
    ``"auto"`` is resolved from ``function``'s own signature, an explicit rule applies as given.

    ``resolved_for_fun`` is the objective's rule; a function whose signature is the
    objective's (``jac=fun.grad``-style wrappers without one) follows it.
    """
    if requested != "auto":
        return resolve_unpack(function, x0, requested, n_extra_args)
    if not _unpackable(x0):
        return "none"  # the objective's rule too: nothing to unpack, no signature to read
    if _signature(function) is None:
        return resolved_for_fun
    return resolve_unpack(function, x0, "auto", n_extra_args)


#: the calls plain functions were found to take, by :func:`takes_key`: a solve of a function
#: checked before costs a dictionary look-up, not a call (the solve's fixed cost is counted)
TAKES: dict = {}


def takes_key(fun: Callable, unpack: str, x0: Any, args: tuple) -> tuple:
    """What decides whether ``fun`` takes the call: its code, its defaults and the count."""
    return (getattr(fun, "__code__", None), id(getattr(fun, "__defaults__", None)), len(x0) if unpack == "args" else 1, len(args))


def check_takes(fun: Callable, name: str, unpack: str, x0: Any, args: tuple) -> None:
    """A TypeError naming ``name``, the call the rule makes and ``fun``'s signature when
    ``fun`` cannot take that call: before the solve, rather than Python's "takes 1 positional
    argument but 2 were given" from inside it. A signature that cannot be read passes."""
    if unpack == "kwargs":
        return  # the rule was chosen from fun's own parameter names
    leading = len(x0) if unpack == "args" else 1
    count = leading + len(args)
    function = fun.__func__ if isinstance(fun, types.MethodType) else fun
    if type(function) is not types.FunctionType or "__wrapped__" in function.__dict__ or "__signature__" in function.__dict__:
        return  # a signature costs about 20 µs: read for plain functions only, and only when their code says no
    code = function.__code__
    count += isinstance(fun, types.MethodType)  # self
    required = code.co_argcount - len(function.__defaults__ or ())
    keywords = code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount]
    required_keyword = any(name not in (function.__kwdefaults__ or {}) for name in keywords) if keywords else False
    if required <= count and (count <= code.co_argcount or code.co_flags & inspect.CO_VARARGS) and not required_keyword:
        TAKES[takes_key(fun, unpack, x0, args)] = True
        return
    sig = _own_signature(fun)
    try:
        if sig is None:
            return
        sig.bind(*range(leading + len(args)))
    except TypeError as exc:
        call = f"{name}(*x0{', *args' if args else ''})" if unpack == "args" else f"{name}(x{', *args' if args else ''})"
        rest = f", followed by the {len(args)} item(s) of args={brief(args)}" if args else ""
        given = "the items of x0" if unpack == "args" else "one argument in x0's structure"
        hint = "args holds fun's extra arguments after the parameters, as in scipy" if args else "args=() adds no argument"
        raise TypeError(f"{name} is called as {call}: {given}{rest}; {_described(fun, sig)} cannot take that ({exc}); {hint}.") from None


def check_keywords(fun: Callable, name: str, keywords: dict) -> None:
    """A TypeError naming ``name`` when ``fun`` has no parameter for one of ``keywords``
    (least_squares' ``kwargs``), before the solve. A signature that cannot be read passes."""
    sig = _signature(fun)
    if sig is None:
        return
    try:
        sig.bind_partial(**keywords)
    except TypeError as exc:
        raise TypeError(f"kwargs={keywords!r} are passed to {name} as keyword arguments; {_described(fun, sig)} cannot take them ({exc}).") from None


def _own_signature(fun: Callable) -> inspect.Signature | None:
    """The signature ``fun`` is called with: a wrapper's own (``__wrapped__`` points the
    calling rule at the wrapped function's parameter names, not at how the wrapper is called)."""
    if "__wrapped__" not in getattr(fun, "__dict__", ()):
        return _signature(fun)
    try:
        return inspect.signature(fun, follow_wrapped=False)
    except (TypeError, ValueError):
        return None


def _described(fun: Callable, sig: inspect.Signature) -> str:
    return f"{getattr(fun, '__qualname__', type(fun).__name__)}{sig}"


def make_caller(fun: Callable, unpack: str, args: tuple = (), x0: Any = None) -> Callable[[Any], Any]:
    """A function of the parameter structure alone that calls ``fun`` the chosen way.

    With ``unpack="kwargs"``, ``args`` fill, in order, the parameters of ``fun`` that x0's
    keys do not name. With ``args``, the caller has ``args`` and ``rebind(new_args)`` (the
    same call with other args), so a compiling backend can feed args as inputs.
    """
    if not args:
        if unpack == "kwargs":
            return lambda params: fun(**params)
        if unpack == "args":
            return lambda params: fun(*params)
        return fun
    if unpack == "kwargs":
        sig = _signature(fun)
        free = [p.name for p in sig.parameters.values() if p.kind == p.POSITIONAL_OR_KEYWORD and p.name not in x0]
        extra = dict(zip(free, args))

        def caller(params: Any) -> Any:
            return fun(**params, **extra)
    elif unpack == "args":

        def caller(params: Any) -> Any:
            return fun(*params, *args)
    else:

        def caller(params: Any) -> Any:
            return fun(params, *args)

    caller.args = args
    caller.rebind = lambda new_args: make_caller(fun, unpack, new_args, x0)
    return caller
