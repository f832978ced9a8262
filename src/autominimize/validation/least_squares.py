"""The arguments of ``am.least_squares`` and ``am.curve_fit`` that scipy's least_squares reads."""

from __future__ import annotations

from typing import Any

import numpy as np

from collections.abc import Mapping

from .checks import is_one_of

__all__ = ["LOSSES", "check_diff_step", "check_least_squares_method", "check_loss", "check_mappings", "check_verbose", "check_x_scale"]


def check_mappings(**given: Any) -> None:
    """``kwargs`` (keyword arguments of ``fun``) and ``tr_options`` (of the trust-region solver): None or a dict."""
    for name, value in given.items():
        if value is not None and not isinstance(value, Mapping):
            raise TypeError(f"{name} must be a dict of keyword arguments (or None); got {type(value).__name__}.")


def check_diff_step(diff_step: Any, n: int | None = None) -> None:
    """``diff_step``: None, or finite positive relative steps (one number, or one per parameter
    when the number of parameters ``n`` is given)."""
    if diff_step is not None:
        _check_per_parameter(diff_step, "diff_step", "None or finite relative steps greater than 0", n)


def check_x_scale(x_scale: Any, diff_step: Any, n: int) -> None:
    """``x_scale``: None, ``'jac'``, or finite positive scales; ``diff_step``: see
    :func:`check_diff_step`; each one number, or one per parameter (``n`` of them)."""
    if x_scale is not None and not is_one_of(x_scale, ("jac",)):
        _check_per_parameter(x_scale, "x_scale", "None, 'jac' or finite scales greater than 0", n)
    check_diff_step(diff_step, n)


def check_verbose(verbose: Any) -> None:
    """``verbose``: scipy's 0 (silent), 1 (a report at the end) or 2 (a line per iteration)."""
    if not is_one_of(verbose, (0, 1, 2)):
        raise ValueError(f"verbose={verbose!r} is not valid; use 0 (silent), 1 (a report at the end) or 2 (a line per iteration).")


def _check_per_parameter(value: Any, name: str, accepted: str, n: int | None) -> None:
    """Finite positive numbers: one, or one per parameter (``n`` of them, when known)."""
    try:
        array = None if isinstance(value, (str, bytes, bool, np.bool_)) else np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        array = None
    if array is None or (np.asarray(value).dtype == bool):
        raise ValueError(f"{name}={value!r} is not valid; give {accepted} (a number, or one per parameter).")
    shape_ok = array.ndim == 0 or (array.ndim == 1 and (array.size == n if n is not None else array.size > 0))
    if not shape_ok:
        raise ValueError(f"{name} has shape {array.shape}; give {accepted}: a number, or {f'{n} of them' if n is not None else 'one per parameter'}.")
    if not (np.isfinite(array).all() and (array > 0).all()):
        raise ValueError(f"{name}={value!r} is not valid; give {accepted} (a number, or one per parameter).")


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


def check_least_squares_method(method: Any, methods: tuple, tr_solver: Any, tr_options: Any, verbose: Any = 0) -> None:
    """``method`` one of ``methods``; ``tr_solver`` and ``tr_options`` where scipy's
    least_squares reads them (it ignores both for 'lm', and ``tr_options`` for the 'exact'
    solver); ``verbose`` one of scipy's levels."""
    check_verbose(verbose)
    if not is_one_of(method, methods):
        raise ValueError(f"method={method!r} is not a least-squares method; use one of {methods}.")
    if method == "lm" and (tr_solver is not None or tr_options):
        raise ValueError("tr_solver and tr_options are for method='trf' and 'dogbox'; method='lm' (MINPACK) takes neither.")
    if not is_one_of(tr_solver, (None, "exact", "lsmr")):
        raise ValueError(f"tr_solver={tr_solver!r} is not a trust-region solver; use None (chosen from the Jacobian), 'exact' or 'lsmr'.")
    if tr_solver == "exact" and tr_options:
        raise ValueError(
            "tr_options is for tr_solver='lsmr' (scipy.sparse.linalg.lsmr's options, and 'regularize' for 'trf'); tr_solver='exact' takes none."
        )
