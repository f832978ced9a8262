"""scipy's solvers run with one BLAS thread, and the process's setting comes back after."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import autominimize as am


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_blas_runs_one_thread_during_a_solve_and_gets_its_threads_back():
    np.linalg.eigvalsh(np.eye(2))  # make sure NumPy's BLAS is loaded
    seen = []
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        am.minimize(
            lambda x: ((x - 1.0) ** 2).sum(),
            np.zeros(3),
            method="BFGS",
            backend="numpy",
            jac=lambda x: 2 * (x - 1.0),
            callback=lambda x: seen.append(_blas_threads()),
        )
        after = _blas_threads()
    # another BLAS loaded in the process (IPOPT's bundled OpenBLAS is built for one thread)
    # may stay below the limit asked for: each library gets its own setting back
    assert before and 2 in before and max(before) == 2
    assert seen and all(set(threads) == {1} for threads in seen)
    assert after == before
