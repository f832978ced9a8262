"""The PyTorch objective at the rows of a batch, in one call: :class:`TorchBatched`."""

from __future__ import annotations

from typing import Any

import numpy as np

from .private_torch import RowMap
from .torch_compiled import TorchScalar, _torch

__all__ = ["TorchBatched", "ONE_THREAD_NUMBERS"]

#: Batches of at most this many numbers (torch's own grain size for splitting an elementwise
#: op) are evaluated on one intra-op thread: torch splits some small ops all the same, and
#: waking its pool costs more than the work. torch.cos on 150 × 10 float64 on a 2-core
#: machine shared with other work: 14–65 µs on one thread, 1 170–1 410 µs on two; a batched
#: differential evolution of 10-D Rastrigin (100 generations of 150): 40–61 ms against 356–427 ms.
ONE_THREAD_NUMBERS = 32_768


class TorchBatched(TorchScalar):
    """The scalar objective at the rows of a batch, evaluated under ``no_grad``: batches serve
    derivative-free population methods. ``traces`` counts the batched calls (torch runs
    eagerly, so each call traces).

    A small batch (at most :data:`ONE_THREAD_NUMBERS` numbers) runs on one torch thread, the
    caller's setting restored after the call.

    The first batch runs the function mapped over the rows with ``torch.func.vmap``, then once
    more on the whole batch as it is, every leaf with a leading batch axis. If that call
    returns one value per row, equal to the mapped values, later batches call the function
    on the whole batch directly, its operations no longer batched one by one by vmap (10-D
    Rosenbrock at 150 points: about 25 µs against 45 µs). A function that reduces without
    an axis, indexes the point's first axis or mixes rows fails that comparison and stays
    mapped.
    """

    traces = 0
    _mapped = None
    #: whether later batches call the function on the whole batch (None: not probed yet)
    _whole: bool | None = None

    def __call__(self, points: np.ndarray) -> np.ndarray:
        self.traces += 1
        torch = _torch()
        threads = torch.get_num_threads()
        if threads == 1 or np.size(points) > ONE_THREAD_NUMBERS:
            return self._evaluate(points)
        torch.set_num_threads(1)  # 0.1 µs each way
        try:
            return self._evaluate(points)
        finally:
            torch.set_num_threads(threads)

    def _evaluate(self, points: np.ndarray) -> np.ndarray:
        if self._whole:
            return self._whole_batch(points)
        torch = _torch()
        points = np.ascontiguousarray(points, dtype=np.float64)
        with torch.no_grad():
            if self._mapped is None:
                self._mapped = RowMap(self.flat_fun)
            mapped = self._mapped(self._tensor(points))
            if self._whole is None:
                self._whole = _same_values(self._probe(self._tensor(points)), mapped)
        return self._values(mapped)

    def _whole_batch(self, points: np.ndarray) -> np.ndarray:
        """The values of one call on the whole batch, without gradients.

        Every generation of differential evolution comes here, so it makes few torch calls:
        grad mode is switched by ``torch.set_grad_enabled`` called as a function (0.4 µs,
        where entering and leaving ``torch.no_grad()`` costs 1.5 µs).
        """
        torch = _torch()
        rows = np.array(points, dtype=np.float64, order="C")  # its own copy: fun may write into it
        grad = torch.is_grad_enabled()
        torch.set_grad_enabled(False)
        try:
            out = self._on_whole_batch(torch.from_numpy(rows) if self._zero_copy else self._tensor(rows))
        finally:
            torch.set_grad_enabled(grad)
        return self._values(out)

    def _on_whole_batch(self, rows: Any) -> Any:
        """The function called once with every leaf of shape ``(S, *leaf.shape)``."""
        if self._flat_leaf:
            return self.call(self.spec.unflatten_leaves([rows]))
        count = rows.shape[0]
        leaves = [
            rows[:, start:stop].reshape((count,) + shape) for shape, start, stop in zip(self.spec.shapes, self.spec.offsets, self.spec.offsets[1:])
        ]
        return self.call(self.spec.unflatten_leaves(leaves))

    def _probe(self, rows: Any) -> Any:
        """The function on the whole batch, or None where calling it so raises."""
        try:
            return self._on_whole_batch(rows)
        except Exception:
            return None

    def _values(self, out: Any) -> np.ndarray:
        if self._zero_copy and out.dtype == _torch().float64:  # one copy, no conversion to dispatch
            return out.detach().numpy().copy()
        return self._numpy(out)


def _same_values(whole: Any, mapped: Any) -> bool:
    """Whether the whole-batch call gave a tensor of the mapped values' shape and dtype,
    equal to them (NaN where they are NaN)."""
    torch = _torch()
    if not isinstance(whole, torch.Tensor) or whole.shape != mapped.shape or whole.dtype != mapped.dtype:
        return False
    return bool(((whole == mapped) | (whole.isnan() & mapped.isnan())).all())
