"""Parameter structures: any nesting in, the same structure and array types out."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest

import autominimize as am
from autominimize.calling import resolve_unpack
from autominimize.params import ParamSpec
from conftest import FRAMEWORKS, array_module

Pair = namedtuple("Pair", "a b")


def test_round_trip_of_nested_structure():
    x0 = {"w": [np.ones((2, 3)), (1.5, np.float32(2.0))], "p": Pair(np.arange(3), np.zeros(()))}
    spec = ParamSpec.from_tree(x0)
    assert spec.size == 6 + 2 + 3 + 1
    flat = spec.flatten(x0)
    back = spec.restore(flat)
    assert isinstance(back["p"], Pair)
    assert isinstance(back["w"][1], tuple) and back["w"][1][0] == 1.5 and isinstance(back["w"][1][0], float)
    assert back["w"][1][1].dtype == np.float32
    assert back["p"].a.dtype == np.float64  # integer leaves come back as float64
    np.testing.assert_array_equal(spec.flatten(back), flat)


def test_matrix_factorisation_with_dict_x0_and_bounds():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(10, 3)) @ rng.normal(size=(3, 15))

    def loss(U, V):
        return ((U @ V - target) ** 2).mean()

    x0 = {"U": rng.normal(size=(10, 3)), "V": rng.normal(size=(3, 15))}
    res = am.minimize(loss, x0, method="L-BFGS-B", backend="jax" if "jax" in FRAMEWORKS else "numpy")
    assert set(res.x) == {"U", "V"} and res.x["U"].shape == (10, 3) and res.x["V"].shape == (3, 15)
    assert res.fun < 1e-8
    assert res.jac["U"].shape == (10, 3)
    with pytest.warns(
        UserWarning,
        match=r"x0 is outside the bounds at x0\['U'\] \(\d+ of 30 elements, first at \[\d, \d\]\), x0\['V'\] \(\d+ of 45 elements, first at \[\d, \d+\]\); it was clipped",
    ):
        bounded = am.minimize(
            loss, x0, method="L-BFGS-B", bounds={"U": (None, 0), "V": (-1, None)}, backend="jax" if "jax" in FRAMEWORKS else "numpy"
        )
    assert np.all(bounded.x["U"] <= 0) and np.all(bounded.x["V"] >= -1)
    assert bounded.fun > res.fun


@pytest.mark.parametrize("unsorted", [{"b": np.zeros(3), "a": np.zeros((2, 2))}])
def test_dict_keys_out_of_sorted_order_get_the_right_gradient(framework, unsorted):
    """autograd-minimize on JAX returned gradients in sorted-key order (wrong)."""
    asarray, total = array_module(framework)
    target_b, target_a = np.arange(3.0), np.arange(4.0).reshape(2, 2)

    def fun(p):
        return total((p["b"] - asarray(target_b)) ** 2) + 10 * total((p["a"] - asarray(target_a)) ** 2)

    res = am.minimize(fun, unsorted, method="BFGS", backend=framework)
    np.testing.assert_allclose(res.x["b"], target_b, atol=1e-6)
    np.testing.assert_allclose(res.x["a"], target_a, atol=1e-6)


def test_framework_tensors_come_back_as_the_same_type(framework):
    asarray, total = array_module(framework)
    if framework == "torch":
        import torch

        x0 = {"w": torch.zeros(3, dtype=torch.float32)}
    else:
        x0 = {"w": asarray(np.zeros(3, dtype=np.float32))}
    res = am.minimize(lambda p: total((p["w"] - 2.0) ** 2), x0, method="L-BFGS-B")
    assert res.backend == framework
    assert type(res.x["w"]) is type(x0["w"]) or framework == "tensorflow"
    assert "float32" in str(res.x["w"].dtype)
    np.testing.assert_allclose(np.asarray(res.x["w"]), 2.0, atol=1e-5)


def test_scalar_and_0d_x0():
    res = am.minimize(lambda x: (x - 3.0) ** 2, 0.0, method="BFGS", backend="numpy", jac=lambda x: 2 * (x - 3.0))
    assert isinstance(res.x, float) and abs(res.x - 3.0) < 1e-6


def test_unpack_rule():
    def two(U, V):
        return 0.0

    assert resolve_unpack(two, {"U": 1.0, "V": 2.0}, "auto") == "kwargs"
    assert resolve_unpack(two, [1.0, 2.0], "auto") == "args"
    assert resolve_unpack(lambda p: 0.0, {"U": 1.0}, "auto") == "none"
    assert resolve_unpack(lambda p: 0.0, [1.0, 2.0], "auto") == "none"
    assert resolve_unpack(lambda U, V: 0.0, (1.0, 2.0), "auto") == "none"  # tuples stay whole
    assert resolve_unpack(lambda x: 0.0, {"x": 1.0}, "none") == "none"
    with pytest.raises(ValueError, match="unpack='spread' is not one of"):
        resolve_unpack(two, [1.0], "spread")


def test_list_x0_spread_over_positional_parameters():
    res = am.minimize(lambda a, b: (a - 1.0) ** 2 + (b + 2.0) ** 2, [0.0, 0.0], backend="numpy", jac=lambda a, b: [2 * (a - 1.0), 2 * (b + 2.0)])
    assert isinstance(res.x, list)
    np.testing.assert_allclose(res.x, [1.0, -2.0], atol=1e-6)


def test_args_are_passed_after_the_parameters():
    res = am.minimize(
        lambda x, c: ((x - c) ** 2).sum(),
        np.zeros(2),
        args=(np.array([1.0, 2.0]),),
        method="L-BFGS-B",
        backend="jax" if "jax" in FRAMEWORKS else "numpy",
    )
    np.testing.assert_allclose(res.x, [1.0, 2.0], atol=1e-6)


def test_jax_registered_pytrees_such_as_equinox_modules_are_parameters():
    eqx = pytest.importorskip("equinox")
    jax = pytest.importorskip("jax")
    jnp = jax.numpy

    class Linear(eqx.Module):
        w: jax.Array
        b: jax.Array

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.25
    res = am.minimize(lambda m: jnp.mean((X @ m.w + m.b - y) ** 2), Linear(jnp.zeros(3), jnp.zeros(())), method="BFGS")
    assert isinstance(res.x, Linear)
    np.testing.assert_allclose(np.asarray(res.x.w), [1.0, -2.0, 0.5], atol=1e-4)
    assert abs(float(res.x.b) - 0.25) < 1e-4
