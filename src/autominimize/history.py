"""What happened during a solve: every evaluation and every iteration, as it happens.

The problem layer records each evaluation and the driver each iteration in the solve's
:class:`History` (``res.history``, which the SQLite log writes out), and tells a list of
observers: the progress bar, the user's ``loss_callback`` and ``observers=``. With neither,
nothing is recorded.
"""

from __future__ import annotations

import math
import time
from array import array
from typing import TYPE_CHECKING, Any, Iterable, NamedTuple, Protocol, Sequence

import numpy as np

if TYPE_CHECKING:
    from .problem import Counters

__all__ = ["Evaluation", "Iteration", "History", "Observer", "EVALUATION_KINDS"]

#: What one evaluation computed.
#: ``failed``: with ``error_handling='continue'``, a point where fun raised or was not finite
#: (its ``f`` is +inf). ``repeat``: a torch optimizer's closure run again at a point it had
#: evaluated, because a later point overwrote the parameters its graph was built on.
EVALUATION_KINDS = ("value", "value_and_gradient", "gradient", "hvp", "hessian", "finite-difference", "failed", "repeat")


class Evaluation(NamedTuple):
    """One evaluation: what it computed, at what time (seconds since the start), with what f."""

    kind: str
    time: float
    f: float
    grad_norm: float


class Iteration(NamedTuple):
    """One iteration of the method, as its callback reported it."""

    nit: int
    time: float
    f: float
    grad_norm: float
    nfev: int
    x: np.ndarray


class Observer(Protocol):
    """Told of every evaluation and iteration. ``x`` is a flat copy that is never modified
    afterwards: an observer may keep it, and must not change it."""

    def evaluation(self, kind: str, x: np.ndarray, f: float, grad: np.ndarray | None, count: int) -> None: ...

    def iteration(self, nit: int, x: np.ndarray, f: float, grad: np.ndarray | None, counts: Counters) -> None: ...


def grad_norm(grad: np.ndarray | None) -> float:
    # sqrt(g.dot(g)) is several times cheaper than np.linalg.norm (and twice as cheap as g @ g)
    return math.sqrt(grad.dot(grad)) if grad is not None else math.nan


class History:
    """Every evaluation and iteration of one solve (``res.history``).

    Attributes
    ----------
    evaluations : list of Evaluation
        ``kind`` is one of ``EVALUATION_KINDS``; ``grad_norm`` is NaN where no gradient was
        computed; a finite-difference gradient of n evaluations is one entry per evaluation.
    iterations : list of Iteration
        With ``x`` as the flat vector (``spec.restore`` gives x0's structure).
    leaves : list of (name, start, stop)
        Where each leaf of x0 lies in the flat vector (``x0['U']`` is ``x[start:stop]``).
    best : (int, ndarray or None)
        The sequence number (from 1) and flat x of the evaluation with the lowest f so far.
    recorded : int
        Evaluations recorded, counting the rows a log has written and removed.

    Examples
    --------
    >>> import numpy as np, autominimize as am
    >>> res = am.minimize(lambda x: ((x - 1) ** 2).sum(), np.zeros(2), backend="numpy",
    ...                   jac=lambda x: 2 * (x - 1))
    >>> res.history.iterations[-1].f < res.history.iterations[0].f
    True
    >>> bool(res.history.column("f")[-1] == res.history.iterations[-1].f)
    True
    """

    # The solve's objective appends to typed columns (cheap on the hot path, 25 bytes per
    # evaluation, and written to a log as they are); the named rows are built when someone
    # reads ``evaluations`` or ``iterations``, and only for rows not built before. It hands
    # over gradient norms, never gradients: a history keeps no large array alive but the
    # iterates it was asked to keep.
    def __init__(
        self,
        evaluations: Iterable[tuple] = (),
        iterations: Iterable[tuple] = (),
        leaves: list[tuple[str, int, int]] | None = None,
        keep_points: bool = True,
    ) -> None:
        #: kind (an index into EVALUATION_KINDS), time, f, grad_norm; grad_norm is appended
        #: last, so its length counts the complete rows while another thread reads
        self.evaluation_columns = (bytearray(), array("d"), array("d"), array("d"))
        #: nit, time, f, grad_norm, nfev, njev, then x (a list; None where not kept) last
        self.iteration_columns = (array("q"), array("d"), array("d"), array("d"), array("q"), array("q"), [])
        self._evaluations: list[Evaluation] = []
        self._iterations: list[Iteration] = []
        self.leaves = list(leaves or [])
        self.keep_points = keep_points  # False: iterations record x as None
        self.start = time.perf_counter()
        self.recorded = 0  # evaluations recorded (rows a log has taken away included)
        # (sequence number from 1, x) of the best evaluation so far, replaced as one object:
        # a log's writer thread reads it while the solve runs
        self.best: tuple[int, np.ndarray | None] = (0, None)
        self._best_f = math.inf
        for kind, t, f, norm in evaluations:
            self.evaluation_columns[0].append(_KIND_CODES[kind])
            for column, value in zip(self.evaluation_columns[1:], (t, f, norm)):
                column.append(value)
        for nit, t, f, norm, nfev, x, *njev in iterations:  # an Iteration, or a row with njev
            for column, value in zip(self.iteration_columns, (nit, t, f, norm, nfev, njev[0] if njev else 0, x)):
                column.append(value)

    @classmethod
    def from_columns(cls, evaluations: Sequence, iterations: Sequence, **kwargs: Any) -> "History":
        """A history holding these columns, in the order of ``evaluation_columns`` and
        ``iteration_columns``: NumPy arrays of their types, and the iterates as a list."""
        history = cls(**kwargs)
        for column, values in zip(history.evaluation_columns + history.iteration_columns, [*evaluations, *iterations]):
            if isinstance(column, list):
                column.extend(values)
            elif isinstance(column, bytearray):
                column.extend(np.asarray(values, dtype=np.uint8).tobytes())
            else:
                column.frombytes(np.asarray(values, dtype=column.typecode).tobytes())
        return history

    @property
    def evaluations(self) -> list[Evaluation]:
        named = self._evaluations
        kinds, times, values, norms = self.evaluation_columns
        if len(named) < len(norms):
            start, stop = len(named), len(norms)
            named.extend(
                Evaluation(EVALUATION_KINDS[k], t, f, n)
                for k, t, f, n in zip(kinds[start:stop], times[start:stop], values[start:stop], norms[start:stop])
            )
        return named

    @property
    def iterations(self) -> list[Iteration]:
        named = self._iterations
        columns = self.iteration_columns
        if len(named) < len(columns[6]):
            start, stop = len(named), len(columns[6])
            nit, times, values, norms, nfev, _, points = (column[start:stop] for column in columns)
            named.extend(map(Iteration, nit, times, values, norms, nfev, points))
        return named

    def add_evaluation(self, kind: str, x: np.ndarray, f: float, norm: float, count: int = 1) -> None:
        """Record ``count`` evaluations of one kind at ``x`` (a copy nobody modifies)."""
        self.recorded += count
        if f < self._best_f:  # before the row is added: a log taking rows finds the best among them
            self._best_f = f
            self.best = (self.recorded, x)
        kinds, times, values, norms = self.evaluation_columns
        t = time.perf_counter() - self.start
        if count == 1:
            kinds.append(_KIND_CODES[kind])
            times.append(t)
            values.append(f)
            norms.append(norm)
        else:
            kinds.extend(bytes((_KIND_CODES[kind],)) * count)
            times.extend([t] * count)
            values.extend([f] * count)
            norms.extend([norm] * count)

    def add_iteration(self, nit: int, x: np.ndarray, f: float, norm: float, nfev: int, njev: int) -> None:
        """Record an iteration; ``x`` is kept as it is (a copy nobody modifies)."""
        nits, times, values, norms, nfevs, njevs, points = self.iteration_columns
        nits.append(nit)
        times.append(time.perf_counter() - self.start)
        values.append(f)
        norms.append(norm)
        nfevs.append(nfev)
        njevs.append(njev)
        points.append(x if self.keep_points else None)

    def column(self, name: str, of: str = "iterations") -> np.ndarray:
        """One field of every iteration (or evaluation) as an array, e.g. ``column('f')``."""
        if of == "iterations":
            columns, fields = self.iteration_columns, ("nit", "time", "f", "grad_norm", "nfev", "njev", "x")
        else:
            columns, fields = self.evaluation_columns, ("kind", "time", "f", "grad_norm")
        if name not in fields:
            raise ValueError(f"name={name!r} is not a column of the {of}; use one of {fields}.")
        index = fields.index(name)
        values = columns[index][: len(columns[-1])]  # a copy: the solve may append meanwhile
        if name == "kind":
            return np.asarray(EVALUATION_KINDS)[np.frombuffer(values, np.uint8)]
        return np.array(values)

    def __repr__(self) -> str:
        return f"History({len(self.evaluation_columns[3])} evaluations, {len(self.iteration_columns[6])} iterations)"


_KIND_CODES = {kind: code for code, kind in enumerate(EVALUATION_KINDS)}


class LossCallback:
    """TF1's ``loss_callback(f)``: called after every evaluation that computed a value."""

    def __init__(self, callback: Any):
        self.callback = callback

    def evaluation(self, kind: str, x: np.ndarray, f: float, grad: np.ndarray | None, count: int) -> None:
        if kind in ("value", "value_and_gradient"):
            self.callback(f)

    def iteration(self, nit: int, x: np.ndarray, f: float, grad: np.ndarray | None, counts: Counters) -> None:
        pass
