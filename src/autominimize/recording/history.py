"""What happened during a solve: every evaluation and every iteration, as it happens.

The problem layer records each evaluation and the driver each iteration in the solve's
:class:`History` (``res.history``, which the SQLite log writes out), and tells a list of
observers: the progress bar, the user's ``loss_callback`` and ``observers=``. With neither,
nothing is recorded.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, NamedTuple, Protocol, Sequence

import numpy as np

from ..validation import check_history_rows, check_switch, is_one_of

if TYPE_CHECKING:
    from ..problem import Counters

__all__ = ["Evaluation", "Iteration", "History", "Observer", "EVALUATION_KINDS", "POINT_BUDGET"]

#: bytes of iterates (x) a history keeps by default: past it, every other kept iterate is
#: let go and the spacing between kept ones doubles
POINT_BUDGET = 32 * 2**20

#: the clock of the rows, read without a module attribute lookup at every evaluation
_clock = time.perf_counter

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
    afterwards: an observer may keep it, and must not change it. An observer told of
    iterations only sets ``evaluation = None`` (an evaluation is the cheapest record a solve
    makes, and a call per evaluation is a cost on a fast objective)."""

    def evaluation(self, kind: str, x: np.ndarray, f: float, grad: np.ndarray | None, count: int) -> None: ...

    def iteration(self, nit: int, x: np.ndarray, f: float, grad: np.ndarray | None, counts: Counters) -> None: ...


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
    point_budget : int or None
        Bytes of iterates kept (``POINT_BUDGET``, 32 MB, by default; None keeps every one).
        Once the iterates kept would exceed it, every other one is let go (its ``x``
        becomes None) and from then on only every 2nd, 4th, ... iteration keeps its x, so
        the iterates kept stay spread evenly over the run, the first among them.

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

    # The solve's objective appends plain tuples: in a solve, between the compiled objective
    # and scipy's Fortran, the interpreter's caches are cold, and one append of a new tuple
    # costs half of what appending to four typed columns does. The named rows are built when
    # someone reads ``evaluations`` or ``iterations``, and only for rows not built before.
    # The history gets gradient norms, never gradients: it keeps no large array alive but
    # the iterates it was asked to keep.
    def __init__(
        self,
        evaluations: Iterable[tuple] = (),
        iterations: Iterable[tuple] = (),
        leaves: list[tuple[str, int, int]] | None = None,
        keep_points: bool = True,
        point_budget: int | None = POINT_BUDGET,
    ) -> None:
        if evaluations != () or iterations != () or leaves is not None or point_budget is not None and point_budget is not POINT_BUDGET:
            evaluations, iterations = check_history_rows(evaluations, iterations, leaves, point_budget, EVALUATION_KINDS)
        #: (kind, time, f, grad_norm) per evaluation
        self._evaluation_rows: list[tuple] = [tuple(row) for row in evaluations] if evaluations != () else []
        #: (nit, time, f, grad_norm, nfev, x, njev) per iteration: an Iteration is the first six
        self._iteration_rows: list[tuple] = [(*row[:6], row[6] if len(row) > 6 else 0) for row in iterations] if iterations != () else []
        self._evaluations: list[Evaluation] = []
        self._iterations: list[Iteration] = []
        self.leaves = list(leaves or [])
        # False: iterations record x as None (a bool costs no call: a history is made for every solve)
        self.keep_points = keep_points if type(keep_points) is bool else check_switch(keep_points, "keep_points")
        self.point_budget = point_budget
        self._stride = 1  # rows whose index is a multiple of it keep their x
        self._kept: list[int] = []  # indices of the rows that kept x, up to _checked
        self._checked = 0  # rows looked at by the last thinning
        # the number of rows at which the iterates could exceed the budget
        self._check_at = 1 if keep_points and point_budget is not None else sys.maxsize
        self.start = time.perf_counter()
        self.recorded = 0  # evaluations recorded (rows a log has taken away included)
        # (sequence number from 1, x) of the best evaluation so far, replaced as one object:
        # a log's writer thread reads it while the solve runs
        self.best: tuple[int, np.ndarray | None] = (0, None)
        self._best_f = math.inf

    @classmethod
    def from_columns(cls, evaluations: Sequence, iterations: Sequence, **kwargs: Any) -> "History":
        """A history of these columns: ``(kind codes, time, f, grad_norm)`` and ``(nit, time,
        f, grad_norm, nfev, njev, x)``, NumPy arrays but for x (a list of arrays or None)."""
        kinds, *numbers = evaluations
        nit, times, values, norms, nfev, njev, points = iterations
        names = np.asarray(EVALUATION_KINDS)[np.asarray(kinds, dtype=np.intp)].tolist()
        kwargs.setdefault("point_budget", None)
        history = cls(**kwargs)  # the columns are the library's own: their rows are taken as they are, unchecked
        history._evaluation_rows = list(zip(names, *(np.asarray(column).tolist() for column in numbers)))
        columns = (np.asarray(column).tolist() for column in (nit, times, values, norms, nfev))
        history._iteration_rows = list(zip(*columns, points, np.asarray(njev).tolist()))
        return history

    @property
    def evaluations(self) -> list[Evaluation]:
        return _named(self._evaluations, self._evaluation_rows, Evaluation._make)

    @property
    def iterations(self) -> list[Iteration]:
        return _named(self._iterations, self._iteration_rows, _iteration)

    def add_evaluation(self, kind: str, x: np.ndarray, f: float, norm: float, count: int = 1) -> None:
        """Record ``count`` evaluations of one kind at ``x`` (a copy nobody modifies)."""
        self.recorded += count
        if f < self._best_f:  # before the row is added: a log taking rows finds the best among them
            self._best_f = f
            self.best = (self.recorded, x)
        if count == 1:
            self._evaluation_rows.append((kind, _clock() - self.start, f, norm))
        else:
            self._evaluation_rows.extend([(kind, _clock() - self.start, f, norm)] * count)

    def add_iteration(self, nit: int, x: np.ndarray, f: float, norm: float, nfev: int, njev: int) -> None:
        """Record an iteration; ``x`` is kept as it is (a copy nobody modifies)."""
        self._iteration_rows.append((nit, time.perf_counter() - self.start, f, norm, nfev, x if self.keep_points else None, njev))
        if len(self._iteration_rows) >= self._check_at:
            self._thin_points()

    def expect_points(self, nbytes: int) -> None:
        """Iterates of ``nbytes`` each are coming: the first look at the kept iterates waits
        until they could exceed the budget (where it took the first iteration's row, four
        Python calls a solve), as it would find nothing to let go before."""
        if self._check_at == 1 and not self._iteration_rows:
            capacity = self.point_budget // max(nbytes, 1)
            if capacity >= 2:  # else the first row is looked at, and lets go of every iterate
                self._check_at = capacity

    def row_appender(self) -> Callable[[tuple], None]:
        """The append of the evaluation rows, for a caller that writes a row without f itself
        (``(kind, time since start, nan, nan)``, ``kind`` a Hessian-vector product or
        Hessian), having added one to ``recorded``: a Python call fewer per evaluation than
        :meth:`add_evaluation`, at thousands of products a solve. The list object stays the
        same for the whole run (a log takes rows by deleting them in place)."""
        return self._evaluation_rows.append

    def _thin_points(self) -> None:
        """Let go of iterates until those kept fill at most half the budget (each call costs
        what the rows since the last one did, so it adds a constant per iteration).

        Called once the iteration rows reach ``_check_at``: by :meth:`add_iteration`, and by
        the objective's scipy callback, which appends its rows itself."""
        rows = self._iteration_rows
        new = [i for i in range(self._checked, len(rows)) if rows[i][5] is not None]
        if not new and not self._kept:
            self._check_at = len(rows) + 1
            return
        size = rows[new[-1] if new else self._kept[-1]][5].nbytes or 1
        capacity = self.point_budget // size
        kept = self._kept + new
        if capacity < 2:  # not even two iterates fit: keep none
            kept = self._let_go(kept, [])
        else:
            kept = self._let_go(kept, [i for i in kept if i % self._stride == 0])
            while len(kept) > capacity // 2:
                self._stride *= 2
                kept = self._let_go(kept, [i for i in kept if i % self._stride == 0])
        self._kept, self._checked = kept, len(rows)
        self._check_at = len(rows) + max(1, capacity - len(kept))

    def _let_go(self, kept: list[int], keep: list[int]) -> list[int]:
        """Set x to None in the rows of ``kept`` not in ``keep``; return ``keep``."""
        rows = self._iteration_rows
        for i in set(kept).difference(keep):
            rows[i] = (*rows[i][:5], None, rows[i][6])
            if i < len(self._iterations):
                self._iterations[i] = self._iterations[i]._replace(x=None)
        return keep

    def column(self, name: str, of: str = "iterations") -> np.ndarray:
        """One field of every iteration (or evaluation) as an array, e.g. ``column('f')``."""
        if not is_one_of(of, ("iterations", "evaluations")):
            raise ValueError(f"of={of!r} is not one of ('iterations', 'evaluations').")
        if of == "iterations":
            rows, fields = self._iteration_rows, ("nit", "time", "f", "grad_norm", "nfev", "x", "njev")
        else:
            rows, fields = self._evaluation_rows, Evaluation._fields
        if not is_one_of(name, fields):
            raise ValueError(f"name={name!r} is not a column of the {of}; use one of {fields}.")
        index = fields.index(name)
        return np.array([row[index] for row in rows])

    def __repr__(self) -> str:
        return f"History({len(self._evaluation_rows)} evaluations, {len(self._iteration_rows)} iterations)"


def _named(named: list, rows: list[tuple], make: Callable[[tuple], tuple]) -> list:
    """Extend ``named`` with the rows not converted yet and return it (the same list each time)."""
    if len(named) < len(rows):
        named.extend(map(make, rows[len(named) :]))
    return named


def _iteration(row: tuple) -> Iteration:
    return Iteration._make(row[:6])


class LossCallback:
    """TF1's ``loss_callback(f)``: called after every evaluation that computed a value."""

    def __init__(self, callback: Any):
        self.callback = callback

    def evaluation(self, kind: str, x: np.ndarray, f: float, grad: np.ndarray | None, count: int) -> None:
        if kind in ("value", "value_and_gradient"):
            self.callback(f)

    def iteration(self, nit: int, x: np.ndarray, f: float, grad: np.ndarray | None, counts: Counters) -> None:
        pass
