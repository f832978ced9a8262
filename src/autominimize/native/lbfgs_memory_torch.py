"""The L-BFGS memory on torch: preallocated slots, in-place updates, no history allocations.

The pairs live in a ring of ``capacity + 1`` slots of tensors like x: the pairs are the
``count`` slots before ``head``, and the slot at ``head`` is where the next step's s and y
are written (``torch.sub(..., out=)``) before the curvature test decides whether they are
kept. The two-loop recursion updates one work vector in place, with every product written
into one scratch vector, so it performs the operations of :func:`~.lbfgs_memory.two_loop`
(⟨a, b⟩ as ``sum(a * b)``, q − a y as a product then a difference) and gives its results
bit for bit, without allocating a vector per operation: at n = 10⁶ those allocations made
the recursion several times slower. Slots are allocated the first time they are written.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["TorchMemory"]


class TorchMemory:
    """At most ``capacity`` pairs in a ring of preallocated tensors (see the module docstring)."""

    def __init__(self, capacity: int, s: list, y: list, rho: list, head: int, count: int, gamma: Any, scratch: torch.Tensor):
        self.capacity = capacity
        self.s, self.y, self.rho = s, y, rho
        self.head, self.count = head, count
        self.gamma = gamma  # ⟨s, y⟩ / ⟨y, y⟩ of the newest pair
        self.scratch = scratch

    @classmethod
    def allocate(cls, x: torch.Tensor, capacity: int) -> "TorchMemory":
        slots = capacity + 1
        return cls(capacity, [None] * slots, [None] * slots, [None] * slots, 0, 0, None, torch.empty_like(x))

    @property
    def empty(self) -> bool:
        return self.count == 0

    def _newest_first(self) -> list[int]:
        slots = self.capacity + 1
        return [(self.head - 1 - i) % slots for i in range(self.count)]

    def _dot(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.mul(a, b, out=self.scratch).sum()

    def _with(self, **changes: Any) -> "TorchMemory":
        fields = dict(vars(self), **changes)
        return TorchMemory(**fields)

    @torch.no_grad()
    def direction(self, gradient: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, scratch = gradient.clone(), self.scratch
        order = self._newest_first()
        alphas = []
        for j in order:
            a = self.rho[j] * self._dot(self.s[j], q)
            q.sub_(torch.mul(a, self.y[j], out=scratch))
            alphas.append(a)
        if order:
            q.mul_(self.gamma)
        for j, a in zip(reversed(order), reversed(alphas)):
            b = self.rho[j] * self._dot(self.y[j], q)
            q.add_(torch.mul(a - b, self.s[j], out=scratch))
        q.neg_()
        return q, self._dot(gradient, q)

    def cleared(self) -> "TorchMemory":
        return self._with(count=0, gamma=None)

    @torch.no_grad()
    def updated(self, x_new: Any, x: Any, g_new: Any, g: Any, curvature_eps: float) -> "TorchMemory":
        j = self.head
        if self.s[j] is None:
            self.s[j], self.y[j] = torch.empty_like(x), torch.empty_like(x)
        s, y = torch.sub(x_new, x, out=self.s[j]), torch.sub(g_new, g, out=self.y[j])
        sy = self._dot(s, y)
        if not float(sy) > curvature_eps:
            return self
        self.rho[j] = 1.0 / sy
        gamma = sy / self._dot(y, y)
        return self._with(head=(j + 1) % (self.capacity + 1), count=min(self.count + 1, self.capacity), gamma=gamma)

    def with_capacity(self, capacity: int) -> "TorchMemory":
        keep = list(reversed(self._newest_first()[:capacity]))  # oldest first
        slots = capacity + 1
        pad = [None] * (slots - len(keep))
        s, y, rho = ([buffer[j] for j in keep] + pad for buffer in (self.s, self.y, self.rho))
        return self._with(capacity=capacity, s=s, y=y, rho=rho, head=len(keep) % slots, count=len(keep), gamma=self.gamma if keep else None)
