"""The vectorized differential evolution engine: its pieces, scipy's semantics, engine choice."""

from __future__ import annotations

import numpy as np
import pytest

import autominimize as am
from autominimize.global_opt import de_engine
from autominimize.global_opt.de_engine import STRATEGIES, differential_evolution_engine, distinct_indices

ST_MIN = -39.16616570377142  # Styblinski-Tang, per coordinate, at x_i = -2.903534


def rastrigin(p):  # vectorized="rows": x has shape (S, n) or (n,)
    x = p["x"]
    return 10 * x.shape[-1] + np.sum(x**2 - 10 * np.cos(2 * np.pi * x), axis=-1)


def styblinski_tang(x):
    return 0.5 * np.sum(x**4 - 16 * x**2 + 5 * x, axis=-1)


def sphere(x):
    return np.sum((x - 0.3) ** 2, axis=-1)


def box(low, high, n):
    return np.full(n, float(low)), np.full(n, float(high))


# -- every strategy ------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_finds_the_minimum_in_2d_and_5d(strategy):
    res = am.differential_evolution(
        rastrigin,
        {"x": [(-5.12, 4.2)] * 2},
        strategy=strategy,
        rng=0,
        tol=1e-8,
        polish=False,
        vectorized="rows",
        backend="numpy",
        engine="vectorized",
    )
    assert res.engine == "vectorized" and res.evaluation == "batched" and res.success
    assert res.fun < 1e-9
    np.testing.assert_allclose(res.x["x"], 0.0, atol=1e-5)

    res = am.differential_evolution(
        styblinski_tang, [(-5.0, 4.0)] * 5, strategy=strategy, rng=0, tol=1e-8, polish=False, vectorized="rows", backend="numpy"
    )
    assert res.engine == "vectorized"
    assert res.fun == pytest.approx(5 * ST_MIN, abs=1e-5)
    np.testing.assert_allclose(res.x, -2.903534, atol=2e-3)


def test_the_strategy_list_is_scipys():
    import inspect

    import scipy.optimize as so

    doc = inspect.getdoc(so.differential_evolution)
    names = doc[doc.index("Should be one of:") : doc.index("The default is 'best1bin'")]
    assert sorted(STRATEGIES) == sorted(line.strip(" -'") for line in names.splitlines()[1:] if line.strip())


# -- the pieces of a generation --------------------------------------------------------------
@pytest.mark.parametrize("size, count", [(6, 5), (7, 4), (150, 2), (150, 5)])
def test_drawn_indices_are_distinct_and_never_the_member(size, count):
    drawn = distinct_indices(np.random.default_rng(0), size, count)
    assert drawn.shape == (size, count)
    assert drawn.min() >= 0 and drawn.max() < size
    with_member = np.concatenate([np.arange(size)[:, None], drawn], axis=1)
    assert all(len(set(row)) == count + 1 for row in with_member.tolist())


def test_drawn_indices_are_uniform_over_the_other_members():
    rng = np.random.default_rng(1)
    counts = np.zeros((6, 6, 3))
    for _ in range(6000):
        drawn = distinct_indices(rng, 6, 3)
        for column in range(3):
            counts[np.arange(6), drawn[:, column], column] += 1
    frequency = counts / 6000
    for column in range(3):
        np.testing.assert_array_equal(np.diag(frequency[:, :, column]), 0.0)
        off_diagonal = frequency[:, :, column][~np.eye(6, dtype=bool)]
        np.testing.assert_allclose(off_diagonal, 0.2, atol=0.025)  # 1/5, a few standard errors


def test_drawn_indices_read_the_stream_row_by_row_as_documented():
    """Row i, column c: floor(U * (size - 1 - c)) stepped past the row's earlier picks in
    increasing order, then past i; the uniforms U read row by row from the stream."""
    size, count = 9, 4
    expected = []
    for member, row in enumerate(np.random.default_rng(7).random((size, count))):
        taken = []
        for column, uniform in enumerate(row):
            pick = int(uniform * (size - 1 - column))
            for boundary in sorted(taken):
                pick += pick >= boundary
            taken.append(pick)
        expected.append([pick + (pick >= member) for pick in taken])
    np.testing.assert_array_equal(distinct_indices(np.random.default_rng(7), size, count), expected)


def test_too_few_members_for_the_draw():
    with pytest.raises(ValueError, match="cannot draw 5 distinct members"):
        distinct_indices(np.random.default_rng(0), 5, 5)


@pytest.mark.parametrize("kind", list(de_engine.MUTATIONS))
def test_mutants_are_scipys_formulas_over_the_drawn_members(kind):
    rng = np.random.default_rng(3)
    population = rng.random((12, 4))
    picks = distinct_indices(rng, 12, de_engine.MUTATIONS[kind])
    r = [population[picks[:, column]] for column in range(picks.shape[1])]
    best, scale = 5, 0.65
    expected = {
        "best1": lambda: population[best] + scale * (r[0] - r[1]),
        "best2": lambda: population[best] + scale * (r[0] + r[1] - r[2] - r[3]),
        "rand1": lambda: r[0] + scale * (r[1] - r[2]),
        "rand2": lambda: r[0] + scale * (r[1] + r[2] - r[3] - r[4]),
        "currenttobest1": lambda: population + scale * (population[best] - population + r[0] - r[1]),
        "randtobest1": lambda: r[0] + scale * (population[best] - r[0] + r[1] - r[2]),
    }[kind]()
    np.testing.assert_array_equal(de_engine.mutants(kind, population, best, picks, scale), expected)


def test_drawn_indices_are_fresh_arrays_each_generation():
    rng = np.random.default_rng(0)
    first = distinct_indices(rng, 8, 3)
    first[:] = -1  # the caller owns what it gets; nothing shared with the next draw
    second = distinct_indices(rng, 8, 3)
    assert second.min() >= 0 and all(len(set(row)) == 3 and i not in row for i, row in enumerate(second.tolist()))


def test_binomial_crossover_always_takes_one_mutant_component():
    rng = np.random.default_rng(0)
    current, mutant = np.zeros((200, 7)), np.ones((200, 7))
    trial = de_engine.binomial_crossover(rng, current, mutant, 0.0)
    np.testing.assert_array_equal(trial.sum(axis=1), 1.0)
    assert len(set(np.argmax(trial, axis=1).tolist())) == 7  # the forced component is random
    np.testing.assert_array_equal(de_engine.binomial_crossover(rng, current, mutant, 1.0), 1.0)
    taken = de_engine.binomial_crossover(rng, current, mutant, 0.5).sum(axis=1)
    assert taken.min() >= 1 and abs(taken.mean() - (1 + 6 * 0.5)) < 0.3  # one forced, six with p=0.5


def test_binomial_crossover_reads_the_stream_row_by_row():
    """Row i: n + 1 uniforms, component j from the mutant where U_j < CR, and component
    floor(U_n * n) always."""
    current, mutant = np.zeros((6, 5)), np.ones((6, 5))
    uniforms = np.random.default_rng(4).random((6, 6))
    expected = uniforms[:, :5] < 0.4
    expected[np.arange(6), (uniforms[:, 5] * 5).astype(int)] = True
    np.testing.assert_array_equal(de_engine.binomial_crossover(np.random.default_rng(4), current, mutant, 0.4), expected)


def test_exponential_crossover_takes_one_cyclic_run():
    rng = np.random.default_rng(0)
    current, mutant = np.zeros((300, 6)), np.ones((300, 6))
    np.testing.assert_array_equal(de_engine.exponential_crossover(rng, current, mutant, 0.0).sum(axis=1), 1.0)
    np.testing.assert_array_equal(de_engine.exponential_crossover(rng, current, mutant, 1.0), 1.0)
    trial = de_engine.exponential_crossover(rng, current, mutant, 0.5)
    lengths = trial.sum(axis=1)
    assert lengths.min() >= 1 and lengths.max() <= 6
    for row in trial.astype(int).tolist():  # mutant components are consecutive, wrapping around
        assert "".join(map(str, row + row[:1])).count("01") == (1 if sum(row) < 6 else 0)
    # lengths are 1 + a geometric count of successes, capped: P(L = 1) = 1 - CR
    assert np.mean(lengths == 1) == pytest.approx(0.5, abs=0.08)


def test_out_of_bounds_components_are_redrawn_inside():
    rng = np.random.default_rng(0)
    trials = rng.normal(0.5, 1.0, size=(500, 4))
    inside = (trials >= 0) & (trials <= 1)
    before = trials.copy()
    de_engine.redraw_outside(rng, trials)
    assert np.all((trials >= 0) & (trials <= 1))
    np.testing.assert_array_equal(trials[inside], before[inside])
    assert not np.any(trials[~inside] == before[~inside])


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the spread of infinite energies
def test_nan_counts_as_infinity():
    def with_holes(missing):
        def evaluate(points):
            values = sphere(points)
            values[points[:, 0] > 0.5] = missing
            return values

        return evaluate

    run = dict(rng=np.random.default_rng(0), maxiter=8, tol=0)
    nan = differential_evolution_engine(with_holes(np.nan), box(-1, 1, 2), **run)
    inf = differential_evolution_engine(with_holes(np.inf), box(-1, 1, 2), **dict(run, rng=np.random.default_rng(0)))
    np.testing.assert_array_equal(nan.population, inf.population)
    np.testing.assert_array_equal(nan.population_energies, inf.population_energies)
    assert not np.any(np.isnan(nan.population_energies))


def test_every_evaluated_point_is_inside_the_bounds():
    lb, ub = np.array([-1.0, 2.0, 0.0]), np.array([1.0, 2.5, 10.0])
    seen = []

    def evaluate(points):
        seen.append(points.copy())
        return sphere(points)

    differential_evolution_engine(evaluate, (lb, ub), mutation=1.9, rng=np.random.default_rng(0), maxiter=30, tol=0)
    points = np.concatenate(seen)
    assert points.shape == (31 * 45, 3)
    assert np.all(points >= lb) and np.all(points <= ub)


def test_dithering_draws_one_mutation_constant_per_generation(monkeypatch):
    scales = []
    mutants = de_engine.mutants

    def recording(kind, population, best, picks, scale):
        scales.append(scale)
        return mutants(kind, population, best, picks, scale)

    monkeypatch.setattr(de_engine, "mutants", recording)
    run = dict(rng=np.random.default_rng(0), maxiter=40, tol=0)
    differential_evolution_engine(sphere, box(-1, 1, 3), mutation=(0.5, 1.0), **run)
    assert len(scales) == 40 and all(np.ndim(s) == 0 for s in scales)
    assert 0.5 <= min(scales) and max(scales) < 1.0 and len(set(scales)) == 40
    scales.clear()
    differential_evolution_engine(sphere, box(-1, 1, 3), mutation=0.7, **dict(run, rng=np.random.default_rng(0)))
    assert scales == [0.7] * 40


def test_deferred_updating_keeps_the_better_of_member_and_trial():
    populations = []

    def record(intermediate_result):
        populations.append((intermediate_result.population.copy(), intermediate_result.population_energies.copy()))

    differential_evolution_engine(sphere, box(-1, 1, 2), rng=np.random.default_rng(2), maxiter=25, tol=0, callback=record)
    for (_, before), (after_pop, after) in zip(populations, populations[1:]):
        assert np.all(after <= before)  # a member is only ever replaced by a better trial
        np.testing.assert_array_equal(after, sphere(after_pop))


# -- scipy's semantics -------------------------------------------------------------------------
def test_population_size_and_counts_follow_scipy():
    lb, ub = np.array([-1.0, 0.0, 3.0]), np.array([1.0, 2.0, 3.0])  # the last is fixed: 2 free
    res = differential_evolution_engine(sphere, (lb, ub), popsize=7, rng=np.random.default_rng(0), maxiter=12, tol=0)
    assert res.population.shape == (14, 3) and res.population_energies.shape == (14,)
    assert res.nit == 12 and res.nfev == 14 * 13
    assert not res.success and res.message == "Maximum number of iterations has been exceeded."
    np.testing.assert_array_equal(res.population[:, 2], 3.0)
    assert res.fun == res.population_energies.min()
    np.testing.assert_array_equal(res.x, res.population[np.argmin(res.population_energies)])
    assert differential_evolution_engine(sphere, (lb, ub), popsize=1, rng=np.random.default_rng(0), maxiter=1).population.shape == (5, 3)
    sobol = differential_evolution_engine(sphere, (lb, ub), popsize=10, init="sobol", rng=np.random.default_rng(0), maxiter=1)
    assert sobol.population.shape == (32, 3)


@pytest.mark.parametrize("init", ["latinhypercube", "sobol", "halton", "random"])
def test_initial_populations_fill_the_box(init):
    res = differential_evolution_engine(sphere, box(-2, 6, 2), popsize=20, init=init, rng=np.random.default_rng(0), maxiter=0)
    assert res.nit == 0 and res.nfev == len(res.population)
    assert np.all(res.population >= -2) and np.all(res.population <= 6)
    quadrants = np.histogram2d(*res.population.T, bins=2, range=[(-2, 6), (-2, 6)])[0]
    assert quadrants.min() >= 0.1 * len(res.population)
    if init == "latinhypercube":  # one point in each of the 40 slices of each axis
        for column in res.population.T:
            np.testing.assert_array_equal(np.sort(np.floor((column + 2) / 8 * 40)), np.arange(40))


def test_init_array_is_clipped_and_x0_replaces_the_first_member():
    init = np.array([[5.0, 5.0], [0.1, 0.2], [-0.3, 0.4], [0.5, -0.6], [0.7, 0.8], [-9.0, 0.0]])
    res = differential_evolution_engine(sphere, box(-1, 1, 2), init=init, x0=np.array([0.25, -0.5]), rng=np.random.default_rng(0), maxiter=0)
    expected = np.clip(init, -1, 1)
    expected[0] = [0.25, -0.5]
    np.testing.assert_allclose(res.population, expected, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match=r"init as an array must have shape \(S, 2\)"):
        differential_evolution_engine(sphere, box(-1, 1, 2), init=np.zeros((4, 2)), rng=np.random.default_rng(0))


def test_stops_when_the_energies_agree():
    res = differential_evolution_engine(sphere, box(-1, 1, 2), tol=0.05, atol=1e-3, rng=np.random.default_rng(0))
    assert res.success and res.message == "Optimization terminated successfully." and 1 < res.nit < 1000
    energies = res.population_energies
    assert np.std(energies) <= 1e-3 + 0.05 * abs(np.mean(energies))
    big = differential_evolution_engine(sphere, box(-1, 1, 2), tol=1e9, rng=np.random.default_rng(0))
    assert big.nit == 1 and big.success


def test_callback_sees_each_generation_and_can_stop():
    seen = []

    def callback(intermediate_result):
        seen.append(intermediate_result)
        return intermediate_result.nit == 3

    res = differential_evolution_engine(sphere, box(-1, 1, 2), rng=np.random.default_rng(0), callback=callback)
    assert [r.nit for r in seen] == [1, 2, 3] and res.nit == 3
    assert not res.success and res.message == "callback function requested stop early"
    assert seen[-1].fun == res.fun and seen[-1].nfev == res.nfev == 4 * 30

    def stop_iteration(intermediate_result):
        raise StopIteration

    assert differential_evolution_engine(sphere, box(-1, 1, 2), rng=np.random.default_rng(0), callback=stop_iteration).nit == 1


def test_old_style_callback_gets_convergence_above_one_when_converged():
    values = []

    def callback(x, convergence):
        values.append(convergence)

    res = am.differential_evolution(sphere, [(-1, 1)] * 2, rng=0, tol=0.05, callback=callback, polish=False, vectorized="rows", backend="numpy")
    assert res.engine == "vectorized" and res.success and len(values) == res.nit
    assert values[-1] >= 1 and all(v < 1 for v in values[:-1])


def test_same_seed_same_trajectory_and_another_seed_another():
    def run(rng):
        return am.differential_evolution(rastrigin, {"x": [(-5.12, 5.12)] * 3}, rng=rng, maxiter=50, polish=False, vectorized="rows", backend="numpy")

    first, second, other = run(4), run(4), run(5)
    np.testing.assert_array_equal(first.population, second.population)
    np.testing.assert_array_equal(first.population_energies, second.population_energies)
    assert first.nfev == second.nfev and first.fun == second.fun
    assert not np.array_equal(first.population, other.population)
    legacy = am.differential_evolution(rastrigin, {"x": [(-5.12, 5.12)] * 3}, seed=4, maxiter=50, polish=False, vectorized="rows", backend="numpy")
    np.testing.assert_array_equal(legacy.population, first.population)
    generator = am.differential_evolution(
        rastrigin, {"x": [(-5.12, 5.12)] * 3}, rng=np.random.default_rng(4), maxiter=50, polish=False, vectorized="rows", backend="numpy"
    )
    np.testing.assert_array_equal(generator.population, first.population)


def test_polish_uses_exact_gradients_and_reports_jac():
    jnp = pytest.importorskip("jax.numpy")

    def fun(p):
        return jnp.sum((p["w"] - 0.3) ** 2) + (p["b"] + 0.1) ** 2

    bounds = {"w": [(-1, 1)] * 3, "b": (-1, 1)}
    rough = am.differential_evolution(fun, bounds, rng=0, maxiter=5, polish=False)
    polished = am.differential_evolution(fun, bounds, rng=0, maxiter=5)
    assert rough.engine == polished.engine == "vectorized"
    assert polished.fun < 1e-12 < rough.fun and polished.njev > 0
    assert set(polished.jac) == {"w", "b"} and np.abs(polished.jac["w"]).max() < 1e-5
    np.testing.assert_allclose(polished.x["w"], 0.3, atol=1e-6)
    assert polished.nfev > rough.nfev


# -- choosing the engine -----------------------------------------------------------------------
def test_the_engine_and_updating_defaults():
    def plain(x):
        return float(np.sum((x - 0.3) ** 2))

    run = dict(bounds=[(-1, 1)] * 2, rng=0, maxiter=5, polish=False, backend="numpy")
    pointwise = am.differential_evolution(plain, **run)
    assert pointwise.evaluation == "pointwise" and pointwise.engine == "scipy"  # updating='immediate'
    asked = am.differential_evolution(plain, engine="vectorized", **run)
    assert asked.evaluation == "pointwise" and asked.engine == "vectorized"
    deferred = am.differential_evolution(plain, updating="deferred", **run)
    assert deferred.engine == "vectorized"
    np.testing.assert_array_equal(deferred.population, asked.population)
    batched = am.differential_evolution(sphere, vectorized="rows", **run)
    assert batched.evaluation == "batched" and batched.engine == "vectorized"
    np.testing.assert_array_equal(batched.population, asked.population)
    scipy_engine = am.differential_evolution(sphere, vectorized="rows", engine="scipy", **run)
    assert scipy_engine.engine == "scipy" and scipy_engine.nfev == batched.nfev
    assert am.differential_evolution(plain, updating="deferred", integrality=[True, False], **dict(run, bounds=[(-3, 3)] * 2)).engine == "scipy"
    constrained = am.differential_evolution(sphere, vectorized="rows", constraints={"type": "ineq", "fun": lambda x: 1.0 - x[0]}, **run)
    assert constrained.engine == "scipy"


def test_errors_name_the_argument_and_the_accepted_values():
    run = dict(bounds=[(-1, 1)] * 2, rng=0, maxiter=3, vectorized="rows", backend="numpy")
    with pytest.raises(ValueError, match=r"engine='fast': use 'auto' .*'vectorized' or 'scipy'"):
        am.differential_evolution(sphere, engine="fast", **run)
    with pytest.raises(ValueError, match=r"strategy='best3bin': use one of best1bin, best1exp, .*randtobest1exp"):
        am.differential_evolution(sphere, strategy="best3bin", **run)
    with pytest.raises(ValueError, match=r"strategy='best3bin'"):
        am.differential_evolution(sphere, strategy="best3bin", engine="scipy", **run)
    with pytest.raises(ValueError, match="engine='vectorized' .* does not run constraints"):
        am.differential_evolution(sphere, engine="vectorized", constraints={"type": "ineq", "fun": lambda x: x[0]}, **run)
    with pytest.raises(ValueError, match="engine='vectorized' .* does not run integrality"):
        am.differential_evolution(sphere, engine="vectorized", integrality=[True, False], **run)
    with pytest.raises(ValueError, match=r"engine='vectorized' .* does not run updating='immediate'"):
        am.differential_evolution(sphere, engine="vectorized", updating="immediate", **dict(run, vectorized=False))
    with pytest.raises(ValueError, match="does not run a callable strategy"):
        am.differential_evolution(sphere, engine="vectorized", strategy=lambda i, population, rng: population[i], **run)
    with pytest.raises(ValueError, match="init='grid': use one of latinhypercube, sobol, halton, random"):
        am.differential_evolution(sphere, init="grid", **run)
    with pytest.raises(ValueError, match="strategy='rand2bin' mixes 5 other members .* at least 6; this one has 5"):
        am.differential_evolution(sphere, strategy="rand2bin", popsize=1, **dict(run, bounds=[(-1, 1)]))
    with pytest.raises(ValueError, match=r"mutation=2.5: give F in \[0, 2\)"):
        am.differential_evolution(sphere, mutation=2.5, **run)
    with pytest.raises(ValueError, match=r"recombination=1.5"):
        am.differential_evolution(sphere, recombination=1.5, **run)
    with pytest.raises(ValueError, match="give rng= or seed=, not both"):
        am.differential_evolution(sphere, seed=1, **run)
