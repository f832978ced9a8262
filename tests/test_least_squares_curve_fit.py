"""am.curve_fit against scipy.optimize.curve_fit."""

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize as so
import torch

import autominimize as am

RNG = np.random.default_rng(12345)
X = np.linspace(0.0, 4.0, 50)
SIGMA = 0.05 + 0.02 * X
Y = 3.0 * np.exp(-0.8 * X) + 0.4 + RNG.normal(scale=SIGMA)


def decay(x, a, k, c):
    return a * np.exp(-k * x) + c


def decay_jnp(x, a, k, c):
    return a * jnp.exp(-k * x) + c


def decay_torch(x, a, k, c):
    return a * torch.exp(-k * x) + c


@pytest.mark.parametrize("model", [decay, decay_jnp, decay_torch], ids=["numpy", "jax", "torch"])
@pytest.mark.parametrize("weighted", [False, True])
def test_agrees_with_scipy_on_a_seeded_exponential_decay(model, weighted):
    sigma = SIGMA if weighted else None
    expected, expected_cov = so.curve_fit(decay, X, Y, p0=[1.0, 1.0, 0.0], sigma=sigma)
    popt, pcov = am.curve_fit(model, X, Y, p0=[1.0, 1.0, 0.0], sigma=sigma)
    np.testing.assert_allclose(popt, expected, rtol=1e-6)
    np.testing.assert_allclose(pcov, expected_cov, rtol=1e-4)
    assert type(popt) is np.ndarray  # as scipy returns for a list p0


def test_bounds_absolute_sigma_and_covariance_matrix():
    expected, expected_cov = so.curve_fit(
        decay, X, Y, p0=[1.0, 1.0, 0.6], bounds=([0, 0, 0.5], [10, 10, 1]), sigma=np.diag(SIGMA**2), absolute_sigma=True
    )
    popt, pcov = am.curve_fit(decay_jnp, X, Y, p0=[1.0, 1.0, 0.6], bounds=([0, 0, 0.5], [10, 10, 1]), sigma=np.diag(SIGMA**2), absolute_sigma=True)
    np.testing.assert_allclose(popt, expected, rtol=1e-5)
    np.testing.assert_allclose(pcov, expected_cov, rtol=1e-3)


def test_pytree_p0_and_default_p0():
    def model(x, p):
        return p["scale"]["a"] * jnp.exp(-p["k"] * x) + p["scale"]["c"]

    popt, pcov = am.curve_fit(model, X, Y, p0={"k": 1.0, "scale": {"a": 1.0, "c": 0.0}}, method="trf")
    expected, _ = so.curve_fit(decay, X, Y, p0=[1.0, 1.0, 0.0])
    np.testing.assert_allclose([popt["scale"]["a"], popt["k"], popt["scale"]["c"]], expected, rtol=1e-6)
    assert pcov.shape == (3, 3)
    popt, _ = am.curve_fit(decay_jnp, X, Y)  # p0 = ones, one per parameter after x
    np.testing.assert_allclose(popt, expected, rtol=1e-6)


def test_user_jacobian_full_output_and_nan_policy():
    def jac(x, a, k, c):
        e = np.exp(-k * x)
        return np.stack([e, -a * x * e, np.ones_like(x)], axis=1)

    popt, pcov, info, message, status = am.curve_fit(decay, X, Y, p0=[1.0, 1.0, 0.0], jac=jac, full_output=True)
    expected, _ = so.curve_fit(decay, X, Y, p0=[1.0, 1.0, 0.0])
    np.testing.assert_allclose(popt, expected, rtol=1e-6)
    assert info["fvec"].shape == (50,) and status > 0
    y = Y.copy()
    y[3] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        am.curve_fit(decay_jnp, X, y, p0=[1.0, 1.0, 0.0])
    popt, _ = am.curve_fit(decay_jnp, X, y, p0=[1.0, 1.0, 0.0], nan_policy="omit")
    expected, _ = so.curve_fit(decay, np.delete(X, 3), np.delete(Y, 3), p0=[1.0, 1.0, 0.0])
    np.testing.assert_allclose(popt, expected, rtol=1e-6)
