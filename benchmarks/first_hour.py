"""First-hour costs: the first (cold) solve in a fresh interpreter, and new data without recompiling.

Part 1 runs each case in a fresh Python process, with the package byte-compiled as ``pip
install`` leaves it, and reports the import of its framework, the
first solve (cold: tracing, compiling, first calls) and the second solve of the same
function (warm), the medians of ``repeats`` processes (the cases take turns): plain scipy
and ``am.minimize`` on a NumPy objective without ``backend=`` (no framework may be
imported), the JAX, torch and
TensorFlow backends on one small least-squares objective with L-BFGS-B, a batched
``am.multistart`` on JAX, TF1's ``am.tf.ScipyOptimizerInterface`` and ``am.keras.fit`` with
Newton-CG on the Keras JAX and torch backends.

Part 2 fits one function 40 times on JAX and TensorFlow, each fit given new data arrays of
one shape (``args=(X_k, y_k)``, copies of one data set, so that every fit takes the same
iterations), against 40 fits given the same arrays: with args as inputs of the compiled
functions the two take the same time. 40 fits to 40 different data sets are reported too.

>>> from benchmarks.first_hour import run_first_hour   # doctest: +SKIP
>>> rows = run_first_hour(repeats=3)                          # doctest: +SKIP

Run ``python -m benchmarks --section first-hour`` for the table.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np

__all__ = ["run_first_hour", "format_first_hour", "CASES"]

#: data shared by the cases: a least-squares fit of 3 weights to 200 points
_DATA = """
import numpy as np
rng = np.random.default_rng(0)
X = rng.normal(size=(200, 3))
y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=200)
"""

#: case name -> (framework import, the solve run twice); each runs in a fresh interpreter
CASES: dict[str, tuple[str, str]] = {
    "scipy, NumPy objective": ("import scipy.optimize as so", "so.minimize(lambda w: np.mean((X @ w - y) ** 2), np.zeros(3), method='L-BFGS-B')"),
    "am, NumPy objective (no backend=)": (
        "import autominimize as am",
        "res = am.minimize(lambda w: np.mean((X @ w - y) ** 2), np.zeros(3), method='L-BFGS-B')\n"
        "assert res.backend == 'numpy' and not {'jax', 'torch', 'tensorflow'} & set(sys.modules)",
    ),
    "am, JAX": (
        "import jax.numpy as jnp\nimport autominimize as am\nloss = lambda w: jnp.mean((X @ w - y) ** 2)",
        "am.minimize(loss, np.zeros(3), method='L-BFGS-B')",
    ),
    "am, torch": (
        "import torch\nimport autominimize as am\nXt, yt = torch.from_numpy(X), torch.from_numpy(y)\nloss = lambda w: torch.mean((Xt @ w - yt) ** 2)",
        "am.minimize(loss, np.zeros(3), method='L-BFGS-B')",
    ),
    "am, TensorFlow": (
        "import tensorflow as tf\nimport autominimize as am\nloss = lambda w: tf.reduce_mean((tf.linalg.matvec(X, w) - y) ** 2)",
        "am.minimize(loss, np.zeros(3), method='L-BFGS-B')",
    ),
    "am.multistart, JAX (64 starts, batched)": (
        "import jax.numpy as jnp\nimport autominimize as am\nloss = lambda w: jnp.mean((X @ w - y) ** 2) + 0.1 * jnp.sum(jnp.cos(3 * w))",
        "am.multistart(loss, [(-3, 3)] * 3, n_starts=64, method='lbfgs-native', rng=0)",
    ),
    "am.tf.ScipyOptimizerInterface": (
        "import tensorflow as tf\nimport autominimize as am\nw = tf.Variable(np.zeros(3))\n"
        "loss = lambda: tf.reduce_mean((tf.linalg.matvec(X, w) - y) ** 2)\n"
        "interface = am.tf.ScipyOptimizerInterface(loss, var_list=[w], method='L-BFGS-B')",
        "w.assign(np.zeros(3)); interface.minimize()",
    ),
    "am.keras.fit Newton-CG, Keras on JAX": (
        "import os\nimport keras\nimport autominimize.keras as amk\n"
        "model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(16, activation='tanh'), keras.layers.Dense(1)])\n"
        "assert keras.backend.backend() == 'jax'",
        "amk.fit(model, 'mse', X, y[:, None], method='Newton-CG', options={'maxiter': 50})",
    ),
    "am.keras.fit Newton-CG, Keras on torch": (
        "import os\nimport keras\nimport autominimize.keras as amk\n"
        "model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(16, activation='tanh'), keras.layers.Dense(1)])\n"
        "assert keras.backend.backend() == 'torch'",
        "amk.fit(model, 'mse', X, y[:, None], method='Newton-CG', options={'maxiter': 50})",
    ),
}

_KERAS_BACKEND = {"am.keras.fit Newton-CG, Keras on JAX": "jax", "am.keras.fit Newton-CG, Keras on torch": "torch"}


def _script(setup: str, solve: str) -> str:
    return "\n".join(
        [
            "import json, sys, time",
            "start = time.perf_counter()",
            _DATA.strip(),
            setup,
            "imported = time.perf_counter()",
            solve,
            "cold = time.perf_counter()",
            solve,
            "warm = time.perf_counter()",
            'print(json.dumps({"import": imported - start, "cold": cold - imported, "warm": warm - cold}))',
        ]
    )


def _installed_environment() -> dict[str, str]:
    """The environment of a user's interpreter after ``pip install``, which byte-compiles packages.

    Under ``PYTHONDONTWRITEBYTECODE`` an editable checkout is compiled from source on every
    start (measured: 64 ms to import autominimize against 23 ms from bytecode), while scipy
    and the frameworks load from the bytecode their wheels were installed with. So the
    package is byte-compiled once here, and the cases run with bytecode allowed.
    """
    import compileall

    import autominimize

    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    compileall.compile_dir(os.path.dirname(autominimize.__file__), quiet=1)
    return dict(env, TF_CPP_MIN_LOG_LEVEL="2")


def _run_case(name: str, environment: dict[str, str]) -> dict[str, float]:
    setup, solve = CASES[name]
    env = dict(environment)
    if name in _KERAS_BACKEND:
        env["KERAS_BACKEND"] = _KERAS_BACKEND[name]
    done = subprocess.run([sys.executable, "-c", _script(setup, solve)], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _new_data_rows(repeats: int) -> list[dict]:
    """40 fits, each given new data arrays, against 40 fits given one pair of arrays.

    The new arrays are copies of that pair, so every fit takes the same iterations and the
    difference is what new arrays cost (before args were compiled as inputs: a compilation
    per fit). 40 fits to 40 different data sets are reported too, for their own iterations.
    """
    import autominimize as am

    rng = np.random.default_rng(1)
    data = [(rng.normal(size=(200, 3)), rng.normal(size=200)) for _ in range(40)]
    copies = [(data[0][0].copy(), data[0][1].copy()) for _ in range(40)]
    rows = []
    for backend, loss in _framework_losses().items():
        am.minimize(loss, np.zeros(3), args=data[0], method="L-BFGS-B")  # compile once
        times: dict[str, list[float]] = {"same": [], "copies": [], "different": []}
        for _ in range(repeats):
            for key, sets in (("same", [data[0]] * 40), ("copies", copies), ("different", data)):
                start = time.perf_counter()
                for X, y in sets:
                    am.minimize(loss, np.zeros(3), args=(X, y), method="L-BFGS-B")
                times[key].append(time.perf_counter() - start)
        rows.append({"part": "new data", "case": backend, **{key: statistics.median(t) for key, t in times.items()}})
    return rows


def _framework_losses() -> dict[str, Any]:
    import jax.numpy as jnp
    import tensorflow as tf

    return {"JAX": lambda w, X, y: jnp.mean((X @ w - y) ** 2), "TensorFlow": lambda w, X, y: tf.reduce_mean((tf.linalg.matvec(X, w) - y) ** 2)}


def run_first_hour(repeats: int = 3) -> list[dict]:
    """Part 1's cold and warm solves (medians of ``repeats`` fresh processes) and part 2's fits."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in CASES}
    environment = _installed_environment()
    for _ in range(repeats):  # one process per case in turn, so that a change of load hits all
        for name in CASES:
            runs[name].append(_run_case(name, environment))
    rows = [{"part": "cold", "case": name, **{key: statistics.median(run[key] for run in done) for key in done[0]}} for name, done in runs.items()]
    return rows + _new_data_rows(repeats)


def format_first_hour(rows: list[dict]) -> str:
    """Two Markdown tables: cold vs warm solves, and new data vs the same data."""
    scipy_total = next(r["import"] + r["cold"] for r in rows if r["case"] == "scipy, NumPy objective")
    lines = ["| case | import (s) | first solve, cold (s) | second solve, warm (s) | import + first solve vs scipy's |", "|---|---|---|---|---|"]
    for r in rows:
        if r["part"] == "cold":
            lines.append(f"| {r['case']} | {r['import']:.2f} | {r['cold']:.3f} | {r['warm']:.3f} | {(r['import'] + r['cold']) / scipy_total:.2f}× |")
    lines += [
        "",
        "| backend | 40 fits, one pair of arrays (s) | 40 fits, new copies of it (s) | ratio | 40 fits, 40 data sets (s) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        if r["part"] == "new data":
            lines.append(f"| {r['case']} | {r['same']:.3f} | {r['copies']:.3f} | {r['copies'] / r['same']:.2f}× | {r['different']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_first_hour(run_first_hour()))
