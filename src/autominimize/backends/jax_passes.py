"""A point's compressed derivative passes in ONE compiled JAX call each.

A sparse IPOPT solve asks at each point for a few Hessian-vector products of the Lagrangian
(one per colour) and, at points where it wants the constraint Jacobian, for J times the
same seeds. Run one by one they cost one dispatch each: ~130 per solve of the banded
problem at n = 1000, each of which waits for a core when the machine is busy. Mapped over
the seeds with ``jax.vmap`` inside one executable they cost one;
:meth:`JacobianPasses.first_order_call` adds to J's passes the values and the gradient that
IPOPT asks for at the same point. Both it and :meth:`HessianPasses.head_hvps_call` hand back
the call with its seeds bound, found once per solve.

Those two run a colouring's passes as a loop (:func:`_each_row`) over the linear map of ONE
linearization: XLA fuses the whole of a mapped pass into one loop over its outputs and
computes an elementwise value of the primal (a sine, a cosine) again for every output that
reads it, once per pass and per neighbour; the loop's operands, the linearization's values,
are computed once. On the banded pendulum at n = 1000 (3 passes) the Hessian's passes took
118 µs instead of 247 µs and the first-order call 170 µs instead of 226 µs (measured side by
side on a loaded machine); on a polynomial problem of the same pattern, with nothing to
compute again, the loop cost 2-9 µs more a call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["HessianPasses", "JacobianPasses", "tangent_reaches_output"]


def _each_row(linear: Callable, directions: Any) -> Any:
    """``linear`` applied to each row of ``directions``, in a loop (see the module's docstring)."""
    import jax

    return jax.lax.map(linear, directions)


def _directions_aval(functions: Any, directions: np.ndarray) -> tuple:
    import jax

    return (functions._x_aval(), jax.ShapeDtypeStruct((directions.shape[0], functions.n), functions.dtype))


class HessianPasses:
    """For :class:`~.jax_backend.JaxScalar`: Hessian-vector products along many directions."""

    def hvps(self, x: np.ndarray, directions: np.ndarray) -> np.ndarray:
        """``H(x) @ v`` for each row ``v`` of ``directions`` (p, n), as a (p, n) array: one
        linearization of the gradient at ``x``, its linear map applied to every row."""
        import jax

        def build():
            gradient = jax.grad(self.flat_fun)

            def hvps(x, directions):
                _, linear = jax.linearize(gradient, x)
                return jax.vmap(linear)(directions)

            return hvps

        compiled = self._aot(("hvps", directions.shape[0]), build, lambda: _directions_aval(self, directions))
        return np.array(compiled(self._input(x), self._input(directions)), dtype=np.float64)

    def head_hvps_call(self, rest_size: int, directions: np.ndarray) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """``(head, rest) ->`` the leading block of the Hessian at ``[head, rest]`` times each row
        of ``directions`` (p, k), k = ``head.size``, as a (p, k) array: forward-over-reverse
        passes in ``head`` alone, ``rest`` (``rest_size`` entries) held fixed. The compiled call
        and the directions' input are found once, for the many points of a solve. For the
        Lagrangian (head x, rest [σ, λ]) the passes cost 0.1 ms at n = 1000 where :meth:`hvps`
        in all of ``[x, σ, λ]`` costs 0.4-0.6 ms. Where head and rest are the structure's two
        leaves (the Lagrangian's), the function gets them as they are: differentiated through
        their concatenation, the passes took 133 µs instead of 87 µs (n = 1000, the gradient
        formed in all of ``[x, σ, λ]``)."""
        import jax
        import jax.numpy as jnp

        k = directions.shape[1]

        def of_head(head, rest):
            if self.spec.shapes == (head.shape, rest.shape):
                return self.tree_fun(self.spec.unflatten_leaves([head, rest]))
            return self.flat_fun(jnp.concatenate([head, rest]))

        def build():
            def head_hvps(head, rest, directions):
                linear = jax.linearize(jax.grad(lambda head: of_head(head, rest)), head)[1]
                return _each_row(linear, directions)

            return head_hvps

        def avals():
            return (
                jax.ShapeDtypeStruct((k,), self.dtype),
                jax.ShapeDtypeStruct((rest_size,), self.dtype),
                jax.ShapeDtypeStruct(directions.shape, self.dtype),
            )

        compiled = self._aot(("head_hvps", k, directions.shape[0]), build, avals)
        fixed = self._input(np.asarray(directions, dtype=np.float64))
        if self.dtype == np.float64:

            def call(head: np.ndarray, rest: np.ndarray) -> np.ndarray:
                return np.array(compiled(head, rest, fixed), dtype=np.float64)

        else:

            def call(head: np.ndarray, rest: np.ndarray) -> np.ndarray:
                return np.array(compiled(self._input(head), self._input(rest), fixed), dtype=np.float64)

        return call


class JacobianPasses:
    """For :class:`~.jax_backend.JaxVector`: Jacobian-vector products along many directions."""

    def jvps(self, x: np.ndarray, directions: np.ndarray) -> np.ndarray:
        """``J(x) @ v`` for each row ``v`` of ``directions`` (p, n), as a (p, m) array: forward
        mode, one pass per row, all in one call."""
        import jax

        def build():
            def jvps(x, directions):
                return jax.vmap(lambda v: jax.jvp(self.flat_fun, (x,), (v,))[1])(directions)

            return jvps

        compiled = self._aot(("jvps", directions.shape[0]), build, lambda: _directions_aval(self, directions))
        return np.array(compiled(self._input(x), self._input(directions)), dtype=np.float64)

    def first_order_call(
        self, directions: np.ndarray, size: int, looped: bool = False
    ) -> Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray, np.ndarray]]:
        """``x ->`` ``v₀(x)``, its gradient, the values ``v₁, v₂, ...`` and ``J(x) @ d`` for each
        row ``d`` of ``directions`` (p, n), J their Jacobian, as a (p, size - 1) array: views of
        ONE call's output (``size`` the number of values of v, which the caller knows without a
        trace); the compiled call and the directions' input are found once, for the many points
        of a solve. ``looped``: J's passes in a loop over
        the rows (see the module's docstring), for a colouring's few seeds; else mapped, as for
        the n rows of the identity, where a loop would cost a few µs a row. (Linearizing v once
        and transposing its linear map for ∇v₀ took 4x as long at n = 1000: it runs the reverse
        pass through every entry of v.)"""
        import jax
        import jax.numpy as jnp

        def build():
            def first_order(x, directions):
                gradient = jax.grad(lambda x: self.flat_fun(x)[0])(x)
                if looped:
                    tangents = _each_row(jax.linearize(lambda x: self.flat_fun(x)[1:], x)[1], directions)
                else:
                    tangents = jax.vmap(lambda v: jax.jvp(lambda x: self.flat_fun(x)[1:], (x,), (v,))[1])(directions)
                return jnp.concatenate([self.flat_fun(x), gradient, jnp.ravel(tangents)])

            return first_order

        key = ("first_order looped" if looped else "first_order", directions.shape[0])
        compiled = self._aot(key, build, lambda: _directions_aval(self, directions))
        fixed = self._input(np.asarray(directions, dtype=np.float64))
        n, p = self.n, directions.shape[0]
        gradient_at = slice(size, size + n)
        float64 = self.dtype == np.float64

        def call(x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
            out = np.array(compiled(x if float64 else self._input(x), fixed), dtype=np.float64)
            return float(out[0]), out[gradient_at], out[1:size], out[size + n :].reshape(p, size - 1)

        return call


def tangent_reaches_output(fun: Any, x: Any) -> bool:
    """Whether a tangent of x reaches ``fun(x)`` in the traced program (not through
    ``jax.lax.stop_gradient``); conservative: an equation any reached input feeds is reached."""
    import jax

    jaxpr = jax.make_jaxpr(lambda y, v: jax.jvp(fun, (y,), (v,))[1])(x, x).jaxpr
    reached = {jaxpr.invars[1]}
    for equation in jaxpr.eqns:
        if any(not hasattr(var, "val") and var in reached for var in equation.invars):  # a literal has a val
            reached.update(equation.outvars)
    return any(not hasattr(var, "val") and var in reached for var in jaxpr.outvars)
