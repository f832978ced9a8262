"""A crash-safe SQLite log of solves, written as they run, and read back with ``read_log``.

Schema (one file holds any number of runs; ``PRAGMA user_version`` is 3). Rows of the two
block tables hold every record of one commit, column by column, as little-endian arrays
(``numpy.frombuffer(blob, dtype)``): a row per record would cost more than a fast
objective's evaluation.

``runs``
    ``run_id`` INTEGER PRIMARY KEY, ``started`` (Unix time), ``method``, ``backend``,
    ``precision``, ``options`` (JSON of the solve's arguments), ``n`` (number of parameters),
    ``structure`` (JSON describing x0's structure: containers, keys, and each leaf's path,
    shape, dtype and array type; see :mod:`autominimize.recording.structure`),
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

The file uses write-ahead logging. :mod:`~autominimize.recording.log_writer` writes it while
the solve runs and :mod:`~autominimize.recording.log_reader` reads it back; this module holds
what both agree on: the tables, the layout version and the error a file that is not a usable
log raises.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse

from .history import EVALUATION_KINDS

__all__ = ["KIND_CODES", "SCHEMA_VERSION", "TABLES", "LogError", "check_tables", "expected_columns", "prepare_layout", "uri"]

#: ``PRAGMA user_version`` of the files this version writes and reads
SCHEMA_VERSION = 3
#: the code stored for each evaluation kind
KIND_CODES = {kind: code for code, kind in enumerate(EVALUATION_KINDS)}
#: the tables of a log, in the order the schema creates them
TABLES = ("runs", "evaluation_blocks", "iteration_blocks")

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


def uri(path: str, mode: str) -> str:
    """An SQLite URI naming exactly ``path``: every character of the name is quoted, so '%',
    '?', '#' or a leading 'file:' are part of the name."""
    return f"file:{urllib.parse.quote(os.path.abspath(path))}?mode={mode}"


def prepare_layout(connection: sqlite3.Connection, path: str) -> None:
    """Inside a write transaction: create the tables and layout version of a new file, or
    check that an existing file has them."""
    tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master")}
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if not tables and version == 0:
        for statement in _SCHEMA:  # not executescript, which would commit first
            connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    elif version != SCHEMA_VERSION:
        raise LogError(
            f"log={path!r} is not an autominimize log of this version (its layout is {version}, "
            f"this version writes {SCHEMA_VERSION}); give a new file name."
        )
    elif not set(TABLES) <= tables:
        missing = ", ".join(sorted(set(TABLES) - tables))
        raise LogError(f"log={path!r} is not an autominimize log of this version: it has no table {missing}; give a new file name.")
    else:
        check_tables(connection, f"log={path!r}", "; give a new file name")


def check_tables(connection: sqlite3.Connection, label: str, advice: str = "") -> None:
    """Refuse a file that holds anything besides the log's tables and their columns: a
    trigger, a view, an index on an expression or a generated column would run SQL the file
    holds when it is read or written. ``label`` names the file in the message."""
    objects = connection.execute("SELECT type, name FROM sqlite_master").fetchall()
    expected = expected_columns()
    tables = {(kind, table) for kind, table in objects if not (kind == "index" and table.startswith("sqlite_autoindex_"))}
    if tables != {("table", table) for table in expected}:
        raise LogError(f"{label} is not a log this version wrote: it holds {sorted(tables)}, not exactly the tables {sorted(expected)}{advice}.")
    for table, columns in expected.items():
        found = [(row[1], row[2]) for row in connection.execute(f"PRAGMA table_xinfo({table})") if row[6] == 0]
        hidden = [row[1] for row in connection.execute(f"PRAGMA table_xinfo({table})") if row[6] != 0]
        if found != columns or hidden:
            raise LogError(f"{label} is not a log this version wrote: its table {table} has columns {found + hidden}, not {columns}{advice}.")


#: filled by the first call of expected_columns
_COLUMNS: dict[str, list[tuple[str, str]]] = {}


def expected_columns() -> dict[str, list[tuple[str, str]]]:
    """The columns (name, declared type) of each table, as the schema creates them."""
    if not _COLUMNS:
        with sqlite3.connect(":memory:") as memory:
            for statement in _SCHEMA:
                memory.execute(statement)
            for table in TABLES:
                _COLUMNS[table] = [(row[1], row[2]) for row in memory.execute(f"PRAGMA table_xinfo({table})")]
    return _COLUMNS
