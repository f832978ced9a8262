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
    (value, value_and_gradient, gradient, hvp, hessian, finite-difference), ``f``,
    ``grad_norm``, ``x`` (float64 bytes, stored only when ``f`` improves on the best so far).
``iterations``
    ``run_id``, ``nit``, ``time``, ``f``, ``grad_norm``, ``nfev``, ``njev``, ``x`` (bytes).

The file uses write-ahead logging; a writer thread commits rows in batches (every
``commit_interval`` seconds or ``batch_rows`` evaluations, and at the end), so a process
killed mid-run leaves every committed row readable.
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


_connections: dict[str, sqlite3.Connection] = {}
_connections_lock = threading.Lock()


def _connection(path: str) -> sqlite3.Connection:
    """One open connection per file and process.

    Closing a WAL database checkpoints it (copies the log into the file and syncs), which
    costs more than a short solve; keeping the connection open until the process exits
    makes a second solve's log nearly free. Rows are committed all the same.
    """
    key = os.path.abspath(path)
    with _connections_lock:
        connection = _connections.get(key)
        if connection is None:
            connection = sqlite3.connect(key, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.executescript(_SCHEMA)
            _connections[key] = connection
        return connection


@atexit.register
def _close_connections() -> None:
    with _connections_lock:
        for connection in _connections.values():
            connection.close()
        _connections.clear()


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

    def __init__(self, path: str | os.PathLike, commit_interval: float = 0.5, batch_rows: int = 256):
        self.path = os.fspath(path)
        self.commit_interval = commit_interval
        self.batch_rows = batch_rows
        self.connection = _connection(self.path)
        self.run_id: int | None = None
        # The solve appends rows; a writer thread commits them (sqlite releases the GIL while it
        # writes, so on a multi-core machine the writing overlaps the solve).
        self._evaluations: collections.deque[tuple] = collections.deque()
        self._iterations: collections.deque[tuple] = collections.deque()
        self._wake = threading.Event()
        self._stop = False
        self._writer: threading.Thread | None = None
        self._seq = 0
        self._best = np.inf
        self._start = time.perf_counter()

    def start_run(self, *, method: str, backend: str, precision: str, n: int, options: dict, structure: Any) -> int:
        try:
            template = pickle.dumps(structure)
        except Exception:  # a structure with unpicklable containers is stored flat only
            template = None
        with _connections_lock:
            cursor = self.connection.execute(
                "INSERT INTO runs (started, method, backend, precision, options, n, structure) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (time.time(), method, backend, precision, _json_safe(options), n, template),
            )
            self.run_id = cursor.lastrowid
        self._start = time.perf_counter()
        self._writer = threading.Thread(target=self._write_loop, name="autominimize-log-writer", daemon=True)
        self._writer.start()
        return self.run_id

    def set_precision(self, precision: str) -> None:
        with _connections_lock:
            self.connection.execute("UPDATE runs SET precision = ? WHERE run_id = ?", (precision, self.run_id))

    # -- observer -----------------------------------------------------------------------
    def evaluation(self, kind: str, x: np.ndarray, f: float, grad: np.ndarray | None, count: int) -> None:
        stored_x = None
        if f < self._best:
            self._best = f
            stored_x = x.tobytes()
        row = (self.run_id, 0, time.perf_counter() - self._start, kind, f, grad_norm(grad), stored_x)
        for _ in range(count):
            self._seq += 1
            self._evaluations.append((row[0], self._seq) + row[2:])
        if len(self._evaluations) >= self.batch_rows:
            self._wake.set()

    def iteration(self, nit: int, x: np.ndarray, f: float, grad: np.ndarray | None, counts: dict) -> None:
        self._iterations.append(
            (self.run_id, nit, time.perf_counter() - self._start, f, grad_norm(grad), counts["nfev"], counts["njev"], x.tobytes())
        )

    # -- writing ------------------------------------------------------------------------
    def _write_loop(self) -> None:
        while not self._stop:
            self._wake.wait(self.commit_interval)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Commit every row buffered so far."""
        evaluations = [self._evaluations.popleft() for _ in range(len(self._evaluations))]
        iterations = [self._iterations.popleft() for _ in range(len(self._iterations))]
        if not (evaluations or iterations):
            return
        with _connections_lock, self.connection:
            self.connection.execute("BEGIN")
            self.connection.executemany("INSERT INTO evaluations VALUES (?, ?, ?, ?, ?, ?, ?)", evaluations)
            self.connection.executemany("INSERT INTO iterations VALUES (?, ?, ?, ?, ?, ?, ?, ?)", iterations)

    def finish(self, *, status: Any, success: bool, message: str, best_f: float, best_x: np.ndarray | None) -> None:
        """Stop the writer, write what is left and the run's outcome."""
        if self._writer is not None:
            self._stop = True
            self._wake.set()
            self._writer.join()
        self.flush()
        with _connections_lock:
            self._update_run(status, success, message, best_f, best_x)

    def _update_run(self, status: Any, success: bool, message: str, best_f: float, best_x: np.ndarray | None) -> None:
        self.connection.execute(
            "UPDATE runs SET status = ?, success = ?, message = ?, finished = ?, best_f = ?, best_x = ? WHERE run_id = ?",
            (
                None if status is None else int(status),
                int(bool(success)),
                str(message),
                time.time(),
                float(best_f),
                None if best_x is None else np.asarray(best_x, dtype=np.float64).tobytes(),
                self.run_id,
            ),
        )


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

