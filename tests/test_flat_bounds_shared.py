"""Bounds of numbers are read once per x0 structure: later solves share read-only flat vectors
and scipy's Bounds of them, and still honour every change of the bounds' numbers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize as so

import autominimize as am
from autominimize import _flat_bounds
from autominimize._setup import prepare
from autominimize.drivers import scipy_local


def _fg(p):
    r = p["U"] - 2.0
    s = p["V"] + 3.0
    return float(np.sum(r**2) + np.sum(s**2)), {"U": 2.0 * r, "V": 2.0 * s}


def _x0():
    return {"U": np.zeros(2), "V": np.zeros(3)}


def test_bounds_of_numbers_are_read_once_into_read_only_vectors():
    setup = prepare(_fg, _x0())
    lb, ub = _flat_bounds.flat_bounds(setup, {"U": (None, 1.0), "V": (-1, None)})
    assert lb.tolist() == [-np.inf, -np.inf, -1.0, -1.0, -1.0] and ub.tolist() == [1.0, 1.0, np.inf, np.inf, np.inf]
    assert not lb.flags.writeable and not ub.flags.writeable
    again = _flat_bounds.flat_bounds(prepare(_fg, _x0()), {"U": (None, 1.0), "V": (-1, None)})
    assert again[0] is lb and again[1] is ub
    other = _flat_bounds.flat_bounds(prepare(_fg, _x0()), {"U": (None, 0.5), "V": (-1, None)})
    assert other[1].tolist() == [0.5, 0.5, np.inf, np.inf, np.inf]
    longer = _flat_bounds.flat_bounds(prepare(_fg, {"U": np.zeros(3), "V": np.zeros(3)}), {"U": (None, 1.0), "V": (-1, None)})
    assert longer[1].tolist() == [1.0, 1.0, 1.0, np.inf, np.inf, np.inf]


def test_bounds_holding_arrays_are_read_at_every_solve():
    bounds = {"U": (np.zeros(2), None), "V": (-1, None)}
    first = _flat_bounds.flat_bounds(prepare(_fg, _x0()), bounds)
    bounds["U"][0][:] = -5.0  # the user's array, changed between solves
    second = _flat_bounds.flat_bounds(prepare(_fg, _x0()), bounds)
    assert first[0].flags.writeable and first[0][:2].tolist() == [0.0, 0.0] and second[0][:2].tolist() == [-5.0, -5.0]


def test_a_changed_bounds_dict_is_honoured_by_the_next_solve():
    bounds = {"U": (None, 1.0), "V": (-1, None)}
    first = am.minimize(_fg, _x0(), jac=True, method="L-BFGS-B", bounds=bounds, backend="numpy")
    bounds["U"] = (None, 0.5)
    second = am.minimize(_fg, _x0(), jac=True, method="L-BFGS-B", bounds=bounds, backend="numpy")
    np.testing.assert_allclose(first.x["U"], [1.0, 1.0])
    np.testing.assert_allclose(second.x["U"], [0.5, 0.5])
    np.testing.assert_allclose(second.x["V"], [-1.0, -1.0, -1.0])
    flat = so.minimize(
        lambda z: (float(np.sum((z[:2] - 2.0) ** 2) + np.sum((z[2:] + 3.0) ** 2)), np.concatenate([2.0 * (z[:2] - 2.0), 2.0 * (z[2:] + 3.0)])),
        np.zeros(5),
        jac=True,
        method="L-BFGS-B",
        bounds=so.Bounds([-np.inf, -np.inf, -1, -1, -1], [0.5, 0.5, np.inf, np.inf, np.inf]),
    )
    np.testing.assert_array_equal(np.concatenate([second.x["U"], second.x["V"]]), flat.x)
    assert (second.nfev, second.nit) == (flat.nfev, flat.nit)


def test_scipys_bounds_are_shared_for_read_only_vectors_only():
    lb, ub = np.zeros(2), np.ones(2)
    assert scipy_local._scipy_bounds(lb, ub) is not scipy_local._scipy_bounds(lb, ub)  # writable: could change
    lb.setflags(write=False)
    ub.setflags(write=False)
    shared = scipy_local._scipy_bounds(lb, ub)
    assert scipy_local._scipy_bounds(lb, ub) is shared and shared.lb.tolist() == [0.0, 0.0]
    assert scipy_local._scipy_bounds(lb, ub.copy()) is not shared


@pytest.mark.parametrize("bounds", [(0.0, 1.0), [(0.0, 1.0)] * 5])
def test_a_start_outside_shared_bounds_is_still_clipped_with_a_warning(bounds):
    x0 = {"U": np.full(2, 3.0), "V": np.zeros(3)}
    for _ in range(2):
        with pytest.warns(UserWarning, match=r"x0 is outside the bounds at x0\['U'\]"):
            res = am.minimize(_fg, {k: v.copy() for k, v in x0.items()}, jac=True, method="L-BFGS-B", bounds=bounds, backend="numpy")
        np.testing.assert_allclose(res.x["U"], [1.0, 1.0])
        np.testing.assert_allclose(res.x["V"], [0.0, 0.0, 0.0])
