"""A bound with lower = upper fixes the variable on every global entry point and backend.

The objective is Σ (x - 1)² over three variables with the middle one fixed at 0.5: the
result holds it at exactly 0.5, the others at the optimum 1 (to 1e-5: NumPy's gradients are
finite differences), and the value is 0.25.
"""

from __future__ import annotations

import numpy as np
import pytest

import autominimize as am

FIXED = 0.5
BOX = [(-2.0, 3.0), (FIXED, FIXED), (-2.0, 3.0)]
BACKENDS = ["numpy", "jax", "torch", "tensorflow"]


def _objective(backend: str):
    if backend == "numpy":
        return lambda p: float(np.sum((p["x"] - 1.0) ** 2))
    if backend == "jax":
        total = pytest.importorskip("jax.numpy").sum
    elif backend == "torch":
        total = pytest.importorskip("torch").sum
    else:
        total = pytest.importorskip("tensorflow").reduce_sum
    return lambda p: total((p["x"] - 1.0) ** 2)


ENTRY_POINTS = {
    "differential_evolution": lambda fun, backend: am.differential_evolution(fun, {"x": BOX}, rng=0, backend=backend),
    "dual_annealing": lambda fun, backend: am.dual_annealing(fun, {"x": BOX}, rng=0, maxiter=50, backend=backend),
    "dual_annealing from x0": lambda fun, backend: am.dual_annealing(
        fun, {"x": BOX}, x0={"x": np.array([0.0, FIXED, 2.0])}, rng=0, maxiter=50, backend=backend
    ),
    "shgo": lambda fun, backend: am.shgo(fun, {"x": BOX}, backend=backend),
    "direct": lambda fun, backend: am.direct(fun, {"x": BOX}, maxfun=2000, backend=backend),
    "basinhopping": lambda fun, backend: am.basinhopping(
        fun, {"x": np.zeros(3)}, niter=3, rng=0, minimizer_kwargs={"bounds": {"x": BOX}}, backend=backend
    ),
    "multistart": lambda fun, backend: am.multistart(fun, {"x": BOX}, n_starts=4, rng=0, backend=backend),
    "multistart lbfgs-native": lambda fun, backend: am.multistart(  # one batched solve on JAX and torch
        fun, {"x": BOX}, n_starts=4, rng=0, method="lbfgs-native", backend=backend
    ),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_a_fixed_variable_stays_at_its_bound(entry, backend):
    result = ENTRY_POINTS[entry](_objective(backend), backend)
    x = np.asarray(result.x["x"], dtype=np.float64)
    assert x[1] == FIXED
    x_tol, f_tol = (1e-4, 1e-7) if entry == "direct" else (1e-5, 1e-9)  # DIRECT does not refine locally
    np.testing.assert_allclose(x[[0, 2]], 1.0, atol=x_tol)
    assert float(result.fun) == pytest.approx((FIXED - 1.0) ** 2, abs=f_tol)


def test_the_torch_dual_annealing_optimizer_fixes_a_variable():
    torch = pytest.importorskip("torch")
    import autominimize.torch as amt

    w = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    optimizer = amt.DualAnnealing([w], bounds=BOX, maxiter=50, rng=0)

    def closure():
        optimizer.zero_grad()
        loss = ((w - 1.0) ** 2).sum()
        loss.backward()
        return loss

    assert float(optimizer.step(closure)) == pytest.approx(0.25, abs=1e-9)
    assert float(w[1]) == FIXED
    np.testing.assert_allclose(w.detach().numpy()[[0, 2]], 1.0, atol=1e-6)
