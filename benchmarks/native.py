"""Native L-BFGS against scipy's L-BFGS-B and torchmin, and batched L-BFGS against a loop.

* One problem: Rosenbrock n = 10⁴ and 10⁶ from zeros (a fixed iteration budget: 200 and 30,
  so time per iteration is comparable) and an L2-regularized logistic regression
  (20000 × 200, seeded, to gtol = 1e-5): ``am.minimize(method='lbfgs-native')`` on JAX and
  torch, ``am.minimize(method='L-BFGS-B')`` on JAX (scipy's Fortran-derived code, fed by
  the jitted gradient) and torchmin's ``minimize(method='l-bfgs')`` with scipy's memory of 10
  (``pip install pytorch-minimize``; n/a when absent).
* Batched: 1000 starts of 2-D Rosenbrock in one ``am.minimize(..., batch=True)`` against a
  Python loop of 1000 single ``am.minimize`` solves with the same (Armijo) line search:
  ``max |dx|`` is 0 on torch (same operations) and rounding on JAX (XLA fuses the batched
  step differently), amplified on the few slow members.

Times are medians of ``repeats`` warm runs after one warm-up run (compilation not counted);
the n = 10⁶ cells and the loops run once after their warm-up.

>>> from benchmarks.native import run_native, format_native   # doctest: +SKIP
>>> print(format_native(run_native(repeats=3)))                        # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import statistics
import time
from typing import Any, Callable

import numpy as np

__all__ = ["run_native", "format_native", "main"]

STARTS = 1000


def _median_time(run: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    result = run()  # warm-up: compilation, caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _rosenbrock(xp: Any) -> Callable:
    return lambda x: xp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def _logistic(xp: Any, a: np.ndarray, y: np.ndarray, lam: float) -> Callable:
    a_, y_ = xp.asarray(a), xp.asarray(y)

    def loss(w: Any) -> Any:
        z = a_ @ w
        return xp.mean(xp.logaddexp(0.0 * z, z) - y_ * z) + 0.5 * lam * xp.sum(w * w)

    return loss


def _problems() -> list[dict]:
    import jax.numpy as jnp
    import torch

    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 200))
    y = (a @ rng.normal(size=200) + rng.normal(size=20000) > 0).astype(np.float64)
    lam = 1e-3
    return [
        {"name": "rosen 1e4", "n": 10**4, "maxiter": 200, "gtol": 0.0, "jax": _rosenbrock(jnp), "torch": _rosenbrock(torch)},
        {"name": "rosen 1e6", "n": 10**6, "maxiter": 30, "gtol": 0.0, "jax": _rosenbrock(jnp), "torch": _rosenbrock(torch)},
        {
            "name": "logreg 20000x200",
            "n": 200,
            "maxiter": 15000,
            "gtol": 1e-5,
            "jax": _logistic(jnp, a, y, lam),
            "torch": _logistic(torch, torch.as_tensor(a), torch.as_tensor(y), lam),
        },
    ]


def _contenders(problem: dict) -> dict[str, Callable[[], tuple[float, int]]]:
    import torch

    import autominimize as am

    x0 = np.zeros(problem["n"])
    # ftol=0: the iteration budget or gtol ends every run, so each does the same work
    native = {"maxiter": problem["maxiter"], "gtol": problem["gtol"], "ftol": 0.0}

    def am_native(backend: str) -> Callable:
        def run() -> tuple[float, int]:
            res = am.minimize(problem[backend], x0, method="lbfgs-native", backend=backend, options=native)
            return float(res.fun), int(res.nit)

        return run

    def scipy_lbfgsb() -> tuple[float, int]:
        options = {"maxiter": problem["maxiter"], "gtol": problem["gtol"], "ftol": 0.0, "maxfun": 10**9}
        res = am.minimize(problem["jax"], x0, method="L-BFGS-B", backend="jax", options=options)
        return float(res.fun), int(res.nit)

    contenders = {"am lbfgs-native jax": am_native("jax"), "am lbfgs-native torch": am_native("torch"), "scipy L-BFGS-B (am, jax)": scipy_lbfgsb}
    if importlib.util.find_spec("torchmin") is not None:
        from torchmin import minimize as torchmin_minimize

        def torchmin_lbfgs() -> tuple[float, int]:
            res = torchmin_minimize(
                problem["torch"],
                torch.zeros(problem["n"], dtype=torch.float64),
                method="l-bfgs",
                max_iter=problem["maxiter"],
                options={"history_size": 10, "gtol": problem["gtol"] or 1e-300},
            )
            return float(res.fun), int(res.nit)

        contenders["torchmin l-bfgs (m=10)"] = torchmin_lbfgs
    return contenders


def _single_rows(repeats: int) -> list[dict]:
    rows = []
    for problem in _problems():
        runs = 1 if problem["n"] >= 10**6 else repeats
        names = ("am lbfgs-native jax", "am lbfgs-native torch", "scipy L-BFGS-B (am, jax)", "torchmin l-bfgs (m=10)")
        contenders = _contenders(problem)
        for name in names:
            if name not in contenders:
                rows.append({"bench": "single", "problem": problem["name"], "contender": name, "seconds": None})
                continue
            seconds, (fun, nit) = _median_time(contenders[name], runs)
            rows.append(
                {
                    "bench": "single",
                    "problem": problem["name"],
                    "contender": name,
                    "seconds": seconds,
                    "nit": nit,
                    "per_iteration": seconds / max(nit, 1),
                    "fun": fun,
                }
            )
    return rows


def _batched_rows(repeats: int) -> list[dict]:
    import autominimize as am

    def rosen(x: Any) -> Any:
        return 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2

    starts = np.random.default_rng(0).uniform(-2.0, 2.0, size=(STARTS, 2))
    rows = []
    for backend in ("jax", "torch"):
        batched_s, batched = _median_time(lambda: am.minimize(rosen, starts, method="lbfgs-native", batch=True, backend=backend), repeats)

        def loop() -> np.ndarray:
            options = {"line_search": "armijo"}
            return np.array([am.minimize(rosen, s, method="lbfgs-native", backend=backend, options=options).x for s in starts])

        loop_s, loop_x = _median_time(loop, 1)
        rows.append(
            {
                "bench": "batched",
                "problem": f"rosen 2-D x{STARTS}",
                "contender": f"batch=True {backend}",
                "seconds": batched_s,
                "loop_seconds": loop_s,
                "speedup": loop_s / batched_s,
                "nit": int(batched.nit.sum()),
                "max_nit": int(batched.nit.max()),
                "max_dx": float(np.abs(batched.x - loop_x).max()),
            }
        )
    return rows


def run_native(repeats: int = 3) -> list[dict]:
    """Time the native L-BFGS benchmarks; one dict per (benchmark, problem, contender)."""
    from .runner import setup_threads

    setup_threads()
    return _single_rows(repeats) + _batched_rows(repeats)


def format_native(rows: list[dict]) -> str:
    """Plain-text tables of :func:`run_native`'s rows."""
    header = f"{'problem':18s} {'contender':26s} {'seconds':>9s} {'nit':>6s} {'ms/iter':>8s} {'f':>12s}"
    lines = [header, "-" * len(header)]
    for row in (r for r in rows if r["bench"] == "single"):
        if row["seconds"] is None:
            lines.append(f"{row['problem']:18s} {row['contender']:26s} {'n/a':>9s}")
            continue
        lines.append(
            f"{row['problem']:18s} {row['contender']:26s} {row['seconds']:9.3f} {row['nit']:6d} {1e3 * row['per_iteration']:8.2f} {row['fun']:12.5g}"
        )
    header = f"{'problem':18s} {'contender':18s} {'seconds':>9s} {'loop s':>9s} {'speedup':>8s} {'max nit':>8s} {'max |dx|':>9s}"
    lines += ["", header, "-" * len(header)]
    for row in (r for r in rows if r["bench"] == "batched"):
        lines.append(
            f"{row['problem']:18s} {row['contender']:18s} {row['seconds']:9.3f} {row['loop_seconds']:9.2f} "
            f"{row['speedup']:7.1f}x {row['max_nit']:8d} {row['max_dx']:9.1e}"
        )
    return "\n".join(lines)


def main(repeats: int = 3) -> int:
    print(format_native(run_native(repeats)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
