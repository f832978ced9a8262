"""Implicit differentiation: the backward pass against the forward solve.

L2-regularised logistic regression, 20 000 samples × 200 features (scales spread over a decade,
penalty 1e-3: about 90 L-BFGS-B iterations), solved with L-BFGS-B (``gtol=1e-9``); the loss differentiated is a weighted sum of the solution, with respect to the
penalty and the labels' weights (20 001 inputs). Forward: the solve (``jax.vjp`` of the
function that calls ``am.minimize``, or ``am.minimize`` with tensors that require grad);
backward: the vector-Jacobian product (the 200 x 200 Hessian from one batch of Hessian-vector
products, one product with respect to the data). Reported: median warm times, their ratio (target ≤ 0.5),
Hessian-vector products per backward pass, and the gradient's agreement with the first row.
A peer that factorises its linear system while JAX linearizes (optimistix) does that work in
the forward column: compare the totals.
jaxopt's ``ScipyMinimize`` and optimistix's ``minimise`` join where installed (they are not
requirements; their iterations and products are not counted); the table says when they are absent.

>>> from benchmarks.implicit import run_implicit   # doctest: +SKIP
>>> rows = run_implicit(repeats=3)                          # doctest: +SKIP

Run ``python -m benchmarks.implicit`` for the table.
"""

from __future__ import annotations

import importlib.util
import statistics
import time
from typing import Any, Callable

import numpy as np

__all__ = ["run_implicit", "format_implicit"]

N_SAMPLES, N_FEATURES = 20_000, 200
GTOL = 1e-9
LAM = 1e-3
OPTIONS = {"gtol": GTOL, "ftol": 0.0, "maxiter": 5000}


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N_SAMPLES, N_FEATURES)) * np.logspace(-0.5, 0.5, N_FEATURES)
    w_true = rng.normal(size=N_FEATURES) / np.sqrt(N_FEATURES)
    labels = np.where(X @ w_true + 0.5 * rng.normal(size=N_SAMPLES) > 0, 1.0, -1.0)
    sample_weights = np.ones(N_SAMPLES)
    return X, labels, sample_weights


def _cotangent() -> np.ndarray:
    return np.linspace(-1.0, 1.0, N_FEATURES)


def _timed(forward: Callable[[], Any], backward: Callable[[Any], Any], repeats: int) -> tuple[float, float, Any, Any]:
    """Median warm forward and backward times (one warm-up round first)."""
    state = forward()
    backward(state)
    forward_times, backward_times, grads = [], [], None
    for _ in range(repeats):
        start = time.perf_counter()
        state = forward()
        middle = time.perf_counter()
        grads = backward(state)
        backward_times.append(time.perf_counter() - middle)
        forward_times.append(middle - start)
    return statistics.median(forward_times), statistics.median(backward_times), state, grads


def _jax_row(repeats: int) -> dict:
    import jax
    import jax.numpy as jnp

    import autominimize as am

    X, labels, sample_weights = _data()
    results: list = []
    with jax.enable_x64(True):
        Xj, sj = jnp.asarray(X), jnp.asarray(labels)

        def loss(w, lam, weights):
            return jnp.mean(weights * jnp.logaddexp(0.0, -sj * (Xj @ w))) + 0.5 * lam * jnp.sum(w * w)

        def solve(lam, weights):
            res = am.minimize(loss, np.zeros(N_FEATURES), args=(lam, weights), method="L-BFGS-B", options=OPTIONS)
            results.append(res)
            return res.x

        def forward():
            results.clear()
            x, vjp = jax.vjp(solve, jnp.asarray(LAM), jnp.asarray(sample_weights))
            return x.block_until_ready(), vjp

        def backward(state):
            grads = state[1](jnp.asarray(_cotangent()))
            return [np.asarray(g) for g in grads]

        forward_s, backward_s, _, grads = _timed(forward, backward, repeats)
        res = results[-1]
        return _row("am.minimize + jax.vjp", forward_s, backward_s, int(res.nit), res.get("implicit_nhvp", 0), grads)


def _torch_row(repeats: int) -> dict:
    import torch

    import autominimize as am

    X, labels, sample_weights = _data()
    Xt, st = torch.as_tensor(X), torch.as_tensor(labels)

    def loss(w, lam, weights):
        return torch.mean(weights * torch.nn.functional.softplus(-st * (Xt @ w))) + 0.5 * lam * torch.sum(w * w)

    def forward():
        lam = torch.tensor(LAM, dtype=torch.float64, requires_grad=True)
        weights = torch.as_tensor(sample_weights).clone().requires_grad_(True)
        res = am.minimize(loss, np.zeros(N_FEATURES), args=(lam, weights), method="L-BFGS-B", options=OPTIONS)
        return res, lam, weights

    def backward(state):
        res, lam, weights = state
        (res.x @ torch.as_tensor(_cotangent())).backward()
        return [lam.grad.numpy().copy(), weights.grad.numpy().copy()]

    forward_s, backward_s, state, grads = _timed(forward, backward, repeats)
    res = state[0]
    return _row("am.minimize + torch backward", forward_s, backward_s, int(res.nit), res.implicit_nhvp // res.implicit_nbackward, grads)


def _peer_row(name: str, repeats: int) -> dict:
    """jaxopt's ScipyMinimize (L-BFGS-B, its implicit differentiation) or optimistix's LBFGS
    (``ImplicitAdjoint``) on the same problem, through ``jax.vjp`` as above."""
    import jax
    import jax.numpy as jnp

    X, labels, sample_weights = _data()
    with jax.enable_x64(True):
        Xj, sj = jnp.asarray(X), jnp.asarray(labels)

        def loss(w, lam, weights):
            return jnp.mean(weights * jnp.logaddexp(0.0, -sj * (Xj @ w))) + 0.5 * lam * jnp.sum(w * w)

        if name == "jaxopt":
            import jaxopt

            minimizer = jaxopt.ScipyMinimize(method="L-BFGS-B", fun=loss, maxiter=OPTIONS["maxiter"], options={"gtol": GTOL, "ftol": 0.0})

            def solve(lam, weights):
                return minimizer.run(jnp.zeros(N_FEATURES), lam, weights).params

            contender = "jaxopt ScipyMinimize L-BFGS-B"
        else:
            import optimistix as optx

            lbfgs = optx.LBFGS(rtol=GTOL, atol=GTOL)

            @jax.jit
            def solve(lam, weights):
                return optx.minimise(lambda w, a: loss(w, *a), lbfgs, jnp.zeros(N_FEATURES), args=(lam, weights), max_steps=OPTIONS["maxiter"]).value

            contender = "optimistix LBFGS (jitted)"

        def forward():
            x, vjp = jax.vjp(solve, jnp.asarray(LAM), jnp.asarray(sample_weights))
            return x.block_until_ready(), vjp

        def backward(state):
            return [np.asarray(g) for g in state[1](jnp.asarray(_cotangent()))]

        forward_s, backward_s, _, grads = _timed(forward, backward, repeats)
        return _row(contender, forward_s, backward_s, -1, -1, grads)


def _row(contender: str, forward_s: float, backward_s: float, nit: int, nhvp: int, grads: list) -> dict:
    return {
        "contender": contender,
        "forward_s": forward_s,
        "backward_s": backward_s,
        "ratio": backward_s / forward_s,
        "nit": nit,
        "nhvp": nhvp,
        "grads": grads,
    }


def _absent(name: str) -> dict:
    return {"contender": name, "absent": True}


def run_implicit(repeats: int = 3) -> list[dict]:
    """One row per contender; rows for peers that are not installed say so."""
    rows = []
    if importlib.util.find_spec("jax"):
        rows.append(_jax_row(repeats))
    if importlib.util.find_spec("torch"):
        rows.append(_torch_row(repeats))
    for peer in ("jaxopt", "optimistix"):
        rows.append(_peer_row(peer, repeats) if importlib.util.find_spec(peer) and importlib.util.find_spec("jax") else _absent(peer))
    measured = [row for row in rows if "grads" in row]
    if measured:
        reference = np.concatenate([np.ravel(g) for g in measured[0]["grads"]])
        for row in measured:
            grads = np.concatenate([np.ravel(g) for g in row["grads"]])
            row["agreement"] = float(np.linalg.norm(grads - reference) / np.linalg.norm(reference))
    return rows


def format_implicit(rows: list[dict]) -> str:
    """A plain-text table of :func:`run_implicit`'s rows."""
    lines = [
        f"logistic regression {N_SAMPLES} x {N_FEATURES}, L-BFGS-B gtol={GTOL:g}: d(c . x*)/d(penalty, sample weights)",
        f"{'contender':32} {'forward [s]':>12} {'backward [s]':>13} {'total [s]':>10} {'ratio':>6} {'nit':>5} {'HVPs':>5} {'vs first row':>13}",
    ]
    for row in rows:
        if row.get("absent"):
            lines.append(f"{row['contender']:32} not installed")
            continue
        nit, nhvp = (f"{row[k]:5d}" if row[k] >= 0 else f"{'-':>5}" for k in ("nit", "nhvp"))
        lines.append(
            f"{row['contender']:32} {row['forward_s']:12.3f} {row['backward_s']:13.3f} {row['forward_s'] + row['backward_s']:10.3f} "
            f"{row['ratio']:6.2f} {nit} {nhvp} "
            f"{row['agreement']:13.1e}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.implicit", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    print(format_implicit(run_implicit(parser.parse_args().repeats)))
