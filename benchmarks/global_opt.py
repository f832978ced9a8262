"""Global optimizers: batched differential evolution and multistart, against loops.

* Differential evolution on 10-D Rastrigin and Rosenbrock, 100 generations of 150 members
  (``tol=0``, no polish), same seed: scipy's per-individual loop over a NumPy function
  (``updating='deferred'``, the same algorithm) against ``am.differential_evolution``'s
  vectorized engine evaluating each generation in one call (``jax.vmap``,
  ``torch.func.vmap``, a vectorized NumPy function), and against scipy's engine with the
  same batched calls (``engine='scipy'``). The engines draw different random numbers, so
  they reach different points; the table shows both best values (``f``, ``baseline f``).
* Multistart, 256 starts of 10-D Rosenbrock (JAX): ``method='lbfgs-native'`` as one batched
  solve (``batched=True``) against the same solves one after another (timed once); and
  L-BFGS-B one after another against the same solves in worker processes.

Times are medians of ``repeats`` warm runs (one warm-up run first, so compilation is not
counted). Each differential evolution contender alternates with its own runs of scipy's
loop, so that its speedup is measured under the same load: a round is one run of scipy's
loop and as many runs of the contender as take as long, timed by their mean.

>>> from benchmarks.global_opt import run_global   # doctest: +SKIP
>>> rows = run_global(repeats=3)                            # doctest: +SKIP

Run ``python -m benchmarks.global_opt`` for the table.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import numpy as np

__all__ = ["run_global", "format_global", "main"]

DIM = 10
GENERATIONS = 100
POPSIZE = 15
STARTS = 256


def _rastrigin_np(x: np.ndarray) -> float:
    return 10 * x.size + float(np.sum(x**2 - 10 * np.cos(2 * np.pi * x)))


def _rosenbrock_np(x: np.ndarray) -> float:
    return float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def _objectives() -> dict[str, dict[str, Any]]:
    import jax.numpy as jnp
    import torch

    def rastrigin(xp: Any) -> Callable:
        return lambda x: 10 * x.shape[-1] + xp.sum(x**2 - 10 * xp.cos(2 * np.pi * x), -1)

    def rosenbrock(xp: Any) -> Callable:
        return lambda x: xp.sum(100 * (x[..., 1:] - x[..., :-1] ** 2) ** 2 + (1 - x[..., :-1]) ** 2, -1)

    return {
        "rastrigin10": {"numpy": _rastrigin_np, "box": (-5.12, 5.12), "jax": rastrigin(jnp), "torch": rastrigin(torch), "vectorized": rastrigin(np)},
        "rosenbrock10": {
            "numpy": _rosenbrock_np,
            "box": (-2.0, 2.0),
            "jax": rosenbrock(jnp),
            "torch": rosenbrock(torch),
            "vectorized": rosenbrock(np),
        },
    }


def _median_time(run: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    result = run()  # warm-up: compilation, caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _paired_times(baseline: Callable[[], Any], contender: Callable[[], Any], repeats: int) -> tuple[float, Any, float, Any]:
    """Median times of ``baseline`` and ``contender`` run alternately (one warm-up each), so
    that on a loaded machine both see the same load and their ratio is comparable.

    A round runs the baseline once and the contender as many times in a row as fit in one
    baseline run, timing the contender by the mean of its runs: both sides of a round then
    span about the same wall time, so a preemption by another process weighs on both alike
    (a single contender run, a tenth of the baseline's, takes one preemption whole or none).
    """
    results = [baseline(), contender()]  # warm-up: compilation, caches
    spans = []
    for run in (baseline, contender):
        start = time.perf_counter()
        run()
        spans.append(time.perf_counter() - start)
    runs = max(1, round(spans[0] / spans[1]))
    times: list[list[float]] = [[], []]
    for _ in range(repeats):
        start = time.perf_counter()
        results[0] = baseline()
        times[0].append(time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(runs):
            results[1] = contender()
        times[1].append((time.perf_counter() - start) / runs)
    return statistics.median(times[0]), results[0], statistics.median(times[1]), results[1]


def _evolution_rows(repeats: int) -> list[dict]:
    import scipy.optimize as so

    import autominimize as am

    rows = []
    common = dict(maxiter=GENERATIONS, popsize=POPSIZE, tol=0, polish=False, rng=0)
    for name, problem in _objectives().items():
        bounds = [problem["box"]] * DIM

        def scipy_loop() -> Any:
            return so.differential_evolution(problem["numpy"], bounds, updating="deferred", **common)

        contenders = {
            "am-jax (vmap)": lambda: am.differential_evolution(problem["jax"], bounds, backend="jax", **common),
            "am-torch (vmap)": lambda: am.differential_evolution(problem["torch"], bounds, backend="torch", **common),
            "am-numpy (vectorized)": lambda: am.differential_evolution(problem["vectorized"], bounds, vectorized="rows", backend="numpy", **common),
            "am-jax, scipy's engine": lambda: am.differential_evolution(problem["jax"], bounds, backend="jax", engine="scipy", **common),
        }
        for label, run in contenders.items():
            loop_time, loop, seconds, result = _paired_times(scipy_loop, run, repeats)
            rows.append(
                {
                    "bench": "differential_evolution",
                    "problem": name,
                    "contender": label,
                    "seconds": seconds,
                    "baseline": "scipy per-individual loop",
                    "baseline_seconds": loop_time,
                    "speedup": loop_time / seconds,
                    "nfev": int(result.nfev),
                    "fun": float(result.fun),
                    "baseline_fun": float(loop.fun),
                    "same_result": None,
                }
            )
    return rows


def _rosenbrock_jax(x: Any) -> Any:
    import jax.numpy as jnp

    return jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def _multistart_rows(repeats: int) -> list[dict]:
    import os

    import autominimize as am

    bounds = [(-2.0, 2.0)] * DIM
    common = dict(n_starts=STARTS, rng=0, backend="jax")
    loop_time, loop = _median_time(lambda: am.multistart(_rosenbrock_jax, bounds, **common), repeats)
    workers = os.cpu_count() or 1
    # Process start-up (spawn, importing JAX, compiling) is part of every parallel run.
    parallel_time, parallel = _median_time(lambda: am.multistart(_rosenbrock_jax, bounds, workers=workers, **common), repeats)
    native = dict(common, method="lbfgs-native")
    native_loop_time, native_loop = _median_time(lambda: am.multistart(_rosenbrock_jax, bounds, batched=False, **native), 1)
    batched_time, batched = _median_time(lambda: am.multistart(_rosenbrock_jax, bounds, batched=True, **native), repeats)
    return [
        {
            "bench": "multistart",
            "problem": "rosenbrock10 x256",
            "contender": "am-jax lbfgs-native batched",
            "seconds": batched_time,
            "baseline": "am-jax lbfgs-native, loop",
            "baseline_seconds": native_loop_time,
            "speedup": native_loop_time / batched_time,
            "nfev": int(batched.nfev),
            "fun": float(batched.fun),
            "baseline_fun": float(native_loop.fun),
            "same_result": bool(np.allclose(batched.x, native_loop.x)),
        },
        {
            "bench": "multistart",
            "problem": "rosenbrock10 x256",
            "contender": f"am-jax, {workers} processes",
            "seconds": parallel_time,
            "baseline": "am-jax, one process (loop)",
            "baseline_seconds": loop_time,
            "speedup": loop_time / parallel_time,
            "nfev": int(parallel.nfev),
            "fun": float(parallel.fun),
            "baseline_fun": float(loop.fun),
            "same_result": bool(np.allclose(parallel.x, loop.x)),
        },
    ]


def run_global(repeats: int = 3) -> list[dict]:
    """Time the global benchmarks; one dict per (benchmark, problem, contender)."""
    from .runner import setup_threads

    setup_threads()
    return _evolution_rows(repeats) + _multistart_rows(repeats)


def format_global(rows: list[dict]) -> str:
    """A plain-text table of :func:`run_global`'s rows (``same x``: '-' where not comparable)."""
    header = (
        f"{'bench':24s} {'problem':18s} {'contender':26s} {'seconds':>9s} {'baseline s':>10s} {'speedup':>8s} "
        f"{'f':>10s} {'baseline f':>10s} {'same x':>6s}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        same = "-" if row["same_result"] is None else str(row["same_result"])
        lines.append(
            f"{row['bench']:24s} {row['problem']:18s} {row['contender']:26s} {row['seconds']:9.3f} "
            f"{row['baseline_seconds']:10.3f} {row['speedup']:7.1f}x {row['fun']:10.3g} {row['baseline_fun']:10.3g} {same:>6s}"
        )
    return "\n".join(lines)


def main(repeats: int = 3) -> int:
    print(format_global(run_global(repeats)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
