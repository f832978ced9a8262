"""Regression tests from a third trial: errors that do not say what is wrong, options accepted
and then not honoured, and outputs whose type costs the solve its precision."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from conftest import FRAMEWORKS

import autominimize as am

X3 = np.array([3.0, -2.0])


# -- an objective of integer or half-precision values: warned once, naming fun and the type ---


def _cast_objective(backend: str, dtype: str):
    """Σ x² computed in float64 and returned cast to ``dtype``, written with ``backend``'s arrays."""
    if backend == "torch":
        import torch

        return torch.tensor(X3), lambda x: (x**2).sum().to(getattr(torch, dtype))
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.asarray(X3), lambda x: jnp.sum(x**2).astype(getattr(jnp, dtype))
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.constant(X3), lambda x: tf.cast(tf.reduce_sum(x**2), getattr(tf, dtype))
    import ml_dtypes

    np_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    return X3, lambda x: np.sum(x**2).astype(np_dtype)


COARSE = [
    ("int64", r"fun returned int(64|32) values; integers change in steps of 1"),  # JAX without x64 makes it int32
    ("int32", r"fun returned int32 values; integers change in steps of 1"),
    ("float16", r"fun returned float16 values, which resolve about 1e-03 relative"),
    ("bfloat16", r"fun returned bfloat16 values, which resolve about 8e-03 relative"),
]


#: TensorFlow's reduce_sum has no bfloat16 kernel on CPU
COARSE_CASES = [(backend, *case) for backend in ["numpy"] + FRAMEWORKS for case in COARSE if (backend, case[0]) != ("tensorflow", "bfloat16")]


@pytest.mark.parametrize(("backend", "dtype", "message"), COARSE_CASES, ids=[f"{case[0]}-{case[1]}" for case in COARSE_CASES])
def test_an_objective_of_coarse_values_is_warned_once(backend, dtype, message):
    x0, fun = _cast_objective(backend, dtype)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            am.minimize(fun, x0, method="Nelder-Mead", backend=backend, options={"maxiter": 30})
        except ValueError:
            pass  # a framework refuses some of them later on; the warning came first
    coarse = [str(w.message) for w in caught if "steps of 1" in str(w.message) or "resolve about" in str(w.message)]
    assert len(coarse) == 1, coarse
    assert re.search(message, coarse[0]), coarse[0]
    assert "Return float64 or float32 values" in coarse[0]


def test_a_python_int_objective_is_warned_and_float_ones_are_not():
    with pytest.warns(UserWarning, match=r"fun returned int values; integers change in steps of 1"):
        am.minimize(lambda x: int(np.sum(x**2)), X3, method="Nelder-Mead", backend="numpy", options={"maxiter": 20})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        am.minimize(lambda x: np.float32(np.sum(x**2)), X3, method="BFGS", backend="numpy", jac=lambda x: 2 * x)
        am.minimize(lambda x: float(np.sum(x**2)), X3, method="BFGS", backend="numpy")


# -- a NaN reaching a trust-region method's gradient or Hessian: the project's message ---------


def _sqrt_objective(backend: str):
    """Σ sqrt(x) + x², whose derivatives are infinite or NaN at x = 0, written with ``backend``."""
    if backend == "torch":
        import torch

        return lambda x: torch.sqrt(x).sum() + (x**2).sum(), torch.tensor([0.0, 1.0], dtype=torch.float64)
    if backend == "jax":
        import jax.numpy as jnp

        return lambda x: jnp.sum(jnp.sqrt(x)) + jnp.sum(x**2), np.array([0.0, 1.0])
    if backend == "tensorflow":
        import tensorflow as tf

        return lambda x: tf.reduce_sum(tf.sqrt(x)) + tf.reduce_sum(x**2), tf.constant([0.0, 1.0], dtype=tf.float64)
    raise ValueError(backend)


TRUST = ["trust-exact", "trust-ncg", "trust-krylov", "dogleg"]


@pytest.mark.parametrize("method", TRUST)
@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_a_nan_in_a_trust_region_methods_derivatives_names_the_function_and_the_point(method, backend):
    fun, x0 = _sqrt_objective(backend)
    with pytest.raises(
        ValueError, match=rf"the gradient of fun is not finite .*: it is (inf|nan) at x0\[0\]\. method='{method}' needs a finite"
    ) as info:
        am.minimize(fun, x0, method=method, backend=backend)
    assert "error_handling='continue'" in str(info.value)
    np.testing.assert_array_equal(np.asarray(info.value.autominimize_x), [0.0, 1.0])


@pytest.mark.parametrize("method", ["trust-exact", "dogleg"])
def test_a_nan_in_a_user_hess_names_hess_and_the_entry(method):
    with pytest.raises(ValueError, match=r"the user-supplied hess is not finite .*: it is nan at row x0\[1\], column x0\[0\]\. method=") as info:
        am.minimize(
            lambda x: float(np.sum(x**2)),
            np.ones(2),
            method=method,
            backend="numpy",
            jac=lambda x: 2 * x,
            hess=lambda x: np.array([[2.0, 0.0], [np.nan, 2.0]]),
        )
    np.testing.assert_array_equal(info.value.autominimize_x, [1.0, 1.0])


def test_a_nan_in_a_user_hessp_names_hessp():
    with pytest.raises(ValueError, match=r"the user-supplied hessp is not finite .*: it is nan at x0\[0\]"):
        am.minimize(
            lambda x: float(np.sum(x**2)), np.ones(2), method="trust-ncg", backend="numpy", jac=lambda x: 2 * x, hessp=lambda x, p: p * np.nan
        )


def test_under_continue_a_trust_region_method_steps_back_from_a_nan_hessian():
    def hess(x):
        return np.full((2, 2), np.nan) if x[0] > 2.5 else 2.0 * np.eye(2)  # NaN at x0

    res = am.minimize(
        lambda x: float(np.sum((x - 1.0) ** 2)),
        np.ones(2) * 3,
        method="trust-exact",
        backend="numpy",
        jac=lambda x: 2 * (x - 1.0),
        hess=hess,
        error_handling="continue",
    )
    np.testing.assert_allclose(res.x, [1.0, 1.0], atol=1e-6)


# -- am.batched_curve_fit: xdata of a shape f cannot fit -----------------------------------------


def _line(backend: str):
    if backend == "torch":
        import torch

        return lambda x, a, b: a * torch.as_tensor(x) + b
    if backend == "jax":
        import jax.numpy as jnp

        return lambda x, a, b: a * jnp.asarray(x) + b
    return lambda x, a, b: a * x + b


BATCHED_BACKENDS = ["numpy"] + [name for name in FRAMEWORKS if name != "tensorflow"]


#: vectorized=True is for NumPy models only
BACKEND_MODES = [(backend, False) for backend in BATCHED_BACKENDS] + [("numpy", True)]


@pytest.mark.parametrize(("backend", "vectorized"), BACKEND_MODES, ids=[f"{b}-{'vectorized' if v else 'member'}" for b, v in BACKEND_MODES])
@pytest.mark.parametrize(
    "xdata, got", [(np.arange(5.0), r"\(5,\)"), (np.ones((2, 3)), r"\(2, 3\)"), (np.ones((3, 5)), r"\(3, 5\)")], ids=["(5,)", "(2, 3)", "(B, 5)"]
)
def test_batched_curve_fit_xdata_of_another_shape_is_named(backend, vectorized, xdata, got):
    if vectorized and xdata.shape == (2, 3):  # a * x fails in f itself: the error says what f was given
        with pytest.raises(ValueError, match="could not be broadcast") as info:
            am.batched_curve_fit(_line(backend), xdata, np.ones((3, 4)), p0=[1.0, 0.0], backend=backend, vectorized=True)
        assert "autominimize: raised by f(xdata, ...) given the 3 members' xdata stacked, shape (3, 2, 3)" in info.value.__notes__
        return
    with pytest.raises(
        ValueError,
        match=r"xdata must be what f reads to return one value per point of a member: an array of shape \(4,\) or \(k, 4\) .*; got xdata of shape "
        + got,
    ):
        am.batched_curve_fit(_line(backend), xdata, np.ones((3, 4)), p0=[1.0, 0.0], backend=backend, vectorized=vectorized)


@pytest.mark.parametrize("backend", BATCHED_BACKENDS)
def test_batched_curve_fit_keeps_every_xdata_form_scipy_accepts(backend):
    t = np.linspace(0.0, 1.0, 6)
    truth = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]])  # three members: a (2, m) xdata is not ydata's shape
    two = np.stack([t, t**2])  # (k, m): two independent variables
    y2 = truth @ two
    plane = (lambda x, a, b: a * x[0] + b * x[1]) if backend == "numpy" else _line_of(backend)
    res = am.batched_curve_fit(plane, two, y2, p0=[0.0, 0.0], backend=backend)
    np.testing.assert_allclose(np.stack([np.asarray(v) for v in res.x], axis=1), truth, atol=1e-8)
    edges = np.linspace(0.0, 1.0, 7)  # m + 1 bin edges for m bins: f returns m values
    y_bins = np.stack([a * np.diff(edges**2) for a in (1.0, 2.0)])
    res = am.batched_curve_fit(lambda e, a: a * (e[1:] ** 2 - e[:-1] ** 2), edges, y_bins, p0=[0.5], backend="numpy")
    np.testing.assert_allclose(res.x[0], [1.0, 2.0], atol=1e-8)
    res = am.batched_curve_fit(lambda x, a, b: a * x + b, np.stack([t, 2 * t]), np.stack([t, 4 * t]), p0=[1.0, 0.0], backend="numpy")
    np.testing.assert_allclose(res.x[0], [1.0, 2.0], atol=1e-8)  # one xdata per member


def _line_of(backend: str):
    if backend == "torch":
        import torch

        return lambda x, a, b: a * torch.as_tensor(x)[0] + b * torch.as_tensor(x)[1]
    import jax.numpy as jnp

    return lambda x, a, b: a * jnp.asarray(x)[0] + b * jnp.asarray(x)[1]


# -- a table of malformed calls the earlier tables did not cover --------------------------------


def _quad(x):
    return float(np.sum((x - 1.0) ** 2))


X = np.zeros(2)
T = np.arange(3.0)


def _mini(**kwargs):
    return lambda: am.minimize(_quad, X, **{"backend": "numpy", **kwargs})


def _line_fit(**kwargs):
    return lambda: am.curve_fit(lambda x, a: a * x, T, 2 * T, p0=[1.0], **kwargs)


def _batched_fit(**kwargs):
    return lambda: am.batched_curve_fit(lambda x, a: a * x, T, np.ones((2, 3)), **{"p0": [1.0], **kwargs})


def _keras_fit(**kwargs):
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input(shape=(1,)), keras.layers.Dense(1)])
    return am.keras.fit(model, "mse", np.ones((3, 1)), np.ones(3), **kwargs)


def _torch_scipy_optimizer(options):
    torch = pytest.importorskip("torch")
    w = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    return am.torch.ScipyOptimizer([w], method="BFGS", options=options)


def _tf_interface(options):
    tf = pytest.importorskip("tensorflow")
    v = tf.Variable([1.0, 2.0], dtype=tf.float64)
    return am.tf.ScipyOptimizerInterface(lambda: tf.reduce_sum(v**2), var_list=[v], options=options)


CASES = [
    ("precision a number", _mini(precision=64), ValueError, r"precision=64 is not supported; use 'float64' \(default\) or 'float32'"),
    ("precision an object", _mini(precision=object()), ValueError, r"precision=<object object at .*> is not supported; use 'float64'"),
    ("options key None", _mini(method="BFGS", options={None: 1}), TypeError, r"options' keys must be option names \(str\); got None \(NoneType\)"),
    ("options key a number", _mini(method="BFGS", options={3: 1}), TypeError, r"options' keys must be option names \(str\); got 3 \(int\)"),
    (
        "ftol text",
        _mini(method="L-BFGS-B", options={"ftol": "1"}),
        TypeError,
        r"options\['ftol'\] must be a finite non-negative number; got '1' \(str\)",
    ),
    ("eps text", _mini(method="BFGS", options={"eps": "1"}), TypeError, r"options\['eps'\] must be a finite non-negative number; got '1' \(str\)"),
    (
        "gtol a bool",
        _mini(method="BFGS", options={"gtol": True}),
        TypeError,
        r"options\['gtol'\] must be a finite non-negative number; got True \(bool\)",
    ),
    ("maxcor zero", _mini(method="L-BFGS-B", options={"maxcor": 0}), ValueError, r"options\['maxcor'\] must be a positive integer; got 0"),
    (
        "curve_fit sigma zero",
        _line_fit(sigma=np.array([1.0, 0.0, 1.0])),
        ValueError,
        r"sigma must be positive \(one standard deviation per point\); got 0\.0 at index 1",
    ),
    (
        "curve_fit unknown keyword",
        _line_fit(maxfevv=3),
        TypeError,
        r"curve_fit got unknown keyword argument\(s\) \['maxfevv'\]; did you mean 'maxfev'\? Accepted: maxfev, ftol, xtol",
    ),
    ("batched ftol text", _batched_fit(ftol="1"), TypeError, r"ftol must be a finite non-negative number; got '1' \(str\)"),
    ("batched xtol NaN", _batched_fit(xtol=float("nan")), ValueError, r"xtol must be a finite non-negative number; got nan"),
    ("batched max_nfev text", _batched_fit(max_nfev="9"), TypeError, r"max_nfev must be a non-negative integer; got '9' \(str\)"),
    ("batched vectorized text", _batched_fit(vectorized="yes"), TypeError, r"vectorized must be True or False; got 'yes' \(str\)"),
    (
        "batched p0 rows of another count",
        _batched_fit(p0=np.ones((3, 1))),
        ValueError,
        r"p0 has 3 rows but ydata has 2 members; give one start for all \(shape \(n,\)\) or one per member \(shape \(2, n\)\)",
    ),
    ("batched_least_squares fun not callable", lambda: am.batched_least_squares(3, np.ones((2, 1))), TypeError, r"fun must be callable; got int"),
    (
        "iterate unknown keyword",
        lambda: list(am.iterate(_quad, X, method="BFGS", backend="numpy", maxiterr=3)),
        TypeError,
        r"am.iterate got unknown keyword argument\(s\) \['maxiterr'\]\. Accepted: fun, x0",
    ),
    (
        "keras.fit unknown keyword",
        lambda: _keras_fit(epochss=3),
        TypeError,
        r"am.keras.fit got unknown keyword argument\(s\) \['epochss'\]; did you mean 'epochs'\? Accepted: jac",
    ),
    (
        "torch ScipyOptimizer maxiter negative",
        lambda: _torch_scipy_optimizer({"maxiter": -1}),
        ValueError,
        r"options\['maxiter'\] must be a non-negative integer; got -1",
    ),
    (
        "tf ScipyOptimizerInterface gtol text",
        lambda: _tf_interface({"gtol": "a"}),
        TypeError,
        r"options\['gtol'\] must be a finite non-negative number; got 'a' \(str\)",
    ),
    (
        "least_squares loss unknown",
        lambda: am.least_squares(lambda x: x - 1.0, X, loss="l1", backend="numpy"),
        ValueError,
        r"loss='l1' is not a loss of least_squares; use one of \('linear', 'huber', 'soft_l1', 'cauchy', 'arctan'\) or a callable rho\(z\)",
    ),
    (
        "least_squares loss of another shape",
        lambda: am.least_squares(lambda x: x - 1.0, X, loss=lambda z: z, backend="numpy"),
        ValueError,
        r"loss must return rho\(z\), rho'\(z\) and rho''\(z\) stacked, an array of shape \(3, 2\) for z of shape \(2,\); got shape \(2,\)",
    ),
    (
        "hessian-free with a jac",
        _mini(method="hessian-free", jac=lambda x: 2 * (x - 1.0)),
        ValueError,
        r"method='hessian-free' needs Hessian-vector products, .* a gradient given by jac= gives none\. Leave jac unset",
    ),
    (
        "least_squares lm with tr_solver",
        lambda: am.least_squares(lambda x: x - 1.0, X, method="lm", tr_solver="lsmr", backend="numpy"),
        ValueError,
        r"tr_solver and tr_options are for method='trf' and 'dogbox'; method='lm' \(MINPACK\) takes neither",
    ),
    (
        "least_squares tr_options for the exact solver",
        lambda: am.least_squares(lambda x: x - 1.0, X, tr_solver="exact", tr_options={"regularize": True}, backend="numpy"),
        ValueError,
        r"tr_options is for tr_solver='lsmr' .*; tr_solver='exact' takes none",
    ),
    ("check_grad rtol text", lambda: am.check_grad(_quad, X, rtol="1"), TypeError, r"rtol must be a finite non-negative number; got '1' \(str\)"),
]


@pytest.mark.parametrize("call, error, message", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_malformed_call_names_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


def _optim_update(grads, params):
    sgd = am.optim.sgd(lr=0.1)
    return lambda: sgd.update(grads, sgd.init(params), params)


OPTIM_CASES = [
    (
        "grads of another shape",
        _optim_update(np.ones(3), np.zeros(2)),
        r"grads must be an array of its parameter's shape \(2,\); got .* of shape \(3,\)",
    ),
    ("grads a string", _optim_update("g", np.zeros(2)), r"grads must be an array of its parameter's shape \(2,\); got 'g' of shape \(\)"),
    (
        "grads of another structure",
        _optim_update({"a": np.ones(2)}, {"b": np.zeros(2)}),
        r"grads must have the structure of params, with leaves \[\"grads\['b'\]\"\]; got \{'a': ",
    ),
    (
        "grads leaf of another shape",
        _optim_update({"a": np.ones(3)}, {"a": np.zeros(2)}),
        r"grads\['a'\] must be an array of its parameter's shape \(2,\)",
    ),
    ("params None", lambda: am.optim.sgd(lr=0.1).init(None), r"params must be an array or a structure of arrays \(NumPy, JAX or torch\); got None"),
]


@pytest.mark.parametrize("call, message", [case[1:] for case in OPTIM_CASES], ids=[case[0] for case in OPTIM_CASES])
def test_optim_updates_name_grads_and_params(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# -- scipy's finite-difference steps: honoured where scipy would take them, refused elsewhere ----


@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B", "CG", "TNC", "SLSQP"])
@pytest.mark.parametrize("options", [{"eps": 0.1}, {"finite_diff_rel_step": 0.1}], ids=["eps", "finite_diff_rel_step"])
def test_step_options_on_numpy_difference_as_scipy_does(method, options):
    import scipy.optimize as so

    def recorded(points):
        def fun(x):
            points.append(np.array(x))
            return float(np.sum((x - 1.0) ** 2))

        return fun

    ours, theirs = [], []
    res = am.minimize(recorded(ours), np.full(2, 2.0), method=method, backend="numpy", options=options)
    reference = so.minimize(
        recorded(theirs), np.full(2, 2.0), method=method, options=options, jac="2-point" if "finite_diff_rel_step" in options else None
    )
    np.testing.assert_array_equal(ours[1], theirs[1])
    assert ours[1][0] == pytest.approx(2.1 if "eps" in options else 2.2)
    np.testing.assert_allclose(res.x, reference.x, rtol=1e-12)  # a step of 0.1 biases both alike


def _torch_quad():
    import torch

    return lambda x: ((x - 1.0) ** 2).sum(), torch.zeros(2, dtype=torch.float64)


STEP_REFUSED = [
    (
        "user jac",
        lambda: am.minimize(_quad, X, method="BFGS", backend="numpy", jac=lambda x: 2 * (x - 1), options={"eps": 0.1}),
        r"the one your jac returns",
    ),
    (
        "Newton-CG on NumPy",
        lambda: am.minimize(_quad, X, method="Newton-CG", backend="numpy", options={"eps": 0.1}),
        r"autominimize's own finite differences",
    ),
    ("torch autodiff", lambda: am.minimize(*_torch_quad(), method="L-BFGS-B", options={"finite_diff_rel_step": 0.1}), r"exact \(torch autodiff\)"),
]


@pytest.mark.parametrize("call, source", [case[1:] for case in STEP_REFUSED], ids=[case[0] for case in STEP_REFUSED])
def test_step_options_scipy_would_ignore_are_refused(call, source):
    if "torch" in source and "torch" not in FRAMEWORKS:
        pytest.skip("needs torch")
    with pytest.raises(
        ValueError,
        match=rf"options\['(eps|finite_diff_rel_step)'\] is the step of scipy's finite differences, which this solve does not take: the gradient is {source}",
    ):
        call()


# -- am.plot ---------------------------------------------------------------------------------------

PROFILE_ROW = {"problem": "rosen", "solver": "BFGS", "seconds": 1.0}


def _result():
    return am.minimize(_quad, np.zeros(3), method="BFGS", backend="numpy")


PLOT_CASES = [
    (
        "criterion log_scale text",
        lambda: am.plot.criterion(_result(), log_scale="no"),
        TypeError,
        r"log_scale must be True or False; got 'no' \(str\)",
    ),
    ("params max_lines zero", lambda: am.plot.params(_result(), max_lines=0), ValueError, r"max_lines must be a positive integer"),
    (
        "params max_lines text",
        lambda: am.plot.params(_result(), max_lines="3"),
        TypeError,
        r"max_lines must be a non-negative integer; got '3' \(str\)",
    ),
    (
        "profile row a number",
        lambda: am.plot.profile([PROFILE_ROW, 2]),
        ValueError,
        r"rows\[1\] must be a mapping with keys 'problem', 'solver' and 'seconds'; got 2",
    ),
    (
        "profile row without solver",
        lambda: am.plot.profile([{"seconds": 1.0}]),
        ValueError,
        r"rows\[0\] must be a mapping with keys 'problem', 'solver'",
    ),
    (
        "profile measure in no row",
        lambda: am.plot.profile([PROFILE_ROW], measure="secs"),
        ValueError,
        r"measure='secs' is in none of the rows; their keys are \['problem', 'seconds', 'solver'\]",
    ),
    ("profile tau_max below one", lambda: am.plot.profile([PROFILE_ROW], tau_max=0.5), ValueError, r"tau_max must be a number above 1 .*; got 0.5"),
]


@pytest.mark.parametrize("call, error, message", [case[1:] for case in PLOT_CASES], ids=[case[0] for case in PLOT_CASES])
def test_plot_arguments_are_named(call, error, message):
    pytest.importorskip("matplotlib")
    with pytest.raises(error, match=message):
        call()
