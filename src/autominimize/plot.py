"""Plots of solves: criterion against iterations/evaluations/time, parameter paths, profiles.

Each function returns a ``matplotlib.figure.Figure`` (no pyplot state is touched), so
``fig.savefig("run.png")`` works in scripts, tests and notebooks alike. Needs the ``plot``
extra (matplotlib).
"""

from __future__ import annotations

import os
import reprlib
from typing import Any, Iterable, Mapping

import numpy as np

from .recording import History
from .validation import check_count, is_number, is_one_of

__all__ = ["criterion", "params", "profile"]


def _figure(ncols: int = 1, nrows: int = 1, size: tuple[float, float] = (6.4, 4.0)):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("am.plot needs matplotlib: pip install 'autominimize[plot]'") from None
    figure = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    axes = figure.subplots(nrows, ncols, squeeze=False)
    return figure, axes


_RUNS = "give results of am.minimize (with history=True), runs from am.read_log, log file paths, or a list or dict of those"


def _history_of(item: Any, where: str) -> History:
    """The history of one run, ``where`` naming it in errors (``runs[0]``, ``runs['BFGS']``)."""
    if isinstance(item, (str, os.PathLike)):
        from .recording.log_reader import _read_named

        return _read_named(item, None, where).history
    history = getattr(item, "history", None)
    if isinstance(history, History):
        return history
    if isinstance(item, History):
        return item
    if isinstance(item, Mapping) and "x" in item:
        raise TypeError(f"{where} is a result without a history (scipy's results have none; am.minimize's has one unless history=False): {_RUNS}.")
    raise TypeError(f"{where} is of type {type(item).__name__}, which cannot be plotted: {_RUNS}.")


def _is_one_run(item: Any) -> bool:
    """Whether ``item`` is one run: a result (an OptimizeResult is a dict, yet one run), a
    logged run, a History or a log path, rather than a dict or list of runs."""
    from scipy.optimize import OptimizeResult

    return isinstance(item, (OptimizeResult, History, str, os.PathLike)) or isinstance(getattr(item, "history", None), History)


def _labelled(runs: Any) -> list[tuple[str, History]]:
    if _is_one_run(runs):
        return [("run", _history_of(runs, "runs"))]
    if isinstance(runs, (Mapping, list, tuple)) and not runs:
        raise ValueError(f"runs is an empty {type(runs).__name__}: nothing to plot; {_RUNS}.")
    if isinstance(runs, Mapping):
        return [(str(label), _history_of(run, f"runs[{label!r}]")) for label, run in runs.items()]
    if isinstance(runs, (list, tuple)):
        return [(f"run {i}", _history_of(run, f"runs[{i}]")) for i, run in enumerate(runs)]
    return [("run", _history_of(runs, "runs"))]


def criterion(runs: Any, x: str = "iterations", log_scale: bool = True):
    """f against iterations, evaluations or time, one line per run.

    Parameters
    ----------
    runs
        A result, a logged run, a log file path, or a list (or a dict label → run) of those.
    x : {'iterations', 'evaluations', 'time'}
        What goes on the horizontal axis. 'evaluations' draws the best f so far against the
        number of evaluations that computed a value.
    log_scale
        A logarithmic f axis (values are shifted to stay positive when some are ≤ 0).

    Examples
    --------
    >>> import numpy as np, autominimize as am
    >>> res = am.minimize(lambda v: ((v - 1) ** 2).sum(), np.zeros(3), backend="numpy",
    ...                   jac=lambda v: 2 * (v - 1))
    >>> fig = am.plot.criterion({"BFGS": res}, x="evaluations")
    """
    if not isinstance(log_scale, (bool, np.bool_)):
        raise TypeError(f"log_scale must be True or False; got {log_scale!r} ({type(log_scale).__name__}).")
    choices = ("iterations", "evaluations", "time")
    if not is_one_of(x, choices):
        raise ValueError(f"x={x!r} is not one of {choices}.")
    figure, axes = _figure()
    ax = axes[0, 0]
    curves = []
    for label, history in _labelled(runs):
        if x == "evaluations":
            values = np.array([e.f for e in history.evaluations if e.kind in ("value", "value_and_gradient")])
            ys = np.minimum.accumulate(values) if values.size else values
            xs = np.arange(1, ys.size + 1)
        else:
            ys = history.column("f")
            xs = history.column("nit") if x == "iterations" else history.column("time")
        curves.append((label, xs, ys))
    floor = min((ys.min() for _, _, ys in curves if ys.size), default=0.0)
    shift = (1e-16 - floor) if log_scale and floor <= 0 else 0.0
    marker = "." if all(xs.size < 50 for _, xs, _ in curves) else None
    for label, xs, ys in curves:
        ax.plot(xs, ys + shift, label=label, marker=marker)
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel({"iterations": "iteration", "evaluations": "evaluations of f", "time": "seconds"}[x])
    ax.set_ylabel("f" + (f" + {shift:.3g}" if shift else "") + (" (best so far)" if x == "evaluations" else ""))
    ax.grid(True, alpha=0.3)
    if len(curves) > 1 or curves and curves[0][0] != "run":
        ax.legend()
    return figure


def params(result: Any, max_lines: int = 12):
    """The path of each parameter leaf over the iterations: one panel per leaf.

    At most ``max_lines`` elements of a leaf are drawn (the first ones), at the iterations
    whose x the history kept (every one on a small problem; see ``History.point_budget``).
    """
    if check_count(max_lines, "max_lines") == 0:
        raise ValueError("max_lines must be a positive integer (the elements drawn per leaf); got 0.")
    if isinstance(result, (list, tuple)) or isinstance(result, Mapping) and "x" not in result:
        raise TypeError(
            f"result must be one run (a result of am.minimize, a run from am.read_log or a log file path); got a {type(result).__name__}."
        )
    history = _history_of(result, "result")
    if not history.iterations:
        raise ValueError("the run recorded no iteration to plot (was it run with history=True?)")
    kept = [it for it in history.iterations if it.x is not None]  # a large solve's history keeps some
    if not kept:
        raise ValueError(
            "the run kept no iterates to plot: log with am.SQLiteLog(path, iterates=True), "
            "or plot the result of am.minimize (whose history keeps iterates within autominimize.recording.history.POINT_BUDGET)."
        )
    path = np.stack([it.x for it in kept])
    leaves = history.leaves or [("x", 0, path.shape[1])]
    figure, axes = _figure(ncols=min(len(leaves), 3), nrows=-(-len(leaves) // 3), size=(4.5, 3.2))
    flat_axes = axes.ravel()
    nit = np.array([it.nit for it in kept])
    for ax, (name, start, stop) in zip(flat_axes, leaves):
        for j in range(start, min(stop, start + max_lines)):
            ax.plot(nit, path[:, j], lw=1)
        ax.set_title(name)
        ax.set_xlabel("iteration")
        ax.grid(True, alpha=0.3)
    for ax in flat_axes[len(leaves) :]:
        ax.set_visible(False)
    return figure


def profile(rows: Iterable[Mapping[str, Any]], measure: str = "seconds", tau_max: float | None = None):
    """Performance profiles (Dolan & Moré, 2002) of solvers over problems.

    ``rows`` are mappings with keys ``problem``, ``solver`` and ``measure`` (seconds by
    default; a missing or non-finite value means the solver failed on that problem), such as
    the rows ``benchmarks.run`` returns. For each solver, the curve is the fraction of
    problems it solves within a factor τ of the best solver.
    """
    if tau_max is not None and not (is_number(tau_max) and tau_max > 1):
        raise ValueError(f"tau_max must be a number above 1 (the largest factor of the best drawn) or None; got {tau_max!r}.")
    if not isinstance(measure, str):
        raise TypeError(f"measure must be the name of the rows' key to compare (a str, such as 'seconds'); got {reprlib.repr(measure)}.")
    if isinstance(rows, (Mapping, str, bytes)) or not isinstance(rows, Iterable):
        raise TypeError(f"rows must be an iterable of mappings (one per solver and problem), such as a list of dicts; got {type(rows).__name__}.")
    table: dict[str, dict[str, float]] = {}
    rows = list(rows)
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping) or "solver" not in row or "problem" not in row:
            raise ValueError(f"rows[{index}] must be a mapping with keys 'problem', 'solver' and {measure!r}; got {reprlib.repr(row)}.")
        table.setdefault(str(row["solver"]), {})[str(row["problem"])] = _measured(row.get(measure), f"rows[{index}][{measure!r}]")
    if not table:
        raise ValueError("rows is empty: nothing to profile.")
    if not any(measure in row for row in rows):
        raise ValueError(f"measure={measure!r} is in none of the rows; their keys are {sorted(set().union(*rows))}.")
    problems = sorted({p for results in table.values() for p in results})
    matrix = np.array([[table[s].get(p, np.inf) for p in problems] for s in table])
    best = matrix.min(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = np.where(np.isfinite(best), matrix / best, np.inf)
    finite = ratios[np.isfinite(ratios)]
    upper = tau_max or max(2.0, float(finite.max()) * 1.05 if finite.size else 2.0)
    taus = np.geomspace(1.0, upper, 200)
    figure, axes = _figure()
    ax = axes[0, 0]
    for solver, solver_ratios in zip(table, ratios):
        ax.step(taus, [(solver_ratios <= t).mean() for t in taus], where="post", label=solver)
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(f"τ (within a factor τ of the best {measure})")
    ax.set_ylabel("fraction of problems")
    ax.legend()
    ax.grid(True, alpha=0.3)
    return figure


def _measured(value: Any, name: str) -> float:
    """A row's measure: a positive number, or None, NaN or inf for a failed solve (inf)."""
    if value is None:
        return np.inf
    if not is_number(value):
        raise TypeError(f"{name} must be a number (None, NaN or inf for a failed solve); got {reprlib.repr(value)}.")
    if value <= 0:
        raise ValueError(f"{name}={value!r}: a performance profile divides by the best measure, which must be above 0.")
    return float(value) if np.isfinite(value) else np.inf
