"""Many problems at once: batched curve fits and batched bounded L-BFGS against loops.

* Curve fits: 10 000 fits of ``a·exp(−k·t) + c`` (50 points each, noise σ = 0.05) in the box
  a, k ∈ [0, 10], c ∈ [−1, 1], from p0 = (1.5, 1, 0). ``am.batched_curve_fit`` on JAX, torch
  and NumPy (``vectorized=True``) against a loop of ``scipy.optimize.curve_fit`` (bounds, so
  'trf') and a loop of ``am.curve_fit`` with the same framework's model. The loops run on the
  first ``LOOP_SUBSET`` fits and are extrapolated linearly to 10 000 (per-fit cost does not
  depend on the batch). JAX's first call (compilation) is reported on its own row, and torch
  once more with one intra-op thread (``torch.set_num_threads(1)``, restored after).
* Batched bounded L-BFGS: 1 000 starts of 10-D Rosenbrock in [−2, 0.9]¹⁰ (the minimum (1, …, 1)
  lies outside, so bounds are active): ``am.minimize(..., batch=True, options={'line_search':
  'wolfe'})`` on JAX and torch against a loop of scipy's L-BFGS-B fed hand-written NumPy f and
  gradient (``jac=True``), on ``LOOP_SUBSET`` starts, extrapolated.
* ``dask`` (opt-in, :func:`run_dask`): 10⁶ fits through a Dask ``LocalCluster`` with 2
  workers and with 1, NumPy ``vectorized=True`` (no compilation on the workers), the workers
  started without Dask's ``MALLOC_TRIM_THRESHOLD_`` (``--dask-malloc-trim`` keeps it), with
  ``keep_residuals=False``: only the parameters, costs, covariances and statuses travel back
  (``--dask-keep-residuals`` sends the residuals and Jacobians too, 1.6 GB for 10⁶ fits).

``speedup`` = baseline seconds / seconds. For the fits, ``|Δp|`` is the largest parameter
difference from scipy's on the subset (both at default tolerances, where flat members stop
apart by up to what the data determine; see docs/many-fits.md) and ``cost`` the largest cost
over scipy's. For L-BFGS (the box holds several local minima, and a start may settle in
another one than scipy's), ``|Δp|`` is the median difference and ``cost`` the fraction of
starts whose final value equals scipy's within 1e-6 (relative).

>>> from benchmarks.batched import run_batched   # doctest: +SKIP
>>> rows = run_batched(repeats=3)                          # doctest: +SKIP

Run ``python -m benchmarks.batched [--dask [FITS] [--dask-only] [--dask-malloc-trim]]`` for the tables
(``--help`` for every option).
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from typing import Any, Callable

import numpy as np

__all__ = ["run_batched", "format_batched", "run_dask", "main"]

FITS = 10_000
POINTS = 50
LOOP_SUBSET = 200
STARTS = 1_000
DIM = 10
LOWER, UPPER = np.array([0.0, 0.0, -1.0]), np.array([10.0, 10.0, 1.0])
P0 = [1.5, 1.0, 0.0]


def decay_data(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` noisy exponential decays of ``POINTS`` points: (t, y) with y of shape (count, POINTS)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 5.0, POINTS)
    a, k, c = rng.uniform(1, 3, count), rng.uniform(0.3, 2, count), rng.uniform(-0.5, 0.5, count)
    return t, a[:, None] * np.exp(-k[:, None] * t) + c[:, None] + 0.05 * rng.normal(size=(count, POINTS))


def decay_numpy(t: Any, a: Any, k: Any, c: Any) -> Any:
    return a * np.exp(-k * t) + c


def _models() -> dict[str, Callable]:
    import jax.numpy as jnp
    import torch

    return {"jax": lambda t, a, k, c: a * jnp.exp(-k * t) + c, "torch": lambda t, a, k, c: a * torch.exp(-k * t) + c, "numpy": decay_numpy}


def _median_time(run: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def _fit_rows(repeats: int) -> list[dict]:
    import scipy.optimize as so

    import autominimize as am

    t, y = decay_data(FITS)
    sub = y[:LOOP_SUBSET]
    scale = FITS / LOOP_SUBSET
    bounds = (LOWER, UPPER)
    start = time.perf_counter()
    scipy_fits = [so.curve_fit(decay_numpy, t, row, p0=P0, bounds=bounds)[0] for row in sub]
    scipy_seconds = (time.perf_counter() - start) * scale
    scipy_cost = np.array([0.5 * np.sum((decay_numpy(t, *p) - row) ** 2) for p, row in zip(scipy_fits, sub)])
    rows = []
    for backend, model in _models().items():
        kwargs = {"vectorized": True} if backend == "numpy" else {}

        def batch(model: Callable = model, kwargs: dict = kwargs, backend: str = backend) -> Any:
            return am.batched_curve_fit(model, t, y, p0=P0, bounds=bounds, backend=backend, **kwargs)

        cold_start = time.perf_counter()
        batch()
        cold = time.perf_counter() - cold_start
        seconds, res = _median_time(batch, repeats)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loop_start = time.perf_counter()
            for row in sub:
                am.curve_fit(model, t, row, p0=P0, bounds=bounds, backend=backend)
            am_seconds = (time.perf_counter() - loop_start) * scale
        fitted = np.stack([np.asarray(v) for v in res.x], axis=1)[:LOOP_SUBSET]
        common = {
            "bench": f"{FITS} decay fits",
            "backend": backend,
            "success": float(res.success.mean()),
            "nfev": float(res.nfev.mean()),
            "max_dp": float(np.abs(fitted - np.array(scipy_fits)).max()),
            "cost_ratio": float(np.max(res.cost[:LOOP_SUBSET] / scipy_cost)),
        }
        name = "batched_curve_fit" + (" vectorized" if backend == "numpy" else "")
        rows.append(
            common | {"contender": name + " (first call)", "seconds": cold, "baseline": "scipy curve_fit loop", "baseline_seconds": scipy_seconds}
        )
        rows.append(common | {"contender": name, "seconds": seconds, "baseline": "scipy curve_fit loop", "baseline_seconds": scipy_seconds})
        rows.append(common | {"contender": name, "seconds": seconds, "baseline": f"am.curve_fit loop ({backend})", "baseline_seconds": am_seconds})
        if backend == "torch":
            rows.append(
                common
                | {
                    "contender": name + ", 1 thread",
                    "seconds": _one_torch_thread(batch, repeats),
                    "baseline": "scipy curve_fit loop",
                    "baseline_seconds": scipy_seconds,
                }
            )
    return rows


def _one_torch_thread(run: Callable[[], Any], repeats: int) -> float:
    """``run``'s median seconds with torch's intra-op threads set to one (then restored): each
    eager operation over the batch is a parallel region, whose threads wait on each other when
    the machine is busy."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _median_time(run, repeats)[0]
    finally:
        torch.set_num_threads(threads)


def _rosen_numpy(x: np.ndarray) -> tuple[float, np.ndarray]:
    a, b = x[:-1], x[1:]
    f = float(np.sum(100 * (b - a**2) ** 2 + (1 - a) ** 2))
    g = np.zeros_like(x)
    g[:-1] = -400 * a * (b - a**2) - 2 * (1 - a)
    g[1:] += 200 * (b - a**2)
    return f, g


def _lbfgs_rows(repeats: int) -> list[dict]:
    import scipy.optimize as so

    import autominimize as am

    box = [(-2.0, 0.9)] * DIM
    starts = np.random.default_rng(1).uniform(-2.0, 0.9, size=(STARTS, DIM))
    start = time.perf_counter()
    refs = [so.minimize(_rosen_numpy, s, jac=True, method="L-BFGS-B", bounds=box) for s in starts[:LOOP_SUBSET]]
    scipy_seconds = (time.perf_counter() - start) * STARTS / LOOP_SUBSET
    ref_x, ref_f = np.array([r.x for r in refs]), np.array([r.fun for r in refs])
    rows = []
    for backend in ("jax", "torch"):
        if backend == "jax":
            import jax.numpy as xp
        else:
            import torch as xp

        def rosen(x: Any, xp: Any = xp) -> Any:
            return xp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

        def batch(rosen: Callable = rosen, backend: str = backend) -> Any:
            return am.minimize(rosen, starts, method="lbfgs-native", batch=True, backend=backend, bounds=box, options={"line_search": "wolfe"})

        cold_start = time.perf_counter()
        batch()
        cold = time.perf_counter() - cold_start
        seconds, res = _median_time(batch, repeats)
        common = {
            "bench": f"{STARTS} starts, bounded rosen{DIM}",
            "backend": backend,
            "success": float(res.success.mean()),
            "nfev": float(res.nfev.mean()),
            "max_dp": float(np.median(np.abs(res.x[:LOOP_SUBSET] - ref_x).max(axis=1))),
            # the box holds several local minima; a start may settle in another one than scipy's
            "cost_ratio": float(np.mean(np.abs(res.fun[:LOOP_SUBSET] - ref_f) <= 1e-6 * (1 + np.abs(ref_f)))),
            "baseline": "scipy L-BFGS-B loop",
            "baseline_seconds": scipy_seconds,
        }
        rows.append(common | {"contender": "batched L-BFGS, Wolfe (first call)", "seconds": cold})
        rows.append(common | {"contender": "batched L-BFGS, Wolfe", "seconds": seconds})
    return rows


def run_batched(repeats: int = 3) -> list[dict]:
    """Every row of the curve-fit and L-BFGS tables (``repeats`` warm runs after a cold one)."""
    return _fit_rows(repeats) + _lbfgs_rows(repeats)


def format_batched(rows: list[dict]) -> str:
    """A plain-text table of :func:`run_batched`'s rows."""
    header = (
        f"{'bench':28s} {'backend':7s} {'contender':38s} {'seconds':>8s} {'baseline':28s} {'base s':>8s} "
        f"{'speedup':>8s} {'nfev':>6s} {'ok':>5s} {'|dp|':>9s} {'cost':>10s}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['bench']:28s} {row['backend']:7s} {row['contender']:38s} {row['seconds']:8.3f} {row['baseline']:28s} "
            f"{row['baseline_seconds']:8.2f} {row['baseline_seconds'] / row['seconds']:7.1f}x {row['nfev']:6.1f} "
            f"{row['success']:5.3f} {row['max_dp']:9.2e} {row['cost_ratio']:10.6f}"
        )
    return "\n".join(lines)


def _solve_on(client: Any, t: np.ndarray, y: np.ndarray, chunk_size: int | None, keep_residuals: bool) -> tuple[float, Any]:
    import autominimize as am

    start = time.perf_counter()
    res = am.batched_curve_fit(
        decay_numpy, t, y, p0=P0, bounds=(LOWER, UPPER), vectorized=True, executor=client, chunk_size=chunk_size, keep_residuals=keep_residuals
    )
    return time.perf_counter() - start, res


def run_dask(
    fits: int = 1_000_000, chunk_size: int | None = None, check: int = 50_000, malloc_trim: bool = False, keep_residuals: bool = False
) -> dict:
    """``fits`` fits on a Dask LocalCluster of 2 workers and of 1 (one thread each, loopback), in
    chunks of ``chunk_size`` (by default the library's: 12 500 fits of 50 points for 10⁶).

    Returns seconds and fits per second for each, and whether the results equal each other and
    an in-process solve of the first ``check`` fits, member by member, exactly.

    Dask starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which turns off glibc's
    adaptive mmap threshold: every array over 128 kB is then mapped and zeroed afresh, and
    the batched solver's large temporaries cost twice the CPU time (25 000 fits: 1.3 s
    against 0.6 s, in one process with and without the variable). Unless ``malloc_trim``,
    the workers start without it.
    """
    import dask
    from dask.distributed import Client, LocalCluster

    import autominimize as am
    from autominimize.drivers.batched_fit import default_chunk_size

    t, y = decay_data(fits, seed=2)
    size = default_chunk_size(fits, len(P0), POINTS, workers=2) if chunk_size is None else chunk_size
    out: dict[str, Any] = {
        "fits": fits,
        "chunk_size": f"{size} ({'default' if chunk_size is None else 'given'})",
        "malloc_trim": malloc_trim,
        "keep_residuals": keep_residuals,
    }
    environ = {} if malloc_trim else {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
    results = {}
    for workers in (2, 1):
        with (
            dask.config.set(environ),
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as cluster,
            Client(cluster) as client,
        ):
            _solve_on(client, t, y[: 2 * workers * 1000], 1000, keep_residuals)  # workers import and warm up
            seconds, res = _solve_on(client, t, y, chunk_size, keep_residuals)
        out[f"seconds_{workers}"] = seconds
        out[f"fits_per_second_{workers}"] = fits / seconds
        results[workers] = res.x
        out["success"] = out.get("success", float(res.success.mean()))
        del res
    local = am.batched_curve_fit(decay_numpy, t, y[:check], p0=P0, bounds=(LOWER, UPPER), vectorized=True, chunk_size=size)
    out["throughput_ratio"] = out["seconds_1"] / out["seconds_2"]
    out["same_2_vs_1"] = all(np.array_equal(a, b) for a, b in zip(results[2], results[1]))
    out["same_as_in_process"] = all(np.array_equal(a[:check], b) for a, b in zip(results[2], local.x))
    return out


def format_dask(out: dict) -> str:
    return (
        f"{out['fits']} fits on a Dask LocalCluster (chunks of {out['chunk_size']}, NumPy vectorized, "
        f"MALLOC_TRIM_THRESHOLD_ {'as Dask sets it' if out['malloc_trim'] else 'unset'}, "
        f"keep_residuals={out['keep_residuals']}): "
        f"2 workers {out['seconds_2']:.1f} s ({out['fits_per_second_2']:.0f} fits/s), 1 worker {out['seconds_1']:.1f} s "
        f"({out['fits_per_second_1']:.0f} fits/s): throughput ×{out['throughput_ratio']:.2f}; results equal across "
        f"2 and 1 workers: {out['same_2_vs_1']}, and to an in-process solve: {out['same_as_in_process']}; success {out['success']:.4f}"
    )


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.batched", description="Batched curve fits and L-BFGS against loops; optionally Dask.")
    parser.add_argument(
        "--dask", nargs="?", type=int, const=1_000_000, metavar="FITS", help="also FITS fits (default 10⁶) on Dask, 2 workers against 1"
    )
    parser.add_argument("--dask-only", action="store_true", help="with --dask: skip the curve-fit and L-BFGS tables")
    parser.add_argument(
        "--dask-chunk-size", type=int, default=None, metavar="N", help="members per chunk on Dask (default: the library's, 12 500 for 10⁶ fits)"
    )
    parser.add_argument("--dask-malloc-trim", action="store_true", help="keep Dask's MALLOC_TRIM_THRESHOLD_ on the workers")
    parser.add_argument("--dask-keep-residuals", action="store_true", help="with --dask: also bring every fit's residuals and Jacobian back")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not (args.dask and args.dask_only):
        print(format_batched(run_batched()))
    if args.dask:
        print()
        print(
            format_dask(
                run_dask(
                    args.dask,
                    chunk_size=args.dask_chunk_size,
                    check=min(50_000, args.dask),
                    malloc_trim=args.dask_malloc_trim,
                    keep_residuals=args.dask_keep_residuals,
                )
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
