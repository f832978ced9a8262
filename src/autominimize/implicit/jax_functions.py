"""The JAX functions of an implicit problem: the objective, the constraint values and the
gradient of the Lagrangian traced in the caller's trace, and their host-side executables
(gradient, constraints, Hessian-vector products, the θ-adjoint product) with the operators
the adjoint solves with."""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..backends.jax_sync import compile_function
from ..params import tree_leaves
from .problem import ImplicitProblem

__all__ = ["Compiled", "JaxOperators", "lagrangian_parts", "problem_functions"]


def _flat(jnp: Any, leaves: list, dtype: Any) -> Any:
    return jnp.concatenate([jnp.ravel(leaf).astype(dtype) for leaf in leaves]) if leaves else jnp.zeros(0, dtype=dtype)


def lagrangian_parts(problem: ImplicitProblem) -> SimpleNamespace:
    """The objective, the constraint values and the gradient of the Lagrangian as JAX functions
    of the flat x (computed in x's dtype), θ's leaves and the LinearConstraints' matrices."""
    import jax
    import jax.numpy as jnp

    spec = problem.spec

    def params_of(x):
        return spec.unflatten_leaves([x[a:b].reshape(shape) for shape, a, b in zip(spec.shapes, spec.offsets, spec.offsets[1:])])

    def objective(x, leaves):
        out = problem.objective_output(params_of(x), problem.args(leaves))
        if problem.residual:
            r = _flat(jnp, tree_leaves(out), x.dtype)
            return 0.5 * jnp.sum(r * r)
        return jnp.asarray(out).astype(x.dtype).reshape(())

    def constraint_parts(x, leaves, matrices):
        outputs = iter(problem.constraint_outputs(params_of(x), problem.args(leaves)))
        matrices = iter(matrices)
        return [
            next(matrices).astype(x.dtype) @ x if item.fun is None else _flat(jnp, tree_leaves(next(outputs)), x.dtype)
            for item in problem.constraints
        ]

    def constraint_values(x, leaves, matrices):
        parts = constraint_parts(x, leaves, matrices)
        return jnp.concatenate(parts) if parts else jnp.zeros(0, dtype=x.dtype)

    def lagrangian(x, leaves, matrices, weights):
        value = objective(x, leaves)
        if problem.constraints:
            value = value + weights.astype(x.dtype) @ constraint_values(x, leaves, matrices)
        return value

    return SimpleNamespace(
        objective=objective, constraint_parts=constraint_parts, constraint_values=constraint_values, lagrangian_gradient=jax.grad(lagrangian)
    )


def problem_functions(problem: ImplicitProblem) -> "Compiled":
    """Gradient, constraints and Hessian-vector products of the Lagrangian, for the host."""
    import jax

    parts = lagrangian_parts(problem)
    grad_l = parts.lagrangian_gradient

    def hvp(x, leaves, matrices, weights, vectors):
        def column(v):
            return jax.jvp(lambda y: grad_l(y, leaves, matrices, weights), (x,), (v,))[1]

        return jax.vmap(column, in_axes=1, out_axes=1)(vectors)

    def constraints(x, leaves, matrices):
        return parts.constraint_parts(x, leaves, matrices), jax.jacrev(parts.constraint_values)(x, leaves, matrices)

    def theta_vjp(x, leaves, matrices, weights, w, z, u, mask):
        """-∂θ(⟨∇ₓL, w⟩ + ⟨c, z⟩) + u ∂θf: the adjoint's product, plus the objective value's
        cotangent ``u`` times its derivative at the solution (∂θ of the Lagrangian, by the
        envelope theorem)."""

        def inner(diff):
            diff = iter(diff)
            merged = [next(diff) if keep else leaf for leaf, keep in zip(leaves, mask)]
            value = grad_l(x, merged, matrices, weights) @ w
            if problem.constraints:
                value = value + parts.constraint_values(x, merged, matrices) @ z
            lagrangian = parts.objective(x, merged) + (weights @ parts.constraint_values(x, merged, matrices) if problem.constraints else 0.0)
            return u * lagrangian - value

        return jax.grad(inner)([leaf for leaf, keep in zip(leaves, mask) if keep])

    return Compiled({"gradient": jax.grad(parts.objective), "constraints": constraints, "hvp": hvp, "theta_vjp": theta_vjp})


class Compiled:
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

    def __init__(self, problem: ImplicitProblem, functions: Compiled, leaves: list, matrices: list):
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
