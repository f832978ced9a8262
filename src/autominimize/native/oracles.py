"""Exact derivatives on the framework's own flat arrays, compiled once per function.

:func:`compile_functions` builds, for one (function, structure, dtype, device), the value,
value-and-gradient, Hessian-vector product and — for functions returning residuals r, whose
objective is ½‖r‖² — Gauss-Newton-vector product Jᵀ(J v) and the sum of the squared per-case
gradients Σ_i (∇f_i)² (case i: the residuals r[i] along the leading axis, f_i = ½‖r_i‖²):

* JAX: ``jax.jit`` of ``jax.value_and_grad``, of forward-over-reverse HVPs, of
  ``jax.jvp`` + ``jax.vjp`` and of ``jax.jacrev`` (a ``vmap`` of VJPs) for the per-case gradients;
* torch: eager autograd on one flat tensor (double backward for HVPs, the double-VJP trick
  for J v, ``torch.func.jacrev`` for the per-case gradients), on the tensor's device;
* NumPy and TensorFlow: the library's backends on flat NumPy vectors (NumPy by finite
  differences unless the user gives ``jac``; TensorFlow compiled with ``tf.function``), the
  per-case gradients from the residuals' Jacobian.

Every function takes ``(x, batch)``; ``batch`` is None for deterministic objectives and one
mini-batch, passed through as the function's second argument, for stochastic ones.
:class:`CountingOracle` binds a batch and counts evaluations the way scipy does.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .. import backends as _backends
from ..backends.common import ObjectiveOutputError, no_gradient_error
from ..backends.jax_aot import AheadOfTime
from ..params import ParamSpec
from ._arrays import namespace, vdot

__all__ = ["NativeFunctions", "compile_functions", "CountingOracle", "make_params_of"]

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


def compile_functions(backend: str, call: Call, spec: ParamSpec, dtype: str, residual: bool, device: Any = None) -> NativeFunctions:
    """The native functions for one backend; cache the result per (function, key)."""
    if backend == "jax":
        return _jax_functions(call, spec, dtype, residual)
    if backend == "torch":
        return _torch_functions(call, spec, residual)
    return _host_functions(backend, call, spec, dtype, residual)


def _jax_functions(call: Call, spec: ParamSpec, dtype: str, residual: bool) -> NativeFunctions:
    import jax
    import jax.numpy as jnp

    params_of = make_params_of(spec)

    def residuals(x, batch):
        out = call(params_of(x), batch)
        leaves = jax.tree_util.tree_leaves(out)
        return jnp.concatenate([jnp.ravel(jnp.asarray(leaf)) for leaf in leaves]).astype(x.dtype)

    def objective(x, batch):
        if residual:
            r = residuals(x, batch)
            return 0.5 * jnp.sum(r * r)
        out = jnp.asarray(call(params_of(x), batch))
        _scalar_check(out.shape, residual)
        return out.reshape(()).astype(x.dtype)

    def hvp(x, v, batch):
        return jax.jvp(lambda y: jax.grad(objective)(y, batch), (x,), (v,))[1]

    def gnvp(x, v, batch):
        r, jv = jax.jvp(lambda y: residuals(y, batch), (x,), (v,))
        return jax.vjp(lambda y: residuals(y, batch), x)[1](jv)[0]

    def squared_case_gradients(x, batch):
        def leaves(y):
            out = [jnp.asarray(leaf).astype(y.dtype) for leaf in jax.tree_util.tree_leaves(call(params_of(y), batch))]
            return out, out

        jacs, out = jax.jacrev(leaves, has_aux=True)(x)
        r = jnp.concatenate([jnp.ravel(leaf) for leaf in out])
        jac = jnp.concatenate([j.reshape(-1, x.shape[0]) for j in jacs])
        return sum_squared_case_gradients([leaf.shape for leaf in out], r, jac)

    return NativeFunctions(
        AheadOfTime(objective), AheadOfTime(jax.value_and_grad(objective)), AheadOfTime(hvp),
        AheadOfTime(gnvp) if residual else None,
        value_and_grad_along=AheadOfTime(_along(jax.value_and_grad(objective))),
        squared_case_gradients=AheadOfTime(squared_case_gradients) if residual else None,
    )


def _torch_functions(call: Call, spec: ParamSpec, residual: bool) -> NativeFunctions:
    import torch

    params_of = make_params_of(spec)

    def residuals(x, batch):
        out = call(params_of(x), batch)
        leaves = [torch.as_tensor(leaf) for leaf in _leaves(out)]
        return torch.cat([leaf.reshape(-1) for leaf in leaves]).to(x.dtype)

    def objective(x, batch):
        if residual:
            r = residuals(x, batch)
            return 0.5 * torch.sum(r * r)
        out = torch.as_tensor(call(params_of(x), batch))
        _scalar_check(tuple(out.shape), residual)
        return out.reshape(()).to(x.dtype)

    def grad_of(out, xt, **kwargs):
        if not out.requires_grad:
            return torch.zeros_like(xt)
        return torch.autograd.grad(out, xt, materialize_grads=True, **kwargs)[0]

    def value(x, batch):
        with torch.no_grad():
            return objective(x, batch)

    def value_and_grad(x, batch):
        with torch.enable_grad():
            xt = x.detach().requires_grad_(True)
            f = objective(xt, batch)
            if not f.requires_grad:
                raise no_gradient_error("outside torch's autograd (float(), .item(), .detach(), NumPy, or under torch.no_grad())")
            return f.detach(), grad_of(f, xt)

    def value_and_grad_along(x, alpha, d, batch):
        with torch.no_grad():
            x_new = torch.add(x, d, alpha=alpha)
        f, g = value_and_grad(x_new, batch)
        return x_new, f, g, torch.dot(g, d)

    def hvp(x, v, batch):
        with torch.enable_grad():
            xt = x.detach().requires_grad_(True)
            g = grad_of(objective(xt, batch), xt, create_graph=True)
            return grad_of(g, xt, grad_outputs=v).detach()

    def gnvp(x, v, batch):
        with torch.enable_grad():
            xt = x.detach().requires_grad_(True)
            r = residuals(xt, batch)
            u = torch.zeros_like(r, requires_grad=True)
            jtu = grad_of(r, xt, grad_outputs=u, create_graph=True, retain_graph=True)
            jv = grad_of(jtu, u, grad_outputs=v).detach()
            return grad_of(r, xt, grad_outputs=jv).detach()

    def squared_case_gradients(x, batch):
        def leaves(y):
            out = tuple(torch.as_tensor(leaf).to(y.dtype) for leaf in _leaves(call(params_of(y), batch)))
            return out, tuple(leaf.detach() for leaf in out)

        jacs, out = torch.func.jacrev(leaves, has_aux=True)(x.detach())
        r = torch.cat([leaf.reshape(-1) for leaf in out])
        jac = torch.cat([j.reshape(-1, x.shape[0]) for j in jacs])
        return sum_squared_case_gradients([tuple(leaf.shape) for leaf in out], r, jac)

    return NativeFunctions(
        value, value_and_grad, hvp, gnvp if residual else None, value_and_grad_along=value_and_grad_along,
        squared_case_gradients=squared_case_gradients if residual else None,
    )


def _leaves(out: Any) -> list:
    import optree

    return optree.tree_leaves(out)


def _host_functions(backend: str, call: Call, spec: ParamSpec, dtype: str, residual: bool) -> NativeFunctions:
    """NumPy and TensorFlow: the backends' compiled flat functions, one per mini-batch."""
    backend_obj = _backends.get_backend(backend)
    compiled: dict[int, tuple] = {}

    def for_batch(batch):
        key = id(batch)
        if key not in compiled:
            if len(compiled) > 1:  # keep the current batch only (and None)
                compiled.pop(next(k for k in compiled if k != id(None)))
            bound = (lambda params: call(params, batch))
            vector = backend_obj.compile_vector(bound, spec, dtype)
            scalar = backend_obj.compile_scalar(
                (lambda params: 0.5 * _sum_squares(bound(params))) if residual else bound, spec, dtype
            )
            compiled[key] = (batch, scalar, vector)
        return compiled[key][1:]

    def value(x, batch):
        return np.float64(for_batch(batch)[0].value(x))

    def value_and_grad(x, batch):
        f, g = for_batch(batch)[0].value_and_grad(x)
        return np.float64(f), g

    def hvp(x, v, batch):
        return for_batch(batch)[0].hvp_at(x)(v)

    def gnvp(x, v, batch):
        _, jac = for_batch(batch)[1].value_and_jacobian(x)
        return jac.T @ (jac @ v)

    shapes_of: dict[int, tuple] = {}

    def residual_shapes(x, batch):
        """The residual leaves' shapes: one extra call of fun per batch."""
        key = id(batch)
        if key not in shapes_of:
            shapes_of.clear()
            shapes_of[key] = (batch, [np.shape(leaf) for leaf in _leaves(call(make_params_of(spec)(x), batch))])
        return shapes_of[key][1]

    def squared_case_gradients(x, batch):
        r, jac = for_batch(batch)[1].value_and_jacobian(x)
        return sum_squared_case_gradients(residual_shapes(x, batch), np.asarray(r), jac)

    return NativeFunctions(value, value_and_grad, hvp, gnvp if residual else None, squared_case_gradients=squared_case_gradients if residual else None)


def _sum_squares(out: Any) -> Any:
    total = 0.0
    for leaf in _leaves(out):
        total = total + (leaf * leaf).sum() if hasattr(leaf, "sum") else total + _tf_sum_squares(leaf)
    return total


def _tf_sum_squares(leaf: Any) -> Any:
    import tensorflow as tf

    return tf.reduce_sum(tf.square(leaf))


class CountingOracle:
    """The oracle a native algorithm sees: one batch bound, every evaluation counted.

    Counts follow scipy: a value-and-gradient is one ``nfev`` and one ``njev``; HVPs and
    Gauss-Newton products both count as ``nhvp``.
    """

    def __init__(self, functions: NativeFunctions, batch: Any = None):
        self.functions = functions
        self.batch = batch
        self.nfev = self.njev = self.nhvp = 0

    @property
    def residual(self) -> bool:
        """Whether the objective is ½‖r‖² of residuals (Gauss-Newton products available)."""
        return self.functions.gnvp is not None

    def value(self, x: Any) -> Any:
        self.nfev += 1
        return self.functions.value(x, self.batch)

    def value_and_grad(self, x: Any) -> tuple[Any, Any]:
        self.nfev += 1
        self.njev += 1
        return self.functions.value_and_grad(x, self.batch)

    def value_and_grad_along(self, x: Any, alpha: float, d: Any) -> tuple[Any, Any, Any, Any]:
        """``(x + alpha d, f, g, ⟨g, d⟩)`` there: one value-and-gradient."""
        self.nfev += 1
        self.njev += 1
        return self.functions.value_and_grad_along(x, alpha, d, self.batch)

    def grad(self, x: Any) -> Any:
        self.njev += 1
        return self.functions.grad(x, self.batch)

    def hvp(self, x: Any, v: Any) -> Any:
        self.nhvp += 1
        return self.functions.hvp(x, v, self.batch)

    def squared_case_gradients(self, x: Any) -> Any:
        """Σ_i (∇f_i)² over the cases of a residual objective: one Jacobian, one ``njev``."""
        if self.functions.squared_case_gradients is None:
            raise ValueError("per-case gradients need fun to return residuals (a vector), not a scalar.")
        self.njev += 1
        return self.functions.squared_case_gradients(x, self.batch)

    def gnvp(self, x: Any, v: Any) -> Any:
        if self.functions.gnvp is None:
            raise ValueError("Gauss-Newton products need fun to return residuals (a vector), not a scalar.")
        self.nhvp += 1
        return self.functions.gnvp(x, v, self.batch)
