"""A crash-safe SQLite log of solves, written as they run, and read back with ``read_log``.

Schema (one file holds any number of runs; ``PRAGMA user_version`` is 2). Rows of the two
block tables hold every record of one commit, column by column, as little-endian arrays
(``numpy.frombuffer(blob, dtype)``): a row per record would cost more than a fast
objective's evaluation.

``runs``
    ``run_id`` INTEGER PRIMARY KEY, ``started`` (Unix time), ``method``, ``backend``,
    ``precision``, ``options`` (JSON of the solve's arguments), ``n`` (number of parameters),
    ``structure`` (pickled x0 structure with NumPy leaves; NULL for a flat x0 or one whose
    containers cannot be pickled), ``status``,
    ``success``, ``message``, ``finished`` (NULL while running or after a crash),
    ``best_f``, ``best_x`` (float64 bytes).
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

The file uses write-ahead logging. The records are the solve's :class:`History` rows: the
file's writer thread commits the rows kept since its last commit every ``commit_interval``
seconds, and the solve commits the rest when it ends, so a process killed mid-run leaves
every committed row readable and loses the last one or two ``commit_interval`` seconds.
"""

from __future__ import annotations

import atexit
import json
import os
import pickle
import sqlite3
import sys
import threading
import time
from array import array
from dataclasses import dataclass
from typing import Any

import numpy as np

from .history import EVALUATION_KINDS, History

__all__ = ["SQLiteLog", "read_log", "LoggedRun", "SCHEMA_VERSION"]

#: ``PRAGMA user_version`` of the files this module writes and reads
SCHEMA_VERSION = 2
_KIND_CODES = {kind: code for code, kind in enumerate(EVALUATION_KINDS)}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY, started REAL, method TEXT, backend TEXT, precision TEXT,
    options TEXT, n INTEGER, structure BLOB, status INTEGER, success INTEGER, message TEXT,
    finished REAL, best_f REAL, best_x BLOB);
CREATE TABLE IF NOT EXISTS evaluation_blocks (
    run_id INTEGER, block INTEGER, first_seq INTEGER, count INTEGER, time BLOB, kind BLOB,
    f BLOB, grad_norm BLOB, best_seq INTEGER, best_x BLOB, PRIMARY KEY (run_id, block));
CREATE TABLE IF NOT EXISTS iteration_blocks (
    run_id INTEGER, block INTEGER, count INTEGER, nit BLOB, time BLOB, f BLOB, grad_norm BLOB,
    nfev BLOB, njev BLOB, x BLOB, PRIMARY KEY (run_id, block));
"""


def _open(path: str) -> sqlite3.Connection:
    """A connection to a log file of this layout, creating the tables in a new file."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if tables and version != SCHEMA_VERSION:
        connection.close()
        raise ValueError(
            f"log={path!r} is not an autominimize log of this version (its layout is "
            f"{version}, this version writes {SCHEMA_VERSION}); give a new file name."
        )
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    # Copy the write-ahead log into the file (which syncs it) every 64 MB of pages rather
    # than SQLite's 4 MB: those syncs cost more than the writing on a fast objective.
    connection.execute("PRAGMA wal_autocheckpoint = 16384")
    connection.executescript(_SCHEMA)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return connection


class _FileWriter:
    """The one connection and writer thread of a log file in this process.

    Closing a WAL database checkpoints it (copies the log into the file and syncs), which
    costs more than a short solve, and starting a thread per solve costs more than writing
    its rows: both live until the process exits. Every ``commit_interval`` seconds the thread
    commits the new rows of the runs that have not committed for that long; a run commits
    the rest itself when it ends.
    """

    def __init__(self, path: str, commit_interval: float):
        self.connection = _open(path)
        self.commit_interval = commit_interval
        self.lock = threading.Lock()  # one writer at a time: the thread or a finishing run
        self.runs: list[RunLog] = []
        self.error: sqlite3.Error | None = None
        threading.Thread(target=self._loop, name="autominimize-log-writer", daemon=True).start()

    def _loop(self) -> None:
        while True:
            time.sleep(self.commit_interval)
            now = time.perf_counter()
            late = [run for run in list(self.runs) if now - run.committed >= self.commit_interval]
            if late:
                try:
                    self.write(late)
                except sqlite3.Error as exc:  # raised again to the solve by its next write
                    self.error = exc

    def write(self, runs: list["RunLog"]) -> None:
        """Commit what ``runs`` have queued, in one transaction."""
        with self.lock:
            if self.error is not None:
                error, self.error = self.error, None
                raise error
            if self.connection is None:
                return
            with self.connection:
                self.connection.execute("BEGIN")
                for run in runs:
                    run._write(self.connection)

    def close(self) -> None:
        self.write(list(self.runs))
        with self.lock:
            self.connection.close()
            self.connection = None


_files: dict[str, _FileWriter] = {}
_files_lock = threading.Lock()


def _file_writer(path: str, commit_interval: float) -> _FileWriter:
    key = os.path.abspath(path)
    with _files_lock:
        writer = _files.get(key)
        if writer is None:
            writer = _files[key] = _FileWriter(key, commit_interval)
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
        The file; created if missing. Runs already in it are kept.
    iterates
        Keep every iterate's x as well (8·n bytes per iteration). By default only the best
        point is kept, at each commit and at the end: storing the iterates costs about as
        much as a cheap objective's evaluation at the same size, and grows the file by
        gigabytes on a large model.
    commit_interval
        Seconds between commits while the run goes on.

    Examples
    --------
    >>> import numpy as np, autominimize as am, tempfile, os
    >>> log = am.SQLiteLog(os.path.join(tempfile.mkdtemp(), "run.sqlite"), iterates=True)
    >>> res = am.minimize(lambda x: ((x - 2) ** 2).sum(), np.zeros(2), backend="numpy",
    ...                   jac=lambda x: 2 * (x - 2), log=log)
    >>> np.allclose(am.read_log(log.path).history.iterations[-1].x, res.x)
    True
    """

    path: str | os.PathLike
    iterates: bool = False
    commit_interval: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", os.fspath(self.path))
        if isinstance(self.commit_interval, bool) or not isinstance(self.commit_interval, (int, float)) or not self.commit_interval > 0:
            raise ValueError(f"commit_interval must be a positive number of seconds; got {self.commit_interval!r}.")


class RunLog:
    """Writes one run to a log file: the records its solve's :class:`History` keeps.

    The log is not told of each evaluation itself: it takes the history's new rows when it
    commits, so a solve with both a history and a log records each evaluation once.
    ``owns_journal`` says that nobody else reads that history (``history=False``): the
    rows are then removed from it once written.
    """

    def __init__(self, settings: SQLiteLog, journal: History, *, owns_journal: bool):
        self.path = settings.path
        self.iterates = bool(settings.iterates)
        self.commit_interval = settings.commit_interval
        self.run_id: int | None = None
        self._journal = journal
        self._owns = owns_journal
        self._file = _file_writer(self.path, self.commit_interval)
        self._run: tuple | None = None
        self._precision: str | None = None
        self._outcome: tuple | None = None
        self._written = [0, 0]  # evaluation and iteration rows written
        self._blocks = [0, 0]  # evaluation and iteration blocks written
        self._best_written = 0  # sequence number of the last stored best point
        self.committed = time.perf_counter()

    def start_run(self, *, method: str, backend: str, precision: str, n: int, options: dict, structure: Any) -> None:
        """Queue the run's row; the writer inserts it before the run's first records."""
        if isinstance(structure, np.ndarray) and structure.ndim == 1:
            template = None  # the flat vector is the structure
        else:
            try:
                template = pickle.dumps(structure)
            except Exception:  # a structure with unpicklable containers is stored flat only
                template = None
        self._run = (time.time(), method, backend, precision, _json_safe(options), n, template)
        self.committed = time.perf_counter()
        self._file.runs.append(self)

    def set_precision(self, precision: str) -> None:
        self._precision = precision

    # -- writing (by the file's writer thread while the solve runs, then by its finish) -------
    def _take(self, rows: list, which: int) -> list:
        """The rows not written yet; rows the solve appends meanwhile wait for the next block."""
        if self._owns:
            taken = rows[:]
            del rows[: len(taken)]
        else:
            taken = rows[self._written[which]:]
        self._written[which] += len(taken)
        return taken

    def _write(self, connection: sqlite3.Connection) -> None:
        """Insert the run's row if it is new, then a block of the records kept since, then the outcome."""
        if self._run is None:
            return
        if self.run_id is None:
            self.run_id = connection.execute(
                "INSERT INTO runs (started, method, backend, precision, options, n, structure) VALUES (?, ?, ?, ?, ?, ?, ?)",
                self._run,
            ).lastrowid
        if self._precision is not None:
            connection.execute("UPDATE runs SET precision = ? WHERE run_id = ?", (self._precision, self.run_id))
            self._precision = None
        self._write_evaluations(connection)
        self._write_iterations(connection)
        if self._outcome is not None:
            connection.execute(
                "UPDATE runs SET status = ?, success = ?, message = ?, finished = ?, best_f = ?, best_x = ? WHERE run_id = ?",
                self._outcome + (self.run_id,),
            )
        self.committed = time.perf_counter()

    def _write_evaluations(self, connection: sqlite3.Connection) -> None:
        # read before the rows are taken (the history sets it before adding its row): its row
        # is among them or, still being added, comes with a later block
        best_seq, best_x = self._journal.best
        first = self._written[0] + 1
        rows = self._take(self._journal._evaluation_rows, 0)
        if not rows:
            return
        kinds, times, values, norms = zip(*rows)
        stored = self._best_written < best_seq < first + len(rows)
        connection.execute(
            "INSERT INTO evaluation_blocks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.run_id, self._blocks[0], first, len(rows), _little_endian("d", times), bytes(map(_KIND_CODES.__getitem__, kinds)),
                _little_endian("d", values), _little_endian("d", norms), best_seq if stored else None,
                best_x.tobytes() if stored else None,
            ),
        )
        if stored:
            self._best_written = best_seq
        self._blocks[0] += 1

    def _write_iterations(self, connection: sqlite3.Connection) -> None:
        rows = self._take(self._journal._iteration_rows, 1)
        if not rows:
            return
        nit, times, values, norms, nfev, points, njev = zip(*rows)
        connection.execute(
            "INSERT INTO iteration_blocks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.run_id, self._blocks[1], len(rows), _little_endian("q", nit), _little_endian("d", times), _little_endian("d", values),
                _little_endian("d", norms), _little_endian("q", nfev), _little_endian("q", njev),
                np.stack(points).astype(np.float64, copy=False).tobytes() if self.iterates else None,
            ),
        )
        self._blocks[1] += 1

    def finish(self, *, status: Any, success: bool, message: str, best_f: float, best_x: np.ndarray | None) -> None:
        """Write what is left and the run's outcome; the rows are committed on return."""
        if self in self._file.runs:
            self._file.runs.remove(self)
        self._outcome = (
            None if status is None else int(status),
            int(bool(success)),
            str(message),
            time.time(),
            float(best_f),
            None if best_x is None else np.asarray(best_x, dtype=np.float64).tobytes(),
        )
        self._file.write([self])


@dataclass
class LoggedRun:
    """One run read back from a log file.

    ``x`` is the best point in x0's structure (NumPy leaves) when the structure could be
    stored, else the flat vector; ``best_x`` is always the flat vector. ``finished`` is
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


def _structure(template: bytes | None, flat: np.ndarray | None) -> Any:
    if flat is None or template is None:
        return flat
    import optree

    structure = pickle.loads(template)
    leaves, treedef = optree.tree_flatten(structure)
    sizes = np.cumsum([0] + [np.size(leaf) for leaf in leaves])
    parts = [
        flat[a:b].reshape(np.shape(leaf)) if np.ndim(leaf) else float(flat[a])
        for leaf, a, b in zip(leaves, sizes, sizes[1:])
    ]
    return optree.tree_unflatten(treedef, parts)


def _columns(blocks: list[tuple], dtypes: tuple) -> list[np.ndarray]:
    """The blocks' arrays joined column by column."""
    return [
        np.concatenate([np.frombuffer(block[i], dtype=dtype) for block in blocks]) if blocks else np.empty(0, dtype)
        for i, dtype in enumerate(dtypes)
    ]


def read_log(path: str | os.PathLike, run: int | None = None) -> LoggedRun:
    """Read one run of a log file (the last one by default): its history and best point.

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
    if not os.path.exists(path):
        raise FileNotFoundError(f"log={os.fspath(path)!r}: no such file.")
    connection = sqlite3.connect(f"file:{os.fspath(path)}?mode=ro", uri=True)
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"{os.fspath(path)!r} is not an autominimize log of this version (its layout is "
                f"{version}, this version reads {SCHEMA_VERSION})."
            )
        if run is None:
            row = connection.execute("SELECT max(run_id) FROM runs").fetchone()
            if row is None or row[0] is None:
                raise ValueError(f"{os.fspath(path)!r} holds no run.")
            run = row[0]
        meta = connection.execute(
            "SELECT run_id, method, backend, precision, options, started, finished, success, message, best_f, best_x, structure, n FROM runs WHERE run_id = ?",
            (run,),
        ).fetchone()
        if meta is None:
            runs = [r[0] for r in connection.execute("SELECT run_id FROM runs ORDER BY run_id")]
            raise ValueError(f"run={run!r} is not in {os.fspath(path)!r}; its runs are {runs}.")
        evaluation_blocks = connection.execute(
            "SELECT time, kind, f, grad_norm, best_seq, best_x FROM evaluation_blocks WHERE run_id = ? ORDER BY block", (run,)
        ).fetchall()
        iteration_blocks = connection.execute(
            "SELECT nit, time, f, grad_norm, nfev, njev, x FROM iteration_blocks WHERE run_id = ? ORDER BY block", (run,)
        ).fetchall()
    finally:
        connection.close()
    evaluations = _columns(evaluation_blocks, (np.float64, np.uint8, np.float64, np.float64))
    iterations = _columns(iteration_blocks, (np.int64, np.float64, np.float64, np.float64, np.int64, np.int64))
    if iteration_blocks and iteration_blocks[0][6] is not None:  # the log kept the iterates
        points = list(np.frombuffer(b"".join(block[6] for block in iteration_blocks)).reshape(-1, meta[12]))
    else:
        points = [None] * len(iterations[0])
    history = History.from_columns(
        (evaluations[1], evaluations[0], evaluations[2], evaluations[3]), (*iterations, points)
    )
    if meta[11] is not None:
        from .params import ParamSpec

        spec = ParamSpec.from_tree(pickle.loads(meta[11]))
        history.leaves = [(leaf.path, a, b) for leaf, a, b in zip(spec.leaves, spec.offsets, spec.offsets[1:])]
    best_f, best_x = meta[9], None if meta[10] is None else np.frombuffer(meta[10]).copy()
    best_points = [(seq, raw) for *_, seq, raw in evaluation_blocks if raw is not None]
    if best_x is None and best_points:  # the run did not finish: each stored point beats the earlier ones
        seq, raw = best_points[-1]
        best_f, best_x = float(evaluations[2][seq - 1]), np.frombuffer(raw).copy()
    return LoggedRun(
        run_id=meta[0], method=meta[1], backend=meta[2], precision=meta[3], options=json.loads(meta[4] or "{}"),
        started=meta[5], finished=meta[6], success=None if meta[7] is None else bool(meta[7]), message=meta[8],
        best_f=np.inf if best_f is None else best_f, best_x=best_x, x=_structure(meta[11], best_x), history=history,
    )

