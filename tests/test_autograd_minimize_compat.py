"""autograd-minimize's README runs unchanged but for the import, and none of its bugs exist here."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import Bounds

from autominimize import minimize
from conftest import array_module


@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow")


def test_readme_tensorflow_examples(tf):
    def rosen_tf(x):
        return tf.reduce_sum(100.0 * (x[1:] - x[:-1] ** 2.0) ** 2.0 + (1 - x[:-1]) ** 2.0)

    res = minimize(rosen_tf, np.array([0.0, 0.0]))
    assert res.backend == "tensorflow"
    np.testing.assert_allclose(res.x, [1, 1], atol=1e-4)
    res = minimize(rosen_tf, np.array([0.0, 0.0]), method="Newton-CG", precision="float64", tol=1e-8)
    assert abs(np.mean(res.x - 1)) < 1e-7
    res = minimize(rosen_tf, np.array([0.0, 0.0]), method="trust-exact", precision="float64", tol=1e-8)
    assert abs(np.mean(res.x - 1)) < 1e-9


def test_readme_matrix_factorisation_with_float32_constant(tf):
    shape, inner_shape = (10, 15), 3
    rng = np.random.default_rng(1)
    prod = rng.random((shape[0], inner_shape)) @ rng.random((inner_shape, shape[1]))

    def mat_fac(U=None, V=None):
        return tf.reduce_mean((U @ V - tf.constant(prod, dtype=tf.float32)) ** 2)

    x0 = {"U": -rng.random((shape[0], inner_shape)), "V": rng.random((inner_shape, shape[1]))}
    with pytest.warns(UserWarning, match="embeds float32 constants, so it is computed in float32"):
        res = minimize(mat_fac, x0)
    assert res.precision == "float32" and res.fun < 1e-5
    res = minimize(mat_fac, x0, bounds=(None, 0), precision="float32")
    assert res.x["U"].max() <= 0 and res.x["V"].max() <= 0
    res = minimize(mat_fac, x0, bounds={"U": (None, 0), "V": (-1, None)}, precision="float32")
    assert res.x["U"].max() <= 0 and res.x["V"].min() >= -1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # x0 is clipped into the bounds
        res = minimize(mat_fac, x0, bounds={"U": (0, None), "V": [(0, None)] * inner_shape * shape[1]}, precision="float32")
    assert res.x["U"].min() >= 0 and res.x["V"].min() >= 0


def test_readme_torch_example():
    pytest.importorskip("torch")

    def rosen_torch(x):
        return (100.0 * (x[1:] - x[:-1] ** 2.0) ** 2.0 + (1 - x[:-1]) ** 2.0).sum()

    res = minimize(rosen_torch, np.array([0.0, 0.0]), backend="torch")
    np.testing.assert_allclose(res.x, [1, 1], atol=1e-4)


def test_constraint_written_with_framework_ops_only(framework):
    """autograd-minimize evaluated constraint values on NumPy arrays, so torch.sum crashed."""
    asarray, total = array_module(framework)

    def budget(p):
        return 1.0 - total(p["w"])  # framework-only op: fails on NumPy input for torch

    res = minimize(
        lambda p: -total(asarray(np.arange(1.0, 4.0)) * p["w"]) + total(p["w"] ** 2),
        {"w": np.zeros(3)},
        method="SLSQP",
        constraints={"type": "ineq", "fun": budget},
        backend=framework,
    )
    assert np.sum(res.x["w"]) <= 1 + 1e-8
    np.testing.assert_allclose(res.x["w"], [-1 / 6, 1 / 3, 5 / 6], atol=1e-5)


@pytest.mark.parametrize("x0", [{"a": np.zeros((2, 2)), "b": np.zeros(3)}, np.zeros((2, 3))], ids=["dict", "2-D"])
def test_hessian_methods_on_structured_x0(framework, x0):
    """autograd-minimize's JAX Hessian worked for 1-D x0 only."""
    asarray, total = array_module(framework)

    def fun(p):
        leaves = [p["a"], p["b"]] if isinstance(p, dict) else [p]
        return sum(total((leaf - 1.0) ** 2) + total((leaf - 1.0) ** 4) for leaf in leaves)

    for method in ("trust-exact", "Newton-CG"):
        res = minimize(fun, x0, method=method, backend=framework, tol=1e-10)
        leaves = res.x.values() if isinstance(res.x, dict) else [res.x]
        for leaf in leaves:
            np.testing.assert_allclose(leaf, 1.0, atol=1e-4)


def test_jac_comes_back_in_x0_structure(framework):
    asarray, total = array_module(framework)
    res = minimize(
        lambda p: total((p["U"] - 1.0) ** 2) + total(p["V"] ** 2), {"U": np.zeros((2, 2)), "V": np.ones(3)}, method="BFGS", backend=framework
    )
    assert res.jac["U"].shape == (2, 2) and res.jac["V"].shape == (3,)


def test_bounds_object_for_dict_x0():
    res = minimize(
        lambda p: ((p["a"] - 5) ** 2).sum() + ((p["b"] - 5) ** 2).sum(),
        {"a": np.zeros(2), "b": np.zeros(1)},
        bounds=Bounds(-1, 1),
        backend="numpy",
        jac=lambda p: {"a": 2 * (p["a"] - 5), "b": 2 * (p["b"] - 5)},
    )
    np.testing.assert_allclose(res.x["a"], 1.0)


def test_nelder_mead_never_builds_a_gradient_graph():
    torch = pytest.importorskip("torch")
    seen = []

    def fun(x):
        seen.append(x.requires_grad or torch.is_grad_enabled())
        return ((x - 1.0) ** 2).sum()

    res = minimize(fun, np.zeros(2), method="Nelder-Mead", backend="torch")
    assert res.njev == 0
    assert seen and not any(seen[1:])  # the first call is the backend probe, outside the solve


def test_autograd_minimize_arguments_are_accepted():
    pytest.importorskip("torch")
    res = minimize(
        lambda x: ((x - 2.0) ** 2).sum(),
        np.zeros(3),
        backend="torch",
        precision="float64",
        method="Newton-CG",
        hvp_type="vhp",
        torch_device="cpu",
        tol=1e-10,
        options={"maxiter": 50},
    )
    np.testing.assert_allclose(res.x, 2.0, atol=1e-8)
