"""The differentiable versions of ``am.minimize`` and ``am.least_squares``.

Each takes the entry point itself and the arguments it was called with, checks what implicit
differentiation needs, describes the problem, and hands the ordinary solve (with concrete
arguments) to the adapter of the framework that differentiates.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.optimize as so

from .._residuals import Residuals, is_residual_function
from ..backends import constant_like, ravel_like
from ..bounds import normalize_bounds
from ..drivers.curve_fit import covariance, spread
from ..drivers.scipy_least_squares import LEAST_SQUARES_METHODS, scipy_least_squares_bounds
from ..params import ParamSpec, leaf_kind, tree_flatten
from . import captured_differentiable, concrete_solve, differentiable_framework
from .problem import ImplicitProblem, build_problem

__all__ = ["least_squares", "minimize"]

_BACKENDS = {"jax": "jax", "torch": "torch", "tensorflow": "tensorflow", "tf": "tensorflow"}


def _solver(framework: str) -> Callable:
    if framework == "jax":
        from .jax_rule import solve_with_jax

        return solve_with_jax
    if framework == "torch":
        from .torch_rule import solve_with_torch

        return solve_with_torch
    from .tf_rule import solve_with_tf

    return solve_with_tf


def _template(x0: Any) -> Any:
    """x0 with concrete leaves: a JAX tracer (x0 computed inside a transformation) becomes zeros
    of its shape and dtype, enough to describe the structure."""
    leaves, treedef = tree_flatten(x0, none_is_leaf=False)
    if not any(leaf_kind(leaf) == "jax" and type(leaf).__name__.endswith("Tracer") for leaf in leaves):
        return x0
    import jax

    concrete = [np.zeros(np.shape(leaf), dtype=leaf.dtype) if isinstance(leaf, jax.core.Tracer) else leaf for leaf in leaves]
    return treedef.unflatten(concrete)


def _check_backend(call: dict, framework: str, entry: str) -> None:
    """The framework that differentiates computes the solve too (x0 may be NumPy)."""
    backend = call.get("backend")
    if backend is None:
        call["backend"] = framework
    elif _BACKENDS.get(str(backend).lower()) != framework:
        raise ValueError(
            f"{entry}: args hold {framework} values to differentiate with respect to, but backend={backend!r}; "
            f"the derivative of the solution needs fun written in {framework} (leave backend=None or pass {framework!r})."
        )


def _solve(problem: ImplicitProblem, framework: str, run: Callable, x0: Any, args: tuple) -> so.OptimizeResult:
    return _solver(framework)(problem, run, x0, args)


def _refuse_captured(entry: str, found: tuple[str, str], what: str = "fun") -> None:
    framework, name = found
    raise ValueError(
        f"{entry}: {what} captures {name}, a {framework} value to differentiate with respect to, from its enclosing "
        "scope; the solution is differentiated with respect to args (and, on JAX, the values fun captures) only. "
        "Pass it in args, or detach it to treat it as a constant."
    )


def _check_captured(entry: str, framework: str | None, fun: Any, constraints: Any = None, depends: Callable[[], bool] | None = None) -> str | None:
    """The framework that differentiates the solve, given what ``args`` hold (``framework``)
    and what fun captures: JAX values fun captures are hoisted into inputs (:func:`_hoist`);
    a differentiable value captured otherwise (by a constraint, or on torch and TensorFlow) is
    refused, since the derivative would silently leave it out. None when nothing is
    differentiated after all: args carry nothing and fun's value at x0 does not depend on the
    torch tensor it captures (``depends``)."""
    from . import constraint_args, constraint_functions

    for i, own in enumerate(constraint_args(constraints)):
        held = differentiable_framework(own)
        if held is not None:
            where = "constraints" if isinstance(constraints, dict) else f"constraints[{i}]"
            raise ValueError(
                f"{entry}: {where}['args'] holds a {held} value to differentiate with respect to, but a constraint's own "
                "args are constants. Pass the value in the solve's args and leave 'args' out of the constraint, which then "
                "receives them (differentiated), or detach the value to treat it as a constant."
            )
    found = captured_differentiable(*constraint_functions(constraints))
    if found is not None:
        _refuse_captured(entry, found, "a constraint")
    found = captured_differentiable(fun)
    if found is not None and framework is None and found[0] == "torch" and depends is not None and not depends():
        return None
    if found is not None and (found[0] != "jax" or framework not in (None, "jax")):
        _refuse_captured(entry, found)
    return framework or (found[0] if found is not None else None)


def _probe(fun: Callable, x0: Any, args: tuple, unpack: str) -> Callable[[], bool]:
    def depends() -> bool:
        from .torch_rule import depends_on_captured

        return depends_on_captured(fun, x0, args, unpack)

    return depends


def _hoist(entry: str, framework: str, fun: Callable, template: Any, args: tuple, unpack: str) -> tuple[Callable, tuple, str]:
    """On JAX, ``fun`` with the tracers it captures as trailing ``args`` (``unpack`` becomes
    ``'none'``); unchanged where it captures none."""
    found = captured_differentiable(fun) if framework == "jax" else None
    if found is None:
        return fun, args, unpack
    from .jax_captured import hoist_captured

    hoisted = hoist_captured(fun, template, args, unpack)
    if hoisted is None:
        raise ValueError(
            f"{entry}: fun captures {found[1]}, a JAX tracer that carries no derivative here (under jax.vmap without jit, say); pass it in args."
        )
    return hoisted[0], hoisted[1], "none"


def _check_hoisted_receivers(entry: str, call: dict, fun: Any) -> None:
    """Hoisted values are appended to args: refuse the functions that would receive them too
    (a residual Jacobian, a Jacobian callable, a constraint called with args)."""
    from .problem import parse_constraints

    receivers = [getattr(fun, "jac", None), call.get("jac"), call.get("hess"), call.get("hessp")]
    receivers += [item.fun for item in parse_constraints(call.get("constraints")) if item.fun is not None and item.own_args is None]
    if any(callable(receiver) for receiver in receivers):
        raise ValueError(
            f"{entry}: fun captures JAX values to differentiate with respect to, and a Jacobian, Hessian or constraint "
            "function receives args too; pass the captured values in args."
        )


def _parameters(entry: Callable, call: dict) -> dict:
    """The entry point's own arguments out of ``call`` (its ``locals()``)."""
    import inspect

    return {name: call[name] for name in inspect.signature(entry).parameters if name in call}


def minimize(entry: Callable, call: dict) -> so.OptimizeResult:
    """``entry`` (am.minimize) with ``res.x`` differentiable with respect to ``call["args"]`` (and captured JAX values)."""
    call = _parameters(entry, call)
    fun, x0, args = call.pop("fun"), call.pop("x0"), tuple(call.pop("args"))
    raw = fun.fun if is_residual_function(fun) else fun
    depends = _probe(raw, x0, args, call.get("unpack", "auto"))
    framework = _check_captured("minimize", differentiable_framework(args), raw, call.get("constraints"), depends)
    if framework is None:
        with concrete_solve():
            return entry(fun, x0, args, **call)
    _check_backend(call, framework, "minimize")
    if call.get("jac") is True or call.get("fun_and_jac") is not None:
        raise ValueError(
            "minimize: differentiating the solution with respect to args needs fun to return the value alone; "
            "jac=True and fun_and_jac are not supported then."
        )
    if call.get("batch") is True:
        raise ValueError(
            "minimize: batch=True solves independent problems at once, and their solutions are not differentiated with "
            "respect to args; solve one problem (batch=False), on JAX under jax.vmap for many."
        )
    method = call.get("method")
    residual = is_residual_function(fun) or (isinstance(method, str) and method.lower() in LEAST_SQUARES_METHODS)
    if residual and not is_residual_function(fun):
        raise ValueError(f"minimize: method={method!r} needs a residual function (am.residuals).")
    template = _template(x0)
    count = len(args)
    raw, args, call["unpack"] = _hoist("minimize", framework, raw, template, args, call.get("unpack", "auto"))
    if len(args) > count:
        _check_hoisted_receivers("minimize", call, fun)
        fun = Residuals(raw) if is_residual_function(fun) else raw
    bounds = normalize_bounds(call.get("bounds"), ParamSpec.from_tree(template), template)
    problem = build_problem(raw, template, args, call["unpack"], residual=residual, bounds=bounds, constraints=call.get("constraints"))

    def run(start: Any, concrete: tuple) -> so.OptimizeResult:
        with concrete_solve():
            return entry(fun, start, concrete, **call)

    return _solve(problem, framework, run, x0, args)


def least_squares(entry: Callable, call: dict) -> so.OptimizeResult:
    """``entry`` (am.least_squares) with ``res.x`` differentiable with respect to ``call["args"]`` (and captured JAX values)."""
    call = _parameters(entry, call)
    fun, x0, args = call.pop("fun"), call.pop("x0"), call.pop("args")
    args = args if isinstance(args, tuple) else (args,)
    if fun is None or call.get("fun_and_jac") is not None:
        raise ValueError("least_squares: differentiating the solution with respect to args needs fun (the residuals alone).")
    raw = fun.fun if isinstance(fun, Residuals) else fun
    raw = functools.partial(raw, **call["kwargs"]) if call.get("kwargs") else raw
    depends = _probe(raw, x0, args, call.get("unpack", "auto"))
    framework = _check_captured("least_squares", differentiable_framework(args), raw, depends=depends)
    if framework is None:
        with concrete_solve():
            return entry(fun, x0, args=args, **call)
    _check_backend(call, framework, "least_squares")
    if call.get("loss", "linear") != "linear":
        raise ValueError(f"least_squares: loss={call['loss']!r}; differentiating the solution with respect to args supports loss='linear' only.")
    if differentiable_framework(call.get("kwargs") or {}) is not None:
        raise ValueError("least_squares: kwargs hold values to differentiate with respect to; pass them in args instead.")
    template = _template(x0)
    count = len(args)
    raw, args, call["unpack"] = _hoist("least_squares", framework, raw, template, args, call.get("unpack", "auto"))
    if len(args) > count:
        _check_hoisted_receivers("least_squares", call, fun)
        fun, call["kwargs"] = raw, None
    spec = ParamSpec.from_tree(template)
    bounds = normalize_bounds(scipy_least_squares_bounds(call.get("bounds"), spec.size), spec, template)
    problem = build_problem(raw, template, args, call["unpack"], residual=True, bounds=bounds)

    def run(start: Any, concrete: tuple) -> so.OptimizeResult:
        with concrete_solve():
            return entry(fun, start, args=concrete, **call)

    return _solve(problem, framework, run, x0, args)


def curve_fit(entry: Callable, call: dict, least_squares: Callable) -> tuple:
    """``entry`` (am.curve_fit) with ``popt`` differentiable with respect to xdata, ydata and sigma.

    The fit is ``least_squares`` (am.least_squares, which differentiates its solution with
    respect to its args) of the residuals ``(f(xdata, *p) - ydata) / sigma`` with the data as
    ``args``; ``pcov`` is computed as ``am.curve_fit`` does, as a constant.
    """
    call = _parameters(entry, call)
    f, xdata, ydata, p0, sigma = (call.pop(name) for name in ("f", "xdata", "ydata", "p0", "sigma"))
    framework = _curve_fit_framework(f, (xdata, ydata, sigma))
    if call.get("nan_policy") == "omit":
        raise ValueError("curve_fit: nan_policy='omit' is not supported when the data are differentiated; drop the points first.")
    if sigma is not None and np.ndim(sigma) != 1:
        raise ValueError("curve_fit: differentiating with respect to the data supports a 1-D sigma (standard deviations) only.")
    data = _framework_data(framework, (xdata, ydata) if sigma is None else (xdata, ydata, sigma))
    residual = _curve_residual(f, p0)
    res = least_squares(
        residual,
        p0,
        jac=call.get("jac"),
        bounds=call.get("bounds"),
        method=call.get("method") or ("trf" if call.get("bounds") is not None else "lm"),
        args=data,
        backend=call.get("backend"),
        precision=call.get("precision"),
        unpack="none",
        **(call.get("kwargs") or {}),
    )
    m = math.prod(tuple(ydata.shape) if hasattr(ydata, "shape") else np.shape(ydata))
    absolute_sigma = bool(call.get("absolute_sigma"))
    if framework == "jax":
        pcov = _jax_covariance(residual, res.x, data, m, absolute_sigma)
    else:
        if not res.success:
            raise RuntimeError(f"Optimal parameters not found: {res.message}")
        pcov = covariance(res.jac, 2 * res.cost, m, absolute_sigma)
    if call.get("full_output"):
        return res.x, pcov, {"nfev": res.nfev, "fvec": res.get("fun")}, res.message, res.status
    return res.x, pcov


def _curve_fit_framework(f: Callable, data: tuple) -> str:
    """The framework that differentiates a fit: the data's, or that of a tensor f alone captures."""
    framework = differentiable_framework(data)
    found = captured_differentiable(f) if framework is None else None
    # f alone captures a torch tensor: least_squares finds out whether the fit depends on it
    return found[0] if found is not None and found[0] == "torch" else _check_captured("curve_fit", framework, f)


def _framework_data(framework: str, data: tuple) -> tuple:
    """The data with NumPy values (and numbers) as float64 constants of the differentiated ones'
    framework, so that the residuals compute in one framework."""
    like = next((leaf for leaf in data if differentiable_framework(leaf) is not None), None)
    if like is None:  # only f captures what is differentiated: the data become constants of its framework
        like = _scalar(framework)
    return tuple(
        constant_like(np.asarray(value, dtype=np.float64), like) if isinstance(value, (np.ndarray, list, tuple, float, int)) else value
        for value in data
    )


def _curve_residual(f: Callable, p0: Any) -> Callable:
    """The residuals ``(f(x, p) - y) / s`` of a fit, with ``f`` taking the parameters as scipy's
    curve_fit spreads ``p0`` (see :func:`~autominimize.drivers.curve_fit.spread`)."""
    how = spread(f, p0)

    def residual(params: Any, x: Any, y: Any, s: Any = None) -> Any:
        if how == "kwargs":
            model = f(x, **params)
        elif how == "args":
            model = f(x, *params)
        elif how == "array":
            model = f(x, *[params[i] for i in range(np.shape(p0)[0])])
        else:
            model = f(x, params)
        values, observed = ravel_like(model, y), ravel_like(y, y)
        if values.shape[0] != observed.shape[0]:
            raise ValueError(
                f"f returned {values.shape[0]} values but ydata has {observed.shape[0]}; f(xdata, ...) must return one value per data point."
            )
        diff = values - observed
        return diff if s is None else diff / ravel_like(s, s)

    return residual


def _jax_covariance(residual: Callable, popt: Any, data: tuple, m: int, absolute_sigma: bool) -> Any:
    """(JᵀJ)⁺, scaled by chi² / (m - n) unless sigma is absolute, computed in the caller's trace."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    leaves, treedef = tree_flatten(popt)
    flat, unravel = ravel_pytree(leaves)  # pcov's rows in popt's own order, as ParamSpec flattens
    jac = jax.jacfwd(lambda p: residual(treedef.unflatten(unravel(p)), *data))(flat)
    pcov = jnp.linalg.pinv(jac.T @ jac)
    if absolute_sigma:
        return pcov
    r = residual(popt, *data)
    n = flat.size
    return pcov * (jnp.sum(r * r) / (m - n)) if m > n else jnp.full((n, n), jnp.inf)


def _scalar(framework: str) -> Any:
    """A float64 zero of ``framework``'s array type."""
    if framework == "torch":
        import torch

        return torch.zeros((), dtype=torch.float64)
    import jax.numpy as jnp

    return jnp.zeros(())
