"""The L-BFGS memory: the last m curvature pairs (s, y) and the product −H g with them.

One interface, :class:`Memory`, three implementations chosen by the array type
(:func:`new_memory`), all computing the two-loop recursion of Nocedal & Wright
(Algorithm 7.4) with the same operations in the same order:

* :class:`PairMemory`: immutable tuples of arrays, written once over the array API (NumPy,
  and TensorFlow, whose algorithms run on NumPy);
* :class:`~.lbfgs_memory_torch.TorchMemory`: m + 1 preallocated tensors updated in place,
  every product written into one scratch vector, so a step allocates no history;
* :class:`~.lbfgs_memory_jax.JaxMemory`: a fixed-size ring buffer with a count of valid
  pairs; the recursion and the update are one jitted call each, compiled once per shape.

The torch and JAX memories reuse their buffers: after a step, only the new state's memory is
valid (the previous one's slots may be overwritten; on JAX its buffers are donated).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol

import array_api_compat

from ._arrays import namespace, vdot

__all__ = ["Memory", "PairMemory", "new_memory", "two_loop"]


class Memory(Protocol):
    """The curvature pairs of L-BFGS, at most ``capacity`` of them."""

    capacity: int

    @property
    def empty(self) -> bool: ...

    def direction(self, gradient: Any) -> tuple[Any, Any]:
        """d = −H ``gradient`` and ⟨gradient, d⟩ (a 0-d array), H the inverse-Hessian estimate."""
        ...

    def cleared(self) -> "Memory":
        """The memory without pairs."""
        ...

    def updated(self, x_new: Any, x: Any, g_new: Any, g: Any, curvature_eps: float) -> "Memory":
        """After a step from (x, g) to (x_new, g_new): the pair s = x_new − x, y = g_new − g is
        stored if ⟨s, y⟩ > ``curvature_eps``, dropping the oldest once ``capacity`` are stored."""
        ...

    def with_capacity(self, capacity: int) -> "Memory":
        """The newest ``capacity`` pairs in a memory of that capacity."""
        ...


def new_memory(x: Any, capacity: int) -> Memory:
    """An empty memory for iterates like ``x``: JAX and torch get their fused memories."""
    if array_api_compat.is_jax_array(x):
        from .lbfgs_memory_jax import JaxMemory

        return JaxMemory.allocate(x, capacity)
    if array_api_compat.is_torch_array(x):
        from .lbfgs_memory_torch import TorchMemory

        return TorchMemory.allocate(x, capacity)
    return PairMemory(capacity)


def two_loop(xp: Any, g: Any, s: tuple, y: tuple, rho: tuple) -> Any:
    """H g for the L-BFGS inverse Hessian H (Nocedal & Wright Algorithm 7.4).

    The initial matrix is γ I with γ = ⟨s, y⟩ / ⟨y, y⟩ of the newest pair (N&W eq. 7.20),
    or I when the memory is empty. Every product stays a 0-d array on the device.
    """
    q = g
    alphas = []
    for s_i, y_i, rho_i in zip(reversed(s), reversed(y), reversed(rho)):
        a_i = rho_i * vdot(xp, s_i, q)
        q = q - a_i * y_i
        alphas.append(a_i)
    if s:
        q = q * (vdot(xp, s[-1], y[-1]) / vdot(xp, y[-1], y[-1]))
    for s_i, y_i, rho_i, a_i in zip(s, y, rho, reversed(alphas)):
        b = rho_i * vdot(xp, y_i, q)
        q = q + (a_i - b) * s_i
    return q


@dataclass(frozen=True)
class PairMemory:
    """The pairs as tuples of arrays, oldest first, with ρ_i = 1 / ⟨s_i, y_i⟩."""

    capacity: int
    s: tuple = ()
    y: tuple = ()
    rho: tuple = ()

    @property
    def empty(self) -> bool:
        return not self.s

    def direction(self, gradient: Any) -> tuple[Any, Any]:
        xp = namespace(gradient)
        d = -two_loop(xp, gradient, self.s, self.y, self.rho)
        return d, vdot(xp, gradient, d)

    def cleared(self) -> "PairMemory":
        return PairMemory(self.capacity)

    def updated(self, x_new: Any, x: Any, g_new: Any, g: Any, curvature_eps: float) -> "PairMemory":
        xp = namespace(x)
        s, y = x_new - x, g_new - g
        sy = vdot(xp, s, y)
        if not float(sy) > curvature_eps:
            return self
        drop = max(len(self.s) + 1 - self.capacity, 0)
        return dataclasses.replace(self, s=self.s[drop:] + (s,), y=self.y[drop:] + (y,), rho=self.rho[drop:] + (1.0 / sy,))

    def with_capacity(self, capacity: int) -> "PairMemory":
        keep = slice(max(len(self.s) - capacity, 0), None)
        return PairMemory(capacity, self.s[keep], self.y[keep], self.rho[keep])
