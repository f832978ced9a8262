"""Least-squares benchmark: automatic Jacobians vs scipy's '2-point' ones, and parallel numdiff.

Part 1 solves every MGH problem (:mod:`autominimize.testing.mgh`) with ``am.least_squares``
(JAX and torch Jacobians) and with ``scipy.optimize.least_squares(jac='2-point')`` on the NumPy
residuals, by trf and lm: median warm time, evaluations (finite-difference ones included) and
how many reach the known optimum. Part 2 times the forward-difference gradient of a
16-parameter function that sleeps 50 ms per call: serially, on 4 local worker processes, and
on a 4-worker ``dask.distributed`` LocalCluster (pools started beforehand; start-up reported
separately).

>>> from benchmarks.least_squares import run_least_squares   # doctest: +SKIP
>>> rows = run_least_squares(repeats=3)                             # doctest: +SKIP

Run ``python -m benchmarks.least_squares`` for the table.
"""

from __future__ import annotations

import statistics
import time
import warnings
from typing import Any, Callable

import numpy as np

__all__ = ["run_least_squares", "format_least_squares", "sleepy"]

SLEEP = 0.05
N_PARAMS = 16
WORKERS = 4


def sleepy(x: np.ndarray) -> float:
    """A 16-parameter objective that costs 50 ms per call (a stand-in for a simulation)."""
    time.sleep(SLEEP)
    return float(np.sum((x - 0.5) ** 2) + np.prod(np.cos(x)))


def _median_time(solve: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    solve()  # warm: compilation and caches
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = solve()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _mgh_rows(repeats: int) -> list[dict]:
    import scipy.optimize as so

    import autominimize as am
    from autominimize.testing import mgh

    options = dict(ftol=1e-12, xtol=1e-12, gtol=1e-12, max_nfev=5000)
    contenders: dict[str, Callable] = {
        "scipy-2point": lambda p, method: so.least_squares(p.residuals, p.x0, method=method, jac="2-point", **options),
        "am-jax": lambda p, method: am.least_squares(p.residuals, p.x0, method=method, backend="jax", **options),
        "am-torch": lambda p, method: am.least_squares(p.residuals, p.x0, method=method, backend="torch", **options),
    }
    rows = []
    for method in ("trf", "lm"):
        for name, solve in contenders.items():
            total_time, nfev, njev, solved = 0.0, 0, 0, 0
            for problem in mgh.PROBLEMS.values():
                elapsed, res = _median_time(lambda: solve(problem, method), repeats)
                total_time += elapsed
                # trf's nfev leaves out the n evaluations of every '2-point' Jacobian (lm's,
                # from MINPACK, includes them and reports no njev)
                evaluations = res.nfev + ((res.njev or 0) * problem.n if name == "scipy-2point" else 0)
                nfev += evaluations
                njev += res.njev or 0
                solved += problem.is_solved(2 * res.cost)
            rows.append(
                {
                    "part": "mgh",
                    "method": method,
                    "contender": name,
                    "time_s": total_time,
                    "nfev": nfev,
                    "njev": njev,
                    "solved": solved,
                    "problems": len(mgh.PROBLEMS),
                }
            )
    return rows


def _parallel_rows(repeats: int) -> list[dict]:
    from autominimize import numdiff

    x = np.linspace(0.0, 1.0, N_PARAMS)
    rows = []
    serial, reference = _median_time(lambda: numdiff.approx_jacobian(sleepy, x, method="forward")[0], repeats)
    rows.append({"part": "parallel", "contender": "serial", "time_s": serial, "speedup": 1.0, "startup_s": 0.0, "same": True})
    start = time.perf_counter()
    with numdiff.Evaluator(workers=WORKERS) as evaluator:
        numdiff.approx_jacobian(sleepy, x, evaluator=evaluator)
        startup = time.perf_counter() - start - serial / WORKERS
        elapsed, g = _median_time(lambda: numdiff.approx_jacobian(sleepy, x, evaluator=evaluator)[0], repeats)
    rows.append(
        {
            "part": "parallel",
            "contender": f"{WORKERS} local workers",
            "time_s": elapsed,
            "speedup": serial / elapsed,
            "startup_s": max(startup, 0.0),
            "same": bool(np.array_equal(g, reference)),
        }
    )
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        return rows
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with (
            LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as cluster,
            Client(cluster) as client,
        ):
            evaluator = numdiff.Evaluator(executor=client.get_executor(pure=False))
            numdiff.approx_jacobian(sleepy, x, evaluator=evaluator)
            startup = time.perf_counter() - start - serial / WORKERS
            elapsed, g = _median_time(lambda: numdiff.approx_jacobian(sleepy, x, evaluator=evaluator)[0], repeats)
    rows.append(
        {
            "part": "parallel",
            "contender": f"dask LocalCluster ({WORKERS} workers)",
            "time_s": elapsed,
            "speedup": serial / elapsed,
            "startup_s": max(startup, 0.0),
            "same": bool(np.array_equal(g, reference)),
        }
    )
    return rows


def run_least_squares(repeats: int = 3) -> list[dict]:
    """Run both parts; one dict per row (``part`` is ``'mgh'`` or ``'parallel'``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _mgh_rows(repeats) + _parallel_rows(repeats)


def format_least_squares(rows: list[dict]) -> str:
    """A plain-text table of :func:`run_least_squares`'s rows."""
    lines = [
        "MGH least-squares set: total of median warm times over the problems",
        f"{'method':6} {'contender':14} {'time [s]':>9} {'nfev':>7} {'njev':>6} {'solved':>8}",
    ]
    for row in rows:
        if row["part"] == "mgh":
            lines.append(
                f"{row['method']:6} {row['contender']:14} {row['time_s']:9.3f} {row['nfev']:7d} {row['njev']:6d} {row['solved']:>4}/{row['problems']}"
            )
    lines += [
        "",
        f"forward-difference gradient, n={N_PARAMS}, {SLEEP * 1000:.0f} ms per evaluation ({N_PARAMS + 1} evaluations)",
        f"{'contender':32} {'time [s]':>9} {'speedup':>8} {'start-up [s]':>13} {'same result':>12}",
    ]
    for row in rows:
        if row["part"] == "parallel":
            lines.append(f"{row['contender']:32} {row['time_s']:9.3f} {row['speedup']:8.2f} {row['startup_s']:13.2f} {str(row['same']):>12}")
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.least_squares", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    print(format_least_squares(run_least_squares(parser.parse_args().repeats)))
