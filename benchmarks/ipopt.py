"""IPOPT benchmark: automatic sparse derivatives against hand-built ones and dense trust-constr.

Part 1 solves a banded problem, a discretised pendulum fitted to noisy data (n states,
n - 2 equality constraints ``x[i-1] - 2 x[i] + x[i+1] + h² sin x[i] = 0``), at n = 1000 with
``am.minimize(method='ipopt')`` on JAX (sparsity read by asdex, compressed Hessian-vector
products), with cyipopt fed hand-built sparse triplets in NumPy, and with ``trust-constr``
fed dense exact JAX derivatives; at n = 10⁴ with the first two, the set-up (tracing,
detection, colouring) reported apart from the solve and cached for the second solve.
Part 2 runs the Hock–Schittkowski set (:mod:`autominimize.testing.hock_schittkowski`)
through ``method='ipopt'`` and through cyipopt fed exact dense derivatives written with
``jax.jit`` by hand, and counts evaluations.

>>> from benchmarks.ipopt import run_ipopt_bench   # doctest: +SKIP
>>> rows = run_ipopt_bench(repeats=3)                       # doctest: +SKIP

Run ``python -m benchmarks --section ipopt`` for the table.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["callback_costs", "format_callback_costs", "format_ipopt_bench", "pendulum", "run_ipopt_bench"]

IPOPT_SETTINGS = {"tol": 1e-8, "mu_strategy": "adaptive"}


def pendulum(n: int, seed: int = 0) -> tuple[np.ndarray, float]:
    """Noisy observations of a pendulum's angle (θ(0) = 2.8, at rest) on t ∈ [0, 10], and the step h."""
    h = 10.0 / (n - 1)
    theta = np.empty(n)
    theta[0] = 2.8
    theta[1] = 2.8 - 0.5 * h * h * np.sin(2.8)
    for i in range(1, n - 1):
        theta[i + 1] = 2 * theta[i] - theta[i - 1] - h * h * np.sin(theta[i])
    return theta + 0.05 * np.random.default_rng(seed).standard_normal(n), h


def _jax_problem(n: int) -> tuple[Callable, dict]:
    import jax.numpy as jnp

    y, h = pendulum(n)

    def fit(x):
        return h * jnp.sum((x - y) ** 2) + jnp.sum(1 - jnp.cos(x[1:] - x[:-1]))

    def dynamics(x):
        return x[:-2] - 2 * x[1:-1] + x[2:] + h * h * jnp.sin(x[1:-1])

    return fit, {"type": "eq", "fun": dynamics}


class _HandBuilt:
    """The pendulum problem with derivatives and sparse triplets written out in NumPy."""

    def __init__(self, n: int) -> None:
        self.y, self.h = pendulum(n)
        self.n = n
        rows = np.repeat(np.arange(n - 2), 3)
        cols = (np.arange(n - 2)[:, None] + np.arange(3)).ravel()
        self.jac_structure = (rows, cols)
        diagonal = np.arange(n)
        self.hess_structure = (np.concatenate([diagonal, diagonal[1:]]), np.concatenate([diagonal, diagonal[:-1]]))

    def objective(self, x):
        return self.h * np.sum((x - self.y) ** 2) + np.sum(1 - np.cos(np.diff(x)))

    def gradient(self, x):
        s = np.sin(np.diff(x))
        g = 2 * self.h * (x - self.y)
        g[1:] += s
        g[:-1] -= s
        return g

    def constraints(self, x):
        return x[:-2] - 2 * x[1:-1] + x[2:] + self.h**2 * np.sin(x[1:-1])

    def jacobian(self, x):
        values = np.empty((self.n - 2, 3))
        values[:, 0] = 1.0
        values[:, 1] = -2.0 + self.h**2 * np.cos(x[1:-1])
        values[:, 2] = 1.0
        return values.ravel()

    def jacobianstructure(self):
        return self.jac_structure

    def hessian(self, x, lagrange, obj_factor):
        cosine = np.cos(np.diff(x))
        diagonal = np.full(self.n, 2 * self.h * obj_factor)
        diagonal[1:] += obj_factor * cosine
        diagonal[:-1] += obj_factor * cosine
        diagonal[1:-1] -= lagrange * self.h**2 * np.sin(x[1:-1])
        return np.concatenate([diagonal, -obj_factor * cosine])

    def hessianstructure(self):
        return self.hess_structure


def _hand_solve(n: int, built: type = _HandBuilt) -> tuple[float, int]:
    import cyipopt

    hand = built(n)
    problem = cyipopt.Problem(n=n, m=n - 2, problem_obj=hand, cl=np.zeros(n - 2), cu=np.zeros(n - 2))
    for key, value in {"print_level": 0, "sb": "yes", **IPOPT_SETTINGS}.items():
        problem.add_option(key, value)
    _, info = problem.solve(np.zeros(n))
    return float(info["obj_val"]), int(info["status"])


def _alternated(contenders: dict[str, Callable[[], Any]], repeats: int) -> dict[str, tuple[float, Any]]:
    """Median time and last result of each contender, run in turn once per round (so that a
    change of load on the shared machine reaches every contender alike)."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    results: dict[str, Any] = {}
    for _ in range(repeats):
        for name, solve in contenders.items():
            start = time.perf_counter()
            results[name] = solve()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(times[name]), results[name]) for name in contenders}


def _banded_contenders(n: int) -> tuple[dict[str, Callable[[], Any]], Callable[[], Any]]:
    """The timed solves of the banded problem at n, and ours (to run once cold first)."""
    import autominimize as am

    fit, dynamics = _jax_problem(n)

    def ours():
        return am.minimize(fit, np.zeros(n), method="ipopt", constraints=dynamics, backend="jax", options=dict(IPOPT_SETTINGS))

    contenders = {"am ipopt (JAX, automatic sparse)": ours, "cyipopt, hand-built triplets": lambda: _hand_solve(n)}
    if n == 1000:
        options = {"maxiter": 3000, "gtol": 1e-8, "xtol": 1e-12}

        def trust_constr(sparse: bool) -> Any:
            return am.minimize(fit, np.zeros(n), method="trust-constr", constraints=dynamics, backend="jax", options=dict(options, sparse=sparse))

        contenders["trust-constr, dense exact (JAX)"] = lambda: trust_constr(False)
        contenders["trust-constr, automatic sparse (JAX)"] = lambda: trust_constr(True)
    return contenders, ours


def _banded_rows(repeats: int) -> list[dict]:
    rows = []
    for n in (1000, 10_000):
        contenders, ours = _banded_contenders(n)
        start = time.perf_counter()
        first = ours()
        first_time = time.perf_counter() - start
        for name, (elapsed, res) in _alternated(contenders, repeats).items():
            row = {"part": "banded", "n": n, "contender": name, "time_s": elapsed}
            if isinstance(res, tuple):  # the hand-built solve: (f, status)
                row.update(f=res[0], success=res[1] == 0)
            else:
                row.update(f=res.fun, nit=res.nit, success=bool(res.success))
            if name.startswith("am ipopt"):
                row.update(first_s=first_time, setup_s=first.sparsity["setup_seconds"], cached=res.sparsity["cached"])
                row.update({key: res.sparsity[key] for key in ("passes", "jacobian_nnz", "hessian_nnz")})
            rows.append(row)
    return rows


def _dense_cyipopt(problem: Any, options: dict | None = None) -> dict:
    """cyipopt fed jitted dense JAX derivatives written by hand, with its calls counted (``ncev``
    and ``ncjev`` those of the constraints and their Jacobian), and the points where f ran
    (``points``: a gradient call runs f too), which is what ``nfev`` counts."""
    import cyipopt
    import jax
    import jax.numpy as jnp

    constraints = problem.constraints()
    n = problem.n

    def g(x):
        return jnp.concatenate([jnp.reshape(c["fun"](x), (-1,)) for c in constraints])

    def lagrangian(x, sigma, lam):
        return sigma * problem.f(x) + jnp.dot(lam, g(x))

    f = jax.jit(problem.f)
    grad = jax.jit(jax.grad(problem.f))
    g_jit = jax.jit(g)
    jac = jax.jit(jax.jacfwd(g))
    hess = jax.jit(jax.hessian(lagrangian))
    lower = np.tril_indices(n)
    counts = {"nfev": 0, "njev": 0, "nhev": 0, "ncev": 0, "ncjev": 0}
    points: set[bytes] = set()

    class Dense:
        def objective(self, x):
            counts["nfev"] += 1
            points.add(x.tobytes())
            return float(f(x))

        def gradient(self, x):
            counts["njev"] += 1
            points.add(x.tobytes())
            return np.asarray(grad(x))

        def constraints(self, x):
            counts["ncev"] += 1
            return np.asarray(g_jit(x))

        def jacobian(self, x):
            counts["ncjev"] += 1
            return np.asarray(jac(x)).ravel()

        def hessian(self, x, lam, sigma):
            counts["nhev"] += 1
            return np.asarray(hess(x, sigma, lam))[lower]

        def hessianstructure(self):
            return lower

    m = int(g_jit(problem.x0).shape[0])
    cl = np.zeros(m)  # every HS constraint here is one value: c = 0 or c >= 0
    cu = np.array([0.0 if c["type"] == "eq" else np.inf for c in constraints])
    bounds = problem.bounds or (np.full(n, -np.inf), np.full(n, np.inf))
    solver = cyipopt.Problem(n=n, m=m, problem_obj=Dense(), lb=bounds[0], ub=bounds[1], cl=cl, cu=cu)
    for key, value in {"print_level": 0, "sb": "yes", **(options or {})}.items():
        solver.add_option(key, value)
    _, info = solver.solve(problem.x0.copy())
    return dict(counts, points=len(points), f=float(info["obj_val"]), status=int(info["status"]))


def _hs_rows() -> list[dict]:
    import jax

    import autominimize as am
    from autominimize.testing import hock_schittkowski as hs

    rows = []
    with jax.enable_x64(True):
        for problem in hs.PROBLEMS.values():
            # IPOPT's own default, as cyipopt runs it: the last iterate as IPOPT leaves it
            same = {"honor_original_bounds": "no"}
            ours = am.minimize(
                problem.f, problem.x0, method="ipopt", bounds=problem.bounds, constraints=problem.constraints(), backend="jax", options=same
            )
            default = am.minimize(problem.f, problem.x0, method="ipopt", bounds=problem.bounds, constraints=problem.constraints(), backend="jax")
            theirs = _dense_cyipopt(problem, same)
            scale = max(1.0, abs(problem.fstar))
            rows.append(
                {
                    "part": "hs",
                    "problem": problem.name,
                    "nfev": ours.nfev,
                    "njev": ours.njev,
                    "nhev": ours.nhev,
                    "nit": ours.nit,
                    "ncev": max(c["nfev"] for c in ours.constraint_evaluations),
                    "ncjev": max(c["njev"] for c in ours.constraint_evaluations),
                    "error": abs(ours.fun - problem.fstar) / scale,
                    "moved": default.nfev - ours.nfev,
                    "ref_nfev": theirs["nfev"],
                    "ref_points": theirs["points"],
                    "ref_njev": theirs["njev"],
                    "ref_nhev": theirs["nhev"],
                    "ref_ncev": theirs["ncev"],
                    "ref_ncjev": theirs["ncjev"],
                    "ref_error": abs(theirs["f"] - problem.fstar) / scale,
                }
            )
    return rows


def run_ipopt_bench(repeats: int = 3) -> list[dict]:
    """Both parts; one dict per row (``part`` is ``'banded'`` or ``'hs'``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _banded_rows(repeats) + _hs_rows()


def format_ipopt_bench(rows: list[dict]) -> str:
    """A plain-text table of :func:`run_ipopt_bench`'s rows."""
    lines = [
        "banded problem (pendulum, n - 2 equality constraints): median warm solve",
        f"{'n':>6} {'contender':36} {'solve [s]':>10} {'ratio':>7} {'f':>12} {'nit':>4}  notes",
    ]
    for n in sorted({row["n"] for row in rows if row["part"] == "banded"}):
        group = [row for row in rows if row["part"] == "banded" and row["n"] == n]
        hand = next(row["time_s"] for row in group if row["contender"].startswith("cyipopt"))
        dense = next((row["time_s"] for row in group if row["contender"].startswith("trust-constr, dense")), None)
        for row in group:
            notes = ""
            if "passes" in row:
                notes = (
                    f"set-up {row['setup_s']:.2f} s (first solve {row['first_s']:.2f} s), {row['passes']} compressed passes, "
                    f"nnz J {row['jacobian_nnz']}, nnz H {row['hessian_nnz']}"
                )
                if dense is not None:
                    notes += f"; dense trust-constr takes {dense / row['time_s']:.1f}x this"
            nit = row.get("nit")
            lines.append(
                f"{n:6d} {row['contender']:36} {row['time_s']:10.3f} {row['time_s'] / hand:7.2f} {row['f']:12.8f} {nit if nit is not None else '':>4}  {notes}"
            )
    lines += [
        "",
        "Hock-Schittkowski set: am ipopt (JAX) vs cyipopt fed jitted dense JAX derivatives (same IPOPT options, with",
        "honor_original_bounds='no' as IPOPT's default; ours by default moves the last iterate onto the bounds and evaluates",
        "f, its gradient and c there once more: +1 in the last column where it did);",
        "its f calls, the points where f ran (in its f or gradient calls, as nfev counts them), gradient and Hessian calls;",
        "c and J: the constraints' values and Jacobians (ours: the most of any constraint's nfev and njev)",
        f"{'problem':8} {'nfev':>5} {'njev':>5} {'nhev':>5} {'c':>4} {'J':>4} {'nit':>4} {'rel. error':>11} | "
        f"{'f':>5} {'points':>6} {'grad':>5} {'hess':>5} {'c':>4} {'J':>4} {'rel. error':>11} | default",
    ]
    for row in rows:
        if row["part"] == "hs":
            lines.append(
                f"{row['problem']:8} {row['nfev']:5d} {row['njev']:5d} {row['nhev']:5d} {row['ncev']:4d} {row['ncjev']:4d} {row['nit']:4d} "
                f"{row['error']:11.1e} | {row['ref_nfev']:5d} {row['ref_points']:6d} {row['ref_njev']:5d} {row['ref_nhev']:5d} "
                f"{row['ref_ncev']:4d} {row['ref_ncjev']:4d} {row['ref_error']:11.1e} | {'+' + str(row['moved']) if row['moved'] else ''}"
            )
    return "\n".join(lines)


CALLBACKS = ("objective", "gradient", "constraints", "jacobian", "hessian", "intermediate")


def _timed(cls: type, spent: dict) -> type:
    """``cls`` with each IPOPT callback it has adding its count and its thread CPU time to
    ``spent[name]`` (``time.thread_time``: other processes' work on the shared machine is not
    counted)."""

    def timed(method: Callable) -> Callable:
        def run(self, *arguments):
            start = time.thread_time()
            try:
                return method(self, *arguments)
            finally:
                entry = spent.setdefault(method.__name__, [0, 0.0])
                entry[0] += 1
                entry[1] += time.thread_time() - start

        return run

    return type(cls.__name__, (cls,), {name: timed(getattr(cls, name)) for name in CALLBACKS if hasattr(cls, name)})


def callback_costs(n: int = 1000, repeats: int = 25) -> dict[str, dict]:
    """CPU time per solve of the banded problem (``time.process_time``) for ``method='ipopt'``
    and for the hand-built triplets, run in turn, and the thread CPU time spent inside each
    kind of IPOPT callback: medians over ``repeats`` rounds, after one solve of each."""
    import autominimize as am
    from autominimize.drivers import ipopt as driver

    fit, dynamics = _jax_problem(n)
    spent: dict[str, list] = {}
    ours_class = _timed(driver.problem_class(), spent)
    hand_class = _timed(_HandBuilt, spent)

    def ours():
        original, driver.problem_class = driver.problem_class, lambda: ours_class
        try:
            return am.minimize(fit, np.zeros(n), method="ipopt", constraints=dynamics, backend="jax", options=dict(IPOPT_SETTINGS))
        finally:
            driver.problem_class = original

    contenders = {"am ipopt": ours, "hand-built": lambda: _hand_solve(n, hand_class)}
    rounds: dict[str, list] = {name: [] for name in contenders}
    for round_ in range(repeats + 1):
        for name, solve in contenders.items():
            spent.clear()
            start = time.process_time()
            solve()
            total = time.process_time() - start
            if round_:
                rounds[name].append((total, {key: tuple(value) for key, value in spent.items()}))
    rows = {}
    for name, measured in rounds.items():
        calls = measured[-1][1]
        per_call = {key: statistics.median(r[1].get(key, (0, 0.0))[1] for r in measured) / max(calls[key][0], 1) for key in calls}
        ratio = statistics.median(r[0] / h[0] for r, h in zip(measured, rounds["hand-built"]))
        inside = statistics.median(sum(value[1] for value in r[1].values()) for r in measured)
        rows[name] = dict(
            cpu_s=statistics.median(r[0] for r in measured),
            ratio=ratio,
            callbacks_s=inside,
            calls={k: v[0] for k, v in calls.items()},
            per_call_s=per_call,
        )
    return rows


def format_callback_costs(rows: dict[str, dict]) -> str:
    """A plain-text table of :func:`callback_costs`."""
    lines = [f"{'':10} {'CPU/solve [ms]':>14} {'/hand':>6} {'in callbacks [ms]':>17}  calls x median CPU per call"]
    for name, row in rows.items():
        calls = "  ".join(f"{key} {row['calls'][key]}x{row['per_call_s'][key] * 1e6:.0f}us" for key in CALLBACKS if key in row["calls"])
        lines.append(f"{name:10} {row['cpu_s'] * 1e3:14.2f} {row['ratio']:6.3f} {row['callbacks_s'] * 1e3:17.2f}  {calls}")
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.ipopt", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--callbacks", type=int, metavar="N", help="only the CPU time per solve and per callback at n = N (25 rounds)")
    arguments = parser.parse_args()
    if arguments.callbacks:
        print(format_callback_costs(callback_costs(arguments.callbacks)))
    else:
        print(format_ipopt_bench(run_ipopt_bench(arguments.repeats)))
