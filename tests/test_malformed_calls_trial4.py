"""Malformed calls from a fourth trial: a sweep of every argument of every public entry point.

Each row is one mistake: the error must be of the expected type and its message must name
the argument and say what would be accepted. A switch (a documented bool) refuses a truthy
value that is not True or False, wherever it is an argument or an option.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from conftest import check_malformed_call

import autominimize as am


def quad(x):
    return float(np.sum((x - 1.0) ** 2))


def resid(x):
    return x - 1.0


def line(x, a, b):
    return a * x + b


X2 = np.zeros(2)
BOX = [(-2.0, 2.0), (-2.0, 2.0)]
XD = np.linspace(0.0, 1.0, 10)
YD = 2.0 * XD + 1.0


def mini(**kwargs):
    return lambda: am.minimize(kwargs.pop("fun", quad), kwargs.pop("x0", X2), **{"backend": "numpy", **kwargs})


def lsq(**kwargs):
    return lambda: am.least_squares(resid, X2, **{"backend": "numpy", **kwargs})


def fit(**kwargs):
    return lambda: am.curve_fit(line, XD, YD, **{"p0": [1.0, 1.0], "backend": "numpy", **kwargs})


def glob(entry, **kwargs):
    """A global optimizer over BOX (basinhopping from X2), small and seeded."""
    small = {"differential_evolution": {"maxiter": 3, "popsize": 5}, "dual_annealing": {"maxiter": 3}, "basinhopping": {"niter": 2}}
    small.update(shgo={"n": 8}, direct={"maxiter": 5}, multistart={"n_starts": 3})
    where = X2 if entry == "basinhopping" else BOX
    return lambda: getattr(am, entry)(quad, where, **{"backend": "numpy", **small[entry], **kwargs})


def batched_fit(**kwargs):
    return lambda: am.batched_curve_fit(line, XD, np.stack([YD, YD]), p0=np.ones((2, 2)), backend="numpy", **kwargs)


#: a switch's message: the argument, and what it accepts
SWITCH = r"must be True or False; got "

SWITCHES = [
    ("curve_fit absolute_sigma='yes'", fit(absolute_sigma="yes"), r"absolute_sigma " + SWITCH + r"'yes' \(str\)"),
    ("curve_fit absolute_sigma=2", fit(absolute_sigma=2), r"absolute_sigma " + SWITCH + r"2 \(int\)"),
    ("curve_fit absolute_sigma=[1]", fit(absolute_sigma=[1]), r"absolute_sigma " + SWITCH + r"\[1\] \(list\)"),
    ("curve_fit full_output='yes'", fit(full_output="yes"), r"full_output " + SWITCH + r"'yes'"),
    ("curve_fit full_output=[1]", fit(full_output=[1]), r"full_output " + SWITCH + r"\[1\]"),
    ("curve_fit check_finite='no'", fit(check_finite="no"), r"check_finite must be True, False or None; got 'no'"),
    ("batched_curve_fit absolute_sigma='yes'", batched_fit(absolute_sigma="yes"), r"absolute_sigma " + SWITCH + r"'yes'"),
    ("dual_annealing no_local_search='yes'", glob("dual_annealing", no_local_search="yes"), r"no_local_search " + SWITCH + r"'yes'"),
    ("dual_annealing no_local_search=2", glob("dual_annealing", no_local_search=2), r"no_local_search " + SWITCH + r"2"),
    ("dual_annealing no_local_search=[1]", glob("dual_annealing", no_local_search=[1]), r"no_local_search " + SWITCH + r"\[1\]"),
    ("differential_evolution disp='yes'", glob("differential_evolution", disp="yes"), r"disp " + SWITCH + r"'yes'"),
    ("basinhopping disp=2", glob("basinhopping", disp=2), r"disp " + SWITCH + r"2"),
    ("direct locally_biased='yes'", glob("direct", locally_biased="yes"), r"locally_biased " + SWITCH + r"'yes'"),
    ("multistart batched='yes'", glob("multistart", batched="yes"), r"batched must be True, False or None; got 'yes'"),
    ("minimize batch='yes'", mini(method="lbfgs-native", batch="yes"), r"batch " + SWITCH + r"'yes'"),
    ("options disp='yes'", mini(method="BFGS", options={"disp": "yes"}), r"options\['disp'\] " + SWITCH + r"'yes'"),
    ("options return_all=[1]", mini(method="BFGS", options={"return_all": [1]}), r"options\['return_all'\] " + SWITCH + r"\[1\]"),
    ("options adaptive=2", mini(method="Nelder-Mead", options={"adaptive": 2}), r"options\['adaptive'\] " + SWITCH + r"2"),
    ("options inexact='yes'", mini(method="trust-krylov", options={"inexact": "yes"}), r"options\['inexact'\] " + SWITCH + r"'yes'"),
    (
        "options sparse_jacobian='yes'",
        mini(method="trust-constr", options={"sparse_jacobian": "yes"}),
        r"options\['sparse_jacobian'\] must be True, False or None; got 'yes'",
    ),
    (
        "L-BFGS-B options disp='yes' (a print level there)",
        mini(method="L-BFGS-B", options={"disp": "yes"}),
        r"options\['disp'\] \(True, False or a print level\) must be a non-negative integer; got 'yes'",
    ),
    ("shgo options disp='yes'", glob("shgo", options={"disp": "yes"}), r"options\['disp'\] " + SWITCH + r"'yes'"),
    ("shgo options minimize_every_iter=2", glob("shgo", options={"minimize_every_iter": 2}), r"options\['minimize_every_iter'\] " + SWITCH + r"2"),
    ("History keep_points='yes'", lambda: am.History(keep_points="yes"), r"keep_points " + SWITCH + r"'yes'"),
    ("optim.sgd nesterov='yes'", lambda: am.optim.sgd(0.1, 0.9, nesterov="yes"), r"sgd: nesterov " + SWITCH + r"'yes'"),
    ("native.SGD nesterov=[1]", lambda: am.native.SGD(0.1, 0.9, nesterov=[1]), r"sgd: nesterov " + SWITCH + r"\[1\]"),
    ("numdiff.Evaluator tolerate_failures='yes'", lambda: am.numdiff.Evaluator(tolerate_failures="yes"), r"tolerate_failures " + SWITCH + r"'yes'"),
]


@pytest.mark.parametrize("call, message", [case[1:] for case in SWITCHES], ids=[case[0] for case in SWITCHES])
def test_a_switch_refuses_a_truthy_value_that_is_not_a_bool(call, message):
    with pytest.raises(TypeError, match=message):
        call()


def _public_callables():
    """(qualified name, callable) of every public function and class of the package and its
    NumPy-only submodules."""
    modules = {"am": am, "am.optim": am.optim, "am.numdiff": am.numdiff, "am.native": am.native, "am.plot": am.plot}
    for prefix, module in modules.items():
        for name in getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]:
            obj = getattr(module, name)
            if callable(obj) and not inspect.ismodule(obj):
                yield f"{prefix}.{name}", obj


#: switches not covered by a row above, with the test that covers them
COVERED_ELSEWHERE = {
    "history": "test_malformed_calls.py",
    "progress": "test_malformed_calls.py",
    "iterates": "test_log_safety.py",
    "keep_residuals": "test_batched_fit.py",
    "vectorized": "test_batched_fit.py",
    "log_scale": "test_malformed_calls_trial3.py",
    "keep_points": "above",
}


#: public classes that are results, made by the library: their fields are not arguments
RESULT_TYPES = ("am.GradientCheck", "am.native.Stop")


def test_every_documented_switch_of_the_public_api_has_a_row():
    """A parameter annotated ``bool`` anywhere in the public API is refused when not a bool:
    each has a row above (or a named test elsewhere), so a new switch needs one too."""
    rows = " ".join(case[0] for case in SWITCHES)
    switches = set()
    for name, obj in _public_callables():
        if name in RESULT_TYPES:
            continue
        try:
            parameters = inspect.signature(obj).parameters.values()
        except (TypeError, ValueError):
            continue
        switches |= {p.name for p in parameters if p.annotation in ("bool", bool)}
    missing = sorted(name for name in switches if f" {name}=" not in rows and name not in COVERED_ELSEWHERE)
    assert not missing, missing
    assert {"absolute_sigma", "full_output", "no_local_search", "disp", "nesterov", "tolerate_failures"} <= switches


CASES = [
    # -- options that are arrays shaped by the number of parameters ------------------------
    (
        "Powell direc of a wrong shape",
        mini(method="Powell", options={"direc": np.eye(3)}),
        ValueError,
        r"options\['direc'\] must be a finite array of shape \(2, 2\) for the 2 parameters \(Powell's search directions, one per row\); got shape \(3, 3\)",
    ),
    (
        "Powell direc with a NaN",
        mini(method="Powell", options={"direc": [[1.0, 0.0], [0.0, np.nan]]}),
        ValueError,
        r"options\['direc'\] must be a finite array of shape \(2, 2\).*got non-finite values",
    ),
    ("Powell direc a string", mini(method="Powell", options={"direc": "eye"}), ValueError, r"options\['direc'\] must be a finite array .*got 'eye'"),
    (
        "Nelder-Mead initial_simplex of a wrong shape",
        mini(method="Nelder-Mead", options={"initial_simplex": np.eye(2)}),
        ValueError,
        r"options\['initial_simplex'\] must be a finite array of shape \(3, 2\) .*got shape \(2, 2\)",
    ),
    (
        "BFGS hess_inv0 of a wrong shape",
        mini(method="BFGS", options={"hess_inv0": np.eye(3)}),
        ValueError,
        r"options\['hess_inv0'\] must be a finite array of shape \(2, 2\) .*got shape \(3, 3\)",
    ),
    (
        "options xrtol a string",
        mini(method="BFGS", options={"xrtol": "small"}),
        TypeError,
        r"options\['xrtol'\] must be a finite non-negative number",
    ),
    # -- a name expected, an array given: never NumPy's "truth value is ambiguous" ----------
    ("unpack an array", mini(unpack=np.ones(2)), ValueError, r"unpack=array\(\[1\., 1\.\]\) is not one of \('auto', 'none', 'args', 'kwargs'\)"),
    ("error_handling an array", mini(error_handling=np.ones(2)), ValueError, r"error_handling=array\(.*\) is not accepted; use 'raise'"),
    ("hvp_type an array", mini(hvp_type=np.ones(2)), ValueError, r"hvp_type=array\(.*\) is not one of"),
    ("least_squares method an array", lsq(method=np.ones(2)), ValueError, r"method=array\(.*\) is not a least-squares method; use one of"),
    ("least_squares tr_solver an array", lsq(tr_solver=np.ones(2)), ValueError, r"tr_solver=array\(.*\) is not a trust-region solver; use None"),
    ("curve_fit nan_policy an array", fit(nan_policy=np.ones(2)), ValueError, r"nan_policy"),
    (
        "differential_evolution updating an array",
        glob("differential_evolution", updating=np.ones(2)),
        ValueError,
        r"updating=array\(.*\): use 'immediate'",
    ),
    ("differential_evolution engine an array", glob("differential_evolution", engine=np.ones(2)), ValueError, r"engine=array\(.*\): use 'auto'"),
    (
        "differential_evolution vectorized an array",
        glob("differential_evolution", vectorized=np.ones(2)),
        TypeError,
        r"vectorized must be None \(batch when the backend can\), True",
    ),
    ("multistart sampling an array", glob("multistart", sampling=np.ones(2)), ValueError, r"sampling=array\(.*\) is not one of"),
    (
        "shgo sampling_method a dict",
        glob("shgo", sampling_method={}),
        ValueError,
        r"sampling_method=\{\} is not valid; use 'simplicial', 'halton', 'sobol' or a callable",
    ),
    (
        "dual_annealing minimizer_kwargs an array",
        glob("dual_annealing", minimizer_kwargs=np.ones(2)),
        TypeError,
        r"minimizer_kwargs must be a dict of am.minimize arguments; got ndarray",
    ),
    (
        "differential_evolution polish a truthy string",
        glob("differential_evolution", polish="yes"),
        ValueError,
        r"polish='yes' is not a scipy.optimize.minimize method; polish must be True, False, a method name \(nelder-mead,",
    ),
    (
        "trust-constr hess an array",
        mini(method="trust-constr", hess=np.ones(2)),
        ValueError,
        r"hess=array\(.*\) is not accepted; use None, True \(autodiff\), a callable hess\(x, \*args\), one of \('2-point', '3-point'\)",
    ),
    ("least_squares jac an array", lsq(jac=np.ones(2)), ValueError, r"jac=array\(.*\) is not accepted; use None \(autodiff\), a callable"),
    ("minimize workers=1e30", mini(workers=10**30), ValueError, r"workers must be a positive integer \(the number of local processes\)"),
    ("direct f_min=1e30 as an int", glob("direct", f_min=10**30), None, None),
    # -- native hyperparameters: a number (or a schedule, or a framework's array), never a dict --
    ("optim.sgd lr a dict", lambda: am.optim.sgd(lr={}), ValueError, r"sgd: lr=\{\} is not valid; lr must be a positive number"),
    (
        "optim.lbfgs c1 an object",
        lambda: am.optim.lbfgs(c1=object()),
        ValueError,
        r"lbfgs-native: c1=<object .*> is not valid; c1 must be a number in \(0, 1\)",
    ),
    (
        "optim.lbfgs memory a dict",
        lambda: am.optim.lbfgs(memory={}),
        ValueError,
        r"lbfgs-native: memory=\{\} is not valid; memory must be a whole number >= 1",
    ),
    (
        "optim.lbfgs line_search an array",
        lambda: am.optim.lbfgs(line_search=np.ones(2)),
        ValueError,
        r"line_search=array\(.*\): use 'strong-wolfe', 'armijo' or 'exact'",
    ),
    (
        "optim.hessian_free curvature an array",
        lambda: am.optim.hessian_free(curvature=np.ones(2)),
        ValueError,
        r"curvature=array\(.*\) is not one of \('auto', 'gauss-newton', 'hessian'\)",
    ),
    ("direct bounds empty", lambda: am.direct(quad, [], backend="numpy"), ValueError, r"bounds has no \(low, high\) pair in it; got \[\]"),
    (
        "differential_evolution bounds empty",
        lambda: am.differential_evolution(quad, [], backend="numpy"),
        ValueError,
        r"bounds has no \(low, high\) pair in it",
    ),
    # -- containers of the wrong kind --------------------------------------------------------
    (
        "constraints an array",
        mini(constraints=np.ones(2)),
        ValueError,
        r"constraints must be a dict, a LinearConstraint, a NonlinearConstraint, or a list of them; got ndarray",
    ),
    (
        "differential_evolution constraints=0",
        glob("differential_evolution", constraints=0),
        ValueError,
        r"constraints must be a dict, a LinearConstraint, a NonlinearConstraint, or a list of them; got int",
    ),
    (
        "observers a string",
        mini(observers="history"),
        TypeError,
        r"observers must be a list or tuple of objects with iteration\(...\) and evaluation",
    ),
    (
        "observers of numbers",
        mini(observers=[3]),
        TypeError,
        r"observers\[0\] is a int; an observer has an iteration\(nit, x, f, grad, counts\) method",
    ),
    ("fun_and_jac not callable", mini(fun_and_jac=3), TypeError, r"fun_and_jac must be callable; got int"),
    ("shgo callback not callable", glob("shgo", callback=3), TypeError, r"callback must be callable; got int"),
    # -- functions that cannot take the call the solve makes: named before the solve -----------
    (
        "fun taking no argument",
        mini(fun=lambda: 0.0),
        TypeError,
        r"fun is called as fun\(x\): one argument in x0's structure; <lambda>\(\) cannot take that \(too many positional arguments\)",
    ),
    (
        "args not matching fun",
        mini(args="bogus"),
        TypeError,
        r"fun is called as fun\(x, \*args\): one argument in x0's structure, followed by the 1 item\(s\) of args=\('bogus',\); quad\(x\) cannot take that",
    ),
    (
        "args not matching fun in a global optimizer",
        glob("differential_evolution", args=(1.0,)),
        TypeError,
        r"fun is called as fun\(x, \*args\).*args=\(1\.0,\); quad\(x\) cannot take that",
    ),
    (
        "jac not taking args",
        mini(fun=lambda x, a: float(np.sum(x**2)) + a, method="BFGS", jac=lambda x: 2 * x, args=(1.0,)),
        TypeError,
        r"jac is called as jac\(x, \*args\): one argument in x0's structure, followed by the 1 item\(s\) of args=\(1\.0,\); <lambda>\(x\) cannot take that",
    ),
    (
        "numdiff.gradient args not matching fun",
        lambda: am.numdiff.gradient(quad, X2, args=(1.0,)),
        TypeError,
        r"fun is called as fun\(x, \*args\): one argument in x0's structure, followed by the 1 item\(s\) of args=\(1\.0,\); quad\(x\) cannot take that",
    ),
    (
        "least_squares kwargs fun has no parameter for",
        lsq(kwargs={"scale": 2.0}),
        TypeError,
        r"kwargs=\{'scale': 2\.0\} are passed to fun as keyword arguments; resid\(x\) cannot take them \(got an unexpected keyword argument 'scale'\)",
    ),
    (
        "callback taking no argument",
        mini(callback=lambda: None),
        TypeError,
        r"callback is called as callback\(intermediate_result\) or callback\(xk\) or callback\(xk, state\); <lambda>\(\) cannot take that",
    ),
    (
        "step_callback taking two arguments",
        mini(step_callback=lambda x, y: None),
        TypeError,
        r"step_callback is called as step_callback\(x\); <lambda>\(x, y\) cannot take that",
    ),
    ("loss_callback taking no argument", mini(loss_callback=lambda: None), TypeError, r"loss_callback is called as loss_callback\(f\)"),
    (
        "differential_evolution callback taking no argument",
        glob("differential_evolution", callback=lambda: None),
        TypeError,
        r"callback is called as callback\(intermediate_result\) or callback\(x, convergence\); <lambda>\(\) cannot take that",
    ),
    (
        "dual_annealing callback taking one argument",
        glob("dual_annealing", callback=lambda x: None),
        TypeError,
        r"callback is called as callback\(x, f, context\); <lambda>\(x\) cannot take that",
    ),
    (
        "direct callback taking no argument",
        glob("direct", callback=lambda: None),
        TypeError,
        r"callback is called as callback\(xk\); <lambda>\(\) cannot take that",
    ),
    (
        "basinhopping take_step taking no argument",
        glob("basinhopping", take_step=lambda: None),
        TypeError,
        r"take_step is called as take_step\(x\); <lambda>\(\) cannot take that",
    ),
    (
        "basinhopping accept_test positional",
        glob("basinhopping", accept_test=lambda x: True),
        TypeError,
        r"accept_test is called as accept_test\(f_new=, x_new=, f_old=, x_old=\); <lambda>\(x\) cannot take that",
    ),
    # -- am.iterate's native methods check what am.minimize checks ------------------------------
    (
        "iterate tol a string",
        lambda: am.iterate(quad, X2, tol="small", backend="numpy"),
        TypeError,
        r"tol must be a finite non-negative number; got 'small'",
    ),
    (
        "iterate options a list",
        lambda: am.iterate(quad, X2, options=[("maxiter", 3)], backend="numpy"),
        TypeError,
        r"options must be a dict of the method's options",
    ),
    # -- an argument the backend does not read ---------------------------------------------
    (
        "torch_device on the NumPy backend",
        mini(torch_device="cpu"),
        ValueError,
        r"torch_device='cpu' is where torch evaluates; this solve runs on backend='numpy', which would ignore it",
    ),
    (
        "torch_device on the NumPy backend in am.iterate",
        lambda: am.iterate(quad, X2, torch_device="cpu", backend="numpy"),
        ValueError,
        r"torch_device='cpu' is where torch evaluates",
    ),
    # -- counts: too large to hold, or zero where scipy loops for ever ------------------------
    (
        "least_squares lm max_nfev=1e30",
        lsq(method="lm", max_nfev=10**30),
        ValueError,
        r"max_nfev=10{30} is too large; a count must be at most 2\*\*63 - 1",
    ),
    ("direct maxiter=1e30", glob("direct", maxiter=10**30), ValueError, r"maxiter=10{30} is too large; a count must be at most 2\*\*63 - 1"),
    ("differential_evolution popsize=1e30", glob("differential_evolution", popsize=10**30), ValueError, r"popsize=10{30} is too large"),
    ("multistart n_starts=1e30", glob("multistart", n_starts=10**30), ValueError, r"n_starts=10{30} is too large"),
    ("multistart n_starts=0", glob("multistart", n_starts=0), ValueError, r"n_starts must be a positive integer; got 0"),
    ("dual_annealing maxiter=0", glob("dual_annealing", maxiter=0), ValueError, r"maxiter must be a positive integer; got 0"),
    (
        "differential_evolution workers=1e30",
        glob("differential_evolution", workers=10**30),
        ValueError,
        r"workers must be a positive number of processes or -1 \(one per CPU\) or a map-like callable .*, at most 2\*\*31 - 1",
    ),
    ("shgo workers an array", glob("shgo", workers=np.ones(2)), TypeError, r"workers must be a positive number of processes or -1"),
    # -- per-parameter numbers and data: named, never NumPy's or scipy's text -------------------
    ("least_squares x_scale=True", lsq(x_scale=True), ValueError, r"x_scale=True is not valid; give None, 'jac' or finite scales greater than 0"),
    ("least_squares x_scale of a wrong length", lsq(x_scale=[1.0, 2.0, 3.0]), ValueError, r"x_scale: x_scale has shape \(3,\), expected \(2,\)"),
    (
        "least_squares diff_step empty",
        lsq(diff_step=[]),
        ValueError,
        r"diff_step has shape \(0,\); give None or finite relative steps greater than 0",
    ),
    (
        "least_squares diff_step negative",
        lsq(diff_step=-1e-6),
        ValueError,
        r"diff_step=-1e-06 is not valid; give None or finite relative steps greater than 0",
    ),
    (
        "least_squares verbose an array",
        lsq(verbose=np.ones(2)),
        ValueError,
        r"verbose=array\(.*\) is not valid; use 0 \(silent\), 1 \(a report at the end\) or 2",
    ),
    ("least_squares verbose=3", lsq(verbose=3), ValueError, r"verbose=3 is not valid; use 0"),
    (
        "curve_fit sigma a string",
        fit(sigma="bogus"),
        ValueError,
        r"sigma must be None, one standard deviation per data point \(shape \(10,\)\) or a covariance matrix \(10, 10\)",
    ),
    (
        "curve_fit ydata an object",
        lambda: am.curve_fit(line, XD, object(), p0=[1.0, 1.0], backend="numpy"),
        TypeError,
        r"ydata must hold real numbers \(an array, a scalar or a structure of them\); it holds object",
    ),
    (
        "differential_evolution mutation a string",
        glob("differential_evolution", mutation="bogus"),
        ValueError,
        r"mutation='bogus': give F in \[0, 2\), or \(min, max\)",
    ),
    ("differential_evolution mutation empty", glob("differential_evolution", mutation=[]), ValueError, r"mutation=\[\]: give F in \[0, 2\)"),
    (
        "differential_evolution integrality a string",
        glob("differential_evolution", integrality="yes"),
        TypeError,
        r"integrality must hold True/False \(or 0/1\), in x0's structure or as one value or a flat array of 2; got 'yes'",
    ),
    (
        "differential_evolution integrality NaN",
        glob("differential_evolution", integrality=np.nan),
        TypeError,
        r"integrality must hold True/False \(or 0/1\)",
    ),
    (
        "differential_evolution init a dict",
        glob("differential_evolution", init={}),
        ValueError,
        r"init=\{\}: use one of latinhypercube, sobol, halton, random, or an array of shape \(S, 2\)",
    ),
    (
        "differential_evolution init of a wrong shape",
        glob("differential_evolution", init=np.ones((3, 3))),
        ValueError,
        r"init as an array must have shape \(S, 2\) with S >= 5 members",
    ),
    (
        "direct f_min a string",
        glob("direct", f_min="low"),
        TypeError,
        r"f_min must be a number \(the known minimum, -inf when it is not known\); got 'low'",
    ),
    # -- random sources ---------------------------------------------------------------------
    (
        "differential_evolution rng a string",
        glob("differential_evolution", rng="seed"),
        TypeError,
        r"rng must be None, a non-negative int \(or a sequence of them\) or a numpy.random.Generator; got 'seed'",
    ),
    ("dual_annealing rng a dict", glob("dual_annealing", rng={}), TypeError, r"rng must be None, a non-negative int"),
    ("basinhopping seed an object", glob("basinhopping", seed=object()), TypeError, r"seed must be None, a non-negative int"),
    ("multistart rng=-1", glob("multistart", rng=-1), ValueError, r"rng must be None, a non-negative int .*got -1, which is negative"),
    ("multistart xtol a string", glob("multistart", xtol="small"), TypeError, r"xtol must be a finite non-negative number; got 'small'"),
    # -- tr_options where scipy's automatic choice of solver would ignore them ---------------
    (
        "least_squares tr_options with tr_solver=None on a dense Jacobian",
        lsq(tr_options={"damp": 1.0}),
        ValueError,
        r"tr_options is for tr_solver='lsmr'; with tr_solver=None scipy chooses 'exact' .* would ignore it",
    ),
    ("least_squares tr_options with tr_solver='lsmr' work", lsq(tr_solver="lsmr", tr_options={"damp": 0.0}), None, None),
    # -- a global optimizer's x0 that does not match the bounds names x0 too -----------------
    (
        "differential_evolution x0 of 3 values with 2 bounds",
        glob("differential_evolution", x0=np.zeros(3)),
        am.BoundsError,
        r"does not broadcast to the leaf's shape \(3,\)\. x0 was given, so its structure \(3 values\) is the parameters'",
    ),
    ("dual_annealing x0 of 3 values with 2 bounds", glob("dual_annealing", x0=np.zeros(3)), am.BoundsError, r"x0 was given, so its structure"),
    # -- the native L-BFGS's box limits --------------------------------------------------
    (
        "optim.lbfgs lower a string",
        lambda: am.optim.lbfgs(lower="a"),
        TypeError,
        r"lbfgs-native: lower='a' is not a box limit; give None, a real number",
    ),
    ("optim.lbfgs upper a dict", lambda: am.optim.lbfgs(upper={"x": 1}), TypeError, r"lbfgs-native: upper=\{'x': 1\} is not a box limit"),
    ("optim.lbfgs lower NaN", lambda: am.optim.lbfgs(lower=np.nan), ValueError, r"lbfgs-native: lower=nan holds NaN; a box limit is a number"),
    ("optim.lbfgs limits as lists of numbers", lambda: am.optim.lbfgs(lower=[-1, -1], upper=1.0), None, None),
    # -- curve_fit's start is named p0, as the user wrote it --------------------------------
    ("curve_fit p0 holding a string", fit(p0=[1.0, "a"]), TypeError, r"p0\[1\] is a str; every leaf of p0 must be a number"),
    ("curve_fit p0 holding NaN", fit(p0=[np.nan, 1.0]), ValueError, r"p0\[0\] contains NaN or inf .*must be finite"),
    ("curve_fit p0 empty", fit(p0=[]), ValueError, r"p0 has no array or number in it; got \[\]"),
]


@pytest.mark.parametrize("call, error, message", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_malformed_call_names_the_argument(call, error, message):
    check_malformed_call(call, error, message)


def test_the_catalogue_has_a_row_per_defect_found():
    assert len(SWITCHES) + len(CASES) >= 60
