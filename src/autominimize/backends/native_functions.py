"""The functions a native algorithm evaluates, on the framework's own flat arrays.

Each backend's ``native_functions`` builds, for one (function, structure, dtype, device), the
value, value-and-gradient, Hessian-vector product and — for functions returning residuals r,
whose objective is ½‖r‖² — Gauss-Newton-vector product Jᵀ(J v) and the sum of the squared
per-case gradients Σ_i (∇f_i)² (case i: the residuals r[i] along the leading axis,
f_i = ½‖r_i‖²):

* JAX (:mod:`.native_jax`): ``jax.jit`` of ``jax.value_and_grad``, of forward-over-reverse
  HVPs, of ``jax.jvp`` + ``jax.vjp`` and of ``jax.jacrev`` (a ``vmap`` of VJPs) for the
  per-case gradients;
* torch (:mod:`.native_torch`): eager autograd on one flat tensor (double backward for
  HVPs, the double-VJP trick for J v, ``torch.func.jacrev`` for the per-case gradients), on
  the tensor's device;
* NumPy and TensorFlow (:mod:`.native_host`): the backends' compiled functions on flat NumPy
  vectors (NumPy by finite differences unless the user gives ``jac``; TensorFlow compiled
  with ``tf.function``), the per-case gradients from the residuals' Jacobian.

Every function takes ``(x, batch)``; ``batch`` is None for deterministic objectives and one
mini-batch, passed through as the function's second argument, for stochastic ones.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import array_api_compat
import numpy as np

from ..params import ParamSpec
from .common import ObjectiveOutputError

__all__ = ["Call", "NativeFunctions", "along", "make_params_of", "scalar_check", "sum_squared_case_gradients"]

Call = Callable[[Any, Any], Any]  # call(params, batch) -> scalar or residuals


class NativeFunctions:
    """value / value_and_grad / grad / hvp / gnvp of flat framework arrays, all ``(x, ..., batch)``.

    ``value_and_grad_along(x, alpha, d, batch)`` is a line-search trial: ``(x + alpha d, f, g,
    ⟨g, d⟩)`` at that point, one fused call on JAX and torch. ``squared_case_gradients(x,
    batch)`` is Σ_i (∇f_i)² over the cases of a residual objective (None for scalar ones).
    ``check_gradient_path(x, batch)``, where the framework can tell, raises when the value does
    not depend on x through its differentiation (asked where a gradient is zero).
    """

    def __init__(self, value, value_and_grad, hvp, gnvp, grad=None, value_and_grad_along=None, squared_case_gradients=None, check_gradient_path=None):
        self.check_gradient_path = check_gradient_path
        self.value = value
        self.value_and_grad = value_and_grad
        self.hvp = hvp
        self.gnvp = gnvp
        self.squared_case_gradients = squared_case_gradients
        self.grad = grad or (lambda x, batch: value_and_grad(x, batch)[1])
        self.value_and_grad_along = value_and_grad_along or along(value_and_grad)


def along(value_and_grad: Callable) -> Callable:
    def value_and_grad_along(x, alpha, d, batch):
        x_new = x + alpha * d
        f, g = value_and_grad(x_new, batch)
        return x_new, f, g, array_api_compat.array_namespace(x).sum(g * d)

    return value_and_grad_along


def make_params_of(spec: ParamSpec) -> Callable[[Any], Any]:
    """Flat framework array -> x0's structure of views of it."""
    bounds = list(zip(spec.shapes, spec.offsets, spec.offsets[1:]))

    def params_of(x: Any) -> Any:
        return spec.unflatten_leaves([x[start:stop].reshape(shape) for shape, start, stop in bounds])

    return params_of


def scalar_check(shape: tuple, residual: bool) -> None:
    if not residual and int(np.prod(shape)) != 1:
        raise ObjectiveOutputError(
            f"fun must return a scalar, but it returned an array of shape {tuple(shape)}. Reduce "
            "it (sum or mean), or use method='hessian-free', which minimizes ½‖r‖² of residuals."
        )


def sum_squared_case_gradients(shapes: list[tuple], r: Any, jac: Any) -> Any:
    """Σ_i (∇f_i)² from the flat residuals r, their Jacobian and the residual leaves' shapes.

    Case i holds the rows ``leaf[i]`` of every leaf, f_i = ½‖r_i‖² and ∇f_i = J_iᵀ r_i.
    """
    xp = array_api_compat.array_namespace(r, jac)
    cases = _case_count(shapes)
    n = jac.shape[1]
    weighted = r[:, None] * jac  # row k: r_k ∇r_k
    per_case, start = None, 0
    for shape in shapes:
        size = math.prod(shape)
        rows = xp.sum(xp.reshape(weighted[start : start + size, :], (cases, size // cases, n)), axis=1)
        per_case = rows if per_case is None else per_case + rows
        start += size
    return xp.sum(per_case * per_case, axis=0)


def _case_count(shapes: list[tuple]) -> int:
    leading = {shape[0] if shape else None for shape in shapes}
    if None in leading or len(leading) != 1:
        raise ValueError(
            "preconditioner='martens' takes the leading axis of fun's residuals as the training cases; "
            f"the residuals have shapes {[tuple(s) for s in shapes]}, which share no leading axis."
        )
    return leading.pop()
