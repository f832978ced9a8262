"""The torch optimizer against ``torch.optim.LBFGS`` on a 2-layer MLP regression.

Problem: ``Linear(32, 300) -> tanh -> Linear(300, 1)`` (10,201 parameters, float64) fitted
by mean squared error to 512 samples of a seeded random teacher network of the same shape
plus noise, from the same seeded start for both contenders.

* ``am.torch.ScipyOptimizer`` with scipy's L-BFGS-B (history 10) runs ``ITERATIONS``
  iterations (``ftol = gtol = 0``, so the budget is what stops it); its final loss is the
  target.
* ``torch.optim.LBFGS`` (``history_size=10``, ``line_search_fn='strong_wolfe'``, no
  tolerance stops) runs until a closure evaluation reaches that loss (or ``MAX_EVALS``).

Each row reports the median wall time of ``repeats`` interleaved warm runs (after one
untimed warm-up each), the final loss and the closure evaluations. Both closures compute
the loss and call ``backward()``, as a torch user writes them.

>>> from benchmarks.torch_mlp import run_torch_mlp   # doctest: +SKIP
>>> rows = run_torch_mlp(repeats=3)                          # doctest: +SKIP

Run ``python -m benchmarks.torch_mlp`` for the table.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

__all__ = ["run_torch_mlp", "format_torch_mlp", "main"]

N_SAMPLES, N_IN, N_HIDDEN = 1024, 32, 300
ITERATIONS = 300
MAX_EVALS = 5000


class _Reached(Exception):
    """Raised by the LBFGS closure once the target loss is reached, to stop its step."""


def _problem() -> tuple[Any, Any, Callable[[], Any]]:
    import torch

    generator = torch.Generator().manual_seed(0)
    X = torch.randn(N_SAMPLES, N_IN, generator=generator, dtype=torch.float64)
    teacher = _mlp(seed=1)
    with torch.no_grad():
        y = teacher(X) + 0.1 * torch.randn(N_SAMPLES, 1, generator=generator, dtype=torch.float64)
    return X, y, lambda: _mlp(seed=2)


def _mlp(seed: int) -> Any:
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(N_IN, N_HIDDEN), torch.nn.Tanh(), torch.nn.Linear(N_HIDDEN, 1)).to(torch.float64)


def _closure(model: Any, optimizer: Any, X: Any, y: Any, counter: list[float], target: float | None = None) -> Callable[[], Any]:
    import torch

    def closure() -> Any:
        optimizer.zero_grad()
        loss = torch.mean((model(X) - y) ** 2)
        loss.backward()
        counter.append(loss.item())
        if target is not None and counter[-1] <= target:
            raise _Reached
        return loss

    return closure


def _run_scipy(X: Any, y: Any, new_model: Callable[[], Any], iterations: int) -> dict:
    from autominimize import torch as am_torch

    model = new_model()
    optimizer = am_torch.ScipyOptimizer(
        model.parameters(), method="L-BFGS-B", options={"maxiter": iterations, "maxfun": 10 * iterations, "ftol": 0.0, "gtol": 0.0}
    )
    losses: list[float] = []
    start = time.perf_counter()
    loss = optimizer.step(_closure(model, optimizer, X, y, losses))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "loss": loss.item(), "evaluations": len(losses), "nfev": optimizer.result.nfev, "reached": True}


def _run_torch_lbfgs(X: Any, y: Any, new_model: Callable[[], Any], target: float) -> dict:
    import torch

    model = new_model()
    optimizer = torch.optim.LBFGS(
        model.parameters(),
        lr=1.0,
        max_iter=MAX_EVALS,
        max_eval=MAX_EVALS,
        history_size=10,
        tolerance_grad=0.0,
        tolerance_change=0.0,
        line_search_fn="strong_wolfe",
    )
    losses: list[float] = []
    start = time.perf_counter()
    try:
        optimizer.step(_closure(model, optimizer, X, y, losses, target))
        reached = False
    except _Reached:
        reached = True
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "loss": losses[-1], "evaluations": len(losses), "nfev": len(losses), "reached": reached}


def run_torch_mlp(repeats: int = 3) -> list[dict]:
    """Time both contenders side by side; one dict per contender.

    Keys: ``contender``, ``params`` (parameter count), ``dtype``, ``seconds`` (median),
    ``loss`` (final), ``evaluations`` (closure calls), ``nfev`` (as the optimizer reports
    it), ``reached`` (whether the target loss was reached), ``repeats``, ``threads``.
    """
    import torch

    from .runner import setup_threads

    setup_threads()
    X, y, new_model = _problem()
    _run_scipy(X, y, new_model, iterations=3)  # warm-up: first calls, allocator, caches
    target = _run_scipy(X, y, new_model, ITERATIONS)["loss"]
    _run_torch_lbfgs(X, y, new_model, target=float("inf"))
    runs: dict[str, list[dict]] = {"am.torch.ScipyOptimizer L-BFGS-B": [], "torch.optim.LBFGS strong_wolfe": []}
    for _ in range(max(1, repeats)):
        runs["am.torch.ScipyOptimizer L-BFGS-B"].append(_run_scipy(X, y, new_model, ITERATIONS))
        runs["torch.optim.LBFGS strong_wolfe"].append(_run_torch_lbfgs(X, y, new_model, target))
    n_params = sum(p.numel() for p in new_model().parameters())
    rows = []
    for contender, results in runs.items():
        last = results[-1]
        rows.append(
            {
                "contender": contender,
                "params": n_params,
                "dtype": "float64",
                "seconds": statistics.median(r["seconds"] for r in results),
                "loss": last["loss"],
                "evaluations": last["evaluations"],
                "nfev": last["nfev"],
                "reached": last["reached"],
                "repeats": len(results),
                "threads": torch.get_num_threads(),
            }
        )
    return rows


def format_torch_mlp(rows: list[dict]) -> str:
    """A plain-text table of :func:`run_torch_mlp`'s rows."""
    header = f"{'contender':34s} {'params':>7s} {'seconds':>8s} {'final loss':>13s} {'closure evals':>13s} {'ms/eval':>8s} {'reached':>7s}"
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['contender']:34s} {row['params']:7d} {row['seconds']:8.3f} {row['loss']:13.6e} "
            f"{row['evaluations']:13d} {1e3 * row['seconds'] / row['evaluations']:8.3f} {str(row['reached']):>7s}"
        )
    return "\n".join(lines)


def main(repeats: int = 3) -> int:
    rows = run_torch_mlp(repeats)
    print(
        f"# 2-layer MLP regression, {rows[0]['params']} parameters, {rows[0]['dtype']}, "
        f"{N_SAMPLES} samples; median of {rows[0]['repeats']} warm runs; torch threads {rows[0]['threads']}"
    )
    print(format_torch_mlp(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
