"""Malformed calls from a fifth trial: recording, plots, finite differences, batched fits, globals.

Each row is one mistake: the error must be of the expected type and its message must name
the argument, say what was wrong and what would be accepted, and print no array whole. Rows
whose error is None are valid calls that look malformed: they must work.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.optimize as so

from conftest import check_malformed_call

import autominimize as am


def quad(x):
    return float(np.sum((x - 1.0) ** 2))


def model(x, a, b):
    return a * np.exp(-b * x)


XD = np.linspace(0.0, 1.0, 50)
Y3 = np.stack([model(XD, 2.0, 1.0)] * 3)
BOX = [(-2.0, 2.0), (-2.0, 2.0)]


def decay(p, y):
    return p["a"] * np.exp(-p["k"] * XD) - y


def starts(count=3, other=None):
    return {"a": np.ones(count), "k": np.ones(count if other is None else other)}


def batch_loss(x, scale):
    return quad(x) * scale


def batched_lsq(**kwargs):
    return lambda: am.batched_least_squares(decay, kwargs.pop("x0", starts()), **{"member_args": (Y3,), "backend": "numpy", **kwargs})


def batched_fit(**kwargs):
    return lambda: am.batched_curve_fit(model, XD, kwargs.pop("ydata", Y3), **{"p0": np.ones((3, 2)), "backend": "numpy", **kwargs})


def fit(**kwargs):
    return lambda: am.curve_fit(model, XD, Y3[0], **{"p0": [1.0, 1.0], "backend": "numpy", **kwargs})


def grad(**kwargs):
    return lambda: am.numdiff.gradient(kwargs.pop("fun", quad), kwargs.pop("x0", np.zeros(2)), **kwargs)


@pytest.fixture(scope="module")
def result():
    return am.minimize(quad, np.zeros(2), backend="numpy")


NOT_A_DB = "not an SQLite file " * 50


CASES = [
    # -- batched fits: a model that cannot take the call, named with the counts, no array printed --
    (
        "batched_least_squares member_args one more than fun takes",
        batched_lsq(member_args=(Y3, Y3)),
        TypeError,
        r"fun is called as fun\(x, \*member_args_b, \*args\): one member's parameters in x0's structure, then member b's row of each "
        r"of the 2 member_args array\(s\), then the 0 item\(s\) of args=\(\); decay\(p, y\) cannot take that \(too many positional arguments\)",
    ),
    (
        "batched_least_squares args one more than fun takes",
        batched_lsq(args=(np.ones(1000),)),
        TypeError,
        r"then the 1 item\(s\) of args=\(<ndarray of shape \(1000,\)>,\); decay\(p, y\) cannot take that",
    ),
    (
        "batched_curve_fit p0 of three values for a model of two",
        batched_fit(p0=np.ones((3, 3))),
        TypeError,
        r"f is called as f\(xdata, \*p0\): xdata, then the 3 values of p0; model\(x, a, b\) cannot take that \(too many positional arguments\); "
        r"give p0 one value per parameter of f after xdata",
    ),
    (
        "batched_least_squares no member",
        batched_lsq(x0=starts(0), member_args=(Y3[:0],)),
        ValueError,
        r"x0 holds no member: the first \(batch\) axis",
    ),
    ("batched_curve_fit no member", batched_fit(ydata=Y3[:0], p0=np.ones((0, 2))), ValueError, r"ydata has shape \(0, 50\): no point to fit"),
    ("batched_curve_fit sigma text", batched_fit(sigma="a"), TypeError, r"sigma must be an array of real numbers; got 'a' \(str\)"),
    (
        "batched_curve_fit xdata text",
        lambda: am.batched_curve_fit(model, "ab", Y3, p0=np.ones((3, 2)), backend="numpy"),
        TypeError,
        r"xdata must be an array of real numbers; got 'ab'",
    ),
    ("batched_curve_fit ydata text", batched_fit(ydata="ab"), TypeError, r"ydata must be an array of real numbers; got 'ab'"),
    (
        "batched_curve_fit sigma zero",
        batched_fit(sigma=np.zeros(50)),
        ValueError,
        r"ydata is NaN or inf, or sigma NaN, inf or 0, at points of member\(s\) \[0, 1, 2\]",
    ),
    (
        "batched_curve_fit mask leaving a member without a point",
        batched_fit(mask=np.vstack([np.zeros(50, bool), np.ones((2, 50), bool)])),
        ValueError,
        r"mask leaves member\(s\) \[0\] without a point \(every one False\): nothing to fit them to",
    ),
    # -- curve_fit: the model's call and the arguments it does not pass --------------------------
    (
        "curve_fit p0 of three values for a model of two",
        fit(p0=[1.0, 1.0, 1.0]),
        TypeError,
        r"f is called as f\(xdata, \*p0\): xdata, then the 3 values of p0; model\(x, a, b\) cannot take that",
    ),
    ("curve_fit array p0 of three values", fit(p0=np.ones(3)), TypeError, r"f is called as f\(xdata, \*p0\): xdata, then the 3 values of p0"),
    (
        "curve_fit dict p0 with a key f does not have",
        fit(p0={"a": 1.0, "c": 1.0}),
        TypeError,
        r"f is called as f\(xdata, p0\): xdata, then p0 whole \(its keys \['a', 'c'\] are not all parameters of f.*missing a required argument: 'b'",
    ),
    ("curve_fit args", fit(args=(1.0,)), TypeError, r"curve_fit takes no args=: it calls f\(xdata, \*params\).*functools.partial"),
    ("curve_fit kwargs", fit(kwargs={"c": 1.0}), TypeError, r"curve_fit takes no kwargs="),
    # -- History: the constructor's rows and budget --------------------------------------------
    (
        "History evaluations a number",
        lambda: am.History(evaluations=3),
        TypeError,
        r"evaluations must be an iterable of \(kind, time, f, grad_norm\)",
    ),
    ("History iterations a string", lambda: am.History(iterations="ab"), TypeError, r"iterations must be an iterable of \(nit, time, f"),
    (
        "History iterations row too short",
        lambda: am.History(iterations=[(1,)]),
        ValueError,
        r"iterations\[0\] must be a \(nit, time, f, grad_norm, nfev, x\)",
    ),
    (
        "History evaluation of an unknown kind",
        lambda: am.History(evaluations=[("guess", 0.0, 1.0, 0.0)]),
        ValueError,
        r"evaluations\[0\] is of kind 'guess'",
    ),
    ("History leaves a number", lambda: am.History(leaves=3), TypeError, r"leaves must be an iterable of \(name, start, stop\)"),
    ("History leaves backwards", lambda: am.History(leaves=[("w", 4, 2)]), ValueError, r"leaves\[0\] must be \(name, start, stop\).*start <= stop"),
    ("History point_budget negative", lambda: am.History(point_budget=-1), ValueError, r"point_budget must be a non-negative integer; got -1"),
    ("History point_budget a string", lambda: am.History(point_budget="a"), TypeError, r"point_budget must be a non-negative integer; got 'a'"),
    (
        "History of valid rows",
        lambda: am.History([("value", 0.0, 1.0, np.nan)], [(0, 0.0, 1.0, 0.0, 1, None)], [("x", 0, 2)], point_budget=None),
        None,
        None,
    ),
    (
        "History.column of an array",
        lambda: am.History().column(np.ones(2)),
        ValueError,
        r"name=array\(\[1\., 1\.\]\) is not a column of the iterations",
    ),
    (
        "History.column of unknown rows",
        lambda: am.History().column("f", of="steps"),
        ValueError,
        r"of='steps' is not one of \('iterations', 'evaluations'\)",
    ),
    (
        "SQLiteLog in a missing directory",
        lambda: am.SQLiteLog("/nonexistent/dir/run.sqlite"),
        am.LogError,
        r"log='/nonexistent/dir/run.sqlite': the directory '/nonexistent/dir' does not exist; create it or give another path",
    ),
    ("SQLiteLog of a directory", lambda: am.SQLiteLog("/"), am.LogError, r"log='/' is a directory; give the path of a file"),
    # -- the log reader and resume=: the argument that named the file --------------------------
    (
        "read_log of a missing file",
        lambda: am.read_log("/nonexistent/run.sqlite"),
        FileNotFoundError,
        r"path='/nonexistent/run.sqlite': no such file",
    ),
    ("read_log of a directory", lambda: am.read_log("/"), am.LogError, r"path='/' is not a file"),
    (
        "resume of a missing file",
        lambda: am.minimize(quad, np.zeros(2), backend="numpy", resume="/nonexistent/run.sqlite"),
        FileNotFoundError,
        r"resume='/nonexistent/run.sqlite': no such file; give the path of a log written with log=",
    ),
    # -- plots -----------------------------------------------------------------------------------
    ("plot.criterion of an empty dict", lambda: am.plot.criterion({}), ValueError, r"runs is an empty dict: nothing to plot"),
    ("plot.criterion of an empty list", lambda: am.plot.criterion([]), ValueError, r"runs is an empty list: nothing to plot"),
    ("plot.criterion of numbers", lambda: am.plot.criterion([1, 2]), TypeError, r"runs\[0\] is of type int, which cannot be plotted"),
    ("plot.criterion of a labelled number", lambda: am.plot.criterion({"BFGS": 3}), TypeError, r"runs\['BFGS'\] is of type int"),
    (
        "plot.criterion of scipy's result",
        lambda: am.plot.criterion(so.OptimizeResult(x=np.zeros(2), fun=0.0)),
        TypeError,
        r"runs is a result without a history \(scipy's results have none",
    ),
    (
        "plot.criterion of a missing log",
        lambda: am.plot.criterion("/nonexistent/run.sqlite"),
        FileNotFoundError,
        r"runs='/nonexistent/run.sqlite': no such file",
    ),
    ("plot.criterion x an array", lambda: am.plot.criterion([], x=np.ones(2)), ValueError, r"x=array\(\[1\., 1\.\]\) is not one of \('iterations'"),
    ("plot.params of a list", lambda: am.plot.params([]), TypeError, r"result must be one run \(a result of am.minimize.*got a list"),
    ("plot.params of a dict", lambda: am.plot.params({}), TypeError, r"result must be one run .*got a dict"),
    ("plot.params of a missing log", lambda: am.plot.params("/nonexistent/run.sqlite"), FileNotFoundError, r"result='/nonexistent/run.sqlite'"),
    ("plot.profile of None", lambda: am.plot.profile(None), TypeError, r"rows must be an iterable of mappings.*got NoneType"),
    (
        "plot.profile of one row",
        lambda: am.plot.profile({"problem": "a", "solver": "b", "seconds": 1.0}),
        TypeError,
        r"rows must be an iterable of mappings.*got dict",
    ),
    (
        "plot.profile of a text measure",
        lambda: am.plot.profile([{"problem": "a", "solver": "b", "seconds": "fast"}]),
        TypeError,
        r"rows\[0\]\['seconds'\] must be a number \(None, NaN or inf for a failed solve\); got 'fast'",
    ),
    (
        "plot.profile of an array measure",
        lambda: am.plot.profile([{"problem": "a", "solver": "b", "seconds": np.ones(2)}]),
        TypeError,
        r"rows\[0\]\['seconds'\] must be a number",
    ),
    (
        "plot.profile of a zero measure",
        lambda: am.plot.profile([{"problem": "a", "solver": "b", "seconds": 0.0}, {"problem": "a", "solver": "c", "seconds": 1.0}]),
        ValueError,
        r"rows\[0\]\['seconds'\]=0.0: a performance profile divides by the best measure, which must be above 0",
    ),
    ("plot.profile measure an array", lambda: am.plot.profile([], measure=np.ones(2)), TypeError, r"measure must be the name of the rows' key"),
    # -- finite differences ----------------------------------------------------------------------
    ("numdiff rel_step NaN", grad(rel_step=np.nan), ValueError, r"rel_step=nan is not valid; give None or finite relative steps greater than 0"),
    ("numdiff rel_step inf", grad(rel_step=np.inf), ValueError, r"rel_step=inf is not valid"),
    ("numdiff rel_step zero", grad(rel_step=0.0), ValueError, r"rel_step=0.0 is not valid"),
    ("numdiff rel_step True", grad(rel_step=True), TypeError, r"rel_step must be None or finite relative steps .*got True \(bool\)"),
    ("numdiff rel_step of 3 for 2 parameters", grad(rel_step=np.full(3, 1e-6)), ValueError, r"rel_step has shape \(3,\); .*a number, or 2 of them"),
    ("numdiff rel_step 2-D", grad(rel_step=np.full((2, 2), 1e-6)), ValueError, r"rel_step has shape \(2, 2\)"),
    ("numdiff rel_step per parameter", grad(rel_step=[1e-6, 1e-5]), None, None),
    (
        "numdiff rel_step below machine epsilon",
        grad(rel_step=1e-20),
        ValueError,
        r"rel_step=1e-20 gives a step of 1e-20 at index 0 \(x = 0.0\): a relative step below machine epsilon",
    ),
    (
        "numdiff one rel_step below machine epsilon",
        grad(rel_step=[1e-6, 1e-17]),
        ValueError,
        r"gives a step of .* at index 1 .*below machine epsilon",
    ),
    (
        "minimize finite_diff_rel_step of 3 for 2 parameters",
        lambda: am.minimize(quad, np.zeros(2), method="BFGS", options={"finite_diff_rel_step": [1e-6] * 3}, backend="numpy"),
        ValueError,
        r"options\['finite_diff_rel_step'\] has shape \(3,\); give None or finite relative steps greater than 0: a number, or 2 of them",
    ),
    (
        "minimize L-BFGS-B eps with a negative step",
        lambda: am.minimize(quad, np.zeros(2), method="L-BFGS-B", options={"eps": [1e-8, -1.0]}, backend="numpy"),
        ValueError,
        r"options\['eps'\]=\[1e-08, -1.0\] is not valid; give None or finite steps greater than 0",
    ),
    ("numdiff method an array", grad(method=np.ones(2)), ValueError, r"method=array\(\[1\., 1\.\]\) is not a finite-difference scheme"),
    ("numdiff fun returning None", grad(fun=lambda x: None), TypeError, r"fun returned None; finite differences need real numbers from fun"),
    ("numdiff fun returning text", grad(fun=lambda x: "a"), TypeError, r"fun returned 'a'; finite differences need real numbers"),
    ("numdiff fun returning complex", grad(fun=lambda x: 1j * x.sum()), TypeError, r"fun returned .*j; finite differences need real numbers"),
    (
        "numdiff.approx_jacobian x text",
        lambda: am.numdiff.approx_jacobian(quad, "ab"),
        TypeError,
        r"x must be a number or an array of real numbers; got 'ab'",
    ),
    ("numdiff.approx_jacobian f0 text", lambda: am.numdiff.approx_jacobian(quad, np.zeros(2), f0="a"), TypeError, r"f0 must be a number or an array"),
    (
        "numdiff.approx_jacobian bounds of another size",
        lambda: am.numdiff.approx_jacobian(quad, np.zeros(2), bounds=(np.zeros(3), np.ones(3))),
        ValueError,
        r"bounds must be None or a \(lower, upper\) pair of numbers or arrays of x's shape \(2,\); got \(<ndarray of shape \(3,\)>",
    ),
    (
        "numdiff.approx_jacobian bounds a number",
        lambda: am.numdiff.approx_jacobian(quad, np.zeros(2), bounds=3),
        ValueError,
        r"bounds must be None or a \(lower, upper\) pair",
    ),
    (
        "numdiff.approx_jacobian evaluator a number",
        lambda: am.numdiff.approx_jacobian(quad, np.zeros(2), evaluator=3),
        TypeError,
        r"evaluator must be an am.numdiff.Evaluator",
    ),
    (
        "numdiff.difference_plan x text",
        lambda: am.numdiff.difference_plan("ab"),
        TypeError,
        r"x must be a number or an array of real numbers; got 'ab'",
    ),
    (
        "numdiff.Evaluator.map fun a number",
        lambda: am.numdiff.Evaluator().map(3, [np.zeros(2)]),
        TypeError,
        r"Evaluator.map\(fun, points\): fun must be callable; got int",
    ),
    (
        "numdiff.Evaluator.map points a number",
        lambda: am.numdiff.Evaluator().map(quad, 3),
        TypeError,
        r"points must be an iterable of points; got int",
    ),
    # -- check_grad --------------------------------------------------------------------------------
    (
        "check_grad in scipy's argument order",
        lambda: am.check_grad(quad, lambda x: 2 * (x - 1), np.zeros(2)),
        TypeError,
        r"x0 is a callable .*not a point: am.check_grad\(fun, x0, args=\(\), jac=...\) takes the gradient to check as jac=",
    ),
    (
        "check_grad rel_step NaN",
        lambda: am.check_grad(quad, np.zeros(2), jac=lambda x: 2 * (x - 1), rel_step=np.nan),
        ValueError,
        r"rel_step=nan is not valid",
    ),
    # -- am.iterate: a scipy method's arguments refused at the call, not at the first next() ------
    (
        "iterate method a number",
        lambda: am.iterate(quad, np.zeros(2), method=3, backend="numpy"),
        TypeError,
        r"method must be a string or a callable; got int",
    ),
    (
        "iterate method unknown",
        lambda: am.iterate(quad, np.zeros(2), method="nope", backend="numpy"),
        ValueError,
        r"method='nope' is not a scipy.optimize.minimize method",
    ),
    (
        "iterate BFGS tol NaN",
        lambda: am.iterate(quad, np.zeros(2), method="BFGS", tol=np.nan, backend="numpy"),
        ValueError,
        r"tol must be a finite non-negative number; got nan",
    ),
    (
        "iterate BFGS options a list",
        lambda: am.iterate(quad, np.zeros(2), method="BFGS", options=[1], backend="numpy"),
        TypeError,
        r"options must be a dict",
    ),
    ("iterate BFGS fun a number", lambda: am.iterate(3, np.zeros(2), method="BFGS", backend="numpy"), TypeError, r"fun must be callable; got int"),
    (
        "iterate BFGS callback taking nothing",
        lambda: am.iterate(quad, np.zeros(2), method="BFGS", callback=lambda: None, backend="numpy"),
        TypeError,
        r"callback is called as callback\(intermediate_result\) or callback\(xk\)",
    ),
    (
        "iterate SLSQP constraints a number",
        lambda: am.iterate(quad, np.zeros(2), method="SLSQP", constraints=3, backend="numpy"),
        ValueError,
        r"constraints must be a dict",
    ),
    # -- the stochastic methods' data and epochs -----------------------------------------------
    (
        "sgd data a number",
        lambda: am.iterate(batch_loss, np.zeros(2), method="sgd", data=3, backend="numpy"),
        TypeError,
        r"data must be an iterable of mini-batches .*got int",
    ),
    (
        "sgd data a string",
        lambda: am.iterate(batch_loss, np.zeros(2), method="sgd", data="ab", backend="numpy"),
        TypeError,
        r"data must be an iterable of mini-batches .*got str",
    ),
    (
        "sgd data one dict",
        lambda: am.iterate(batch_loss, np.zeros(2), method="sgd", data={"w": 1.0}, backend="numpy"),
        TypeError,
        r"got dict \(one batch\? put it in a list\)",
    ),
    (
        "sgd epochs negative",
        lambda: am.iterate(batch_loss, np.zeros(2), method="sgd", data=[1.0], epochs=-1, backend="numpy"),
        ValueError,
        r"epochs must be a non-negative integer; got -1",
    ),
    (
        "sgd epochs zero",
        lambda: am.iterate(batch_loss, np.zeros(2), method="sgd", data=[1.0], epochs=0, backend="numpy"),
        ValueError,
        r"epochs must be a positive integer \(the passes over data\); got 0",
    ),
    (
        "sgd epochs a string",
        lambda: am.iterate(batch_loss, np.zeros(2), method="sgd", data=[1.0], epochs="a", backend="numpy"),
        TypeError,
        r"epochs must be a non-negative integer; got 'a'",
    ),
    (
        "sgd epochs 1.5",
        lambda: am.iterate(batch_loss, np.zeros(2), method="sgd", data=[1.0], epochs=1.5, backend="numpy"),
        TypeError,
        r"epochs must be a non-negative integer; got 1.5",
    ),
    (
        "minimize sgd epochs zero",
        lambda: am.minimize(batch_loss, np.zeros(2), method="sgd", data=[1.0], epochs=0, backend="numpy"),
        ValueError,
        r"epochs must be a positive integer",
    ),
    # -- global optimizers name fun as the user did (scipy's func where scipy says func) --------------
    ("dual_annealing func not callable", lambda: am.dual_annealing(3, BOX), TypeError, r"^func must be callable; got int"),
    ("shgo func not callable", lambda: am.shgo(3, BOX), TypeError, r"^func must be callable; got int"),
    ("direct func not callable", lambda: am.direct(3, BOX), TypeError, r"^func must be callable; got int"),
    ("basinhopping func not callable", lambda: am.basinhopping(3, np.zeros(2)), TypeError, r"^func must be callable; got int"),
    ("differential_evolution fun not callable", lambda: am.differential_evolution(3, BOX), TypeError, r"^fun must be callable; got int"),
    ("multistart fun not callable", lambda: am.multistart(3, BOX), TypeError, r"^fun must be callable; got int"),
]


@pytest.mark.parametrize("call, error, message", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_malformed_call_names_the_argument(call, error, message):
    check_malformed_call(call, error, message)


def test_the_catalogue_has_a_row_per_defect_found():
    assert len(CASES) >= 60


def test_curve_fit_reads_a_list_p0_as_the_vector_popt_is(monkeypatch):
    """scipy's p0, a list of numbers, is read once (by the solve, as one float64 vector): no
    structure read names it p0 first, and popt equals the fit of the same start as an array."""
    from autominimize.params import ParamSpec

    names = []
    read = ParamSpec._read.__func__

    def counting(cls, x0, name, precision):
        names.append(name)
        return read(cls, x0, name, precision)

    monkeypatch.setattr(ParamSpec, "_read", classmethod(counting))
    popt, pcov = am.curve_fit(model, XD, Y3[0], p0=[1.0, 1.0], backend="numpy")
    assert names == []
    reference, reference_pcov = am.curve_fit(model, XD, Y3[0], p0=np.array([1.0, 1.0]), backend="numpy")
    np.testing.assert_array_equal(popt, reference)
    np.testing.assert_array_equal(pcov, reference_pcov)
    assert type(popt) is np.ndarray and popt.dtype == np.float64
    np.testing.assert_allclose(popt, [2.0, 1.0], rtol=1e-8)


def test_a_malformed_p0_is_still_named_p0():
    with pytest.raises(ValueError, match=r"p0\[0\] contains NaN or inf"):
        fit(p0=[np.nan, 1.0])()
    with pytest.raises(TypeError, match=r"p0\['a'\] is a str"):
        fit(p0={"a": "x", "b": 1.0})()


def test_plots_of_valid_inputs_write_real_files(tmp_path, result):
    """Every plot of valid runs (a result, a list, a labelled dict, a log path) writes a PNG."""
    log = tmp_path / "run.sqlite"
    logged = am.minimize(quad, np.zeros(2), backend="numpy", method="Nelder-Mead", log=str(log))
    assert logged.log_error is None
    figures = {
        "one": am.plot.criterion(result),
        "list": am.plot.criterion([result, str(log)], x="evaluations"),
        "dict": am.plot.criterion({"BFGS": result, "Nelder-Mead": log}, x="time"),
        "params": am.plot.params(result),
        "profile": am.plot.profile([{"problem": "p", "solver": s, "seconds": t} for s, t in (("a", 1.0), ("b", 2.0), ("c", None))]),
    }
    for name, figure in figures.items():
        path = tmp_path / f"{name}.png"
        figure.savefig(path)
        with open(path, "rb") as file:
            assert file.read(8) == b"\x89PNG\r\n\x1a\n"
        assert os.path.getsize(path) > 5000


def test_history_keeps_the_rows_it_is_given():
    history = am.History([("value", 0.5, 2.0, np.nan)], [(0, 0.5, 2.0, 1.0, 1, np.zeros(2), 3)], [("x", 0, 2)])
    assert [(e.kind, e.f) for e in history.evaluations] == [("value", 2.0)]
    assert [(i.nit, i.f, i.nfev) for i in history.iterations] == [(0, 2.0, 1)]
    assert history.column("njev").tolist() == [3]
    assert history.leaves == [("x", 0, 2)]


JAX_CASES = [
    ("method unknown", dict(method="nope"), ValueError, r"method='nope' is not a scipy.optimize.minimize method"),
    ("tol NaN", dict(tol=np.nan), ValueError, r"tol must be a finite non-negative number; got nan"),
    ("options a list", dict(options=[1]), TypeError, r"options must be a dict"),
    ("args one too many", dict(extra=True), TypeError, r"fun is called as fun\(x, \*args\).*followed by the 2 item\(s\) of args="),
]


@pytest.mark.parametrize("given, error, message", [case[1:] for case in JAX_CASES], ids=[case[0] for case in JAX_CASES])
def test_a_differentiated_solve_raises_its_own_error_not_jax_report_of_it(given, error, message):
    """Inside jax.grad the solve runs in a host callback; its error (a malformed argument, the
    user's exception) comes out as raised, not as JAX's "CpuCallback error"."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy

    def loss(w, lam):
        return jnp.sum((w - 1.0) ** 2) + lam * jnp.sum(w**2)

    def solved(lam):
        kwargs = dict(given)
        args = (lam, lam) if kwargs.pop("extra", False) else (lam,)
        return am.minimize(loss, np.zeros(3), args=args, **kwargs).x.sum()

    with pytest.raises(error, match=message):
        jax.grad(solved)(1.0)


def test_the_users_exception_in_a_differentiated_solve_is_the_same_object():
    jax = pytest.importorskip("jax")
    raised = []

    class Mine(Exception):
        pass

    def loss(w, lam):
        raised.append(Mine("from the objective"))
        raise raised[-1]

    with pytest.raises(Mine) as info:
        jax.grad(lambda lam: am.minimize(loss, np.zeros(3), args=(lam,)).x.sum())(1.0)
    assert info.value is raised[-1]


def test_a_differentiated_curve_fit_checks_its_model_and_data():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy

    def curve(x, a, b):
        return a * jnp.exp(-b * x)

    y = jnp.asarray(Y3[0])
    with pytest.raises(TypeError, match=r"f is called as f\(xdata, \*p0\): xdata, then the 3 values of p0; .*curve\(x, a, b\) cannot take that"):
        jax.grad(lambda data: am.curve_fit(curve, XD, data, p0=[1.0, 1.0, 1.0])[0][0])(y)
    with pytest.raises(ValueError, match=r"f returned 50 values but ydata has 10; f\(xdata, ...\) must return one value per data point"):
        jax.grad(lambda data: am.curve_fit(curve, XD, data[:10], p0=[1.0, 1.0])[0][0])(y)


def test_a_batched_solve_is_not_differentiated():
    torch = pytest.importorskip("torch")
    lam = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)

    def loss(w, weight):
        return torch.sum((w - 1.0) ** 2) + weight * torch.sum(w**2)

    with pytest.raises(ValueError, match=r"minimize: batch=True solves independent problems at once, and their solutions are not differentiated"):
        am.minimize(loss, torch.zeros(3, dtype=torch.float64), args=(lam,), method="lbfgs-native", batch=True)
