"""method='ipopt': IPOPT (through cyipopt) fed the backend's exact derivatives."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize as so

import autominimize as am
from autominimize.testing import hock_schittkowski as hs
from conftest import spy_ipopt_iterates

pytest.importorskip("cyipopt")
torch = pytest.importorskip("torch")

ALL = sorted(hs.PROBLEMS)
JAX_SUBSET = [40, 71]


def _relative_error(value: float, target: float) -> float:
    return abs(value - target) / max(1.0, abs(target))


@pytest.mark.parametrize("number", ALL)
def test_hock_schittkowski_ipopt_torch(number):
    p = hs.get(number)
    res = am.minimize(p.f, p.x0, method="ipopt", bounds=p.bounds, constraints=p.constraints(), backend="torch")
    assert res.success and res.status == 0, res.message
    assert _relative_error(res.fun, p.fstar) <= 1e-6
    np.testing.assert_allclose(res.x, p.xstar, atol=1e-5)
    assert res.hessian == "exact" and res.nhev >= 1


@pytest.mark.parametrize("number", JAX_SUBSET)
def test_hock_schittkowski_ipopt_jax(number):
    pytest.importorskip("jax")
    p = hs.get(number)
    res = am.minimize(p.f, p.x0, method="ipopt", bounds=p.bounds, constraints=p.constraints(), backend="jax")
    assert res.success, res.message
    assert _relative_error(res.fun, p.fstar) <= 1e-6
    assert res.backend == "jax"


def test_hs071_multipliers_follow_ipopt_convention():
    """L = f + g·λ: the published HS071 multipliers, per constraint in the order given."""
    p = hs.get(71)
    res = am.minimize(p.f, p.x0, method="ipopt", bounds=p.bounds, constraints=p.constraints(), backend="torch")
    equality, inequality = res.v
    np.testing.assert_allclose(equality, [0.16146856], rtol=1e-5)
    np.testing.assert_allclose(inequality, [-0.55229366], rtol=1e-5)
    np.testing.assert_allclose(res.mult_g, [0.16146856, -0.55229366], rtol=1e-5)
    np.testing.assert_allclose(res.mult_x_L, [1.08787121, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(res.mult_x_U, 0, atol=1e-6)
    assert res.nit == 8
    # x[0] moved from 1 - 1e-8 (IPOPT's relaxed bound) onto its bound 1: g at the returned x
    assert res.x[0] == 1.0
    np.testing.assert_allclose(res.constr[0], 0, atol=3e-8)


def test_structures_every_constraint_format_and_bounds_per_leaf():
    """HS071 over a dict of tensors with a NonlinearConstraint, a dict constraint and a
    LinearConstraint (x0 + x1 <= 10, inactive), bounds given per leaf."""

    def f(p):
        x = torch.cat([p["a"], p["b"]])
        return x[0] * x[3] * (x[0] + x[1] + x[2]) + x[2]

    x0 = {"a": torch.tensor([1.0, 5.0], dtype=torch.float64), "b": torch.tensor([5.0, 1.0], dtype=torch.float64)}
    constraints = [
        so.NonlinearConstraint(lambda p: (p["a"] ** 2).sum() + (p["b"] ** 2).sum(), 40.0, 40.0),
        {"type": "ineq", "fun": lambda p: p["a"].prod() * p["b"].prod() - 25},
        so.LinearConstraint(np.array([[1.0, 1.0, 0.0, 0.0]]), -np.inf, 10.0),
    ]
    res = am.minimize(f, x0, method="ipopt", bounds={"a": (1, 5), "b": (1, 5)}, constraints=constraints)
    assert res.success
    assert set(res.x) == {"a", "b"} and isinstance(res.x["a"], torch.Tensor)
    assert abs(res.fun - hs.get(71).fstar) < 1e-6
    assert set(res.mult_x_L) == {"a", "b"}
    np.testing.assert_allclose(res.v[2], 0, atol=1e-7)  # the linear constraint is inactive
    assert [c["name"] for c in res.constraint_evaluations] == ["constraints[0]", "constraints[1]"]


def test_linear_constraint_alone():
    p = hs.get(48)
    A = np.array([[1.0, 1, 1, 1, 1], [0, 0, 1, -2, -2]])
    res = am.minimize(p.f, p.x0, method="ipopt", constraints=so.LinearConstraint(A, [5, -3], [5, -3]), backend="torch")
    assert res.success and abs(res.fun) < 1e-10
    np.testing.assert_allclose(res.x, 1.0, atol=1e-6)


def test_counts_are_the_evaluations_made():
    """Every call of the user's (eager torch) objective is a counted value or a Lagrangian
    Hessian (which evaluates the objective inside it): none is hidden."""
    p = hs.get(71)
    calls = []

    def f(x):
        calls.append(1)
        return p.f(x)

    res = am.minimize(f, p.x0, method="ipopt", bounds=p.bounds, constraints=p.constraints(), backend="torch")
    assert res.success
    assert len(calls) == res.nfev + res.nhev
    assert res.njev <= res.nfev
    assert all(c["nhev"] == res.nhev for c in res.constraint_evaluations)


def test_hs071_one_evaluation_per_point_ipopt_asks_at(monkeypatch):
    """IPOPT asks for values at 9 points and gradients at 10: its gradient-based scaling
    evaluates ∇f at the unmoved x0 (1, 5, 5, 1), outside its own statistics (which say 9 and 9),
    and then starts from x0 pushed inside the bounds. The value is counted once per distinct
    point: 10, none of them twice (IPOPT's last iterate returned as it is: moved onto its bound,
    it is evaluated once more, see test_defects_trial5_scipy)."""
    from autominimize.drivers.ipopt_problem import problem_class

    ipopt_problem = problem_class()
    asked: dict[str, set] = {"objective": set(), "gradient": set()}
    for name in asked:
        original = getattr(ipopt_problem, name)

        def recorded(self, x, original=original, name=name):
            asked[name].add(np.asarray(x).tobytes())
            return original(self, x)

        monkeypatch.setattr(ipopt_problem, name, recorded)
    p = hs.get(71)
    res = am.minimize(
        p.f, p.x0, method="ipopt", bounds=p.bounds, constraints=p.constraints(), backend="torch", options={"honor_original_bounds": "no"}
    )
    assert (len(asked["objective"]), len(asked["gradient"])) == (9, 10)
    assert (res.nfev, res.njev) == (len(asked["objective"] | asked["gradient"]), 10) == (10, 10)


def test_hs071_without_scaling_evaluates_only_where_ipopt_asks():
    """Without gradient-based scaling IPOPT never asks at x0 (on the bounds), only at x0
    pushed inside them: the first evaluation, the probe, is there, and none is spent at x0."""
    p = hs.get(71)
    res = am.minimize(
        p.f,
        p.x0,
        method="ipopt",
        bounds=p.bounds,
        constraints=p.constraints(),
        backend="torch",
        options={"nlp_scaling_method": "none", "honor_original_bounds": "no"},
    )
    assert (res.nfev, res.njev) == (9, 9)


def test_first_point_asked_is_the_probe_for_the_float32_fallback():
    """A torch objective with float32 constants fails in float64 at the first point IPOPT asks
    for (x0 pushed inside the bounds): the solve starts again in float32, warned once."""
    p = hs.get(71)
    ones = torch.ones(4)  # float32

    def f(x):
        return p.f(x) + 0 * (ones @ x)

    with pytest.warns(am.PrecisionFallbackWarning, match="failed in float64"):
        res = am.minimize(
            f, p.x0, method="ipopt", bounds=p.bounds, constraints=p.constraints(), backend="torch", options={"nlp_scaling_method": "none"}
        )
    assert res.precision == "float32" and res.nit > 0


def test_float32_fallback_solves_hs071_to_float32_accuracy():
    """In float32 the equality x·x = 40 is resolved to 3.8e-6 (one unit in the last place at 40),
    above IPOPT's default tol 1e-8: the solve ended in "local infeasibility" after 51
    iterations. A float32 solve asks for tol 1e-6 and stops at the acceptable level from
    √eps on; a tol it cannot reach is said to be why it ended short."""
    p = hs.get(71)
    ones = torch.ones(4)  # float32

    def f(x):
        return p.f(x) + 0 * (ones @ x)

    with pytest.warns(am.PrecisionFallbackWarning, match="failed in float64"):
        res = am.minimize(f, p.x0, method="ipopt", bounds=p.bounds, constraints=p.constraints(), backend="torch")
    assert res.precision == "float32" and res.success and res.status == 0, res.message
    assert _relative_error(res.fun, p.fstar) <= 1e-6
    np.testing.assert_allclose(res.x, p.xstar, atol=1e-3)
    tight = am.minimize(f, p.x0, method="ipopt", bounds=p.bounds, constraints=p.constraints(), backend="torch", tol=1e-8, precision="float32")
    assert tight.status == 1 and not tight.success and tight.nit < 15
    assert "computed in float32, which resolves values to about 1e-7 of their size: tol=1e-08 may be beyond its reach" in tight.message
    assert _relative_error(tight.fun, p.fstar) <= 1e-6
    wide = am.minimize(
        f, p.x0, method="ipopt", bounds=p.bounds, constraints=p.constraints(), backend="torch", precision="float32", options={"tol": 1e-3}
    )
    assert wide.success and "float32" not in wide.message


def test_continue_needs_a_finite_value_at_the_first_point_asked():
    p = hs.get(71)

    def f(x):
        return p.f(x) * torch.nan

    with pytest.raises(ValueError, match=r"fun is nan at the first point the method asked for; error_handling='continue'"):
        am.minimize(
            f,
            p.x0,
            method="ipopt",
            bounds=p.bounds,
            constraints=p.constraints(),
            backend="torch",
            error_handling="continue",
            options={"nlp_scaling_method": "none"},
        )


@pytest.mark.parametrize("scaling", ["gradient-based", "none"])
def test_hock_schittkowski_evaluations_against_cyipopt_fed_dense_derivatives(scaling):
    """Against cyipopt fed jitted dense JAX derivatives with the same options, every problem
    reaches 1e-6 relative with no more evaluations: f at no more points than the reference ran
    f at (a gradient call runs f too), no more gradients or Hessians than it asked for, each
    constraint's values and Jacobian no more often than the reference's were; without scaling
    (IPOPT then asks nothing at x0 on its own) no more f values than it asked for."""
    jax = pytest.importorskip("jax")
    from benchmarks.ipopt import _dense_cyipopt

    options = {"nlp_scaling_method": scaling, "honor_original_bounds": "no"}  # no point moved onto a bound after
    with jax.enable_x64(True):
        for number in ALL:
            p = hs.get(number)
            ours = am.minimize(p.f, p.x0, method="ipopt", bounds=p.bounds, constraints=p.constraints(), backend="jax", options=options)
            theirs = _dense_cyipopt(p, options)
            assert _relative_error(ours.fun, p.fstar) <= 1e-6 and _relative_error(theirs["f"], p.fstar) <= 1e-6, number
            assert ours.nfev <= theirs["points"] and ours.njev <= theirs["njev"] and ours.nhev <= theirs["nhev"], (number, ours, theirs)
            for counts in ours.constraint_evaluations:
                assert counts["nfev"] <= theirs["ncev"] and counts["njev"] <= theirs["ncjev"], (number, counts, theirs)
            if scaling == "none":
                assert ours.nfev <= theirs["nfev"], (number, ours.nfev, theirs)


def test_quiet_by_default_and_options_pass_through(capfd):
    p = hs.get(71)
    am.minimize(p.f, p.x0, method="ipopt", bounds=p.bounds, constraints=p.constraints(), backend="torch")
    assert capfd.readouterr().out == ""
    res = am.minimize(
        p.f, p.x0, method="ipopt", bounds=p.bounds, constraints=p.constraints(), backend="torch", options={"maxiter": 2, "print_level": 5}
    )
    assert "Ipopt" in capfd.readouterr().out
    assert res.status == -1 and not res.success and "iterations" in res.message.lower()
    assert res.nit == 2


def test_option_errors_name_the_option():
    p = hs.get(71)
    with pytest.raises(ValueError, match="'no_such_option'"):
        am.minimize(p.f, p.x0, method="ipopt", bounds=p.bounds, constraints=p.constraints(), backend="torch", options={"no_such_option": 1})
    with pytest.raises(ValueError, match="options\\['sparse'\\]"):
        am.minimize(p.f, p.x0, method="ipopt", constraints=p.constraints(), backend="torch", options={"sparse": "yes"})
    with pytest.raises(ValueError, match="hess and hessp"):
        am.minimize(p.f, p.x0, method="ipopt", constraints=p.constraints(), backend="torch", hessp=True)


def test_integral_floats_and_numpy_numbers_are_accepted():
    p = hs.get(71)
    res = am.minimize(
        p.f, p.x0, method="ipopt", bounds=p.bounds, constraints=p.constraints(), backend="torch", options={"max_iter": np.float64(50.0), "tol": 1}
    )
    assert res.success


def test_callback_history_and_stopping():
    p = hs.get(71)
    seen = []

    def callback(intermediate_result):
        seen.append((intermediate_result.nit, intermediate_result.fun, intermediate_result.inf_pr, np.array(intermediate_result.x)))

    res = am.minimize(p.f, p.x0, method="ipopt", bounds=p.bounds, constraints=p.constraints(), backend="torch", callback=callback)
    assert [s[0] for s in seen] == list(range(1, res.nit + 1))
    # IPOPT's last iterate, x[0] 1e-8 below its bound 1, moved onto it: f evaluated there
    np.testing.assert_array_equal(np.clip(seen[-1][3], *p.bounds), res.x)
    assert seen[-1][3][0] < res.x[0] == 1.0 and abs(seen[-1][1] - res.fun) < 1e-6
    assert res.fun == pytest.approx(p.f(res.x), rel=1e-15)
    assert not np.array_equal(seen[-2][3], seen[-1][3])
    assert len(res.history.iterations) == res.nit

    stopped = am.minimize(p.f, p.x0, method="ipopt", bounds=p.bounds, constraints=p.constraints(), backend="torch", callback=lambda x: True)
    assert stopped.status == 5 and not stopped.success and stopped.nit == 1
    assert "callback" in stopped.message


def test_an_exception_in_the_hessian_is_raised_not_lost():
    """cyipopt drops exceptions from its Hessian callback; ours reach the caller."""
    p = hs.get(71)
    calls = []

    def f(x):
        calls.append(1)
        if len(calls) == 4 and x.requires_grad:  # the Lagrangian's evaluation (the Hessian)
            raise ArithmeticError("boom in the Hessian")
        return p.f(x)

    with pytest.raises(ArithmeticError, match="boom") as info:
        am.minimize(f, p.x0, method="ipopt", bounds=p.bounds, constraints=p.constraints(), backend="torch")
    assert info.value.autominimize_best_x is not None


def test_an_exception_in_the_objective_carries_the_point():
    p = hs.get(71)

    def f(x):
        if float(x.detach()[1]) < 4.9:
            raise RuntimeError("outside the model's range")
        return p.f(x)

    with pytest.raises(RuntimeError, match="model's range") as info:
        am.minimize(f, p.x0, method="ipopt", bounds=p.bounds, constraints=p.constraints(), backend="torch")
    assert float(info.value.autominimize_x[1]) < 4.9


def test_keyboard_interrupt_returns_the_best_point():
    p = hs.get(71)

    def callback(intermediate_result):
        if intermediate_result.nit == 3:
            raise KeyboardInterrupt

    res = am.minimize(p.f, p.x0, method="ipopt", bounds=p.bounds, constraints=p.constraints(), backend="torch", callback=callback)
    assert not res.success and "KeyboardInterrupt" in res.message
    assert np.isfinite(res.fun) and res.nit == 3


def test_warm_start_from_a_result():
    p = hs.get(71)
    cold = am.minimize(p.f, p.x0, method="ipopt", bounds=p.bounds, constraints=p.constraints(), backend="torch")
    warm = am.minimize(p.f, p.x0, method="ipopt", bounds=p.bounds, constraints=p.constraints(), backend="torch", options={"warm_start": cold})
    assert warm.success and abs(warm.fun - cold.fun) < 5e-8  # each at its iterate moved onto the bounds
    assert warm.nit < cold.nit
    with pytest.raises(ValueError, match="warm_start"):
        am.minimize(p.f, p.x0, method="ipopt", bounds=p.bounds, constraints=p.constraints(), backend="torch", options={"warm_start": {"x": p.x0}})


def test_quasi_newton_when_derivatives_are_not_the_backends():
    p = hs.get(71)
    res = am.minimize(p.f, p.x0, method="ipopt", bounds=p.bounds, constraints=p.constraints(), backend="numpy")
    # finite-difference gradients: IPOPT stops at its "acceptable" level (status 1)
    assert res.status in (0, 1) and res.hessian == "limited-memory" and res.nhev == 0
    assert abs(res.fun - p.fstar) < 1e-5
    with pytest.raises(ValueError, match="'exact' needs"):
        am.minimize(p.f, p.x0, method="ipopt", constraints=p.constraints(), backend="numpy", options={"hessian_approximation": "exact"})
    chosen = am.minimize(
        p.f, p.x0, method="ipopt", bounds=p.bounds, constraints=p.constraints(), backend="torch", options={"hessian_approximation": "limited-memory"}
    )
    assert chosen.hessian == "limited-memory" and chosen.nhev == 0 and chosen.success


def test_unconstrained_and_log(tmp_path):
    def rosen(x):
        return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()

    res = am.minimize(rosen, torch.zeros(5, dtype=torch.float64), method="ipopt", log=tmp_path / "run.db")
    assert res.success and res.fun < 1e-12
    logged = am.read_log(tmp_path / "run.db")
    assert logged.method == "ipopt" and logged.success


# trust-constr stops at its barrier's accuracy (relative errors 1e-7 to 6e-4 here) and from
# HS015's start reaches the problem's other local minimum, f = 360.38 at (-0.79, -1.26).
_SCIPY_TOLERANCE = {"SLSQP": 1e-6, "trust-constr": 1e-3}


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize("method", ["SLSQP", "trust-constr"])
def test_hock_schittkowski_scipy_methods(method, backend):
    pytest.importorskip(backend)
    numbers = ALL if backend == "torch" else JAX_SUBSET
    for number in numbers:
        p = hs.get(number)
        res = am.minimize(p.f, p.x0, method=method, bounds=p.bounds, constraints=p.constraints(), backend=backend, options={"maxiter": 3000})
        target = 360.3797676 if (method, number) == ("trust-constr", 15) else p.fstar
        assert _relative_error(res.fun, target) <= _SCIPY_TOLERANCE[method], (number, res.fun, target)


def test_tensorflow_exact_lagrangian():
    pytest.importorskip("tensorflow")
    p = hs.get(71)
    res = am.minimize(p.f, p.x0, method="ipopt", bounds=p.bounds, constraints=p.constraints(), backend="tensorflow")
    assert res.success and res.hessian == "exact" and res.nit == 8
    assert _relative_error(res.fun, p.fstar) <= 1e-6


def test_iterate_yields_each_ipopt_iteration():
    p = hs.get(71)
    steps = list(am.iterate(p.f, p.x0, method="ipopt", bounds=p.bounds, constraints=p.constraints(), backend="torch"))
    assert [s.nit for s in steps] == list(range(1, 9))


def test_a_constraint_sized_from_its_program_still_checks_its_bounds():
    """A JAX constraint's size is read from its traced program, not from an evaluation at x0
    (IPOPT starts from x0 moved inside the bounds on HS071, and asks for no c at x0): bounds of
    another size are refused all the same, with the message of a first evaluation."""
    pytest.importorskip("jax")
    p = hs.get(71)
    constraints = p.constraints()
    solved = am.minimize(p.f, p.x0, method="ipopt", bounds=p.bounds, constraints=constraints, backend="jax")
    # the points where IPOPT asked for c, and its last iterate moved onto the bounds
    assert [c["nfev"] for c in solved.constraint_evaluations] == [10, 10]
    wrong = so.NonlinearConstraint(constraints[0]["fun"], np.zeros(3), np.inf)
    with pytest.raises(am.ConstraintError, match="lb has shape \\(3,\\) but the constraint function returns 1 values"):
        am.minimize(p.f, p.x0, method="ipopt", bounds=p.bounds, constraints=[wrong], backend="jax")


@pytest.mark.parametrize("options", [{"start_with_resto": "yes"}, {"obj_scaling_factor": 3.0}], ids=["restoration", "scaled"])
def test_iterates_in_the_restoration_phase_and_of_a_scaled_objective(monkeypatch, options):
    """The iterate is read from the objective's cache only outside the restoration phase and
    where IPOPT's f is the cached value (not of an objective IPOPT scales); elsewhere IPOPT is
    asked. Every recorded iterate, and every callback's x, is IPOPT's."""
    asked, iterates = spy_ipopt_iterates(monkeypatch)
    p = hs.get(71)
    seen = []
    res = am.minimize(
        p.f,
        p.x0,
        method="ipopt",
        bounds=p.bounds,
        constraints=p.constraints(),
        backend="torch",
        options=options,
        history=True,
        callback=lambda x: seen.append(np.array(x)),
    )
    # IPOPT reports the iteration that ends its restoration phase twice
    assert res.success and len(iterates) == len(seen) == len(res.history.iterations) >= res.nit
    for recorded, shown, (_, iterate) in zip(res.history.iterations, seen, iterates):
        np.testing.assert_array_equal(recorded.x, iterate)
        np.testing.assert_array_equal(shown, iterate)
    restoration = sum(1 for alg_mod, _ in iterates if alg_mod)
    if "start_with_resto" in options:
        assert restoration == len(asked) == 2 < res.nit
    else:
        assert restoration == 0 and len(asked) == 0  # HS071's f at its iterates survives the scaling exactly
