"""One BLAS thread around scipy's solvers, without rescanning the process on every solve.

Multi-threaded BLAS made L-BFGS-B up to 10x slower on a loaded 2-core machine (the research
notes): scipy's L-BFGS-B calls BLAS on tiny vectors. ``threadpoolctl.threadpool_limits``
inspects every loaded shared library each time (about 2 ms); a controller built once and
rebuilt only when a framework has been imported since costs about 10 µs per solve.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

from threadpoolctl import ThreadpoolController

_FRAMEWORKS = ("torch", "jax", "tensorflow")
_controller: tuple[tuple[bool, ...], object] | None = None


def _blas_pools():
    global _controller
    loaded = tuple(name in sys.modules for name in _FRAMEWORKS)
    if _controller is None or _controller[0] != loaded:
        _controller = (loaded, ThreadpoolController().select(user_api="blas"))
    return _controller[1]


@contextlib.contextmanager
def single_blas_thread() -> Iterator[None]:
    """Limit every BLAS library loaded in the process to one thread, then restore it."""
    limiter = _blas_pools().limit(limits=1)
    try:
        yield
    finally:
        limiter.restore_original_limits()
