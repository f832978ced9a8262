"""A plain solve does its set-up work once, and none where it cannot matter: counted, not timed."""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pytest
import scipy.optimize as so

import autominimize as am
from autominimize import implicit, params, user_derivatives
from autominimize.drivers import scipy_local


def _rosen_fg(x):
    a = x[1:] - x[:-1] ** 2
    b = 1.0 - x[:-1]
    g = np.zeros_like(x)
    g[:-1] = -400.0 * x[:-1] * a - 2.0 * b
    g[1:] += 200.0 * a
    return float(100.0 * (a @ a) + b @ b), g


def test_an_array_x0_has_its_structure_recorded_once_per_shape_and_dtype():
    params._array_spec.cache_clear()
    first = am.minimize(_rosen_fg, np.zeros(3), jac=True, method="L-BFGS-B", backend="numpy")
    second = am.minimize(_rosen_fg, np.full(3, 0.5), jac=True, method="L-BFGS-B", backend="numpy")
    assert params._array_spec.cache_info().misses == 1
    np.testing.assert_allclose(second.x, first.x, atol=1e-5)
    am.minimize(_rosen_fg, np.zeros(4), jac=True, method="L-BFGS-B", backend="numpy")
    assert params._array_spec.cache_info().misses == 2


def test_a_dict_x0_of_arrays_has_its_structure_recorded_once_per_shapes_and_dtypes():
    params._tree_spec.cache_clear()
    first = am.minimize(_matfac_fg, _matfac_x0(), jac=True, method="L-BFGS-B", backend="numpy")
    second = am.minimize(_matfac_fg, {k: v + 0.1 for k, v in _matfac_x0().items()}, jac=True, method="L-BFGS-B", backend="numpy")
    assert params._tree_spec.cache_info().misses == 1 and first.success and second.success
    assert second.x["U"].shape == (3, 2) and second.x["V"].shape == (2, 4)
    third = am.minimize(
        lambda p: _matfac_fg({"U": p["U"], "V": p["V"].astype(np.float64)}),
        {"U": np.zeros((3, 2)), "V": np.zeros((2, 4), np.float32)},
        jac=True,
        backend="numpy",
    )
    assert params._tree_spec.cache_info().misses == 2 and third.x["V"].dtype == np.float32
    with pytest.raises(ValueError, match=r"x0\['V'\] contains NaN or inf \(first at index \(0, 1\)\)"):
        am.minimize(_matfac_fg, {"U": np.zeros((3, 2)), "V": np.array([[0.0, np.nan, 0, 0], [0, 0, 0, 0]])}, jac=True, backend="numpy")


def test_the_objectives_calling_rule_is_read_from_its_signature_once_per_solve(monkeypatch):
    from autominimize import calling

    again = []
    real = calling.resolve_unpack
    monkeypatch.setattr(calling, "resolve_unpack", lambda *a, **k: again.append(a[0]) or real(*a, **k))

    def fg(U, V):
        return _matfac_fg({"U": U, "V": V})

    res = am.minimize(fg, _matfac_x0(), jac=True, method="L-BFGS-B", backend="numpy")
    assert res.success and again == []  # resolved by prepare, not again by each caller of fun


def test_the_recorded_structure_gives_back_x0s_shape_and_dtype():
    res = am.minimize(lambda x: float(np.sum((x - 1.0) ** 2)), np.zeros((2, 3), dtype=np.float32), jac=lambda x: 2.0 * (x - 1.0), backend="numpy")
    assert res.x.shape == (2, 3) and res.x.dtype == np.float32
    np.testing.assert_allclose(res.x, 1.0, atol=1e-4)
    integer = am.minimize(lambda x: float(np.sum((x - 1.0) ** 2)), np.zeros(3, dtype=int), jac=lambda x: 2.0 * (x - 1.0), backend="numpy")
    assert integer.x.dtype == np.float64 and integer.jac.shape == (3,)


@pytest.mark.parametrize("bad", [np.array([0.0, np.nan]), np.array([1.0, np.inf])])
def test_a_non_finite_array_x0_is_still_refused_by_name(bad):
    with pytest.raises(ValueError, match=r"x0 contains NaN or inf \(first at index \(1,\)\)"):
        am.minimize(_rosen_fg, bad, jac=True, backend="numpy")


def test_a_solve_limits_blas_once(monkeypatch):
    entered = []
    real = scipy_local.single_blas_thread

    def counting():
        entered.append(1)
        return real()

    monkeypatch.setattr(scipy_local, "single_blas_thread", counting)
    am.minimize(_rosen_fg, np.zeros(2), jac=True, method="L-BFGS-B", backend="numpy")
    am.minimize(_rosen_fg, np.zeros(2), jac=True, method="L-BFGS-B", backend="numpy", history=False)
    assert len(entered) == 2


def test_plain_arguments_are_not_searched_for_a_framework(monkeypatch):
    pytest.importorskip("torch")  # with a framework loaded, arguments are searched for its tensors
    looked = []
    real = implicit.differentiable_framework

    def counting(*trees):
        looked.append(trees)
        return real(*trees)

    monkeypatch.setattr(implicit, "differentiable_framework", counting)
    res = am.minimize(_rosen_fg, np.zeros(2), jac=True, method="L-BFGS-B", backend="numpy")
    assert res.success and looked == []
    scaled = am.minimize(lambda x, c: (c * _rosen_fg(x)[0], c * _rosen_fg(x)[1]), np.zeros(2), args=(2.0,), jac=True, backend="numpy")
    assert scaled.success and len(looked) >= 1


def test_no_warning_filter_is_installed_where_scipy_has_nothing_to_drop():
    seen = []

    def fg(x):
        seen.append(list(warnings.filters))
        return _rosen_fg(x)

    am.minimize(fg, np.zeros(2), jac=True, method="L-BFGS-B", backend="numpy", bounds=[(-2, 2)] * 2)
    assert seen and all(not any(f[1] is not None and "cannot handle" in f[1].pattern for f in filters) for filters in seen)


def test_the_method_never_reads_back_a_point_the_user_wrote_into():
    def fg(x):
        out = _rosen_fg(x)
        x[:] = 1e6  # the user's own copy
        return out

    res = am.minimize(fg, np.zeros(2), jac=True, method="L-BFGS-B", backend="numpy", history=False)
    ref = so.minimize(_rosen_fg, np.zeros(2), jac=True, method="L-BFGS-B")
    np.testing.assert_array_equal(res.x, ref.x)
    assert (res.nfev, res.njev) == (ref.nfev, ref.njev)


_M = np.arange(12.0).reshape(3, 4) / 10.0 - 0.5


def _matfac_fg(p):
    r = p["U"] @ p["V"] - _M
    return float(np.vdot(r, r)), {"U": 2.0 * r @ p["V"].T, "V": 2.0 * p["U"].T @ r}


def _matfac_x0():
    rng = np.random.default_rng(0)
    return {"U": rng.uniform(-1.0, 1.0, (3, 2)), "V": rng.uniform(-1.0, 1.0, (2, 4))}


def _library_calls(maxiter, history):
    """Python calls into the library during a dict-x0 solve of ``maxiter`` iterations, and its nfev
    (before this count was taken, 14 per evaluation without history and 16.9 with it)."""
    root = os.path.dirname(am.__file__)
    counted = [0]

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(root):
            counted[0] += 1

    sys.setprofile(profile)
    try:
        res = am.minimize(_matfac_fg, _matfac_x0(), jac=True, method="L-BFGS-B", backend="numpy", history=history, options={"maxiter": maxiter})
    finally:
        sys.setprofile(None)
    return counted[0], res.nfev


@pytest.mark.parametrize("history, most", [(False, 8), (True, 10)])
def test_an_evaluation_of_a_dict_x0_makes_few_python_calls_in_the_library(history, most):
    _library_calls(3, history)  # imports and caches out of the count
    short, short_nfev = _library_calls(3, history)
    long, long_nfev = _library_calls(12, history)
    assert long_nfev > short_nfev + 5
    assert (long - short) / (long_nfev - short_nfev) <= most


def test_a_dict_gradient_is_read_in_full_once_per_solve(monkeypatch):
    full = []
    real = user_derivatives.flatten_gradient

    def counting(value, spec, name):
        full.append(name)
        return real(value, spec, name)

    monkeypatch.setattr(user_derivatives, "flatten_gradient", counting)
    res = am.minimize(_matfac_fg, _matfac_x0(), jac=True, method="L-BFGS-B", backend="numpy")
    assert res.nfev > 5 and full == ["jac"]
    flat = so.minimize(lambda z: _flat_matfac_fg(z), np.concatenate([v.ravel() for v in _matfac_x0().values()]), jac=True, method="L-BFGS-B")
    np.testing.assert_array_equal(np.concatenate([res.x["U"].ravel(), res.x["V"].ravel()]), flat.x)
    assert (res.nfev, res.njev, res.nit) == (flat.nfev, flat.njev, flat.nit)


def _flat_matfac_fg(z):
    f, g = _matfac_fg({"U": z[:6].reshape(3, 2), "V": z[6:].reshape(2, 4)})
    return f, np.concatenate([g["U"].ravel(), g["V"].ravel()])


@pytest.mark.parametrize(
    "later, message",
    [
        ({"U": np.zeros((3, 2))}, r"jac does not have the structure of x0"),
        ({"U": np.zeros((3, 2)), "V": np.zeros(7)}, r"jac: jac\['V'\] has shape \(7,\), expected \(2, 4\)"),
        ({"U": np.zeros(8), "V": np.zeros(6)}, r"jac: jac\['U'\] has shape \(8,\), expected \(3, 2\)"),
    ],
)
def test_a_later_gradient_of_another_structure_is_refused_by_name(later, message):
    calls = []

    def fg(p):
        calls.append(1)
        f, g = _matfac_fg(p)
        return f, (g if len(calls) < 3 else later)

    with pytest.raises(ValueError, match=message):
        am.minimize(fg, _matfac_x0(), jac=True, method="L-BFGS-B", backend="numpy")
    assert len(calls) == 3


def test_a_dict_x0_with_float32_and_integer_leaves_keeps_their_values_and_the_users_copy():
    seen = []

    def fg(p):
        seen.append((p["a"].dtype, p["k"].dtype))
        f = float(np.sum((p["a"] - 1.0) ** 2) + np.sum((p["k"] - 2.0) ** 2))
        g = {"a": (2.0 * (p["a"] - 1.0)).astype(np.float32), "k": 2.0 * (p["k"] - 2.0)}
        p["a"][...] = 1e6  # the user's own copy
        p["k"][...] = 1e6
        return f, g

    x0 = {"a": np.zeros(3, dtype=np.float32), "k": np.array([0, 5])}
    res = am.minimize(fg, x0, jac=True, method="L-BFGS-B", backend="numpy")
    assert res.success and set(seen) == {(np.dtype(np.float64), np.dtype(np.float64))}  # the solve's precision
    assert res.x["a"].dtype == np.float32 and res.x["k"].dtype == np.float64
    np.testing.assert_allclose(res.x["a"], 1.0, atol=1e-4)
    np.testing.assert_allclose(res.x["k"], 2.0, atol=1e-4)


def test_a_later_dict_gradient_of_float32_or_integer_leaves_is_read_as_float64():
    spec = params.ParamSpec.from_tree({"a": np.zeros(2), "b": np.zeros((1, 2))})
    flatten = user_derivatives.gradient_flattener(spec, "jac")
    flatten({"a": np.ones(2), "b": np.ones((1, 2))})
    for dtype in (np.float32, np.int64):
        out = flatten({"a": np.array([1, 2], dtype=dtype), "b": np.array([[3, 4]], dtype=dtype)})
        assert out.dtype == np.float64 and out.tolist() == [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match=r"jac does not have the structure of x0"):
        flatten([np.ones(2), np.ones(2)])


def _rosen_hessp(x, p):
    hp = np.zeros_like(x)
    hp[0] = (1200 * x[0] ** 2 - 400 * x[1] + 2) * p[0] - 400 * x[0] * p[1]
    hp[1:-1] = -400 * x[:-2] * p[:-2] + (202 + 1200 * x[1:-1] ** 2 - 400 * x[2:]) * p[1:-1] - 400 * x[1:-1] * p[2:]
    hp[-1] = -400 * x[-2] * p[-2] + 200 * p[-1]
    return hp


def _calls_per_product(solve):
    """Python calls into the library per Hessian-vector product of ``solve()`` (a solve fed the
    user's hessp): the calls made while the objective's hessp runs, over the products."""
    from autominimize.problem import Objective

    root, hessp = os.path.dirname(am.__file__), Objective.hessp.__code__
    inside, counted, products = [0], [0], [0]

    def profile(frame, event, arg):
        if frame.f_code is hessp:
            inside[0] += 1 if event == "call" else -1 if event == "return" else 0
            products[0] += event == "call"
        if event == "call" and inside[0] and frame.f_code.co_filename.startswith(root):
            counted[0] += 1

    sys.setprofile(profile)
    try:
        res = solve()
    finally:
        sys.setprofile(None)
    return counted[0] / products[0], res


def test_a_product_of_trust_ncg_is_not_checked_on_each_call():
    # before the finiteness check moved after the fact: 3 calls (the check's wrapper the third)
    per_product, res = _calls_per_product(
        lambda: am.minimize(so.rosen, np.zeros(20), method="trust-ncg", jac=so.rosen_der, hessp=so.rosen_hess_prod, backend="numpy", history=False)
    )
    assert res.success and res.nhvp > 50 and per_product == 2


@pytest.mark.parametrize("history", [False, True])
def test_a_users_hessian_vector_product_costs_two_python_calls_in_the_library(history):
    # before this count was taken: 4 without history, 5 with it (the journal's row was a call)
    per_product, res = _calls_per_product(
        lambda: am.minimize(_rosen_fg, np.zeros(20), jac=True, hessp=_rosen_hessp, method="Newton-CG", backend="numpy", history=history)
    )
    assert res.nhvp > 100 and per_product == 2
    ref = so.minimize(_rosen_fg, np.zeros(20), jac=True, hessp=_rosen_hessp, method="Newton-CG")
    np.testing.assert_array_equal(res.x, ref.x)
    if history:
        kinds = res.history.column("kind", of="evaluations").tolist()
        assert kinds.count("hvp") == res.nhvp and len(kinds) == res.history.recorded == res.nfev + res.nhvp
        assert np.isnan(res.history.column("f", of="evaluations")[kinds.index("hvp")])


def _calls_of_one_iteration(x0, fg, history, bounds=None):
    """Python calls into the library of a solve stopped after one iteration (three evaluations
    for an array x0, two for the dict): the fixed cost of a solve, set-up and result."""
    root = os.path.dirname(am.__file__)
    counted = [0]

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(root):
            counted[0] += 1

    kwargs = dict(jac=True, method="L-BFGS-B", backend="numpy", history=history, bounds=bounds, options={"maxiter": 1})
    am.minimize(fg, x0, **kwargs)  # imports and caches
    sys.setprofile(profile)
    try:
        res = am.minimize(fg, x0, **kwargs)
    finally:
        sys.setprofile(None)
    return counted[0], res


@pytest.mark.parametrize(
    "structure, history, most",
    [
        ("array", False, 103),
        ("array", True, 112),
        ("dict", False, 106),
        ("dict", True, 114),
        ("bounded dict", False, 112),
        ("bounded dict", True, 120),
    ],
)
def test_a_solve_of_one_iteration_makes_few_python_calls_in_the_library(structure, history, most):
    # before these counts were taken: 131 and 141 for the array, 202 and 211 for the dict; then
    # 106, 119, 139 and 151, and 163 and 175 for the bounded dict (its bounds read at every solve);
    # then 104, 117, 137, 149, 148 and 160 (a dict x0 walked twice and each leaf checked on its
    # own, fun's calling rule read from its signature at every solve, the history's first look at
    # its iterates at the first iteration, a Python call per leaf restored)
    x0, fg = (np.zeros(2), _rosen_fg) if structure == "array" else (_matfac_x0(), _matfac_fg)
    bounds = {"U": (None, 2.0), "V": (-2.0, None)} if structure == "bounded dict" else None
    calls, res = _calls_of_one_iteration(x0, fg, history, bounds)
    if {"torch", "jax", "tensorflow"} & set(sys.modules):  # fun's captured values are looked at: 2 calls
        most += 2
    assert res.nit == 1 and calls <= most


def test_a_dict_x0_is_read_once_into_its_structure_and_start(monkeypatch):
    read = []
    real_from_tree, real_flatten = params.ParamSpec.from_tree.__func__, params.ParamSpec.flatten
    monkeypatch.setattr(params.ParamSpec, "from_tree", classmethod(lambda cls, *a, **k: read.append("x0") or real_from_tree(cls, *a, **k)))
    # the first gradient is read in full, by name ('jac'); x0 is not read again
    monkeypatch.setattr(params.ParamSpec, "flatten", lambda self, tree, name="x0": read.append(name) or real_flatten(self, tree, name))
    x0 = {"U": _matfac_x0()["U"], "k": np.array([1, 2]), "h": np.array([0.5], dtype=np.float16)}
    res = am.minimize(
        lambda p: (float(np.sum(p["U"] ** 2) + np.sum(p["k"] ** 2) + np.sum(p["h"] ** 2)), {"U": 2 * p["U"], "k": 2 * p["k"], "h": 2 * p["h"]}),
        x0,
        jac=True,
        method="L-BFGS-B",
        backend="numpy",
        history=False,
    )
    assert read == ["jac"] and res.success
    assert (res.x["U"].dtype, res.x["k"].dtype, res.x["h"].dtype) == (np.float64, np.float64, np.float64)
    spec, start = params.ParamSpec.with_start(x0)
    monkeypatch.undo()
    assert spec is params.ParamSpec.from_tree(x0) and start.dtype == np.float64
    np.testing.assert_array_equal(start, params.ParamSpec.from_tree(x0).flatten(x0))


def test_a_dict_x0s_calling_rule_is_read_from_fun_once_per_keys(monkeypatch):
    from autominimize import calling

    read = []
    real = calling._dict_rule
    monkeypatch.setattr(calling, "_dict_rule", lambda *a: read.append(sorted(a[1])) or real(*a))

    def fg(U, V):
        return _matfac_fg({"U": U, "V": V})

    for _ in range(3):
        res = am.minimize(fg, _matfac_x0(), jac=True, method="L-BFGS-B", backend="numpy", history=False)
        assert res.success
    assert read == [["U", "V"]]
    with pytest.raises(TypeError, match=r"x0's keys \['U', 'W'\] do not match fun's parameters"):
        am.minimize(fg, {"U": np.zeros((3, 2)), "W": np.zeros((2, 4))}, jac=True, backend="numpy")


def test_the_history_looks_at_its_iterates_only_once_they_could_exceed_its_budget(monkeypatch):
    from autominimize.recording import history

    looked = []
    real = history.History._thin_points
    monkeypatch.setattr(history.History, "_thin_points", lambda self: looked.append(len(self._iteration_rows)) or real(self))
    res = am.minimize(_rosen_fg, np.zeros(2), jac=True, method="L-BFGS-B", backend="numpy")
    assert looked == [] and res.nit > 10
    assert all(it.x is not None for it in res.history.iterations)
    assert res.history._check_at == history.POINT_BUDGET // 16
    kept = history.History(point_budget=64)
    kept.expect_points(16)
    for nit in range(1, 6):
        kept.add_iteration(nit, np.full(2, float(nit)), 1.0, 0.0, nit, nit)
    assert looked == [4] and [it.x is not None for it in kept.iterations] == [True, False, True, False, True]
