"""User-supplied derivatives on the NumPy backend: what their fast path keeps.

Each user function is called once per point it is asked at (as scipy calls it), receives
a copy of the point in x0's shape (so writing into it changes nothing the method reads),
and the HVP's calling rule is worked out once per solve, not per product.
"""

import numpy as np
import pytest
import scipy.optimize as so
from scipy.optimize import rosen, rosen_der, rosen_hess, rosen_hess_prod

import autominimize as am
from autominimize import calling

X0 = np.array([-1.2, 1.0, 0.8, -0.5])


def counted(function):
    """``function`` with a count of its calls in ``.calls``."""

    def wrapper(*args):
        wrapper.calls += 1
        return function(*args)

    wrapper.calls = 0
    return wrapper


def fused(x):
    return rosen(x), rosen_der(x)


SECOND_ORDER = {"trust-ncg": {"hessp": rosen_hess_prod}, "trust-exact": {"hess": rosen_hess}, "Newton-CG": {"hessp": rosen_hess_prod}}


@pytest.mark.parametrize("method", ["trust-ncg", "trust-exact", "SLSQP", "Newton-CG", "L-BFGS-B"])
def test_a_function_returning_value_and_gradient_runs_once_per_point_as_in_scipy(method):
    """jac=True: a value asked for alone keeps the gradient the same call returned, for when
    the method asks for it at that point (scipy's own jac=True wrapper does the same)."""
    plain, ours = counted(fused), counted(fused)
    extra = SECOND_ORDER.get(method, {})
    ref = so.minimize(plain, X0, jac=True, method=method, **extra)
    res = am.minimize(ours, X0, jac=True, method=method, backend="numpy", **extra)
    assert ours.calls == plain.calls
    assert (res.nfev, res.njev) == (ref.nfev, ref.njev)
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-10)  # SLSQP's arithmetic differs in the last digits


def test_the_gradient_kept_from_a_value_is_counted_and_recorded_when_asked_for():
    res = am.minimize(counted(fused), X0, jac=True, method="trust-ncg", hessp=rosen_hess_prod, backend="numpy")
    kinds = [evaluation.kind for evaluation in res.history.evaluations]
    assert kinds.count("value") == res.nfev
    assert kinds.count("gradient") == res.njev
    assert kinds.count("hvp") == res.nhvp


def writes_into_its_input(function):
    """``function`` that zeroes every array it was given once it has its answer."""

    def wrapper(*args):
        out = function(*[np.array(a) for a in args])
        for a in args:
            a[...] = 0.0
        return out

    return wrapper


@pytest.mark.parametrize("method", ["Newton-CG", "trust-ncg", "L-BFGS-B", "SLSQP"])
def test_user_functions_writing_into_their_input_change_nothing_the_method_reads(method):
    """fun, jac and hessp each get a copy of the point (and of the direction) of their own."""
    extra = {"hessp": rosen_hess_prod} if method in ("Newton-CG", "trust-ncg") else {}
    clean = am.minimize(rosen, X0, jac=rosen_der, method=method, backend="numpy", **extra)
    dirty_extra = {name: writes_into_its_input(f) for name, f in extra.items()}
    dirty = am.minimize(writes_into_its_input(rosen), X0, jac=writes_into_its_input(rosen_der), method=method, backend="numpy", **dirty_extra)
    assert (dirty.nfev, dirty.njev, dirty.nhvp) == (clean.nfev, clean.njev, clean.nhvp)
    np.testing.assert_array_equal(dirty.x, clean.x)


def test_a_fused_function_writing_into_its_input_changes_nothing_either():
    clean = am.minimize(fused, X0, jac=True, method="Newton-CG", hessp=rosen_hess_prod, backend="numpy")
    dirty = am.minimize(writes_into_its_input(fused), X0, jac=True, method="Newton-CG", hessp=writes_into_its_input(rosen_hess_prod), backend="numpy")
    assert (dirty.nfev, dirty.njev, dirty.nhvp) == (clean.nfev, clean.njev, clean.nhvp)
    np.testing.assert_array_equal(dirty.x, clean.x)


def test_a_one_array_x0_reaches_every_user_function_in_its_shape_as_a_fresh_array():
    """x0 of shape (2, 2): fun, jac and hessp get (2, 2) arrays, a new one at every call, and
    may answer flat or in that shape."""
    seen = []

    def fun(x):
        seen.append(x)
        return rosen(x.ravel())

    def jac(x):
        seen.append(x)
        return rosen_der(x.ravel()).reshape(2, 2)

    def hessp(x, p):
        seen.extend([x, p])
        return rosen_hess_prod(x.ravel(), p.ravel())

    res = am.minimize(fun, X0.reshape(2, 2), jac=jac, hessp=hessp, method="Newton-CG", backend="numpy")
    ref = so.minimize(rosen, X0, jac=rosen_der, hessp=rosen_hess_prod, method="Newton-CG")
    assert {(type(a), a.shape, a.dtype) for a in seen} == {(np.ndarray, (2, 2), np.dtype(np.float64))}
    assert not any(np.shares_memory(a, b) for i, a in enumerate(seen) for b in seen[i + 1 :])
    np.testing.assert_allclose(res.x.ravel(), ref.x, rtol=1e-12)
    assert (res.nfev, res.njev, res.nhvp) == (ref.nfev, ref.njev, ref.nhev)


def test_the_hessp_calling_rule_is_worked_out_once_per_solve(monkeypatch):
    """Reading hessp's signature (to choose how it takes the parameters) happens once, not at
    every product."""
    looked_up = []
    original = calling.CallerFactory.mode

    def mode(self, function, n_extra_args):
        looked_up.append(function)
        return original(self, function, n_extra_args)

    monkeypatch.setattr(calling.CallerFactory, "mode", mode)
    hessp = counted(rosen_hess_prod)
    res = am.minimize(fused, X0, jac=True, hessp=hessp, method="Newton-CG", backend="numpy")
    assert hessp.calls == res.nhvp > 10
    assert looked_up.count(hessp) == 1


@pytest.mark.parametrize("x0", [{"a": X0[:2], "b": X0[2:]}, [X0[:2], X0[2:]]])
def test_a_structured_x0_still_reaches_hessp_as_a_structure(x0):
    def flat(p):
        return np.concatenate([p["a"], p["b"]] if isinstance(p, dict) else p)

    def hessp(p, v):
        return rosen_hess_prod(flat(p), flat(v))

    res = am.minimize(lambda p: fused(flat(p)), x0, jac=True, hessp=hessp, method="trust-ncg", backend="numpy", unpack="none")
    ref = so.minimize(fused, X0, jac=True, hessp=rosen_hess_prod, method="trust-ncg")
    np.testing.assert_allclose(flat(res.x), ref.x, rtol=1e-12)
    assert (res.nfev, res.njev, res.nhvp) == (ref.nfev, ref.njev, ref.nhev - 1)  # scipy's trust-ncg reports one more


def test_a_failing_hessp_names_itself_and_carries_the_point_it_failed_at():
    seen = []

    def hessp(x, p):
        seen.append(x.copy())
        if len(seen) == 3:
            raise ArithmeticError("no curvature here")
        return rosen_hess_prod(x, p)

    with pytest.raises(ArithmeticError, match="no curvature here") as info:
        am.minimize(fused, X0, jac=True, hessp=hessp, method="Newton-CG", backend="numpy")
    np.testing.assert_array_equal(info.value.autominimize_x, seen[-1])
    assert any("computing the user-supplied hessp" in note for note in info.value.__notes__)
    assert info.value.autominimize_best_x is not None


@pytest.mark.parametrize("method", ["Newton-CG", "trust-ncg", "trust-krylov", "trust-exact", "dogleg", "trust-constr"])
@pytest.mark.parametrize("structured", [False, True])
def test_second_order_methods_difference_the_users_own_gradient(method, structured):
    """jac=True without hessp or hess: curvature from central differences of the user's
    gradient (a dict x0 failed with "unhashable type: 'slice'", the difference of a flat
    function applied to the user's tree); the counts include those gradient calls."""
    calls = [0]
    scale = np.array([1.0, 10.0, 100.0])

    def fg(x):
        calls[0] += 1
        w = x["w"] if structured else x
        f = float(np.sum(scale * (w - 1.0) ** 4 + (w - 1.0) ** 2))
        g = 4 * scale * (w - 1.0) ** 3 + 2 * (w - 1.0)
        return f, ({"w": g} if structured else g)

    x0 = {"w": np.zeros(3)} if structured else np.zeros(3)
    res = am.minimize(fg, x0, jac=True, method=method, backend="numpy")
    x = res.x["w"] if structured else res.x
    np.testing.assert_allclose(x, 1.0, atol=2e-3)
    assert res.success and res.nfev <= calls[0]
