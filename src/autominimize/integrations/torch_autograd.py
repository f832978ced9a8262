"""The optimized torch parameters as one flat float64 vector, and autograd's products over them.

:class:`ParameterWriter` writes scipy's points into the parameters in place; :func:`vjp`
and :func:`hessian_of` give vector-Jacobian products and Hessians with respect to them, and
:func:`flatten` brings tensors back to scipy as one float64 array.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..params import ParamSpec

__all__ = ["ParameterWriter", "flatten", "vjp", "hessian_of"]


class ParameterWriter:
    """Writes flat float64 points into the parameters in place, skipping unchanged points.

    ``generation`` grows with every write: an autograd graph recorded before a write saved
    parameter values that no longer exist, so it must not be differentiated again. A point is
    written again when anything wrote into the parameters since (a closure that moves them,
    seen by their version counters): the solution must end in them, not a value near it.
    """

    def __init__(self, params: list[torch.Tensor], spec: ParamSpec):
        self.params = params
        self.spec = spec
        self.generation = 0
        self._x: np.ndarray | None = None
        self._versions: list[int] = []

    def load(self, x: np.ndarray) -> None:
        if self._x is not None and np.array_equal(x, self._x) and self._versions == [p._version for p in self.params]:
            return
        self._x = np.array(x, dtype=np.float64)
        source = torch.from_numpy(self._x)
        on_device = {p.device: source.to(p.device) for p in self.params}
        with torch.no_grad():
            for p, start, stop in zip(self.params, self.spec.offsets, self.spec.offsets[1:]):
                p.copy_(on_device[p.device][start:stop].view(p.shape))
        self._versions = [p._version for p in self.params]
        self.generation += 1

    def split(self, v: np.ndarray, batch: int | None = None) -> list[torch.Tensor]:
        """A flat vector (or ``batch`` rows of them) as tensors shaped like the parameters."""
        source = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64))
        lead = () if batch is None else (batch,)
        return [
            source[..., start:stop].reshape(lead + p.shape).to(dtype=p.dtype, device=p.device)
            for p, start, stop in zip(self.params, self.spec.offsets, self.spec.offsets[1:])
        ]


def flatten(tensors: Sequence[torch.Tensor], batch: int | None = None) -> np.ndarray:
    """Tensors (each with an optional leading batch axis) as one float64 array."""
    lead = (-1,) if batch is None else (batch, -1)
    parts = [t.detach().reshape(lead).to("cpu", torch.float64) for t in tensors]
    return torch.cat(parts, dim=-1).numpy()


def vjp(
    outputs: Sequence[torch.Tensor],
    params: Sequence[torch.Tensor],
    cotangents: Sequence[torch.Tensor],
    *,
    batch: int | None = None,
    create_graph: bool = False,
    retain_graph: bool | None = None,
) -> list[torch.Tensor]:
    """``sum_i cotangent_i . d(output_i)/d(params)``, zero where the outputs ignore a parameter.

    With ``batch``, each cotangent has a leading axis of that length and so has each result.
    """
    lead = () if batch is None else (batch,)
    pairs = [(out, cot) for out, cot in zip(outputs, cotangents) if out.requires_grad]
    grads: Sequence[torch.Tensor | None] = [None] * len(params)
    if pairs:
        outs, cots = zip(*pairs)
        grads = torch.autograd.grad(
            outs, params, cots, create_graph=create_graph, retain_graph=retain_graph, is_grads_batched=batch is not None, allow_unused=True
        )
    return [torch.zeros(lead + p.shape, dtype=p.dtype, device=p.device) if g is None else g for g, p in zip(grads, params)]


def hessian_of(grads: Sequence[torch.Tensor], writer: ParameterWriter) -> np.ndarray:
    """The full Hessian from gradients that carry their graph: n HVPs in one batched pass."""
    n = writer.spec.size
    rows = vjp(grads, writer.params, writer.split(np.eye(n), batch=n), batch=n, retain_graph=True)
    return flatten(rows, batch=n)
