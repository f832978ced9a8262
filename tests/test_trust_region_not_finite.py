"""A trust-region method that refuses a derivative as not finite: the function and the point are
named, after the fact for gradients and trust-ncg's products (no check on each call)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize as so

import autominimize as am
from autominimize.drivers.finite_derivatives import not_finite_error
from autominimize.problem import Objective


def _quadratic(x):
    return float(np.sum((x - 1.0) ** 2))


def _gradient(x):
    return 2.0 * (x - 1.0)


def test_a_nan_product_at_a_later_iterate_of_trust_ncg_names_hessp_and_that_iterate():
    points = []

    def hessp(x, p):
        if x[0] > 0.3:  # finite at x0 = 0, NaN from the first step on
            points.append(x.copy())
            return np.where(np.arange(x.size) == 1, np.nan, 2.0 * p)
        return 2.0 * p

    with pytest.raises(
        ValueError, match=r"^the user-supplied hessp is not finite at the point in exc.autominimize_x: it is nan at x0\[1\]\. method='trust-ncg'"
    ) as info:
        am.minimize(_quadratic, np.zeros(3), method="trust-ncg", jac=_gradient, hessp=hessp, backend="numpy", options={"initial_trust_radius": 0.5})
    assert len(points) == 1  # scipy refused the first product that was not finite
    np.testing.assert_array_equal(info.value.autominimize_x, points[0])
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert any("computing the user-supplied hessp" in note for note in info.value.__notes__)
    assert _quadratic(info.value.autominimize_best_x) < _quadratic(np.zeros(3))


@pytest.mark.parametrize("method", ["trust-ncg", "trust-exact", "dogleg", "trust-krylov"])
def test_an_infinite_gradient_at_a_later_point_names_jac_and_that_point(method):
    points = []

    def jac(x):
        if x[0] > 0.3:
            points.append(x.copy())
            return np.array([2.0 * (x[0] - 1.0), np.inf])
        return _gradient(x)

    with pytest.raises(
        ValueError, match=rf"^the user-supplied jac is not finite .*: it is inf at x0\[1\]\. method='{method}' needs a finite"
    ) as info:
        am.minimize(
            _quadratic, np.zeros(2), method=method, jac=jac, hess=lambda x: 2.0 * np.eye(2), backend="numpy", options={"initial_trust_radius": 0.5}
        )
    np.testing.assert_array_equal(info.value.autominimize_x, points[-1])
    assert info.value.autominimize_x[0] > 0.3


def test_a_gradient_from_fun_returning_both_is_named_as_the_gradient_of_fun():
    def fg(x):
        return _quadratic(x), (_gradient(x) if x[0] < 0.3 else np.full(x.size, np.nan))

    with pytest.raises(ValueError, match=r"^the gradient of fun is not finite .*: it is nan at x0\[0\]\. method='trust-ncg'") as info:
        am.minimize(fg, np.zeros(2), method="trust-ncg", jac=True, hessp=lambda x, p: 2.0 * p, backend="numpy", options={"initial_trust_radius": 0.5})
    assert info.value.autominimize_x[0] >= 0.3


def test_scipys_own_error_is_left_as_it_is_when_every_derivative_handed_over_was_finite():
    objective = Objective(_FiniteFunctions(), _spec(2), gradient=_gradient, hessp=lambda x, p: 2.0 * p)
    objective.value_and_grad(np.zeros(2))
    objective.hessp(np.zeros(2), np.ones(2))
    assert not_finite_error(ValueError("array must not contain infs or NaNs"), objective, "trust-ncg") is None
    assert not_finite_error(ValueError("another error"), objective, "trust-ncg") is None
    # a product along a direction the method made of NaN is the method's doing
    objective.hessp(np.zeros(2), np.array([np.nan, 1.0]))
    assert not_finite_error(ValueError("array must not contain infs or NaNs"), objective, "trust-ncg") is None


def test_a_finite_solve_is_unchanged_and_an_error_of_fun_itself_is_not_renamed():
    rosen = am.minimize(so.rosen, np.zeros(4), method="trust-ncg", jac=so.rosen_der, hessp=so.rosen_hess_prod, backend="numpy")
    ref = so.minimize(so.rosen, np.zeros(4), method="trust-ncg", jac=so.rosen_der, hessp=so.rosen_hess_prod)
    np.testing.assert_array_equal(rosen.x, ref.x)
    assert (rosen.nfev, rosen.njev, rosen.nhvp) == (ref.nfev, ref.njev, ref.nhev - 1)  # scipy reports one product more

    def fun(x):
        if x[0] > 0.3:
            raise ValueError("array must not contain infs or NaNs")  # the user's own, with NumPy's text
        return _quadratic(x)

    with pytest.raises(ValueError) as info:
        am.minimize(fun, np.zeros(2), method="trust-ncg", jac=_gradient, hessp=lambda x, p: 2.0 * p, backend="numpy")
    assert str(info.value) == "array must not contain infs or NaNs" and info.value.autominimize_x[0] > 0.3


class _FiniteFunctions:
    """The least a ScalarFunctions offers an Objective fed the user's derivatives."""

    extra_evaluations = 0

    def value(self, x):
        return _quadratic(x)

    def value_and_grad(self, x):
        return _quadratic(x), _gradient(x)


def _spec(n):
    from autominimize.params import ParamSpec

    return ParamSpec.from_tree(np.zeros(n))
