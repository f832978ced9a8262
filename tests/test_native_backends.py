"""Every native algorithm gives the same iterates on NumPy, JAX and torch (float64, 1e-10)."""

from __future__ import annotations

import numpy as np
import pytest

import autominimize as am
from autominimize.native import MaxIterations

from conftest import rosen_der

torch = pytest.importorskip("torch")
jnp = pytest.importorskip("jax.numpy")

BACKENDS = ["numpy", "jax", "torch"]
X0 = np.array([-1.2, 1.0, -1.2, 1.0])


def rosen(x):
    return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum()


def iterates(backend: str, method: str, steps: int, **kwargs) -> np.ndarray:
    if backend == "numpy":
        kwargs.setdefault("jac", lambda x: rosen_der(x))
    x0 = torch.tensor(X0) if backend == "torch" else X0
    states = am.iterate(rosen, x0, method=method, backend=backend, stop=MaxIterations(steps), **kwargs)
    xs = [np.asarray(s.x, dtype=float) if backend != "torch" else s.x.numpy() for s in states]
    assert len(xs) == steps
    return np.array(xs)


CASES = [
    ("lbfgs-native", {}),
    ("lbfgs-native", {"bounds": (-1.3, 1.0)}),
    ("cg-native", {"options": {"beta": "fr"}}),
    ("cg-native", {"options": {"beta": "dy"}}),
    ("sgd", {"options": {"lr": 1e-4, "momentum": 0.9, "nesterov": True}}),
    ("delta-bar-delta", {"options": {"lr": 1e-4, "kappa": 1e-5}}),
]


@pytest.mark.parametrize("method, kwargs", CASES, ids=[f"{m}-{i}" for i, (m, _) in enumerate(CASES)])
def test_same_iterates_on_every_backend(method, kwargs):
    runs = {b: iterates(b, method, 15, **kwargs) for b in BACKENDS}
    for backend in ("jax", "torch"):
        assert np.abs(runs[backend] - runs["numpy"]).max() <= 1e-10, backend


def test_hessian_free_same_iterates_on_jax_and_torch():
    runs = {b: iterates(b, "hessian-free", 8) for b in ("jax", "torch")}
    assert np.abs(runs["jax"] - runs["torch"]).max() <= 1e-10


def _rosen_cases(x):
    """Rosenbrock's residuals as two leaves, one row per term: 3 cases of 2 residuals."""
    return 10.0 * (x[1:] - x[:-1] ** 2), 1.0 - x[:-1]


def _preconditioned_iterates(backend: str) -> np.ndarray:
    x0 = torch.tensor(X0) if backend == "torch" else X0
    options = {"preconditioner": "martens"}
    states = am.iterate(_rosen_cases, x0, method="hessian-free", backend=backend, stop=MaxIterations(10), options=options)
    return np.array([np.asarray(s.x.numpy() if backend == "torch" else s.x, dtype=float) for s in states])


def test_hessian_free_martens_preconditioner_same_iterates_on_every_backend():
    runs = {b: _preconditioned_iterates(b) for b in BACKENDS}
    assert len(runs["jax"]) == 10 and np.abs(runs["jax"] - runs["torch"]).max() <= 1e-10
    # NumPy's Jacobian is by finite differences: the same path, to their accuracy
    assert np.abs(runs["numpy"] - runs["jax"]).max() <= 1e-5


def _badly_scaled_least_squares(backend: str):
    """Residuals X w − y of 200 cases whose 20 features are scaled by 1e-3 … 1e3, and min ½‖r‖²."""
    rng = np.random.default_rng(0)
    scales = np.logspace(-3, 3, 20)
    a = rng.normal(size=(200, 20)) * scales
    y = a @ (rng.normal(size=20) / scales) + 0.1 * rng.normal(size=200)
    best = 0.5 * np.sum((a @ np.linalg.lstsq(a, y, rcond=None)[0] - y) ** 2)
    convert = torch.as_tensor if backend == "torch" else np.asarray
    a_b, y_b = convert(a), convert(y)
    return (lambda w: a_b @ w - y_b), best


def _cg_iterations_to_reach(backend: str, preconditioner: str | None) -> int:
    residuals, best = _badly_scaled_least_squares(backend)
    w0 = torch.zeros(20, dtype=torch.float64) if backend == "torch" else np.zeros(20)
    options = {"preconditioner": preconditioner, "maxiter": 100, "gtol": 0.0, "ftol": 0.0}
    total = 0
    for state in am.iterate(residuals, w0, method="hessian-free", backend=backend, options=options):
        total += state.raw.cg_iterations
        if state.fun <= best * (1 + 1e-6):
            return total
    raise AssertionError(f"{backend}, preconditioner={preconditioner!r}: loss {state.fun} > {best} after 100 steps")


@pytest.mark.parametrize("backend", BACKENDS)
def test_hessian_free_martens_preconditioner_needs_fewer_cg_iterations(backend):
    plain = _cg_iterations_to_reach(backend, None)
    preconditioned = _cg_iterations_to_reach(backend, "martens")
    # measured: NumPy 1019 → 495, JAX 1227 → 458, torch 1101 → 461
    assert preconditioned < 0.6 * plain, (plain, preconditioned)


def _batches(backend: str):
    rng = np.random.default_rng(3)
    a, y = rng.normal(size=(60, 4)), rng.normal(size=60)
    # JAX takes NumPy batches: jnp.asarray outside a float64 solve would make them float32
    convert = torch.as_tensor if backend == "torch" else np.asarray
    return [(convert(a[i : i + 10]), convert(y[i : i + 10])) for i in range(0, 60, 10)]


def _least_squares(w, batch):
    a, y = batch
    r = a @ w - y
    return (r * r).sum()


@pytest.mark.parametrize(
    "method, options",
    [("sgd", {"lr": 0.01, "momentum": 0.5}), ("sgd-qn", {"lam": 0.1, "t0": 100.0, "skip": 2}), ("tonga", {"lr": 0.1, "b": 4, "k": 2})],
)
def test_stochastic_methods_same_iterates_on_every_backend(method, options):
    runs = {}
    for backend in BACKENDS:
        kwargs = {}
        if backend == "numpy":
            kwargs["jac"] = lambda w, batch: 2.0 * batch[0].T @ (batch[0] @ w - batch[1])
        w0 = torch.zeros(4, dtype=torch.float64) if backend == "torch" else np.zeros(4)
        it = am.iterate(_least_squares, w0, method=method, backend=backend, data=_batches(backend), epochs=3, options=options, **kwargs)
        runs[backend] = np.array([np.asarray(s.x.numpy() if backend == "torch" else s.x, dtype=float) for s in it])
        assert len(runs[backend]) == 18 and it.result().epochs == 3
    for backend in ("jax", "torch"):
        assert np.abs(runs[backend] - runs["numpy"]).max() <= 1e-10, backend


def test_result_keeps_x0_structure_and_types():
    x0 = {"a": torch.tensor([-1.2, 1.0], dtype=torch.float64), "b": torch.tensor(0.5, dtype=torch.float64)}
    res = am.minimize(lambda p: rosen(p["a"]) + (p["b"] - 2) ** 2, x0, method="lbfgs-native")
    assert isinstance(res.x["a"], torch.Tensor) and res.x["b"].shape == ()
    assert isinstance(res.jac["a"], torch.Tensor)
    assert torch.allclose(res.x["a"], torch.ones(2, dtype=torch.float64), atol=1e-4)
    assert res.backend == "torch" and res.success


def test_float32_precision():
    res = am.minimize(rosen, X0[:2], method="lbfgs-native", backend="torch", precision="float32", options={"gtol": 1e-3})
    assert res.precision == "float32" and res.success and np.allclose(res.x, 1.0, atol=1e-2)


def test_jax_lbfgs_kernels_are_traced_once():
    """The fused JAX kernels compile once: not again as the memory fills, nor on a second solve."""
    import jax.monitoring

    kernels = ("_direction", "_push", "value_and_grad_along")
    traces = []

    def on_event(name, seconds, **kwargs):
        if name == "/jax/core/compile/jaxpr_trace_duration":
            traces.append(kwargs.get("fun_name"))

    jax.monitoring.register_event_duration_secs_listener(on_event)
    try:

        def fun(x):  # a new function, so its line-search kernel is new
            return rosen(x)

        x0 = np.resize(X0, 11)  # a size no other test uses
        options = {"memory": 3, "maxiter": 12, "gtol": 0.0, "ftol": 0.0}
        first = am.minimize(fun, x0, method="lbfgs-native", backend="jax", options=options)
        assert first.nit == 12 and [traces.count(k) for k in kernels] == [1, 1, 1], traces
        traces.clear()
        second = am.minimize(fun, x0 + 0.1, method="lbfgs-native", backend="jax", options=options)
        assert second.nit == 12 and not set(kernels) & set(traces), traces
    finally:
        jax.monitoring.unregister_event_duration_listener(on_event)


@pytest.mark.parametrize("new_memory", [2, 6])
def test_lbfgs_memory_changed_between_steps_same_iterates(new_memory):
    """``set(memory=...)`` keeps the newest pairs, the same way on every backend's memory."""
    runs = {}
    for backend in BACKENDS:
        kwargs = {"jac": lambda x: rosen_der(x)} if backend == "numpy" else {}
        x0 = torch.tensor(X0) if backend == "torch" else X0
        it = am.iterate(rosen, x0, method="lbfgs-native", backend=backend, stop=MaxIterations(14), options={"memory": 4}, **kwargs)
        xs = []
        for state in it:
            xs.append(state.x.numpy() if backend == "torch" else np.asarray(state.x, dtype=float))
            if state.nit == 7:
                it.set(memory=new_memory)
        runs[backend] = np.array(xs)
    assert len(runs["numpy"]) == 14
    for backend in ("jax", "torch"):
        assert np.abs(runs[backend] - runs["numpy"]).max() <= 1e-10, backend
