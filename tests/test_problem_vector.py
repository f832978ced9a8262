"""The vector objective residuals and constraints share: cache, counts, error policy, user Jacobians."""

from __future__ import annotations

import numpy as np
import pytest

from autominimize.backends import get_backend
from autominimize.constraints import ConstraintFunction
from autominimize.params import ParamSpec
from autominimize.problem import ResidualObjective, VectorObjective

SPEC = ParamSpec.from_tree({"a": np.zeros(2), "b": 0.0})


def _values(params):
    if params["b"] > 1.0:
        raise ValueError("outside the model")
    return np.array([params["a"][0] - 1.0, params["a"][1] * params["b"], params["b"] ** 2])


def _compiled():
    return get_backend("numpy").compile_vector(_values, SPEC, "float64")


def test_each_point_is_evaluated_once_and_counted():
    problem = VectorObjective(_compiled(), SPEC)
    x = np.array([0.5, 2.0, 0.5])
    np.testing.assert_allclose(problem.value(x), [-0.5, 1.0, 0.25])
    problem.value(x.copy())
    assert problem.counters.as_dict() == {"nfev": 1, "njev": 0, "nhev": 0, "nhvp": 0}
    jac = problem.jacobian(x)
    assert problem.jacobian(x) is jac
    # the NumPy backend's forward differences: one evaluation per parameter
    assert (problem.nfev, problem.njev) == (1 + SPEC.size, 1)
    np.testing.assert_allclose(jac, [[1, 0, 0], [0, 0.5, 2.0], [0, 0, 1.0]], atol=1e-6)


def test_a_user_jacobian_in_x0s_structure_is_read_flat():
    def structured(x):
        return {"a": np.ones((3, 2)), "b": np.full(3, 2.0)}

    problem = VectorObjective(_compiled(), SPEC, user_jacobian=structured)
    np.testing.assert_array_equal(problem.jacobian(np.zeros(3)), [[1.0, 1.0, 2.0]] * 3)
    with pytest.raises(ValueError, match=r"jac: the block for x0\['a'\] has shape \(2,\)"):
        VectorObjective(_compiled(), SPEC, user_jacobian=lambda x: {"a": np.ones(2), "b": np.ones(3)}).jacobian(np.zeros(3))


@pytest.mark.parametrize(
    ("make", "failed"),
    [
        (lambda functions: ResidualObjective(functions, SPEC, error_handling="continue"), [np.inf] * 3),
        (
            lambda functions: ConstraintFunction(functions, SPEC, "c", lower=[0.0, -np.inf, 1.0], error_handling="continue"),
            [-np.inf, np.inf, -np.inf],
        ),
    ],
    ids=["residuals", "constraint"],
)
def test_a_failing_trial_point_fails_the_same_way_for_residuals_and_constraints(make, failed):
    problem = make(_compiled())
    problem.value(np.zeros(3))
    trial = np.array([0.0, 0.0, 2.0])
    np.testing.assert_array_equal(problem.value(trial), failed)
    np.testing.assert_array_equal(problem.jacobian(trial), np.zeros((3, 3)))
    assert problem.is_failed(trial) and problem.failures == 1


def test_the_first_point_must_evaluate_whatever_the_policy():
    problem = ResidualObjective(_compiled(), SPEC, error_handling="continue")
    with pytest.raises(ValueError, match="outside the model") as info:
        problem.value(np.array([0.0, 0.0, 2.0]))
    assert info.value.autominimize_x["b"] == 2.0
