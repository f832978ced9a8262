"""Mini-batches (``data=``) of a stochastic native run, and the mean loss of each epoch."""

from __future__ import annotations

from typing import Any

__all__ = ["Batches"]

_END = object()


class Batches:
    """Mini-batches with one batch of look-ahead, so an epoch ends with its last step.

    ``epoch`` counts the passes over ``data`` completed; :meth:`record` adds a step's loss
    to the epoch's mean.
    """

    def __init__(self, data: Any):
        self.data = data
        self.epoch = 0
        self._iterator = iter(data)
        self._next = next(self._iterator, _END)
        if self._next is _END:
            raise ValueError("data= holds no mini-batch.")
        self._loss: Any = 0.0
        self._steps = 0
        self._last_epoch_mean: Any = None

    def peek(self) -> Any:
        """The next mini-batch, without taking it."""
        return self._next

    def take(self) -> Any:
        """The next mini-batch; after the last one of an epoch, the first one again."""
        if self._next is _END:
            self._iterator = iter(self.data)
            self._next = next(self._iterator, _END)
            if self._next is _END:
                raise ValueError(
                    "data= was exhausted after one epoch: it is a one-shot iterator. Pass a "
                    "re-iterable (a list, a torch DataLoader, ...) to run several epochs."
                )
        batch, self._next = self._next, next(self._iterator, _END)
        if self._next is _END:
            self.epoch += 1
        return batch

    def record(self, loss: Any) -> None:
        """Add the loss of the step just taken to its epoch's mean."""
        self._loss = self._loss + loss
        self._steps += 1
        if self._next is _END:
            self._last_epoch_mean = self._loss / self._steps
            self._loss, self._steps = 0.0, 0

    def mean_loss(self, default: Any) -> Any:
        """The mean loss of the last complete epoch, else of this epoch's steps, else ``default``."""
        if self._last_epoch_mean is not None:
            return self._last_epoch_mean
        return self._loss / self._steps if self._steps else default
