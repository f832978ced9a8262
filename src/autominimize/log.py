"""A crash-safe SQLite log of solves, written as they run, and read back with ``read_log``.

Schema (one file holds any number of runs; ``PRAGMA user_version`` is 3). Rows of the two
block tables hold every record of one commit, column by column, as little-endian arrays
(``numpy.frombuffer(blob, dtype)``): a row per record would cost more than a fast
objective's evaluation.

``runs``
    ``run_id`` INTEGER PRIMARY KEY, ``started`` (Unix time), ``method``, ``backend``,
    ``precision``, ``options`` (JSON of the solve's arguments), ``n`` (number of parameters),
    ``structure`` (JSON describing x0's structure: containers, keys, and each leaf's path,
    shape, dtype and array type; see :mod:`autominimize.structure_description`),
    ``status``, ``success``, ``message``, ``finished`` (NULL while running or after a
    crash), ``best_f``, ``best_x`` (float64 bytes), ``evaluations`` and ``iterations`` (the
    records committed, which the blocks must add up to).
``evaluation_blocks``
    ``run_id``, ``block`` (0, 1, ... within the run), ``first_seq`` (the sequence number,
    from 1, of the block's first evaluation), ``count``, then one array per column:
    ``time`` (float64, seconds since the run started), ``kind`` (uint8, an index into
    ``EVALUATION_KINDS``), ``f`` (float64), ``grad_norm`` (float64, NaN without a gradient);
    and ``best_seq`` and ``best_x`` (float64 bytes): the best point so far when an evaluation
    of the block improved on it, NULL otherwise.
``iteration_blocks``
    ``run_id``, ``block``, ``count``, then arrays ``nit`` (int64), ``time``, ``f``,
    ``grad_norm`` (float64), ``nfev``, ``njev`` (int64) and ``x`` (float64, ``count × n``,
    row by row; NULL unless the log keeps the iterates).

The file uses write-ahead logging. A new file gets its tables, its layout version and its
first run in one transaction. The records are the solve's :class:`History` rows: the file's
writer thread commits the rows kept since its last commit every ``commit_interval``
seconds, and the solve commits the rest when it ends, so a process killed mid-run leaves
every committed row readable and loses the last one or two ``commit_interval`` seconds.
Rows that cannot be written (a lock held too long, a full disk) are kept and retried; a
log failure never turns a solve into an exception.

Reading runs nothing from the file: the structure is JSON rebuilt by
:func:`~autominimize.structure_description.rebuild`, and a file that is not a log of this
layout, damaged or crafted raises :class:`LogError`.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import sqlite3
import sys
import threading
import time
import urllib.parse
import warnings
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import structure_description
from .history import EVALUATION_KINDS, History
from .params import ParamSpec

__all__ = ["SCHEMA_VERSION", "LogError", "LogWriteWarning", "LoggedRun", "SQLiteLog", "read_log", "resume_point"]

#: ``PRAGMA user_version`` of the files this module writes and reads
SCHEMA_VERSION = 3
_KIND_CODES = {kind: code for code, kind in enumerate(EVALUATION_KINDS)}

_SCHEMA = (
    """CREATE TABLE runs (
    run_id INTEGER PRIMARY KEY, started REAL, method TEXT, backend TEXT, precision TEXT,
    options TEXT, n INTEGER, structure TEXT, status INTEGER, success INTEGER, message TEXT,
    finished REAL, best_f REAL, best_x BLOB, evaluations INTEGER, iterations INTEGER)""",
    """CREATE TABLE evaluation_blocks (
    run_id INTEGER, block INTEGER, first_seq INTEGER, count INTEGER, time BLOB, kind BLOB,
    f BLOB, grad_norm BLOB, best_seq INTEGER, best_x BLOB, PRIMARY KEY (run_id, block))""",
    """CREATE TABLE iteration_blocks (
    run_id INTEGER, block INTEGER, count INTEGER, nit BLOB, time BLOB, f BLOB, grad_norm BLOB,
    nfev BLOB, njev BLOB, x BLOB, PRIMARY KEY (run_id, block))""",
)
#: seconds between retries of a commit that failed for a reason that may pass, at most
_MAX_BACKOFF = 30.0


class LogError(ValueError):
    """A log file that cannot be used: not a log, damaged, truncated, crafted, of another
    layout, or a ``log=`` location that cannot be written. The message names the file and
    what is wrong.

    Examples
    --------
    >>> import autominimize as am, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "notes.txt")
    >>> _ = open(path, "w").write("not a log")
    >>> try:
    ...     am.read_log(path)
    ... except am.LogError as exc:
    ...     print("is not an SQLite" in str(exc))
    True
    """


class LogWriteWarning(RuntimeWarning):
    """Records of a solve could not be written to its log; the solve's result is unaffected."""


def _uri(path: str, mode: str) -> str:
    """An SQLite URI naming exactly ``path``: every character of the name is quoted, so '%',
    '?', '#' or a leading 'file:' are part of the name."""
    return f"file:{urllib.parse.quote(os.path.abspath(path))}?mode={mode}"


def _identity(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _may_pass(exc: BaseException) -> bool:
    """A failure that a later attempt may not meet: a lock, a full disk, an I/O error."""
    name = getattr(exc, "sqlite_errorname", None) or ""
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_FULL", "SQLITE_IOERR"))


def _connect_for_writing(path: str, timeout: float) -> sqlite3.Connection:
    """A connection to ``path`` (absolute), or a LogError naming ``log=`` and what is wrong."""
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise LogError(f"log={path!r}: the directory {directory!r} does not exist; create it or give another path.")
    if os.path.isdir(path):
        raise LogError(f"log={path!r} is a directory; give the path of a file.")
    if not os.access(directory, os.W_OK | os.X_OK) or (os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK)):
        raise LogError(f"log={path!r}: this process may not write there; give a path in a writable directory.")
    try:
        connection = sqlite3.connect(_uri(path, "rwc"), uri=True, isolation_level=None, check_same_thread=False, timeout=timeout)
    except sqlite3.Error as exc:
        raise LogError(f"log={path!r} cannot be opened: {exc}.") from None
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        # Copy the write-ahead log into the file (which syncs it) every 64 MB of pages rather
        # than SQLite's 4 MB: those syncs cost more than the writing on a fast objective.
        connection.execute("PRAGMA wal_autocheckpoint = 16384")
    except sqlite3.Error as exc:
        if not _may_pass(exc):  # a lock or a full disk: the file keeps its mode, the writes are retried
            connection.close()
            raise LogError(f"log={path!r} is not an SQLite file that can be written ({exc}); give a new file name.") from None
    return connection


def _prepare_layout(connection: sqlite3.Connection, path: str) -> None:
    """Inside a write transaction: create the tables and layout version of a new file, or
    check that an existing file has them."""
    tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master")}
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if not tables and version == 0:
        for statement in _SCHEMA:  # not executescript, which would commit first
            connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    elif version != SCHEMA_VERSION or not {"runs", "evaluation_blocks", "iteration_blocks"} <= tables:
        raise LogError(
            f"log={path!r} is not an autominimize log of this version (its layout is {version}, "
            f"this version writes {SCHEMA_VERSION}); give a new file name."
        )


class _FileWriter:
    """The one connection and writer thread of a log file in this process.

    Closing a WAL database checkpoints it (copies the log into the file and syncs), which
    costs more than a short solve, and starting a thread per solve costs more than writing
    its rows: both live until the process exits (or the file is removed). Every
    ``commit_interval`` seconds the thread commits the new rows of the runs that have not
    committed for that long; a run commits the rest itself when it ends. A commit that fails
    for a reason that may pass (a lock held past the timeout, a full disk) is retried,
    waiting twice as long after each failure, up to 30 s.
    """

    def __init__(self, path: str, settings: SQLiteLog):
        self.path = path
        self.commit_interval = settings.commit_interval
        self.connection: sqlite3.Connection | None = _connect_for_writing(path, settings.timeout)
        self.identity = _identity(path)
        self.lock = threading.Lock()  # one writer at a time: the thread or a run
        self.runs: list[RunLog] = []  # runs with records not written yet
        self.layout_checked = False
        self.broken: str | None = None  # why no later attempt can succeed
        self.retry_at = 0.0
        self.backoff = 0.0
        threading.Thread(target=self._loop, name="autominimize-log-writer", daemon=True).start()

    def _loop(self) -> None:
        while self.connection is not None and self.broken is None:
            time.sleep(self.commit_interval)
            now = time.perf_counter()
            if now < self.retry_at:
                continue
            late = [run for run in list(self.runs) if now - run.committed >= self.commit_interval]
            if late:
                self.attempt(late)

    def attempt(self, runs: list[RunLog]) -> str | None:
        """Commit what ``runs`` have queued, in one transaction: None, or why it failed."""
        with self.lock:
            try:
                self._transaction(runs)
            except Exception as exc:  # a log failure must never reach the solve
                reason = _reason(exc)
                if self.broken is None and not _may_pass(exc):
                    self.broken = reason
                if self.broken is not None:
                    self.runs.clear()  # nothing more can be written to this file
                else:
                    self.backoff = min(max(2 * self.backoff, self.commit_interval), _MAX_BACKOFF)
                    self.retry_at = time.perf_counter() + self.backoff
                return reason
            self.backoff, self.retry_at = 0.0, 0.0
            self.runs[:] = [run for run in self.runs if not run.done]
            return None

    def _transaction(self, runs: list[RunLog]) -> None:
        if self.broken is not None:
            raise _Broken(self.broken)
        if self.connection is None:
            raise _Broken("the process is exiting")
        if _identity(self.path) != self.identity:
            raise _Broken("the file was removed or replaced while it was being written")
        commits: list[Callable[[], None]] = []
        connection = self.connection
        try:
            connection.execute("BEGIN IMMEDIATE")
            if not self.layout_checked:
                _prepare_layout(connection, self.path)
            for run in runs:
                commits.append(run._write(connection))
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                try:
                    connection.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # SQLite rolls back itself after some errors
            raise
        self.layout_checked = True
        for commit in commits:
            commit()

    def close(self) -> None:
        if self.runs:
            reason = self.attempt(list(self.runs))
            if reason is not None:
                unwritten = ", ".join(run.unwritten() for run in self.runs) or "records"
                print(f"autominimize: log={self.path!r}: {unwritten} were never written ({reason}).", file=sys.stderr)
        with self.lock:
            if self.connection is not None:
                self.connection.close()
                self.connection = None


class _Broken(Exception):
    """A log file no later attempt can write."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (_Broken, LogError)):
        return str(exc)
    if isinstance(exc, sqlite3.Error):
        return f"{exc} ({getattr(exc, 'sqlite_errorname', None) or type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}"


_files: dict[str, _FileWriter] = {}
_files_lock = threading.Lock()


def _file_writer(settings: SQLiteLog) -> _FileWriter:
    key = os.path.abspath(settings.path)
    with _files_lock:
        writer = _files.get(key)
        if writer is not None and (writer.broken is not None or _identity(key) != writer.identity):
            writer.close()  # a file removed or replaced since: start a new one at the path
            writer = None
        if writer is None:
            writer = _files[key] = _FileWriter(key, settings)
        return writer


@atexit.register
def _close_files() -> None:
    with _files_lock:
        for writer in _files.values():
            writer.close()
        _files.clear()


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
        object.__setattr__(self, "path", os.fspath(self.path))
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
        self._file = _file_writer(settings)
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
        description = json.dumps(structure_description.describe(spec))
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
            taken = rows[self._taken[which]:]
            self._taken[which] += len(taken)
        self._pending[which].extend(taken)

    def _write(self, connection: sqlite3.Connection) -> Callable[[], None]:
        """Insert the run's row if it is new, a block of the records pending, then the outcome;
        return what to note once the transaction has committed."""
        run_id = self.run_id
        if run_id is None:
            run_id = connection.execute(
                "INSERT INTO runs (started, method, backend, precision, options, n, structure, evaluations, iterations) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0)",
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
                run_id, self._blocks[0], first, len(rows), _little_endian("d", times), bytes(map(_KIND_CODES.__getitem__, kinds)),
                _little_endian("d", values), _little_endian("d", norms), best_seq if stored else None,
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
                run_id, self._blocks[1], len(rows), _little_endian("q", nit), _little_endian("d", times), _little_endian("d", values),
                _little_endian("d", norms), _little_endian("q", nfev), _little_endian("q", njev),
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


@dataclass
class LoggedRun:
    """One run read back from a log file.

    ``x`` is the best point in x0's structure (NumPy leaves; a Python float where x0 had
    a Python number), or, when the log could describe x0's structure by its leaves only
    (``note`` says why), a dict from leaf path to array; ``best_x`` is always the flat
    vector. ``structure`` is the stored description of x0 (plain data). ``finished`` is
    None for a run that was interrupted or killed.
    """

    run_id: int
    method: str
    backend: str
    precision: str
    options: dict
    started: float
    finished: float | None
    success: bool | None
    message: str | None
    best_f: float
    best_x: np.ndarray | None
    x: Any
    history: History
    structure: dict | None = None
    note: str | None = None


#: the columns (name, declared type) of each table, as the schema creates them
_COLUMNS: dict[str, list[tuple[str, str]]] = {}


def _expected_columns() -> dict[str, list[tuple[str, str]]]:
    if not _COLUMNS:
        with sqlite3.connect(":memory:") as memory:
            for statement in _SCHEMA:
                memory.execute(statement)
            for table in ("runs", "evaluation_blocks", "iteration_blocks"):
                _COLUMNS[table] = [(row[1], row[2]) for row in memory.execute(f"PRAGMA table_xinfo({table})")]
    return _COLUMNS


def _open_for_reading(path: str) -> sqlite3.Connection:
    """A read-only connection to exactly ``path`` that creates no file, and whose work and
    memory are bounded by the file's size."""
    wal = os.path.exists(path + "-wal")
    # Without a write-ahead log nobody writes the file: 'immutable' reads it without the
    # side files SQLite would otherwise create. With one (a run going on, or killed), the
    # committed rows in it are read too.
    connection = sqlite3.connect(_uri(path, "ro") + ("" if wal else "&immutable=1"), uri=True, isolation_level=None)
    size = os.path.getsize(path) + (os.path.getsize(path + "-wal") if wal else 0)
    connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, max(size, 1 << 16))
    steps = [1000 + size // 64]  # thousands of virtual-machine instructions allowed

    def spend() -> int:
        steps[0] -= 1
        return steps[0] < 0  # non-zero interrupts the query

    connection.set_progress_handler(spend, 1000)
    connection.execute("PRAGMA query_only = ON")
    connection.execute("PRAGMA trusted_schema = OFF")
    return connection


def _check_layout(connection: sqlite3.Connection, name: str) -> None:
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    objects = connection.execute("SELECT type, name FROM sqlite_master").fetchall()
    if version == 0 and not objects:
        raise LogError(f"{name!r} holds no run (it is an empty SQLite file).")
    if version in (1, 2):
        raise LogError(
            f"{name!r} was written by an earlier version of autominimize (layout {version}), which stored "
            "x0's structure pickled; it is not read, since unpickling a file can run code from it. "
            "Read its tables with sqlite3 (they hold only numbers and text), or run the solve again."
        )
    if version != SCHEMA_VERSION:
        raise LogError(f"{name!r} is not an autominimize log of this version (its layout is {version}, this version reads {SCHEMA_VERSION}).")
    expected = _expected_columns()
    tables = {(kind, table) for kind, table in objects if not (kind == "index" and table.startswith("sqlite_autoindex_"))}
    if tables != {("table", table) for table in expected}:
        raise LogError(f"{name!r} is not a log this version wrote: it holds {sorted(tables)}, not exactly the tables {sorted(expected)}.")
    for table, columns in expected.items():
        found = [(row[1], row[2]) for row in connection.execute(f"PRAGMA table_xinfo({table})") if row[6] == 0]
        hidden = [row[1] for row in connection.execute(f"PRAGMA table_xinfo({table})") if row[6] != 0]
        if found != columns or hidden:
            raise LogError(f"{name!r} is not a log this version wrote: its table {table} has columns {found + hidden}, not {columns}.")


def _typed(value: Any, types: tuple, what: str, name: str) -> Any:
    if type(value) not in types:
        expected = " or ".join("NULL" if t is type(None) else t.__name__ for t in types)
        raise LogError(f"{name!r} is damaged: {what} is {type(value).__name__}, not {expected}.")
    return value


def _array(blob: Any, dtype: Any, count: int, what: str, name: str) -> np.ndarray:
    _typed(blob, (bytes,), what, name)
    dtype = np.dtype(dtype).newbyteorder("<")
    if len(blob) != count * dtype.itemsize:
        raise LogError(f"{name!r} is damaged: {what} holds {len(blob)} bytes, not the {count * dtype.itemsize} of {count} numbers.")
    return np.frombuffer(blob, dtype=dtype)


def _joined(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.empty(0, dtype)


def _evaluation_columns(blocks: list[tuple], n: int, name: str) -> tuple[list[np.ndarray], list[tuple[int, bytes]]]:
    """(kind codes, time, f, grad_norm) of every evaluation, and the stored best points."""
    columns: list[list[np.ndarray]] = [[], [], [], []]
    best: list[tuple[int, bytes]] = []
    total = 0
    for expected_block, (block, first_seq, count, times, kinds, values, norms, best_seq, best_x) in enumerate(blocks):
        where = f"evaluation block {block}"
        if block != expected_block or first_seq != total + 1:
            raise LogError(f"{name!r} is damaged: its evaluation blocks do not follow one another (block {expected_block} starting at evaluation {total + 1} is missing).")
        count = _typed(count, (int,), f"the count of {where}", name)
        if count < 0:
            raise LogError(f"{name!r} is damaged: {where} counts {count} records.")
        codes = _array(kinds, np.uint8, count, f"the kinds of {where}", name)
        if codes.size and codes.max() >= len(EVALUATION_KINDS):
            raise LogError(f"{name!r} is damaged: {where} holds an evaluation kind {int(codes.max())}, not one of 0..{len(EVALUATION_KINDS) - 1}.")
        columns[0].append(codes)
        for column, blob, what in zip(columns[1:], (times, values, norms), ("times", "values", "gradient norms")):
            column.append(_array(blob, np.float64, count, f"the {what} of {where}", name))
        if (best_seq is None) != (best_x is None):
            raise LogError(f"{name!r} is damaged: {where} has a best point without its sequence number, or the reverse.")
        if best_seq is not None:
            _typed(best_seq, (int,), f"the best point's number in {where}", name)
            if not first_seq <= best_seq < first_seq + count:
                raise LogError(f"{name!r} is damaged: {where} stores a best point of evaluation {best_seq}, not one of its own.")
            _array(best_x, np.float64, n, f"the best point of {where}", name)
            best.append((best_seq, best_x))
        total += count
    return [_joined(column, dtype) for column, dtype in zip(columns, (np.uint8, np.float64, np.float64, np.float64))], best


def _iteration_columns(blocks: list[tuple], n: int, name: str) -> list:
    """(nit, time, f, grad_norm, nfev, njev, x) of every iteration; x a list of arrays or None."""
    columns: list[list[np.ndarray]] = [[], [], [], [], [], []]
    points: list = []
    for expected_block, (block, count, *blobs, x) in enumerate(blocks):
        where = f"iteration block {block}"
        if block != expected_block:
            raise LogError(f"{name!r} is damaged: its iteration blocks do not follow one another (block {expected_block} is missing).")
        count = _typed(count, (int,), f"the count of {where}", name)
        if count < 0:
            raise LogError(f"{name!r} is damaged: {where} counts {count} records.")
        for column, blob, field, dtype in zip(columns, blobs, ("nit", "time", "f", "grad_norm", "nfev", "njev"), "qdddqq"):
            column.append(_array(blob, dtype, count, f"the {field} column of {where}", name))
        if x is None:
            points.extend([None] * count)
        else:
            points.extend(_array(x, np.float64, count * n, f"the iterates of {where}", name).reshape(count, n))
    dtypes = (np.int64, np.float64, np.float64, np.float64, np.int64, np.int64)
    return [*(_joined(column, dtype) for column, dtype in zip(columns, dtypes)), points]


def read_log(path: str | os.PathLike, run: int | None = None) -> LoggedRun:
    """Read one run of a log file (the last one by default): its history and best point.

    Nothing read from the file is executed. A file that is not a log of this layout, or is
    damaged, truncated or crafted, raises :class:`LogError` naming the file and what is
    wrong; a missing file raises FileNotFoundError. Reading creates no file.

    Examples
    --------
    >>> import numpy as np, autominimize as am, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "run.sqlite")
    >>> res = am.minimize(lambda x: ((x - 2) ** 2).sum(), np.zeros(2), backend="numpy",
    ...                   jac=lambda x: 2 * (x - 2), log=path)
    >>> logged = am.read_log(path)
    >>> bool(np.allclose(logged.best_x, 2)), len(logged.history.iterations) == res.nit
    (True, True)
    """
    name = os.fspath(path)
    if run is not None and (isinstance(run, bool) or not isinstance(run, (int, np.integer))):
        raise TypeError(f"run must be a run id (an integer) or None for the last run; got {run!r}.")
    if not os.path.exists(name):
        raise FileNotFoundError(f"log={name!r}: no such file.")
    if not os.path.isfile(name):
        raise LogError(f"{name!r} is not a file.")
    try:
        return _read(name, run)
    except LogError:
        raise
    except sqlite3.DatabaseError as exc:
        raise LogError(f"{name!r} is not an SQLite log that can be read ({exc}).") from None
    except (sqlite3.Error, ValueError, TypeError, IndexError, OverflowError, RecursionError, MemoryError, UnicodeError) as exc:
        raise LogError(f"{name!r} is damaged: {type(exc).__name__}: {exc}.") from None


def _read(name: str, run: int | None) -> LoggedRun:
    connection = _open_for_reading(name)
    try:
        try:
            _check_layout(connection, name)
        except sqlite3.DatabaseError as exc:
            raise LogError(f"{name!r} is not an SQLite log that can be read ({exc}).") from None
        if run is None:
            run = connection.execute("SELECT max(run_id) FROM runs").fetchone()[0]
            if run is None:
                raise LogError(f"{name!r} holds no run.")
        meta = connection.execute(
            "SELECT run_id, method, backend, precision, options, started, finished, success, message, best_f, best_x, structure, n, evaluations, iterations "
            "FROM runs WHERE run_id = ?",
            (int(run),),
        ).fetchone()
        if meta is None:
            runs = [r[0] for r in connection.execute("SELECT run_id FROM runs ORDER BY run_id")]
            raise LogError(f"run={run!r} is not in {name!r}; its runs are {runs}.")
        evaluation_blocks = connection.execute(
            "SELECT block, first_seq, count, time, kind, f, grad_norm, best_seq, best_x FROM evaluation_blocks WHERE run_id = ? ORDER BY block",
            (int(run),),
        ).fetchall()
        iteration_blocks = connection.execute(
            "SELECT block, count, nit, time, f, grad_norm, nfev, njev, x FROM iteration_blocks WHERE run_id = ? ORDER BY block", (int(run),)
        ).fetchall()
    finally:
        connection.close()
    return _logged_run(name, meta, evaluation_blocks, iteration_blocks)


def _logged_run(name: str, meta: tuple, evaluation_blocks: list[tuple], iteration_blocks: list[tuple]) -> LoggedRun:
    run_id, method, backend, precision, options, started, finished, success, message, best_f, best_x, structure, n, *counts = meta
    n = _typed(n, (int,), "the run's n", name)
    if n < 0:
        raise LogError(f"{name!r} is damaged: the run's n is {n}.")
    for value, what in ((method, "method"), (backend, "backend"), (precision, "precision"), (options, "options")):
        _typed(value, (str,), f"the run's {what}", name)
    for value, what in ((message, "message"), (structure, "structure")):
        _typed(value, (str, type(None)), f"the run's {what}", name)
    for value, what in ((started, "start time"),):
        _typed(value, (float, int), f"the run's {what}", name)
    for value, what in ((finished, "end time"), (best_f, "best f")):
        _typed(value, (float, int, type(None)), f"the run's {what}", name)
    if success not in (None, 0, 1) or type(success) not in (int, type(None)):
        raise LogError(f"{name!r} is damaged: the run's success is {success!r}, not 0, 1 or NULL.")
    options = json.loads(options)
    if not isinstance(options, dict):
        raise LogError(f"{name!r} is damaged: the run's options are not a JSON object.")
    description = None
    if structure is not None:
        description = json.loads(structure)
        try:
            structure_description.check_description(description, n)
        except ValueError as exc:
            raise LogError(f"{name!r} is damaged: {exc}.") from None
    best_x = None if best_x is None else _array(best_x, np.float64, n, "the run's best point", name).astype(np.float64)
    evaluations, best_points = _evaluation_columns(evaluation_blocks, n, name)
    iterations = _iteration_columns(iteration_blocks, n, name)
    for count, found, what in zip(counts, (evaluations[0].size, len(iterations[-1])), ("evaluations", "iterations")):
        if _typed(count, (int,), f"the run's count of {what}", name) != found:
            raise LogError(f"{name!r} is damaged: its blocks hold {found} {what} of run {run_id}, which wrote {count}.")
    history = History.from_columns(evaluations, iterations)
    if description is not None:
        offsets = np.cumsum([0] + [math.prod(shape) for _, shape in structure_description.leaf_shapes(description)]).tolist()
        history.leaves = [(path, a, b) for (path, _), a, b in zip(structure_description.leaf_shapes(description), offsets, offsets[1:])]
    if best_x is None and best_points:  # the run did not finish: each stored point beats the earlier ones
        seq, raw = best_points[-1]
        best_f, best_x = float(evaluations[2][seq - 1]), np.frombuffer(raw, dtype="<f8").astype(np.float64)
    x = best_x
    if best_x is not None and description is not None:
        x = structure_description.rebuild(description, best_x)
    return LoggedRun(
        run_id=run_id, method=method, backend=backend, precision=precision, options=options, started=float(started),
        finished=None if finished is None else float(finished), success=None if success is None else bool(success),
        message=message, best_f=np.inf if best_f is None else float(best_f), best_x=best_x, x=x, history=history,
        structure=description, note=None if description is None else description["note"],
    )


def resume_point(path: str | os.PathLike, spec: ParamSpec) -> np.ndarray:
    """The best point of the last run in ``path``, checked against x0's structure ``spec``:
    the leaves' paths and shapes must be those the run had; a LogError names those that differ."""
    name = os.fspath(path)
    logged = read_log(path)
    if logged.best_x is None:
        raise LogError(f"resume={name!r}: its last run (run {logged.run_id}) recorded no point to resume from.")
    current = [(leaf.path, tuple(leaf.shape)) for leaf in spec.leaves]
    stored = structure_description.leaf_shapes(logged.structure) if logged.structure is not None else [("x0", (logged.best_x.size,))]
    if stored != current:
        sizes = f"its last run has {logged.best_x.size} parameters but x0 has {spec.size}" if logged.best_x.size != spec.size else "x0 is not structured as its last run was"
        raise LogError(f"resume={name!r}: {sizes}: " + _differences(stored, current) + ".")
    return logged.best_x.copy()


def _differences(stored: list[tuple[str, tuple]], current: list[tuple[str, tuple]]) -> str:
    logged, now = dict(stored), dict(current)
    parts = [f"{path} has shape {now[path]} in x0 but {logged[path]} in the log" for path in now if path in logged and logged[path] != now[path]]
    parts += [f"{path} is in x0 but not in the log" for path in now if path not in logged]
    parts += [f"{path} is in the log but not in x0" for path in logged if path not in now]
    return "; ".join(parts) if parts else "its leaves are those of x0 in another order"
