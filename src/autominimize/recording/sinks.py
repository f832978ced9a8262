"""What records a solve: its history, SQLite log, progress bar and loss callback.

:func:`recorders` turns ``history=``, ``log=``, ``progress=`` and ``loss_callback=`` into the
observers the problem layer tells of evaluations and iterations, and the :class:`Sinks` that
open the log's run at the start and close everything at the end.
"""

from __future__ import annotations

import operator
import os
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..params import ParamSpec
from ..problem import Objective
from ..validation import check_switch
from .history import POINT_BUDGET, History, LossCallback
from .progress import ProgressBar

if TYPE_CHECKING:
    from .log_writer import RunLog

__all__ = ["Sinks", "recorders"]

_path = operator.attrgetter("path")


class Sinks:
    """What records the solve, and the observers that need closing when it ends.

    ``journal`` is the History the objective records into, ``history`` the same one when it
    is handed back as ``res.history`` (None with ``history=False``, where a log alone reads
    the journal).
    """

    def __init__(self, journal: History | None, history: History | None, log: RunLog | None, bar: Any):
        self.journal, self.history, self.log, self.bar = journal, history, log, bar
        self.log_error: str | None = None  # why the log could not be written in full

    def start(
        self,
        spec: ParamSpec,
        x0: np.ndarray,
        *,
        method: str,
        backend: str,
        precision: str,
        tol: Any,
        options: dict | None,
        has_bounds: bool,
        has_constraints: bool,
    ) -> None:
        """Name where each leaf lies in the history, and open the log's run."""
        if self.history is not None:
            self.history.leaves = list(zip(map(_path, spec.leaves), spec.offsets, spec.offsets[1:]))
        if self.journal is not None:  # iterates of x0's size, float64 at most
            self.journal.expect_points(8 * x0.size)
        if self.log is not None:
            self.log.start_run(
                method=method,
                backend=backend,
                precision=precision,
                spec=spec,
                options={"tol": tol, "options": options, "bounds": has_bounds, "constraints": has_constraints},
            )

    def close(self, *, status: Any, success: bool, message: str, objective: Objective | None) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.log is not None:
            best_f = objective.best_f if objective is not None else np.inf
            best_x = objective.best_x if objective is not None else None
            self.log_error = self.log.finish(status=status, success=success, message=message, best_f=best_f, best_x=best_x)


def recorders(history: bool, log: Any, progress: bool, loss_callback: Callable | None, name: str, options: dict | None) -> tuple[list, Sinks]:
    """The observers a solve tells of its evaluations and iterations, and its :class:`Sinks`.

    Raises TypeError for a ``history`` or ``progress`` that is not a bool, a ``log=`` that is
    neither a path nor an :class:`SQLiteLog`, and
    LogError for a log file that cannot be opened for writing.
    """
    if history is not True and history is not False:  # the common values: no call
        check_switch(history, "history")
    if progress is not False and progress is not True:
        check_switch(progress, "progress")
    settings = None
    if log is not None:  # the log writer and sqlite3 load only for a solve that writes a log
        from .log_writer import SQLiteLog

        if not isinstance(log, (str, os.PathLike, SQLiteLog)):
            raise TypeError(f"log must be a file path or an am.SQLiteLog; got {type(log).__name__}.")
        settings = SQLiteLog(log) if isinstance(log, (str, os.PathLike)) else log
    observers: list = []
    recorded = None
    if history or settings is not None:  # a log writes a history's rows; with history=False, one of its own
        iterates = settings is not None and settings.iterates  # the log writes every one
        recorded = History(keep_points=history or iterates, point_budget=None if iterates else POINT_BUDGET)
    sqlite_log = None
    if settings is not None:
        from .log_writer import RunLog

        sqlite_log = RunLog(settings, recorded, owns_journal=not history)
    bar = None
    if progress:
        bar = ProgressBar(name, total=(options or {}).get("maxiter"))
        observers.append(bar)
    if loss_callback is not None:
        observers.append(LossCallback(loss_callback))
    return observers, Sinks(recorded, recorded if history else None, sqlite_log, bar)
