"""JAX: the solve as a host callback with a custom derivative rule.

The forward pass is ``jax.pure_callback`` around the ordinary solve (a loop of solves under
``vmap``). With 64-bit JAX the rule is a custom JVP: the callback also finds the active set and
the multipliers at the solution, and the tangent solves the linearised optimality system

    [[H_L, Jᵀ], [J, 0]] [dx; dλ] = -[∂θ∇ₓL · dθ; ∂θc · dθ]

with ``lax.custom_linear_solve``: the right-hand side and the matrix-vector products are JAX
code in the caller's trace, the solve itself a second host callback (one factorisation per
solution, reused for every right-hand side). Forward mode (``jvp``, ``jacfwd``) is this rule;
reverse mode (``grad``, ``vjp``, ``jacrev``) is its transpose, which JAX derives (the system is
symmetric); second order (``hessian``) differentiates the rule again, the multipliers' tangent
being ``dλ``. In 32-bit mode the rule is a custom VJP whose backward pass is a host callback
(reverse mode, first order).
"""

from __future__ import annotations

import functools
import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import scipy.optimize as so

from ..backends import cached_compile
from ..backends.jax_backend import float64_scope
from ..params import leaf_kind
from .adjoint import ActiveSet, ImplicitDifferentiationWarning, KKTSystem, stationarity_failure
from .backward import active_set_at, adjoint_at, count_hvps
from .jax_functions import Compiled, JaxOperators, lagrangian_parts, problem_functions
from .problem import ImplicitProblem, flat_solution, keep_host_fields, split_args

__all__ = ["solve_with_jax"]


class _Systems:
    """The KKT system of the last solution asked for (host side, 64-bit JAX): a tangent per
    input (``jacfwd``) or a cotangent per output (``jacrev``) reuses its factorisation."""

    def __init__(self, problem: ImplicitProblem, functions: Compiled, matrices: list, record: so.OptimizeResult):
        self.problem, self.functions, self.matrices, self.record = problem, functions, matrices, record
        self.last: tuple[bytes, KKTSystem] | None = None

    def solve(self, x, arg_values, weights, free, active, stationarity, success, rhs) -> np.ndarray:
        """``[u; y]`` for the right-hand side ``rhs = [b_x; b_c]`` (see :meth:`KKTSystem.solve`)."""
        import jax.numpy as jnp

        x, weights = np.asarray(x, dtype=np.float64), np.asarray(weights, dtype=np.float64)
        digest = hashlib.blake2b(digest_size=16)
        for part in (x, weights, free, active, stationarity, success, *arg_values):
            digest.update(np.ascontiguousarray(part).tobytes())
        key = digest.digest()
        before = 0
        if self.last is None or self.last[0] != key:
            ops = JaxOperators(self.problem, self.functions, [jnp.asarray(a) for a in arg_values], self.matrices)
            active_set = ActiveSet(
                weights,
                np.asarray(free) > 0.5,
                np.asarray(active) > 0.5,
                float(stationarity),
                stationarity_failure(float(stationarity), bool(success)),
            )
            self.last = (key, KKTSystem(ops, x, active_set))
        else:
            before = self.last[1].nhvp
        system = self.last[1]
        rhs = np.asarray(rhs)
        u, y = system.solve(rhs[: x.size].astype(np.float64), rhs[x.size :].astype(np.float64))
        self.record["implicit_nhvp"] = self.record.get("implicit_nhvp", 0) + system.nhvp - before
        self.record["implicit_nbackward"] = self.record.get("implicit_nbackward", 0) + 1
        if system.failure is not None:
            warnings.warn(
                f"the derivative of the solution with respect to args is NaN: {system.failure}.", ImplicitDifferentiationWarning, stacklevel=2
            )
        return np.concatenate([u, y]).astype(rhs.dtype)


@dataclass
class _Setup:
    """What both derivative rules need of one call."""

    problem: ImplicitProblem
    run: Callable[[Any, tuple], so.OptimizeResult]
    x0_kinds: list[str]
    mask: tuple[bool, ...]
    matrices: list
    out_types: list
    real: Any
    functions: Compiled
    record: so.OptimizeResult
    #: what the ordinary solve raised in the host callback, which JAX reports as its own error
    failure: Exception | None = None

    def host_solve(self, x0_values: list, arg_values: list) -> tuple[np.ndarray, so.OptimizeResult, list, np.ndarray, tuple]:
        """The ordinary solve on concrete values: flat x, the result, x's leaves, value and status."""
        import jax.numpy as jnp

        spec = self.problem.spec
        start = spec.unflatten_leaves([_as_kind(kind, value) for kind, value in zip(self.x0_kinds, x0_values)])
        try:
            res = self.run(start, self.problem.args([jnp.asarray(a) for a in arg_values]))
        except Exception as exc:
            self.failure = exc
            raise
        keep_host_fields(self.record, res, _TRACED + ("cost" if self.problem.residual else "fun",))
        x_flat = flat_solution(res.x)
        x_parts = [x_flat[a:b].reshape(t.shape).astype(t.dtype) for t, a, b in zip(self.out_types, spec.offsets, spec.offsets[1:])]
        value = res.cost if self.problem.residual and "cost" in res else res.fun
        success = bool(res.get("success", False))
        status = (np.bool_(success), np.int32(res.get("status", 0) or 0), np.int32(res.get("nit", 0) or 0), np.int32(res.get("nfev", 0) or 0))
        return x_flat, res, x_parts, np.asarray(value, dtype=self.real), status

    def operators(self, arg_values: list) -> JaxOperators:
        import jax.numpy as jnp

        return JaxOperators(self.problem, self.functions, [jnp.asarray(a) for a in arg_values], self.matrices)


_STATUS_TYPES = (np.bool_, np.int32, np.int32, np.int32)
#: the result's fields that are JAX arrays of the trace (and the value: ``cost`` of least
#: squares, ``fun`` otherwise): the host solve's do not replace them
_TRACED = ("x", "success", "status", "nit", "nfev", "backend", "message")


def solve_with_jax(problem: ImplicitProblem, run: Callable[[Any, tuple], so.OptimizeResult], x0: Any, args: tuple) -> so.OptimizeResult:
    """Run the solve through a host callback whose result JAX differentiates implicitly.

    With 64-bit JAX (``jax_enable_x64``) the rule is a custom JVP (every transformation, any
    order); in 32-bit mode a custom VJP (reverse mode, first order): the tangent rule traces the
    objective in the caller's 32-bit trace, and JAX then converts its NumPy constants to 32
    bits in the float64 solves that follow.
    """
    import jax
    import jax.numpy as jnp

    spec = problem.spec
    x0_leaves = spec.leaves_of(x0)
    arg_leaves = split_args(args)[0]
    out_types = [jax.ShapeDtypeStruct(info.shape, jax.dtypes.canonicalize_dtype(info.dtype)) for info in spec.leaves]
    key = ("implicit-jax", spec.key, problem.unpack, problem.args_treedef, problem.residual, tuple(item.fun for item in problem.constraints))
    setup = _Setup(
        problem=problem,
        run=run,
        x0_kinds=[leaf_kind(leaf) if not isinstance(leaf, jax.core.Tracer) else "jax" for leaf in x0_leaves],
        mask=tuple(bool(jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)) for leaf in arg_leaves),
        matrices=[jnp.asarray(item.matrix) for item in problem.constraints if item.fun is None],
        out_types=out_types,
        real=jax.dtypes.canonicalize_dtype(np.float64),
        functions=cached_compile(problem.fun, key, lambda: problem_functions(problem), constants=True),
        record=so.OptimizeResult(),
    )
    x0_values = [jnp.asarray(leaf, dtype=t.dtype) for leaf, t in zip(x0_leaves, out_types)]
    rule = _forward_rule if jax.enable_x64.value else _reverse_rule
    try:
        x_parts, value, (success, status, nit, nfev) = rule(setup, x0_values, list(arg_leaves))
    except jax.errors.JaxRuntimeError:
        if setup.failure is None:
            raise
        # run eagerly (not under jit), the solve failed here: its own error goes on, the same
        # object (a malformed argument named, the user's exception as raised), not JAX's report of it
        raise setup.failure from None
    result = setup.record
    result.update(x=spec.unflatten_leaves(list(x_parts)), success=success, status=status, nit=nit, nfev=nfev, backend="jax")
    result["cost" if problem.residual else "fun"] = value
    result.message = "solved in a host callback: fun (cost), success, status, nit and nfev are JAX arrays"
    return result


def _forward_rule(setup: _Setup, x0_values: list, arg_leaves: list) -> tuple:
    """The solve with a custom JVP: forward mode, reverse mode by transposition, any order.

    The callback returns, beside the solution, its active set (multipliers, free variables,
    active constraints, stationarity): :func:`_solution_tangent` differentiates through it.
    """
    import jax
    import jax.numpy as jnp

    problem, real = setup.problem, setup.real
    parts = lagrangian_parts(problem)
    n = problem.spec.size
    arg_types = [jax.ShapeDtypeStruct(np.shape(leaf), jnp.result_type(leaf)) for leaf in arg_leaves]
    m = jax.eval_shape(parts.constraint_values, jax.ShapeDtypeStruct((n,), real), arg_types, setup.matrices).shape[0]
    value_type = jax.ShapeDtypeStruct((), real)
    status_types = tuple(jax.ShapeDtypeStruct((), t) for t in _STATUS_TYPES)
    set_types = (jax.ShapeDtypeStruct((m,), real), jax.ShapeDtypeStruct((n,), real), jax.ShapeDtypeStruct((m,), real), value_type)
    systems = _Systems(problem, setup.functions, setup.matrices, setup.record)

    def host_forward(x0_values, arg_values):
        x_flat, _, x_parts, value, status = setup.host_solve(x0_values, arg_values)
        found = active_set_at(problem, setup.operators(arg_values), x_flat, bool(status[0]))
        active_set = (found.weights, found.free, found.active, found.stationarity)
        return x_parts, value, status, tuple(np.asarray(a, dtype=real) for a in active_set)

    @jax.custom_jvp
    def solve(x0_values, arg_values):
        types = (setup.out_types, value_type, status_types, set_types)
        return jax.pure_callback(host_forward, types, x0_values, arg_values, vmap_method="sequential")

    @solve.defjvp
    def solve_jvp(primals, tangents):
        out = solve(*primals)
        return out, _solution_tangent(setup, parts, systems, out, primals[1], tangents[1])

    x_parts, value, status, _ = solve(x0_values, arg_leaves)
    return x_parts, value, status


def _solution_tangent(setup: _Setup, parts: SimpleNamespace, systems: _Systems, out: tuple, arg_values: list, arg_tangents: list) -> tuple:
    """The tangents of the forward rule's outputs for the tangents of args: ``dx`` and the
    multipliers' ``dλ`` solve the linearised optimality system (``lax.custom_linear_solve``,
    the solve itself on the host), the value's by the chain rule through x and θ."""
    import jax
    import jax.numpy as jnp

    mask, matrices, real, out_types = setup.mask, setup.matrices, setup.real, setup.out_types
    x_parts, _, status, (weights, free, active, stationarity) = out
    x = jnp.concatenate([jnp.ravel(part) for part in x_parts]).astype(real)
    n = x.shape[0]
    theta = [leaf for leaf, keep in zip(arg_values, mask) if keep]
    dtheta = [dot for dot, keep in zip(arg_tangents, mask) if keep]

    def merged(diff):
        diff = iter(diff)
        return [next(diff) if keep else leaf for leaf, keep in zip(arg_values, mask)]

    def optimality(diff):
        leaves = merged(diff)
        return parts.lagrangian_gradient(x, leaves, matrices, weights), parts.constraint_values(x, leaves, matrices)

    _, (dg, dc) = jax.jvp(optimality, (theta,), (dtheta,))
    # one vector, so that it is linear in the tangents as a whole (the transpose needs that)
    # even where the constraints do not depend on θ
    rhs = jnp.concatenate([-free * dg, -active * dc])
    matvec = functools.partial(_kkt_matvec, parts, x, arg_values, matrices, weights, free, active)

    def linear_solve(_, b):
        solution_type = jax.ShapeDtypeStruct(rhs.shape, real)
        at = (x, arg_values, weights, free, active, stationarity, status[0], b)
        return jax.pure_callback(systems.solve, solution_type, *at, vmap_method="sequential")

    solution = jax.lax.custom_linear_solve(matvec, rhs, linear_solve, symmetric=True)
    dx, dweights = solution[:n], solution[n:]
    dvalue = jax.jvp(lambda y, diff: parts.objective(y, merged(diff)), (x, theta), (dx, dtheta))[1]
    dx_parts = [dx[a:b].reshape(t.shape).astype(t.dtype) for t, a, b in zip(out_types, setup.problem.spec.offsets, setup.problem.spec.offsets[1:])]
    no_tangent = tuple(np.zeros((), dtype=jax.dtypes.float0) for _ in _STATUS_TYPES)
    set_tangent = (dweights, jnp.zeros_like(free), jnp.zeros_like(active), jnp.zeros_like(stationarity))
    return dx_parts, dvalue.astype(real), no_tangent, set_tangent


def _reverse_rule(setup: _Setup, x0_values: list, arg_leaves: list) -> tuple:
    """The solve with a custom VJP: reverse mode, first order (32-bit JAX)."""
    import jax
    import jax.numpy as jnp

    problem, mask, real = setup.problem, setup.mask, setup.real
    value_type = jax.ShapeDtypeStruct((), real)
    status_types = tuple(jax.ShapeDtypeStruct((), t) for t in _STATUS_TYPES)
    grad_types = [jax.ShapeDtypeStruct(np.shape(leaf), jnp.result_type(leaf)) for leaf, keep in zip(arg_leaves, mask) if keep]

    def host_forward(x0_values, arg_values):
        _, _, x_parts, value, status = setup.host_solve(x0_values, arg_values)
        return x_parts, value, status

    def host_backward(x_parts, success, arg_values, cotangents, value_cotangent):
        with float64_scope():
            ops = setup.operators(arg_values)
            x = np.concatenate([np.ravel(p) for p in x_parts]).astype(np.float64)
            v = np.concatenate([np.ravel(p) for p in cotangents]).astype(np.float64)
            adjoint = adjoint_at(problem, ops, x, v, bool(success))
            count_hvps(setup.record, adjoint)
            if adjoint.failure is not None:
                return [np.full(t.shape, np.nan, dtype=t.dtype) for t in grad_types]
            grads = setup.functions(
                "theta_vjp", x, ops.leaves, setup.matrices, adjoint.weights, adjoint.w, adjoint.z, float(value_cotangent), static=mask
            )
            return [np.asarray(g).astype(t.dtype) for g, t in zip(grads, grad_types)]

    @jax.custom_vjp
    def solve(x0_values, arg_values):
        return jax.pure_callback(host_forward, (setup.out_types, value_type, status_types), x0_values, arg_values, vmap_method="sequential")

    def forward(x0_values, arg_values):
        out = solve(x0_values, arg_values)
        return out, (out[0], out[2][0], arg_values)

    def backward(saved, cotangent):
        x_parts, success, arg_values = saved
        grads = jax.pure_callback(host_backward, grad_types, x_parts, success, arg_values, list(cotangent[0]), cotangent[1], vmap_method="sequential")
        grads = iter(grads)
        return [None] * len(x0_values), [next(grads) if keep else None for keep in mask]

    solve.defvjp(forward, backward)
    return solve(x0_values, arg_leaves)


def _kkt_matvec(parts: SimpleNamespace, x: Any, leaves: list, matrices: list, weights: Any, free: Any, active: Any, vector: Any) -> Any:
    """The KKT matrix of the tangent system times ``[u; y]``: ``H_L u + Jᵀy`` on the free
    variables, ``J u`` on the active constraint values, the identity on the other rows."""
    import jax
    import jax.numpy as jnp

    n = x.shape[0]
    u, y = vector[:n], vector[n:]
    free_u = free * u
    hu = jax.jvp(lambda z: parts.lagrangian_gradient(z, leaves, matrices, weights), (x,), (free_u,))[1]
    if y.shape[0] == 0:
        return free * hu + (1 - free) * u
    _, pullback = jax.vjp(lambda z: parts.constraint_values(z, leaves, matrices), x)
    ju = jax.jvp(lambda z: parts.constraint_values(z, leaves, matrices), (x,), (free_u,))[1]
    return jnp.concatenate([free * (hu + pullback(active * y)[0]) + (1 - free) * u, active * ju + (1 - active) * y])


def _as_kind(kind: str, value: np.ndarray) -> Any:
    if kind == "jax":
        import jax.numpy as jnp

        return jnp.asarray(value)
    if kind == "python":
        return float(value)
    return np.asarray(value)
