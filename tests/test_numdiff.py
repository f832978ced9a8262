"""Finite differences: accuracy, bounds, counts, and parallel evaluation (processes, threads, Dask)."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import autominimize as am
from autominimize import numdiff


def smooth(x):
    return float(np.sum(np.sin(x) * np.exp(0.3 * x)) + x[0] * x[-1])


def smooth_grad(x):
    g = np.cos(x) * np.exp(0.3 * x) + 0.3 * np.sin(x) * np.exp(0.3 * x)
    g[0] += x[-1]
    g[-1] += x[0]
    return g


X = np.linspace(-1.0, 2.0, 6)


@pytest.mark.parametrize("method, tol", [("forward", 1e-6), ("backward", 1e-6), ("central", 1e-9), ("2-point", 1e-6), ("3-point", 1e-9)])
def test_accuracy_of_each_scheme(method, tol):
    jac, count = numdiff.approx_jacobian(smooth, X, method=method)
    np.testing.assert_allclose(jac, smooth_grad(X), atol=tol)
    assert count == (2 * X.size if numdiff.canonical_method(method) == "central" else X.size + 1)


def test_steps_are_relative_to_x_and_exactly_representable():
    x = np.array([0.0, 1e-3, 1e4])
    plan = numdiff.difference_plan(x, "forward")
    np.testing.assert_allclose(plan.h, np.sqrt(np.finfo(float).eps) * np.array([1.0, 1.0, 1e4]), rtol=1e-6)
    assert np.all((x + plan.h) - x == plan.h)


@pytest.mark.parametrize("method", ["forward", "backward", "central"])
def test_never_evaluates_outside_the_bounds(method):
    lb, ub = np.array([0.0, -1.0, 0.0]), np.array([1.0, 0.0, 5e-9])
    x = np.array([1.0, -1.0, 0.0])
    seen = []

    def f(z):
        seen.append(z.copy())
        return float(np.sum(z**2) + z[0] * z[1] + np.exp(z[2]))

    jac, _ = numdiff.approx_jacobian(f, x, method=method, bounds=(lb, ub))
    assert all(np.all(z >= lb) and np.all(z <= ub) for z in seen)
    np.testing.assert_allclose(jac, [2 * x[0] + x[1], 2 * x[1] + x[0], 1.0], atol=1e-6)


def test_equal_bounds_fix_the_variable_and_an_unknown_scheme_is_an_error():
    plan = numdiff.difference_plan(np.array([1.0, 0.0]), "forward", bounds=(np.array([1.0, -1.0]), np.array([1.0, 1.0])))
    assert plan.kind.tolist() == [3, 0] and len(plan.points(np.array([1.0, 0.0]))) == 1
    with pytest.raises(ValueError, match="not a finite-difference scheme"):
        numdiff.difference_plan(np.array([1.0]), "cs")


def test_gradient_and_jacobian_over_structures():
    g = numdiff.gradient(lambda p: p["a"] ** 2 + np.sum(p["b"] * 3), {"a": 2.0, "b": np.ones((2, 2))})
    assert g["a"] == pytest.approx(4.0) and np.allclose(g["b"], 3.0)
    J = numdiff.jacobian(lambda x: {"u": x**2, "v": x.sum()}, np.array([1.0, 2.0]))
    np.testing.assert_allclose(J, [[2, 0], [0, 4], [1, 1]], atol=1e-8)
    with pytest.raises(ValueError, match="Use jacobian"):
        numdiff.gradient(lambda x: x, np.ones(2))


def test_numpy_backend_counts_every_evaluation_and_respects_bounds():
    calls = []

    def f(x):
        calls.append(x.copy())
        assert np.all(x >= 0.5)
        return float(np.sum((x - 0.2) ** 2))

    res = am.minimize(f, np.ones(4), method="L-BFGS-B", backend="numpy", bounds=(0.5, None))
    assert res.nfev == len(calls)
    np.testing.assert_allclose(res.x, 0.5)


def test_a_thread_pool_gives_the_serial_gradient():
    serial = numdiff.gradient(smooth, X, method="forward")
    with ThreadPoolExecutor(3) as pool:
        parallel = numdiff.gradient(smooth, X, method="forward", executor=pool)
    np.testing.assert_array_equal(serial, parallel)


def _sphere_shift(x):
    return float(np.sum((x - 0.5) ** 2) + np.prod(np.cos(x)))


def test_local_processes_give_the_serial_result_and_the_same_counts():
    serial = am.minimize(_sphere_shift, np.zeros(5), method="L-BFGS-B", backend="numpy")
    parallel = am.minimize(_sphere_shift, np.zeros(5), method="L-BFGS-B", backend="numpy", workers=2)
    np.testing.assert_array_equal(serial.x, parallel.x)
    assert serial.nfev == parallel.nfev and serial.nit == parallel.nit
    offset = 0.25
    closure = numdiff.gradient(lambda x: float(np.sum((x - offset) ** 2)), np.zeros(3), workers=2)
    np.testing.assert_allclose(closure, -0.5, atol=1e-8)  # lambdas and closures reach the workers


def _fails_far_out(x):
    if x[1] > 1.0:
        raise RuntimeError("out of range")
    return float(np.sum(x))


def test_an_error_in_a_worker_names_the_point():
    with pytest.raises(RuntimeError, match="out of range") as info:
        with numdiff.Evaluator(workers=2) as evaluator:
            evaluator.map(_fails_far_out, [np.zeros(2), np.array([0.0, 2.0]), np.ones(2)])
    np.testing.assert_array_equal(info.value.autominimize_point, [0.0, 2.0])
    with pytest.raises(RuntimeError) as info:
        am.minimize(_fails_far_out, np.array([0.0, 1.0]), method="BFGS", backend="numpy", workers=2)
    assert info.value.autominimize_x[1] > 1.0


def test_argument_errors():
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        numdiff.Evaluator(workers=0)
    with pytest.raises(ValueError, match="not both"):
        numdiff.Evaluator(workers=2, executor=ThreadPoolExecutor(1))
    with pytest.raises(TypeError, match="concurrent.futures.Executor"):
        numdiff.Evaluator(executor=object())
    with pytest.raises(ValueError, match="workers= and executor="):
        am.minimize(lambda x: (x**2).sum(), np.ones(2), backend="jax", workers=2)


def test_dask_local_cluster_computes_the_serial_gradient():
    distributed = pytest.importorskip("dask.distributed")
    x = np.linspace(0.0, 1.0, 8)
    serial = numdiff.gradient(_sphere_shift, x, method="central")
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        executor = client.get_executor(pure=False)
        on_dask = numdiff.gradient(_sphere_shift, x, method="central", executor=executor)
        pids = set(client.run(lambda: __import__("os").getpid()).values())
        res = am.minimize(_sphere_shift, np.zeros(4), method="L-BFGS-B", backend="numpy", executor=executor)
    np.testing.assert_array_equal(serial, on_dask)
    assert len(pids) == 2
    reference = am.minimize(_sphere_shift, np.zeros(4), method="L-BFGS-B", backend="numpy")
    np.testing.assert_array_equal(res.x, reference.x)
    assert res.nfev == reference.nfev
