"""A plain solve does its set-up work once, and none where it cannot matter: counted, not timed."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.optimize as so

import autominimize as am
from autominimize import implicit, params
from autominimize.drivers import scipy_local


def _rosen_fg(x):
    a = x[1:] - x[:-1] ** 2
    b = 1.0 - x[:-1]
    g = np.zeros_like(x)
    g[:-1] = -400.0 * x[:-1] * a - 2.0 * b
    g[1:] += 200.0 * a
    return float(100.0 * (a @ a) + b @ b), g


def test_an_array_x0_has_its_structure_recorded_once_per_shape_and_dtype():
    params._array_spec.cache_clear()
    first = am.minimize(_rosen_fg, np.zeros(3), jac=True, method="L-BFGS-B", backend="numpy")
    second = am.minimize(_rosen_fg, np.full(3, 0.5), jac=True, method="L-BFGS-B", backend="numpy")
    assert params._array_spec.cache_info().misses == 1
    np.testing.assert_allclose(second.x, first.x, atol=1e-5)
    am.minimize(_rosen_fg, np.zeros(4), jac=True, method="L-BFGS-B", backend="numpy")
    assert params._array_spec.cache_info().misses == 2


def test_the_recorded_structure_gives_back_x0s_shape_and_dtype():
    res = am.minimize(lambda x: float(np.sum((x - 1.0) ** 2)), np.zeros((2, 3), dtype=np.float32), jac=lambda x: 2.0 * (x - 1.0), backend="numpy")
    assert res.x.shape == (2, 3) and res.x.dtype == np.float32
    np.testing.assert_allclose(res.x, 1.0, atol=1e-4)
    integer = am.minimize(lambda x: float(np.sum((x - 1.0) ** 2)), np.zeros(3, dtype=int), jac=lambda x: 2.0 * (x - 1.0), backend="numpy")
    assert integer.x.dtype == np.float64 and integer.jac.shape == (3,)


@pytest.mark.parametrize("bad", [np.array([0.0, np.nan]), np.array([1.0, np.inf])])
def test_a_non_finite_array_x0_is_still_refused_by_name(bad):
    with pytest.raises(ValueError, match=r"x0 contains NaN or inf \(first at index \(1,\)\)"):
        am.minimize(_rosen_fg, bad, jac=True, backend="numpy")


def test_a_solve_limits_blas_once(monkeypatch):
    entered = []
    real = scipy_local.single_blas_thread

    def counting():
        entered.append(1)
        return real()

    monkeypatch.setattr(scipy_local, "single_blas_thread", counting)
    am.minimize(_rosen_fg, np.zeros(2), jac=True, method="L-BFGS-B", backend="numpy")
    am.minimize(_rosen_fg, np.zeros(2), jac=True, method="L-BFGS-B", backend="numpy", history=False)
    assert len(entered) == 2


def test_plain_arguments_are_not_searched_for_a_framework(monkeypatch):
    pytest.importorskip("torch")  # with a framework loaded, arguments are searched for its tensors
    looked = []
    real = implicit.differentiable_framework

    def counting(*trees):
        looked.append(trees)
        return real(*trees)

    monkeypatch.setattr(implicit, "differentiable_framework", counting)
    res = am.minimize(_rosen_fg, np.zeros(2), jac=True, method="L-BFGS-B", backend="numpy")
    assert res.success and looked == []
    scaled = am.minimize(lambda x, c: (c * _rosen_fg(x)[0], c * _rosen_fg(x)[1]), np.zeros(2), args=(2.0,), jac=True, backend="numpy")
    assert scaled.success and len(looked) >= 1


def test_no_warning_filter_is_installed_where_scipy_has_nothing_to_drop():
    seen = []

    def fg(x):
        seen.append(list(warnings.filters))
        return _rosen_fg(x)

    am.minimize(fg, np.zeros(2), jac=True, method="L-BFGS-B", backend="numpy", bounds=[(-2, 2)] * 2)
    assert seen and all(not any(f[1] is not None and "cannot handle" in f[1].pattern for f in filters) for filters in seen)


def test_the_method_never_reads_back_a_point_the_user_wrote_into():
    def fg(x):
        out = _rosen_fg(x)
        x[:] = 1e6  # the user's own copy
        return out

    res = am.minimize(fg, np.zeros(2), jac=True, method="L-BFGS-B", backend="numpy", history=False)
    ref = so.minimize(_rosen_fg, np.zeros(2), jac=True, method="L-BFGS-B")
    np.testing.assert_array_equal(res.x, ref.x)
    assert (res.nfev, res.njev) == (ref.nfev, ref.njev)
