"""Reading a run back from a log file: :func:`read_log`, and :func:`resume_point` for ``resume=``.

Reading runs nothing from the file: the structure is JSON rebuilt by
:func:`~autominimize.recording.structure.rebuild`, and a file that is not a log of this
layout, damaged or crafted raises :class:`~autominimize.recording.log_schema.LogError`.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..params import ParamSpec
from .history import EVALUATION_KINDS, History
from .log_schema import SCHEMA_VERSION, LogError, check_tables, uri
from .structure import check_description, leaf_shapes, rebuild

__all__ = ["LoggedRun", "read_log", "resume_point"]


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


def _size_or_zero(path: str) -> int:
    """The size of ``path``, 0 if it is gone: SQLite removes a write-ahead log once it has
    copied it into the file, which a connection closing in another thread may do at any time."""
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def _open_for_reading(path: str) -> sqlite3.Connection:
    """A read-only connection to exactly ``path`` that creates no file, and whose work and
    memory are bounded by the file's size."""
    wal = os.path.exists(path + "-wal")
    # Without a write-ahead log nobody writes the file: 'immutable' reads it without the
    # side files SQLite would otherwise create. With one (a run going on, or killed), the
    # committed rows in it are read too.
    connection = sqlite3.connect(uri(path, "ro") + ("" if wal else "&immutable=1"), uri=True, isolation_level=None)
    size = os.path.getsize(path) + (_size_or_zero(path + "-wal") if wal else 0)
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
    check_tables(connection, repr(name))


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


def _point(blob: Any, n: int, what: str, name: str) -> np.ndarray:
    """A stored point: n finite numbers (x0 and every point kept as the best are finite)."""
    point = _array(blob, np.float64, n, what, name)
    bad = np.flatnonzero(~np.isfinite(point))
    if bad.size:
        raise LogError(f"{name!r} is damaged: {what} is not finite ({point[bad[0]]} at index {int(bad[0])}).")
    return point.astype(np.float64)


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
            raise LogError(
                f"{name!r} is damaged: its evaluation blocks do not follow one another (block {expected_block} starting at evaluation {total + 1} is missing)."
            )
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
            _point(best_x, n, f"the best point of {where}", name)
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
    return _read_named(path, run, "path")


def _read_named(path: str | os.PathLike, run: int | None, argument: str) -> LoggedRun:
    """:func:`read_log`, its errors naming the file by the ``argument`` that gave it."""
    if not isinstance(path, (str, os.PathLike)):
        what = "the log's file path" if argument == "path" else "the file path of a log written with log="
        raise TypeError(f"{argument} must be {what} (a str or os.PathLike); got {type(path).__name__}.")
    name = os.fspath(path)
    if run is not None and (isinstance(run, bool) or not isinstance(run, (int, np.integer))):
        raise TypeError(f"run must be a run id (an integer) or None for the last run; got {run!r}.")
    if not os.path.exists(name):
        raise FileNotFoundError(f"{argument}={name!r}: no such file; give the path of a log written with log=.")
    if not os.path.isfile(name):
        raise LogError(f"{argument}={name!r} is not a file; give the path of a log written with log=.")
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
            check_description(description, n)
        except ValueError as exc:
            raise LogError(f"{name!r} is damaged: {exc}.") from None
    best_x = None if best_x is None else _point(best_x, n, "the run's best point", name)
    evaluations, best_points = _evaluation_columns(evaluation_blocks, n, name)
    iterations = _iteration_columns(iteration_blocks, n, name)
    for count, found, what in zip(counts, (evaluations[0].size, len(iterations[-1])), ("evaluations", "iterations")):
        if _typed(count, (int,), f"the run's count of {what}", name) != found:
            raise LogError(f"{name!r} is damaged: its blocks hold {found} {what} of run {run_id}, which wrote {count}.")
    history = History.from_columns(evaluations, iterations)
    if description is not None:
        offsets = np.cumsum([0] + [math.prod(shape) for _, shape in leaf_shapes(description)]).tolist()
        history.leaves = [(path, a, b) for (path, _), a, b in zip(leaf_shapes(description), offsets, offsets[1:])]
    if best_x is None and best_points:  # the run did not finish: each stored point beats the earlier ones
        seq, raw = best_points[-1]
        best_f, best_x = float(evaluations[2][seq - 1]), np.frombuffer(raw, dtype="<f8").astype(np.float64)
    x = best_x
    if best_x is not None and description is not None:
        x = rebuild(description, best_x)
    return LoggedRun(
        run_id=run_id,
        method=method,
        backend=backend,
        precision=precision,
        options=options,
        started=float(started),
        finished=None if finished is None else float(finished),
        success=None if success is None else bool(success),
        message=message,
        best_f=np.inf if best_f is None else float(best_f),
        best_x=best_x,
        x=x,
        history=history,
        structure=description,
        note=None if description is None else description["note"],
    )


def resume_point(path: str | os.PathLike, spec: ParamSpec) -> np.ndarray:
    """The best point of the last run in ``path``, checked against x0's structure ``spec``:
    the leaves' paths and shapes must be those the run had; a LogError names those that differ."""
    logged = _read_named(path, None, "resume")
    name = os.fspath(path)
    if logged.best_x is None:
        raise LogError(f"resume={name!r}: its last run (run {logged.run_id}) recorded no point to resume from.")
    current = [(leaf.path, tuple(leaf.shape)) for leaf in spec.leaves]
    stored = leaf_shapes(logged.structure) if logged.structure is not None else [("x0", (logged.best_x.size,))]
    if stored != current:
        sizes = (
            f"its last run has {logged.best_x.size} parameters but x0 has {spec.size}"
            if logged.best_x.size != spec.size
            else "x0 is not structured as its last run was"
        )
        raise LogError(f"resume={name!r}: {sizes}: " + _differences(stored, current) + ".")
    return logged.best_x.copy()


def _differences(stored: list[tuple[str, tuple]], current: list[tuple[str, tuple]]) -> str:
    logged, now = dict(stored), dict(current)
    parts = [f"{path} has shape {now[path]} in x0 but {logged[path]} in the log" for path in now if path in logged and logged[path] != now[path]]
    parts += [f"{path} is in x0 but not in the log" for path in now if path not in logged]
    parts += [f"{path} is in the log but not in x0" for path in logged if path not in now]
    return "; ".join(parts) if parts else "its leaves are those of x0 in another order"
