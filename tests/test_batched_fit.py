"""am.batched_least_squares and am.batched_curve_fit: every member as scipy solves it alone."""

from __future__ import annotations

import _thread
import concurrent.futures
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
import scipy.optimize as so

import autominimize as am

T = np.linspace(0.0, 5.0, 40)
TIGHT = dict(ftol=1e-14, xtol=1e-14, gtol=1e-14)


def decay_np(t, a, k, c):
    return a * np.exp(-k * t) + c


def residual_np(p, y_b):
    return decay_np(T, p["a"], p["k"], p["c"]) - y_b


def decay_for(backend):
    if backend == "jax":
        import jax.numpy as jnp

        return lambda t, a, k, c: a * jnp.exp(-k * t) + c
    if backend == "torch":
        import torch

        return lambda t, a, k, c: a * torch.exp(-k * t) + c
    return decay_np


def mixed_batch():
    """Well-posed decays, an ill-conditioned one (k ≈ 0: a and c nearly collinear), and a
    member whose start is NaN (the last)."""
    rng = np.random.default_rng(3)
    params = [(2.0, 1.3, 0.1), (1.0, 0.4, -0.3), (3.0, 2.5, 0.0), (0.5, 0.8, 0.2), (2.0, 0.12, 1.0), (1.0, 1.0, 0.0)]
    y = np.stack([decay_np(T, *p) + 0.02 * rng.normal(size=T.size) for p in params])
    p0 = np.tile([1.5, 1.0, 0.0], (len(params), 1))
    p0[-1, 1] = np.nan
    return y, p0


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_every_member_agrees_with_scipy_curve_fit_alone(backend):
    pytest.importorskip(backend)
    y, p0 = mixed_batch()
    res = am.batched_curve_fit(decay_for(backend), T, y, p0=p0, backend=backend, error_handling="continue", **TIGHT)
    assert res.x.shape == p0.shape and res.backend == backend
    assert res.status[-1] == -1 and not res.success[-1] and "not finite" in res.messages[-1]
    np.testing.assert_array_equal(res.x[-1], p0[-1])  # left at its start, the others solved
    assert res.success[:-1].all()
    for i in range(len(y) - 1):
        popt, pcov = so.curve_fit(decay_np, T, y[i], p0=p0[i], ftol=1e-14, xtol=1e-14)
        np.testing.assert_allclose(res.x[i], popt, atol=1e-6, rtol=0, err_msg=f"member {i}")
        np.testing.assert_allclose(res.pcov[i], pcov, rtol=2e-3, err_msg=f"member {i}")
        assert res.cost[i] == pytest.approx(0.5 * np.sum((decay_np(T, *popt) - y[i]) ** 2), rel=1e-9)


def scipy_pcov(jac):
    """(JᵀJ)⁺ as scipy.optimize.curve_fit computes it."""
    _, s, vt = np.linalg.svd(jac, full_matrices=False)
    kept = s > np.finfo(float).eps * max(jac.shape) * s[0]
    return (vt[kept].T / s[kept] ** 2) @ vt[kept]


def test_covariances_agree_with_scipys_from_well_posed_to_rank_deficient_jacobians():
    from autominimize._batched_result import covariances

    rng = np.random.default_rng(5)
    jac = rng.normal(size=(9, 50, 3))
    jac[1, :, 2] *= 1e-6  # condition numbers near 1e6, 1e10 and 1e14 (the last at scipy's threshold)
    jac[2, :, 2] *= 1e-10
    jac[3, :, 2] = jac[3, :, 0] + 1e-14 * jac[3, :, 2]
    jac[4, :, 2] = 2 * jac[4, :, 0]  # rank 2
    jac[5] = 0.0
    jac[6, :, 1] = np.exp(-0.12 * T.repeat(2)[:50])  # decay columns that are nearly collinear
    jac[6, :, 2] = 1.0
    jac[6, :, 0] = np.exp(-0.121 * T.repeat(2)[:50])
    jac[7, 40:] = 0.0  # a member of 40 points, masked to 50
    jac[8, 3, 1] = np.nan
    points, chi2 = np.full(9, 50), rng.uniform(0.5, 2.0, 9)
    pcov = covariances(jac, chi2, points, absolute_sigma=True)
    for i in range(8):
        expected = scipy_pcov(jac[i])
        assert np.linalg.norm(pcov[i] - expected) <= 1e-6 * np.linalg.norm(expected), i
    assert np.isnan(pcov[8]).all()
    scaled = covariances(jac, chi2, points, absolute_sigma=False)
    np.testing.assert_allclose(scaled[0], pcov[0] * chi2[0] / 47, rtol=1e-15)
    fewer_points_than_parameters = covariances(jac[:, :2], chi2, np.full(9, 2), absolute_sigma=True)
    np.testing.assert_allclose(fewer_points_than_parameters[0], scipy_pcov(jac[0, :2]), rtol=1e-10)


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_bounded_members_agree_with_scipy_least_squares_alone(backend):
    pytest.importorskip(backend)
    y, p0 = mixed_batch()
    y, p0 = y[:-1], p0[:-1]
    lower, upper = np.array([0.0, 0.0, -0.15]), np.array([10.0, 2.0, 0.15])  # c and k bind for some members
    res = am.batched_curve_fit(decay_for(backend), T, y, p0=p0, bounds=(lower, upper), backend=backend, **TIGHT)
    assert res.success.all()
    for i in range(len(y)):
        ref = so.least_squares(lambda p, i=i: decay_np(T, *p) - y[i], p0[i], bounds=(lower, upper), ftol=1e-15, xtol=1e-15, gtol=1e-15)
        np.testing.assert_allclose(res.x[i], ref.x, atol=1e-6, rtol=0, err_msg=f"member {i}")
        np.testing.assert_array_equal(res.active_mask[i], ref.active_mask, err_msg=f"member {i}")
    assert (res.active_mask != 0).any()


def test_least_squares_with_structured_starts_and_member_data():
    y, _ = mixed_batch()
    y = y[:4]

    def residuals(p, y_b, t):
        return {"fit": p["amp"][0] * np.exp(-p["rate"] * t) + p["amp"][1] - y_b}

    x0 = {"amp": np.tile([1.5, 0.0], (4, 1)), "rate": np.ones(4)}
    res = am.batched_least_squares(residuals, x0, args=(T,), member_args=(y,), **TIGHT)
    assert res.x["amp"].shape == (4, 2) and res.x["rate"].shape == (4,)
    assert res.fun.shape == (4, T.size) and res.jac.shape == (4, T.size, 3) and res.status.shape == (4,)
    for i in range(4):
        ref = so.least_squares(lambda p, i=i: decay_np(T, p[0], p[1], p[2]) - y[i], [1.5, 1.0, 0.0], **TIGHT)
        np.testing.assert_allclose([res.x["amp"][i, 0], res.x["rate"][i], res.x["amp"][i, 1]], ref.x, atol=1e-6)
        assert res.nfev[i] == res.njev[i] > 1


def test_a_member_does_not_depend_on_its_batch_mates_and_costs_nothing_once_converged():
    y, p0 = mixed_batch()
    calls = []

    def counted(t, a, k, c):
        calls.append(1)
        return decay_np(t, a, k, c)

    batch = am.batched_curve_fit(counted, T, y[:5], p0=p0[:5], backend="numpy")
    n_params = 3
    assert len(calls) == batch.nfev.sum() * (n_params + 1)  # residuals + forward differences, nothing more
    assert len(set(batch.nfev.tolist())) > 1  # members stopped at different times
    for i in (0, 4):
        alone = am.batched_curve_fit(decay_np, T, y[i : i + 1], p0=p0[i : i + 1], backend="numpy")
        np.testing.assert_array_equal(alone.x[0], batch.x[i])
        assert alone.nfev[0] == batch.nfev[i]


def test_jax_members_are_the_same_alone_as_in_a_batch():
    pytest.importorskip("jax")
    y, p0 = mixed_batch()
    batch = am.batched_curve_fit(decay_for("jax"), T, y[:5], p0=p0[:5], backend="jax")
    alone = am.batched_curve_fit(decay_for("jax"), T, y[1:2], p0=p0[1:2], backend="jax")
    np.testing.assert_allclose(alone.x[0], batch.x[1], rtol=1e-12)
    assert alone.nfev[0] == batch.nfev[1]


def test_members_of_different_lengths_through_a_mask():
    y, p0 = mixed_batch()
    y, p0 = y[:3].copy(), p0[:3]
    mask = np.ones_like(y, dtype=bool)
    mask[1, 25:] = False
    y[1, 25:] = np.nan  # padding need not be a number
    res = am.batched_curve_fit(decay_np, T, y, p0=p0, mask=mask, **TIGHT)
    popt, pcov = so.curve_fit(decay_np, T[:25], y[1, :25], p0=p0[1], ftol=1e-14, xtol=1e-14)
    np.testing.assert_allclose(res.x[1], popt, atol=1e-6)
    np.testing.assert_allclose(res.pcov[1], pcov, rtol=2e-3)  # 25 − 3 degrees of freedom, not 40 − 3
    assert np.all(res.fun[1, 25:] == 0.0)


def test_shared_start_per_member_sigma_and_xdata():
    y, _ = mixed_batch()
    y = y[:3]
    sigma = np.linspace(0.5, 2.0, y.size).reshape(y.shape)
    xdata = np.stack([T, T * 1.1, T * 0.9])
    res = am.batched_curve_fit(decay_np, xdata, y, p0=[1.5, 1.0, 0.0], sigma=sigma, **TIGHT)
    assert isinstance(res.x, list) and res.x[0].shape == (3,)
    for i in range(3):
        popt, pcov = so.curve_fit(decay_np, xdata[i], y[i], p0=[1.5, 1.0, 0.0], sigma=sigma[i], ftol=1e-14, xtol=1e-14)
        np.testing.assert_allclose([v[i] for v in res.x], popt, atol=1e-6)
        np.testing.assert_allclose(res.pcov[i], pcov, rtol=2e-3)


def test_bad_input_is_named():
    y, p0 = mixed_batch()
    with pytest.raises(ValueError, match=r"not finite at the start of member\(s\) \[5\].*error_handling='continue'"):
        am.batched_curve_fit(decay_np, T, y, p0=p0)
    with pytest.raises(ValueError, match=r"ydata has shape \(40,\); it needs one row per member"):
        am.batched_curve_fit(decay_np, T, y[0], p0=[1.0, 1.0, 0.0])
    with pytest.raises(ValueError, match=r"member\(s\) \[2\]; mark points that do not exist with mask="):
        bad = y.copy()
        bad[2, 3] = np.nan
        am.batched_curve_fit(decay_np, T, bad, p0=[1.0, 1.0, 0.0])
    with pytest.raises(ValueError, match=r"member_args\[0\] has shape \(5, 40\); its first axis must be the batch axis, of length 6"):
        am.batched_least_squares(lambda p, y: p - y[0], np.zeros((6, 1)), member_args=(y[:5],))
    with pytest.raises(ValueError, match="x0 holds one start per member"):
        am.batched_least_squares(lambda p: p, {"a": np.zeros(3), "b": 1.0})
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        am.batched_curve_fit(decay_np, T, y[:2], p0=[1.0, 1.0, 0.0], chunk_size=0)
    with pytest.raises(TypeError, match="executor must be a concurrent.futures.Executor"):
        am.batched_curve_fit(decay_np, T, y[:2], p0=[1.0, 1.0, 0.0], executor=object())


def test_data_check_finds_every_point_that_is_not_finite_and_copies_no_float64_ydata():
    from autominimize._batched_curve import curve_data

    y, _ = mixed_batch()
    y[1, :2] = 1e308  # finite values whose row sum overflows: accepted
    data = curve_data(T, y, None, None)
    assert np.shares_memory(data.member[0], y) and data.count == 6
    y[4, 7], y[2, 0] = np.inf, np.nan
    with pytest.raises(ValueError, match=r"member\(s\) \[2, 4\]; mark points"):
        curve_data(T, y, None, None)
    mask = np.ones(y.shape, bool)
    mask[4, 7] = mask[2, 0] = False
    masked = curve_data(T, y, None, mask)  # the points that do not exist may hold anything
    assert masked.member[0][4, 7] == 0.0 and masked.names == ("y", "mask", "x")
    sigma = np.ones(y.shape)
    sigma[3, 5] = np.nan
    with pytest.raises(ValueError, match=r"member\(s\) \[3\]; mark points"):
        curve_data(T, y, sigma, mask)
    mask[3, 5] = False
    assert curve_data(T, y, sigma, mask).names == ("y", "w", "mask", "x")


# -- chunks and executors ------------------------------------------------------------------
def decay_failing_on_negative_start(t, a, k, c):
    if np.any(a < -100):  # one member's start makes its whole chunk raise
        raise RuntimeError("a below -100")
    return decay_np(t, a, k, c)


def test_chunks_in_one_process_and_on_a_process_pool_give_the_single_batch():
    y, p0 = mixed_batch()
    y, p0 = y[:5], p0[:5]
    whole = am.batched_curve_fit(decay_np, T, y, p0=p0)
    chunked = am.batched_curve_fit(decay_np, T, y, p0=p0, chunk_size=2)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        pooled = am.batched_curve_fit(decay_np, T, y, p0=p0, executor=pool, chunk_size=2)
        p0_bad = p0.copy()
        p0_bad[2, 0] = -1000.0
        partly = am.batched_curve_fit(decay_failing_on_negative_start, T, y, p0=p0_bad, executor=pool, chunk_size=2)
    for other in (chunked, pooled):
        np.testing.assert_array_equal(other.x, whole.x)
        np.testing.assert_array_equal(other.nfev, whole.nfev)
        np.testing.assert_array_equal(other.pcov, whole.pcov)
    # members 2 and 3 share the failing chunk: reported, the others solved as in the whole batch
    np.testing.assert_array_equal(partly.status, [1 if s == 1 else s for s in whole.status[:2]] + [-2, -2] + [whole.status[4]])
    assert "failed twice on the executor: RuntimeError: a below -100" in partly.messages[2]
    np.testing.assert_array_equal(partly.x[[0, 1, 4]], whole.x[[0, 1, 4]])
    np.testing.assert_array_equal(partly.x[2], p0_bad[2])


def test_dask_local_cluster_gives_the_single_batch():
    distributed = pytest.importorskip("dask.distributed")
    y, p0 = mixed_batch()
    y, p0 = y[:5], p0[:5]
    whole = am.batched_curve_fit(decay_np, T, y, p0=p0)
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        on_dask = am.batched_curve_fit(decay_np, T, y, p0=p0, executor=client)
        # the same pieces again, sent while the first batch's are released: no task loses its data
        in_chunks = am.batched_curve_fit(decay_np, T, y, p0=p0, executor=client, chunk_size=2)
    for other in (on_dask, in_chunks):
        np.testing.assert_array_equal(other.x, whole.x)
        np.testing.assert_array_equal(other.nfev, whole.nfev)
        np.testing.assert_array_equal(other.pcov, whole.pcov)
        np.testing.assert_array_equal(other.jac, whole.jac)
        assert other.messages == whole.messages


class RecordingClient:
    """The part of a Dask client the batch uses (scatter, submit), run in this process, with
    the order of its calls recorded."""

    def __init__(self):
        self.calls, self.keys = [], []

    def scatter(self, data, broadcast=False, **options):
        self.calls.append("scatter all" if broadcast else "scatter")
        return data

    def submit(self, function, *args, key=None):
        self.calls.append("submit")
        self.keys.append(key)
        future = concurrent.futures.Future()
        future.set_result(function(*args))
        return future


class FlakyClient(RecordingClient):
    """A recording client whose second task raises the first time it runs; the results of the
    tasks that ran are kept."""

    def __init__(self):
        super().__init__()
        self.results = []

    def submit(self, function, *args, key=None):
        if self.calls.count("submit") == 1:
            self.calls.append("submit")
            future = concurrent.futures.Future()
            future.set_exception(ConnectionError("worker lost"))
            return future
        future = super().submit(function, *args, key=key)
        self.results.append(future.result())
        return future


def test_on_dask_each_piece_is_sent_just_before_its_task():
    y, p0 = mixed_batch()
    y, p0 = y[:5], p0[:5]
    client = RecordingClient()
    on_client = am.batched_curve_fit(decay_np, T, y, p0=p0, executor=client, chunk_size=2)
    # the shared xdata once to every worker, then per chunk its rows and its task
    assert client.calls == ["scatter all"] + ["scatter", "submit"] * 3
    # each task named by its chunk, not by the repr of the task (which Dask would build)
    assert [key.rsplit("-", 1)[0] for key in client.keys] == [f"autominimize-chunk-{i}" for i in range(3)]
    np.testing.assert_array_equal(on_client.x, am.batched_curve_fit(decay_np, T, y, p0=p0).x)


class CountingPool(concurrent.futures.ThreadPoolExecutor):
    """One worker thread; at each submit, how many submitted tasks have not finished."""

    def __init__(self):
        super().__init__(1)
        self.futures, self.in_flight = [], []

    def submit(self, function, *args):
        future = super().submit(function, *args)
        self.futures.append(future)
        self.in_flight.append(sum(not f.done() for f in self.futures))
        return future


def test_an_executor_holds_two_chunks_per_worker_at_most():
    y, p0 = mixed_batch()
    y, p0 = y[:5], p0[:5]
    with CountingPool() as pool:
        pooled = am.batched_curve_fit(decay_np, T, y, p0=p0, executor=pool, chunk_size=1)
    # five chunks, the next submitted as one completes
    assert len(pool.in_flight) == 5 and max(pool.in_flight) <= 2
    whole = am.batched_curve_fit(decay_np, T, y, p0=p0)
    for field in ("x", "pcov", "nfev", "status"):
        np.testing.assert_array_equal(pooled[field], whole[field], err_msg=field)


def test_default_chunks_on_an_executor_hold_20_mb_of_residuals_and_jacobians_and_feed_every_worker(monkeypatch):
    from autominimize.drivers import batched_fit

    assert batched_fit.default_chunk_size(10**6, 3, 50, workers=2) == 12_500  # 8·50·4 bytes a member
    assert batched_fit.default_chunk_size(10**6, 3, 200, workers=2) == 3_125
    assert batched_fit.default_chunk_size(30_000, 3, 50, workers=2) == 7_500  # two chunks per worker
    assert batched_fit.default_chunk_size(3, 3, 50, workers=4) == 1
    y, p0 = mixed_batch()
    y, p0 = y[:5], p0[:5]
    with CountingPool() as pool:
        two = am.batched_curve_fit(decay_np, T, y, p0=p0, executor=pool)
        monkeypatch.setattr(batched_fit, "CHUNK_BYTES", 2 * 8 * T.size * 4)  # two members of 40 points, 3 parameters
        three = am.batched_curve_fit(decay_np, T, y, p0=p0, executor=pool)
    assert len(pool.in_flight) == 2 + 3
    np.testing.assert_array_equal(two.x, three.x)


def test_each_chunk_task_brings_its_covariances_and_a_failed_task_runs_once_more(monkeypatch):
    from autominimize import _batched_result

    y, p0 = mixed_batch()
    y, p0 = y[:5], p0[:5]
    mask = np.ones(y.shape, bool)
    mask[3, 30:] = False
    whole = am.batched_curve_fit(decay_np, T, y, p0=p0, mask=mask)
    sizes = []

    def counted(jac, *rest):
        sizes.append(jac.shape[0])
        return covariances(jac, *rest)

    covariances = _batched_result.covariances
    monkeypatch.setattr(_batched_result, "covariances", counted)
    client = FlakyClient()
    on_client = am.batched_curve_fit(decay_np, T, y, p0=p0, mask=mask, executor=client, chunk_size=2)
    # the second chunk's task raised and was submitted again at once, its piece not sent again
    assert client.calls == ["scatter all"] + ["scatter", "submit"] * 3 + ["submit"]
    assert sizes == [2, 1, 2]  # one SVD per chunk, in its task (the retried second last): none over the batch
    assert [sorted(r) for r in client.results] == [["cost", "fun", "grad", "jac", "nfev", "pcov", "reason", "x"]] * 3
    np.testing.assert_array_equal(client.results[1]["pcov"], on_client.pcov[4:])  # the last chunk arrived second
    np.testing.assert_array_equal(client.results[2]["pcov"], on_client.pcov[2:4])  # the retried one last
    for field in ("x", "pcov", "fun", "jac", "nfev", "status"):
        np.testing.assert_array_equal(on_client[field], whole[field], err_msg=field)
    assert on_client.messages == whole.messages


def test_vectorized_numpy_calls_f_once_per_step_and_gives_the_member_by_member_answer():
    y, p0 = mixed_batch()
    y, p0 = y[:5], p0[:5]
    shapes = []

    def vectorized_decay(t, a, k, c):
        shapes.append((np.shape(t), np.shape(a)))
        return decay_np(t, a, k, c)

    lower, upper = np.array([0.0, 0.0, -0.15]), np.array([10.0, 2.0, 0.15])
    one_by_one = am.batched_curve_fit(decay_np, T, y, p0=p0, bounds=(lower, upper))
    together = am.batched_curve_fit(vectorized_decay, T, y, p0=p0, bounds=(lower, upper), vectorized=True)
    np.testing.assert_allclose(together.x, one_by_one.x, atol=1e-9)
    np.testing.assert_array_equal(together.nfev, one_by_one.nfev)
    assert shapes[0] == ((5, T.size), (5, 1)) and len(shapes) == 4 * one_by_one.nfev.max()
    res = am.batched_least_squares(
        lambda p, y: p["a"] * np.exp(-p["k"][:, None] * T) - y, {"a": np.ones((5, 1)), "k": np.ones(5)}, member_args=(y,), vectorized=True
    )
    assert res.x["a"].shape == (5, 1) and res.fun.shape == (5, T.size)
    with pytest.raises(ValueError, match="vectorized=True is for the NumPy backend"):
        am.batched_curve_fit(decay_for("jax"), T, y, p0=p0, backend="jax", vectorized=True)


def test_benchmark_section_runs_small(monkeypatch):
    pytest.importorskip("jax")
    pytest.importorskip("torch")
    from benchmarks import batched as bench

    monkeypatch.setattr(bench, "FITS", 64)
    monkeypatch.setattr(bench, "LOOP_SUBSET", 4)
    monkeypatch.setattr(bench, "STARTS", 8)
    rows = bench.run_batched(repeats=1)
    assert [(r["backend"], r["baseline"].split()[0]) for r in rows][:3] == [("jax", "scipy"), ("jax", "scipy"), ("jax", "am.curve_fit")]
    assert len(rows) == 3 * 3 + 1 + 2 * 2 and all(r["success"] == 1.0 for r in rows)
    assert [r["contender"] for r in rows if r["backend"] == "torch"][3] == "batched_curve_fit, 1 thread"
    assert all(r["cost_ratio"] < 1 + 1e-6 for r in rows[:10])  # no fit worse than scipy's
    assert "batched L-BFGS, Wolfe" in bench.format_batched(rows)


def test_dask_benchmark_runs_small():
    pytest.importorskip("dask.distributed")
    from benchmarks import batched as bench

    out = bench.run_dask(2_000, chunk_size=500, check=1_000)
    assert out["same_2_vs_1"] and out["same_as_in_process"] and out["success"] == 1.0
    assert "results equal across 2 and 1 workers: True" in bench.format_dask(out)


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_a_member_whose_jacobian_alone_is_not_finite_stops_at_its_start(bad):
    from autominimize.native.batched_lm import REASONS, BatchedLM

    def evaluate(x):  # residuals x − 2, finite everywhere; the Jacobian is not at x = 0
        return x - 2.0, np.where(x == 0.0, bad, 1.0)[:, :, None]

    state = BatchedLM().run(np.array([[1.0], [0.0], [5.0]]), evaluate)
    assert [REASONS[int(c)][2] for c in state.reason] == [1, -1, 1]
    np.testing.assert_allclose(state.x[[0, 2], 0], 2.0)
    assert state.nfev[1] == 1


def test_without_residuals_the_per_point_arrays_stay_where_the_chunk_was_solved():
    y, p0 = mixed_batch()
    y, p0 = y[:5], p0[:5]
    whole = am.batched_curve_fit(decay_np, T, y, p0=p0)
    client = FlakyClient()
    slim = am.batched_curve_fit(decay_np, T, y, p0=p0, executor=client, chunk_size=2, keep_residuals=False)
    # what travelled back from every task: no residuals, no Jacobian, but the covariances made from them
    assert [sorted(r) for r in client.results] == [["cost", "grad", "nfev", "pcov", "reason", "x"]] * 3
    assert "fun" not in slim and "jac" not in slim
    assert sorted(set(whole) - set(slim)) == ["fun", "jac"]
    for field in ("x", "pcov", "cost", "grad", "nfev", "status", "optimality", "active_mask"):
        np.testing.assert_array_equal(slim[field], whole[field], err_msg=field)
    assert slim.messages == whole.messages


def test_without_residuals_in_one_piece_in_chunks_and_with_a_failed_chunk():
    y, p0 = mixed_batch()
    y, p0 = y[:5], p0[:5]
    x0 = {"a": p0[:, 0], "k": p0[:, 1], "c": p0[:, 2]}
    whole = am.batched_least_squares(residual_np, x0, member_args=(y,))
    for chunk_size in (None, 2):
        slim = am.batched_least_squares(residual_np, x0, member_args=(y,), chunk_size=chunk_size, keep_residuals=False)
        assert "fun" not in slim and "jac" not in slim
        np.testing.assert_array_equal(slim.cost, whole.cost)
        np.testing.assert_array_equal(slim.x["k"], whole.x["k"])
    p0_bad = p0.copy()
    p0_bad[2, 0] = -1000.0
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        partly = am.batched_curve_fit(decay_failing_on_negative_start, T, y, p0=p0_bad, executor=pool, chunk_size=2, keep_residuals=False)
    assert "fun" not in partly and partly.status.tolist()[2:4] == [-2, -2]
    assert np.isnan(partly.pcov[2:4]).all() and np.isfinite(partly.pcov[[0, 1, 4]]).all()


@pytest.mark.parametrize("entry", ["least_squares", "curve_fit"])
def test_keep_residuals_is_a_switch(entry):
    y, p0 = mixed_batch()
    call = {
        "least_squares": lambda **kw: am.batched_least_squares(
            residual_np, {"a": p0[:2, 0], "k": p0[:2, 1], "c": p0[:2, 2]}, member_args=(y[:2],), **kw
        ),
        "curve_fit": lambda **kw: am.batched_curve_fit(decay_np, T, y[:2], p0=p0[:2], **kw),
    }[entry]
    with pytest.raises(TypeError, match=r"keep_residuals must be True or False; got 'no' \(str\)"):
        call(keep_residuals="no")


class InterruptAt:
    """decay_np, sending the main thread a Ctrl-C at its call ``at``."""

    def __init__(self, at):
        self.at, self.calls = at, 0

    def __call__(self, t, a, k, c):
        self.calls += 1
        if self.calls == self.at:
            _thread.interrupt_main()
        return decay_np(t, a, k, c)


def test_one_ctrl_c_attaches_every_members_latest_point():
    y, p0 = mixed_batch()
    y, p0 = y[:5], p0[:5]
    whole = am.batched_curve_fit(decay_np, T, y, p0=p0)
    per_chunk = InterruptAt(10**9)
    am.batched_curve_fit(per_chunk, T, y[:2], p0=p0[:2])
    # chunks of 2: the first solved, the second interrupted past its first steps, the third not started
    model = InterruptAt(per_chunk.calls + 2 * 4 * 5)
    with pytest.raises(KeyboardInterrupt) as caught:
        am.batched_curve_fit(model, T, y, p0=p0, chunk_size=2)
    best_x, best_f = caught.value.autominimize_best_x, caught.value.autominimize_best_f  # (B, n) as p0
    assert not hasattr(caught.value, "autominimize_rows")
    np.testing.assert_array_equal(best_x[:2], whole.x[:2])
    np.testing.assert_array_equal(best_f[:2], whole.cost[:2])
    start_cost = 0.5 * np.sum((decay_np(T, *p0[2:4].T[:, :, None]) - y[2:4]) ** 2, axis=1)
    assert np.all(best_f[2:4] < start_cost) and np.all(best_f[2:4] > whole.cost[2:4])
    for i in (2, 3):  # the latest accepted point and its cost
        np.testing.assert_allclose(0.5 * np.sum((decay_np(T, *best_x[i]) - y[i]) ** 2), best_f[i], rtol=1e-12)
    np.testing.assert_array_equal(best_x[4], p0[4])
    assert np.isnan(best_f[4])


def test_a_ctrl_c_on_an_executor_cancels_the_chunks_in_flight_and_attaches_the_solved_ones():
    y, p0 = mixed_batch()
    y, p0 = y[:5], p0[:5]
    whole = am.batched_curve_fit(decay_np, T, y, p0=p0)
    first_two = InterruptAt(10**9)
    am.batched_curve_fit(first_two, T, y[:1], p0=p0[:1])
    am.batched_curve_fit(first_two, T, y[1:2], p0=p0[1:2])
    model = InterruptAt(first_two.calls + 3)  # in the third chunk's task, on the pool's thread
    with CountingPool() as pool, pytest.raises(KeyboardInterrupt) as caught:
        am.batched_curve_fit(model, T, y, p0=p0, executor=pool, chunk_size=1)
    best_x, best_f = caught.value.autominimize_best_x, caught.value.autominimize_best_f
    assert len(pool.in_flight) <= 4  # the fifth chunk was never submitted: two in flight at most
    solved = [i for i in range(5) if not np.isnan(best_f[i])]
    assert 0 in solved and 4 not in solved  # the first chunk was collected before the third ran
    for i in range(5):  # a member is solved as in the whole batch, or at its start
        if i in solved:
            np.testing.assert_array_equal(best_x[i], whole.x[i])
            assert best_f[i] == whole.cost[i]
        else:
            np.testing.assert_array_equal(best_x[i], p0[i])


def _rosen_rows(rows):
    rows = np.asarray(rows)
    return np.sum(100 * (rows[:, 1:] - rows[:, :-1] ** 2) ** 2 + (1 - rows[:, :-1]) ** 2, axis=1)


def test_one_ctrl_c_attaches_the_latest_rows_of_a_batched_lbfgs_on_torch():
    import torch

    calls = {"n": 0}

    def rosen(x):  # called once per batched evaluation (torch.func.vmap runs it on the whole batch)
        calls["n"] += 1
        if calls["n"] == 6:
            _thread.interrupt_main()
        return torch.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

    starts = np.full((3, 4), -1.0) + np.arange(3)[:, None] * 0.1
    with pytest.raises(KeyboardInterrupt) as caught:
        am.minimize(rosen, starts, method="lbfgs-native", batch=True, backend="torch")
    best_x, best_f = caught.value.autominimize_best_x, caught.value.autominimize_best_f
    assert best_x.shape == (3, 4) and best_f.shape == (3,)
    np.testing.assert_allclose(best_f, _rosen_rows(best_x), rtol=1e-10)
    assert np.all(best_f < _rosen_rows(starts))


def test_one_ctrl_c_attaches_the_latest_rows_of_a_batched_lbfgs_on_jax():
    import jax.numpy as jnp

    def rosen(x):
        return jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

    starts = np.random.default_rng(0).uniform(-2, 0, (256, 30))
    options = {"maxiter": 10**6, "gtol": 0.0, "ftol": 0.0}
    timer = threading.Timer(3.0, _thread.interrupt_main)  # past the compilation, most likely
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt) as caught:
            am.minimize(rosen, starts, method="lbfgs-native", batch=True, backend="jax", options=options)
    finally:
        timer.cancel()
    best_x, best_f = caught.value.autominimize_best_x, caught.value.autominimize_best_f
    np.testing.assert_allclose(best_f, _rosen_rows(best_x), rtol=1e-8)
    # interrupted before its first step (a slow compilation), a member's value is its start's,
    # computed by JAX: equal to NumPy's to rounding, not bit for bit
    assert np.all(best_f <= _rosen_rows(starts) * (1 + 1e-12))
