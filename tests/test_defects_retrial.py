"""Regression tests from a second trial of the defect classes, on entry points the first missed."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FRAMEWORKS

import autominimize as am

needs_torch = pytest.mark.skipif("torch" not in FRAMEWORKS, reason="needs torch")
needs_tf = pytest.mark.skipif("tensorflow" not in FRAMEWORKS, reason="needs tensorflow")


# -- residuals without a graph are an error, not a zero Jacobian ------------------------------


def _torch_residuals_without_graph(kind: str):
    import torch

    if kind == "detach":
        return lambda x: x.detach() - 1.0
    if kind == "numpy":
        return lambda x: torch.as_tensor(x.detach().numpy() - 1.0)
    return lambda x: torch.stack([torch.tensor(v.item() - 1.0, dtype=torch.float64) for v in x])


@needs_torch
@pytest.mark.parametrize("kind", ["detach", "numpy", "item"])
@pytest.mark.parametrize("method", ["trf", "dogbox", "lm"])
@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True")
def test_torch_residuals_without_a_graph_are_refused(kind, method):
    import torch

    with pytest.raises(ValueError, match=r"output carries no gradient with respect to the parameters.*\.detach\(\)"):
        am.least_squares(_torch_residuals_without_graph(kind), torch.zeros(2, dtype=torch.float64), method=method)


@needs_torch
def test_torch_curve_fit_model_without_a_graph_is_refused():
    import torch

    xdata = torch.linspace(0.0, 1.0, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"output carries no gradient with respect to the parameters"):
        am.curve_fit(lambda x, a: x * a.detach(), xdata, 2.0 * xdata, p0=torch.zeros(1, dtype=torch.float64))


@needs_torch
def test_torch_residuals_partly_constant_still_fit():
    import torch

    res = am.least_squares(lambda x: torch.cat([x - 1.0, torch.ones(1, dtype=x.dtype)]), torch.zeros(2, dtype=torch.float64))
    np.testing.assert_allclose(np.asarray(res.x), [1.0, 1.0], atol=1e-8)


@needs_tf
@pytest.mark.parametrize("method", ["trf", "lm"])
def test_tf_residuals_that_do_not_depend_on_the_variables_are_refused(method):
    import tensorflow as tf

    with pytest.raises(ValueError, match=r"output carries no gradient with respect to the parameters.*tf.stop_gradient"):
        am.least_squares(lambda x: tf.stop_gradient(x) - 1.0, np.zeros(2), method=method, backend="tensorflow")


@needs_tf
@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B", "trust-constr", "SLSQP", "Newton-CG"])
@pytest.mark.parametrize("kind", ["constant", "stop_gradient"])
def test_tf_interface_loss_that_does_not_depend_on_the_variables_is_refused(method, kind):
    import tensorflow as tf

    v = tf.Variable([0.0, 0.0], dtype=tf.float64)
    loss = (lambda: tf.constant(1.0, tf.float64)) if kind == "constant" else (lambda: tf.reduce_sum((tf.stop_gradient(v) - 1.0) ** 2))
    with pytest.raises(ValueError, match=r"loss carries no gradient with respect to var_list.*tf.stop_gradient"):
        am.tf.ScipyOptimizerInterface(loss, var_list=[v], method=method).minimize()
    np.testing.assert_array_equal(v.numpy(), [0.0, 0.0])


@needs_torch
@pytest.mark.parametrize("make", ["lbfgs", "sgd"])
def test_torch_optimizer_step_without_any_gradient_is_refused(make):
    import torch

    w = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    optimizer = am.torch.Optimizer([w], getattr(am.optim, make)())

    def closure():
        optimizer.zero_grad()
        return torch.sum((w.detach() - 1.0) ** 2)  # no backward, no graph

    with pytest.raises(ValueError, match=r"no parameter has a gradient after closure\(\).*loss.backward\(\)"):
        optimizer.step(closure)


# -- a residual function's output that cannot be real residuals is named ----------------------

BACKENDS = ["numpy"] + FRAMEWORKS


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "out, message",
    [
        (lambda x: x * (1 + 1j) - 1.0, r"fun returned complex values; residuals must be real"),
        (lambda x: x[:0], r"fun returned no value \(its output is empty\)"),
        (lambda x: None, r"fun returned None, which holds no array"),
    ],
    ids=["complex", "empty", "None"],
)
def test_least_squares_output_that_is_not_real_residuals_is_refused(backend, out, message):
    if backend == "tensorflow" and "complex" in message:  # TensorFlow does not mix float64 and complex itself
        import tensorflow as tf

        def out(x):
            return tf.complex(x, x) - 1.0

    with pytest.raises(ValueError, match=message):
        am.least_squares(out, np.zeros(2), backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "model, message",
    [(lambda x, a: None, r"f returned None"), (lambda x, a: x * a * (1 + 1j), r"f returned complex values")],
    ids=["None", "complex"],
)
def test_curve_fit_model_output_that_is_not_real_is_refused(backend, model, message):
    if backend == "tensorflow" and "complex" in message:  # TensorFlow does not mix float64 and complex itself
        import tensorflow as tf

        def model(x, a):
            return tf.complex(x * a, x * a)

    with pytest.raises(ValueError, match=message):
        am.curve_fit(model, np.ones(3), np.ones(3), backend=backend)


# -- error_handling='continue': a hop onto a failing point is a failed local solve -----------


@pytest.mark.parametrize("failure", ["raise", "nan", "inf"])
def test_basinhopping_continue_survives_a_hop_onto_a_failing_point(failure):
    def fun(x):  # minimum at 5, unreachable: fun fails wherever x[0] > 3
        if x[0] > 3.0:
            if failure == "raise":
                raise RuntimeError("outside the model's domain")
            return float(failure)
        return float(np.sum((x - 5.0) ** 2))

    res = am.basinhopping(fun, np.zeros(2), niter=15, stepsize=3.0, seed=1, backend="numpy", error_handling="continue")
    x = np.asarray(res.x)
    assert np.isfinite(x).all() and x[0] <= 3.0
    assert res.fun == pytest.approx(np.sum((x - 5.0) ** 2))
    assert res.fun < 50.0  # it moved from x0


@pytest.mark.parametrize("method", ["CG", "BFGS", "L-BFGS-B", "Newton-CG", "TNC"])
@pytest.mark.parametrize("failure", ["raise", "nan"])
def test_continue_unsuccessful_solve_returns_the_best_point_evaluated(method, failure):
    values = []

    def fun(x):
        if x[0] > 3.0:
            if failure == "raise":
                raise RuntimeError("outside the model's domain")
            return np.nan
        values.append(float(np.sum((x - 5.0) ** 2)))
        return values[-1]

    res = am.minimize(fun, np.zeros(2), jac=lambda x: 2.0 * (x - 5.0), method=method, backend="numpy", error_handling="continue")
    x = np.asarray(res.x)
    assert np.isfinite(x).all() and x[0] <= 3.0
    assert res.fun == pytest.approx(np.sum((x - 5.0) ** 2))
    if not res.success:
        assert res.fun == np.nanmin(values)  # (TNC also tries points that are not finite)


# -- the user's jac writing into its input does not change the method's points --------------


@pytest.mark.parametrize("method", ["lbfgs-native", "cg-native", "BFGS", "L-BFGS-B"])
@pytest.mark.parametrize("given", ["jac", "fun-and-jac"])
def test_users_gradient_writing_into_its_input_does_not_corrupt_the_solve(method, given):
    def jac(x):
        g = 2.0 * (x - 1.0)
        x[:] = 7.0
        return g

    def fun_and_jac(x):
        f = float(np.sum((x - 1.0) ** 2))
        return f, jac(x)

    if given == "jac":
        res = am.minimize(lambda x: np.sum((x - 1.0) ** 2), np.zeros(2), jac=jac, method=method, backend="numpy")
    else:
        res = am.minimize(fun_and_jac, np.zeros(2), jac=True, method=method, backend="numpy")
    np.testing.assert_allclose(np.asarray(res.x), [1.0, 1.0], atol=1e-5)


# -- Ctrl-C in a global run with local solves carries the best point of all ------------------


@pytest.mark.parametrize("solver", ["basinhopping", "multistart"])
@pytest.mark.parametrize("after", [30, 60, 90])
def test_interrupting_a_run_of_local_solves_attaches_the_best_point(solver, after):
    calls = []

    def fun(x):
        calls.append(float(np.sum((x - 1.0) ** 2)))
        if len(calls) > after:
            raise KeyboardInterrupt
        return calls[-1]

    with pytest.raises(KeyboardInterrupt) as info:
        if solver == "basinhopping":
            am.basinhopping(fun, np.zeros(3), niter=100, seed=0, backend="numpy")
        else:
            am.multistart(fun, [(-2.0, 2.0)] * 3, n_starts=50, backend="numpy")
    best = np.asarray(info.value.autominimize_best_x)
    assert np.sum((best - 1.0) ** 2) == pytest.approx(min(calls[:after]))


# -- am.optim on integer parameters: an error, not updates truncated to zero ------------------


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "tensorflow"])
@pytest.mark.parametrize("make", ["sgd", "delta_bar_delta", "lbfgs"])
def test_optim_refuses_integer_parameters(backend, make):
    from conftest import array_module

    asarray, _ = array_module(backend)
    opt = getattr(am.optim, make)()
    params = {"w": asarray(np.array([0, 1]))}
    with pytest.raises(TypeError, match=r"params\['w'\] has dtype int.*integer parameters.*float"):
        state = opt.init(params)
        opt.update({"w": asarray(np.array([1, 1]))}, state, params, value_and_grad_fn=lambda p: (0.0, p))


# -- a one-number list x0 is a vector, as in scipy -----------------------------------------------


@pytest.mark.parametrize(
    "solve",
    [
        lambda f: am.minimize(f, [0], backend="numpy"),
        lambda f: am.minimize(f, (0.0,), method="Nelder-Mead", backend="numpy"),
        lambda f: am.differential_evolution(f, [(0, 5)], x0=[0], seed=0, backend="numpy"),
        lambda f: am.least_squares(lambda x: f(x) ** 0.5, [0], backend="numpy"),
    ],
    ids=["minimize", "nelder-mead-tuple", "differential_evolution", "least_squares"],
)
def test_a_list_of_one_number_is_a_float_vector(solve):
    seen = set()

    def f(x):
        seen.add((type(x), getattr(x, "shape", None)))
        return (x[0] - 3.0) ** 2 + 1e-12

    res = solve(f)
    assert seen == {(np.ndarray, (1,))}
    assert isinstance(res.x, np.ndarray) and res.x.dtype == np.float64 and res.x.shape == (1,)
    np.testing.assert_allclose(res.x, [3.0], atol=1e-4)


# -- malformed counts and tolerances of the global and least-squares solvers are named ----------


def _quad(x):
    return float(np.sum((x - 0.5) ** 2))


BOX = [(-1.0, 1.0)] * 2
MALFORMED = [
    (
        "DE maxiter str",
        lambda: am.differential_evolution(_quad, BOX, maxiter="5"),
        TypeError,
        r"maxiter must be a non-negative integer; got '5' \(str\)",
    ),
    ("DE popsize 0", lambda: am.differential_evolution(_quad, BOX, popsize=0), ValueError, r"popsize must be a positive integer; got 0"),
    ("DE tol str", lambda: am.differential_evolution(_quad, BOX, tol="a"), TypeError, r"tol must be a finite non-negative number; got 'a' \(str\)"),
    ("DA maxiter negative", lambda: am.dual_annealing(_quad, BOX, maxiter=-1), ValueError, r"maxiter must be a non-negative integer; got -1"),
    ("DA maxfun str", lambda: am.dual_annealing(_quad, BOX, maxfun="9"), TypeError, r"maxfun must be a non-negative integer"),
    ("BH niter str", lambda: am.basinhopping(_quad, np.zeros(2), niter="3"), TypeError, r"niter must be a non-negative integer; got '3' \(str\)"),
    ("BH T negative", lambda: am.basinhopping(_quad, np.zeros(2), niter=2, T=-1.0), ValueError, r"T must be a finite non-negative number; got -1.0"),
    (
        "BH stepsize str",
        lambda: am.basinhopping(_quad, np.zeros(2), niter=2, stepsize="a"),
        TypeError,
        r"stepsize must be a finite non-negative number",
    ),
    ("direct maxfun str", lambda: am.direct(_quad, BOX, maxfun="a"), TypeError, r"maxfun must be a non-negative integer; got 'a' \(str\)"),
    ("direct eps negative", lambda: am.direct(_quad, BOX, eps=-1.0), ValueError, r"eps must be a finite non-negative number"),
    (
        "ls max_nfev str",
        lambda: am.least_squares(lambda x: x - 1.0, np.zeros(2), max_nfev="10"),
        TypeError,
        r"max_nfev must be a non-negative integer; got '10' \(str\)",
    ),
    (
        "ls ftol str",
        lambda: am.least_squares(lambda x: x - 1.0, np.zeros(2), ftol="a"),
        TypeError,
        r"ftol must be a finite non-negative number; got 'a' \(str\)",
    ),
    (
        "ls ftol negative",
        lambda: am.least_squares(lambda x: x - 1.0, np.zeros(2), ftol=-1.0),
        ValueError,
        r"ftol must be a finite non-negative number; got -1.0",
    ),
    (
        "ls f_scale negative",
        lambda: am.least_squares(lambda x: x - 1.0, np.zeros(2), loss="huber", f_scale=-1.0),
        ValueError,
        r"f_scale must be a finite non-negative number",
    ),
    (
        "ls callback not callable",
        lambda: am.least_squares(lambda x: x - 1.0, np.zeros(2), callback=3),
        TypeError,
        r"callback must be callable; got int",
    ),
    ("iterate callback not callable", lambda: list(am.iterate(_quad, np.zeros(2), callback=3)), TypeError, r"callback must be callable; got int"),
]


@pytest.mark.parametrize("call, error, message", [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED])
def test_malformed_solver_settings_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


def _torch_optimizer_of_a_string():
    torch = pytest.importorskip("torch")
    return am.torch.Optimizer([torch.nn.Parameter(torch.zeros(2))], "lbfgs")


def _tf_interface_loss_none():
    tf = pytest.importorskip("tensorflow")
    return am.tf.ScipyOptimizerInterface(lambda: None, var_list=[tf.Variable([1.0])]).minimize()


MALFORMED_CALLS = [
    (
        "jac=True, fun returns a scalar",
        lambda: am.minimize(_quad, np.zeros(2), jac=True, method="BFGS"),
        TypeError,
        r"with jac=True, fun must return \(value, gradient\); got float",
    ),
    (
        "epochs a string",
        lambda: am.minimize(lambda x, b: _quad(x), np.zeros(2), method="sgd", data=[1, 2], epochs="2"),
        TypeError,
        r"epochs must be a non-negative integer; got '2' \(str\)",
    ),
    (
        "curve_fit model of the wrong size",
        lambda: am.curve_fit(lambda x, a: a * x, np.ones(3), np.ones(4)),
        ValueError,
        r"f returned 3 values but ydata has 4",
    ),
    (
        "torch Optimizer of a string",
        _torch_optimizer_of_a_string,
        TypeError,
        r"opt must be an am.optim transformation \(e.g. am.optim.lbfgs\(\)\); got str",
    ),
    ("tf interface loss returns None", _tf_interface_loss_none, ValueError, r"loss returned None; a scalar method needs one real number"),
]


@pytest.mark.parametrize("call, error, message", [case[1:] for case in MALFORMED_CALLS], ids=[case[0] for case in MALFORMED_CALLS])
def test_malformed_calls_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


@needs_torch
@pytest.mark.parametrize("kind", ["detach", "item", "numpy"])
@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True")
def test_batched_torch_objective_without_a_graph_is_refused(kind):
    import torch

    fun = {
        "detach": lambda x: torch.sum((x.detach() - 1.0) ** 2),
        "item": lambda x: torch.sum((x - 1.0) ** 2).item(),
        "numpy": lambda x: torch.as_tensor(np.sum((x.detach().numpy() - 1.0) ** 2)),
    }[kind]
    with pytest.raises(ValueError, match=r"fun's output carries no gradient with respect to the parameters"):
        am.minimize(fun, torch.zeros(3, 2, dtype=torch.float64), method="lbfgs-native", batch=True)


@needs_torch
def test_batched_residuals_writing_into_their_input_do_not_corrupt_the_fit():
    import torch

    def residuals(x):
        r = x - 1.0
        x += 1.0
        return r * 1.0

    res = am.batched_least_squares(residuals, torch.zeros(3, 2, dtype=torch.float64))
    np.testing.assert_allclose(np.asarray(res.x), np.ones((3, 2)), atol=1e-8)


# -- error_handling='continue': no success claimed when no finite point was accepted after x0 --


@pytest.mark.parametrize("method", ["trust-constr", "SLSQP", "COBYLA", "COBYQA", "Newton-CG", "trust-exact"])
@pytest.mark.parametrize("failure", ["raise", "nan"])
def test_continue_never_claims_success_when_every_point_after_x0_failed(method, failure):
    x0 = np.array([3.0, 3.0])

    def fun(x):  # defined at x0 and nowhere else; the gradient is given (exact everywhere)
        if not np.array_equal(x, x0):
            if failure == "raise":
                raise RuntimeError("outside the model's domain")
            return np.nan
        return float(np.sum((x - 1.0) ** 2))

    jac = None if method.startswith("COBY") else (lambda x: 2.0 * (x - 1.0))
    res = am.minimize(fun, x0, jac=jac, method=method, backend="numpy", error_handling="continue")
    assert not res.success
    np.testing.assert_array_equal(np.asarray(res.x), x0)
    assert res.fun == 8.0


# -- curve_fit: a model that writes into xdata is told, and the user's xdata is left alone ---


def _writes(kind: str):
    def model(x, a, b):
        if kind == "in-place":
            x *= 2.0
        else:
            x[:] = x * 2.0
        return a * x + b

    return model


@pytest.mark.parametrize("kind", ["in-place", "slice"])
def test_curve_fit_model_writing_into_xdata_is_told_and_xdata_is_unchanged(kind):
    xdata = np.linspace(0.0, 1.0, 5)
    with pytest.raises(ValueError, match=r"f writes into xdata"):
        am.curve_fit(_writes(kind), xdata, 3.0 * xdata + 1.0, p0=[1.0, 0.0], backend="numpy")
    np.testing.assert_array_equal(xdata, np.linspace(0.0, 1.0, 5))


def test_curve_fit_jax_model_rebinding_xdata_fits_and_leaves_xdata_alone():
    xdata = np.linspace(0.0, 1.0, 5)  # JAX arrays are immutable: x *= 2 makes a new array
    popt, _ = am.curve_fit(_writes("in-place"), xdata, 3.0 * xdata + 1.0, p0=[1.0, 0.0], backend="jax")
    np.testing.assert_allclose(popt, [1.5, 1.0], rtol=1e-9)
    np.testing.assert_array_equal(xdata, np.linspace(0.0, 1.0, 5))


@needs_torch
@pytest.mark.parametrize("given", ["numpy", "torch"])
def test_curve_fit_torch_model_writing_into_xdata_is_told_and_xdata_is_unchanged(given):
    import torch

    def model(x, a, b):
        x.mul_(2.0)
        return a * x + b

    xdata = np.linspace(0.0, 1.0, 5) if given == "numpy" else torch.linspace(0.0, 1.0, 5, dtype=torch.float64)
    p0 = torch.tensor([1.0, 0.0], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"f writes into xdata"):
        am.curve_fit(model, xdata, 3.0 * np.linspace(0.0, 1.0, 5) + 1.0, p0=p0, backend="torch")
    np.testing.assert_array_equal(np.asarray(xdata), np.linspace(0.0, 1.0, 5))


def test_curve_fit_model_gets_a_read_only_copy_of_xdata():
    xdata = np.linspace(0.0, 1.0, 5)
    seen = []

    def model(x, a, b):
        seen.append(x)
        return a * x + b

    popt, _ = am.curve_fit(model, xdata, 3.0 * xdata + 1.0, p0=[1.0, 0.0], backend="numpy")
    np.testing.assert_allclose(popt, [3.0, 1.0], rtol=1e-9)
    assert all(x is not xdata and not x.flags.writeable for x in seen)


# -- a failure inside a finite-difference gradient: the value computed there is evaluated ----


def test_a_failing_finite_difference_gradient_logs_the_value_it_kept_as_best(tmp_path):
    calls = []

    def fun(x):
        calls.append(1)
        if len(calls) == 2:  # the first difference point of x0's gradient
            raise RuntimeError("outside the model's domain")
        return float(np.sum((x - 1.0) ** 2))

    path = tmp_path / "run.sqlite"
    with pytest.raises(RuntimeError) as caught:
        am.minimize(fun, np.zeros(2), method="BFGS", backend="numpy", log=str(path))
    np.testing.assert_array_equal(caught.value.autominimize_best_x, np.zeros(2))
    logged = am.read_log(path)
    assert logged.best_f == 2.0
    assert [(e.kind, e.f) for e in logged.history.evaluations if e.kind == "value"] == [("value", 2.0)]
    np.testing.assert_array_equal(logged.best_x, np.zeros(2))
