"""IPOPT's options for ``method='ipopt'``: scipy's names under IPOPT's, values of the type
IPOPT takes, and a warm start from an earlier result."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["FLOAT32_ACCEPTABLE_TOL", "FLOAT32_TOL", "IPOPT_OPTIONS", "float32_note", "set_options", "warm_start"]

#: autominimize's own keys in ``options`` for method='ipopt'; every other key goes to IPOPT
IPOPT_OPTIONS = ("warm_start", "sparse", "jac_sparsity", "hess_sparsity")

#: float32 resolves a value to about 1.2e-7 of its size, so IPOPT's default tol (1e-8) is out
#: of a float32 solve's reach: it asks for 1e-6 unless tol is given ...
FLOAT32_TOL = 1e-6
#: ... and stops at IPOPT's "acceptable" level (status 1) from about √eps on, rather than
#: search its restoration phase for a lower constraint violation than float32 can show (HS071
#: with tol=1e-8 ended in "local infeasibility" after 51 iterations; with this, status 1 after 8)
FLOAT32_ACCEPTABLE_TOL = 3.5e-4
#: IPOPT's statuses that a tolerance out of float32's reach can explain: solved to the
#: acceptable level, local infeasibility, iteration limit, restoration failed, error in step
FLOAT32_STATUSES = (1, 2, -1, -2, -3)

_ALIASES = {"maxiter": "max_iter"}
_WARM_START = {"warm_start_init_point": "yes", "warm_start_bound_push": 1e-9, "warm_start_mult_bound_push": 1e-9, "mu_init": 1e-9}


def set_options(problem: Any, settings: dict, tol: float | None, float32: bool = False) -> dict:
    """IPOPT's options: quiet by default; scipy's tol, maxiter and disp under IPOPT's names;
    tolerances float32 can meet for a solve computed in it; the final point inside the bounds
    given (IPOPT relaxes them by ``bound_relax_factor``, 1e-8 of their size, and returns its
    iterate there unless ``honor_original_bounds``). Returns the options set."""
    chosen: dict[str, Any] = {"print_level": 0, "sb": "yes", "honor_original_bounds": "yes"}
    if float32:
        chosen.update(tol=FLOAT32_TOL, acceptable_tol=FLOAT32_ACCEPTABLE_TOL)
    if tol is not None:
        chosen["tol"] = float(tol)
    for key, value in settings.items():
        if key == "disp":
            key, value = "print_level", (5 if value is True else 0 if value is False else value)
        chosen[_ALIASES.get(key, key)] = value
    for key, value in chosen.items():
        _add_option(problem, key, value)
    return chosen


def float32_note(status: int, chosen: dict) -> str:
    """What to add to IPOPT's message when a float32 solve ended short of its tolerance."""
    if status not in FLOAT32_STATUSES:
        return ""
    return (
        f" (computed in float32, which resolves values to about 1e-7 of their size: tol={chosen.get('tol', 1e-8):g} may be "
        "beyond its reach; compute in float64, with float64 constants in the functions, or loosen tol)"
    )


def _add_option(problem: Any, key: str, value: Any) -> None:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        value = "yes" if value else "no"
    candidates = [value]
    if isinstance(value, float) and value.is_integer():
        candidates.append(int(value))
    elif isinstance(value, int):
        candidates.append(float(value))
    for candidate in candidates:
        try:
            problem.add_option(key, candidate)
            return
        except TypeError:
            continue
    raise ValueError(
        f"options[{key!r}]={value!r}: IPOPT has no such option or it takes another type "
        "(see https://coin-or.github.io/Ipopt/OPTIONS.html); autominimize's own keys are "
        f"{', '.join(IPOPT_OPTIONS)}."
    )


def warm_start(previous: Any, spec: Any, x0: np.ndarray, m: int, settings: dict) -> tuple[np.ndarray, dict | None]:
    """The start point and multipliers taken from a previous method='ipopt' result; IPOPT's
    warm-start options join ``settings`` unless given there."""
    if previous is None:
        return x0, None
    missing = [key for key in ("x", "mult_g", "mult_x_L", "mult_x_U") if key not in previous]
    if not isinstance(previous, dict) or missing:
        raise ValueError(
            "options['warm_start'] must be the result of an earlier am.minimize(..., method='ipopt') "
            f"(with x, mult_g, mult_x_L, mult_x_U); {'missing ' + ', '.join(missing) if isinstance(previous, dict) else 'got ' + type(previous).__name__}."
        )
    multipliers = np.asarray(previous["mult_g"], dtype=np.float64).reshape(-1)
    if multipliers.size != m:
        raise ValueError(f"options['warm_start'] has {multipliers.size} constraint multipliers; this problem has {m} constraint values.")
    x = spec.flatten(previous["x"], "options['warm_start'].x")
    warm = {
        "lagrange": multipliers,
        "zl": spec.flatten(previous["mult_x_L"], "options['warm_start'].mult_x_L"),
        "zu": spec.flatten(previous["mult_x_U"], "options['warm_start'].mult_x_U"),
    }
    for key, value in _WARM_START.items():
        settings.setdefault(key, value)
    return x, warm
