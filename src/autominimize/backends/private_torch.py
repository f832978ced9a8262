"""PyTorch's private entry points, each behind a named function with its public fallback.

Two hot paths of the torch backend enter PyTorch below its public API, where the public
call spends a large share of a cheap objective's time in Python. Each entry point is looked
up on first use; where this torch lacks it (ImportError or AttributeError), the public call
serves, with the same numbers. The reasons were measured on the project's 2-core machine
with torch 2.13 (CPU time per call, the least of 40 rounds of 200 calls, one torch thread):

* :func:`scalar_backward`: the gradient of a small MLP's loss (4-8-1, 40 parameters, 16
  samples), forward and backward pass, took 147 µs through ``torch.autograd.grad`` and
  118 µs through the autograd engine's own entry point.
* :class:`RowMap`: Rosenbrock at 150 points of dimension 10 (a population of differential
  evolution) took 93 µs through ``torch.func.vmap`` and 46 µs through the functorch
  primitives it is made of.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

__all__ = ["RowMap", "scalar_backward"]


def scalar_backward(out: Any, xt: Any) -> Any:
    """d(out)/d(xt) for a 0-d ``out`` that requires grad, freeing the graph; None where
    ``out`` does not depend on ``xt``.

    ``torch.autograd.grad`` normalises its arguments and checks the seed gradient in Python
    before it calls the autograd engine; with one 0-d output and one input there is nothing
    to normalise, so the engine is called directly, as ``torch.autograd.grad`` calls it.
    Public fallback: ``torch.autograd.grad(out, xt, allow_unused=True)``.
    """
    import torch

    run_backward = _engine_run_backward()
    if run_backward is None:
        (grad,) = torch.autograd.grad(out, xt, allow_unused=True)
        return grad
    # outputs, seed gradients, keep graph, create graph, inputs, allow unused, accumulate
    (grad,) = run_backward((out,), (torch.ones_like(out),), False, False, (xt,), True, False)
    return grad


@functools.cache
def _engine_run_backward() -> Callable | None:
    """``torch.autograd.graph._engine_run_backward``, or None where this torch lacks it."""
    try:
        from torch.autograd.graph import _engine_run_backward as run_backward
    except (ImportError, AttributeError):
        return None
    return run_backward


class RowMap:
    """``fun`` mapped over the rows of one tensor: ``torch.func.vmap(fun)`` for one tensor in
    and one tensor out.

    ``torch.func.vmap`` flattens and checks the argument and output pytrees in Python at
    every call. With one tensor in and one tensor out there is nothing to flatten, so after
    a first call through ``torch.func.vmap`` (which loads its decompositions and checks the
    output) the functorch primitives it uses are entered directly: one vmap level, the batch
    dimension added to the rows and removed from the output, the level left even on error.
    Public fallback: ``torch.func.vmap(fun)`` at every call.
    """

    def __init__(self, fun: Callable[[Any], Any]):
        import torch

        self.fun = fun
        self._mapped = torch.func.vmap(fun)
        self._primitives: tuple | None = None

    def __call__(self, rows: Any) -> Any:
        if self._primitives is None:
            out = self._mapped(rows)
            self._primitives = _vmap_primitives()
            return out
        if not self._primitives:
            return self._mapped(rows)
        enter, leave, add_batch_dim, remove_batch_dim = self._primitives
        size = rows.shape[0]
        level = enter(size, "error")  # torch.func.vmap's default randomness
        try:
            return remove_batch_dim(self.fun(add_batch_dim(rows, 0, level)), level, size, 0)
        finally:
            leave()


def _vmap_primitives() -> tuple:
    """The functorch calls ``torch.func.vmap`` is made of, or () where this torch lacks them."""
    try:
        from torch._C._functorch import _add_batch_dim, _remove_batch_dim, _vmap_decrement_nesting, _vmap_increment_nesting
    except (ImportError, AttributeError):
        return ()
    return _vmap_increment_nesting, _vmap_decrement_nesting, _add_batch_dim, _remove_batch_dim
