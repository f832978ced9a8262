"""Exact derivatives on the framework's own flat arrays, compiled once per function.

:func:`~.compiled.compile_functions` builds, for one (function, structure, dtype, device), the value,
value-and-gradient, Hessian-vector product and — for functions returning residuals r, whose
objective is ½‖r‖² — Gauss-Newton-vector product Jᵀ(J v) and the sum of the squared per-case
gradients Σ_i (∇f_i)² (case i: the residuals r[i] along the leading axis, f_i = ½‖r_i‖²):

* JAX (:mod:`.functions_jax`): ``jax.jit`` of ``jax.value_and_grad``, of forward-over-reverse
  HVPs, of ``jax.jvp`` + ``jax.vjp`` and of ``jax.jacrev`` (a ``vmap`` of VJPs) for the
  per-case gradients;
* torch (:mod:`.functions_torch`): eager autograd on one flat tensor (double backward for
  HVPs, the double-VJP trick for J v, ``torch.func.jacrev`` for the per-case gradients), on
  the tensor's device;
* NumPy and TensorFlow (:mod:`.functions_host`): the library's backends on flat NumPy vectors
  (NumPy by finite differences unless the user gives ``jac``; TensorFlow compiled with
  ``tf.function``), the per-case gradients from the residuals' Jacobian.

Every function takes ``(x, batch)``; ``batch`` is None for deterministic objectives and one
mini-batch, passed through as the function's second argument, for stochastic ones.
:class:`CountingOracle` binds a batch and counts evaluations the way scipy does.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ..backends.common import ObjectiveOutputError
from ..params import ParamSpec
from ..problem import Counters
from ._arrays import namespace, vdot

__all__ = ["NativeFunctions", "CountingOracle", "make_params_of", "sum_squared_case_gradients"]

Call = Callable[[Any, Any], Any]  # call(params, batch) -> scalar or residuals


class NativeFunctions:
    """value / value_and_grad / grad / hvp / gnvp of flat framework arrays, all ``(x, ..., batch)``.

    ``value_and_grad_along(x, alpha, d, batch)`` is a line-search trial: ``(x + alpha d, f, g,
    ⟨g, d⟩)`` at that point, one fused call on JAX and torch. ``squared_case_gradients(x,
    batch)`` is Σ_i (∇f_i)² over the cases of a residual objective (None for scalar ones).
    """

    def __init__(self, value, value_and_grad, hvp, gnvp, grad=None, value_and_grad_along=None, squared_case_gradients=None):
        self.value = value
        self.value_and_grad = value_and_grad
        self.hvp = hvp
        self.gnvp = gnvp
        self.squared_case_gradients = squared_case_gradients
        self.grad = grad or (lambda x, batch: value_and_grad(x, batch)[1])
        self.value_and_grad_along = value_and_grad_along or _along(value_and_grad)


def _along(value_and_grad: Callable) -> Callable:
    def value_and_grad_along(x, alpha, d, batch):
        x_new = x + alpha * d
        f, g = value_and_grad(x_new, batch)
        return x_new, f, g, vdot(namespace(x), g, d)

    return value_and_grad_along


def make_params_of(spec: ParamSpec) -> Callable[[Any], Any]:
    """Flat framework array -> x0's structure of views of it."""
    bounds = list(zip(spec.shapes, spec.offsets, spec.offsets[1:]))

    def params_of(x: Any) -> Any:
        return spec.unflatten_leaves([x[start:stop].reshape(shape) for shape, start, stop in bounds])

    return params_of


def _scalar_check(shape: tuple, residual: bool) -> None:
    if not residual and int(np.prod(shape)) != 1:
        raise ObjectiveOutputError(
            f"fun must return a scalar, but it returned an array of shape {tuple(shape)}. Reduce "
            "it (sum or mean), or use method='hessian-free', which minimizes ½‖r‖² of residuals."
        )


def sum_squared_case_gradients(shapes: list[tuple], r: Any, jac: Any) -> Any:
    """Σ_i (∇f_i)² from the flat residuals r, their Jacobian and the residual leaves' shapes.

    Case i holds the rows ``leaf[i]`` of every leaf, f_i = ½‖r_i‖² and ∇f_i = J_iᵀ r_i.
    """
    xp = namespace(r, jac)
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


class CountingOracle:
    """The oracle a native algorithm sees: one batch bound, every evaluation counted in ``counts``.

    Counts follow scipy: a value-and-gradient is one ``nfev`` and one ``njev``; HVPs and
    Gauss-Newton products both count as ``nhvp``; ``nhev`` stays 0 (no method forms a Hessian).
    """

    def __init__(self, functions: NativeFunctions, batch: Any = None):
        self.functions = functions
        self.batch = batch
        self.counts = Counters()

    @property
    def residual(self) -> bool:
        """Whether the objective is ½‖r‖² of residuals (Gauss-Newton products available)."""
        return self.functions.gnvp is not None

    def value(self, x: Any) -> Any:
        self.counts.nfev += 1
        return self.functions.value(x, self.batch)

    def value_and_grad(self, x: Any) -> tuple[Any, Any]:
        self.counts.nfev += 1
        self.counts.njev += 1
        return self.functions.value_and_grad(x, self.batch)

    def value_and_grad_along(self, x: Any, alpha: float, d: Any) -> tuple[Any, Any, Any, Any]:
        """``(x + alpha d, f, g, ⟨g, d⟩)`` there: one value-and-gradient."""
        self.counts.nfev += 1
        self.counts.njev += 1
        return self.functions.value_and_grad_along(x, alpha, d, self.batch)

    def grad(self, x: Any) -> Any:
        self.counts.njev += 1
        return self.functions.grad(x, self.batch)

    def hvp(self, x: Any, v: Any) -> Any:
        self.counts.nhvp += 1
        return self.functions.hvp(x, v, self.batch)

    def squared_case_gradients(self, x: Any) -> Any:
        """Σ_i (∇f_i)² over the cases of a residual objective: one Jacobian, one ``njev``."""
        if self.functions.squared_case_gradients is None:
            raise ValueError("per-case gradients need fun to return residuals (a vector), not a scalar.")
        self.counts.njev += 1
        return self.functions.squared_case_gradients(x, self.batch)

    def gnvp(self, x: Any, v: Any) -> Any:
        if self.functions.gnvp is None:
            raise ValueError("Gauss-Newton products need fun to return residuals (a vector), not a scalar.")
        self.counts.nhvp += 1
        return self.functions.gnvp(x, v, self.batch)
