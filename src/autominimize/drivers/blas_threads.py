"""One BLAS thread around scipy's solvers, without rescanning the process on every solve.

Multi-threaded BLAS made L-BFGS-B up to 10x slower on a loaded 2-core machine (the research
notes): scipy's L-BFGS-B calls BLAS on tiny vectors. ``threadpoolctl.threadpool_limits``
inspects every loaded shared library each time (about 2 ms); a controller built once and
rebuilt only when a framework has been imported since costs about 2 µs per solve.
"""

from __future__ import annotations

import sys
from typing import ContextManager

from threadpoolctl import ThreadpoolController

_controller: tuple[tuple[bool, ...], object] | None = None


def _blas_pools():
    global _controller
    modules = sys.modules  # written out: a generator's frames at every solve
    loaded = ("torch" in modules, "jax" in modules, "tensorflow" in modules)
    if _controller is None or _controller[0] != loaded:
        _controller = (loaded, ThreadpoolController().select(user_api="blas"))
    return _controller[1]


class _SingleBlasThread:
    """The context of :func:`single_blas_thread`: a class, as a generator-based context
    manager costs 1 µs more per solve."""

    __slots__ = ("changed",)

    def __enter__(self) -> None:
        self.changed = []
        for library in _blas_pools().lib_controllers:
            threads = library.num_threads
            if threads is not None and threads != 1:
                library.set_num_threads(1)
                self.changed.append((library, threads))

    def __exit__(self, *exc_info: object) -> None:
        for library, threads in self.changed:
            library.set_num_threads(threads)


def single_blas_thread() -> ContextManager[None]:
    """Limit every BLAS library loaded in the process to one thread, then restore it.

    Each library is asked for its thread count and changed only if it is not one already
    (``ThreadpoolController.limit`` queries and sets every library, about 9 µs per solve).
    """
    return _SingleBlasThread()
