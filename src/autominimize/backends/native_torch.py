"""The native functions of a torch objective: eager autograd on one flat tensor, on its device.

Hessian-vector products by double backward, Gauss-Newton products J v by the double-VJP
trick, and the per-case gradients by ``torch.func.jacrev``.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from .common import no_gradient_error
from ..params import ParamSpec, tree_leaves
from .native_functions import Call, NativeFunctions, make_params_of, scalar_check, sum_squared_case_gradients

__all__ = ["torch_functions"]


def torch_functions(call: Call, spec: ParamSpec, residual: bool) -> NativeFunctions:
    """Value, gradient, HVP and, for residuals, Gauss-Newton products and per-case gradients."""
    params_of = make_params_of(spec)

    def residuals(x, batch):
        leaves = [torch.as_tensor(leaf) for leaf in tree_leaves(call(params_of(x), batch))]
        return torch.cat([leaf.reshape(-1) for leaf in leaves]).to(x.dtype)

    def objective(x, batch):
        if residual:
            r = residuals(x, batch)
            return 0.5 * torch.sum(r * r)
        out = torch.as_tensor(call(params_of(x), batch))
        scalar_check(tuple(out.shape), residual)
        return out.reshape(()).to(x.dtype)

    def value(x, batch):
        with torch.no_grad():
            return objective(x, batch)

    value_and_grad = _value_and_grad(objective)

    def value_and_grad_along(x, alpha, d, batch):
        with torch.no_grad():
            x_new = torch.add(x, d, alpha=alpha)
        f, g = value_and_grad(x_new, batch)
        return x_new, f, g, torch.dot(g, d)

    return NativeFunctions(
        value,
        value_and_grad,
        _hvp(objective),
        _gnvp(residuals) if residual else None,
        value_and_grad_along=value_and_grad_along,
        squared_case_gradients=_squared_case_gradients(call, params_of) if residual else None,
    )


def _grad_of(out: torch.Tensor, xt: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    """d out / d xt (zeros where ``out`` does not depend on ``xt``)."""
    if not out.requires_grad:
        return torch.zeros_like(xt)
    return torch.autograd.grad(out, xt, materialize_grads=True, **kwargs)[0]


def _value_and_grad(objective: Callable) -> Callable:
    def value_and_grad(x, batch):
        with torch.enable_grad():
            xt = x.detach().requires_grad_(True)
            f = objective(xt, batch)
            if not f.requires_grad:
                raise no_gradient_error("outside torch's autograd (float(), .item(), .detach(), NumPy, or under torch.no_grad())")
            return f.detach(), _grad_of(f, xt)

    return value_and_grad


def _hvp(objective: Callable) -> Callable:
    def hvp(x, v, batch):
        with torch.enable_grad():
            xt = x.detach().requires_grad_(True)
            g = _grad_of(objective(xt, batch), xt, create_graph=True)
            return _grad_of(g, xt, grad_outputs=v).detach()

    return hvp


def _gnvp(residuals: Callable) -> Callable:
    def gnvp(x, v, batch):
        with torch.enable_grad():
            xt = x.detach().requires_grad_(True)
            r = residuals(xt, batch)
            u = torch.zeros_like(r, requires_grad=True)
            jtu = _grad_of(r, xt, grad_outputs=u, create_graph=True, retain_graph=True)
            jv = _grad_of(jtu, u, grad_outputs=v).detach()
            return _grad_of(r, xt, grad_outputs=jv).detach()

    return gnvp


def _squared_case_gradients(call: Call, params_of: Callable) -> Callable:
    def squared_case_gradients(x, batch):
        def leaves(y):
            out = tuple(torch.as_tensor(leaf).to(y.dtype) for leaf in tree_leaves(call(params_of(y), batch)))
            return out, tuple(leaf.detach() for leaf in out)

        jacs, out = torch.func.jacrev(leaves, has_aux=True)(x.detach())
        r = torch.cat([leaf.reshape(-1) for leaf in out])
        jac = torch.cat([j.reshape(-1, x.shape[0]) for j in jacs])
        return sum_squared_case_gradients([tuple(leaf.shape) for leaf in out], r, jac)

    return squared_case_gradients
