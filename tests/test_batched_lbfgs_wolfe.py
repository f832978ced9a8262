"""Batched L-BFGS with the strong Wolfe search, in a box: ``options={'line_search': 'wolfe'}``."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize as so

import autominimize as am
from autominimize.native.batched import BatchedLBFGS

STARTS = np.random.default_rng(1).uniform(-2.0, 2.0, size=(60, 2))
BOX = [(-2.0, 0.8), (-2.0, 2.0)]  # the minimum (1, 1) is outside: the solution sits on x0 = 0.8


def rosen(x):
    return 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2


def rosen_rows(x):
    """NumPy value and gradient of Rosenbrock for (B, 2) rows: the state machine needs no framework."""
    a, b = x[:, 0], x[:, 1]
    f = 100 * (b - a**2) ** 2 + (1 - a) ** 2
    g = np.stack([-400 * a * (b - a**2) - 2 * (1 - a), 200 * (b - a**2)], axis=1)
    return f, g


def test_every_accepted_step_meets_the_strong_wolfe_conditions():
    algo = BatchedLBFGS(line_search="wolfe", maxiter=1)
    x0 = STARTS.copy()
    f0, g0 = rosen_rows(x0)
    state = algo.run(x0, rosen_rows)
    s = state.x - x0
    assert (np.abs(s).sum(axis=1) > 0).all()
    slope0 = np.sum(g0 * s, axis=1)  # α⟨g, d⟩
    assert (slope0 < 0).all()
    assert (state.f <= f0 + 1e-4 * slope0).all()  # sufficient decrease
    assert (np.abs(np.sum(state.g * s, axis=1)) <= 0.9 * np.abs(slope0) + 1e-12).all()  # strong curvature


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_bounded_members_agree_with_scipy_lbfgsb_alone(backend):
    pytest.importorskip(backend)
    res = am.minimize(
        rosen, STARTS, method="lbfgs-native", batch=True, backend=backend, bounds=BOX, options={"line_search": "wolfe", "ftol": 1e-15, "gtol": 1e-9}
    )
    assert res.success.all()
    for i in range(len(STARTS)):
        ref = so.minimize(rosen, np.clip(STARTS[i], -2.0, 0.8), method="L-BFGS-B", bounds=BOX, options={"ftol": 1e-15, "gtol": 1e-12})
        np.testing.assert_allclose(res.x[i], ref.x, atol=1e-6, err_msg=f"member {i}")
    np.testing.assert_array_equal(res.x[:, 0], 0.8)  # held exactly at the bound


def test_unbounded_wolfe_reaches_the_minimum_with_fewer_evaluations_than_armijo():
    pytest.importorskip("torch")
    wolfe = am.minimize(rosen, STARTS, method="lbfgs-native", batch=True, backend="torch", options={"line_search": "wolfe"})
    armijo = am.minimize(rosen, STARTS, method="lbfgs-native", batch=True, backend="torch")
    assert wolfe.success.all() and np.abs(wolfe.x - 1.0).max() < 1e-4
    assert wolfe.nfev.sum() < armijo.nfev.sum()


def test_a_member_is_the_same_alone_and_stops_on_its_own():
    pytest.importorskip("torch")
    options = {"line_search": "wolfe"}
    batch = am.minimize(rosen, STARTS[:8], method="lbfgs-native", batch=True, backend="torch", bounds=BOX, options=options)
    assert len(set(batch.nfev.tolist())) > 1
    for i in (0, 5):
        alone = am.minimize(rosen, STARTS[i : i + 1], method="lbfgs-native", batch=True, backend="torch", bounds=BOX, options=options)
        np.testing.assert_array_equal(alone.x[0], batch.x[i])
        assert alone.nfev[0] == batch.nfev[i] and alone.nit[0] == batch.nit[i]


def test_multistart_runs_its_batch_with_the_wolfe_search():
    pytest.importorskip("jax")

    def styblinski_tang(x):
        return 0.5 * (x**4 - 16 * x**2 + 5 * x).sum()

    res = am.multistart(styblinski_tang, [(-5.0, 5.0)] * 4, n_starts=32, method="lbfgs-native", rng=0, backend="jax")
    assert res.batched and res.fun == pytest.approx(-39.16616570377142 * 4, rel=1e-9)
    assert np.allclose(res.x, -2.903534027771178, atol=1e-5)


class CountingRows:
    """``rosen_rows`` that records how many rows each call evaluates."""

    def __init__(self):
        self.sizes = []

    def __call__(self, x):
        self.sizes.append(x.shape[0])
        return rosen_rows(x)


@pytest.mark.parametrize("line_search", ["wolfe", "armijo"])
def test_stopped_members_are_no_longer_evaluated(line_search):
    """Half the members start at the minimum and stop there: after the first evaluation the
    batch evaluates only the other half, exactly as many rows as a batch of that half."""
    half = len(STARTS) // 2
    x0 = np.concatenate([STARTS[:half], np.ones((half, 2))])
    mixed, alone = CountingRows(), CountingRows()
    algo = BatchedLBFGS(line_search=line_search, lower=np.array([-2.0, -2.0]), upper=np.array([2.0, 2.0]))
    both = algo.run(x0, mixed)
    first = algo.run(x0[:half], alone)
    assert mixed.sizes[0] == 2 * half and max(mixed.sizes[1:]) <= half
    assert sum(mixed.sizes) == sum(alone.sizes) + half
    assert mixed.sizes[-1] < half  # members that converged left the batch along the way
    for field in both._fields:
        np.testing.assert_array_equal(getattr(both, field)[:half], getattr(first, field), err_msg=field)
    assert (both.reason[half:] == 1).all() and (both.nfev[half:] == 1).all()


def test_bad_line_search_is_named():
    with pytest.raises(ValueError, match="line_search must be 'armijo' or 'wolfe'; got 'zoom'"):
        BatchedLBFGS(line_search="zoom")
    with pytest.raises(ValueError, match="0 < c1 < c2 < 1"):
        BatchedLBFGS(c1=0.5, c2=0.4)
