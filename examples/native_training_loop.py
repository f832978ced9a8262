"""Native algorithms three ways: one call, step by step, and updates in a training loop."""

import jax
import jax.numpy as jnp
import numpy as np

import autominimize as am
from autominimize.native import GradientTolerance, TimeBudget


def rosen(x):
    return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum()


def main() -> None:
    x0 = np.array([-1.2, 1.0])

    res = am.minimize(rosen, x0, method="lbfgs-native")
    print(f"one call:      {res.message}; x={res.x}, nit={res.nit}, nfev={res.nfev}")

    it = am.iterate(rosen, x0, method="cg-native", stop=GradientTolerance(1e-8) | TimeBudget(10))
    for state in it:
        if state.nit % 10 == 0:
            print(f"  step {state.nit:3d}  f={state.fun:.3e}  |g|={state.grad_norm:.1e}")
    print(f"step by step:  {it.result().message}")

    rng = np.random.default_rng(0)
    x, w_true = rng.normal(size=(512, 5)), rng.normal(size=5)
    y = x @ w_true
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 512, 32)]

    def loss(w, batch):
        xb, yb = batch
        return jnp.mean((xb @ w - yb) ** 2)

    opt = am.optim.sgd(lr=am.optim.schedules.cosine(0.05, 160), momentum=0.9)
    params = jnp.zeros(5)
    state = opt.init(params)
    grad = jax.jit(jax.grad(loss))
    for _ in range(10):
        for batch in batches:
            updates, state = opt.update(grad(params, batch), state, params)
            params = am.optim.apply_updates(params, updates)
    print(f"training loop: |w - w_true| = {float(jnp.abs(params - w_true).max()):.2e}")


if __name__ == "__main__":
    main()
