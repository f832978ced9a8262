"""Global optimizers: known optima on several backends, batched evolution, structures, seeds."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize as so

import autominimize as am
from autominimize.bounds import BoundsError

jnp = pytest.importorskip("jax.numpy")
torch = pytest.importorskip("torch")

ST_MIN = -39.16616570377142  # Styblinski-Tang, per coordinate, at x_i = -2.903534


def _ops(backend):
    if backend == "jax":
        return jnp.sum, jnp.cos, jnp.exp, jnp.sqrt
    if backend == "torch":
        return torch.sum, torch.cos, torch.exp, torch.sqrt
    return np.sum, np.cos, np.exp, np.sqrt


def problems(backend):
    total, cos, exp, sqrt = _ops(backend)

    def rastrigin(x):
        return 10 * x.shape[0] + total(x**2 - 10 * cos(2 * np.pi * x))

    def ackley(x):
        n = x.shape[0]
        return -20 * exp(-0.2 * sqrt(total(x**2) / n)) - exp(total(cos(2 * np.pi * x)) / n) + 20 + np.e

    def styblinski_tang(x):
        return 0.5 * total(x**4 - 16 * x**2 + 5 * x)

    # Boxes are not centred on the optimum, so no method samples it by symmetry.
    return {
        "rastrigin": (rastrigin, (-5.12, 4.2), lambda n: 0.0),
        "ackley": (ackley, (-5.0, 4.0), lambda n: 0.0),
        "styblinski_tang": (styblinski_tang, (-5.0, 4.0), lambda n: ST_MIN * n),
    }


def _run(solver, name, fun, box, n, backend):
    bounds = [box] * n
    if solver == "differential_evolution":
        return am.differential_evolution(fun, bounds, rng=0, backend=backend)
    if solver == "dual_annealing":
        return am.dual_annealing(fun, bounds, rng=0, maxiter=300, backend=backend)
    if solver == "direct":
        # DIRECT has no local refinement: Rastrigin's many minima need the global search.
        return am.direct(fun, bounds, maxfun=50000, eps=1e-6, vol_tol=1e-30, len_tol=1e-9, locally_biased=name != "rastrigin", backend=backend)
    if solver == "shgo":
        return am.shgo(fun, bounds, n=128, iters=3, minimizer_kwargs={"method": "L-BFGS-B"}, backend=backend)
    if solver == "basinhopping":
        return am.basinhopping(
            fun, np.full(n, 2.5), niter=150, stepsize=2.5, rng=0, backend=backend, minimizer_kwargs={"method": "L-BFGS-B", "bounds": box}
        )
    return am.multistart(fun, bounds, n_starts=64, rng=0, backend=backend)


SOLVERS = ["differential_evolution", "dual_annealing", "direct", "shgo", "basinhopping", "multistart"]
# Out of reach within a test budget: 5-D Rastrigin has 10^5 local minima; SHGO's sampled
# complex and uniform multistart reach the global basin with probability ~1e-5 per start.
HARD = {("shgo", "rastrigin", 5), ("multistart", "rastrigin", 5)}


@pytest.mark.parametrize("backend", ["jax", "other"])
@pytest.mark.parametrize("n", [2, 5])
@pytest.mark.parametrize("name", ["rastrigin", "ackley", "styblinski_tang"])
@pytest.mark.parametrize("solver", SOLVERS)
def test_finds_the_global_minimum(solver, name, n, backend):
    if (solver, name, n) in HARD:
        pytest.skip("no global method of this family finds it within a test budget")
    if backend == "other":  # DIRECT evaluates point by point: NumPy is its fast second backend
        backend = "numpy" if solver == "direct" else "torch"
    fun, box, fmin = problems(backend)[name]
    res = _run(solver, name, fun, box, n, backend)
    assert res.backend == backend
    assert res.fun == pytest.approx(fmin(n), abs=1e-4)
    optimum = -2.903534 if name == "styblinski_tang" else 0.0
    np.testing.assert_allclose(np.asarray(res.x), optimum, atol=2e-3)


# -- batched differential evolution -----------------------------------------------------
def _rastrigin_numpy_batched(p):
    x = p["x"]  # (4, S) when vectorized: scipy's layout, a trailing batch axis on every leaf
    return 10 * x.shape[0] + np.sum(x**2 - 10 * np.cos(2 * np.pi * x), axis=0) + (p["s"] - 0.5) ** 2


@pytest.mark.parametrize("backend", ["jax", "torch", "numpy"])
def test_batched_evolution_follows_the_unbatched_trajectory(backend):
    if backend == "numpy":
        fun = _rastrigin_numpy_batched
    else:
        total, cos, _, _ = _ops(backend)

        def fun(p):
            x = p["x"]
            return 10 * x.shape[-1] + total(x**2 - 10 * cos(2 * np.pi * x)) + (p["s"] - 0.5) ** 2

    bounds = {"x": [(-5.12, 5.12)] * 4, "s": (0.0, 1.0)}
    runs = []
    for vectorized, updating in ((True, None), (False, "deferred")):
        generations = []

        def record(intermediate_result):
            generations.append((intermediate_result.population.copy(), intermediate_result.population_energies.copy()))

        res = am.differential_evolution(
            fun, bounds, rng=3, maxiter=60, vectorized=vectorized, updating=updating, callback=record, backend=backend, polish=False
        )
        runs.append((res, generations))
    (batched, gen_b), (single, gen_s) = runs
    assert batched.evaluation == "batched" and single.evaluation == "pointwise"
    assert batched.engine == single.engine == "vectorized"
    assert batched.nit == single.nit == len(gen_b) == len(gen_s) == 60
    for (pop_b, energies_b), (pop_s, energies_s) in zip(gen_b, gen_s):
        np.testing.assert_array_equal(pop_b, pop_s)
        # a vmapped sum may round its last bits differently from the per-point sum
        np.testing.assert_allclose(energies_b, energies_s, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(batched.population, single.population)
    np.testing.assert_array_equal(batched.x["x"], single.x["x"])
    assert batched.fun == pytest.approx(single.fun, abs=1e-12)


def test_auto_batching_falls_back_for_an_unmappable_function():
    def fun(x):
        return torch.sum(x**2) + float(x[0].item() > 0)  # .item() cannot be vmapped

    with pytest.warns(UserWarning, match="each member is evaluated separately"):
        res = am.differential_evolution(fun, [(-1, 1)] * 2, rng=0, maxiter=20, backend="torch")
    assert res.evaluation == "batched"
    assert res.fun <= 1e-6


@pytest.mark.parametrize("backend", ["jax", "torch", "tensorflow", "numpy"])
def test_compile_batched_matches_pointwise_values(backend):
    pytest.importorskip(backend)
    from autominimize.backends import get_backend
    from autominimize.params import ParamSpec

    if backend == "tensorflow":
        import tensorflow as tf

        def fun(p):
            return tf.reduce_sum(p["w"] ** 2) + p["b"] ** 3
    elif backend == "numpy":

        def fun(p):
            return np.sum(p["w"] ** 2, axis=(-2, -1)) + p["b"] ** 3
    else:

        def fun(p):
            return (p["w"] ** 2).sum() + p["b"] ** 3

    spec = ParamSpec.from_tree({"w": np.zeros((2, 3)), "b": 0.0})
    points = np.random.default_rng(0).normal(size=(9, 7))
    expected = [np.sum(x[:6] ** 2) + x[6] ** 3 for x in points]  # dict leaves in x0's own order: w, b
    impl = get_backend(backend)
    with impl.solve_context("float64"):
        batched = impl.compile_batched(fun, spec, "float64")
        out = batched(points)
        batched(points)
    assert out.shape == (9,) and out.dtype == np.float64
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert batched.traces <= (2 if backend in ("torch", "numpy") else 1)


# -- structures, bounds, callbacks -------------------------------------------------------
def test_structure_from_bounds_alone():
    def fun(p):
        return (p["a"] - 1.5) ** 2 + jnp.sum((p["w"] + 0.5) ** 2) + jnp.sum(p["v"] ** 2)

    bounds = {"a": (0, 3), "w": (np.full((2, 2), -2.0), 2.0), "v": [(-1, 1)] * 3}
    res = am.differential_evolution(fun, bounds, rng=0)
    assert isinstance(res.x["a"], float)
    assert res.x["w"].shape == (2, 2) and res.x["v"].shape == (3,)
    assert res.x["a"] == pytest.approx(1.5, abs=1e-6)
    np.testing.assert_allclose(res.x["w"], -0.5, atol=1e-6)


def test_x0_gives_structure_and_array_types():
    x0 = {"w": torch.zeros(2, dtype=torch.float64), "b": torch.tensor(0.0, dtype=torch.float64)}

    def fun(w, b):
        return torch.sum((w - 0.3) ** 2) + (b + 0.2) ** 2

    res = am.dual_annealing(fun, {"w": (-1, 1), "b": (-1, 1)}, x0=x0, rng=1, maxiter=50)
    assert isinstance(res.x["w"], torch.Tensor) and res.x["w"].dtype == torch.float64
    assert res.backend == "torch"
    np.testing.assert_allclose(res.x["w"].numpy(), 0.3, atol=1e-6)


@pytest.mark.parametrize(
    "bounds",
    [
        (-2, 2),
        so.Bounds(-2, 2),
        {"u": (-2, 2), "v": [(-2, 2), (-2, 2), (-2, 2)]},
        {"u": np.array([[-2, 2]] * 2), "v": (-2, [2, 2, 2])},
        [(-2, 2)] * 5,
    ],
)
def test_every_bounds_format(bounds):
    def fun(p):
        return jnp.sum((p["u"] - 1) ** 2) + jnp.sum((p["v"] + 1) ** 2)

    x0 = {"u": np.zeros(2), "v": np.zeros(3)}
    res = am.differential_evolution(fun, bounds, x0=x0, rng=0, maxiter=200)
    np.testing.assert_allclose(res.x["u"], 1, atol=1e-6)
    np.testing.assert_allclose(res.x["v"], -1, atol=1e-6)


def test_callbacks_receive_the_structure():
    def fun(p):
        return jnp.sum((p["x"] - 0.5) ** 2) + p["y"] ** 2

    bounds = {"x": [(-1, 1)] * 2, "y": (-1, 1)}
    x0 = {"x": np.zeros(2), "y": 0.3}
    seen = []

    def structured(x, *rest, **convergence):
        seen.append(x)

    am.basinhopping(fun, x0, niter=2, rng=0, callback=structured)
    am.dual_annealing(fun, bounds, maxiter=3, rng=0, callback=structured)
    am.direct(fun, bounds, maxiter=3, callback=structured)
    am.differential_evolution(fun, bounds, maxiter=2, rng=0, callback=structured)
    am.differential_evolution(fun, bounds, maxiter=2, rng=0, callback=lambda intermediate_result: seen.append(intermediate_result.x))
    am.shgo(fun, bounds, n=16, callback=structured)
    assert seen and all(isinstance(x, dict) and x["x"].shape == (2,) and np.ndim(x["y"]) == 0 for x in seen)


def test_callback_returning_true_stops():
    res = am.basinhopping(lambda x: jnp.sum(x**2), np.ones(2), niter=50, rng=0, callback=lambda x, f, accept: True)
    assert res.nit == 1


def test_local_solves_get_exact_derivatives_of_any_method():
    def fun(x):
        return jnp.sum(x**4 - 16 * x**2 + 5 * x)

    res = am.basinhopping(fun, np.zeros(3), niter=5, rng=0, stepsize=3.0, minimizer_kwargs={"method": "trust-ncg"})
    assert res.nhvp > 0 and res.njev > 0
    res = am.dual_annealing(fun, [(-5, 5)] * 3, maxiter=20, rng=0, minimizer_kwargs={"method": "trust-exact"})
    assert res.nhev > 0
    np.testing.assert_allclose(res.x, -2.903534, atol=1e-5)
    res = am.shgo(fun, [(-5, 5)] * 2, minimizer_kwargs={"method": "SLSQP", "constraints": {"type": "ineq", "fun": lambda x: x[0] - x[1]}})
    assert res.x[0] >= res.x[1] - 1e-8


def test_constrained_evolution_is_polished_with_constraints():
    def fun(x):
        return jnp.sum((x - 1.0) ** 2)

    constraint = {"type": "ineq", "fun": lambda x: 1.0 - jnp.sum(x)}  # x0 + x1 <= 1
    res = am.differential_evolution(fun, [(-2, 2)] * 2, constraints=constraint, rng=0)
    assert res.x.sum() <= 1 + 1e-8 and res.fun == pytest.approx(0.5, abs=1e-3)
    res = am.differential_evolution(fun, [(-2, 2)] * 2, constraints=constraint, rng=0, polish="SLSQP")
    np.testing.assert_allclose(res.x, [0.5, 0.5], atol=1e-6)
    assert res.njev > 0


@pytest.mark.parametrize(
    "call",
    [
        lambda f: am.differential_evolution(f, [(-1, 1)] * 2, rng=11, maxiter=30),
        lambda f: am.dual_annealing(f, [(-1, 1)] * 2, rng=11, maxiter=30),
        lambda f: am.basinhopping(f, np.ones(2), rng=11, niter=10),
        lambda f: am.multistart(f, [(-1, 1)] * 2, n_starts=8, rng=11, sampling="random"),
        lambda f: am.multistart(f, [(-1, 1)] * 2, n_starts=8, rng=11, sampling="lhs"),
    ],
)
def test_same_seed_same_result(call):
    def fun(x):
        return jnp.sum(x**2 - 0.3 * jnp.cos(9 * x))

    first, second = call(fun), call(fun)
    np.testing.assert_array_equal(np.asarray(first.x), np.asarray(second.x))
    assert first.fun == second.fun and first.nfev == second.nfev


def test_one_compile_across_local_solves():
    traces = []

    def fun(x):
        traces.append(1)
        return jnp.sum(x**4 - 16 * x**2 + 5 * x)

    am.basinhopping(fun, np.zeros(2), niter=10, rng=0, backend="jax")
    first = len(traces)
    am.basinhopping(fun, np.zeros(2), niter=10, rng=1, backend="jax")
    assert len(traces) == first  # nothing retraced on a second run either


# -- multistart ------------------------------------------------------------------------
def himmelblau(x, y):
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


HIMMELBLAU_MINIMA = [(3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)]


@pytest.mark.parametrize("sampling", ["sobol", "lhs", "random"])
@pytest.mark.parametrize("backend", ["jax", "numpy"])
def test_multistart_finds_the_four_minima_of_himmelblau(sampling, backend):
    res = am.multistart(himmelblau, {"x": (-5, 5), "y": (-5, 5)}, n_starts=40, sampling=sampling, rng=0, backend=backend)
    found = [(m.x["x"], m.x["y"]) for m in res.minima if m.fun < 1e-8]
    assert len(found) == 4
    for expected in HIMMELBLAU_MINIMA:
        assert any(np.allclose(f, expected, atol=1e-4) for f in found)
    assert res.fun < 1e-10 and len(res.local_results) == 40 and res.nlocal == 40
    assert res.minima[0].fun == res.fun and res.starts.shape == (40, 2)
    assert res.nfev == sum(r.nfev for r in res.local_results)


def test_multistart_x0_is_the_first_start():
    res = am.multistart(himmelblau, {"x": (-5, 5), "y": (-5, 5)}, n_starts=4, x0={"x": 3.1, "y": 1.9}, rng=0, backend="numpy")
    np.testing.assert_allclose(res.starts[0], [3.1, 1.9])
    assert res.local_results[0].x["x"] == pytest.approx(3.0, abs=1e-5)


# -- parallel evaluation -----------------------------------------------------------------
def test_workers_in_processes_match_one_process():
    kwargs = dict(bounds=[(-2, 2)] * 3, rng=0, maxiter=40, polish=False, backend="numpy")
    parallel = am.differential_evolution(so.rosen, workers=2, **kwargs)
    local = am.differential_evolution(so.rosen, updating="deferred", **kwargs)
    assert parallel.evaluation == "parallel" and parallel.engine == local.engine == "vectorized"
    np.testing.assert_array_equal(parallel.population, local.population)
    np.testing.assert_array_equal(parallel.x, local.x)
    # 45 members, 41 populations; one process skips a point equal to the one just evaluated
    assert parallel.nfev == 45 * 41 and parallel.nfev - 2 <= local.nfev <= parallel.nfev
    multi = am.multistart(so.rosen, [(-2, 2)] * 3, n_starts=6, rng=0, workers=2, backend="numpy")
    single = am.multistart(so.rosen, [(-2, 2)] * 3, n_starts=6, rng=0, backend="numpy")
    np.testing.assert_allclose(multi.x, single.x)
    assert multi.nfev == single.nfev


def test_executor_and_dask_client():
    from concurrent.futures import ThreadPoolExecutor

    distributed = pytest.importorskip("distributed")

    def fun(x):
        return np.sum((x - 0.25) ** 2)

    kwargs = dict(bounds=[(-1, 1)] * 2, rng=0, maxiter=20, backend="numpy")
    reference = am.differential_evolution(fun, updating="deferred", **kwargs)
    with ThreadPoolExecutor(2) as pool:
        threaded = am.differential_evolution(fun, executor=pool, **kwargs)
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as client:
        dask = am.differential_evolution(fun, executor=client, **kwargs)
        shgo = am.shgo(fun, [(-1, 1)] * 2, executor=client, backend="numpy")
    np.testing.assert_array_equal(threaded.x, reference.x)
    np.testing.assert_array_equal(dask.x, reference.x)
    np.testing.assert_allclose(shgo.x, 0.25, atol=1e-6)


# -- errors ------------------------------------------------------------------------------
def test_errors_name_the_argument():
    def fun(x):
        return jnp.sum(x**2)

    with pytest.raises(ValueError, match="vectorized=True and workers"):
        am.differential_evolution(fun, [(-1, 1)] * 2, vectorized=True, workers=2)
    with pytest.raises(ValueError, match="updating='immediate'"):
        am.differential_evolution(fun, [(-1, 1)] * 2, vectorized=True, updating="immediate")
    with pytest.raises(BoundsError, match="finite"):
        am.dual_annealing(fun, [(-1, None)] * 2)
    with pytest.raises(BoundsError, match="pass x0="):
        am.direct(fun, {"a": None})
    with pytest.raises(TypeError, match="minimizer_kwargs has unknown key"):
        am.basinhopping(fun, np.ones(2), minimizer_kwargs={"maxiter": 3})
    with pytest.raises(TypeError, match="picklable"):
        am.differential_evolution(lambda x: np.sum(x**2), [(-1, 1)] * 2, workers=2, backend="numpy")
    with pytest.raises(ValueError, match="sampling="):
        am.multistart(fun, [(-1, 1)] * 2, sampling="grid")
    with pytest.raises(ValueError, match="options"):
        am.shgo(fun, [(-1, 1)] * 2, options={"jac": True})


def test_an_unknown_error_policy_is_refused_before_fun_runs():
    calls = []

    def fun(x):
        calls.append(1)
        return np.sum(x**2)

    box = [(-1, 1)] * 2
    entries = {
        "differential_evolution": lambda: am.differential_evolution(fun, box, error_handling="skip"),
        "dual_annealing": lambda: am.dual_annealing(fun, box, error_handling="skip"),
        "shgo": lambda: am.shgo(fun, box, error_handling="skip"),
        "direct": lambda: am.direct(fun, box, error_handling="skip"),
        "basinhopping": lambda: am.basinhopping(fun, np.zeros(2), error_handling="skip"),
    }
    for name, entry in entries.items():
        with pytest.raises(ValueError, match=r"error_handling='skip' is not accepted; use 'raise'"):
            entry()
        assert calls == [], name  # not even the evaluation that detects the backend


def test_example_runs(capsys):
    import runpy
    from pathlib import Path

    runpy.run_path(str(Path(__file__).parents[1] / "examples" / "global_minima.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "batched" in out and out.count("multistart minimum") == 4


# -- batched multistart (one native L-BFGS over every start) ---------------------------------
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_batched_multistart_finds_the_four_minima_of_himmelblau(backend):
    bounds = {"x": (-5, 5), "y": (-5, 5)}
    res = am.multistart(himmelblau, bounds, n_starts=64, method="lbfgs-native", rng=0, backend=backend)
    assert res.batched is True and res.backend == backend
    found = [(float(m.x["x"]), float(m.x["y"])) for m in res.minima if m.fun < 1e-8]
    assert len(found) == 4
    for expected in HIMMELBLAU_MINIMA:
        assert any(np.allclose(f, expected, atol=1e-4) for f in found)
    assert len(res.local_results) == 64 and res.nlocal == 64
    assert res.nfev == sum(r.nfev for r in res.local_results) and res.njev == res.nfev
    assert len({r.nit for r in res.local_results}) > 5  # every start stopped on its own
    # with the Armijo search, each start's result is the unbatched projected L-BFGS solve within the box
    armijo = am.multistart(
        himmelblau, bounds, n_starts=64, method="lbfgs-native", rng=0, backend=backend, minimizer_kwargs={"options": {"line_search": "armijo"}}
    )
    loop = am.multistart(himmelblau, bounds, n_starts=64, method="lbfgs-native", rng=0, backend=backend, batched=False)
    assert loop.batched is False and armijo.batched is True
    for a, b in zip(armijo.local_results, loop.local_results):
        assert a.nit == b.nit and a.nfev == b.nfev
        assert abs(a.x["x"] - b.x["x"]) < 1e-9 and abs(a.x["y"] - b.x["y"]) < 1e-9


def test_batched_multistart_needs_a_vmap_backend():
    with pytest.raises(ValueError, match="batched=True runs the local solves"):
        am.multistart(himmelblau, {"x": (-5, 5), "y": (-5, 5)}, n_starts=4, method="lbfgs-native", batched=True, backend="numpy")
    res = am.multistart(himmelblau, {"x": (-5, 5), "y": (-5, 5)}, n_starts=4, method="lbfgs-native", rng=0, backend="numpy")
    assert res.batched is False and res.nlocal == 4
