"""The one connection and writer thread of each log file this process writes.

Runs queue their records with the file's :class:`FileWriter`; its thread commits them every
``commit_interval`` seconds, and retries a commit that failed for a reason that may pass (a
lock held too long, a full disk). A log failure never turns a solve into an exception: it
is returned as a reason, and a file that no attempt can write any more is marked broken.
"""

from __future__ import annotations

import atexit
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .log_schema import LogError, prepare_layout, uri

if TYPE_CHECKING:
    from .log_writer import RunLog, SQLiteLog

__all__ = ["FileWriter", "file_writer"]

#: seconds between retries of a commit that failed for a reason that may pass, at most
_MAX_BACKOFF = 30.0


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
        connection = sqlite3.connect(uri(path, "rwc"), uri=True, isolation_level=None, check_same_thread=False, timeout=timeout)
    except sqlite3.Error as exc:
        raise LogError(f"log={path!r} cannot be opened: {exc}.") from None
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA trusted_schema = OFF")  # no function the file's schema names is run
        # Copy the write-ahead log into the file (which syncs it) every 64 MB of pages rather
        # than SQLite's 4 MB: those syncs cost more than the writing on a fast objective.
        connection.execute("PRAGMA wal_autocheckpoint = 16384")
    except sqlite3.Error as exc:
        if not _may_pass(exc):  # a lock or a full disk: the file keeps its mode, the writes are retried
            connection.close()
            raise LogError(f"log={path!r} is not an SQLite file that can be written ({exc}); give a new file name.") from None
    return connection


class FileWriter:
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
                prepare_layout(connection, self.path)
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


_files: dict[str, FileWriter] = {}
_files_lock = threading.Lock()


def file_writer(settings: SQLiteLog) -> FileWriter:
    """The writer of the file ``settings`` names: the one this process has, or a new one."""
    key = os.path.abspath(settings.path)
    with _files_lock:
        writer = _files.get(key)
        if writer is not None and (writer.broken is not None or _identity(key) != writer.identity):
            writer.close()  # a file removed or replaced since: start a new one at the path
            writer = None
        if writer is None:
            writer = _files[key] = FileWriter(key, settings)
        return writer


@atexit.register
def _close_files() -> None:
    with _files_lock:
        for writer in _files.values():
            writer.close()
        _files.clear()
