"""A catalogue of malformed calls across the public API.

Each row is one mistake a user makes; the error must be of the expected type and its
message must name the argument and say what would be accepted.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest
import scipy.optimize as so

import autominimize as am

Point = namedtuple("Point", "a b")


def quad(x):
    return (x**2).sum()


def quad_tree(p):
    return (p["a"] ** 2).sum() + (p["b"] ** 2).sum()


X = np.ones(2)
TREE = {"a": np.ones(2), "b": np.ones(3)}


def mini(**kwargs):
    fun = kwargs.pop("fun", quad)
    x0 = kwargs.pop("x0", X)
    return lambda: am.minimize(fun, x0, **{"backend": "numpy", **kwargs})


def tree(**kwargs):
    return mini(fun=quad_tree, x0=TREE, **kwargs)


CASES = [
    # -- fun and x0 -------------------------------------------------------------------
    ("fun not callable", mini(fun=3.0), TypeError, r"fun must be callable; got float"),
    ("x0 empty dict", mini(x0={}), ValueError, r"x0 has no array or number in it"),
    ("x0 string leaf", mini(x0={"a": "one"}), TypeError, r"x0\['a'\] is a str; every leaf of x0 must be a number, a NumPy array"),
    ("x0 complex", mini(x0=np.array([1j])), TypeError, r"x0 has dtype complex128; parameters must be real numbers"),
    (
        "x0 with NaN",
        mini(x0=np.array([1.0, np.nan])),
        ValueError,
        r"x0 contains NaN or inf \(first at index \(1,\)\); the starting point must be finite",
    ),
    ("x0 with inf in a namedtuple", mini(fun=lambda p: p.a + p.b, x0=Point(1.0, np.inf)), ValueError, r"x0\.b contains NaN or inf"),
    ("x0 None leaf only", mini(x0=[None]), ValueError, r"x0 has no array or number in it"),
    ("x0 object leaf", mini(x0=[object()]), TypeError, r"x0\[0\] is a object; every leaf of x0 must be"),
    ("non-scalar objective", mini(fun=lambda x: x * 2.0, method="L-BFGS-B"), ValueError, r"fun must return a scalar"),
    # -- method and options ---------------------------------------------------------------
    ("unknown method", mini(method="newton"), ValueError, r"method='newton' is not a scipy.optimize.minimize method; choose one of: nelder-mead"),
    ("method of a wrong type", mini(method=3), TypeError, r"method must be a string or a callable; got int"),
    (
        "unknown option",
        mini(method="L-BFGS-B", options={"maxiterations": 3}),
        ValueError,
        r"options: 'maxiterations' is not an option of any scipy.optimize.minimize method; did you mean 'maxiter'",
    ),
    (
        "options not a dict",
        mini(method="BFGS", options=[("maxiter", 3)]),
        TypeError,
        r"options must be a dict of the method's options \(see scipy.optimize.show_options\); got list",
    ),
    ("tol not a number", mini(method="BFGS", tol="small"), TypeError, r"tol must be a finite non-negative number; got .small. \(str\)"),
    ("callback not callable", mini(method="BFGS", callback=3), TypeError, r"callback must be callable; got int"),
    # -- backend, precision and the other keywords --------------------------------------
    ("unknown backend", mini(backend="theano"), ValueError, r"backend='theano' is not a known backend; use one of 'numpy', 'jax'"),
    ("backend of a wrong type", mini(backend=3), ValueError, r"backend=3 is not a known backend"),
    ("unknown precision", mini(precision="float16"), ValueError, r"precision='float16' is not supported; use 'float64' \(default\) or 'float32'"),
    ("unknown hvp_type", mini(hvp_type="sideways"), ValueError, r"hvp_type='sideways' is not one of"),
    ("unknown unpack", mini(unpack="spread"), ValueError, r"unpack='spread' is not one of \('auto', 'none', 'args', 'kwargs'\)"),
    ("unpack kwargs on an array", mini(unpack="kwargs"), TypeError, r"unpack='kwargs' needs x0 to be a dict with string keys"),
    ("unpack args on an array", mini(unpack="args"), TypeError, r"unpack='args' needs x0 to be a list or a tuple"),
    ("unknown error_handling", mini(error_handling="ignore"), ValueError, r"error_handling='ignore' is not accepted; use 'raise'"),
    ("loss_callback not callable", mini(method="BFGS", loss_callback="print"), TypeError, r"loss_callback must be callable; got str"),
    ("log not a path", mini(method="BFGS", log=3), TypeError, r"log must be a file path or an am.SQLiteLog; got int"),
    ("progress as text", mini(method="BFGS", progress="no"), TypeError, r"progress must be True or False; got 'no' \(str\)"),
    ("history as a count", mini(method="BFGS", history=2), TypeError, r"history must be True or False; got 2 \(int\)"),
    (
        "log commit interval of zero",
        lambda: am.SQLiteLog("run.sqlite", commit_interval=0),
        ValueError,
        r"commit_interval must be a positive number of seconds; got 0",
    ),
    # -- derivatives --------------------------------------------------------------------
    (
        "unknown jac scheme",
        mini(method="BFGS", jac="5-point"),
        ValueError,
        r"jac='5-point' is not accepted; use None \(autodiff\), a callable, True, or one of",
    ),
    (
        "jac and fun_and_jac",
        mini(method="BFGS", jac=lambda x: 2 * x, fun_and_jac=lambda x: (quad(x), 2 * x)),
        ValueError,
        r"give the gradient once: jac= or fun_and_jac=, not both",
    ),
    (
        "hess for BFGS",
        mini(method="BFGS", hess=lambda x: np.eye(2)),
        ValueError,
        r"method='bfgs' does not use second-order information; hess/hessp would be ignored",
    ),
    (
        "hessp for trust-exact",
        mini(method="trust-exact", hessp=lambda x, p: p),
        ValueError,
        r"method='trust-exact' needs the full Hessian; pass hess",
    ),
    ("hess and hessp", mini(method="trust-ncg", hess=lambda x: np.eye(2), hessp=lambda x, p: p), ValueError, r"give either hess or hessp, not both"),
    (
        "hess strategy outside trust-constr",
        mini(method="trust-ncg", hess=so.BFGS()),
        ValueError,
        r"only trust-constr accepts a HessianUpdateStrategy",
    ),
    ("jac with the wrong structure", tree(method="BFGS", jac=lambda p: {"a": 2 * p["a"]}), ValueError, r"jac does not have the structure of x0"),
    ("jac with the wrong shape", mini(method="BFGS", jac=lambda x: np.ones(3)), ValueError, r"jac: jac has shape \(3,\), expected \(2,\)"),
    (
        "hess with the wrong shape",
        mini(method="trust-exact", hess=lambda x: np.eye(3)),
        ValueError,
        r"hess must return an \(2, 2\) array; got shape \(3, 3\)",
    ),
    # -- bounds -------------------------------------------------------------------------
    (
        "bounds for BFGS",
        mini(method="BFGS", bounds=(0, 1)),
        ValueError,
        r"method='bfgs' cannot handle bounds \(scipy would ignore them\); use one of: nelder-mead",
    ),
    ("bounds low above high", mini(bounds=(1, 0)), ValueError, r"bounds for x0\[0\]: low 1.0 is greater than high 0.0"),
    (
        "bounds with unknown keys",
        tree(bounds={"c": (0, 1)}),
        ValueError,
        r"bounds has keys \['c'\] that x0 does not have; x0's keys are \['a', 'b'\]",
    ),
    (
        "bounds of the wrong length",
        tree(bounds=[(0, 1)] * 4),
        ValueError,
        r"bounds does not mirror x0's structure .* nor a sequence of 5 per-element pairs",
    ),
    (
        "bounds limit not broadcasting",
        tree(bounds={"a": (0, [1, 2, 3])}),
        ValueError,
        r"bounds\['a'\]: a limit of shape \(3,\) does not broadcast to the leaf's shape \(2,\)",
    ),
    ("bounds not numbers", mini(bounds=("low", "high")), ValueError, r"bounds: 'low' is not a number, None or an array of numbers"),
    ("bounds with NaN", mini(bounds=(np.nan, 1)), ValueError, r"bounds contain NaN; use None or ±inf for an unbounded side"),
    (
        "Bounds of the wrong size",
        tree(bounds=so.Bounds(np.zeros(4), np.ones(4))),
        ValueError,
        r"bounds: scipy.optimize.Bounds must hold numbers or flat vectors of length 5",
    ),
    (
        "bounds entry unreadable",
        tree(bounds={"a": "positive"}),
        ValueError,
        r"bounds\['a'\]: cannot read 'positive' as bounds for a leaf of shape \(2,\); give None, a \(low, high\) pair",
    ),
    # -- constraints --------------------------------------------------------------------
    (
        "constraints for BFGS",
        mini(method="BFGS", constraints={"type": "ineq", "fun": lambda x: x[0]}),
        ValueError,
        r"method='bfgs' cannot handle constraints .* use one of: cobyla",
    ),
    (
        "constraint of a wrong type",
        mini(method="SLSQP", constraints=3),
        ValueError,
        r"constraints must be a dict, a LinearConstraint, a NonlinearConstraint, or a list of them; got int",
    ),
    (
        "constraint list item wrong",
        mini(method="SLSQP", constraints=[{"type": "ineq", "fun": lambda x: x[0]}, "x>0"]),
        ValueError,
        r"constraints\[1\] is a str; each constraint must be a dict",
    ),
    (
        "constraint unknown key",
        mini(method="SLSQP", constraints={"type": "ineq", "fn": lambda x: x[0]}),
        ValueError,
        r"constraints has unknown keys \['fn'\]; accepted keys are",
    ),
    (
        "constraint without fun",
        mini(method="SLSQP", constraints={"type": "ineq"}),
        ValueError,
        r"constraints needs a callable 'fun' taking the parameters",
    ),
    (
        "constraint unknown type",
        mini(method="SLSQP", constraints={"type": "le", "fun": lambda x: x[0]}),
        ValueError,
        r"constraints\['type'\] is 'le'; use 'eq' \(c\(x\) == 0\) or 'ineq' \(c\(x\) >= 0\)",
    ),
    (
        "constraint jac not callable",
        mini(method="SLSQP", constraints={"type": "ineq", "fun": lambda x: x[0], "jac": 3}),
        ValueError,
        r"constraints\['jac'\] must be a callable taking the parameters; got 3",
    ),
    (
        "LinearConstraint of the wrong width",
        mini(method="SLSQP", constraints=so.LinearConstraint(np.ones((1, 3)), 0, 1)),
        ValueError,
        r"constraints: LinearConstraint.A has 3 columns but there are 2 parameters",
    ),
    # -- conflicting arguments ----------------------------------------------------------
    ("data for a scipy method", mini(method="BFGS", data=[1, 2]), ValueError, r"data=, epochs= and batch= are for the native methods"),
    (
        "hess for a native method",
        mini(method="sgd", hess=lambda x: np.eye(2)),
        ValueError,
        r"method='sgd' computes its own curvature and takes no constraints",
    ),
    (
        "constraints for a least-squares method",
        mini(method="trf", constraints={"type": "eq", "fun": lambda x: x[0]}),
        ValueError,
        r"method='trf' is a least-squares method: it takes no hess, hessp or constraints",
    ),
    (
        "workers with autodiff",
        mini(method="BFGS", workers=2, jac=lambda x: 2 * x),
        ValueError,
        r"workers= and executor= parallelize autominimize's finite differences, but none are taken here",
    ),
    (
        "workers not positive",
        mini(method="BFGS", workers=0),
        ValueError,
        r"workers must be a positive integer \(the number of local processes\); got 0",
    ),
    (
        "workers and executor",
        mini(method="BFGS", workers=2, executor=object()),
        ValueError,
        r"give workers= \(local processes\) or executor= \(any Executor\), not both",
    ),
    (
        "executor without submit",
        mini(method="BFGS", executor=object()),
        TypeError,
        r"executor must be a concurrent.futures.Executor \(with a submit method\)",
    ),
    # -- least squares and curve_fit ----------------------------------------------------
    (
        "least_squares unknown method",
        lambda: am.least_squares(lambda x: x - 1, X, method="gauss", backend="numpy"),
        ValueError,
        r"method='gauss' is not a least-squares method; use one of \('trf', 'dogbox', 'lm'\)",
    ),
    (
        "least_squares lm with bounds",
        lambda: am.least_squares(lambda x: x - 1, X, method="lm", bounds=(0, 2), backend="numpy"),
        ValueError,
        r"method='lm' does not handle bounds; use method='trf' or 'dogbox'",
    ),
    (
        "least_squares complex step",
        lambda: am.least_squares(lambda x: x - 1, X, jac="cs", backend="numpy"),
        ValueError,
        r"jac='cs' \(complex step\) is not supported: autominimize evaluates fun at real points.*Use jac=None \(exact derivatives; finite differences on NumPy\), '2-point' or '3-point'",
    ),
    ("least_squares no function", lambda: am.least_squares(None, X), TypeError, r"give fun \(the residual function\) or fun_and_jac"),
    (
        "least_squares kwargs not a dict",
        lambda: am.least_squares(lambda x: x - 1, X, kwargs=3, backend="numpy"),
        TypeError,
        r"kwargs must be a dict of keyword arguments \(or None\); got int",
    ),
    (
        "least_squares tr_options not a dict",
        lambda: am.least_squares(lambda x: x - 1, X, tr_options=3, backend="numpy"),
        TypeError,
        r"tr_options must be a dict of keyword arguments \(or None\); got int",
    ),
    (
        "least_squares jac_sparsity without a scheme",
        lambda: am.least_squares(lambda x: x - 1, X, jac_sparsity=np.eye(2), backend="numpy"),
        ValueError,
        r"jac_sparsity is for scipy's sparse finite differences; pass it with jac='2-point' or '3-point'",
    ),
    (
        "minimize trf unknown option",
        mini(fun=am.residuals(lambda x: x - 1), method="trf", options={"maxfev": 3}),
        ValueError,
        r"options: \['maxfev'\] are not options of method='trf'; accepted:",
    ),
    ("curve_fit f not callable", lambda: am.curve_fit(3, X, X, p0=[1.0]), TypeError, r"f must be callable; got int"),
    (
        "curve_fit bad nan_policy",
        lambda: am.curve_fit(lambda x, a: a * x, X, X, p0=[1.0], nan_policy="drop"),
        ValueError,
        r"nan_policy='drop' is not supported; use None, 'raise' or 'omit'",
    ),
    (
        "curve_fit sigma of the wrong shape",
        lambda: am.curve_fit(lambda x, a: a * x, X, X, p0=[1.0], sigma=np.ones(3), backend="numpy"),
        ValueError,
        r"sigma has shape \(3,\); expected \(2,\) \(one per data point\)",
    ),
    (
        "curve_fit NaN in the data",
        lambda: am.curve_fit(lambda x, a: a * x, X, np.array([1.0, np.nan]), p0=[1.0]),
        ValueError,
        r"xdata or ydata contain NaN or inf; clean them or pass nan_policy='omit'",
    ),
    ("residuals of a non-callable", lambda: am.residuals(3), TypeError, r"residuals\(\) needs a callable; got int"),
    # -- global optimizers --------------------------------------------------------------
    (
        "differential_evolution infinite bounds",
        lambda: am.differential_evolution(quad, [(-np.inf, 1)] * 2, backend="numpy"),
        ValueError,
        r"bounds must be finite for every parameter \(this method samples the whole box\)",
    ),
    (
        "differential_evolution without bounds",
        lambda: am.differential_evolution(quad, None, backend="numpy"),
        ValueError,
        r"bounds is required: give finite \(low, high\) limits for every parameter",
    ),
    (
        "differential_evolution vectorized not bool",
        lambda: am.differential_evolution(quad, [(-1, 1)] * 2, vectorized="yes", backend="numpy"),
        TypeError,
        r"vectorized must be None \(batch when the backend can\), True \(fun\(x\) with x of shape \(n, S\), as in scipy\), 'rows' \(x of shape \(S, n\)\) or False; got 'yes'",
    ),
    (
        "differential_evolution bad updating",
        lambda: am.differential_evolution(quad, [(-1, 1)] * 2, updating="lazy", backend="numpy"),
        ValueError,
        r"updating='lazy': use 'immediate', 'deferred' or None",
    ),
    (
        "differential_evolution bad polish",
        lambda: am.differential_evolution(quad, [(-1, 1)] * 2, polish=3, backend="numpy"),
        TypeError,
        r"polish must be True, False, a method name or a dict of am.minimize arguments; got 3",
    ),
    (
        "differential_evolution bad integrality",
        lambda: am.differential_evolution(quad, [(-1, 1)] * 2, integrality=[True] * 3, backend="numpy"),
        ValueError,
        r"integrality must mirror x0's structure, or be one value or a flat array of 2",
    ),
    (
        "basinhopping unknown minimizer key",
        lambda: am.basinhopping(quad, X, niter=1, minimizer_kwargs={"solver": "BFGS"}, backend="numpy"),
        TypeError,
        r"minimizer_kwargs has unknown key\(s\) \['solver'\]; it accepts args, method",
    ),
    (
        "basinhopping minimizer_kwargs not a dict",
        lambda: am.basinhopping(quad, X, niter=1, minimizer_kwargs="BFGS", backend="numpy"),
        TypeError,
        r"minimizer_kwargs must be a dict of am.minimize arguments; got str",
    ),
    (
        "shgo bounds in minimizer_kwargs",
        lambda: am.shgo(quad, [(-1, 1)] * 2, minimizer_kwargs={"bounds": (0, 1)}, backend="numpy"),
        TypeError,
        r"minimizer_kwargs: the local solves are confined to shgo's own boxes; give bounds to shgo instead",
    ),
    ("global fun not callable", lambda: am.dual_annealing("quad", [(-1, 1)] * 2), TypeError, r"func must be callable; got str"),
    (
        "global callback not callable",
        lambda: am.dual_annealing(quad, [(-1, 1)] * 2, callback=3, backend="numpy"),
        TypeError,
        r"callback must be callable; got int",
    ),
    # -- numerical derivatives ----------------------------------------------------------
    (
        "numdiff unknown scheme",
        lambda: am.numdiff.gradient(quad, X, method="sideways"),
        ValueError,
        r"method='sideways' is not a finite-difference scheme; use one of \('forward', 'backward', 'central'\)",
    ),
    (
        "numdiff negative step",
        lambda: am.numdiff.gradient(quad, X, rel_step=-1.0),
        ValueError,
        r"rel_step=-1.0 is not valid; give None or finite relative steps greater than 0",
    ),
    # -- resume and logs ----------------------------------------------------------------
    ("read_log of a missing file", lambda: am.read_log("/nonexistent/run.sqlite"), FileNotFoundError, r"/nonexistent/run.sqlite"),
    (
        "log in a missing directory",
        mini(method="BFGS", log="/nonexistent/dir/run.sqlite"),
        ValueError,
        r"log='/nonexistent/dir/run.sqlite': the directory '/nonexistent/dir' does not exist; create it or give another path",
    ),
    # -- found when the library was tried from outside ----------------------------------
    (
        "x0 empty array",
        mini(x0=np.array([])),
        ValueError,
        r"x0 has no parameter: its leaves hold no number \(shapes \[\(0,\)\]\); give at least one value",
    ),
    ("fun returns None", mini(fun=lambda x: None, method="BFGS"), ValueError, r"fun returned None; a scalar method needs one real number"),
    (
        "fun returns a complex number",
        mini(fun=lambda x: 1j + x.sum(), method="BFGS"),
        ValueError,
        r"fun returned a complex number; a scalar method needs one real number.*real part",
    ),
    (
        "fun returns a string",
        mini(fun=lambda x: "1.0", method="Nelder-Mead"),
        ValueError,
        r"fun returned a str \('1.0'\); a scalar method needs one real number",
    ),
    (
        "fun returns (f, g) without jac=True",
        mini(fun=lambda x: (quad(x), 2 * x), method="BFGS"),
        ValueError,
        r"fun returned a tuple of 2; .* If it returns \(value, gradient\), pass jac=True",
    ),
    (
        "NonlinearConstraint lb of the wrong shape",
        mini(method="SLSQP", constraints=so.NonlinearConstraint(lambda x: x, np.zeros(3), np.inf)),
        ValueError,
        r"constraints: lb has shape \(3,\) but the constraint function returns 2 values; give lb as one number or 2 numbers",
    ),
    (
        "NonlinearConstraint ub of the wrong shape",
        mini(method="trust-constr", constraints=so.NonlinearConstraint(lambda x: x, -np.inf, np.ones(3))),
        ValueError,
        r"constraints: ub has shape \(3,\) but the constraint function returns 2 values",
    ),
    (
        "maxiter a string",
        mini(method="BFGS", options={"maxiter": "10"}),
        TypeError,
        r"options\['maxiter'\] must be a non-negative integer; got '10' \(str\)",
    ),
    (
        "maxiter negative (scipy)",
        mini(method="BFGS", options={"maxiter": -1}),
        ValueError,
        r"options\['maxiter'\] must be a non-negative integer; got -1",
    ),
    (
        "maxiter negative (native)",
        mini(method="lbfgs-native", options={"maxiter": -1}),
        ValueError,
        r"options\['maxiter'\] must be a non-negative integer; got -1",
    ),
    ("tol NaN", mini(method="BFGS", tol=float("nan")), ValueError, r"tol must be a finite non-negative number; got nan"),
    (
        "least_squares diff_step text",
        lambda: am.least_squares(lambda x: x - 1.0, np.zeros(2), diff_step="x", backend="numpy"),
        ValueError,
        r"diff_step='x' is not valid; give None or finite relative steps",
    ),
    # -- native hyperparameters: checked when the algorithm is made, for am.minimize and am.optim
    ("sgd lr negative", mini(method="sgd", options={"lr": -0.1}), ValueError, r"sgd: lr=-0.1 is not valid; lr must be a positive number"),
    ("sgd lr text", mini(method="sgd", options={"lr": "0.1"}), ValueError, r"sgd: lr='0.1' is not valid; lr must be a positive number"),
    ("sgd momentum 2", mini(method="sgd", options={"momentum": 2}), ValueError, r"momentum=2 is not valid; momentum must be a number in \[0, 1\)"),
    (
        "lbfgs-native c2 NaN",
        mini(method="lbfgs-native", options={"c2": float("nan")}),
        ValueError,
        r"c2=nan is not valid; c2 must be a number in \(0, 1\)",
    ),
    ("tonga k fractional", mini(method="tonga", options={"k": 2.5}), ValueError, r"k=2.5 is not valid; k must be a whole number >= 1"),
    (
        "hessian-free boost below one",
        mini(method="hessian-free", options={"boost": 0.5}),
        ValueError,
        r"boost=0.5 is not valid; boost must be a number > 1",
    ),
    ("optim sgd lr negative", lambda: am.optim.sgd(lr=-1.0), ValueError, r"sgd: lr=-1.0 is not valid"),
    ("optim delta-bar-delta lr NaN", lambda: am.optim.delta_bar_delta(lr=float("nan")), ValueError, r"delta-bar-delta: lr=nan is not valid"),
    (
        "gtol negative",
        mini(method="BFGS", options={"gtol": -1e-5}),
        ValueError,
        r"options\['gtol'\] must be a finite non-negative number; got -1e-05",
    ),
    (
        "torch bfloat16 x0",
        lambda: am.minimize(quad, _torch(lambda t: t.ones(2, dtype=t.bfloat16)), method="BFGS"),
        TypeError,
        r"x0 has torch dtype bfloat16; parameters must be float64, float32, float16 or integer tensors: pass x0.double\(\)",
    ),
    (
        "torch meta x0",
        lambda: am.minimize(quad, _torch(lambda t: t.ones(2, device="meta")), method="BFGS"),
        TypeError,
        r"x0 is a torch tensor on the meta device, which holds no values",
    ),
    (
        "torch sparse x0",
        lambda: am.minimize(quad, _torch(lambda t: t.ones(2).to_sparse()), method="BFGS"),
        TypeError,
        r"x0 is a sparse torch tensor \(layout torch.sparse_coo\); parameters must be dense tensors: pass x0.to_dense\(\)",
    ),
    (
        "shgo n=0",
        lambda: am.shgo(quad, [(-1, 1)] * 2, n=0, backend="numpy"),
        ValueError,
        r"n must be a positive integer \(the number of sampling points\); got 0",
    ),
    (
        "shgo n not an integer",
        lambda: am.shgo(quad, [(-1, 1)] * 2, n="64", backend="numpy"),
        TypeError,
        r"n must be a non-negative integer; got '64' \(str\)",
    ),
    (
        "basinhopping x0=None",
        lambda: am.basinhopping(quad, None, niter=1, backend="numpy"),
        TypeError,
        r"x0 is required: basinhopping starts its local solves from x0",
    ),
    ("keras.fit of a string", lambda: _keras_fit("model"), TypeError, r"model must be a keras.Model \(its trainable weights are fitted\); got str"),
    (
        "tf ScipyOptimizerInterface with a vector loss",
        lambda: _tf_vector_loss(),
        ValueError,
        r"loss must return a scalar for a scalar minimization method, but it returned an array of shape \(2,\)",
    ),
    (
        "dict x0 keys that are not fun's parameters",
        mini(fun=lambda a, b: a**2 + b**2, x0={"a": 1.0, "c": 2.0}),
        TypeError,
        r"x0's keys \['a', 'c'\] do not match fun's parameters \['a', 'b'\] \(missing \['b'\], unknown \['c'\]\)\. A dict x0 is passed as fun\(\*\*x0\)",
    ),
    (
        "flat bounds of the wrong length",
        tree(method="L-BFGS-B", bounds=(np.zeros(4), np.ones(4))),
        ValueError,
        r"bounds does not mirror x0's structure .* got \(low, high\) arrays of 4 and 4 elements\. Give bounds in x0's structure, 5 \(low, high\) pairs in x0's flat order, or scipy.optimize.Bounds of 5 elements\.$",
    ),
    # -- found in a later trial ----------------------------------------------------------
    (
        "hessp not callable",
        mini(method="Newton-CG", hessp=3),
        TypeError,
        r"hessp must be a callable hessp\(x, p\) returning the Hessian times p, or True \(autodiff\); got 3",
    ),
    (
        "torch_device not a device",
        lambda: am.minimize(quad, _torch(lambda t: t.zeros(2, dtype=t.float64)), method="BFGS", torch_device="gpu9"),
        ValueError,
        r"torch_device='gpu9' is not a torch device; give e.g. 'cpu', 'cuda'",
    ),
    ("read_log of a number", lambda: am.read_log(3), TypeError, r"path must be the log's file path \(a str or os.PathLike\); got int"),
    ("SQLiteLog of None", lambda: am.SQLiteLog(None), TypeError, r"path must be the log's file path \(a str or os.PathLike\); got NoneType"),
    ("SQLiteLog iterates text", lambda: am.SQLiteLog("run.sqlite", iterates="yes"), TypeError, r"iterates must be True or False; got 'yes'"),
    (
        "resume a number",
        mini(method="BFGS", resume=3),
        TypeError,
        r"resume must be the file path of a log written with log= \(a str or os.PathLike\); got int",
    ),
    ("numdiff fun not callable", lambda: am.numdiff.gradient(3, X), TypeError, r"fun must be callable; got int"),
    (
        "numdiff rel_step text",
        lambda: am.numdiff.gradient(quad, X, rel_step="a"),
        TypeError,
        r"rel_step must be None or finite relative steps greater than 0 \(a number, or one per parameter\); got 'a' \(str\)",
    ),
    ("check_grad fun not callable", lambda: am.check_grad(3, X, jac=lambda x: 2 * x), TypeError, r"fun must be callable; got int"),
    ("tf ScipyOptimizerInterface tol text", lambda: _tf_interface(tol="a"), TypeError, r"tol must be a finite non-negative number; got 'a' \(str\)"),
    (
        "keras.fit y of another length",
        lambda: _keras_dense_fit(np.ones((6, 1)), np.ones(4)),
        ValueError,
        r"X has 6 samples but y has 4; give one target per sample",
    ),
]


def _torch(make):
    torch = pytest.importorskip("torch")
    return make(torch)


def _keras_fit(model):
    pytest.importorskip("keras")
    return am.keras.fit(model, "mse", np.ones((3, 1)), np.ones(3))


def _tf_interface(**kwargs):
    tf = pytest.importorskip("tensorflow")
    v = tf.Variable([1.0, 2.0], dtype=tf.float64)
    return am.tf.ScipyOptimizerInterface(lambda: tf.reduce_sum(v**2), var_list=[v], **kwargs).minimize()


def _keras_dense_fit(X, y):
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input(shape=(1,)), keras.layers.Dense(1)])
    return am.keras.fit(model, "mse", X, y)


def _tf_vector_loss():
    tf = pytest.importorskip("tensorflow")
    v = tf.Variable([1.0, 2.0])
    return am.tf.ScipyOptimizerInterface(lambda: v * v).minimize()


def test_the_catalogue_has_at_least_fifty_calls():
    assert len(CASES) >= 50


@pytest.mark.parametrize("call, error, message", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_malformed_call_names_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()
