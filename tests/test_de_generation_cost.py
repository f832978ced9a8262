"""What one generation of differential evolution costs, counted: calls of the random number
generator and of the objective, and torch operations besides the objective's own."""

from __future__ import annotations

import numpy as np
import pytest

from autominimize.global_opt import de_engine
from autominimize.global_opt.de_engine import STRATEGIES, differential_evolution_engine


class CountingGenerator:
    """A NumPy Generator that counts the calls of ``random`` and the numbers they draw."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.calls: list[int] = []

    def random(self, size=None):
        values = self.rng.random(size)
        self.calls.append(int(np.size(values)))
        return values


def sphere(points):
    return np.sum((points - 0.3) ** 2, axis=-1)


@pytest.mark.parametrize("strategy", ["best1bin", "rand2exp", "currenttobest1bin", "randtobest1exp"])
@pytest.mark.parametrize("mutation", [0.6, (0.5, 1.0)])
def test_a_generation_draws_its_numbers_in_one_call_besides_the_redraws(strategy, mutation):
    rng, calls = CountingGenerator(0), []

    def evaluate(points):
        calls.append(len(rng.calls))
        return sphere(points)

    members, n, generations = 20, 4, 15
    lb, ub = np.full(n, -1.0), np.full(n, 1.0)
    differential_evolution_engine(
        evaluate, (lb, ub), strategy=strategy, mutation=mutation, popsize=5, maxiter=generations, tol=0, rng=rng, init="random"
    )
    assert len(calls) == generations + 1  # the first population, then one call a generation
    picks = {"best1": 2, "rand2": 5, "currenttobest1": 2, "randtobest1": 3}[strategy[:-3]]
    crossover = members * (n + 1) if strategy.endswith("bin") else members * n
    expected = int(np.ndim(mutation) == 1) + members * picks + crossover
    for before, after in zip(calls, calls[1:]):
        drawn = rng.calls[before:after]
        # one call for the generation, a second only for components that left the box
        assert drawn[0] == expected and len(drawn) <= 2


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_one_call_a_generation_draws_what_separate_calls_drew(strategy):
    """The numbers of a generation come from the stream in the order of the separate calls
    of the public pieces (scale, picks, crossover, redraws): a seed keeps its trajectory."""
    members, n = 12, 3
    separate = np.random.default_rng(9)
    population = separate.random((members, n))
    best = int(sphere(population).argmin())
    kind, crossover = strategy[:-3], strategy[-3:]
    scale = 0.5 + separate.random() * 0.5
    picks = de_engine.distinct_indices(separate, members, de_engine.MUTATIONS[kind])
    mutant = de_engine.mutants(kind, population, best, picks, scale)
    cross = de_engine.binomial_crossover if crossover == "bin" else de_engine.exponential_crossover
    expected = de_engine.redraw_outside(separate, cross(separate, population, mutant, 0.6))
    seen = []

    def evaluate(points):
        seen.append(points.copy())
        return sphere(points)

    unit = (np.zeros(n), np.ones(n))  # points in the box are the unit points themselves
    differential_evolution_engine(
        evaluate,
        unit,
        strategy=strategy,
        mutation=(0.5, 1.0),
        recombination=0.6,
        popsize=4,
        maxiter=1,
        tol=0,
        rng=np.random.default_rng(9),
        init="random",
    )
    np.testing.assert_array_equal(seen[0], population)
    np.testing.assert_array_equal(seen[1], expected)


def test_a_torch_generation_calls_the_function_once_and_converts_its_values_once():
    """Per generation of batched torch evolution: one call of the function on the whole
    batch, and besides the function's own torch calls only the grad mode switched off and
    on, the values detached and viewed as NumPy (no per-member loop, no tensor copied from
    or back to the host beyond that)."""
    torch = pytest.importorskip("torch")
    from collections import Counter

    from torch.overrides import TorchFunctionMode

    import autominimize as am

    class Counting(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.calls = Counter()

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.calls[getattr(func, "__name__", repr(func))] += 1
            return func(*args, **(kwargs or {}))

    shapes = []

    def rosenbrock(x):
        shapes.append(tuple(x.shape))
        return torch.sum(100 * (x[..., 1:] - x[..., :-1] ** 2) ** 2 + (1 - x[..., :-1]) ** 2, -1)

    def run(generations):
        shapes.clear()
        with Counting() as counting:
            am.differential_evolution(rosenbrock, [(-2, 2)] * 4, maxiter=generations, popsize=5, tol=0, polish=False, rng=0, backend="torch")
        return counting.calls, list(shapes)

    with Counting() as alone:
        rosenbrock(torch.zeros(20, 4))
    run(1)  # the first batch is mapped, then the function is probed on the whole batch
    few, few_shapes = run(3)
    more, more_shapes = run(13)
    assert few_shapes == [(20, 4)] * 4 and more_shapes == [(20, 4)] * 14  # one call a generation, on the whole batch
    per_generation = {name: (more[name] - few[name]) / 10 for name in more}
    besides = {name: count - alone.calls[name] for name, count in per_generation.items() if count != alone.calls[name]}
    assert besides == {"_set_grad_enabled": 2, "detach": 1, "numpy": 1, "__get__": 1}


@pytest.mark.parametrize("tol, atol", [(0.01, 0.0), (0.0, 0.0), (0.0, 1e-3), (0.5, 1e-6)])
def test_the_range_rules_out_stopping_only_where_the_full_test_fails(tol, atol):
    """The stopping test is skipped from the range alone only where the standard deviation
    surely exceeds its limit; near agreement the full test runs."""
    rng = np.random.default_rng(2)
    skipped = 0
    for scale in 10.0 ** np.arange(-16, 6):
        for centre in (0.0, 1.0, -3e4, 1e12):
            energies = centre + scale * rng.standard_normal(150)
            best = int(energies.argmin())
            spread, limit = de_engine._spread(energies, atol, tol)
            if de_engine._too_spread(energies, best, atol, tol):
                skipped += 1
                assert spread > limit
    assert skipped > 20 or tol > 0.01  # it skips the generations far from agreement (a large tol, seldom)
    energies = np.array([1.0, np.inf, 2.0, -np.inf, 3.0])
    assert not de_engine._too_spread(energies, 3, atol, tol)  # not finite: the full test decides
    assert not de_engine._too_spread(np.full(5, np.inf), 0, atol, tol)


def test_a_small_torch_batch_runs_on_one_intra_op_thread_and_the_setting_comes_back():
    """A generation of 150 × 10 numbers is evaluated with one torch thread: torch splits even
    such small elementwise ops (cos) over its pool, and waking it costs more than the work.
    Every call of the function sees one thread; the caller's setting is back afterwards."""
    torch = pytest.importorskip("torch")
    import autominimize as am

    seen = []

    def rastrigin(x):
        seen.append(torch.get_num_threads())
        return 10 * x.shape[-1] + torch.sum(x**2 - 10 * torch.cos(2 * torch.pi * x), -1)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        am.differential_evolution(rastrigin, [(-5.12, 5.12)] * 10, maxiter=5, tol=0, polish=False, rng=0, backend="torch")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert len(seen) == 7 and set(seen) == {1}  # mapped first batch, its probe on the whole batch, 5 generations
