"""The L-BFGS memory on JAX: a fixed-size ring buffer and two jitted kernels.

Dispatching each vector operation of the two-loop recursion separately costs tens of
microseconds per operation on JAX, which dominated small problems. Here the pairs live in
(capacity + 1, n) arrays; the ``count`` rows before ``head`` are the pairs, newest at
``head − 1``, and the row at ``head`` receives the next step's s and y before the curvature
test decides (on the device) whether ``head`` advances past it. :func:`_direction` runs the
whole recursion as one call (``lax.fori_loop`` over the valid pairs, so the shapes, and
hence the compiled function, do not change as the memory fills) and :func:`_push` the
update, with the buffers donated so that storing a pair does not copy the history.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..backends.jax_aot import AheadOfTime

__all__ = ["JaxMemory"]


def _direction(gradient, s, y, rho, gamma, head, count):
    """−H gradient and ⟨gradient, d⟩: the arithmetic of :func:`~.lbfgs_memory.two_loop`."""
    slots = s.shape[0]

    def row(i):  # the i-th newest pair
        return (head - 1 - i) % slots

    def newest_to_oldest(i, carry):
        q, alphas = carry
        j = row(i)
        a = rho[j] * jnp.sum(s[j] * q)
        return q - a * y[j], alphas.at[i].set(a)

    q, alphas = lax.fori_loop(0, count, newest_to_oldest, (gradient, jnp.zeros(slots, gradient.dtype)))
    q = jnp.where(count > 0, q * gamma, q)

    def oldest_to_newest(k, q):
        i = count - 1 - k
        j = row(i)
        b = rho[j] * jnp.sum(y[j] * q)
        return q + (alphas[i] - b) * s[j]

    d = -lax.fori_loop(0, count, oldest_to_newest, q)
    return d, jnp.sum(gradient * d)


def _push(s, y, rho, gamma, head, count, x_new, x, g_new, g, curvature_eps):
    """Write s and y at ``head``; keep them (advance ``head``) if ⟨s, y⟩ > curvature_eps."""
    slots = s.shape[0]
    s_new, y_new = x_new - x, g_new - g
    sy = jnp.sum(s_new * y_new)
    keep = sy > curvature_eps
    s, y = s.at[head].set(s_new), y.at[head].set(y_new)
    rho = rho.at[head].set(1.0 / sy)
    gamma = jnp.where(keep, sy / jnp.sum(y_new * y_new), gamma)
    head = jnp.where(keep, (head + 1) % slots, head)
    count = jnp.where(keep, jnp.minimum(count + 1, slots - 1), count)
    return s, y, rho, gamma, head, count


_direction_kernel = AheadOfTime(_direction)
_push_kernel = AheadOfTime(_push, donate_argnums=(0, 1, 2))


class JaxMemory(NamedTuple):
    """At most ``capacity`` pairs in a ring buffer (see the module docstring)."""

    capacity: int
    s: Any  # (capacity + 1, n)
    y: Any  # (capacity + 1, n)
    rho: Any  # (capacity + 1,) 1 / ⟨s_i, y_i⟩
    gamma: Any  # ⟨s, y⟩ / ⟨y, y⟩ of the newest pair
    head: Any  # int32 0-d: the row the next pair is written to
    count: Any  # int32 0-d: pairs stored

    @classmethod
    def allocate(cls, x: Any, capacity: int) -> "JaxMemory":
        # from NumPy: jnp.zeros compiles an eager op, again after each solve's float64 scope
        slots, dtype = capacity + 1, np.dtype(x.dtype)
        zero = jax.device_put(np.zeros((), np.int32))
        rows = np.zeros((slots, x.shape[0]), dtype)
        return cls(
            capacity,
            jax.device_put(rows),
            jax.device_put(rows),
            jax.device_put(np.zeros(slots, dtype)),
            jax.device_put(np.ones((), dtype)),
            zero,
            zero,
        )

    @property
    def empty(self) -> bool:
        return int(self.count) == 0

    def direction(self, gradient: Any) -> tuple[Any, Any]:
        return _direction_kernel(gradient, self.s, self.y, self.rho, self.gamma, self.head, self.count)

    def cleared(self) -> "JaxMemory":
        return self._replace(count=jnp.zeros((), jnp.int32))

    def updated(self, x_new: Any, x: Any, g_new: Any, g: Any, curvature_eps: float) -> "JaxMemory":
        pushed = _push_kernel(self.s, self.y, self.rho, self.gamma, self.head, self.count, x_new, x, g_new, g, curvature_eps)
        return JaxMemory(self.capacity, *pushed)

    def with_capacity(self, capacity: int) -> "JaxMemory":
        slots, kept = self.capacity + 1, min(int(self.count), capacity)
        head = int(self.head)
        rows = jnp.asarray([(head - kept + i) % slots for i in range(kept)], jnp.int32)  # oldest first
        fresh = JaxMemory.allocate(self.s[0], capacity)
        return fresh._replace(
            s=fresh.s.at[:kept].set(self.s[rows]),
            y=fresh.y.at[:kept].set(self.y[rows]),
            rho=fresh.rho.at[:kept].set(self.rho[rows]),
            gamma=self.gamma,
            head=jnp.asarray(kept % (capacity + 1), jnp.int32),
            count=jnp.asarray(kept, jnp.int32),
        )
