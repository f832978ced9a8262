"""The kinds of argument every entry point shares: switches, counts, tolerances, names,
options, callables, workers, constraints and random sources (see the package's docstring)."""

from __future__ import annotations

import difflib
import inspect
import math
from typing import Any, Callable, Iterable

import numpy as np

__all__ = [
    "CALLBACK_CALLS",
    "COUNT_OPTIONS",
    "HESSIAN_SCHEMES",
    "check_not_complex_step",
    "MAX_COUNT",
    "MAX_WORKERS",
    "POSITIVE_OPTIONS",
    "PRINT_LEVEL_METHODS",
    "SHAPED_OPTIONS",
    "SWITCH_OPTIONS",
    "TOLERANCE_OPTIONS",
    "check_callable",
    "check_constraints",
    "check_count",
    "check_interval",
    "check_known",
    "check_named",
    "check_observers",
    "check_options",
    "check_rng",
    "check_second_order",
    "check_settings",
    "check_shaped_options",
    "check_solve_arguments",
    "check_switch",
    "check_switches",
    "check_tolerance",
    "check_workers",
    "is_number",
    "is_one_of",
]

#: options that count iterations or evaluations: non-negative integers
COUNT_OPTIONS = ("maxiter", "maxfun", "maxfev", "max_nfev", "maxls", "maxcor", "niter", "maxCGit", "max_line_search")
#: counts of which a method needs at least one (L-BFGS-B keeps no correction pair with maxcor=0)
POSITIVE_OPTIONS = ("maxcor",)
#: the largest count a solver can hold (scipy and MINPACK keep counts in C longs)
MAX_COUNT = 2**63 - 1
#: options that are tolerances or step sizes: finite non-negative numbers
TOLERANCE_OPTIONS = ("tol", "gtol", "ftol", "xtol", "xrtol", "fatol", "xatol", "barrier_tol", "eps", "finite_diff_rel_step", "catol")
#: options scipy documents as True or False (shgo's and the local methods'; sparse_jacobian may be None)
SWITCH_OPTIONS = ("disp", "return_all", "adaptive", "inexact", "scale", "sparse_jacobian", "minimize_every_iter", "infty_constraints")
#: the methods whose ``disp`` is a print level (an int), not a switch
PRINT_LEVEL_METHODS = ("l-bfgs-b", "cobyla")


def is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


def is_one_of(value: Any, choices: Iterable[Any]) -> bool:
    """Whether ``value`` is one of ``choices``, of the same type as it: an array or a number
    given where a name is expected is not one (and is not compared element by element)."""
    if value is None or type(value) is str:  # the common case, without a generator's calls (solve overhead)
        return value in choices
    for choice in choices:
        if type(value) is type(choice) and value == choice:
            return True
    return False


def check_switch(value: Any, name: str, *, none: bool = False) -> bool | None:
    """``value`` as a bool if it is True or False (or 1 or 0), else an error naming ``name``:
    a switch given ``'no'`` must not be read as on. With ``none``, None (a documented "decide
    for me") passes too."""
    if none and value is None:
        return None
    if not isinstance(value, (bool, np.bool_)) and not (type(value) is int and value in (0, 1)):
        accepted = "True, False or None" if none else "True or False"
        raise TypeError(f"{name} must be {accepted}; got {value!r} ({type(value).__name__}).")
    return bool(value)


def check_switches(**switches: Any) -> None:
    """Each keyword argument a switch (see :func:`check_switch`), named by its keyword."""
    for name, value in switches.items():
        check_switch(value, name)


def check_callable(value: Any, name: str, *, optional: bool = True, calls: tuple = ()) -> None:
    """``value`` callable (or None if ``optional``), else a TypeError naming ``name``. With
    ``calls`` (``(text, args, kwargs)`` triples, e.g. ``("callback(xk)", (x,), {})``), ``value``
    must also take one of those calls, judged from its signature (one that cannot be read passes)."""
    if not callable(value) and not (optional and value is None):
        raise TypeError(f"{name} must be callable; got {type(value).__name__}.")
    if value is None or not calls:
        return
    refused = refusal(value, calls)
    if refused is not None:
        raise TypeError(f"{name} is called as {' or '.join(text for text, _, _ in calls)}; {refused[0]} cannot take that.")


def refusal(function: Callable, calls: tuple) -> tuple[str, TypeError] | None:
    """None when ``function`` can take one of ``calls`` (``(text, args, kwargs)`` triples),
    judged from its signature (one that cannot be read passes); else ``function`` described
    with its signature, and the error of binding the last call."""
    try:
        sig = inspect.signature(function)
    except (TypeError, ValueError):
        return None
    error = TypeError()
    for _, args, kwargs in calls:
        try:
            sig.bind(*args, **kwargs)
            return None
        except TypeError as exc:
            error = exc
    return f"{getattr(function, '__qualname__', type(function).__name__)}{sig}", error


def check_count(value: Any, name: str) -> int:
    """``value`` as an int if it is a non-negative whole number (a whole float such as scipy's
    ``maxfun=1e7`` included), else an error naming ``name``."""
    whole_float = isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer()
    if isinstance(value, bool) or not (isinstance(value, (int, np.integer)) or whole_float):
        raise TypeError(f"{name} must be a non-negative integer; got {value!r} ({type(value).__name__}).")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative integer; got {value}.")
    if value > MAX_COUNT:
        raise ValueError(f"{name}={value!r} is too large; a count must be at most 2**63 - 1 (np.iinfo(np.int64).max).")
    return int(value)


def check_tolerance(value: Any, name: str) -> float:
    """``value`` as a float if it is a finite non-negative number, else an error naming ``name``."""
    if not is_number(value):
        raise TypeError(f"{name} must be a finite non-negative number; got {value!r} ({type(value).__name__}).")
    if not math.isfinite(float(value)) or value < 0:
        raise ValueError(f"{name} must be a finite non-negative number; got {value!r}.")
    return float(value)


def check_settings(counts: dict[str, Any] | None = None, tolerances: dict[str, Any] | None = None, positive: tuple[str, ...] = ()) -> None:
    """A solver's keyword arguments, each named by its key: ``counts`` non-negative integers
    (positive if named in ``positive``), ``tolerances`` finite non-negative numbers; None
    (scipy's "no limit") passes."""
    for name, value in (counts or {}).items():
        if value is not None and check_count(value, name) == 0 and name in positive:
            raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    for name, value in (tolerances or {}).items():
        if value is not None:
            check_tolerance(value, name)


def check_interval(value: Any, name: str, low: float, high: float, closed: str = "[]") -> float:
    """``value`` as a float if it lies in the interval from ``low`` to ``high`` (``closed``
    says which ends belong to it, as ``'[]'``, ``'(]'``, ``'[)'`` or ``'()'``), else an error
    naming ``name`` and the interval."""
    interval = f"{closed[0]}{low:g}, {high:g}{closed[1]}"
    if not is_number(value):
        raise TypeError(f"{name}={value!r} is not valid; {name} must be a number in {interval}, not a {type(value).__name__}.")
    above = value >= low if closed[0] == "[" else value > low
    below = value <= high if closed[1] == "]" else value < high
    if not (above and below):  # NaN fails both
        raise ValueError(f"{name}={value!r} is not valid; {name} must be a number in {interval}.")
    return float(value)


def check_named(
    settings: dict[str, Any],
    *,
    counts: tuple[str, ...] = (),
    tolerances: tuple[str, ...] = (),
    positive: tuple[str, ...] = (),
    intervals: dict[str, tuple[float, float, str]] | None = None,
    switches: tuple[str, ...] = (),
) -> None:
    """The ``settings`` a solver was given, by name: those named in ``counts`` checked as
    counts, in ``tolerances`` as tolerances (see :func:`check_settings`), in ``intervals`` to
    lie in their ``(low, high, closed)`` interval, in ``switches`` to be True or False. Names
    not given and None values pass."""
    check_settings({k: settings[k] for k in counts if k in settings}, {k: settings[k] for k in tolerances if k in settings}, positive)
    check_switches(**{k: settings[k] for k in switches if settings.get(k) is not None})
    for name, (low, high, closed) in (intervals or {}).items():
        if settings.get(name) is not None:
            check_interval(settings[name], name, low, high, closed)


def check_known(given: Iterable[str], accepted: Iterable[str], what: str, error: type[Exception] = TypeError) -> None:
    """Refuse names in ``given`` that are not in ``accepted`` with ``error``, suggesting the
    nearest one; ``what`` starts the message, the unknown names follow it."""
    accepted = list(accepted)
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        close = difflib.get_close_matches(unknown[0], accepted, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        raise error(f"{what} {unknown}{hint} Accepted: {', '.join(accepted)}.")


def check_observers(observers: Any) -> list:
    """``observers``: a list or tuple of objects with an ``iteration`` method (and an
    ``evaluation`` method or ``evaluation = None``), as a list; else a TypeError naming the first wrong one."""
    if not isinstance(observers, (list, tuple)):
        raise TypeError(
            f"observers must be a list or tuple of objects with iteration(...) and evaluation(...) methods; got {type(observers).__name__}."
        )
    for i, observer in enumerate(observers):
        evaluation = getattr(observer, "evaluation", None)
        if not callable(getattr(observer, "iteration", None)) or not (evaluation is None or callable(evaluation)):
            raise TypeError(
                f"observers[{i}] is a {type(observer).__name__}; an observer has an iteration(nit, x, f, grad, counts) method "
                "and an evaluation(kind, x, f, grad, count) method (or evaluation = None)."
            )
    return list(observers)


def check_options(options: Any, method: Any = None) -> None:
    """A method's ``options`` dict: the iteration counts, tolerances and switches every method
    shares are checked here (for ``method``, a name, or None where it is chosen later); the
    rest is checked against the method's own options later."""
    if options is None:
        return
    if not isinstance(options, dict):
        raise TypeError(f"options must be a dict of the method's options (see scipy.optimize.show_options); got {type(options).__name__}.")
    method = method.lower() if isinstance(method, str) else None
    for key, value in options.items():
        if not isinstance(key, str):
            raise TypeError(f"options' keys must be option names (str); got {key!r} ({type(key).__name__}).")
        name = f"options[{key!r}]"
        if key in COUNT_OPTIONS and value is not None:
            if check_count(value, name) == 0 and key in POSITIVE_OPTIONS:
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")
        elif key in TOLERANCE_OPTIONS and (is_number(value) or isinstance(value, (str, bytes, bool))):
            check_tolerance(value, name)  # arrays of steps (eps, finite_diff_rel_step) pass
        elif key in SWITCH_OPTIONS:
            _check_switch_option(value, key, name, method)


def _check_switch_option(value: Any, key: str, name: str, method: str | None) -> None:
    """An option scipy documents as a bool, where ``method`` (None: not chosen yet) reads it so."""
    if key == "disp" and method in (None, *PRINT_LEVEL_METHODS):
        if not (isinstance(value, (bool, np.bool_)) or value is None):
            check_count(value, f"{name} (True, False or a print level)")
    elif key == "scale" and method != "cobyqa":
        return  # TNC's scale is a list of scale factors
    else:
        check_switch(value, name, none=key == "sparse_jacobian")


#: options that are arrays shaped by the number of parameters n: their shape, and what they hold
SHAPED_OPTIONS = {
    "direc": (lambda n: (n, n), "Powell's search directions, one per row"),
    "initial_simplex": (lambda n: (n + 1, n), "Nelder-Mead's n + 1 vertices, one per row"),
    "hess_inv0": (lambda n: (n, n), "BFGS's initial inverse Hessian"),
}


def check_shaped_options(options: dict | None, n: int) -> None:
    """The ``options`` that are arrays shaped by the number of parameters ``n``: finite numbers
    of that shape, else a ValueError naming the option, the shape wanted and the shape given."""
    for key, (shape_of, what) in SHAPED_OPTIONS.items():
        value = (options or {}).get(key)
        if value is None:
            continue
        try:
            array = None if isinstance(value, (str, bytes)) else np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            array = None
        if array is None or array.shape != shape_of(n) or not np.isfinite(array).all():
            given = (
                f"shape {array.shape}" if array is not None and array.shape != shape_of(n) else repr(value) if array is None else "non-finite values"
            )
            raise ValueError(f"options[{key!r}] must be a finite array of shape {shape_of(n)} for the {n} parameters ({what}); got {given}.")


#: the most processes ``workers=`` can ask for (the pools count them in a C int)
MAX_WORKERS = 2**31 - 1


def check_workers(workers: Any, *, all_cpus: bool = True, map_like: bool = True) -> None:
    """``workers``: None, a positive number of processes (at most 2**31 - 1), -1 (one per
    CPU) if ``all_cpus``, or a map-like callable if ``map_like``; else an error saying which."""
    if workers is None or (map_like and callable(workers)):
        return
    accepted = " or ".join(
        ["a positive number of processes"] + ["-1 (one per CPU)"] * all_cpus + ["a map-like callable (such as Pool.map)"] * map_like
    )
    if not isinstance(workers, (int, np.integer)) or isinstance(workers, bool):
        raise TypeError(f"workers must be {accepted}; got {workers!r} ({type(workers).__name__}).")
    if not (1 <= workers <= MAX_WORKERS or (all_cpus and workers == -1)):
        raise ValueError(f"workers must be {accepted}, at most 2**31 - 1; got {workers!r}.")


def check_constraints(constraints: Any) -> None:
    """``constraints``: None, one constraint (a dict with ``'type'`` and ``'fun'``, or a scipy
    ``LinearConstraint`` or ``NonlinearConstraint``) or a list or tuple of them; else a
    ValueError naming the wrong item (as the constraint layer's, before anything reads it)."""
    if isinstance(constraints, (list, tuple)):
        for i, item in enumerate(constraints):
            if not _is_constraint(item):
                raise ValueError(
                    f"constraints[{i}] is a {type(item).__name__}; each constraint must be a dict, a LinearConstraint or a NonlinearConstraint."
                )
    elif constraints is not None and not _is_constraint(constraints):
        raise ValueError(
            f"constraints must be a dict, a LinearConstraint, a NonlinearConstraint, or a list of them; got {type(constraints).__name__}."
        )


def _is_constraint(item: Any) -> bool:
    """A dict or one of scipy's constraint objects (told apart by their fields: no scipy import here)."""
    return isinstance(item, dict) or hasattr(item, "fun") and hasattr(item, "lb") or hasattr(item, "A") and hasattr(item, "lb")


def check_rng(value: Any, name: str = "rng") -> None:
    """A random source: None, a non-negative int or a sequence of them (a seed), or a NumPy
    ``Generator``, ``RandomState``, ``BitGenerator`` or ``SeedSequence``; else an error naming ``name``."""
    sources = (np.random.Generator, np.random.RandomState, np.random.BitGenerator, np.random.SeedSequence)
    if value is None or isinstance(value, sources):
        return
    seeds = [value] if isinstance(value, (int, np.integer)) else value if isinstance(value, (list, tuple, np.ndarray)) else None
    accepted = "None, a non-negative int (or a sequence of them) or a numpy.random.Generator"
    if seeds is None or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in np.ravel(np.asarray(seeds, dtype=object))):
        raise TypeError(f"{name} must be {accepted}; got {value!r} ({type(value).__name__}).")
    if any(s < 0 for s in np.ravel(np.asarray(seeds, dtype=object))):
        raise ValueError(f"{name} must be {accepted}; got {value!r}, which is negative.")


#: how the solve calls each callback: scipy's two styles (trust-constr's old style also
#: passes its state), and TF1's step and loss callbacks
CALLBACK_CALLS = {
    "callback": (
        ("callback(intermediate_result)", (), {"intermediate_result": None}),
        ("callback(xk)", (None,), {}),
        ("callback(xk, state)", (None, None), {}),
    ),
    "step_callback": (("step_callback(x)", (None,), {}),),
    "loss_callback": (("loss_callback(f)", (None,), {}),),
}


#: the difference schemes scipy's trust-constr accepts for ``hess``, but for the complex step
HESSIAN_SCHEMES = ("2-point", "3-point")


def check_not_complex_step(value: Any, name: str, instead: str) -> None:
    """Refuse scipy's complex-step scheme ``'cs'`` for ``name`` (``jac`` or ``hess``): the
    objective is evaluated at real points, so the imaginary part of scipy's complex points
    would be dropped and the derivative come out zero, silently. ``instead``: what to use."""
    if isinstance(value, str) and value == "cs":
        raise ValueError(
            f"{name}='cs' (complex step) is not supported: autominimize evaluates fun at real points, so the "
            f"imaginary part of scipy's complex-step points would be lost. Use {instead}."
        )


def check_second_order(hess: Any, hessp: Any) -> None:
    """``hess``: None, True (autodiff), a callable, one of scipy's difference schemes or a
    HessianUpdateStrategy (an object with ``initialize`` and ``update``); ``hessp``: None,
    True or a callable. Else an error naming the argument and what it accepts."""
    check_not_complex_step(hess, "hess", "hess=None (exact Hessian-vector products), '2-point', '3-point' or a HessianUpdateStrategy")
    strategy = callable(getattr(hess, "initialize", None)) and callable(getattr(hess, "update", None))
    if not (hess is None or hess is True or callable(hess) or strategy or is_one_of(hess, HESSIAN_SCHEMES)):
        raise ValueError(
            f"hess={hess!r} is not accepted; use None, True (autodiff), a callable hess(x, *args), one of {HESSIAN_SCHEMES} "
            "or a scipy HessianUpdateStrategy (BFGS(), SR1())."
        )
    if not (hessp is None or hessp is True or callable(hessp)):
        raise TypeError(f"hessp must be a callable hessp(x, p) returning the Hessian times p, or True (autodiff); got {hessp!r}.")


def check_solve_arguments(tol: Any, options: Any, method: Any, callbacks: dict) -> None:
    """``tol``, ``options`` (of ``method``) and the callbacks of a solve (a dict by name:
    ``callback``, ``step_callback``, ``loss_callback``, ``fun_and_jac``), each named if wrong."""
    if tol is not None or options is not None:
        if tol is not None:
            check_tolerance(tol, "tol")
        check_options(options, method)
    for name, value in callbacks.items():
        if value is not None:
            check_callable(value, name, calls=CALLBACK_CALLS.get(name, ()))
