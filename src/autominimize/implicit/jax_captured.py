"""Values a JAX objective captures (closures, ``functools.partial``) as explicit inputs.

The implicit rule differentiates the solution with respect to its inputs; a tracer the
objective reads from an enclosing scope is made one of them here, so ``jax.grad`` of a
function whose objective captures ``theta`` differentiates through ``theta`` as through
``args``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..backends.jax_backend import float64_scope
from ..calling import make_caller, resolve_unpack
from ..params import ParamSpec

__all__ = ["hoist_captured"]


def hoist_captured(fun: Callable, template: Any, args: tuple, unpack: str) -> tuple[Callable, tuple] | None:
    """``fun`` with the JAX values it captures as explicit inputs: ``(lifted, args + captured)``,
    where ``lifted(params, *args, *captured)`` (``unpack='none'``) computes ``fun``; None if
    it captures nothing JAX differentiates.

    ``jax.closure_convert`` traces ``fun`` once at float64 parameters (x0's shapes) and ``args``
    and hoists the tracers it reads, at any depth of closures, out of the trace; ``lifted``
    evaluates that trace, its inputs cast to the dtypes it was traced with (the solve and the
    derivative rule run in float64, the caller's values keep their own dtypes). The trace's
    NumPy constants are copies: JAX caches its float64 conversion of a NumPy array for as long
    as the conversion lives, and would hand it to the caller's 32-bit code.
    """
    import jax
    import jax.extend.core as jex
    import jax.numpy as jnp

    spec = ParamSpec.from_tree(template)
    resolved = resolve_unpack(fun, template, unpack, len(args))

    def call(params: Any, args: tuple) -> Any:
        return make_caller(fun, resolved, tuple(args), template)(params)

    with float64_scope():
        params = spec.unflatten_leaves([jnp.zeros(shape, dtype=jnp.float64) for shape in spec.shapes])
        converted, captured = jax.closure_convert(call, params, tuple(args))
        if not captured:
            return None
        inputs = jax.tree_util.tree_map(
            lambda leaf: jax.ShapeDtypeStruct(jnp.shape(leaf), jax.typeof(leaf).dtype), (params, tuple(args), list(captured))
        )
        closed, out_shape = jax.make_jaxpr(lambda p, a, c: converted(p, a, *c), return_shape=True)(*inputs)
    consts = [np.array(c) if isinstance(c, np.ndarray) else c for c in closed.consts]
    evaluate = jex.jaxpr_as_fun(jex.ClosedJaxpr(closed.jaxpr, consts))
    dtypes = [leaf.dtype for leaf in jax.tree_util.tree_leaves(inputs)]
    out_tree = jax.tree_util.tree_structure(out_shape)
    count = len(args)

    def lifted(params: Any, *values: Any) -> Any:
        leaves = jax.tree_util.tree_leaves((params, tuple(values[:count]), list(values[count:])))
        leaves = [leaf if jnp.result_type(leaf) == dtype else jnp.asarray(leaf).astype(dtype) for leaf, dtype in zip(leaves, dtypes)]
        return out_tree.unflatten(evaluate(*leaves))

    return lifted, tuple(args) + tuple(captured)
