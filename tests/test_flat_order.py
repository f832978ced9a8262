"""One flat order: x0's own (a dict's insertion order) for every flat-order input and output.

Each test solves a problem written with a dict x0 whose keys are out of sorted order,
``{"z": (2,), "a": ()}``, and the same problem written with an array x0 ``[z0, z1, a]``: flat
bounds, a ``LinearConstraint``'s columns, ``hess_inv``, ``pcov``, ``res.jac``'s columns and the
rows of a dict of residuals must agree between the two.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize as so
from conftest import ALL_BACKENDS, FRAMEWORKS, array_module

import autominimize as am

WEIGHTS = np.array([1.0, 2.0])
CENTER = np.array([1.0, -2.0])


def _problem(backend: str):
    """(dict x0, array x0, f(z, a), f(v)) for ``backend``; the objective couples z[0] and a."""
    asarray, total = array_module(backend)

    def objective(z, a):
        return total(asarray(WEIGHTS) * (z - asarray(CENTER)) ** 2) + 4.0 * (a - 3.0) ** 2 + z[0] * a

    def flat_objective(v):
        return objective(v[:2], v[2])

    x0 = {"z": asarray(np.zeros(2)), "a": asarray(np.float64(0.5))}
    return x0, asarray(np.array([0.0, 0.0, 0.5])), objective, flat_objective


def _flat(x) -> np.ndarray:
    """[z0, z1, a] of a dict result."""
    return np.concatenate([np.ravel(np.asarray(x["z"])), np.ravel(np.asarray(x["a"]))])


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_linear_constraint_columns_follow_x0s_order(backend):
    x0, x0_array, objective, flat_objective = _problem(backend)
    at_most_one = so.LinearConstraint([[0.0, 0.0, 1.0]], -np.inf, 1.0)  # the third column: a <= 1
    res = am.minimize(objective, x0, method="SLSQP", constraints=at_most_one, precision="float64", tol=1e-12)
    reference = am.minimize(flat_objective, x0_array, method="SLSQP", constraints=at_most_one, precision="float64", tol=1e-12)
    assert float(np.asarray(res.x["a"])) == pytest.approx(1.0, abs=1e-8)
    np.testing.assert_allclose(_flat(res.x), np.asarray(reference.x), atol=1e-8)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_bfgs_hess_inv_rows_follow_x0s_order(backend):
    x0, x0_array, objective, flat_objective = _problem(backend)
    res = am.minimize(objective, x0, method="BFGS", precision="float64")
    reference = am.minimize(flat_objective, x0_array, method="BFGS", precision="float64")
    np.testing.assert_allclose(res.hess_inv, reference.hess_inv, rtol=1e-6, atol=1e-10)
    hessian = np.array([[2.0, 0.0, 1.0], [0.0, 4.0, 0.0], [1.0, 0.0, 8.0]])
    np.testing.assert_allclose(np.diag(res.hess_inv), np.diag(np.linalg.inv(hessian)), rtol=0.1)


def _exp(backend: str):
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.exp
    if backend == "torch":
        import torch

        return torch.exp
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.exp
    return np.exp


XDATA = np.linspace(0.0, 3.0, 20)
YDATA = 2.5 * np.exp(-1.3 * XDATA) + 0.3 + 0.02 * np.sin(11 * XDATA)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_curve_fit_pcov_rows_follow_popts_order(backend):
    asarray, _ = array_module(backend)
    exp = _exp(backend)

    def model(x, k, amp, c):
        return amp * exp(-k * x) + c

    p0 = {"k": asarray(np.float64(1.0)), "amp": asarray(np.float64(1.0)), "c": asarray(np.float64(0.0))}
    popt, pcov = am.curve_fit(model, XDATA, YDATA, p0=p0, precision="float64")
    popt_array, pcov_array = am.curve_fit(model, XDATA, YDATA, p0=asarray(np.array([1.0, 1.0, 0.0])), precision="float64")
    assert list(popt) == ["k", "amp", "c"]
    np.testing.assert_allclose([float(np.asarray(v)) for v in popt.values()], np.asarray(popt_array), rtol=1e-6)
    np.testing.assert_allclose(pcov, pcov_array, rtol=1e-5)
    reference, reference_pcov = so.curve_fit(lambda x, k, amp, c: amp * np.exp(-k * x) + c, XDATA, YDATA, p0=[1.0, 1.0, 0.0])
    np.testing.assert_allclose(pcov, reference_pcov, rtol=1e-4)


@pytest.mark.skipif("jax" not in FRAMEWORKS, reason="needs jax")
def test_differentiable_curve_fit_pcov_rows_follow_popts_order():
    import jax.numpy as jnp

    def model(x, k, amp, c):
        return amp * jnp.exp(-k * x) + c

    p0 = {"k": 1.0, "amp": 1.0, "c": 0.0}
    _, pcov = am.curve_fit(model, jnp.asarray(XDATA), jnp.asarray(YDATA), p0=p0)  # JAX data: popt differentiable
    _, reference_pcov = so.curve_fit(lambda x, k, amp, c: amp * np.exp(-k * x) + c, XDATA, YDATA, p0=[1.0, 1.0, 0.0])
    np.testing.assert_allclose(np.asarray(pcov), reference_pcov, rtol=1e-4)


def _residuals(backend: str):
    """(r(z, a) as a dict written out of sorted order, r(v) as a tuple in the same order)."""
    asarray, _ = array_module(backend)

    def residuals(z, a):
        return {"pen": 3.0 * (a - 5.0) + 0.1 * z[0], "fit": asarray(WEIGHTS) * (z - asarray(CENTER)) + 0.1 * a}

    def flat_residuals(v):
        out = residuals(v[:2], v[2])
        return out["pen"], out["fit"]

    return residuals, flat_residuals


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_flat_bounds_and_least_squares_jac_follow_x0s_order(backend):
    x0, x0_array, objective, flat_objective = _problem(backend)
    residuals, flat_residuals = _residuals(backend)
    bounds = (np.full(3, -np.inf), np.array([np.inf, np.inf, 2.0]))  # the third entry: a <= 2
    res = am.least_squares(residuals, x0, bounds=bounds, precision="float64")
    reference = am.least_squares(flat_residuals, x0_array, bounds=bounds, precision="float64")
    assert float(np.asarray(res.x["a"])) == pytest.approx(2.0)
    np.testing.assert_allclose(_flat(res.x), np.asarray(reference.x), atol=1e-8)
    # rows: 'pen' then 'fit' (the output dict's order); columns: z0, z1, a (x0's order)
    np.testing.assert_allclose(res.jac, reference.jac, atol=1e-8)
    np.testing.assert_allclose(res.jac[0], [0.1, 0.0, 3.0], atol=1e-6)
    np.testing.assert_allclose(res.fun, reference.fun, atol=1e-8)

    pairs = [(None, None), (None, None), (None, 2.0)]
    res = am.minimize(objective, x0, method="L-BFGS-B", bounds=pairs, precision="float64")
    reference = am.minimize(flat_objective, x0_array, method="L-BFGS-B", bounds=pairs, precision="float64")
    assert float(np.asarray(res.x["a"])) == pytest.approx(2.0)
    np.testing.assert_allclose(_flat(res.x), np.asarray(reference.x), atol=1e-6)


@pytest.mark.skipif("jax" not in FRAMEWORKS, reason="needs jax")
def test_optim_updates_take_gradients_by_key():
    import jax
    import jax.numpy as jnp

    def loss(p):
        return jnp.sum((p["z"] - jnp.asarray(CENTER)) ** 2) + 4.0 * (p["a"] - 3.0) ** 2

    params = {"z": jnp.zeros(2), "a": jnp.asarray(0.5)}
    value_and_grad = jax.value_and_grad(loss)
    grads = value_and_grad(params)[1]
    assert list(grads) == ["a", "z"]  # jax.grad returns a dict's keys sorted
    opt = am.optim.sgd(lr=0.1)
    updates, _ = opt.update(grads, opt.init(params), params)
    assert list(updates) == ["z", "a"]
    np.testing.assert_allclose(updates["z"], -0.1 * grads["z"], rtol=1e-6)
    np.testing.assert_allclose(updates["a"], -0.1 * grads["a"], rtol=1e-6)

    opt = am.optim.lbfgs()
    state = opt.init(params)
    for _ in range(20):
        value, grads = value_and_grad(params)
        updates, state = opt.update(grads, state, params, value=value, value_and_grad_fn=value_and_grad)
        params = am.optim.apply_updates(params, updates)
    np.testing.assert_allclose(params["z"], CENTER, atol=1e-4)
    assert float(params["a"]) == pytest.approx(3.0, abs=1e-4)


def test_messages_show_x0s_structure_in_its_own_order():
    x0 = {"z": np.zeros(2), "a": 0.5}
    with pytest.raises(ValueError, match=r"structure \(PyTreeSpec\(\{'z': \*, 'a': \*\}\)\) and is not"):
        am.minimize(lambda z, a: float(np.sum(z**2) + a**2), x0, method="L-BFGS-B", bounds=[(0, 1), [(0, 1)]])


def test_the_library_flattens_only_in_its_own_namespace():
    """optree's default namespace sorts a dict's keys: a call outside params.py would bring
    that order back for whatever it flattens."""
    import re
    from pathlib import Path

    package = Path(am.__file__).parent
    calls = re.compile(r"optree\.tree_(flatten|leaves|map|structure)\w*\(")
    found = [
        f"{path.relative_to(package)}:{number}"
        for path in sorted(package.rglob("*.py"))
        if path.name != "params.py" or path.parent != package
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if calls.search(line)
    ]
    assert found == []
