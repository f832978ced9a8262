"""The scalar objective's batches: counted, under the error policy, keeping the best point.

The objective is NumPy's batched value of a function declared vectorized: it gets the rows
of the batch (x of shape (S, 2)) and returns S values.
"""

from __future__ import annotations

import numpy as np
import pytest

from autominimize.global_opt._build import build_problem

POINTS = np.array([[3.0, 0.0], [1.0, 1.0], [0.5, -1.0], [2.0, 2.0]])  # values 9, 2, 1.25, 8


def _objective(fun, error_handling="raise"):
    problem, _, _ = build_problem(
        fun, None, {"x": [(-5.0, 5.0)] * 2}, (), backend="numpy", precision=None, unpack="auto", finite=True, error_handling=error_handling
    )
    return problem.objective


def _squares(p):
    return np.sum(p["x"] ** 2, axis=-1)


def test_a_batch_is_counted_and_keeps_its_best_row():
    objective = _objective(_squares)
    np.testing.assert_array_equal(objective.values(POINTS), [9.0, 2.0, 1.25, 8.0])
    assert objective.counters.nfev == 4
    np.testing.assert_array_equal(objective.best_x, [0.5, -1.0])
    assert objective.best_f == 1.25
    objective.values(POINTS[:2])  # no better row: the best point stays
    assert (objective.counters.nfev, objective.best_f) == (6, 1.25)


def test_a_nan_is_never_the_best_point_and_is_handed_on_under_raise():
    objective = _objective(lambda p: np.where(p["x"][:, 0] > 0.6, _squares(p), np.nan))
    values = objective.values(POINTS)
    assert np.isnan(values[2])
    assert objective.best_f == 2.0


def test_under_continue_values_that_are_not_finite_are_failed_points():
    objective = _objective(lambda p: np.where(p["x"][:, 0] > 0.6, _squares(p), np.nan), "continue")
    np.testing.assert_array_equal(objective.values(POINTS), [9.0, 2.0, np.inf, 8.0])
    assert (objective.failures, objective.counters.nfev, objective.best_f) == (1, 4, 2.0)


def test_under_continue_a_batch_that_raises_is_evaluated_point_by_point():
    def fun(p):
        if p["x"].ndim == 2:
            raise RuntimeError("no batches")
        if p["x"][0] < 0.6:
            raise RuntimeError("not here")
        return float(np.sum(p["x"] ** 2))

    objective = _objective(fun, "continue")
    np.testing.assert_array_equal(objective.values(POINTS), [9.0, 2.0, np.inf, 8.0])
    assert (objective.failures, objective.counters.nfev, objective.best_f) == (1, 4, 2.0)


def test_under_raise_the_error_carries_the_first_point_of_the_batch():
    def fun(p):
        raise RuntimeError("broken")

    objective = _objective(fun)
    with pytest.raises(RuntimeError, match="broken") as caught:
        objective.values(POINTS)
    np.testing.assert_array_equal(caught.value.autominimize_x["x"], POINTS[0])
    assert objective.counters.nfev == 0 and objective.best_x is None
