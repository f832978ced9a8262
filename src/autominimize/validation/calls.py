"""Calls the library makes to user functions, finite-difference steps and recorded rows.

A model that cannot take the call a fit makes is named, with the count it is given, before
the fit starts; an argument holding arrays is described by type and shape, never printed
whole.
"""

from __future__ import annotations

import reprlib
from typing import Any, Callable, Iterable

import numpy as np

from .checks import check_count, is_number, refusal
from .least_squares import _check_per_parameter

__all__ = ["STEP_OPTIONS", "brief", "check_batches", "check_call", "check_history_rows", "check_model", "check_relative_steps", "check_step_options"]


def brief(value: Any) -> str:
    """``value`` for a message: an array by its type and shape, a tuple or list item by item,
    anything else as a repr shortened to a line."""
    if isinstance(value, (tuple, list)):
        items = ", ".join(brief(item) for item in value[:6]) + (", ..." if len(value) > 6 else "")
        return f"({items}{',' if len(value) == 1 else ''})" if isinstance(value, tuple) else f"[{items}]"
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and len(shape) > 0:
        return f"<{type(value).__name__} of shape {shape}>"
    return reprlib.repr(value)


def check_call(fun: Callable, name: str, call: str, count: int, keywords: Iterable[str] = (), hint: str = "") -> None:
    """``fun`` takes ``count`` positional arguments and the ``keywords``, judged from its
    signature (one that cannot be read passes); else a TypeError naming ``name``, the ``call``
    the library makes (with its count) and ``fun``'s signature, followed by ``hint``."""
    refused = refusal(fun, ((call, tuple(range(count)), dict.fromkeys(keywords)),))
    if refused is not None:
        described, exc = refused
        raise TypeError(f"{name} is called as {call}; {described} cannot take that ({exc}){'; ' + hint if hint else ''}.")


def check_relative_steps(value: Any, name: str, n: int | None, kind: str = "relative steps") -> None:
    """Finite-difference steps (``kind``, relative ones by default): None, or finite numbers
    greater than 0, one or one per parameter (``n`` of them, when known); else an error naming ``name``."""
    if value is None:
        return
    accepted = f"None or finite {kind} greater than 0"
    try:
        numeric = not isinstance(value, (str, bytes, bool, np.bool_)) and np.asarray(value).dtype.kind in "fiu"
    except (TypeError, ValueError):
        numeric = False
    if not numeric:
        raise TypeError(f"{name} must be {accepted} (a number, or one per parameter); got {brief(value)} ({type(value).__name__}).")
    _check_per_parameter(value, name, accepted, n)


def check_history_rows(evaluations: Any, iterations: Any, leaves: Any, point_budget: Any, kinds: tuple) -> tuple[list, list]:
    """A History's rows, as lists: ``evaluations`` (kind, time, f, grad_norm) with kind in
    ``kinds``, ``iterations`` (nit, time, f, grad_norm, nfev, x[, njev]), ``leaves`` (name,
    start, stop) and ``point_budget`` (None or a count of bytes); each named where it is wrong."""
    tables = {}
    for name, rows, widths, shape in (
        ("evaluations", evaluations, (4,), "(kind, time, f, grad_norm)"),
        ("iterations", iterations, (6, 7), "(nit, time, f, grad_norm, nfev, x) or (nit, time, f, grad_norm, nfev, x, njev)"),
        ("leaves", () if leaves is None else leaves, (3,), "(name, start, stop)"),
    ):
        if isinstance(rows, (str, bytes, dict)) or not isinstance(rows, Iterable):
            raise TypeError(f"{name} must be an iterable of {shape} tuples; got {type(rows).__name__}.")
        tables[name] = list(rows)
        for i, row in enumerate(tables[name]):
            if not isinstance(row, (tuple, list)) or len(row) not in widths:
                raise ValueError(f"{name}[{i}] must be a {shape} tuple; got {brief(row)}.")
    for i, row in enumerate(tables["evaluations"]):
        if row[0] not in kinds:
            raise ValueError(f"evaluations[{i}] is of kind {row[0]!r}; a kind is one of {kinds}.")
    for i, (label, start, stop) in enumerate(tables["leaves"]):
        if not isinstance(label, str) or check_count(start, f"leaves[{i}] start") > check_count(stop, f"leaves[{i}] stop"):
            raise ValueError(f"leaves[{i}] must be (name, start, stop): a str and two offsets with start <= stop; got {brief((label, start, stop))}.")
    if point_budget is not None:
        check_count(point_budget, "point_budget")
    return tables["evaluations"], tables["iterations"]


def check_model(f: Callable, how: str, p0: Any) -> None:
    """``f`` takes the call a curve fit makes with p0 spread as ``how`` says (``'kwargs'``,
    ``'args'``, ``'array'`` or ``'none'``: see :func:`~autominimize.drivers.curve_fit.spread`),
    else a TypeError naming f, the call and the count, before the fit starts."""
    if how == "kwargs":
        check_call(f, "f", f"f(xdata, **p0): xdata, then p0's keys {list(p0)} as keywords", 1, p0)
    elif how in ("args", "array"):
        n = len(p0)
        check_call(f, "f", f"f(xdata, *p0): xdata, then the {n} values of p0", 1 + n, hint="give p0 one value per parameter of f after xdata")
    else:
        keys = f" (its keys {sorted(map(str, p0))} are not all parameters of f, so it is not passed as keywords)" if isinstance(p0, dict) else ""
        check_call(f, "f", f"f(xdata, p0): xdata, then p0 whole{keys}", 2)


def check_batches(data: Any, epochs: Any) -> None:
    """A stochastic method's ``data`` (None, or an iterable of mini-batches) and ``epochs``
    (None, or a positive whole number of passes over it); else an error naming which."""
    if data is not None and (isinstance(data, (str, bytes, dict)) or not isinstance(data, Iterable)):
        raise TypeError(
            f"data must be an iterable of mini-batches (a list of them, a torch DataLoader, a generator for one epoch); "
            f"got {type(data).__name__}{' (one batch? put it in a list)' if isinstance(data, dict) else ''}."
        )
    if epochs is not None and check_count(epochs, "epochs") == 0:
        raise ValueError("epochs must be a positive integer (the passes over data); got 0.")


#: options of scipy's methods that are finite-difference steps: one, or one per parameter
STEP_OPTIONS = ("eps", "finite_diff_rel_step")


def check_step_options(options: dict, n: int) -> None:
    """The ``STEP_OPTIONS`` given as arrays: finite, positive, one per parameter (``n``); a
    number is checked with the tolerances."""
    for key in STEP_OPTIONS:
        value = options.get(key)
        if value is not None and not is_number(value):
            check_relative_steps(value, f"options[{key!r}]", n, "relative steps" if key == "finite_diff_rel_step" else "steps")
