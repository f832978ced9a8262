"""A crash-safe SQLite log of solves, written as they run, and read back with ``read_log``.

Schema (one file holds any number of runs):

``runs``
    ``run_id`` INTEGER PRIMARY KEY, ``started`` (Unix time), ``method``, ``backend``,
    ``precision``, ``options`` (JSON of the solve's arguments), ``n`` (number of parameters),
    ``structure`` (pickled x0 structure with NumPy leaves, or NULL), ``status``,
    ``success``, ``message``, ``finished`` (NULL while running or after a crash),
    ``best_f``, ``best_x`` (float64 bytes).
``evaluations``
    ``run_id``, ``seq`` (1, 2, ...), ``time`` (seconds since the run started), ``kind``
    (value, value_and_gradient, gradient, hvp, hessian, finite-difference, failed, repeat),
    ``f``, ``grad_norm``, ``x`` (float64 bytes of the best point so far, on the last
    evaluation of each commit that improved on it; NULL elsewhere).
``iterations``
    ``run_id``, ``nit``, ``time``, ``f``, ``grad_norm``, ``nfev``, ``njev``, ``x`` (bytes).

The file uses write-ahead logging. The solve's thread commits what it has queued every
``commit_interval`` seconds and at the end; the file's writer thread commits what has waited
longer than that (a slow objective), so a process killed mid-run leaves every committed row
readable and loses at most the last ``commit_interval`` seconds.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import pickle
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .history import Evaluation, History, Iteration, grad_norm

__all__ = ["SQLiteLog", "read_log", "LoggedRun"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY, started REAL, method TEXT, backend TEXT, precision TEXT,
    options TEXT, n INTEGER, structure BLOB, status INTEGER, success INTEGER, message TEXT,
    finished REAL, best_f REAL, best_x BLOB);
CREATE TABLE IF NOT EXISTS evaluations (
    run_id INTEGER, seq INTEGER, time REAL, kind TEXT, f REAL, grad_norm REAL, x BLOB);
CREATE TABLE IF NOT EXISTS iterations (
    run_id INTEGER, nit INTEGER, time REAL, f REAL, grad_norm REAL, nfev INTEGER, njev INTEGER,
    x BLOB);
CREATE INDEX IF NOT EXISTS evaluations_run ON evaluations (run_id, seq);
CREATE INDEX IF NOT EXISTS iterations_run ON iterations (run_id, nit);
"""


class _FileWriter:
    """The one connection and watchdog thread of a log file in this process.

    Closing a WAL database checkpoints it (copies the log into the file and syncs), which
    costs more than a short solve, and starting a thread per solve costs more than writing
    its rows: both live until the process exits. Runs commit their own rows as they go; every
    ``commit_interval`` seconds the thread commits the rows of a run that has not done so for
    that long (its objective is slow). The solve does the writing itself because on a fast
    objective a second thread writing at the same time costs more in hand-offs of the
    interpreter lock than the writing does.
    """

    def __init__(self, path: str, commit_interval: float):
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=NORMAL")
        self.connection.executescript(_SCHEMA)
        self.commit_interval = commit_interval
        self.lock = threading.Lock()  # one writer at a time: the thread or a finishing run
        self.runs: list[SQLiteLog] = []
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

    def write(self, runs: list["SQLiteLog"]) -> None:
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


def _json_safe(options: dict) -> str:
    return json.dumps(options, default=repr, sort_keys=True)


class SQLiteLog:
    """Observer writing one run's evaluations and iterations to an SQLite file.

    Parameters
    ----------
    path
        The file; created if missing. Runs already in it are kept.
    commit_interval
        Seconds between commits while the run goes on.
    """

    def __init__(self, path: str | os.PathLike, commit_interval: float = 0.5):
        self.path = os.fspath(path)
        self.commit_interval = commit_interval
        self.run_id: int | None = None
        self._file = _file_writer(self.path, commit_interval)
        self._run: tuple | None = None
        self._precision: str | None = None
        self._outcome: tuple | None = None
        self._evaluations: collections.deque[tuple] = collections.deque()
        self._iterations: collections.deque[tuple] = collections.deque()
        self._seq = 0
        self._best = np.inf
        self._start = self.committed = time.perf_counter()

    def start_run(self, *, method: str, backend: str, precision: str, n: int, options: dict, structure: Any) -> None:
        """Queue the run's row; the writer inserts it before the run's first evaluation."""
        try:
            template = pickle.dumps(structure)
        except Exception:  # a structure with unpicklable containers is stored flat only
            template = None
        self._run = (time.time(), method, backend, precision, _json_safe(options), n, template)
        self._start = self.committed = time.perf_counter()
        self._file.runs.append(self)

    def set_precision(self, precision: str) -> None:
        self._precision = precision

    # -- observer -----------------------------------------------------------------------
    def evaluation(self, kind: str, x: np.ndarray, f: float, grad: np.ndarray | None, count: int) -> None:
        stored_x = None
        if f < self._best:
            self._best = f
            stored_x = x.tobytes()
        gn = grad_norm(grad)
        now = time.perf_counter()
        self._evaluations.append((now - self._start, kind, f, gn, stored_x, count))
        if now - self.committed >= self.commit_interval:
            self._file.write([self])

    def iteration(self, nit: int, x: np.ndarray, f: float, grad: np.ndarray | None, counts: Any) -> None:
        gn = grad_norm(grad)
        self._iterations.append(
            (nit, time.perf_counter() - self._start, f, gn, counts.nfev, counts.njev, x.tobytes())
        )

    # -- writing (by the solve, its finish, or the file's watchdog thread) -------------------
    def _write(self, connection: sqlite3.Connection) -> None:
        """Insert the run's row if it is new, then every row queued so far, then the outcome."""
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
        queued = [self._evaluations.popleft() for _ in range(len(self._evaluations))]
        iterations = [(self.run_id,) + self._iterations.popleft() for _ in range(len(self._iterations))]
        # Each stored point improves on every earlier one: the last of a commit is enough
        last_point = max((i for i, row in enumerate(queued) if row[4] is not None), default=-1)
        evaluations = []
        for i, (elapsed, kind, f, gn, stored_x, count) in enumerate(queued):
            for _ in range(count):
                self._seq += 1
                evaluations.append((self.run_id, self._seq, elapsed, kind, f, gn, stored_x if i == last_point else None))
        connection.executemany("INSERT INTO evaluations VALUES (?, ?, ?, ?, ?, ?, ?)", evaluations)
        connection.executemany("INSERT INTO iterations VALUES (?, ?, ?, ?, ?, ?, ?, ?)", iterations)
        if self._outcome is not None:
            connection.execute(
                "UPDATE runs SET status = ?, success = ?, message = ?, finished = ?, best_f = ?, best_x = ? WHERE run_id = ?",
                self._outcome + (self.run_id,),
            )
        self.committed = time.perf_counter()

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
        evaluations = connection.execute(
            "SELECT kind, time, f, grad_norm, x FROM evaluations WHERE run_id = ? ORDER BY seq", (run,)
        ).fetchall()
        iterations = connection.execute(
            "SELECT nit, time, f, grad_norm, nfev, x FROM iterations WHERE run_id = ? ORDER BY nit", (run,)
        ).fetchall()
    finally:
        connection.close()
    history = History(
        evaluations=[Evaluation(kind, t, f if f is not None else np.nan, g if g is not None else np.nan) for kind, t, f, g, _ in evaluations],
        iterations=[Iteration(nit, t, f, g if g is not None else np.nan, nfev, np.frombuffer(x)) for nit, t, f, g, nfev, x in iterations],
    )
    if meta[11] is not None:
        from .params import ParamSpec

        spec = ParamSpec.from_tree(pickle.loads(meta[11]))
        history.leaves = [(leaf.path, a, b) for leaf, a, b in zip(spec.leaves, spec.offsets, spec.offsets[1:])]
    best_f, best_x = meta[9], None if meta[10] is None else np.frombuffer(meta[10]).copy()
    if best_x is None:  # the run did not finish: take the best committed evaluation
        finite = [(f, x) for _, _, f, _, x in evaluations if x is not None and f is not None]
        if finite:
            best_f, raw = min(finite, key=lambda item: item[0])
            best_x = np.frombuffer(raw).copy()
    return LoggedRun(
        run_id=meta[0], method=meta[1], backend=meta[2], precision=meta[3], options=json.loads(meta[4] or "{}"),
        started=meta[5], finished=meta[6], success=None if meta[7] is None else bool(meta[7]), message=meta[8],
        best_f=np.inf if best_f is None else best_f, best_x=best_x, x=_structure(meta[11], best_x), history=history,
    )

