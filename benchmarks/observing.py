"""The cost of watching a solve: history, SQLite log and progress bar, on two objectives.

rosen100 L-BFGS-B on JAX costs about 30 µs per evaluation, so it shows the recording's
per-record cost at its largest; a small tanh network fitted to 2000 points (385 parameters,
300 iterations) shows it on an objective closer to a model fit.
``python -m benchmarks.observing`` prints the table; ``run_observing`` returns rows.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from typing import Any, Callable

import numpy as np


def _rosen(x):
    return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum()


def _mlp_regression() -> tuple[Callable, dict[str, np.ndarray]]:
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 10))
    y = np.sin(X @ rng.normal(size=10)) + 0.1 * rng.normal(size=2000)

    def loss(params):
        hidden = jnp.tanh(jnp.asarray(X) @ params["W1"] + params["b1"])
        return jnp.mean((hidden @ params["w2"] + params["b2"] - y) ** 2)

    x0 = {"W1": rng.normal(size=(10, 32)) / np.sqrt(10), "b1": np.zeros(32), "w2": rng.normal(size=32) / np.sqrt(32), "b2": np.zeros(())}
    return loss, x0


#: name: (objective, x0, scipy options); the MLP runs a fixed 300 iterations
PROBLEMS: dict[str, Callable[[], tuple[Callable, Any, dict | None]]] = {
    "rosen100": lambda: (_rosen, np.zeros(100), None),
    "mlp 2000x10-32-1": lambda: (*_mlp_regression(), {"maxiter": 300}),
}


#: rounds at least: one round's ratio varies by several per cent on a shared machine
MIN_ROUNDS = 40


def run_observing(repeats: int = MIN_ROUNDS, seed: int = 0) -> list[dict]:
    """Seconds of the same solve with each observer on, against none and against the default.

    The variants run in a shuffled order in each of ``max(repeats, MIN_ROUNDS)`` rounds; a
    ratio is the median over rounds of the variant's time over the plain (or default) call's
    time in the same round, which a machine whose speed drifts during the run does not bias.
    Its quartiles over the rounds show how much one round's ratio varies.
    """
    import random

    import autominimize as am

    folder = tempfile.mkdtemp()
    order = random.Random(seed)
    rows = []
    for problem, make in PROBLEMS.items():
        fun, x0, options = make()
        variants: dict[str, dict[str, Any]] = {
            "plain (history=False)": dict(history=False),
            "history=True (default)": dict(),
            "log=run.sqlite": dict(history=False, log=os.path.join(folder, f"{problem}.sqlite")),
            "progress=True": dict(history=False, progress=True),
            "history + log": dict(log=os.path.join(folder, f"{problem}-history.sqlite")),
            "history + log + progress": dict(log=os.path.join(folder, f"{problem}-all.sqlite"), progress=True),
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        counts = {}
        for kwargs in variants.values():  # warm-up: compile once
            am.minimize(fun, x0, method="L-BFGS-B", backend="jax", options=options, **kwargs)
        for _ in range(max(repeats, MIN_ROUNDS)):
            names = list(variants)
            order.shuffle(names)
            for name in names:
                start = time.perf_counter()
                res = am.minimize(fun, x0, method="L-BFGS-B", backend="jax", options=options, **variants[name])
                times[name].append(time.perf_counter() - start)
                counts[name] = res.nfev
        plain, default = np.array(times["plain (history=False)"]), np.array(times["history=True (default)"])
        for name, values in times.items():
            ratios = np.array(values) / plain
            rows.append(
                {
                    "problem": problem,
                    "variant": name,
                    "seconds": statistics.median(values),
                    "ratio": float(np.median(ratios)),
                    "ratio_quartiles": tuple(np.quantile(ratios, [0.25, 0.75]).tolist()),
                    "ratio_to_default": float(np.median(np.array(values) / default)),
                    "nfev": counts[name],
                    "us_per_evaluation": statistics.median(plain) / counts[name] * 1e6,
                    "rounds": len(values),
                }
            )
    return rows


def format_observing(rows: list[dict]) -> str:
    lines = [
        f"{'L-BFGS-B on JAX':<17} {'variant':<26} {'seconds':>9} {'/ plain':>8} {'(quartiles)':>12} {'/ default':>10} {'nfev':>6} {'µs/eval (plain)':>16}"
    ]
    lines += [
        f"{row['problem']:<17} {row['variant']:<26} {row['seconds']:9.4f} {row['ratio']:8.3f} "
        f"{'%.2f-%.2f' % row['ratio_quartiles']:>12} {row['ratio_to_default']:10.3f} {row['nfev']:6d} {row['us_per_evaluation']:16.1f}"
        for row in rows
    ]
    lines.append(
        f"/ plain and / default: medians over {rows[0]['rounds'] if rows else 0} rounds of the time over the plain "
        "call's (history=False) and the default call's (history=True) in the same round, with the quartiles "
        "of the first; the variants run in a shuffled order in each round."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_observing(run_observing()))
