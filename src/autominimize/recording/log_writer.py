"""Writing a solve's run to a log file while it runs: :class:`SQLiteLog` and :class:`RunLog`.

A new file gets its tables, its layout version and its first run in one transaction. The
records are the solve's :class:`~autominimize.recording.history.History` rows: the file's
writer thread commits the rows kept since its last commit every ``commit_interval``
seconds, and the solve commits the rest when it ends, so a process killed mid-run leaves
every committed row readable and loses the last one or two ``commit_interval`` seconds.
Rows that cannot be written (a lock held too long, a full disk) are kept and retried; a
log failure never turns a solve into an exception.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
import warnings
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..params import ParamSpec
from .history import History
from .log_file import file_writer
from .log_schema import KIND_CODES, TABLES, LogError
from .structure import describe

__all__ = ["LogWriteWarning", "RunLog", "SQLiteLog"]


class LogWriteWarning(RuntimeWarning):
    """Records of a solve could not be written to its log; the solve's result is unaffected."""


_NEXT_RUN_ID = "1 + max(" + ", ".join(f"coalesce((SELECT max(run_id) FROM {table}), 0)" for table in TABLES) + ")"


def _little_endian(typecode: str, values: tuple) -> bytes:
    """``values`` as little-endian float64 (typecode 'd') or int64 ('q') bytes; array.array
    converts a tuple of Python numbers about twice as fast as NumPy does."""
    column = array(typecode, values)
    if sys.byteorder == "big":
        column.byteswap()
    return column.tobytes()


def _json_safe(options: dict) -> str:
    return json.dumps(options, default=repr, sort_keys=True)


@dataclass(frozen=True)
class SQLiteLog:
    """An SQLite log file, with how much it keeps: pass it as ``log=``.

    ``log="run.sqlite"`` is ``log=am.SQLiteLog("run.sqlite")``. Every solve given it
    appends one run to the file.

    Parameters
    ----------
    path
        The file; created if missing (its directory must exist). Runs already in it are kept.
    iterates
        Keep every iterate's x as well (8·n bytes per iteration). By default only the best
        point is kept, at each commit and at the end: storing the iterates costs about as
        much as a cheap objective's evaluation at the same size, and grows the file by
        gigabytes on a large model.
    commit_interval
        Seconds between commits while the run goes on.
    timeout
        Seconds a commit waits for another connection's lock on the file before it is
        retried later.

    Examples
    --------
    >>> import numpy as np, autominimize as am, tempfile, os
    >>> log = am.SQLiteLog(os.path.join(tempfile.mkdtemp(), "run.sqlite"), iterates=True)
    >>> res = am.minimize(lambda x: ((x - 2) ** 2).sum(), np.zeros(2), backend="numpy",
    ...                   jac=lambda x: 2 * (x - 2), log=log)
    >>> np.allclose(am.read_log(log.path).history.iterations[-1].x, res.x), res.log_error
    (True, None)
    """

    path: str | os.PathLike
    iterates: bool = False
    commit_interval: float = 0.5
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.path, (str, os.PathLike)):
            raise TypeError(f"path must be the log's file path (a str or os.PathLike); got {type(self.path).__name__}.")
        if not isinstance(self.iterates, bool):
            raise TypeError(f"iterates must be True or False; got {self.iterates!r}.")
        object.__setattr__(self, "path", os.fspath(self.path))
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise LogError(f"log={self.path!r}: the directory {directory!r} does not exist; create it or give another path.")
        if os.path.isdir(self.path):
            raise LogError(f"log={self.path!r} is a directory; give the path of a file.")
        for name in ("commit_interval", "timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds; got {value!r}.")


class RunLog:
    """Writes one run to a log file: the records its solve's :class:`History` keeps.

    The log is not told of each evaluation itself: it takes the history's new rows when it
    commits, so a solve with both a history and a log records each evaluation once.
    ``owns_journal`` says that nobody else reads that history (``history=False``): the
    rows are then removed from it once taken. Rows taken are kept here until a commit
    holding them succeeds.
    """

    def __init__(self, settings: SQLiteLog, journal: History, *, owns_journal: bool):
        self.path = settings.path
        self.iterates = bool(settings.iterates)
        self.run_id: int | None = None
        self._journal = journal
        self._owns = owns_journal
        self._file = file_writer(settings)
        self._run: tuple | None = None
        self._precision: str | None = None
        self._outcome: tuple | None = None
        self._outcome_written = False
        self._taken = [0, 0]  # evaluation and iteration rows taken from a journal it does not own
        self._pending: tuple[list, list] = ([], [])  # evaluation and iteration rows taken, not committed
        self._committed = [0, 0]  # evaluation and iteration rows committed
        self._blocks = [0, 0]  # evaluation and iteration blocks committed
        self._best_written = 0  # sequence number of the last stored best point
        self.committed = time.perf_counter()

    def start_run(self, *, method: str, backend: str, precision: str, options: dict, spec: ParamSpec) -> None:
        """Write the run's row before the solve starts (with the tables, in a new file), or
        with the next commit in a file this process has written already.

        ``spec`` is x0's structure, stored as data. Raises LogError when the file is of
        another layout or cannot be written at all; a lock held past the timeout or a full
        disk only postpones the row to the next commit.
        """
        description = json.dumps(describe(spec))
        self._run = (time.time(), method, backend, precision, _json_safe(options), spec.size, description)
        self.committed = time.perf_counter()
        with self._file.lock:
            self._file.runs.append(self)
        if self._file.layout_checked:  # the file is known good: the row goes with the next commit
            return
        reason = self._file.attempt([self])
        if reason is not None and self._file.broken is not None:
            raise LogError(reason if reason.startswith("log=") else f"log={self.path!r} cannot be written: {reason}.")

    def set_precision(self, precision: str) -> None:
        self._precision = precision

    @property
    def done(self) -> bool:
        """Everything of the finished run is committed."""
        return self._outcome_written and not self._pending[0] and not self._pending[1]

    def unwritten(self) -> str:
        evaluations = len(self._pending[0]) + len(self._journal._evaluation_rows) - (0 if self._owns else self._taken[0])
        iterations = len(self._pending[1]) + len(self._journal._iteration_rows) - (0 if self._owns else self._taken[1])
        return f"{evaluations} evaluations, {iterations} iterations" + ("" if self._outcome_written else " and the outcome")

    # -- writing (by the file's writer thread while the solve runs, then by its finish) -------
    def _take(self, rows: list, which: int) -> None:
        """Move the rows not taken yet to the pending ones; rows the solve appends meanwhile
        wait for the next commit."""
        if self._owns:
            taken = rows[:]
            del rows[: len(taken)]
        else:
            taken = rows[self._taken[which] :]
            self._taken[which] += len(taken)
        self._pending[which].extend(taken)

    def _write(self, connection: sqlite3.Connection) -> Callable[[], None]:
        """Insert the run's row if it is new, a block of the records pending, then the outcome;
        return what to note once the transaction has committed."""
        run_id = self.run_id
        if run_id is None:
            # the number after every run the file mentions: the blocks of a run whose row was
            # removed would otherwise be taken for the new run's
            run_id = connection.execute(
                "INSERT INTO runs (run_id, started, method, backend, precision, options, n, structure, evaluations, iterations) "
                f"VALUES ({_NEXT_RUN_ID}, ?, ?, ?, ?, ?, ?, ?, 0, 0)",
                self._run,
            ).lastrowid
        precision = self._precision
        if precision is not None:
            connection.execute("UPDATE runs SET precision = ? WHERE run_id = ?", (precision, run_id))
        # read before the rows are taken (the history sets it before adding its row): its row
        # is among them or, still being added, comes with a later block
        best_seq, best_x = self._journal.best
        self._take(self._journal._evaluation_rows, 0)
        self._take(self._journal._iteration_rows, 1)
        evaluations, iterations = len(self._pending[0]), len(self._pending[1])
        best_stored = self._write_evaluations(connection, run_id, best_seq, best_x)
        self._write_iterations(connection, run_id)
        counts = (self._committed[0] + evaluations, self._committed[1] + iterations)
        outcome = self._outcome
        if outcome is not None:
            connection.execute(
                "UPDATE runs SET status = ?, success = ?, message = ?, finished = ?, best_f = ?, best_x = ?, evaluations = ?, "
                "iterations = ? WHERE run_id = ?",
                outcome + counts + (run_id,),
            )
        elif evaluations or iterations:
            connection.execute("UPDATE runs SET evaluations = ?, iterations = ? WHERE run_id = ?", counts + (run_id,))

        def committed() -> None:
            self.run_id = run_id
            if self._precision is precision:
                self._precision = None
            for which, count in enumerate((evaluations, iterations)):
                if count:
                    del self._pending[which][:count]
                    self._committed[which] += count
                    self._blocks[which] += 1
            if best_stored:
                self._best_written = best_seq
            self._outcome_written = outcome is not None
            self.committed = time.perf_counter()

        return committed

    def _write_evaluations(self, connection: sqlite3.Connection, run_id: int, best_seq: int, best_x: Any) -> bool:
        rows = self._pending[0]
        if not rows:
            return False
        first = self._committed[0] + 1
        kinds, times, values, norms = zip(*rows)
        stored = self._best_written < best_seq < first + len(rows)
        connection.execute(
            "INSERT INTO evaluation_blocks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                self._blocks[0],
                first,
                len(rows),
                _little_endian("d", times),
                bytes(map(KIND_CODES.__getitem__, kinds)),
                _little_endian("d", values),
                _little_endian("d", norms),
                best_seq if stored else None,
                best_x.tobytes() if stored else None,
            ),
        )
        return stored

    def _write_iterations(self, connection: sqlite3.Connection, run_id: int) -> None:
        rows = self._pending[1]
        if not rows:
            return
        nit, times, values, norms, nfev, points, njev = zip(*rows)
        connection.execute(
            "INSERT INTO iteration_blocks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                self._blocks[1],
                len(rows),
                _little_endian("q", nit),
                _little_endian("d", times),
                _little_endian("d", values),
                _little_endian("d", norms),
                _little_endian("q", nfev),
                _little_endian("q", njev),
                np.stack(points).astype(np.float64, copy=False).tobytes() if self.iterates else None,
            ),
        )

    def finish(self, *, status: Any, success: bool, message: str, best_f: float, best_x: np.ndarray | None) -> str | None:
        """Write what is left and the run's outcome; the rows are committed on return.

        Never raises for the file's sake: returns None once everything is written, else the
        reason, also given as a :class:`LogWriteWarning`. Rows a lock or a full disk kept out
        stay queued for the writer thread's next attempts.
        """
        self._outcome = (
            None if status is None else int(status),
            int(bool(success)),
            str(message),
            time.time(),
            float(best_f),
            None if best_x is None else np.asarray(best_x, dtype=np.float64).tobytes(),
        )
        reason = self._file.attempt([self])
        if reason is not None and self._file.broken is None:
            time.sleep(min(self._file.commit_interval, 0.25))  # one retry: a lock released meanwhile
            reason = self._file.attempt([self])
        if reason is None:
            return None
        later = "lost" if self._file.broken is not None else "retried in the background while the process runs"
        report = f"log={self.path!r}: {self.unwritten()} of run {self.run_id or '(not created)'} could not be written ({reason}); they are {later}."
        warnings.warn(report, LogWriteWarning, stacklevel=4)
        return report
