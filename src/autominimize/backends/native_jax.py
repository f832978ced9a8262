"""The native functions of a JAX objective: jitted (ahead of time) value, gradient and products."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .common import no_gradient_error
from .jax_aot import AheadOfTime
from .jax_passes import tangent_reaches_output
from ..params import ParamSpec, tree_leaves
from .native_functions import Call, NativeFunctions, along, make_params_of, scalar_check, sum_squared_case_gradients

__all__ = ["jax_functions"]


def jax_functions(call: Call, spec: ParamSpec, dtype: str, residual: bool) -> NativeFunctions:
    params_of = make_params_of(spec)

    def residuals(x, batch):
        out = call(params_of(x), batch)
        leaves = tree_leaves(out)
        return jnp.concatenate([jnp.ravel(jnp.asarray(leaf)) for leaf in leaves]).astype(x.dtype)

    def objective(x, batch):
        if residual:
            r = residuals(x, batch)
            return 0.5 * jnp.sum(r * r)
        out = jnp.asarray(call(params_of(x), batch))
        scalar_check(out.shape, residual)
        return out.reshape(()).astype(x.dtype)

    def check_gradient_path(x, batch):
        if not tangent_reaches_output(lambda y: objective(y, batch), x):
            raise no_gradient_error("through jax.lax.stop_gradient (or outside JAX)")

    def hvp(x, v, batch):
        return jax.jvp(lambda y: jax.grad(objective)(y, batch), (x,), (v,))[1]

    def gnvp(x, v, batch):
        r, jv = jax.jvp(lambda y: residuals(y, batch), (x,), (v,))
        return jax.vjp(lambda y: residuals(y, batch), x)[1](jv)[0]

    def squared_case_gradients(x, batch):
        def leaves(y):
            out = [jnp.asarray(leaf).astype(y.dtype) for leaf in tree_leaves(call(params_of(y), batch))]
            return out, out

        jacs, out = jax.jacrev(leaves, has_aux=True)(x)
        r = jnp.concatenate([jnp.ravel(leaf) for leaf in out])
        jac = jnp.concatenate([j.reshape(-1, x.shape[0]) for j in jacs])
        return sum_squared_case_gradients([leaf.shape for leaf in out], r, jac)

    return NativeFunctions(
        AheadOfTime(objective),
        AheadOfTime(jax.value_and_grad(objective)),
        AheadOfTime(hvp),
        AheadOfTime(gnvp) if residual else None,
        value_and_grad_along=AheadOfTime(along(jax.value_and_grad(objective))),
        squared_case_gradients=AheadOfTime(squared_case_gradients) if residual else None,
        check_gradient_path=check_gradient_path,
    )
