"""The cost of watching a solve: history, SQLite log and progress bar on rosen100 L-BFGS-B (JAX).

``python -m autominimize.bench.observing`` prints the table; ``run_observing`` returns rows.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

import numpy as np


def _rosen(x):
    return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum()


def run_observing(repeats: int = 5, n: int = 100) -> list[dict]:
    """Median seconds of the same solve with each observer on, interleaved, against none."""
    import autominimize as am

    folder = tempfile.mkdtemp()
    variants = {
        "plain (history=False)": dict(history=False),
        "history=True (default)": dict(),
        "log=run.sqlite": dict(history=False, log=os.path.join(folder, "run.sqlite")),
        "progress=True": dict(history=False, progress=True),
        "history + log + progress": dict(log=os.path.join(folder, "all.sqlite"), progress=True),
    }
    x0 = np.zeros(n)
    times: dict[str, list[float]] = {name: [] for name in variants}
    counts = {}
    for name, kwargs in variants.items():  # warm-up: compile once
        am.minimize(_rosen, x0, method="L-BFGS-B", backend="jax", **kwargs)
    for _ in range(repeats):
        for name, kwargs in variants.items():
            start = time.perf_counter()
            res = am.minimize(_rosen, x0, method="L-BFGS-B", backend="jax", **kwargs)
            times[name].append(time.perf_counter() - start)
            counts[name] = res.nfev
    base = statistics.median(times["plain (history=False)"])
    return [
        {"variant": name, "seconds": statistics.median(values), "ratio": statistics.median(values) / base, "nfev": counts[name]}
        for name, values in times.items()
    ]


def format_observing(rows: list[dict]) -> str:
    lines = [f"{'rosen100 L-BFGS-B, jax':<28} {'seconds':>9} {'/ plain':>8} {'nfev':>6}"]
    lines += [f"{row['variant']:<28} {row['seconds']:9.4f} {row['ratio']:8.2f} {row['nfev']:6d}" for row in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_observing(run_observing()))
