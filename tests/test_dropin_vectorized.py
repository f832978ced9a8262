"""``vectorized=True`` means what it means in scipy: fun(x) with x of shape (n, S) returns (S,)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize as so

import autominimize as am


def rosen_columns(x):
    """scipy's vectorized contract: x is (n,) or (n, S); the value is a scalar or (S,)."""
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2, axis=0)


def test_scipy_vectorized_objective_runs_unchanged():
    shapes = []

    def fun(x):
        shapes.append(x.shape)
        return rosen_columns(x)

    bounds = [(-2.0, 2.0)] * 3
    res = am.differential_evolution(fun, bounds, vectorized=True, rng=0, maxiter=200, tol=1e-10)
    assert res.evaluation == "batched"
    batches = [s for s in shapes if len(s) == 2]
    assert batches and all(s[0] == 3 and s[1] > 1 for s in batches)  # (n, S), as scipy calls it
    np.testing.assert_allclose(res.x, 1.0, atol=1e-4)
    reference = so.differential_evolution(rosen_columns, bounds, vectorized=True, updating="deferred", rng=0, maxiter=200, tol=1e-10)
    np.testing.assert_allclose(res.x, reference.x, atol=1e-4)


def test_scipy_vectorized_objective_on_scipys_engine():
    res = am.differential_evolution(
        rosen_columns,
        [(-2.0, 2.0)] * 2,
        vectorized=True,
        engine="scipy",
        rng=1,
        maxiter=300,
        tol=1e-10,
        constraints={"type": "ineq", "fun": lambda x: 2.0 - x[0]},
    )
    assert (res.engine, res.evaluation) == ("scipy", "batched")
    np.testing.assert_allclose(res.x, 1.0, atol=1e-3)


def test_structured_leaves_get_a_trailing_batch_axis():
    seen = []

    def fun(p):
        seen.append((p["w"].shape, np.shape(p["b"])))
        return np.sum((p["w"] - 0.5) ** 2, axis=0) + (p["b"] + 0.25) ** 2

    res = am.differential_evolution(fun, {"w": [(-1, 1)] * 2, "b": (-1, 1)}, vectorized=True, rng=0, polish=False, maxiter=5)
    size = res.population.shape[0]
    assert ((2, size), (size,)) in seen


def test_rows_layout_has_its_own_name():
    def rows(x):  # x has shape (S, n)
        return np.sum((x - 0.3) ** 2, axis=-1)

    res = am.differential_evolution(rows, [(-1, 1)] * 3, vectorized="rows", rng=0, polish=False, maxiter=30)
    assert res.evaluation == "batched"
    np.testing.assert_allclose(res.x, 0.3, atol=0.05)


def test_a_rows_function_under_vectorized_true_gets_a_clear_error():
    with pytest.raises(ValueError, match=r"x of shape \(n, S\).*returned shape \(3, 45\).*vectorized='rows'"):
        am.differential_evolution(lambda x: np.square(x - 0.3), [(-1, 1)] * 3, vectorized=True, rng=0)
    with pytest.raises(TypeError, match=r"vectorized must be None .*True \(fun\(x\) with x of shape \(n, S\).*'rows'.*got 'columns'"):
        am.differential_evolution(rosen_columns, [(-1, 1)] * 3, vectorized="columns")
