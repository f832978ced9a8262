"""Memory a solve keeps: the default history on a large problem, and cached torch functions.

Each case runs in a subprocess of its own, which reports its peak resident set size
(``ru_maxrss``) and, for the torch case, its resident set size once the solves have
returned. ``python -m benchmarks.memory`` prints the table; ``run_memory`` returns rows.

- history: extended Rosenbrock with 200 000 parameters, 400 L-BFGS-B iterations on NumPy
  with its exact gradient, with ``history=False`` and with the default history.
- torch closures: Newton-CG (which keeps the last point's graph for its Hessian-vector
  products) on 500 000 parameters, once, then once with each of 20 different closures.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_HISTORY = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    import autominimize as am

    n, iterations, history = 200_000, 400, sys.argv[1] == "True"

    def rosen(x):
        return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))

    def rosen_der(x):
        g = np.zeros_like(x)
        d = x[1:] - x[:-1] ** 2
        g[:-1] = -400.0 * x[:-1] * d - 2.0 * (1.0 - x[:-1])
        g[1:] += 200.0 * d
        return g

    x0 = np.full(n, -0.5)
    res = am.minimize(rosen, x0, method="L-BFGS-B", backend="numpy", jac=rosen_der, history=history,
                      options={"maxiter": iterations, "ftol": 0.0, "gtol": 0.0})
    kept = sum(it.x is not None for it in res.history.iterations) if history else 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"nit": int(res.nit), "peak_mb": peak, "iterates_kept": kept}))
    """
)

_TORCH = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    import torch
    import autominimize as am

    n, solves = 500_000, int(sys.argv[1])
    target = torch.linspace(-1.0, 1.0, n, dtype=torch.float64)

    def closure(k):
        scale = 1.0 + 0.01 * k

        def fun(x):  # a graph of several n-sized tensors, which Newton-CG keeps for its products
            y = torch.tanh(scale * x) - target
            z = torch.sin(x) * y
            return (y ** 2).sum() + 0.1 * (z ** 2).sum() + 0.01 * (x ** 4).sum()

        return fun

    def rss_mb():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize() / 2**20

    for k in range(solves):
        am.minimize(closure(k), torch.zeros(n, dtype=torch.float64), method="Newton-CG", options={"maxiter": 2})
    print(json.dumps({"rss_mb": rss_mb(), "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    """
)


def _measure(script: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"the memory case {args} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_memory(repeats: int = 1) -> list[dict]:
    """One row per case: peak RSS in MB (the smallest over ``repeats`` subprocesses)."""
    rows = []
    for history in (False, True):
        runs = [_measure(_HISTORY, str(history)) for _ in range(max(1, repeats))]
        best = min(runs, key=lambda run: run["peak_mb"])
        rows.append({"case": f"200 000 params x 400 L-BFGS-B its, history={history}", **best})
    try:
        import torch  # noqa: F401
    except ImportError:
        return rows
    for solves in (1, 20):
        runs = [_measure(_TORCH, str(solves)) for _ in range(max(1, repeats))]
        best = min(runs, key=lambda run: run["rss_mb"])
        rows.append({"case": f"torch Newton-CG, 5e5 params, {solves} closure{'s' if solves > 1 else ''}", **best})
    return rows


def format_memory(rows: list[dict]) -> str:
    lines = [f"{'case':<50} {'peak RSS MB':>12} {'RSS after MB':>13} {'detail':>22}"]
    for row in rows:
        detail = f"nit {row['nit']}, {row['iterates_kept']} x kept" if "nit" in row else ""
        after = f"{row['rss_mb']:13.0f}" if "rss_mb" in row else f"{'':>13}"
        lines.append(f"{row['case']:<50} {row['peak_mb']:12.0f} {after} {detail:>22}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_memory(run_memory()))
