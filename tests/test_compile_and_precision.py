"""Compile once, never evaluate twice at one point, and honour the requested precision."""

from __future__ import annotations

import numpy as np
import pytest

import autominimize as am
from autominimize.backends import clear_compile_cache
from conftest import FRAMEWORKS, array_module, rosen_for


def _trace_counter(framework):
    """An objective that counts how often its Python body runs (traces, or eager calls)."""
    asarray, total = array_module(framework)
    runs = {"n": 0}

    def fun(p):
        runs["n"] += 1
        return total(100.0 * (p["x"][1:] - p["x"][:-1] ** 2) ** 2 + (1.0 - p["x"][:-1]) ** 2)

    return fun, runs


@pytest.mark.skipif("jax" not in FRAMEWORKS, reason="needs jax")
def test_jax_traces_once_per_computation_and_not_again_on_a_second_call():
    clear_compile_cache()
    fun, runs = _trace_counter("jax")
    first = am.minimize(fun, {"x": np.zeros(5)}, method="L-BFGS-B")
    traced = runs["n"]
    assert traced <= 2  # the value-and-gradient trace (plus the backend probe)
    second = am.minimize(fun, {"x": np.full(5, 0.5)}, method="L-BFGS-B")
    assert runs["n"] == traced + 0 or runs["n"] == traced + 1  # at most the probe again
    assert first.nfev > 10 and second.nfev > 10


@pytest.mark.skipif("tensorflow" not in FRAMEWORKS, reason="needs tensorflow")
def test_tensorflow_does_not_retrace_across_iterations_or_calls():
    clear_compile_cache()
    fun, runs = _trace_counter("tensorflow")
    am.minimize(fun, {"x": np.zeros(5)}, method="L-BFGS-B", backend="tensorflow")
    traced = runs["n"]
    res = am.minimize(fun, {"x": np.full(5, 0.5)}, method="L-BFGS-B", backend="tensorflow")
    assert res.nfev > 10
    assert runs["n"] == traced


def test_torch_runs_the_function_once_per_point_even_with_hvps():
    pytest.importorskip("torch")
    fun, runs = _trace_counter("torch")
    res = am.minimize(fun, {"x": np.zeros(5)}, method="trust-ncg", backend="torch")
    distinct_points = res.nfev
    assert res.nhvp > distinct_points  # several HVPs per point ...
    assert runs["n"] == distinct_points  # ... but one forward pass per point


def test_slsqp_computes_gradients_only_where_asked(backend):
    fun = rosen_for(backend)
    res = am.minimize(fun, np.zeros(4), method="SLSQP", backend=backend, **({"jac": __import__("conftest").rosen_der} if backend == "numpy" else {}))
    assert res.njev < res.nfev  # SLSQP's line search evaluates values alone


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_framework_sees_the_requested_precision(framework, precision):
    asarray, total = array_module(framework)
    seen = set()

    def fun(x):
        seen.add(str(x.dtype).replace("torch.", "").replace("<dtype: '", "").replace("'>", ""))
        return total((x - 1.0) ** 2)

    res = am.minimize(fun, np.zeros(3), method="L-BFGS-B", backend=framework, precision=precision)
    assert seen == {precision}
    assert res.precision == precision
    assert res.x.dtype == np.float64
    np.testing.assert_allclose(res.x, 1.0, atol=1e-3 if precision == "float32" else 1e-6)


@pytest.mark.parametrize("method", ["TNC", "SLSQP", "L-BFGS-B", "trust-constr"])
def test_float32_objective_works_with_methods_that_need_float64(framework, method):
    """TNC and SLSQP crash in plain scipy when given float32 arrays."""
    res = am.minimize(
        rosen_for(framework),
        np.zeros(3, dtype=np.float32),
        method=method,
        backend=framework,
        precision="float32",
        options={"maxiter": 3000} if method != "TNC" else {"maxfun": 3000},
    )
    assert res.x.dtype == np.float32  # x0's dtype comes back
    np.testing.assert_allclose(res.x, 1.0, atol=5e-2)


@pytest.mark.parametrize("framework_name", [f for f in FRAMEWORKS if f in ("torch", "tensorflow")])
def test_float32_constant_inside_the_objective_falls_back_with_a_warning(framework_name):
    if framework_name == "torch":
        import torch

        weights = torch.ones((3, 1), dtype=torch.float32)  # matmul does not promote dtypes
        fun = lambda x: torch.sum(torch.matmul((x - 1.0).reshape(1, 3), weights) ** 2)  # noqa: E731
    else:
        import tensorflow as tf

        target = tf.ones(3, dtype=tf.float32)
        fun = lambda x: tf.reduce_sum(tf.matmul(tf.reshape(x - target, (1, 3)), tf.ones((3, 1))) ** 2)  # noqa: E731
    with pytest.warns(am.PrecisionFallbackWarning, match="computed in float32"):
        res = am.minimize(fun, np.zeros(3), method="L-BFGS-B", backend=framework_name)
    assert res.precision == "float32"
    with pytest.raises(Exception):  # noqa: B017 -- the framework's own dtype error; an explicit float64 request is never lowered
        am.minimize(fun, np.zeros(3), method="L-BFGS-B", backend=framework_name, precision="float64")


def test_import_autominimize_loads_no_framework():
    import subprocess
    import sys

    code = "import sys, autominimize; print(sorted(m for m in ('jax', 'torch', 'tensorflow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.skipif("jax" not in FRAMEWORKS, reason="needs jax")
def test_jax_hvps_at_one_point_share_one_linearization():
    import jax
    from scipy.optimize import minimize as scipy_minimize

    from autominimize.backends import get_backend
    from autominimize.params import ParamSpec
    from autominimize.problem import Objective

    spec = ParamSpec.from_tree(np.zeros(8))
    functions = get_backend("jax").compile_scalar(rosen_for("jax"), spec, "float64")
    linearizations = []
    linearize = functions.value_grad_and_hvp
    functions.value_grad_and_hvp = lambda x: linearizations.append(x.copy()) or linearize(x)
    objective = Objective(functions, spec, second_order="hessp")
    with jax.enable_x64(True):
        res = scipy_minimize(objective.value_and_grad, np.zeros(8), jac=True, hessp=objective.hessp, method="Newton-CG")
    assert res.success
    assert objective.counters.nhvp > 2 * len(linearizations)  # several products per point
    assert len(linearizations) == objective.counters.njev  # one linearizing call per gradient
    assert len({x.tobytes() for x in linearizations}) == len(linearizations)  # never twice at one point


@pytest.mark.skipif("jax" not in FRAMEWORKS, reason="needs jax")
def test_a_bound_method_is_compiled_once_across_calls():
    """obj.method is a new object at every access; it must still hit the compile cache."""

    class Model:
        traces = 0

        def loss(self, x):
            Model.traces += 1
            return ((x - 2.0) ** 2).sum()

    model = Model()
    am.minimize(model.loss, np.zeros(3), method="L-BFGS-B", backend="jax")
    traced = Model.traces
    am.minimize(model.loss, np.ones(3), method="L-BFGS-B", backend="jax")
    assert Model.traces == traced
