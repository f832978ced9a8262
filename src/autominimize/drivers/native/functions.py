"""The value and derivatives a native run evaluates: the user's ``jac``, or compiled once per function."""

from __future__ import annotations

import math
from typing import Any, Callable


from ..._setup import cached, compile_key
from ...backends import get_backend
from ...native._arrays import flatten_leaves, namespace
from ...native.compiled import compile_functions
from ...backends.native_functions import NativeFunctions, make_params_of
from ...params import ParamSpec

__all__ = ["native_functions"]

Call = Callable[[Any, Any], Any]  # call(params, batch)


def native_functions(
    fun: Callable,
    call: Call,
    jac: Callable | bool | None,
    user_jac: Call | None,
    x: Any,
    *,
    method: str,
    backend: str,
    spec: ParamSpec,
    dtype: str,
    unpack: str,
    args: tuple,
    device: Any,
    probe_batch: Any,
    stochastic: bool,
) -> NativeFunctions:
    """Value and gradient from the user (``jac`` callable, called as ``user_jac``, or True), or
    the backend's exact derivatives compiled once per (function, structure, dtype, args).

    Hessian-free on a function returning residuals also gets Gauss-Newton products.
    """
    if method == "hessian-free" and (callable(jac) or jac is True):
        raise ValueError(
            "method='hessian-free' needs Hessian-vector products, which the backend forms from fun itself; a gradient "
            "given by jac= gives none. Leave jac unset (autodiff, or differences of the gradient on NumPy), or use "
            "method='lbfgs-native' or 'cg-native', which need the gradient only."
        )
    if callable(jac):
        return _user_gradient(call, user_jac, spec, x)
    if jac is True:
        return _user_gradient(call, None, spec, x)
    if jac is not None:
        raise ValueError(f"jac={jac!r}: native methods take None (autodiff), a callable or True.")
    residual = method == "hessian-free" and _returns_vector(backend, call, spec, x, probe_batch)
    key = compile_key(backend, "native", spec, dtype, unpack, args, device, residual, stochastic)
    return cached(fun, key, args, lambda: compile_functions(backend, call, spec, dtype, residual, device))


def _returns_vector(backend: str, call: Call, spec: ParamSpec, x: Any, batch: Any) -> bool:
    """Whether fun returns residuals (more than one number), checked without counting."""
    shapes = get_backend(backend).output_shapes(lambda params: call(params, batch), make_params_of(spec)(x))
    return sum(math.prod(shape) for shape in shapes) > 1


def _user_gradient(call: Call, jac: Call | None, spec: ParamSpec, x: Any) -> NativeFunctions:
    """Value and gradient from the user: ``jac(params)``, or ``fun`` returning ``(f, g)`` if None."""
    xp = namespace(x)
    views_of = make_params_of(spec)

    def params_of(x: Any) -> Any:  # a copy: the user's function may write into its input
        return views_of(xp.asarray(x, copy=True))

    def flat_gradient(tree: Any) -> Any:
        leaves = spec.leaves_of(tree, "jac") if isinstance(tree, (dict, list, tuple)) else [tree]
        g = flatten_leaves(xp, leaves)
        if g.shape[0] != spec.size:
            raise ValueError(f"jac returned {g.shape[0]} numbers; x0 has {spec.size} parameters.")
        return xp.astype(g, x.dtype)

    def value(x: Any, batch: Any) -> Any:
        return xp.asarray(call(params_of(x), batch), dtype=x.dtype)

    if jac is None:

        def value_and_grad(x: Any, batch: Any) -> tuple[Any, Any]:
            f, g = call(params_of(x), batch)
            return xp.asarray(f, dtype=x.dtype), flat_gradient(g)

        return NativeFunctions(lambda x, batch: value_and_grad(x, batch)[0], value_and_grad, None, None)

    def grad(x: Any, batch: Any) -> Any:
        return flat_gradient(jac(params_of(x), batch))

    return NativeFunctions(value, lambda x, batch: (value(x, batch), grad(x, batch)), None, None, grad=grad)
