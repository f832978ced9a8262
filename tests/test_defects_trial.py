"""Regression tests from an adversarial trial of the defect classes: bounds and constraints that
admit no point, constraint dicts scipy refuses, global solvers' settings outside their ranges
(also through the torch optimizers), crafted log files, and internal error texts."""

from __future__ import annotations

import re
import shutil
import sqlite3
import warnings

import numpy as np
import pytest
import scipy.optimize as so
from conftest import ALL_BACKENDS, FRAMEWORKS, array_module

import autominimize as am
from autominimize.drivers.methods import METHODS

needs_torch = pytest.mark.skipif("torch" not in FRAMEWORKS, reason="needs torch")


def _squares(backend: str):
    _, total = array_module(backend)
    return lambda x: total((x - 3.0) ** 2)


# -- a bound of +inf below or -inf above admits no point: refused, not x = inf ----------------

EMPTY_BOUNDS = [
    ("low +inf", [(np.inf, np.inf), (0.0, 1.0)], r"bounds for x0\[0\]: low is \+inf, which no number reaches; use None or -inf"),
    ("high -inf", [(0.0, 1.0), (-np.inf, -np.inf)], r"bounds for x0\[1\]: high is -inf, which no number reaches; use None or \+inf"),
    ("low +inf, no high", [(np.inf, None), (0.0, 1.0)], r"bounds for x0\[0\]: low is \+inf"),
]


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("method", ["L-BFGS-B", "TNC", "SLSQP", "Nelder-Mead", "lbfgs-native"])
@pytest.mark.parametrize("bounds, message", [case[1:] for case in EMPTY_BOUNDS], ids=[case[0] for case in EMPTY_BOUNDS])
def test_bounds_that_admit_no_point_are_refused(backend, method, bounds, message):
    with pytest.raises(am.BoundsError, match=message):
        am.minimize(_squares(backend), np.zeros(2), method=method, bounds=bounds, backend=backend)


def test_structured_bounds_that_admit_no_point_name_the_leaf():
    with pytest.raises(am.BoundsError, match=r"bounds for x0\['b'\]\[1\]: low is \+inf"):
        am.minimize(
            lambda a, b: np.sum(a**2) + np.sum(b**2),
            {"a": np.zeros(2), "b": np.zeros(2)},
            method="L-BFGS-B",
            bounds={"b": ([0.0, np.inf], None)},
            backend="numpy",
        )


# -- constraints that admit no point, or a dict scipy refuses --------------------------------


def _constraint_cases():
    def c(x):
        return x[0]

    return [
        ("dict without type", {"fun": c}, r"constraints needs 'type': 'eq' \(c\(x\) == 0\) or 'ineq' \(c\(x\) >= 0\)"),
        ("dict type None", {"type": None, "fun": c}, r"constraints\['type'\] is None; use 'eq' \(c\(x\) == 0\) or 'ineq'"),
        ("dict args not a tuple", {"type": "eq", "fun": lambda x, a: x[0] - a, "args": 1}, r"constraints\['args'\] must be a tuple .*; got int"),
        ("dict lb above ub", {"fun": c, "lb": 2.0, "ub": 1.0}, r"constraints: lb 2.0 is greater than ub 1.0"),
        ("dict lb NaN", {"fun": c, "lb": np.nan}, r"constraints: lb contains NaN; use -inf for no lower bound"),
        ("Nonlinear lb above ub", so.NonlinearConstraint(c, 2.0, 1.0), r"constraints: lb 2.0 is greater than ub 1.0 \(at value 0\)"),
        ("Nonlinear lb NaN", so.NonlinearConstraint(c, np.nan, 1.0), r"constraints: lb contains NaN"),
        ("Nonlinear lb +inf", so.NonlinearConstraint(c, np.inf, np.inf), r"constraints: lb is \+inf \(at value 0\), which no value reaches"),
        ("Nonlinear ub -inf", so.NonlinearConstraint(c, -np.inf, -np.inf), r"constraints: ub is -inf \(at value 0\), which no value reaches"),
        ("Linear lb above ub", so.LinearConstraint(np.ones((1, 2)), 2.0, 1.0), r"constraints: lb 2.0 is greater than ub 1.0"),
        ("Linear lb +inf", so.LinearConstraint(np.ones((1, 2)), np.inf, np.inf), r"constraints: lb is \+inf"),
        ("second of a list", [{"type": "ineq", "fun": c}, so.NonlinearConstraint(c, 1.0, 0.0)], r"constraints\[1\]: lb 1.0 is greater than ub 0.0"),
    ]


CONSTRAINT_CASES = _constraint_cases()


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("method", ["SLSQP", "trust-constr", "COBYLA"])
@pytest.mark.parametrize("constraints, message", [case[1:] for case in CONSTRAINT_CASES], ids=[case[0] for case in CONSTRAINT_CASES])
def test_malformed_or_empty_constraints_are_refused(backend, method, constraints, message):
    with pytest.raises(am.ConstraintError, match=message):
        am.minimize(_squares(backend), np.zeros(2), method=method, constraints=constraints, backend=backend)


def test_a_bounded_constraint_dict_needs_no_type():
    res = am.minimize(_squares("numpy"), np.zeros(2), method="SLSQP", constraints={"fun": lambda x: x[0], "lb": 0.0, "ub": 1.0}, backend="numpy")
    np.testing.assert_allclose(res.x, [1.0, 3.0], atol=1e-6)


# -- global solvers' settings outside the ranges scipy documents ------------------------------


def _quad(x):
    return float(np.sum((x - 0.5) ** 2))


BOX = [(-1.0, 1.0)] * 2
GLOBAL_SETTINGS = [
    (
        "DE recombination 2",
        lambda: am.differential_evolution(_quad, BOX, recombination=2, maxiter=2),
        r"recombination=2 is not valid; recombination must be a number in \[0, 1\]",
    ),
    (
        "DE recombination str",
        lambda: am.differential_evolution(_quad, BOX, recombination="a"),
        r"recombination='a' is not valid; recombination must be a number in \[0, 1\], not a str",
    ),
    ("DA visit 1", lambda: am.dual_annealing(_quad, BOX, visit=1.0, maxiter=2), r"visit=1.0 is not valid; visit must be a number in \(1, 3\]"),
    ("DA visit 4", lambda: am.dual_annealing(_quad, BOX, visit=4.0, maxiter=2), r"visit=4.0 is not valid; visit must be a number in \(1, 3\]"),
    (
        "DA accept 5",
        lambda: am.dual_annealing(_quad, BOX, accept=5.0, maxiter=2),
        r"accept=5.0 is not valid; accept must be a number in \(-10000, -5\]",
    ),
    ("BH interval 0", lambda: am.basinhopping(_quad, np.zeros(2), niter=2, interval=0), r"interval must be a positive integer; got 0"),
    ("shgo iters 0", lambda: am.shgo(_quad, BOX, iters=0), r"iters must be a positive integer; got 0"),
    (
        "shgo unknown option",
        lambda: am.shgo(_quad, BOX, options={"maxevl": 3}),
        r"options has keys that are not options of scipy.optimize.shgo: \['maxevl'\]; did you mean 'maxev'\?",
    ),
]


@pytest.mark.parametrize("call, message", [case[1:] for case in GLOBAL_SETTINGS], ids=[case[0] for case in GLOBAL_SETTINGS])
def test_global_settings_outside_their_range_are_named(call, message):
    with pytest.raises((TypeError, ValueError), match=message):
        call()


def test_shgo_accepts_scipys_options():
    res = am.shgo(_quad, BOX, options={"maxev": 200, "f_tol": 1e-10, "minimize_every_iter": True}, backend="numpy")
    np.testing.assert_allclose(res.x, [0.5, 0.5], atol=1e-6)


def _torch_global(make, **settings):
    import torch

    w = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    optimizer = getattr(am.torch, make)([w], **settings)
    return optimizer.step(lambda: torch.sum((w - 0.5) ** 2))


TORCH_GLOBAL = [
    ("DualAnnealing maxiter -1", "DualAnnealing", {"bounds": (-1, 1), "maxiter": -1}, ValueError, r"maxiter must be a non-negative integer; got -1"),
    (
        "DualAnnealing visit 1",
        "DualAnnealing",
        {"bounds": (-1, 1), "maxiter": 2, "visit": 1.0},
        ValueError,
        r"visit=1.0 is not valid; visit must be a number in \(1, 3\]",
    ),
    (
        "DifferentialEvolution maxiter str",
        "DifferentialEvolution",
        {"bounds": (-1, 1), "maxiter": "2"},
        TypeError,
        r"maxiter must be a non-negative integer; got '2' \(str\)",
    ),
    (
        "DifferentialEvolution popsize 0",
        "DifferentialEvolution",
        {"bounds": (-1, 1), "popsize": 0},
        ValueError,
        r"popsize must be a positive integer; got 0",
    ),
    (
        "DifferentialEvolution unknown key",
        "DifferentialEvolution",
        {"bounds": (-1, 1), "maxiterr": 2},
        TypeError,
        r"DifferentialEvolution got unknown argument\(s\) \['maxiterr'\]; did you mean 'maxiter'\?",
    ),
    ("BasinHopping niter str", "BasinHopping", {"niter": "2"}, TypeError, r"niter must be a non-negative integer; got '2' \(str\)"),
    ("BasinHopping T negative", "BasinHopping", {"niter": 2, "T": -1.0}, ValueError, r"T must be a finite non-negative number; got -1.0"),
    (
        "BasinHopping unknown key",
        "BasinHopping",
        {"niterr": 2},
        TypeError,
        r"BasinHopping got unknown argument\(s\) \['niterr'\]; did you mean 'niter'\?",
    ),
    ("SHGO n 0", "SHGO", {"bounds": (-1, 1), "n": 0}, ValueError, r"n must be a positive integer \(the number of sampling points\); got 0"),
    (
        "SHGO unknown option",
        "SHGO",
        {"bounds": (-1, 1), "options": {"maxevl": 3}},
        ValueError,
        r"options has keys that are not options of scipy.optimize.shgo: \['maxevl'\]",
    ),
]


@needs_torch
@pytest.mark.parametrize("make, settings, error, message", [case[1:] for case in TORCH_GLOBAL], ids=[case[0] for case in TORCH_GLOBAL])
def test_torch_global_optimizers_check_their_settings(make, settings, error, message):
    with pytest.raises(error, match=message):
        _torch_global(make, **settings)


# -- the torch helpers name a wrong argument ----------------------------------------------------


def _torch_model():
    import torch

    return torch.nn.Linear(2, 1).double()


def _scipy_optimizer_step(**settings):
    import torch

    model = _torch_model()
    optimizer = am.torch.ScipyOptimizer(model.parameters(), **settings)
    return optimizer.step(lambda: torch.sum(model.weight**2))


TORCH_HELPERS = [
    (
        "ScipyOptimizer tol text",
        lambda: _scipy_optimizer_step(method="BFGS", tol="a"),
        TypeError,
        r"tol must be a finite non-negative number; got 'a' \(str\)",
    ),
    (
        "ScipyOptimizer tol negative",
        lambda: _scipy_optimizer_step(method="BFGS", tol=-1.0),
        ValueError,
        r"tol must be a finite non-negative number; got -1.0",
    ),
    (
        "function_factory of a string",
        lambda: am.torch.function_factory("model", None, np.ones((3, 2)), np.ones(3)),
        TypeError,
        r"model must be a torch.nn.Module; got str",
    ),
    (
        "load_params of a string",
        lambda: am.torch.load_params(_torch_model(), {"weight": "a"}),
        TypeError,
        r"values\['weight'\] is a str; give an array or tensor of numbers",
    ),
    ("load_params into a string", lambda: am.torch.load_params("model", np.zeros(3)), TypeError, r"model must be a torch.nn.Module; got str"),
]


@needs_torch
@pytest.mark.parametrize("call, error, message", [case[1:] for case in TORCH_HELPERS], ids=[case[0] for case in TORCH_HELPERS])
def test_torch_helpers_name_a_wrong_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


# -- crafted logs --------------------------------------------------------------------------------


def _fun(x):
    return float(np.sum((x - 1.0) ** 2))


@pytest.fixture(scope="module")
def a_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("trial") / "good.sqlite"
    am.minimize(_fun, np.zeros(3), method="BFGS", backend="numpy", log=path)
    copy = path.with_name("copy.sqlite")
    with sqlite3.connect(path) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    return copy


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_a_best_point_that_is_not_finite_is_damage_not_a_resume_point(a_log, tmp_path, value):
    crafted = tmp_path / "crafted.sqlite"
    shutil.copy(a_log, crafted)
    with sqlite3.connect(crafted) as connection:
        connection.execute("UPDATE runs SET best_x = ?", (np.array([1.0, value, 1.0], dtype="<f8").tobytes(),))
    with pytest.raises(am.LogError, match=r"is damaged: the run's best point is not finite \(.* at index 1\)"):
        am.read_log(crafted)
    with pytest.raises(am.LogError, match=r"is damaged: the run's best point is not finite"):
        am.minimize(_fun, np.zeros(3), method="BFGS", backend="numpy", resume=crafted)


@pytest.mark.parametrize("table", ["evaluation_blocks", "iteration_blocks", "runs"])
def test_appending_to_a_log_without_one_of_its_tables_says_which(a_log, tmp_path, table):
    crafted = tmp_path / "crafted.sqlite"
    shutil.copy(a_log, crafted)
    with sqlite3.connect(crafted) as connection:
        connection.execute(f"DROP TABLE {table}")
    with pytest.raises(am.LogError, match=rf"is not an autominimize log of this version: it has no table {table}; give a new file name"):
        am.minimize(_fun, np.zeros(3), method="BFGS", backend="numpy", log=crafted)


# -- options scipy's function refuses with its own text --------------------------------------


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_trust_constr_unknown_option_is_named(backend):
    with pytest.raises(ValueError, match=r"options: 'xatol' is not an option of method='trust-constr', which takes gtol, xtol, barrier_tol, "):
        am.minimize(_squares(backend), np.zeros(2), method="trust-constr", options={"xatol": 1e-3}, backend=backend)
    with pytest.raises(ValueError, match=r"options: 'xatol', 'ftol' are not options of method='trust-constr', which takes .*maxiter"):
        am.minimize(_squares(backend), np.zeros(2), method="Trust-Constr", options={"maxiter": 5, "xatol": 1e-3, "ftol": 1.0}, backend=backend)


#: every scipy method but trust-constr (the method table's names; IPOPT is not scipy's)
OTHER_METHODS = [name for name in METHODS if name not in ("trust-constr", "ipopt")]


@pytest.mark.parametrize("method", OTHER_METHODS)
def test_another_methods_option_gets_scipys_warning_elsewhere(method):
    option = "gtol" if method == "nelder-mead" else "xatol"
    with pytest.warns(so.OptimizeWarning, match=rf"Unknown solver options: {option}"):
        res = am.minimize(_squares("numpy"), np.zeros(2), method=method, options={option: 1e-3}, backend="numpy")
    np.testing.assert_allclose(res.x, [3.0, 3.0], atol=1e-3)


DERIVATIVE_FREE = ["Nelder-Mead", "Powell", "COBYLA", "COBYQA"]


@pytest.mark.parametrize("method", DERIVATIVE_FREE)
@pytest.mark.parametrize("jac", [lambda x: 2.0 * (x - 3.0), "2-point", "3-point"], ids=["callable", "2-point", "3-point"])
def test_a_gradient_for_a_derivative_free_method_is_not_dropped_silently(method, jac):
    with pytest.raises(ValueError, match=rf"method='{method.lower()}' does not use gradients; jac would be ignored\. Use one of: cg, bfgs"):
        am.minimize(_squares("numpy"), np.zeros(2), jac=jac, method=method, backend="numpy")


@pytest.mark.parametrize("method", DERIVATIVE_FREE)
def test_a_derivative_free_method_reads_the_value_of_a_fun_returning_value_and_gradient(method):
    res = am.minimize(lambda x: (float(np.sum((x - 3.0) ** 2)), 2.0 * (x - 3.0)), np.zeros(2), jac=True, method=method, backend="numpy")
    np.testing.assert_allclose(res.x, [3.0, 3.0], atol=1e-3)


@pytest.mark.parametrize("method", ["CG", "BFGS", "L-BFGS-B", "TNC", "SLSQP"] + DERIVATIVE_FREE)
@pytest.mark.parametrize("given", ["hess", "hessp"])
def test_curvature_for_a_method_that_does_not_use_it_is_refused(method, given):
    curvature = {"hess": lambda x: 2.0 * np.eye(2), "hessp": lambda x, p: 2.0 * p}[given]
    with pytest.raises(ValueError, match=rf"method='{method.lower()}' does not use second-order information; hess/hessp would be ignored"):
        am.minimize(_squares("numpy"), np.zeros(2), method=method, backend="numpy", **{given: curvature})


# -- an objective computed in float32 under float64 finite differences ---------------------------


def _float32_output(kind: str):
    if kind == "torch":
        import torch

        return lambda x: torch.tensor(float(np.sum((x - 3.0) ** 2)))  # torch.tensor of a float is float32
    if kind == "jax":
        import jax.numpy as jnp

        return lambda x: jnp.sum((jnp.asarray(x) - 3.0) ** 2)  # float32 unless jax_enable_x64
    return lambda x: np.float32(np.sum((x - 3.0) ** 2))


@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B", "trust-ncg", "trust-exact", "lbfgs-native"])
@pytest.mark.parametrize("kind", ["numpy"] + [f for f in ("torch", "jax") if f in FRAMEWORKS])
def test_float32_values_under_finite_differences_are_not_a_silent_success_at_x0(kind, method):
    with pytest.warns(UserWarning, match=r"fun returned float32 values, whose resolution \(~1e-07 relative\) is coarser .* Return float64 values"):
        res = am.minimize(_float32_output(kind), np.zeros(2), method=method, backend="numpy")
    assert not (res.success and np.allclose(res.x, 0.0))
    np.testing.assert_allclose(res.x, [3.0, 3.0], atol=1e-3)  # the steps scaled to float32 (scipy's rule for float32)


@pytest.mark.parametrize("method", ["trf", "lm"])
def test_float32_residuals_under_finite_differences_move_from_x0(method):
    with pytest.warns(UserWarning, match=r"fun returned float32 values"):
        res = am.least_squares(lambda x: (x - 3.0).astype(np.float32), np.zeros(2), method=method, backend="numpy")
    np.testing.assert_allclose(res.x, [3.0, 3.0], atol=1e-3)


def test_precision_float32_on_numpy_takes_float32_steps_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        res = am.minimize(lambda x: np.sum((x - 3.0) ** 2), np.zeros(2), method="BFGS", backend="numpy", precision="float32")
    np.testing.assert_allclose(res.x, [3.0, 3.0], atol=1e-3)


@pytest.mark.parametrize("method", ["lm", "trf", "dogbox"])
def test_curve_fit_takes_scipys_maxfev(method):
    x = np.linspace(0.0, 1.0, 10)
    popt, _ = am.curve_fit(lambda x, a, b: a * x + b, x, 2 * x + 1, maxfev=100, method=method, backend="numpy")
    np.testing.assert_allclose(popt, [2.0, 1.0], atol=1e-8)
    with pytest.raises(RuntimeError, match="The maximum number of function evaluations is exceeded"):
        am.curve_fit(lambda x, a, b: a * np.exp(b * x), x, 2 * np.exp(x) + np.sin(7 * x), maxfev=3, method=method, backend="numpy")
    with pytest.raises(TypeError, match="give maxfev or max_nfev"):
        am.curve_fit(lambda x, a, b: a * x + b, x, 2 * x + 1, maxfev=100, max_nfev=100, method=method, backend="numpy")


# -- a NaN value under error_handling='raise' is never a success ----------------------------------


def _nan_beyond(x):  # sum((x - 0.5)^2), NaN where x[0] > 0.2: the minimum lies where fun is not finite
    return np.nan if x[0] > 0.2 else float(np.sum((x - 0.5) ** 2))


#: the methods whose scipy code ends at the NaN point (and L-BFGS-B, BFGS, CG, Newton-CG say success)
ENDING_AT_NAN = ["L-BFGS-B", "BFGS", "CG", "Newton-CG", "Powell"]


@pytest.mark.parametrize("method", ENDING_AT_NAN + ["Nelder-Mead", "trust-constr", "TNC", "SLSQP", "trust-ncg"])
@pytest.mark.parametrize("with_jac", [True, False], ids=["jac", "no jac"])
def test_a_nan_value_at_the_end_is_never_reported_as_success(method, with_jac):
    jac = (lambda x: 2.0 * (x - 0.5)) if with_jac and method not in ("Powell", "Nelder-Mead") else None
    res = am.minimize(_nan_beyond, np.zeros(2), jac=jac, method=method, backend="numpy")
    assert np.isfinite(res.fun) and res.fun == _nan_beyond(res.x)
    if method in ENDING_AT_NAN:
        assert not res.success
        assert re.match(r"the last point was not finite \(fun is nan where the method ended\); x is the best finite point evaluated", res.message)
        np.testing.assert_array_equal(res.x, [0.0, 0.0])


def test_a_method_ending_where_every_value_is_nan_says_so():
    res = am.minimize(lambda x: np.nan, np.zeros(2), jac=lambda x: np.ones(2), method="L-BFGS-B", backend="numpy")
    assert not res.success and "no point evaluated had a finite value" in res.message


# -- a NumPy array the objective captures, changed between two solves --------------------------


@pytest.mark.parametrize("backend", [b for b in ("jax", "tensorflow") if b in FRAMEWORKS])
@pytest.mark.parametrize("method", ["BFGS", "lbfgs-native"])
def test_a_captured_array_changed_between_solves_is_read_again(backend, method):
    asarray, total = array_module(backend)
    target = np.array([1.0, 2.0])

    def fun(x):
        return total((x - asarray(target)) ** 2)

    first = am.minimize(fun, np.zeros(2), method=method, backend=backend)
    np.testing.assert_allclose(np.asarray(first.x), [1.0, 2.0], atol=1e-5)
    target[:] = [5.0, 6.0]
    second = am.minimize(fun, np.zeros(2), method=method, backend=backend)
    np.testing.assert_allclose(np.asarray(second.x), [5.0, 6.0], atol=1e-5)


# -- a native method calls callback(xk) with x, as scipy does --------------------------------------


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("method", ["lbfgs-native", "cg-native", "sgd"])
def test_native_callback_of_x_receives_x_in_x0s_structure(backend, method):
    _, total = array_module(backend)
    seen, results = [], []

    def callback(xk):
        seen.append(xk)

    def new_style(intermediate_result):
        results.append(intermediate_result)

    def fun(p):
        return total((p["w"] - 1.0) ** 2) + total(p["w"] ** 4)

    x0 = {"w": np.zeros(2)}
    am.minimize(fun, x0, method=method, backend=backend, callback=callback, options={"maxiter": 3})
    am.minimize(fun, x0, method=method, backend=backend, callback=new_style, options={"maxiter": 3})
    assert seen and all(isinstance(x, dict) and set(x) == {"w"} and np.shape(x["w"]) == (2,) for x in seen)
    assert results and all(isinstance(r, so.OptimizeResult) and set(r.x) == {"w"} for r in results)
