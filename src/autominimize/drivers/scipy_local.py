"""Where scipy.optimize.minimize is called: each method gets exactly the derivatives it uses."""

from __future__ import annotations

import difflib
import functools
import inspect
import re
import warnings
from typing import Any, Callable

import numpy as np
import scipy.optimize as so

from ..params import ParamSpec
from ..problem import Objective
from .finite_derivatives import TRUST_REGION, check_curvature, not_finite_error
from .blas_threads import single_blas_thread
from .methods import MethodInfo

__all__ = ["run_minimize", "wrap_callback"]


_NEW_STYLE = inspect.Signature([inspect.Parameter("intermediate_result", inspect.Parameter.POSITIONAL_OR_KEYWORD)])


def _callback_style(callback: Callable) -> str:
    try:
        params = inspect.signature(callback).parameters
    except (TypeError, ValueError):
        return "old"
    return "new" if set(params) == {"intermediate_result"} else "old"


def wrap_callback(
    callback: Callable | None, spec: ParamSpec, info: MethodInfo, method: str, objective: Objective, step_callback: Callable | None = None
) -> Callable | None:
    """A scipy callback that reports each iteration and shows the user x in x0's structure.

    The user's callback may be new style (one parameter named ``intermediate_result``,
    receiving an ``OptimizeResult``) or old style (``callback(x)``; trust-constr's
    ``callback(x, state)``); TF1's ``step_callback(x)`` is old style too. Returning ``True``
    stops the solve, as raising StopIteration does. Without callbacks or observers, scipy
    gets no callback at all.
    """
    if callback is None and step_callback is None:
        if not objective.reporting:
            return None
        if info.new_callback:  # the journal and observers alone: the shortest path, once per iteration
            report = objective.result_callback()
            report.__signature__ = _NEW_STYLE  # scipy reads the signature on every solve
            return report
    style = _callback_style(callback) if callback is not None else None
    user_callbacks = callback is not None or step_callback is not None

    def on_iteration(x: np.ndarray, result: so.OptimizeResult | None) -> None:
        objective.report_iteration(x, None if result is None else result.get("fun"))
        if not user_callbacks:
            return
        answers = []
        if style == "new":
            fields = dict(result) if result is not None else {"x": x, "fun": objective.value(x)}
            fields["x"] = spec.restore(np.asarray(fields["x"]))
            answers.append(callback(intermediate_result=so.OptimizeResult(fields)))
        elif style == "old" and method == "trust-constr" and result is not None:
            answers.append(callback(spec.restore(x), result))
        elif style == "old":
            answers.append(callback(spec.restore(x)))
        if step_callback is not None:
            answers.append(step_callback(spec.restore(x)))
        if any(answer is True for answer in answers):
            objective.stop_message = "callback returned True."
            raise StopIteration

    if info.new_callback:

        def scipy_callback(intermediate_result: so.OptimizeResult) -> None:
            on_iteration(np.asarray(intermediate_result.x), intermediate_result)

    else:

        def scipy_callback(xk: np.ndarray) -> None:
            on_iteration(np.asarray(xk), None)

    return scipy_callback


def run_minimize(
    objective: Objective,
    x0: np.ndarray,
    method: str | Callable,
    info: MethodInfo,
    *,
    second_order: str | None,
    gradient_scheme: str | None = None,
    bounds: tuple[np.ndarray, np.ndarray] | None,
    constraints: list,
    tol: float | None,
    callback: Callable | None,
    options: dict | None,
) -> so.OptimizeResult:
    """Run one scipy.optimize.minimize solve on the flat objective (or IPOPT's, for 'ipopt')."""
    if method == "ipopt":
        from .ipopt import run_ipopt

        return run_ipopt(
            objective, x0, second_order=second_order, bounds=bounds, constraints=constraints, tol=tol, callback=callback, options=options
        )
    sparsity = None
    if method == "trust-constr":
        from .sparse_trust_constr import sparse_constraints

        constraints, options, sparsity = sparse_constraints(objective, x0, bounds, constraints, options, second_order)
        if sparsity is not None:
            second_order = "hessp"  # the objective's Hessian as products too: no (n, n) matrix
    fun, kwargs = _derivatives(objective, info, second_order, gradient_scheme)
    if isinstance(method, str) and method.lower() in TRUST_REGION:
        check_curvature(objective, method, kwargs)
    kwargs.update(method=method, tol=tol, callback=callback, options=options)
    if bounds is not None:
        kwargs["bounds"] = _scipy_bounds(bounds[0], bounds[1])
    if constraints:
        kwargs["constraints"] = constraints
    if isinstance(method, str):
        check_option_names(options, method)
        check_method_options(options, method)
    # scipy warns, and then ignores them, of bounds or constraints a method cannot handle:
    # an error, where the method's table does not already refuse them (plan_method); the
    # warning filter is installed only then, as it costs about 2 µs a solve
    dropped = (bounds is not None and not info.bounds) or (bool(constraints) and not info.constraints)
    with single_blas_thread():
        if not dropped:
            return _settled(objective, fun, x0, kwargs, sparsity)
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=r"Method .* cannot handle")
            return _settled(objective, fun, x0, kwargs, sparsity)


#: the last read-only bounds and scipy's Bounds of them (about 7 µs to build, 2% of a solve of
#: the benchmark's matfac): later solves with the same bounds share both (see _flat_bounds)
_last_bounds: tuple = (None, None, None)


def _scipy_bounds(lb: np.ndarray, ub: np.ndarray) -> so.Bounds:
    global _last_bounds
    last = _last_bounds
    if last[0] is lb and last[1] is ub:
        return last[2]
    bounds = so.Bounds(lb, ub)
    if not (lb.flags.writeable or ub.flags.writeable):  # never changed: shared by later solves
        _last_bounds = (lb, ub, bounds)
    return bounds


def _settled(objective: Objective, fun: Callable, x0: np.ndarray, kwargs: dict, sparsity: Any) -> so.OptimizeResult:
    """scipy's solve, its result settled by the objective (see :meth:`Objective.settle`)."""
    try:
        result = objective.settle(so.minimize(fun, x0, **kwargs), x0, constrained=bool(kwargs.get("constraints")))
        if sparsity is not None:
            result.sparsity = sparsity.summary()
        return result
    except StopIteration:
        # TNC lets a callback's StopIteration escape; end the solve at the best point.
        x = objective.best_x if objective.best_x is not None else x0
        return so.OptimizeResult(
            x=x,
            fun=objective.best_f,
            success=False,
            status=99,
            nit=objective.nit,
            message=objective.stop_message or "`callback` raised `StopIteration`.",
        )
    except so.OptimizeWarning as exc:
        raise ValueError(f"options: {exc} (see scipy.optimize.show_options for this method).") from None
    except ValueError as exc:
        # a trust-region method's own check of the derivatives, named after the fact
        method = kwargs["method"]
        named = not_finite_error(exc, objective, method) if isinstance(method, str) and method.lower() in TRUST_REGION else None
        if named is None:
            raise
        raise named from None


def _derivatives(objective: Objective, info: MethodInfo, second_order: Any, gradient_scheme: str | None) -> tuple[Callable, dict[str, Any]]:
    """The objective's function scipy minimizes, and the derivatives it gets, as keywords."""
    kwargs: dict[str, Any] = {}
    if info.gradient is None:
        fun = objective.value
    elif info.gradient == "scipy":
        fun, kwargs["jac"] = objective.value, gradient_scheme
    elif info.gradient == "fused":
        # the same evaluations as jac=True, without scipy's MemoizeJac comparing and
        # copying every point again: the objective's cache hands the gradient over
        fun, kwargs["jac"] = objective.fused_value, objective.gradient
    else:
        fun, kwargs["jac"] = objective.value, objective.gradient
    if second_order == "hessp":
        kwargs["hessp"] = objective.hessp
    elif second_order == "hess":
        kwargs["hess"] = objective.hessian
    elif second_order is not None:
        kwargs["hess"] = second_order  # a scipy HessianUpdateStrategy or a difference scheme
    return fun, kwargs


#: scipy.optimize.minimize's methods, as show_options names them
_SCIPY_METHODS = (
    "nelder-mead",
    "powell",
    "cg",
    "bfgs",
    "newton-cg",
    "l-bfgs-b",
    "tnc",
    "cobyla",
    "cobyqa",
    "slsqp",
    "trust-constr",
    "dogleg",
    "trust-ncg",
    "trust-exact",
    "trust-krylov",
)


@functools.cache
def scipy_option_names() -> frozenset[str]:
    """Every option name of a ``scipy.optimize.minimize`` method, read from scipy's own
    documentation of its methods (``show_options``), once per process (about 25 ms)."""
    names: set[str] = set()
    for method in _SCIPY_METHODS:
        text = so.show_options("minimize", method, disp=False)
        for group in re.findall(r"^\s{0,8}(\w+(?:, \w+)*)\s?: ", text, flags=re.M):
            names.update(group.split(", "))
    return frozenset(names)


def check_option_names(options: dict | None, method: str) -> None:
    """An option that no scipy method knows is a typo: an error naming the nearest names.

    One that scipy knows for other methods reaches scipy, which warns (``OptimizeWarning``)
    that the method ignores it, as a plain scipy call does.
    """
    if not options:
        return
    unknown = sorted(set(options) - scipy_option_names())
    if not unknown:
        return
    messages = []
    for name in unknown:
        close = difflib.get_close_matches(name, sorted(scipy_option_names()), n=3)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else "."
        messages.append(f"{name!r} is not an option of any scipy.optimize.minimize method{hint}")
    raise ValueError(f"options: {' '.join(messages)} scipy.optimize.show_options('minimize', {method!r}) lists method={method!r}'s options.")


#: the methods whose scipy function takes no option of another method: scipy raises a
#: TypeError naming its private function, where the others warn (OptimizeWarning)
_NO_OTHER_OPTIONS = frozenset({"trust-constr"})


@functools.cache
def method_option_names(method: str) -> tuple[str, ...]:
    """The options scipy documents for one method (``show_options``, before its Returns)."""
    text = re.split(r"^\s*Returns\n\s*-+\n", so.show_options("minimize", method, disp=False), flags=re.M)[0]
    names: list[str] = []
    for group in re.findall(r"^ {0,4}(\w+(?:, \w+)*)\s?:", text, flags=re.M):
        names.extend(name for name in group.split(", ") if name not in names)
    return tuple(names)


def check_method_options(options: dict | None, method: str) -> None:
    """For a method whose scipy function refuses another method's option: an error naming it
    and the options the method takes."""
    name = method.lower()
    if name not in _NO_OTHER_OPTIONS or not options:
        return
    accepted = method_option_names(name)
    foreign = [key for key in options if key not in accepted]
    if foreign:
        raise ValueError(
            f"options: {', '.join(map(repr, foreign))} {'is not an option' if len(foreign) == 1 else 'are not options'} "
            f"of method={name!r}, which takes {', '.join(accepted)}."
        )
