"""am.iterate: one step per next(), StopIteration on convergence, control between steps."""

from __future__ import annotations

import time

import numpy as np
import pytest
import scipy.optimize as so

import autominimize as am
from autominimize.native import FunctionTolerance, GradientTolerance, MaxEvaluations, MaxIterations, Progress

pytest.importorskip("jax")


def rosen(x):
    return 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2


def test_one_step_per_next_and_stop_iteration_on_convergence():
    it = am.iterate(rosen, np.array([-1.2, 1.0]), method="lbfgs-native", backend="jax")
    first = next(it)
    assert first.nit == 1 and first.stop is None and first.nfev >= 2
    states = [first] + list(it)
    assert [s.nit for s in states] == list(range(1, len(states) + 1))
    assert states[-1].stop.success and all(s.stop is None for s in states[:-1])
    with pytest.raises(StopIteration):
        next(it)
    res = it.result()
    direct = am.minimize(rosen, np.array([-1.2, 1.0]), method="lbfgs-native", backend="jax")
    assert res.nit == direct.nit == len(states) and np.allclose(res.x, direct.x, rtol=0, atol=0)
    assert isinstance(res, so.OptimizeResult) and res.message == direct.message


def test_caller_may_stop_and_read_the_result():
    it = am.iterate(rosen, np.array([-1.2, 1.0]), method="cg-native", backend="jax")
    for state in it:
        if state.nit == 3:
            break
    res = it.result()
    assert res.nit == 3 and not res.success and "caller" in res.message
    assert res.fun == pytest.approx(state.fun)


def test_change_hyperparameter_between_steps():
    it = am.iterate(lambda x: (x**2).sum(), np.ones(1), method="sgd", backend="jax", options={"lr": 0.1}, stop=MaxIterations(4))
    xs = []
    for state in it:
        xs.append(float(state.x[0]))
        if state.nit == 2:
            it.set(lr=0.25)
    assert np.allclose(xs, [0.8, 0.64, 0.32, 0.16])
    with pytest.raises(TypeError, match="no hyperparameter 'learning_rate'"):
        it.set(learning_rate=1.0)


def test_criteria_combine():
    progress = Progress(nit=10, nfev=30, njev=30, fun=1.0, fun_prev=1.0 + 1e-12, grad_norm=1e-3)
    assert (GradientTolerance(1e-5) | FunctionTolerance())(progress).success
    assert (GradientTolerance(1e-5) & FunctionTolerance())(progress) is None
    assert (MaxIterations(10) | GradientTolerance())(progress).status == 1
    assert (lambda p: p.nfev > 20) | MaxEvaluations(100)
    stop = (MaxEvaluations(100) | (lambda p: "enough" if p.nfev > 20 else None))(progress)
    assert stop.message == "enough" and stop.success


def test_stop_objects_shared_by_all_algorithms():
    for method in ("lbfgs-native", "cg-native", "hessian-free", "sgd", "delta-bar-delta"):
        it = am.iterate(
            rosen,
            np.array([-1.2, 1.0]),
            method=method,
            backend="jax",
            stop=MaxIterations(3) | GradientTolerance(1e-12),
            options={"lr": 1e-4} if method == "sgd" else None,
        )
        assert len(list(it)) == 3 and it.result().status == 1


def test_time_budget():
    def slow(x):
        time.sleep(0.02)
        return rosen(x)

    start = time.perf_counter()
    res = am.minimize(slow, np.array([-1.2, 1.0]), method="lbfgs-native", backend="numpy", options={"max_time": 0.1})
    assert not res.success and "time budget" in res.message and time.perf_counter() - start < 2


def test_callback_sees_structure_and_can_stop():
    seen = []

    def callback(intermediate_result):
        seen.append(intermediate_result.x["w"].copy())
        return len(seen) == 4

    res = am.minimize(lambda p: rosen(p["w"]), {"w": np.array([-1.2, 1.0])}, method="lbfgs-native", backend="jax", callback=callback)
    assert res.nit == 4 and not res.success and "callback" in res.message and len(seen) == 4


def test_already_optimal_start_takes_no_step():
    res = am.minimize(rosen, np.array([1.0, 1.0]), method="lbfgs-native", backend="jax")
    assert res.success and res.nit == 0 and res.nfev == 1


def test_epochs_and_one_shot_iterators():
    batches = [np.full(2, v) for v in (1.0, 2.0, 3.0)]
    res = am.minimize(lambda w, b: ((w - b) ** 2).sum(), np.zeros(2), method="sgd", data=batches, epochs=4, backend="jax", options={"lr": 0.1})
    assert res.nit == 12 and res.epochs == 4 and res.success and "4 epochs" in res.message
    with pytest.raises(ValueError, match="re-iterable"):
        am.minimize(lambda w, b: ((w - b) ** 2).sum(), np.zeros(2), method="sgd", data=iter(batches), epochs=2, backend="jax")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "lbfgs-native", "data": [1.0]}, "cannot run on mini-batches"),
        ({"method": "sgd", "epochs": 3}, "give data="),
        ({"method": "L-BFGS-B", "data": [1.0]}, "native methods"),
        ({"method": "BFGS", "batch": True}, "native methods"),
        ({"method": "cg-native", "bounds": (0, 1)}, "does not take bounds"),
        ({"method": "lbfgs-native", "constraints": {"type": "eq", "fun": lambda x: x[0]}}, "constraints"),
    ],
)
def test_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        am.minimize(rosen, np.array([-1.2, 1.0]), backend="jax", **kwargs)


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(TypeError, match="has no option 'lerning_rate'.*memory"):
        am.minimize(rosen, np.array([-1.2, 1.0]), method="lbfgs-native", options={"lerning_rate": 1})


def test_scalar_check_points_to_hessian_free():
    import jax.numpy as jnp

    with pytest.raises(ValueError, match="hessian-free"):
        am.minimize(lambda x: jnp.stack([x[0], x[1]]), np.zeros(2), method="lbfgs-native")


def test_tensorflow_runs_through_host_arrays():
    tf = pytest.importorskip("tensorflow")
    res = am.minimize(lambda x: tf.reduce_sum((x - 3.0) ** 2), np.zeros(3), method="lbfgs-native", backend="tensorflow")
    assert res.success and res.backend == "tensorflow" and np.allclose(res.x, 3.0)


def test_native_example_runs():
    import pathlib
    import runpy

    path = pathlib.Path(__file__).parents[1] / "examples" / "native_training_loop.py"
    runpy.run_path(str(path), run_name="__main__")


def test_batched_solves_cannot_be_iterated_step_by_step():
    """batch=True is a one-shot solve (tests/test_native_batched.py); it has no iterator."""
    with pytest.raises(TypeError, match=r"does not take \['batch'\]; those are am.minimize's"):
        am.iterate(rosen, np.zeros((3, 2)), method="lbfgs-native", batch=True, backend="jax")
