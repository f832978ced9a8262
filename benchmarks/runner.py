"""Timing: one warm-up solve per contender, then interleaved warm repeats, medians.

Within a cell every repeat runs each contender once, so slow drifts of the machine hit every
contender alike. The order changes from round to round (a seeded shuffle): a contender that
always ran after the same neighbour would always find the processor's caches in the state
that neighbour left them, which moves a millisecond solve by 10–20%. Cells whose rounds are
quick run more of them, until ``CELL_MIN_SECONDS`` are spent.
"""

from __future__ import annotations

import gc
import json
import os
import random
import statistics
import subprocess
import sys
import time
import traceback
import warnings
from typing import Any, Callable, Iterable

from .contenders import CONTENDERS, Contender
from .problems import Cell, select_cells

__all__ = ["run", "run_cell", "setup_threads", "import_time", "RTOL", "CELL_BUDGET", "WARMUP_MAXITER"]

#: |f - f_ref| <= cell.atol + RTOL * |f_ref| counts as the same optimum
RTOL = 1e-6
#: when the reference itself stops unconverged (an evaluation limit), a contender is right if
#: it stops unconverged too with f within this relative distance of the reference's
UNCONVERGED_RTOL = 1e-2

_THREAD_STATE: dict[str, Any] = {}


def setup_threads(load_frameworks: bool = True) -> dict:
    """Limit every pool to one thread for the whole process; say what was done.

    * BLAS (and OpenMP) pools: one process-wide ``threadpoolctl`` limit, held from here on.
    * XLA (JAX): ``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1`` is
      added to ``XLA_FLAGS`` if JAX was not imported yet (it is read when JAX starts).
    * torch: ``torch.set_num_threads(1)``.
    * TensorFlow: intra- and inter-op pools of 1, if TensorFlow has not started yet.
    """
    if _THREAD_STATE:
        return _THREAD_STATE
    import importlib.util

    from threadpoolctl import threadpool_limits

    state = _THREAD_STATE
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if importlib.util.find_spec("jax") is not None:
        if "jax" not in sys.modules:
            flags = os.environ.get("XLA_FLAGS", "")
            if "multi_thread_eigen" not in flags:
                os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
            state["xla"] = "1 thread (XLA_FLAGS)"
        else:
            state["xla"] = "jax imported before the bench: XLA threads not limited"
    if load_frameworks and importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(1)
        state["torch"] = f"set_num_threads(1) -> {torch.get_num_threads()}"
    if load_frameworks and importlib.util.find_spec("tensorflow") is not None:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
            state["tensorflow"] = "intra/inter-op 1"
        except RuntimeError:
            state["tensorflow"] = "already started: pools not limited"
    # after the frameworks are loaded, so that their BLAS/OpenMP libraries are limited too
    state["_limits"] = threadpool_limits(limits=1)
    state["blas"] = "threadpoolctl limit 1 (process-wide)"
    return state


def _first_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0][:200]


def _same_optimum(f: float | None, f_ref: float | None, atol: float, ref_converged: bool = True, converged: bool = True) -> bool | None:
    if f is None or f_ref is None:
        return None
    if not ref_converged:
        return not converged and abs(f - f_ref) <= UNCONVERGED_RTOL * abs(f_ref)
    return abs(f - f_ref) <= atol + RTOL * abs(f_ref)


#: the warm-up solve stops after this many iterations: it is there to compile and fill caches
WARMUP_MAXITER = 3
#: default seconds of timed rounds per cell; more rounds stop once this is spent (>= 1 round)
CELL_BUDGET = 20.0
#: a cell runs more than ``repeats`` rounds, up to ``MAX_ROUNDS_FACTOR * repeats``, while its
#: timed rounds have taken less than this many seconds (millisecond solves are noisy)
CELL_MIN_SECONDS = 1.0
MAX_ROUNDS_FACTOR = 20


def run_cell(
    cell: Cell,
    repeats: int = 5,
    contenders: Iterable[Contender] | None = None,
    progress: Callable[[str], None] | None = None,
    budget: float | None = CELL_BUDGET,
    min_seconds: float = CELL_MIN_SECONDS,
) -> dict:
    """Time every contender on one cell; return its row.

    One warm-up solve per contender (``maxiter=WARMUP_MAXITER``: it compiles and fills the
    caches), then ``repeats`` interleaved timed rounds, each running every contender once in
    a shuffled order, and more (up to ``MAX_ROUNDS_FACTOR * repeats``) while the rounds have
    taken less than ``min_seconds``. Rounds stop early once ``budget`` seconds of timed
    rounds are spent (at least one round runs), so that the slow cells keep the whole run
    short; ``repeats`` in the row says how many ran.
    """
    contenders = [c for c in (contenders or CONTENDERS)]
    if cell.max_repeats is not None:
        repeats = min(repeats, cell.max_repeats)
    repeats = max(1, int(repeats))
    problem = cell.build()
    times: dict[str, list[float]] = {c.key: [] for c in contenders}
    fs: dict[str, float | None] = {c.key: None for c in contenders}
    counts: dict[str, dict | None] = {c.key: None for c in contenders}
    errors: dict[str, str] = {}
    warm: dict[str, float] = {}
    live = []
    for c in contenders:
        if not c.available():
            errors[c.key] = f"{c.framework} is not installed"
        else:
            live.append(c)

    def once(c: Contender) -> float | None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                start = time.perf_counter()
                f, cnt = c.solve(problem)
                elapsed = time.perf_counter() - start
        except Exception as exc:  # a backend being written may not work yet: skip it
            errors[c.key] = _first_line(exc)
            if os.environ.get("AUTOMINIMIZE_BENCH_TRACEBACK"):
                traceback.print_exc()
            return None
        if problem.options is None:
            fs[c.key], counts[c.key] = f, cnt
        return elapsed

    # warm-up round (compiles), then the interleaved timed rounds
    problem.options = {"maxiter": WARMUP_MAXITER}
    for c in list(live):
        elapsed = once(c)
        if elapsed is None:
            live.remove(c)
        else:
            warm[c.key] = elapsed
    problem.options = None
    spent, rounds = 0.0, 0
    order = random.Random(0)
    while live and (rounds < repeats or spent < min_seconds and rounds < MAX_ROUNDS_FACTOR * repeats):
        gc.collect()
        round_start = time.perf_counter()
        this_round = list(live)
        order.shuffle(this_round)
        for c in this_round:
            elapsed = once(c)
            if elapsed is None:
                live.remove(c)
                times[c.key] = []
            else:
                times[c.key].append(elapsed)
        rounds += 1
        spent += time.perf_counter() - round_start
        if budget is not None and spent >= budget:
            break
    medians = {k: (statistics.median(v) if v else None) for k, v in times.items()}
    f_ref = fs.get("ref")
    ref_converged = bool(counts.get("ref") and counts["ref"].get("success"))
    row = {
        "cell": cell.name,
        "method": problem.method,
        "n": problem.n,
        "repeats": rounds,
        "contenders": [c.key for c in contenders],
        "seconds": medians,
        "times": times,
        "warmup_seconds": warm,
        "f": fs,
        "f_ref": f_ref,
        "atol": cell.atol,
        "ref_converged": ref_converged,
        "ok": {
            k: (
                _same_optimum(fs[k], f_ref, cell.atol, ref_converged, bool(counts[k] and counts[k].get("success")))
                if medians[k] is not None
                else None
            )
            for k in fs
        },
        "counts": counts,
        "errors": errors,
    }
    ref_s = medians.get("ref")
    row["ratios"] = {k: (v / ref_s if (v is not None and ref_s) else None) for k, v in medians.items()}
    row["vs_own_baseline"] = {
        "am-jax/jax-hand": _ratio(medians, "am-jax", "jax-hand"),
        "am-torch/torch-hand": _ratio(medians, "am-torch", "torch-hand"),
        "am-tf/tf-hand": _ratio(medians, "am-tf", "tf-hand"),
    }
    row["counts_match"] = _counts_match(counts.get("ref"), counts.get("am-jax"))
    row["counts_match_jax_hand"] = _counts_match(counts.get("jax-hand"), counts.get("am-jax"))
    row["counts_match_numpy"] = _counts_match(counts.get("ref"), counts.get("am-np"))
    problem.cache.clear()
    if progress is not None:
        progress(f"{cell.name}: {rounds} timed round(s), {spent:.1f} s")
    return row


def _ratio(medians: dict, a: str, b: str) -> float | None:
    if medians.get(a) is None or not medians.get(b):
        return None
    return medians[a] / medians[b]


def _counts_match(ref: dict | None, am: dict | None) -> bool | None:
    """am's counts equal scipy's: nfev, njev, and scipy's nhev = am's nhev + nhvp."""
    if ref is None or am is None:
        return None
    return ref["nfev"] == am["nfev"] and ref["njev"] == am["njev"] and ref["nhev"] == am["nhev"] + am["nhvp"]


def run(
    cells: Any = None,
    repeats: int = 5,
    *,
    quick: bool = False,
    contenders: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
    limit_threads: bool = True,
    budget: float | None = CELL_BUDGET,
) -> list[dict]:
    """Run the benchmark and return one dict per cell.

    Parameters
    ----------
    cells : None, str or list of str
        Substrings of cell names to run (case-insensitive); None runs every cell (the quick
        subset when ``quick``).
    repeats : int
        Timed warm repeats per cell after one warm-up solve (rosen10000 takes at most 3).
    budget : float or None
        Seconds of timed rounds per cell after which no further round starts (None: no limit).
    quick : bool
        A smoke run: one round, and the small cells unless ``cells`` is given.
    contenders : list of str, optional
        Contender keys to run (default all); 'ref' is always included.
    limit_threads : bool
        Limit every thread pool to one thread for the rest of the process (see
        :func:`setup_threads`).

    Each row has ``cell``, ``method``, ``n``, ``repeats``, ``seconds`` (median per contender,
    None when it failed or is unavailable), ``times`` (every timed run), ``ratios`` (to the
    reference), ``vs_own_baseline``, ``f``, ``f_ref``, ``ok`` (same optimum as the reference),
    ``counts`` (nfev/njev/nhev/nhvp), ``counts_match`` (am-jax vs the reference) and
    ``errors`` (contender -> first line of what it raised).
    """
    if limit_threads:
        setup_threads()
    min_seconds = CELL_MIN_SECONDS
    if quick:
        repeats, min_seconds = 1, 0.0
    chosen = select_cells(cells, quick=quick)
    pool = CONTENDERS
    if contenders is not None:
        keys = set(contenders) | {"ref"}
        pool = [c for c in CONTENDERS if c.key in keys]
    return [run_cell(cell, repeats, pool, progress, budget, min_seconds) for cell in chosen]


def import_time(runs: int = 3) -> dict:
    """Median time of ``import autominimize`` in fresh interpreters, and which frameworks it loaded."""
    code = (
        "import time, sys\n"
        "t = time.perf_counter()\n"
        "import numpy, scipy.optimize\n"
        "t1 = time.perf_counter()\n"
        "import autominimize\n"
        "t2 = time.perf_counter()\n"
        "import json\n"
        "print(json.dumps({'total': t2 - t, 'numpy_scipy': t1 - t, 'own': t2 - t1,\n"
        "  'frameworks': [m for m in ('jax', 'torch', 'tensorflow') if m in sys.modules]}))\n"
    )
    code_raw = (
        "import time, sys\n"
        "t = time.perf_counter()\n"
        "import autominimize\n"
        "t2 = time.perf_counter()\n"
        "import json\n"
        "print(json.dumps({'raw': t2 - t,\n"
        "  'frameworks': [m for m in ('jax', 'torch', 'tensorflow') if m in sys.modules]}))\n"
    )
    env = {k: v for k, v in os.environ.items()}
    raw, parts, frameworks = [], [], set()
    for _ in range(runs):
        for source, sink in ((code_raw, raw), (code, parts)):
            out = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, env=env, timeout=120)
            if out.returncode != 0:
                return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
            data = json.loads(out.stdout.strip().splitlines()[-1])
            sink.append(data)
            frameworks.update(data["frameworks"])
    return {
        "seconds": statistics.median(d["raw"] for d in raw),
        "numpy_scipy_seconds": statistics.median(d["numpy_scipy"] for d in parts),
        "own_seconds": statistics.median(d["own"] for d in parts),
        "frameworks_loaded": sorted(frameworks),
        "runs": runs,
    }
