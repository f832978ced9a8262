"""Solves in threads at once give the sequential results; new lambdas do not pile up."""

from __future__ import annotations

import gc
import threading
import tracemalloc

import numpy as np
import pytest

import autominimize as am
from autominimize.backends import base as backends_base
from conftest import ALL_BACKENDS, array_module, rosen_der


def _problems(backend):
    """Two different objectives with different minima, written for ``backend``."""
    _, total = array_module(backend)

    def shifted_bowl(x):
        return total((x - 3.0) ** 2 * 2.0)

    def rosen(x):
        return total(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    return shifted_bowl, rosen


@pytest.mark.parametrize("backend", [b for b in ALL_BACKENDS if b != "tensorflow"])
def test_two_threads_give_the_sequential_results(backend):
    bowl, rosen = _problems(backend)
    extra = {"bowl": {}, "rosen": {}}
    if backend == "numpy":
        extra = {"bowl": {"jac": lambda x: 4.0 * (x - 3.0)}, "rosen": {"jac": rosen_der}}
    jobs = {"bowl": (bowl, np.zeros(4)), "rosen": (rosen, np.zeros(4))}

    def solve(name):
        fun, x0 = jobs[name]
        return am.minimize(fun, x0, method="BFGS", backend=backend, **extra[name])

    sequential = {name: solve(name) for name in jobs}
    results: dict = {}
    errors: list = []

    def worker(name, repeat):
        try:
            for _ in range(repeat):
                results.setdefault(name, []).append(solve(name))
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(name, 3)) for name in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for name, runs in results.items():
        for res in runs:
            np.testing.assert_array_equal(res.x, sequential[name].x)
            assert (res.nfev, res.njev, res.nit) == (sequential[name].nfev, sequential[name].njev, sequential[name].nit)


def test_one_torch_function_shared_by_two_threads():
    torch = pytest.importorskip("torch")

    def fun(x):
        return torch.sum((x - 1.0) ** 2 * torch.arange(1.0, 5.0, dtype=x.dtype))

    expected = am.minimize(fun, np.zeros(4), method="trust-ncg", backend="torch")
    results = []
    threads = [threading.Thread(target=lambda: results.append(am.minimize(fun, np.zeros(4), method="trust-ncg", backend="torch"))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2
    for res in results:
        np.testing.assert_allclose(res.x, expected.x, rtol=0, atol=1e-12)


def test_new_lambdas_do_not_accumulate_compiled_functions_or_memory():
    pytest.importorskip("jax")
    x0 = np.zeros(3)

    def solve_with_a_new_lambda(i):
        am.minimize(lambda x: ((x - i) ** 2).sum(), x0, method="L-BFGS-B", backend="jax", history=False)

    for i in range(backends_base.COMPILE_CACHE_SIZE + 20):  # warm-up: every cache at its full size
        solve_with_a_new_lambda(i)
    gc.collect()
    tracemalloc.start()
    # every cached entry is now a traced one; the second turnover lets the entries' own
    # containers reach their steady size
    for i in range(2 * backends_base.COMPILE_CACHE_SIZE):
        solve_with_a_new_lambda(i)
    gc.collect()
    middle, _ = tracemalloc.get_traced_memory()
    for i in range(200):
        solve_with_a_new_lambda(i)
    gc.collect()
    end, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(backends_base._compiled) == backends_base.COMPILE_CACHE_SIZE
    # 200 more calls with new lambdas add next to nothing (measured: about 1% of what the
    # cache holds); an unbounded cache would grow by about 1.5 times what it holds.
    assert end - middle < 0.1 * middle, (middle, end)
