"""Regression tests: solves that once returned a wrong value without saying so."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ALL_BACKENDS, FRAMEWORKS, array_module

import autominimize as am

TARGET = np.array([1.0, -2.0, 0.5])


# -- the user's own framework code behaves the same before, during and after a solve ----------


@pytest.mark.skipif("jax" not in FRAMEWORKS, reason="needs jax")
@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B", "trust-exact", "lbfgs-native"])
def test_users_jitted_jax_function_unchanged_by_a_solve(method):
    import jax
    import jax.numpy as jnp

    def loss(x):
        return jnp.sum((x - TARGET) ** 2)

    value_and_grad = jax.jit(jax.value_and_grad(loss))
    helper = jax.jit(loss)
    before = value_and_grad(jnp.ones(3))
    assert before[0].dtype == jnp.float32

    def objective(x):  # the user's jitted function, called inside a solve
        return helper(x)

    res = am.minimize(objective, np.zeros(3), method=method)
    np.testing.assert_allclose(res.x, TARGET, atol=1e-4)
    assert res.precision == "float64"
    res = am.minimize(loss, np.zeros(3), method=method)
    np.testing.assert_allclose(res.x, TARGET, atol=1e-4)
    after = value_and_grad(jnp.ones(3))
    assert after[0].dtype == jnp.float32 and after[1].dtype == jnp.float32
    np.testing.assert_allclose(after[0], before[0])
    np.testing.assert_allclose(after[1], before[1])
    assert helper(jnp.ones(3)).dtype == jnp.float32
    assert jnp.ones(2).dtype == jnp.float32


@pytest.mark.skipif("torch" not in FRAMEWORKS, reason="needs torch")
def test_users_torch_code_unchanged_by_a_solve():
    import torch

    def loss(x):
        return torch.sum((x - torch.as_tensor(TARGET, dtype=x.dtype)) ** 2)

    before = loss(torch.ones(3))
    default = torch.get_default_dtype()
    res = am.minimize(loss, torch.zeros(3, dtype=torch.float64), method="BFGS")
    np.testing.assert_allclose(res.x.numpy(), TARGET, atol=1e-4)
    assert torch.get_default_dtype() == default
    assert torch.is_grad_enabled()
    after = loss(torch.ones(3))
    assert after.dtype == before.dtype == torch.float32
    assert float(after) == float(before)


@pytest.mark.skipif("tensorflow" not in FRAMEWORKS, reason="needs tensorflow")
def test_users_tf_function_unchanged_by_a_solve():
    import tensorflow as tf

    def loss(x):
        return tf.reduce_sum((x - tf.constant(TARGET, dtype=x.dtype)) ** 2)

    compiled = tf.function(loss)
    before = compiled(tf.ones(3))
    res = am.minimize(loss, tf.zeros(3, dtype=tf.float64), method="BFGS")
    np.testing.assert_allclose(res.x.numpy(), TARGET, atol=1e-4)
    after = compiled(tf.ones(3))
    assert after.dtype == before.dtype == tf.float32
    assert float(after) == float(before)
    assert tf.executing_eagerly()


# -- integer x0 is solved in floating point and returned as floats ---------------------------

INT_X0 = [3, -2, 5]


def _int_leaf(backend: str):
    if backend == "torch":
        import torch

        return torch.tensor(INT_X0)
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.array(INT_X0, dtype=jnp.int32)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.constant(INT_X0)
    return np.array(INT_X0)


def _like(backend: str, values, x):
    """``values`` as an array of ``x``'s framework and dtype."""
    if backend == "torch":
        import torch

        return torch.as_tensor(values, dtype=x.dtype)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.constant(values, dtype=x.dtype)
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.asarray(values, dtype=x.dtype)
    return np.asarray(values, dtype=x.dtype)


def _squares(backend: str):
    _, total = array_module(backend)

    def loss(x):
        return total((x - _like(backend, TARGET, x)) ** 2)

    return loss


def _as_numpy(leaf) -> np.ndarray:
    return np.asarray(leaf.numpy() if hasattr(leaf, "numpy") else leaf)


def _dtype_name(leaf) -> str:
    return str(leaf.dtype).removeprefix("torch.").removeprefix("<dtype: '").removesuffix("'>")


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B", "Nelder-Mead", "lbfgs-native"])
def test_integer_x0_solved_in_floating_point(backend, method):
    x0 = _int_leaf(backend)
    res = am.minimize(_squares(backend), x0, method=method, **({"options": {"xatol": 1e-8, "fatol": 1e-12}} if method == "Nelder-Mead" else {}))
    assert type(res.x) is type(x0)
    assert _dtype_name(res.x) == "float64"
    np.testing.assert_allclose(_as_numpy(res.x), TARGET, atol=1e-4)
    assert res.fun == pytest.approx(float(np.sum((_as_numpy(res.x) - TARGET) ** 2)), abs=1e-12)


@pytest.mark.parametrize("backend", [b for b in ALL_BACKENDS if b != "numpy"])
def test_integer_x0_returned_in_the_precision_that_ran(backend):
    res = am.minimize(_squares(backend), _int_leaf(backend), method="BFGS", precision="float32")
    assert _dtype_name(res.x) == "float32"
    np.testing.assert_allclose(_as_numpy(res.x), TARGET, atol=1e-3)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_dict_of_integer_leaves_least_squares(backend):
    def residuals(a, b):
        return _like(backend, [1.0, 0.0], a) * (a - 0.5) + _like(backend, [0.0, 1.0], b) * (b - 1.5)

    leaves = _int_leaf(backend)
    x0 = {"a": leaves[0], "b": leaves[1]}
    res = am.least_squares(residuals, x0)
    assert set(res.x) == {"a", "b"}
    assert _dtype_name(res.x["a"]) == "float64"
    assert float(_as_numpy(res.x["a"])) == pytest.approx(0.5, abs=1e-6)
    assert float(_as_numpy(res.x["b"])) == pytest.approx(1.5, abs=1e-6)


def test_python_int_leaves_are_returned_as_floats():
    res = am.minimize(lambda p: (p["a"] - 0.5) ** 2 + (p["b"] + 0.25) ** 2, {"a": 3, "b": -2}, method="BFGS", backend="numpy", unpack="none")
    assert type(res.x["a"]) is float and type(res.x["b"]) is float
    np.testing.assert_allclose([res.x["a"], res.x["b"]], [0.5, -0.25], atol=1e-5)


def test_a_list_of_python_ints_is_a_float_vector_as_in_scipy():
    res = am.minimize(lambda p: (p[0] - 0.5) ** 2 + (p[1] + 0.25) ** 2, [3, -2], method="BFGS", backend="numpy")
    assert isinstance(res.x, np.ndarray) and res.x.dtype == np.float64
    np.testing.assert_allclose(res.x, [0.5, -0.25], atol=1e-5)


# -- error_handling='continue': a gradient that is not finite is a failed point --------------


def _nan_gradient_above_3(backend: str):
    """100 * sum((x - 1)^2): finite everywhere, its gradient NaN where x > 3 (the NaN of the
    branch ``where`` does not select, as autodiff gives it; a NaN-returning jac for NumPy)."""
    if backend == "numpy":

        def fun(x):
            return 100.0 * np.sum((x - 1.0) ** 2)

        def jac(x):
            return np.where(x > 3, np.nan, 200.0 * (x - 1.0))

        return fun, {"jac": jac}
    if backend == "torch":
        import torch

        def fun(x):
            return 100.0 * torch.sum((x - 1.0) ** 2) + torch.sum(torch.where(x > 3, 0.0 * x, 0.0 * torch.sqrt(3.0 - x)))
    elif backend == "jax":
        import jax.numpy as jnp

        def fun(x):
            return 100.0 * jnp.sum((x - 1.0) ** 2) + jnp.sum(jnp.where(x > 3, 0.0 * x, 0.0 * jnp.sqrt(3.0 - x)))
    else:
        import tensorflow as tf

        def fun(x):
            return 100.0 * tf.reduce_sum((x - 1.0) ** 2) + tf.reduce_sum(tf.where(x > 3, 0.0 * x, 0.0 * tf.sqrt(3.0 - x)))

    return fun, {}


GRADIENT_METHODS = ["BFGS", "L-BFGS-B", "CG", "TNC", "SLSQP", "trust-constr"]


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_continue_refuses_a_gradient_that_is_not_finite_at_x0(backend, method):
    fun, extra = _nan_gradient_above_3(backend)
    with pytest.raises(ValueError, match=r"gradient of fun is not finite at x0 \(it is nan at x0\[0\]\).*error_handling='continue'"):
        am.minimize(fun, np.array([5.0, 0.0]), method=method, backend=backend, error_handling="continue", **extra)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_continue_backs_off_from_a_gradient_that_is_not_finite(backend, method):
    fun, extra = _nan_gradient_above_3(backend)
    res = am.minimize(fun, np.array([-5.0, 0.5]), method=method, backend=backend, error_handling="continue", **extra)
    x = np.asarray(res.x)
    assert np.isfinite(x).all() and np.isfinite(res.fun)
    if res.success:
        np.testing.assert_allclose(x, [1.0, 1.0], atol=1e-3)
    assert res.fun == pytest.approx(100.0 * np.sum((x - 1.0) ** 2))


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_continue_never_reports_success_when_no_step_could_be_taken(method):
    def jac(x):  # finite at x0 only
        return 2.0 * (x - 1.0) if np.array_equal(x, [3.0, 3.0]) else np.full(2, np.nan)

    res = am.minimize(lambda x: np.sum((x - 1.0) ** 2), np.array([3.0, 3.0]), jac=jac, method=method, backend="numpy", error_handling="continue")
    assert not res.success
    assert np.isfinite(res.x).all()
    assert res.fun == pytest.approx(np.sum((res.x - 1.0) ** 2)) and res.fun <= 8.0


# -- an objective without a graph is an error, not a zero gradient ----------------------------


def _torch_without_graph(kind: str):
    import torch

    if kind == "float":
        return lambda x: float(torch.sum((x - 1.0) ** 2))
    if kind == "item":
        return lambda x: torch.sum((x - 1.0) ** 2).item()
    if kind == "detach":
        return lambda x: torch.sum((x.detach() - 1.0) ** 2)
    return lambda x: torch.as_tensor(np.sum((x.detach().numpy() - 1.0) ** 2))


@pytest.mark.skipif("torch" not in FRAMEWORKS, reason="needs torch")
@pytest.mark.parametrize("kind", ["float", "item", "detach", "numpy"])
@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B", "Newton-CG", "trust-exact", "SLSQP", "lbfgs-native", "sgd"])
@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True")
def test_torch_objective_without_a_graph_is_refused(kind, method):
    import torch

    with pytest.raises(ValueError, match=r"fun's output carries no gradient with respect to the parameters.*\.item\(\)"):
        am.minimize(_torch_without_graph(kind), torch.full((2,), 3.0, dtype=torch.float64), method=method)


@pytest.mark.skipif("tensorflow" not in FRAMEWORKS, reason="needs tensorflow")
@pytest.mark.parametrize("method", ["BFGS", "trust-exact", "lbfgs-native"])
def test_tf_objective_that_does_not_depend_on_the_variables_is_refused(method):
    import tensorflow as tf

    def stopped(x):
        return tf.reduce_sum((tf.stop_gradient(x) - 1.0) ** 2)

    with pytest.raises(ValueError, match=r"fun's output carries no gradient with respect to the parameters.*tf.stop_gradient"):
        am.minimize(stopped, tf.fill([2], tf.constant(3.0, tf.float64)), method=method)


@pytest.mark.parametrize("backend", [b for b in ALL_BACKENDS if b != "numpy"])
def test_objective_ignoring_part_of_x_still_has_a_gradient(backend):
    res = am.minimize(lambda x: (x[0] - 2.0) ** 2, np.array([0.0, 5.0]), method="BFGS", backend=backend)
    np.testing.assert_allclose(np.asarray(res.x), [2.0, 5.0], atol=1e-6)


# -- an objective that writes into its input does not change the method's points ------------


def _writes_into_its_input(backend: str):
    """sum((x - 1)^2), after which it overwrites its input with 5 (as scipy allows: it passes
    a copy). Tensors are written under torch.no_grad(), where torch allows it."""
    if backend == "torch":
        import torch

        def fun(x):
            value = torch.sum((x - 1.0) ** 2)
            with torch.no_grad():
                x.fill_(5.0)
            return value

        return fun

    def fun(x):
        value = np.sum((x - 1.0) ** 2)
        x[...] = 5.0
        return value

    return fun


@pytest.mark.parametrize("backend", [b for b in ("numpy", "torch") if b in ALL_BACKENDS])
@pytest.mark.parametrize("method", ["Nelder-Mead", "Powell", "BFGS", "L-BFGS-B", "trust-exact", "SLSQP"])
def test_objective_writing_into_its_input_does_not_corrupt_the_solve(backend, method):
    fun = _writes_into_its_input(backend)
    x0 = np.array([3.0, -2.0])
    res = am.minimize(fun, x0, method=method, backend=backend, tol=1e-10)
    np.testing.assert_allclose(np.asarray(res.x), [1.0, 1.0], atol=1e-4)
    assert res.fun == pytest.approx(np.sum((np.asarray(res.x) - 1.0) ** 2), abs=1e-10)
    np.testing.assert_array_equal(x0, [3.0, -2.0])


@pytest.mark.parametrize("vectorized", [True, "rows"])
def test_vectorized_objective_writing_into_its_input_does_not_corrupt_differential_evolution(vectorized):
    def fun(x):
        value = np.sum((x - 1.0) ** 2, axis=0 if vectorized is True else -1)
        x[...] = 5.0
        return value

    res = am.differential_evolution(fun, [(-3.0, 3.0)] * 2, vectorized=vectorized, seed=1, tol=1e-10, backend="numpy")
    np.testing.assert_allclose(res.x, [1.0, 1.0], atol=1e-4)


# -- curve_fit's outputs are scipy's ----------------------------------------------------------


def _decay_for(backend: str):
    exp = {"numpy": np.exp}
    if backend == "torch":
        import torch

        exp["torch"] = torch.exp
    elif backend == "jax":
        import jax.numpy as jnp

        exp["jax"] = jnp.exp
    elif backend == "tensorflow":
        import tensorflow as tf

        exp["tensorflow"] = tf.exp
    return lambda x, a, k, c: a * exp[backend](-k * x) + c


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("p0", [[1.0, 1.0, 0.0], (1, 1, 0), [np.float64(1.0), 1.0, 0.0]], ids=["list", "int-tuple", "numpy-scalars"])
def test_curve_fit_popt_is_an_ndarray_for_an_array_like_p0(backend, p0):
    import scipy.optimize as so

    x = np.linspace(0, 4, 30)
    y = 3.0 * np.exp(-0.7 * x) + 0.5 + 0.01 * np.sin(7 * x)
    popt, pcov = am.curve_fit(_decay_for(backend), x, y, p0=p0, backend=backend)
    expected, expected_cov = so.curve_fit(_decay_for("numpy"), x, y, p0=p0)
    assert type(popt) is np.ndarray and popt.dtype == np.float64 and popt.shape == (3,)
    np.testing.assert_allclose(popt * 2, expected * 2, rtol=1e-6)
    assert type(pcov) is np.ndarray and pcov.shape == (3, 3)
    np.testing.assert_allclose(pcov, expected_cov, rtol=1e-4)
    popt, pcov, info, message, ier = am.curve_fit(_decay_for(backend), x, y, p0=p0, backend=backend, full_output=True)
    assert type(popt) is np.ndarray and isinstance(message, str) and isinstance(ier, int)
    assert type(info["fvec"]) is np.ndarray and isinstance(info["nfev"], int)


@pytest.mark.skipif("torch" not in FRAMEWORKS, reason="needs torch")
def test_curve_fit_popt_keeps_a_tensor_p0s_type():
    import torch

    x = np.linspace(0, 4, 30)
    y = 3.0 * np.exp(-0.7 * x) + 0.5
    popt, _ = am.curve_fit(_decay_for("torch"), x, y, p0=torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64))
    assert isinstance(popt, torch.Tensor)
    np.testing.assert_allclose(popt.numpy(), [3.0, 0.7, 0.5], atol=1e-6)
