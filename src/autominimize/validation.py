"""Arguments checked where they enter, one function per kind of argument.

Each error names the argument, says what was wrong with it and what would be accepted, so
that a mistake is not reported from deep inside scipy or a framework.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any, Iterable

import numpy as np

__all__ = [
    "check_count",
    "check_interval",
    "check_known",
    "check_least_squares_method",
    "check_loss",
    "check_named",
    "check_options",
    "check_settings",
    "check_switch",
    "check_tolerance",
    "is_number",
]

#: options that count iterations or evaluations: non-negative integers
COUNT_OPTIONS = ("maxiter", "maxfun", "maxfev", "max_nfev", "maxls", "maxcor", "niter", "maxCGit", "max_line_search")
#: counts of which a method needs at least one (L-BFGS-B keeps no correction pair with maxcor=0)
POSITIVE_OPTIONS = ("maxcor",)
#: options that are tolerances or step sizes: finite non-negative numbers
TOLERANCE_OPTIONS = ("tol", "gtol", "ftol", "xtol", "fatol", "xatol", "barrier_tol", "eps", "finite_diff_rel_step", "catol")


def is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


def check_switch(value: Any, name: str) -> bool:
    """``value`` as a bool if it is True or False (or 1 or 0), else an error naming ``name``:
    a switch given ``'no'`` must not be read as on."""
    if not isinstance(value, (bool, np.bool_)) and not (type(value) is int and value in (0, 1)):
        raise TypeError(f"{name} must be True or False; got {value!r} ({type(value).__name__}).")
    return bool(value)


def check_count(value: Any, name: str) -> int:
    """``value`` as an int if it is a non-negative whole number (a whole float such as scipy's
    ``maxfun=1e7`` included), else an error naming ``name``."""
    whole_float = isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer()
    if isinstance(value, bool) or not (isinstance(value, (int, np.integer)) or whole_float):
        raise TypeError(f"{name} must be a non-negative integer; got {value!r} ({type(value).__name__}).")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative integer; got {value}.")
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
) -> None:
    """The ``settings`` a solver was given, by name: those named in ``counts`` checked as
    counts, in ``tolerances`` as tolerances (see :func:`check_settings`), in ``intervals`` to
    lie in their ``(low, high, closed)`` interval. Names not given and None values pass."""
    check_settings({k: settings[k] for k in counts if k in settings}, {k: settings[k] for k in tolerances if k in settings}, positive)
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


def check_options(options: Any) -> None:
    """A method's ``options`` dict: the iteration counts and tolerances every method shares
    are checked here; the rest is checked against the method's own options later."""
    if options is None:
        return
    if not isinstance(options, dict):
        raise TypeError(f"options must be a dict of the method's options (see scipy.optimize.show_options); got {type(options).__name__}.")
    for key, value in options.items():
        if not isinstance(key, str):
            raise TypeError(f"options' keys must be option names (str); got {key!r} ({type(key).__name__}).")
        if key in COUNT_OPTIONS and value is not None:
            if check_count(value, f"options[{key!r}]") == 0 and key in POSITIVE_OPTIONS:
                raise ValueError(f"options[{key!r}] must be a positive integer; got {value!r}.")
        elif key in TOLERANCE_OPTIONS and (is_number(value) or isinstance(value, (str, bytes, bool))):
            check_tolerance(value, f"options[{key!r}]")  # arrays of steps (eps, finite_diff_rel_step) pass


def check_mappings(**given: Any) -> None:
    """``kwargs`` (keyword arguments of ``fun``) and ``tr_options`` (of the trust-region solver): None or a dict."""
    for name, value in given.items():
        if value is not None and not isinstance(value, Mapping):
            raise TypeError(f"{name} must be a dict of keyword arguments (or None); got {type(value).__name__}.")


def check_diff_step(diff_step: Any) -> None:
    """``diff_step``: None, or finite relative steps (one number, or one per parameter)."""
    if diff_step is None:
        return
    try:
        steps = np.asarray(diff_step, dtype=float)
    except (TypeError, ValueError):
        steps = None
    if isinstance(diff_step, (str, bytes)) or steps is None or not np.isfinite(steps).all():
        raise ValueError(f"diff_step={diff_step!r} is not valid; give None or finite relative steps (a number, or one per parameter).")


#: scipy.optimize.least_squares's named losses
LOSSES = ("linear", "huber", "soft_l1", "cauchy", "arctan")


def check_loss(loss: Any) -> Any:
    """``loss``: one of scipy's named losses, or a callable ``rho(z)`` wrapped so that an
    output of another shape than scipy's ``(3, m)`` is named rather than failing inside scipy."""
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ValueError(f"loss={loss!r} is not a loss of least_squares; use one of {LOSSES} or a callable rho(z).")
        return loss
    if not callable(loss):
        raise TypeError(f"loss must be one of {LOSSES} or a callable rho(z); got {type(loss).__name__}.")

    def checked(z: np.ndarray) -> np.ndarray:
        out = np.asarray(loss(z), dtype=np.float64)
        if out.shape != (3,) + np.shape(z):
            raise ValueError(
                f"loss must return rho(z), rho'(z) and rho''(z) stacked, an array of shape {(3,) + np.shape(z)} for z of shape "
                f"{np.shape(z)}; got shape {out.shape}."
            )
        return out

    return checked


def check_least_squares_method(method: Any, methods: tuple, tr_solver: Any, tr_options: Any) -> None:
    """``method`` one of ``methods``; ``tr_solver`` and ``tr_options`` where scipy's
    least_squares reads them (it ignores both for 'lm', and ``tr_options`` for the 'exact' solver)."""
    if method not in methods:
        raise ValueError(f"method={method!r} is not a least-squares method; use one of {methods}.")
    if method == "lm" and (tr_solver is not None or tr_options):
        raise ValueError("tr_solver and tr_options are for method='trf' and 'dogbox'; method='lm' (MINPACK) takes neither.")
    if tr_solver not in (None, "exact", "lsmr"):
        raise ValueError(f"tr_solver={tr_solver!r} is not a trust-region solver; use None (chosen from the Jacobian), 'exact' or 'lsmr'.")
    if tr_solver == "exact" and tr_options:
        raise ValueError(
            "tr_options is for tr_solver='lsmr' (scipy.sparse.linalg.lsmr's options, and 'regularize' for 'trf'); tr_solver='exact' takes none."
        )
