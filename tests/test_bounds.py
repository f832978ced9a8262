"""Bounds in every accepted form broadcast to the same per-element vectors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import Bounds

import autominimize as am
from autominimize.bounds import normalize_bounds
from autominimize.params import ParamSpec

INF = np.inf


def _flat(bounds, x0):
    return normalize_bounds(bounds, ParamSpec.from_tree(x0), x0)


def test_one_pair_for_everything():
    lb, ub = _flat((0, 1), {"a": np.zeros(2), "b": 0.0})
    np.testing.assert_array_equal(lb, [0, 0, 0])
    np.testing.assert_array_equal(ub, [1, 1, 1])
    lb, ub = _flat((None, 0), np.zeros((2, 2)))
    np.testing.assert_array_equal(lb, [-INF] * 4)


@pytest.mark.parametrize(
    "bounds, lb, ub",
    [
        ((0, INF), [0] * 6, [INF] * 6),
        ((-INF, [1, 2, 3]), [-INF] * 6, [1, 2, 3, 1, 2, 3]),
        ((-INF, [[1], [2]]), [-INF] * 6, [1, 1, 1, 2, 2, 2]),
        (Bounds(0, [[1, 2, 3], [4, 5, 6]]), [0] * 6, [1, 2, 3, 4, 5, 6]),
        ([(0, 1)] * 6, [0] * 6, [1] * 6),
        (np.array([[0, 1]] * 6), [0] * 6, [1] * 6),
    ],
)
def test_tf1_var_to_bounds_broadcasting_on_a_2x3_leaf(bounds, lb, ub):
    got_lb, got_ub = _flat(bounds, np.zeros((2, 3)))
    np.testing.assert_array_equal(got_lb, lb)
    np.testing.assert_array_equal(got_ub, ub)


def test_per_leaf_forms_agree_with_explicit_per_element_form():
    x0 = {"U": np.zeros((2, 2)), "V": np.zeros(3), "s": 0.0}
    explicit = {"U": [(None, 0)] * 4, "V": [(-1, None)] * 3, "s": None}
    compact = {"U": (None, 0), "V": (-1, None)}
    as_arrays = {"U": (-INF, np.zeros((2, 2))), "V": np.array([[-1, INF]] * 3)}
    expected = _flat(explicit, x0)
    for form in (compact, as_arrays):
        got = _flat(form, x0)
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])


def test_list_x0_with_list_bounds_and_flat_scipy_form():
    x0 = [np.zeros(2), 0.0]
    lb, ub = _flat([(0, 1), (2, 3)], x0)
    np.testing.assert_array_equal(lb, [0, 0, 2])
    lb, ub = _flat([(0, 1), (2, 3), (4, 5)], x0)  # scipy's form over the flat vector
    np.testing.assert_array_equal(ub, [1, 3, 5])
    lb, ub = _flat(Bounds([0, 1, 2], 10), x0)
    np.testing.assert_array_equal(lb, [0, 1, 2])


@pytest.mark.parametrize(
    "bounds, message",
    [
        ({"W": (0, 1)}, r"bounds has keys \['W'\] that x0 does not have"),
        ({"U": (1, 0)}, r"bounds for x0\['U'\]\[0, 0\]: low 1.0 is greater than high 0.0"),
        ({"U": (0, [1, 2, 3])}, r"bounds\['U'\]: a limit of shape \(3,\) does not broadcast to the leaf's shape \(2, 2\)"),
        ({"U": "wide"}, r"bounds\['U'\]: cannot read 'wide'"),
        (Bounds(np.zeros(3), 1), r"Bounds must hold numbers or flat vectors of length 7"),
        ([(0, 1)] * 5, r"does not mirror x0's structure"),
        ({"U": (np.nan, 1)}, r"bounds contain NaN"),
    ],
)
def test_bad_bounds_name_the_leaf(bounds, message):
    with pytest.raises(am.BoundsError, match=message):
        _flat(bounds, {"U": np.zeros((2, 2)), "V": np.zeros(3)})


def test_bounded_solution_sits_on_the_active_bound():
    res = am.minimize(
        lambda p: ((p["a"] - 2.0) ** 2).sum() + ((p["b"] + 2.0) ** 2).sum(),
        {"a": np.zeros(2), "b": np.zeros(2)},
        method="L-BFGS-B",
        backend="numpy",
        jac=lambda p: {"a": 2 * (p["a"] - 2.0), "b": 2 * (p["b"] + 2.0)},
        bounds={"a": (None, [1.0, 3.0]), "b": (-1.0, None)},
    )
    np.testing.assert_allclose(res.x["a"], [1.0, 2.0], atol=1e-7)
    np.testing.assert_allclose(res.x["b"], [-1.0, -1.0], atol=1e-7)


@pytest.mark.parametrize("method", ["BFGS", "CG", "Newton-CG", "trust-ncg", "dogleg"])
def test_bounds_with_a_method_that_cannot_use_them_is_an_error(method):
    with pytest.raises(ValueError, match=rf"method='{method.lower()}' cannot handle bounds .*L-BFGS-B|l-bfgs-b"):
        am.minimize(lambda x: (x**2).sum(), np.ones(2), method=method, bounds=(0, 1), backend="numpy")


@pytest.mark.parametrize(
    ("x0", "bounds", "names"),
    [
        (np.array(3.0), [(0, 1)], "x0;"),
        (np.array([0.5, 3.0, 0.2]), (0, 1), r"x0\[1\];"),
        (np.array([0.5, 3.0, 4.0]), (0, 1), r"x0 \(2 of 3 elements, first at \[1\]\);"),
        (
            {"a": np.array([0.5, 3.0]), "b": np.full((2, 3), 2.0), "c": np.zeros(2)},
            {"a": (0, 1), "b": (0, 1), "c": (0, 1)},
            r"x0\['a'\]\[1\], x0\['b'\] \(6 of 6 elements, first at \[0, 0\]\);",
        ),
    ],
)
def test_a_start_outside_the_bounds_names_the_elements_that_moved(x0, bounds, names):
    with pytest.warns(UserWarning, match=r"x0 is outside the bounds at " + names + " it was clipped into them"):
        res = am.minimize(lambda x: sum(np.sum(v**2) for v in (x.values() if isinstance(x, dict) else [x])), x0, bounds=bounds)
    assert res.success


@pytest.mark.parametrize("name", ["x0", "params", "r_list"])
def test_a_bound_error_names_the_leaf_inside_the_tree_whatever_the_roots_name(name):
    x0 = {"a": np.zeros(2), "b": np.zeros(3)}
    with pytest.raises(ValueError, match=r"^bounds\['b'\]: cannot read 'bad' as bounds for a leaf of shape \(3,\)"):
        normalize_bounds({"a": (0, 1), "b": "bad"}, ParamSpec.from_tree(x0, name=name), x0)
