"""A point's compressed derivative passes in ONE compiled JAX call each.

A sparse IPOPT solve asks at each point for a few Hessian-vector products of the Lagrangian
(one per colour) and, at points where it wants the constraint Jacobian alone, for J times
the same seeds. Run one by one they cost one dispatch each: ~130 per solve of the banded
problem at n = 1000, each of which waits for a core when the machine is busy. Mapped over
the seeds with ``jax.vmap`` inside one executable they cost one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["HessianPasses", "JacobianPasses"]


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
