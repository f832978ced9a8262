"""am.check_grad: autodiff or user derivatives against central differences."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch

import autominimize as am


def loss(p):
    return jnp.sum(p["w"] ** 2 * p["b"]) + jnp.sin(p["b"])


X0 = {"w": np.arange(6.0).reshape(2, 3), "b": 0.7}


def test_autodiff_agrees_with_finite_differences():
    check = am.check_grad(loss, X0)
    assert check.ok and check.source == "jax" and check.max_rel_error < 1e-7
    assert check.derivative["w"].shape == (2, 3)
    assert float(check) == pytest.approx(check.error)


def test_a_wrong_user_gradient_is_located():
    def bad(p):
        g = {"w": 2 * p["w"] * p["b"], "b": jnp.sum(p["w"] ** 2) + jnp.cos(p["b"])}
        g["w"] = g["w"].at[1, 2].add(0.5)
        return g

    check = am.check_grad(loss, X0, jac=bad)
    assert not check.ok and check.worst_leaf == "x0['w']" and check.worst_index == (1, 2)
    assert "MISMATCH" in str(check) and "x0['w'][1, 2]" in str(check)


def test_jacobians_of_vector_functions_on_torch():
    def r(x):
        return torch.stack([x[0] * x[1], torch.exp(x[1])])

    check = am.check_grad(r, torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert check.ok and check.derivative.shape == (2, 2) and check.source == "torch"


def test_numpy_needs_a_user_derivative():
    with pytest.raises(ValueError, match="no exact derivative"):
        am.check_grad(lambda x: float(np.sum(x**2)), np.ones(2), backend="numpy")
    assert am.check_grad(lambda x: float(np.sum(x**2)), np.ones(2), jac=lambda x: 2 * x).ok
