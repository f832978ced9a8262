"""Where a run is recorded: its history, SQLite log, progress bar, callbacks and Ctrl-C.

Every family attaches these the same way: :func:`recorders` turns a solve's ``history=``,
``log=``, ``progress=`` and ``loss_callback=`` into observers and sinks, ``resume=`` reads
its starting point with :func:`.log_reader.resume_point`, and :mod:`.interrupts` makes one Ctrl-C end a
whole run.
"""

from .history import History
from .interrupts import attach_best, in_nested_solve, nested_solves
from .sinks import recorders

# the log's modules (and sqlite3) are not imported here: a solve without log= or resume= never loads them
__all__ = ["History", "attach_best", "in_nested_solve", "nested_solves", "recorders"]
