"""A native run's options: the algorithm's hyperparameters and the stopping criterion."""

from __future__ import annotations

from typing import Any

from ...native import ALGORITHMS
from ...native.base import Algorithm
from ...native.stopping import (
    AnyOf,
    Criterion,
    FunctionTolerance,
    GradientTolerance,
    MaxEpochs,
    MaxEvaluations,
    MaxIterations,
    TimeBudget,
    as_criterion,
)

__all__ = ["STOP_OPTIONS", "make_algorithm", "make_criterion"]

STOP_OPTIONS = ("gtol", "ftol", "maxiter", "maxfev", "max_time", "stop")
# Defaults: scipy L-BFGS-B (gtol, ftol, maxiter=15000); scipy CG (maxiter=200·n, no ftol);
# Martens' demo runs 500 epochs; gradient-only methods get a generous iteration budget.
_DEFAULT_STOP = {
    "lbfgs-native": {"gtol": 1e-5, "ftol": 2.220446049250313e-09, "maxiter": 15000},
    "cg-native": {"gtol": 1e-5, "ftol": None, "maxiter": "200n"},
    "hessian-free": {"gtol": 1e-5, "ftol": 2.220446049250313e-09, "maxiter": 500},
}
_FIRST_ORDER_STOP = {"gtol": 1e-5, "ftol": None, "maxiter": 10000}


def make_algorithm(method: str, options: dict | None, stop: Any, *, stochastic: bool, epochs: int | None, bounds: Any) -> tuple[Algorithm, dict]:
    """The algorithm with ``options`` as hyperparameters, and the stopping options left over.

    Raises a TypeError naming an option the method does not have, and a ValueError where
    ``data=``, ``epochs=`` or ``bounds`` do not fit the method.
    """
    options = dict(options or {})
    stop_options = {k: options.pop(k) for k in STOP_OPTIONS if k in options}
    if stop is not None:
        stop_options["stop"] = stop
    cls = ALGORITHMS[method]
    unknown = sorted(set(options) - set(cls.hyperparameters()) - {"lower", "upper"})
    if unknown:
        raise TypeError(
            f"method={method!r} has no option {', '.join(map(repr, unknown))}; its options are "
            f"{', '.join(h for h in cls.hyperparameters() if h not in ('lower', 'upper'))} and the "
            f"stopping options {', '.join(STOP_OPTIONS)}."
        )
    algorithm = cls(**options)
    if stochastic and not cls.first_order:
        first_order = ", ".join(repr(n) for n, c in ALGORITHMS.items() if c.first_order)
        raise ValueError(f"method={method!r} needs exact values at several points and cannot run on mini-batches (data=); use {first_order}.")
    if epochs is not None and not stochastic:
        raise ValueError("epochs= counts passes over data=; give data= (an iterable of mini-batches) too.")
    if bounds is not None and method != "lbfgs-native":
        raise ValueError(
            f"method={method!r} does not take bounds; use method='lbfgs-native' (projected L-BFGS) or a scipy method such as 'L-BFGS-B'."
        )
    return algorithm, stop_options


def make_criterion(method: str, first_order: bool, options: dict, tol: float | None, epochs: int | None, n: int, *, stochastic: bool) -> Criterion:
    """The stopping criterion: ``stop=`` if given, else the method's defaults changed by ``tol`` and ``options``.

    A stochastic run stops after ``epochs`` passes over the data (one by default) or
    ``maxiter`` steps; a deterministic one on the gradient, the objective's decrease or
    ``maxiter``; either also on ``maxfev`` evaluations or ``max_time`` seconds.
    """
    if "stop" in options:
        return as_criterion(options["stop"])
    defaults = dict(_FIRST_ORDER_STOP if first_order else _DEFAULT_STOP[method])
    if tol is not None:
        defaults["gtol"] = tol
        if defaults["ftol"] is not None:
            defaults["ftol"] = tol
    defaults.update({k: v for k, v in options.items() if k in ("gtol", "ftol", "maxiter")})
    criteria: list[Criterion] = []
    if stochastic:
        criteria.append(MaxEpochs(1 if epochs is None else int(epochs)))
        if "maxiter" in options:
            criteria.append(MaxIterations(int(options["maxiter"])))
    else:
        if defaults["gtol"] is not None:
            criteria.append(GradientTolerance(defaults["gtol"]))
        if defaults["ftol"] is not None:
            criteria.append(FunctionTolerance(defaults["ftol"]))
        maxiter = 200 * n if defaults["maxiter"] == "200n" else defaults["maxiter"]
        criteria.append(MaxIterations(int(maxiter)))
    if "maxfev" in options:
        criteria.append(MaxEvaluations(int(options["maxfev"])))
    if "max_time" in options:
        criteria.append(TimeBudget(float(options["max_time"])))
    return AnyOf(*criteria)
