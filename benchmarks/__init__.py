"""``python -m benchmarks``: how fast am.minimize is next to hand-written derivatives.

Every cell is solved by (a) scipy fed hand-written NumPy value-and-gradient (and hessp /
hess), the reference; (b) scipy fed a hand-written jitted JAX value_and_grad (and jvp-of-grad
HVP / jax.hessian); am.minimize with the jax, torch, tensorflow and numpy (hand-written jac)
backends; and scipy fed hand-written torch autograd and tf.function baselines. Times are
medians of interleaved warm repeats in float64 with every thread pool at one thread.

>>> from benchmarks import run            # doctest: +SKIP
>>> rows = run(["rosen2"], repeats=3)              # doctest: +SKIP
>>> rows[0]["ratios"]["am-jax"]                    # doctest: +SKIP

Importing this module imports no framework.
"""

from .contenders import CONTENDERS, Contender
from .problems import CELLS, QUICK_CELLS, Cell, Problem, select_cells
from .report import format_import, format_summary, format_table
from .runner import RTOL, import_time, run, run_cell, setup_threads

__all__ = [
    "run",
    "run_cell",
    "import_time",
    "setup_threads",
    "format_table",
    "format_summary",
    "format_import",
    "CELLS",
    "QUICK_CELLS",
    "CONTENDERS",
    "Cell",
    "Contender",
    "Problem",
    "select_cells",
    "RTOL",
    "main",
]


def main(argv=None) -> int:
    from .__main__ import main as _main

    return _main(argv)
