"""JAX: the solve as a host callback with a custom VJP, so grad, jacrev, jit and vmap work.

The forward pass is ``jax.pure_callback`` around the ordinary solve (a loop of solves under
``vmap``); the backward pass is a second callback that solves the adjoint system at the solution
with JAX's own derivatives of the user's function (jitted once per function and structure).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.optimize as so

from ..backends import cached_compile
from ..backends.jax_backend import float64_scope
from ..backends.jax_sync import compile_function
from ..params import leaf_kind, tree_leaves
from .backward import adjoint_at, count_hvps
from .problem import ImplicitProblem, flat_solution, split_args

__all__ = ["solve_with_jax"]


def _flat(jnp: Any, leaves: list) -> Any:
    return jnp.concatenate([jnp.ravel(leaf).astype(jnp.float64) for leaf in leaves]) if leaves else jnp.zeros(0)


def _functions(problem: ImplicitProblem) -> "_Compiled":
    """Gradient, constraints, Hessian-vector products and θ-VJP of the Lagrangian."""
    import jax
    import jax.numpy as jnp

    spec = problem.spec

    def params_of(x):
        return spec.unflatten_leaves([x[a:b].reshape(shape) for shape, a, b in zip(spec.shapes, spec.offsets, spec.offsets[1:])])

    def objective(x, leaves):
        out = problem.objective_output(params_of(x), problem.args(leaves))
        if problem.residual:
            r = _flat(jnp, tree_leaves(out))
            return 0.5 * jnp.sum(r * r)
        return jnp.asarray(out, dtype=jnp.float64).reshape(())

    def constraint_parts(x, leaves, matrices):
        outputs = iter(problem.constraint_outputs(params_of(x), problem.args(leaves)))
        matrices = iter(matrices)
        return [
            next(matrices) @ x if item.fun is None else _flat(jnp, tree_leaves(next(outputs)))
            for item in problem.constraints
        ]

    def constraint_values(x, leaves, matrices):
        parts = constraint_parts(x, leaves, matrices)
        return jnp.concatenate(parts) if parts else jnp.zeros(0)

    def lagrangian(x, leaves, matrices, weights):
        value = objective(x, leaves)
        if problem.constraints:
            value = value + weights @ constraint_values(x, leaves, matrices)
        return value

    grad_l = jax.grad(lagrangian)

    def hvp(x, leaves, matrices, weights, vectors):
        def column(v):
            return jax.jvp(lambda y: grad_l(y, leaves, matrices, weights), (x,), (v,))[1]

        return jax.vmap(column, in_axes=1, out_axes=1)(vectors)

    def constraints(x, leaves, matrices):
        return constraint_parts(x, leaves, matrices), jax.jacrev(constraint_values)(x, leaves, matrices)

    def theta_vjp(x, leaves, matrices, weights, w, z, u, mask):
        """-∂θ(⟨∇ₓL, w⟩ + ⟨c, z⟩) + u ∂θL: the adjoint's product, plus the objective value's
        cotangent ``u`` times its derivative at the solution (∂θ of the Lagrangian, by the
        envelope theorem)."""

        def inner(diff):
            diff = iter(diff)
            merged = [next(diff) if keep else leaf for leaf, keep in zip(leaves, mask)]
            value = grad_l(x, merged, matrices, weights) @ w
            if problem.constraints:
                value = value + constraint_values(x, merged, matrices) @ z
            return u * lagrangian(x, merged, matrices, weights) - value

        return jax.grad(inner)([leaf for leaf, keep in zip(leaves, mask) if keep])

    return _Compiled({"gradient": jax.grad(objective), "constraints": constraints, "hvp": hvp, "theta_vjp": theta_vjp})


class _Compiled:
    """The functions, compiled ahead of time once per argument shapes and dtypes (a compiled
    executable survives the trace-cache clearing of a float64 solve, a ``jax.jit`` would not)."""

    def __init__(self, functions: dict[str, Callable]):
        self.functions = functions
        self.executables: dict = {}

    def __call__(self, name: str, *args: Any, static: Any = None) -> Any:
        import jax

        args = jax.tree_util.tree_map(np.asarray, args)  # host arrays: the executable places them itself
        leaves, treedef = jax.tree_util.tree_flatten(args)
        key = (name, static, treedef, tuple((leaf.shape, leaf.dtype) for leaf in leaves))
        executable = self.executables.get(key)
        if executable is None:
            function = self.functions[name]
            if static is not None:
                function = functools.partial(function, mask=static)
            avals = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), args)
            executable = self.executables[key] = compile_function(function, *avals)
        return executable(*args)


class JaxOperators:
    """The adjoint's operators at one θ (host side, float64)."""

    def __init__(self, problem: ImplicitProblem, functions: dict, leaves: list, matrices: list):
        self.problem, self.f, self.leaves, self.matrices = problem, functions, leaves, matrices
        self.sizes: list[int] = []

    def gradient(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.f("gradient", x, self.leaves), dtype=np.float64)

    def constraints(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self.problem.constraints:
            return np.zeros(0), np.zeros((0, x.size))
        parts, jac = self.f("constraints", x, self.leaves, self.matrices)
        self.sizes = [int(part.shape[0]) for part in parts]
        c = np.concatenate([np.asarray(part, dtype=np.float64) for part in parts])
        return c, np.asarray(jac, dtype=np.float64).reshape(c.size, x.size)

    def hvp(self, x: np.ndarray, weights: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        return np.asarray(self.f("hvp", x, self.leaves, self.matrices, weights, vectors), dtype=np.float64)


def solve_with_jax(problem: ImplicitProblem, run: Callable[[Any, tuple], so.OptimizeResult], x0: Any, args: tuple) -> so.OptimizeResult:
    """Run the solve through a host callback whose result JAX differentiates implicitly."""
    import jax
    import jax.numpy as jnp

    spec = problem.spec
    x0_leaves = spec.leaves_of(x0)
    x0_kinds = [leaf_kind(leaf) if not isinstance(leaf, jax.core.Tracer) else "jax" for leaf in x0_leaves]
    arg_leaves = split_args(args)[0]
    mask = tuple(bool(jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)) for leaf in arg_leaves)
    matrices = [jnp.asarray(item.matrix) for item in problem.constraints if item.fun is None]
    out_types = [jax.ShapeDtypeStruct(info.shape, jax.dtypes.canonicalize_dtype(info.dtype)) for info in spec.leaves]
    value_type = jax.ShapeDtypeStruct((), jax.dtypes.canonicalize_dtype(np.float64))
    status_types = (jax.ShapeDtypeStruct((), jnp.bool_), jax.ShapeDtypeStruct((), jnp.int32), jax.ShapeDtypeStruct((), jnp.int32), jax.ShapeDtypeStruct((), jnp.int32))
    key = ("implicit-jax", spec.key, problem.unpack, problem.args_treedef, problem.residual, tuple(item.fun for item in problem.constraints))
    functions = cached_compile(problem.fun, key, lambda: _functions(problem))
    record = so.OptimizeResult()

    def host_forward(x0_values, arg_values):
        start = spec.unflatten_leaves([_as_kind(kind, value) for kind, value in zip(x0_kinds, x0_values)])
        res = run(start, problem.args([jnp.asarray(a) for a in arg_values]))
        x_flat = flat_solution(res.x)
        parts = [x_flat[a:b].reshape(t.shape).astype(t.dtype) for t, a, b in zip(out_types, spec.offsets, spec.offsets[1:])]
        value = res.cost if problem.residual and "cost" in res else res.fun
        status = (np.bool_(res.get("success", False)), np.int32(res.get("status", 0) or 0), np.int32(res.get("nit", 0) or 0), np.int32(res.get("nfev", 0) or 0))
        return parts, np.asarray(value, dtype=value_type.dtype), status

    def host_backward(x_parts, success, arg_values, cotangents, value_cotangent):
        with float64_scope():
            leaves = [jnp.asarray(a) for a in arg_values]
            x = np.concatenate([np.ravel(p) for p in x_parts]).astype(np.float64)
            v = np.concatenate([np.ravel(p) for p in cotangents]).astype(np.float64)
            ops = JaxOperators(problem, functions, leaves, matrices)
            adjoint = adjoint_at(problem, ops, x, v, bool(success))
            count_hvps(record, adjoint)
            if adjoint.failure is not None:
                return [np.full(t.shape, np.nan, dtype=t.dtype) for t in grad_types]
            u = float(value_cotangent)
            grads = functions("theta_vjp", x, leaves, matrices, adjoint.weights, adjoint.w, adjoint.z, u, static=mask)
            return [np.asarray(g).astype(t.dtype) for g, t in zip(grads, grad_types)]

    grad_types = [jax.ShapeDtypeStruct(np.shape(leaf), jnp.result_type(leaf)) for leaf, keep in zip(arg_leaves, mask) if keep]

    @jax.custom_vjp
    def solve(x0_values, arg_values):
        return jax.pure_callback(host_forward, (out_types, value_type, status_types), x0_values, arg_values, vmap_method="sequential")

    def forward(x0_values, arg_values):
        out = solve(x0_values, arg_values)
        return out, (out[0], out[2][0], arg_values)

    def backward(saved, cotangent):
        x_parts, success, arg_values = saved
        grads = jax.pure_callback(
            host_backward, grad_types, x_parts, success, arg_values, list(cotangent[0]), cotangent[1], vmap_method="sequential"
        )
        grads = iter(grads)
        grads = [next(grads) if keep else None for keep in mask]
        return [None] * len(x0_leaves), grads

    solve.defvjp(forward, backward)
    x0_values = [jnp.asarray(leaf, dtype=t.dtype) for leaf, t in zip(x0_leaves, out_types)]
    x_parts, value, (success, status, nit, nfev) = solve(x0_values, list(arg_leaves))
    result = record
    result.update(x=spec.unflatten_leaves(list(x_parts)), success=success, status=status, nit=nit, nfev=nfev, backend="jax")
    result["cost" if problem.residual else "fun"] = value
    result.message = "solved in a host callback: fun (cost), success, status, nit and nfev are JAX arrays"
    return result


def _as_kind(kind: str, value: np.ndarray) -> Any:
    if kind == "jax":
        import jax.numpy as jnp

        return jnp.asarray(value)
    if kind == "python":
        return float(value)
    return np.asarray(value)
