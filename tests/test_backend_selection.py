"""The backend is chosen by the documented order, and res.backend says which."""

from __future__ import annotations

import numpy as np
import pytest

import autominimize as am
from conftest import FRAMEWORKS


def _solve(fun, x0, **kwargs):
    return am.minimize(fun, x0, method="L-BFGS-B", **kwargs)


@pytest.mark.skipif("jax" not in FRAMEWORKS, reason="needs jax")
def test_operators_only_runs_on_jax():
    res = _solve(lambda x: ((x - 1.0) ** 2).sum(), np.zeros(3))
    assert res.backend == "jax" and res.njev > 0
    np.testing.assert_allclose(res.x, 1.0, atol=1e-6)


def test_numpy_only_function_falls_back_to_numpy_finite_differences():
    res = _solve(lambda x: float(np.sum(np.sin(x) ** 2)), np.full(2, 0.3))
    assert res.backend == "numpy"
    assert res.nfev > res.njev  # finite-difference evaluations are counted
    np.testing.assert_allclose(res.x, 0.0, atol=1e-4)


def test_framework_output_chooses_the_framework():
    tf = pytest.importorskip("tensorflow")
    assert _solve(lambda x: tf.reduce_sum((x - 1.0) ** 2), np.zeros(2)).backend == "tensorflow"


def test_framework_referenced_by_a_function_that_fails_on_numpy():
    torch = pytest.importorskip("torch")
    res = _solve(lambda x: torch.sum(torch.cos(x)), np.full(2, 3.0))
    assert res.backend == "torch"
    np.testing.assert_allclose(res.x, np.pi, atol=1e-4)  # L-BFGS-B stops on a relative f change


def test_x0_tensors_choose_their_framework_and_explicit_backend_wins():
    torch = pytest.importorskip("torch")
    assert _solve(lambda x: ((x - 1.0) ** 2).sum(), torch.zeros(2)).backend == "torch"
    if "jax" in FRAMEWORKS:
        assert _solve(lambda x: ((x - 1.0) ** 2).sum(), np.zeros(2), backend="torch").backend == "torch"


def test_mixed_frameworks_in_x0_are_refused():
    torch = pytest.importorskip("torch")
    jnp = pytest.importorskip("jax.numpy")
    with pytest.raises(TypeError, match="x0 mixes tensors of several frameworks \\(jax, torch\\)"):
        _solve(lambda p: 0.0, {"a": torch.zeros(1), "b": jnp.zeros(1)})


def test_probe_failure_without_framework_hint_explains_itself():
    def broken(x):
        raise KeyError("no such column")

    with pytest.raises(KeyError, match="while evaluating the function once at x0 with NumPy arrays"):
        _solve(broken, np.zeros(2))


@pytest.mark.parametrize("name", ["jax", "torch", "tensorflow"])
def test_a_backend_found_once_is_not_searched_for_again(name, monkeypatch):
    import importlib.util

    from autominimize.backends import get_backend

    first = get_backend(name)

    def no_search(*args, **kwargs):
        raise AssertionError("find_spec called again")

    monkeypatch.setattr(importlib.util, "find_spec", no_search)
    assert get_backend(name) is first
