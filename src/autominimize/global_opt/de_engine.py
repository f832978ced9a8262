"""A differential evolution engine whose generations are whole-array NumPy operations.

The algorithm is Storn & Price's (1997) with the strategies, dithering, initializations,
out-of-bounds rule and stopping test that ``scipy.optimize.differential_evolution``
documents, run with ``updating='deferred'``: every trial vector of a generation is built
from the population of the previous generation, so a generation is a handful of array
operations over all members at once, and its trial vectors are evaluated by one call to
``evaluate(points)``. How that call evaluates them (one batched call, a loop, a process
pool) does not touch the random stream, so every evaluation mode follows one trajectory.

The population lives in the unit cube; ``evaluate`` receives points scaled into the bounds.

References
----------
R. Storn and K. Price, "Differential Evolution - a Simple and Efficient Heuristic for Global
Optimization over Continuous Spaces", Journal of Global Optimization 11, 341-359 (1997).
J. Qiang and C. Mitchell, "A Unified Differential Evolution Algorithm for Global
Optimization" (2014), for the strategy family.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import numpy as np
import scipy.optimize as so

from .de_settings import INITS, MIN_POPULATION, check_init, mutation_scale

__all__ = [
    "STRATEGIES",
    "INITS",
    "differential_evolution_engine",
    "parse_strategy",
    "make_rng",
    "distinct_indices",
    "mutants",
    "binomial_crossover",
    "exponential_crossover",
    "redraw_outside",
    "initial_population",
]

#: How many random members (distinct from each other and from the member) each mutation uses.
MUTATIONS = {"best1": 2, "best2": 4, "rand1": 3, "rand2": 5, "currenttobest1": 2, "randtobest1": 3}
CROSSOVERS = ("bin", "exp")
#: Every strategy name ``scipy.optimize.differential_evolution`` accepts as a string.
STRATEGIES = tuple(f"{mutation}{crossover}" for mutation in MUTATIONS for crossover in CROSSOVERS)

SUCCESS = "Optimization terminated successfully."
MAXITER = "Maximum number of iterations has been exceeded."
STOPPED = "callback function requested stop early"


def parse_strategy(strategy: Any) -> tuple[str, str]:
    """``'best1bin'`` -> ``('best1', 'bin')``; a clear error for any other value."""
    if isinstance(strategy, str) and strategy in STRATEGIES:
        return strategy[:-3], strategy[-3:]
    raise ValueError(f"strategy={strategy!r}: use one of {', '.join(STRATEGIES)} (or a callable, which runs scipy's engine).")


def make_rng(rng: Any = None, seed: Any = None) -> np.random.Generator:
    """One ``Generator`` from scipy's ``rng=`` or its legacy ``seed=`` (a RandomState seeds it;
    neither: numpy's global RandomState, as in scipy's engine, so np.random.seed repeats a run)."""
    if rng is not None and seed is not None:
        raise ValueError("give rng= or seed=, not both.")
    source = seed if rng is None else rng
    if source is None or isinstance(source, np.random.RandomState):
        return np.random.default_rng((np.random if source is None else source).randint(0, 2**63 - 1, dtype=np.int64))
    return np.random.default_rng(source)


def distinct_indices(rng: np.random.Generator, size: int, count: int) -> np.ndarray:
    """``count`` member indices for each of ``size`` members, all distinct and not the member.

    Row ``i`` is a uniform draw without replacement from ``{0..size-1} \\ {i}``. Column ``c``
    draws uniformly among the ``size - 1 - c`` values of ``{0..size-2}`` the row has not
    taken, by stepping past the taken ones in increasing order; the row is then mapped onto
    ``{0..size-1} \\ {i}`` by stepping past ``i``.
    """
    if count > size - 1:
        raise ValueError(f"cannot draw {count} distinct members besides each member from a population of {size}.")
    return _indices_from(rng.random((size, count)))


def _indices_from(uniforms: np.ndarray) -> np.ndarray:
    """:func:`distinct_indices` from its uniforms, one row per member (shape ``(size, count)``)."""
    size, count = uniforms.shape
    limits, members = _draw_constants(size, count)
    # floor(U * m) is uniform on {0..m-1} (up to m * 2**-53); Generator.integers with an
    # array of upper limits costs three times as much, every generation. The uniforms come
    # row by row, as the stream gives them; each column is then worked on as a contiguous row
    # of a (count, size) array, cheaper than a strided column.
    columns = (uniforms.T * limits).astype(np.intp, order="C")
    if count > 1:
        columns[1] += columns[1] >= columns[0]
    for column in range(2, count):
        pick = columns[column]
        for boundary in np.sort(columns[:column], axis=0):
            pick += pick >= boundary
    columns += columns >= members
    return columns.T


@functools.lru_cache(maxsize=32)
def _draw_constants(size: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """How many values column ``c`` draws among (``size - 1 - c``, a column), and each row's member."""
    return _read_only(size - 1 - np.arange(count)[:, None]), _read_only(np.arange(size))


@functools.lru_cache(maxsize=32)
def _row_starts(members: int, n: int) -> np.ndarray:
    """Where each row starts in a flat ``(members, n)`` array."""
    return _read_only(np.arange(members) * n)


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False  # shared by every generation of every run
    return array


def mutants(kind: str, population: np.ndarray, best: int, picks: np.ndarray, scale: float) -> np.ndarray:
    """The mutant vector of every member for the mutation ``kind`` (scipy's notation)."""
    # one take() gathers the rows of every column (shape (count, members, n)), in a third of
    # the time of population[picks[:, column]] column by column.
    r = population.take(picks.T, axis=0)
    x_best = population[best]
    if kind == "best1":
        return x_best + scale * (r[0] - r[1])
    if kind == "best2":
        return x_best + scale * (r[0] + r[1] - r[2] - r[3])
    if kind == "rand1":
        return r[0] + scale * (r[1] - r[2])
    if kind == "rand2":
        return r[0] + scale * (r[1] + r[2] - r[3] - r[4])
    if kind == "currenttobest1":
        return population + scale * (x_best - population + r[0] - r[1])
    return r[0] + scale * (x_best - r[0] + r[1] - r[2])  # randtobest1


def binomial_crossover(rng: np.random.Generator, current: np.ndarray, mutant: np.ndarray, recombination: float) -> np.ndarray:
    """Each component from the mutant with probability ``recombination``, one chosen always."""
    members, n = current.shape
    return _binomial_from(rng.random(members * (n + 1)), current, mutant, recombination)


def _binomial_from(uniforms: np.ndarray, current: np.ndarray, mutant: np.ndarray, recombination: float) -> np.ndarray:
    """:func:`binomial_crossover` from its ``members * (n + 1)`` uniforms, row by row."""
    members, n = current.shape
    # a row of n + 1 draws per member: a uniform per component, and in the last column the
    # one chosen always (floor(U * n), a third of Generator.integers' cost; see _indices_from)
    draws = uniforms.reshape(members, n + 1)
    take = draws < recombination  # the whole array: comparing only its first n columns costs more
    take.reshape(-1)[_row_starts(members, n + 1) + (draws[:, n] * n).astype(np.intp)] = True
    return np.where(take[:, :n], mutant, current)


def exponential_crossover(rng: np.random.Generator, current: np.ndarray, mutant: np.ndarray, recombination: float) -> np.ndarray:
    """A run of consecutive components (cyclic) from the mutant, from a random start.

    The run has length ``1 + k`` (at most ``n``), where ``k`` counts the uniform draws below
    ``recombination`` before the first one that is not.
    """
    members, n = current.shape
    return _exponential_from(rng.random(members * n), current, mutant, recombination)


def _exponential_from(uniforms: np.ndarray, current: np.ndarray, mutant: np.ndarray, recombination: float) -> np.ndarray:
    """:func:`exponential_crossover` from its ``members * n`` uniforms: each member's start,
    then ``n - 1`` draws per member, row by row."""
    members, n = current.shape
    start = (uniforms[:members] * n).astype(np.intp)  # as in _binomial_from
    stops = np.ones((members, n), dtype=bool)  # the last column ends every run at n
    stops[:, :-1] = uniforms[members:].reshape(members, n - 1) >= recombination
    extra = stops.argmax(axis=1)
    offset = (np.arange(n) - start[:, None]) % n
    return np.where(offset <= extra[:, None], mutant, current)


def redraw_outside(rng: np.random.Generator, trials: np.ndarray) -> np.ndarray:
    """Components outside the unit cube replaced by uniform draws inside it (in place)."""
    outside = (trials < 0.0) | (trials > 1.0)
    count = np.count_nonzero(outside)
    if count:
        trials[outside] = rng.random(count)
    return trials


def initial_population(init: Any, members: int, n: int, rng: np.random.Generator, lb: np.ndarray, ub: np.ndarray) -> np.ndarray:
    """The first population in the unit cube: a sampling scheme's name, or points in the bounds."""
    points = check_init(init, n)
    if points is None:
        from scipy.stats import qmc  # 0.6 s to import: only for the schemes that use it

        if init == "latinhypercube":
            return qmc.LatinHypercube(n, rng=rng).random(members)
        if init == "sobol":
            return qmc.Sobol(n, rng=rng).random_base2(int(np.ceil(np.log2(members))))
        if init == "halton":
            return qmc.Halton(n, rng=rng).random(members)
        return rng.random((members, n))
    return np.clip(_unscale(points, lb, ub), 0.0, 1.0)


def _unscale(points: np.ndarray, lb: np.ndarray, ub: np.ndarray) -> np.ndarray:
    width = ub - lb
    return np.divide(points - lb, width, out=np.full(np.broadcast_shapes(points.shape, lb.shape), 0.5), where=width > 0)


def differential_evolution_engine(
    evaluate: Callable[[np.ndarray], np.ndarray],
    bounds: tuple[np.ndarray, np.ndarray],
    *,
    strategy: str = "best1bin",
    maxiter: int = 1000,
    popsize: int = 15,
    tol: float = 0.01,
    mutation: float | tuple[float, float] = (0.5, 1),
    recombination: float = 0.7,
    rng: np.random.Generator,
    callback: Callable[[so.OptimizeResult], Any] | None = None,
    disp: bool = False,
    init: str | np.ndarray = "latinhypercube",
    atol: float = 0,
    x0: np.ndarray | None = None,
) -> so.OptimizeResult:
    """Minimize over a finite box by differential evolution with deferred updating.

    Parameters
    ----------
    evaluate : callable
        ``evaluate(points)``: the objective at each row of ``points`` (shape ``(S, n)``, in the
        bounds), an array of S values. NaN counts as ``+inf``.
    bounds : (lb, ub)
        Finite flat bounds, each of shape ``(n,)``.
    strategy, maxiter, popsize, tol, mutation, recombination, init, atol, disp
        As ``scipy.optimize.differential_evolution`` documents them. The population has
        ``max(5, popsize * n_free)`` members (``n_free``: the parameters whose bounds
        differ), the next power of two of that for ``'sobol'``, or the rows of an array.
    rng : numpy.random.Generator
        The only source of randomness.
    callback : callable, optional
        ``callback(intermediate_result)`` after each generation, with scipy's fields (flat
        ``x``, ``fun``, ``nit``, ``nfev``, ``population``, ``population_energies`` and
        ``convergence``, which exceeds 1 once the stopping test holds); returning True or
        raising ``StopIteration`` stops.
    x0 : ndarray, optional
        A point in the bounds that replaces the first member of the first population.

    Returns
    -------
    scipy.optimize.OptimizeResult
        ``x``, ``fun``, ``nit`` (generations), ``nfev`` (points evaluated), ``success``,
        ``message``, ``population`` (in the bounds, one row per member) and
        ``population_energies``.
    """
    kind, crossover = parse_strategy(strategy)
    low_scale, high_scale = mutation_scale(mutation)
    if not 0 <= recombination <= 1:
        raise ValueError(f"recombination={recombination!r}: the crossover probability must be in [0, 1].")
    if int(maxiter) != maxiter or maxiter < 0:
        raise ValueError(f"maxiter={maxiter!r}: give a number of generations >= 0.")
    lb, ub = (np.asarray(b, dtype=np.float64) for b in bounds)
    width = ub - lb
    population = _first_population(init, popsize, strategy, rng, lb, ub, x0)
    members, n = population.shape
    energies_of = _energies(evaluate, lb, width, population.shape)
    energies = np.fmin(energies_of(population), np.inf)  # NaN -> +inf in one pass: fmin skips a NaN operand
    nfev, nit, message = members, 0, MAXITER
    best = int(energies.argmin())
    # A generation's draws, in the stream's order: the dithered scale, the picks, the
    # crossover's (the redraws of components outside the box follow, as many as there are).
    # One call for the three spares two calls' fixed cost (about 1 µs a generation).
    dithered = int(low_scale != high_scale)
    picked = dithered + members * MUTATIONS[kind]
    cross, draws = (_binomial_from, picked + members * (n + 1)) if crossover == "bin" else (_exponential_from, picked + members * n)
    for nit in range(1, int(maxiter) + 1):
        uniforms = rng.random(draws)
        scale = low_scale + float(uniforms[0]) * (high_scale - low_scale) if dithered else low_scale
        picks = _indices_from(uniforms[dithered:picked].reshape(members, MUTATIONS[kind]))
        trials = redraw_outside(rng, cross(uniforms[picked:], population, mutants(kind, population, best, picks, scale), recombination))
        trial_energies = energies_of(trials)
        nfev += members
        better = trial_energies < energies  # False for a NaN trial, as for +inf: never kept
        np.copyto(population, trials, where=better[:, None])
        np.copyto(energies, trial_energies, where=better)
        best = int(energies.argmin())
        if disp:
            print(f"differential_evolution step {nit}: f(x)= {energies[best]}")
        if callback is None and _too_spread(energies, best, atol, tol):
            continue
        spread, limit = _spread(energies, atol, tol)
        if callback is not None:
            state = _result(population, energies, best, lb, width, nit, nfev, "in progress", False)
            state.convergence = limit / spread if spread > 0 else np.inf
            if _stop_requested(callback, state):
                message = STOPPED
                break
        if spread <= limit:
            message = SUCCESS
            break
    return _result(population, energies, best, lb, width, nit, nfev, message, message == SUCCESS)


def _first_population(
    init: Any, popsize: int, strategy: str, rng: np.random.Generator, lb: np.ndarray, ub: np.ndarray, x0: np.ndarray | None
) -> np.ndarray:
    """The first population in the unit cube, ``max(5, popsize * n_free)`` members unless
    ``init`` says otherwise, with x0 (if given) as its first member."""
    kind = parse_strategy(strategy)[0]
    members = max(MIN_POPULATION, int(popsize) * max(1, int(np.count_nonzero(ub - lb > 0))))
    population = initial_population(init, members, lb.size, rng, lb, ub)
    members = population.shape[0]
    if members < MUTATIONS[kind] + 1:
        raise ValueError(
            f"strategy={strategy!r} mixes {MUTATIONS[kind]} other members into each one, so it needs a "
            f"population of at least {MUTATIONS[kind] + 1}; this one has {members} (raise popsize or give more init rows)."
        )
    if x0 is not None:
        population[0] = _unscale(np.asarray(x0, dtype=np.float64), lb, ub)
    return population


def _too_spread(energies: np.ndarray, best: int, atol: float, tol: float) -> bool:
    """Whether the energies surely fail the stopping test, from their range: one reduction
    where :func:`_spread` makes three.

    The standard deviation of S values is at least their range over ``2 sqrt(S - 1)``
    (Samuelson's inequality) and ``|mean|`` at most their largest ``|value|``; twice that
    bound covers the rounding of both. Energies that are not finite fail the comparison,
    and :func:`_spread` decides.
    """
    low, high = float(energies[best]), float(energies.max())
    return high - low > 4.0 * math.sqrt(energies.size) * (atol + tol * max(abs(low), abs(high)))


def _spread(energies: np.ndarray, atol: float, tol: float) -> tuple[float, float]:
    """The standard deviation of the energies and the stopping test's limit for it
    (``atol + tol * |mean|``)."""
    # np.mean and np.std, in Python floats from the two sums on (the same IEEE operations,
    # without a NumPy scalar's dispatch for each)
    members = energies.size
    mean = float(energies.sum()) / members
    deviation = energies - mean
    return math.sqrt(float(deviation @ deviation) / members), atol + tol * abs(mean)


def _energies(evaluate: Callable[[np.ndarray], np.ndarray], lb: np.ndarray, width: np.ndarray, shape: tuple) -> Callable[[np.ndarray], np.ndarray]:
    """``energies_of(unit_points)``: the objective at unit-cube points scaled into the box."""
    # lb and width repeated for every member: scaling then needs no broadcasting, which
    # NumPy runs as one short inner loop per row.
    lb_rows, width_rows = (np.broadcast_to(v, shape).copy() for v in (lb, width))

    def energies_of(unit_points: np.ndarray) -> np.ndarray:
        points = unit_points * width_rows
        points += lb_rows
        return np.asarray(evaluate(points), dtype=np.float64).reshape(-1)

    return energies_of


def _stop_requested(callback: Callable[[so.OptimizeResult], Any], state: so.OptimizeResult) -> bool:
    """Whether the callback asks to stop: it returns True or raises StopIteration."""
    try:
        return bool(callback(state))
    except StopIteration:
        return True


def _result(
    population: np.ndarray, energies: np.ndarray, best: int, lb: np.ndarray, width: np.ndarray, nit: int, nfev: int, message: str, success: bool
) -> so.OptimizeResult:
    points = lb + population * width
    return so.OptimizeResult(
        x=points[best].copy(),
        fun=float(energies[best]),
        nit=nit,
        nfev=nfev,
        success=success,
        message=message,
        population=points,
        population_energies=energies.copy(),
    )
