"""A batched differential evolution stopped by an error or a Ctrl-C keeps its best point.

Each objective counts its batched calls: the first evaluates the initial population and
call ``k`` generation ``k - 1``. Stopped at call ``stop``, the run has evaluated the initial
population and ``stop - 2`` generations, so its best point is exactly the result of the same
seeded run with ``maxiter=stop - 2`` (differential evolution keeps the best point it
evaluates). JAX calls the Python function only while tracing, so its objective counts in a
``jax.pure_callback``; JAX turns anything raised there (a KeyboardInterrupt included) into
its own runtime error, so its Ctrl-C comes from the generation callback, between batches.
"""

from __future__ import annotations

import numpy as np
import pytest

import autominimize as am

BOUNDS = {"x": [(-2.0, 3.0)] * 3}
STOP = 4
OPTIONS = {"rng": 0, "polish": False, "vectorized": True, "maxiter": 50}


class Stop(Exception):
    """The objective's own failure."""


class Counter:
    """Counts the batched calls; raises ``error`` at call ``stop``."""

    def __init__(self, error: type[BaseException] | None = None):
        self.calls = 0
        self.error = error

    def tick(self) -> None:
        self.calls += 1
        if self.error is not None and self.calls == STOP:
            raise self.error("stopped from inside the objective")


def _objective(backend: str, counter: Counter):
    if backend == "jax":
        jax = pytest.importorskip("jax")
        jnp = jax.numpy

        def ticks(x):
            counter.tick()
            return np.zeros(np.shape(x))

        def fun(p):
            zero = jax.pure_callback(ticks, jax.ShapeDtypeStruct((), jnp.float64), p["x"][0], vmap_method="expand_dims")
            return jnp.sum((p["x"] - 1.0) ** 2) + zero

        return fun
    if backend == "torch":
        torch = pytest.importorskip("torch")

        def fun(p):
            counter.tick()
            return torch.sum((p["x"] - 1.0) ** 2)

        return fun

    def fun(p):  # scipy's layout: x of shape (3, S)
        counter.tick()
        return np.sum((p["x"] - 1.0) ** 2, axis=0)

    return fun


def _reference(backend: str) -> tuple[np.ndarray, float]:
    """The best point of the run stopped at call STOP, from a run that ends there."""
    result = am.differential_evolution(_objective(backend, Counter()), BOUNDS, backend=backend, **{**OPTIONS, "maxiter": STOP - 2})
    assert result.nit == STOP - 2 and result.evaluation == "batched"
    return np.asarray(result.x["x"], dtype=np.float64), result.fun


def _best(exc: BaseException) -> np.ndarray:
    assert set(exc.autominimize_best_x) == {"x"}
    return np.asarray(exc.autominimize_best_x["x"], dtype=np.float64)


@pytest.mark.parametrize(("backend", "vectorized"), [("numpy", True), ("jax", True), ("torch", True), ("jax", None), ("torch", None)])
def test_an_error_in_a_batch_carries_the_best_point(backend, vectorized):
    """With ``vectorized=None`` too: a batch that fails after others succeeded is the
    function's own error, not a sign that it cannot be mapped over a batch."""
    expected_x, _ = _reference(backend)
    counter = Counter(Stop)
    with pytest.raises(Exception, match="stopped from inside the objective") as caught:
        am.differential_evolution(_objective(backend, counter), BOUNDS, backend=backend, **{**OPTIONS, "vectorized": vectorized})
    assert counter.calls == STOP
    np.testing.assert_array_equal(_best(caught.value), expected_x)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_ctrl_c_in_a_batch_carries_the_best_point(backend):
    expected_x, expected_f = _reference(backend)
    counter = Counter(KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt) as caught:
        am.differential_evolution(_objective(backend, counter), BOUNDS, backend=backend, **OPTIONS)
    assert counter.calls == STOP
    np.testing.assert_array_equal(_best(caught.value), expected_x)
    assert caught.value.autominimize_best_f == expected_f


def test_a_ctrl_c_between_jax_batches_carries_the_best_point():
    expected_x, expected_f = _reference("jax")
    counter = Counter()

    def interrupt(intermediate_result):
        if counter.calls == STOP - 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as caught:
        am.differential_evolution(_objective("jax", counter), BOUNDS, backend="jax", callback=interrupt, **OPTIONS)
    np.testing.assert_array_equal(_best(caught.value), expected_x)
    assert caught.value.autominimize_best_f == expected_f


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_batched_values_are_counted_and_keep_the_best_point(backend):
    counter = Counter()
    result = am.differential_evolution(_objective(backend, counter), BOUNDS, backend=backend, **{**OPTIONS, "maxiter": 3})
    assert result.nfev == 4 * 45  # the initial population and three generations of 45 members
    # torch calls the function once more on the whole first batch, to learn whether that
    # gives the mapped values (this one sums every axis, so it stays mapped)
    assert counter.calls == (5 if backend == "torch" else 4)


@pytest.mark.parametrize("values", [[np.nan, 3.0, np.nan, 0.5, 2.0], [4.0, 0.5, np.nan, 0.5, 1.0], [np.nan, np.nan]])
def test_a_batch_keeps_its_first_best_row_and_never_a_nan(values):
    from autominimize.global_opt._build import build_problem

    def fun(x):  # vectorized: the value of row i is values[i]
        return np.asarray(values)[np.round(x[:, 0]).astype(int)]

    problem, _, _ = build_problem(fun, None, [(0, 9), (0, 1)], (), backend="numpy", precision=None, unpack="auto", finite=True)
    points = np.column_stack([np.arange(len(values)), np.full(len(values), 0.5)]).astype(float)
    problem.objective.values(points)
    finite = [v if v == v else np.inf for v in values]
    if min(finite) == np.inf:
        assert problem.objective.best_x is None and problem.objective.best_f == np.inf
    else:
        np.testing.assert_array_equal(problem.objective.best_x, points[finite.index(min(finite))])
        assert problem.objective.best_f == min(finite)
