"""Global optimization over a parameter dict: batched differential evolution, multistart.

Run: python examples/global_minima.py
"""

import jax.numpy as jnp
import numpy as np

import autominimize as am


def rastrigin(x, scale):
    return 10 * x.size + jnp.sum((scale * x) ** 2 - 10 * jnp.cos(2 * jnp.pi * scale * x))


def himmelblau(x, y):
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


def main() -> None:
    # The bounds give the structure: x is a vector of 6, scale a float in [1, 2]. Each
    # generation of 105 members is one jax.vmap call; the best member is polished with
    # exact gradients.
    res = am.differential_evolution(rastrigin, {"x": [(-5.12, 5.12)] * 6, "scale": (1.0, 2.0)}, rng=0)
    print(f"differential evolution: f = {res.fun:.2e} at x = {np.round(res.x['x'], 6)} ({res.evaluation}, {res.nfev} evaluations)")

    # 32 Sobol' starts, L-BFGS-B with exact gradients, duplicates merged.
    res = am.multistart(himmelblau, {"x": (-5, 5), "y": (-5, 5)}, n_starts=32, rng=0)
    for minimum in res.minima:
        if minimum.fun < 1e-8:
            print(f"multistart minimum: x = {minimum.x['x']:+.4f}, y = {minimum.x['y']:+.4f}")


if __name__ == "__main__":
    main()
