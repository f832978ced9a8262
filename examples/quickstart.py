"""The founding examples: one objective, every installed backend, exact derivatives.

Run with ``make demo`` (or ``python examples/quickstart.py``).
"""

from __future__ import annotations

import importlib.util
import time

import numpy as np

import autominimize as am


def rosen_numpy(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosen_der(x):
    der = np.zeros_like(x)
    der[1:-1] = 200 * (x[1:-1] - x[:-2] ** 2) - 400 * (x[2:] - x[1:-1] ** 2) * x[1:-1] - 2 * (1 - x[1:-1])
    der[0] = -400 * x[0] * (x[1] - x[0] ** 2) - 2 * (1 - x[0])
    der[-1] = 200 * (x[-1] - x[-2] ** 2)
    return der


def rosen_for(backend):
    """Rosenbrock written in each framework's own vocabulary."""
    if backend == "jax":
        import jax.numpy as jnp

        return lambda x: jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    if backend == "torch":
        import torch

        return lambda x: torch.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    if backend == "tensorflow":
        import tensorflow as tf

        return lambda x: tf.reduce_sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    return rosen_numpy


def installed_backends():
    return ["numpy"] + [name for name in ("jax", "torch", "tensorflow") if importlib.util.find_spec(name)]


def row(label, res, seconds, error):
    counts = f"{res.nfev:5d} {res.njev:5d} {res.nhev:5d} {res.nhvp:5d}"
    print(f"{label:<42} {res.backend:<10} {counts} {error:9.1e} {seconds:8.3f}  {'ok' if res.success else res.message}")


def main():
    print(f"{'problem / method':<42} {'backend':<10} {'nfev':>5} {'njev':>5} {'nhev':>5} {'nhvp':>5} {'|x-x*|':>9} {'seconds':>8}")
    x0 = np.zeros(10)
    for backend in installed_backends():
        extra = {"jac": rosen_der} if backend == "numpy" else {}
        start = time.perf_counter()
        res = am.minimize(rosen_for(backend), x0, method="L-BFGS-B", backend=backend, **extra)
        row("Rosenbrock n=10, L-BFGS-B", res, time.perf_counter() - start, np.abs(res.x - 1).max())

    default = "jax" if "jax" in installed_backends() else "numpy"
    for method in ("Newton-CG", "trust-exact"):
        extra = {"jac": rosen_der, "hess": __import__("scipy.optimize").optimize.rosen_hess} if default == "numpy" else {}
        start = time.perf_counter()
        res = am.minimize(rosen_for(default), x0, method=method, tol=1e-8, precision="float64", **extra)
        row(f"Rosenbrock n=10, {method}, tol=1e-8", res, time.perf_counter() - start, np.abs(res.x - 1).max())

    rng = np.random.default_rng(0)
    target = rng.normal(size=(10, 3)) @ rng.normal(size=(3, 15))

    def factorization_loss(U, V):  # x0's keys name the parameters: fun(**x0)
        return ((U @ V - target) ** 2).mean()

    start_point = {"U": rng.normal(size=(10, 3)), "V": rng.normal(size=(3, 15))}
    for label, bounds in (("free", None), ("U <= 0, V >= -1", {"U": (None, 0), "V": (-1, None)})):
        start = time.perf_counter()
        res = am.minimize(factorization_loss, start_point, method="L-BFGS-B", bounds=bounds, backend=default)
        row(f"matrix factorization {label}", res, time.perf_counter() - start, res.fun)
    print("\nres.x keeps x0's structure:", {k: v.shape for k, v in res.x.items()})


if __name__ == "__main__":
    main()
