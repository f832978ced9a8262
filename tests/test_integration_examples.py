"""Each integration example runs and reaches its documented result (jax_mlp.py: test_integration_jax.py)."""

from __future__ import annotations

import importlib.util
import runpy
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).parents[1] / "examples"


def run_example(name: str, framework: str) -> dict:
    if importlib.util.find_spec(framework) is None:
        pytest.skip(f"{framework} is not installed")
    return runpy.run_path(str(EXAMPLES / name))["main"]()


@pytest.fixture
def one_torch_thread():
    """The examples' models are small: extra intra-op threads only contend on busy cores."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_torch_logistic_regression(one_torch_thread):
    import torch

    report = run_example("torch_logistic_regression.py", "torch")
    newton, trust = report["ScipyOptimizer Newton-CG"], report["MinimizeWrapper trust-ncg"]
    assert newton["success"] and trust["success"]
    assert newton["loss"] == pytest.approx(trust["loss"], rel=1e-5)
    assert newton["accuracy"] > 0.9 and newton["dtype"] == torch.float64
    assert newton["counts"][2] > 0 and trust["counts"][2] > 0  # Hessian-vector products


def test_torch_function_factory(one_torch_thread):
    report = run_example("torch_function_factory.py", "torch")
    assert report["trust-exact"] < 1e-8 and report["L-BFGS-B, output bias <= 0"] < 1e-6


def test_keras_regression():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("checked on Keras's TensorFlow backend")
    report = run_example("keras_regression.py", "keras")
    assert report["free"] < 0.005 and report["bounded"] < 0.005
    assert -0.5 <= report["bias"] <= 0.5


def test_tf1_scipy_optimizer():
    report = run_example("tf1_scipy_optimizer.py", "tensorflow")
    np.testing.assert_allclose(report["unconstrained"], [0.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(report["bounds"], [1.0, 2.0])
    np.testing.assert_allclose(report["constraints"], [1.0, 1.0], atol=1e-6)
