"""Dropping the members of a batched solve that have stopped, so they cost no more evaluations.

A batched solver keeps one row per member in a state of arrays (a NamedTuple whose fields all
have the member axis first, with a ``reason`` field that is 0 while the member runs). Masking
alone would keep evaluating every member until the slowest stops; :class:`ActiveRows` moves
the stopped rows to the host between iterations and gathers the running ones into a smaller
state, then puts every member back in its place at the end.

On JAX each batch size is one compilation of the solver's pieces, so the running rows are
padded to a power of four (at least 64) by repeats of a running member; the padding rows are
dropped at the end. Other namespaces gather exactly the running rows, once at most a share
``drop_at`` of the rows still run (:data:`KEEP_SHARE` for an evaluation over the whole batch):
until then the stopped rows stay in the batch, masked (they keep their final values and
counts), so a batch whose members stop one by one is copied a few times instead of at every
step where one stops. An evaluation that loops over the rows, where a stopped row costs a
whole member's evaluation, drops them at once (``drop_at=1``).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import array_api_compat
import numpy as np

__all__ = ["ActiveRows", "KEEP_SHARE", "bucket", "gather_rows", "to_host"]

#: The running share of the rows at or below which the stopped rows are dropped, for an
#: evaluation over the whole batch (vectorized NumPy, torch). 10 000 bounded decay fits
#: (benchmarks/batched.py) copy the batch 10 times instead of 16; CPU time, median of 5
#: interleaved runs: torch 0.328 s against 0.350 s, vectorized NumPy 0.209 s against 0.208 s.
KEEP_SHARE = 0.75


def bucket(count: int) -> int:
    """The compiled size for ``count`` running members on JAX: a power of four, at least 64.

    Each size is one compilation of the solver's pieces (seconds on CPU); powers of four keep a
    batch of 10 000 to five sizes, at the price of at most 4× padding rows once few members run.
    """
    if count == 0:
        return 0
    size = 64
    while size < count:
        size *= 4
    return size


def to_host(x: Any) -> np.ndarray:
    """A framework array as a NumPy array on the host."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    return np.asarray(x)


def gather_rows(xp: Any, tree: tuple, rows: Any) -> tuple:
    """``(state, data)`` at the rows ``rows``: every field of the state, every array of data."""
    state, data = tree
    return type(state)(*(xp.take(v, rows, axis=0) for v in state)), tuple(xp.take(d, rows, axis=0) for d in data)


class ActiveRows:
    """The rows of a batched state that still run, and the stopped members' final rows.

    Parameters
    ----------
    count : int
        Members in the batch (rows of the first state).
    padded : bool
        Gather to :func:`bucket` sizes (JAX, where each size is compiled) instead of exactly
        the running rows.
    whole : bool
        Keep every row until all members have stopped (masking only), for solvers where a new
        size costs more than the rows it saves.
    drop_at : float
        Without ``padded`` or ``whole``: gather the running rows once their share of the rows
        is at most this (1: whenever a member has stopped).

    Examples
    --------
    >>> import numpy as np
    >>> from typing import NamedTuple
    >>> class State(NamedTuple):
    ...     x: np.ndarray
    ...     reason: np.ndarray
    >>> rows = ActiveRows(3, padded=False)
    >>> take = lambda tree, idx: (State(*(v[idx] for v in tree[0])), tree[1])
    >>> state, _ = rows.compact(State(np.arange(3.0), np.array([0, 2, 0])), (), take)
    >>> state.x.tolist()
    [0.0, 2.0]
    >>> rows.compact(state._replace(x=state.x + 10, reason=np.array([1, 1])), (), take)
    (None, ())
    >>> rows.result(State).x.tolist(), rows.result(State).reason.tolist()
    ([10.0, 1.0, 12.0], [1, 2, 1])
    """

    def __init__(self, count: int, *, padded: bool, whole: bool = False, drop_at: float = KEEP_SHARE) -> None:
        self.count = count
        self.index = np.arange(count)  # the member of each row; -1 for a padding row
        self.padded, self.whole, self.drop_at = padded, whole, drop_at
        self.finished: list[tuple[np.ndarray, Any]] = []
        #: how many times the running rows were gathered into a smaller batch
        self.compactions = 0

    def compact(self, state: Any, data: tuple, gather: Callable[[tuple, Any], tuple]) -> tuple[Any, tuple]:
        """``(state, data)`` without the stopped rows once dropping them pays (a smaller bucket
        on JAX, at most a share ``drop_at`` of the rows running elsewhere), or ``(None, data)``
        once every member has stopped.

        ``gather((state, data), rows)`` takes the rows ``rows`` (an integer array of the
        state's namespace and device) of every field of the state and of every array in
        ``data`` (per-member arrays that follow the rows).
        """
        member = self.index >= 0
        running = (to_host(state.reason) == 0) & member
        count, size = int(running.sum()), running.size
        target = size if self.whole else bucket(count) if self.padded else count if count <= self.drop_at * size else size
        if target >= size and count > 0:
            return state, data
        host = type(state)(*(to_host(v) for v in state))
        stopped = np.flatnonzero(member & ~running)
        self.finished.append((self.index[stopped], type(state)(*(v[stopped] for v in host))))
        if count == 0:
            return None, data
        rows = np.flatnonzero(running)
        rows = np.concatenate([rows, np.full(target - count, rows[0])])
        xp = array_api_compat.array_namespace(state.reason)
        state, data = gather((state, data), xp.asarray(rows, device=array_api_compat.device(state.reason)))
        self.compactions += 1
        self.index = np.where(np.arange(target) < count, self.index[rows], -1)
        return state, data

    def latest(self, state: Any) -> Any:
        """Every member's latest row: the stopped members' final rows and the others' rows in
        ``state``, as NumPy arrays in the order of the first state. What a Ctrl-C attaches:
        ``state`` is the last state an iteration completed."""
        host = type(state)(*(to_host(v) for v in state))
        parts = list(self.finished)
        if len(host[0]) == self.index.size:  # else interrupted between a gather and its use: the stopped rows are in finished
            parts.append((self.index[self.index >= 0], type(state)(*(v[self.index >= 0] for v in host))))
        out = type(state)(*(np.full((self.count,) + v.shape[1:], np.nan if v.dtype.kind == "f" else 0, v.dtype) for v in host))
        for index, rows in parts:  # in order: a row of ``state`` wins over an earlier copy
            for field, values in zip(out, rows):
                field[index] = values
        return out

    @contextlib.contextmanager
    def latest_attached(self, current: Callable[[], Any]) -> Iterator[None]:
        """A Ctrl-C or an exception inside the block (the user's fun failing) propagates with
        :meth:`latest` of ``current()`` in ``exc.autominimize_rows``."""
        try:
            yield
        except BaseException as exc:
            exc.autominimize_rows = self.latest(current())
            raise

    def result(self, state_type: type) -> Any:
        """Every member's final row, as NumPy arrays in the order of the first state: each
        stopped part written into its rows (a concatenation, then a reordering, copied the
        Jacobians twice)."""
        first = self.finished[0][1]
        out = state_type(*(np.empty((self.count,) + v.shape[1:], v.dtype) for v in first))
        for index, rows in self.finished:
            for field, values in zip(out, rows):
                field[index] = values
        return out
