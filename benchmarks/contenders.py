"""The contenders: each is a small function ``(problem) -> (result_f, counts)``.

The hand-written baselines build (and let their framework compile) their functions on the
first call for a problem and keep them in ``problem.cache``; the untimed warm-up solve of
the runner makes that first call. ``am.minimize`` keeps its own compile cache, keyed by the
objective, which is why every contender reuses the one objective object per problem.
"""

from __future__ import annotations

import contextlib
import importlib.util
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import scipy.optimize as so

from .problems import Problem

__all__ = ["Contender", "CONTENDERS", "contender_names", "PER_SOLVE_LIMITS"]

#: When true, every hand-written baseline also enters ``threadpool_limits(1, 'blas')`` around
#: each solve, as am.minimize does. By default the runner holds one process-wide limit for
#: every contender instead, so am's per-solve threadpoolctl cost shows in its ratios.
PER_SOLVE_LIMITS = {"enabled": False}


@dataclass(frozen=True)
class Contender:
    key: str
    label: str
    solve: Callable[[Problem], tuple[float, dict]]
    framework: str | None = None  # the package it needs, for skipping when not installed

    def available(self) -> bool:
        return self.framework is None or importlib.util.find_spec(self.framework) is not None


def _limits() -> contextlib.AbstractContextManager:
    if not PER_SOLVE_LIMITS["enabled"]:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _scipy_counts(res: so.OptimizeResult, second_order_calls: int) -> dict:
    """scipy's counts, and whether it converged.

    ``nhev`` is the number of hessp / hess calls actually made: scipy's trust-region methods
    report one more than they make (they add the ScalarFunction's own ``nhev``), which is
    kept as ``nhev_reported``.
    """
    return {
        "nfev": int(res.get("nfev", 0) or 0),
        "njev": int(res.get("njev", 0) or 0),
        "nhev": second_order_calls,
        "nhvp": 0,
        "nhev_reported": int(res.get("nhev", 0) or 0),
        "success": bool(res.get("success", False)),
    }


def _scipy_solve(problem: Problem, fg: Callable, hessp: Callable | None = None, hess: Callable | None = None):
    kwargs: dict[str, Any] = {"method": problem.method, "jac": True, "options": problem.options}
    if problem.flat_bounds is not None:
        kwargs["bounds"] = problem.flat_bounds
    calls = [0]
    if problem.second_order == "hessp":

        def counted_hessp(x, p):
            calls[0] += 1
            return hessp(x, p)

        kwargs["hessp"] = counted_hessp
    elif problem.second_order == "hess":

        def counted_hess(x):
            calls[0] += 1
            return hess(x)

        kwargs["hess"] = counted_hess
    with _limits():
        res = so.minimize(fg, problem.x0_flat, **kwargs)
    return float(res.fun), _scipy_counts(res, calls[0])


# --------------------------------------------------------------------------------------
# (a) the reference: scipy fed hand-written NumPy derivatives
# --------------------------------------------------------------------------------------
def reference(problem: Problem) -> tuple[float, dict]:
    return _scipy_solve(problem, problem.np_fg, problem.np_hessp, problem.np_hess)


# --------------------------------------------------------------------------------------
# (b) hand-rolled JAX: jit(value_and_grad) with NumPy conversion, jitted jvp-of-grad HVP
# --------------------------------------------------------------------------------------
def jax_hand(problem: Problem) -> tuple[float, dict]:
    import jax

    fns = problem.cache.get("jax-hand")
    if fns is None:
        fun = problem.objective("jax")

        def flat(x):
            return fun(problem.unflatten(x, "jax"))

        with jax.enable_x64(True):
            vg = jax.jit(jax.value_and_grad(flat))
            hvp = jax.jit(lambda x, p: jax.jvp(jax.grad(flat), (x,), (p,))[1])
            hessian = jax.jit(jax.hessian(flat))

        def fg(x):
            v, g = vg(x)
            return float(v), np.asarray(g)

        fns = problem.cache["jax-hand"] = {"fg": fg, "hessp": lambda x, p: np.asarray(hvp(x, p)), "hess": lambda x: np.asarray(hessian(x))}
    with jax.enable_x64(True):
        return _scipy_solve(problem, fns["fg"], fns["hessp"], fns["hess"])


# --------------------------------------------------------------------------------------
# torch by hand: eager autograd with from_numpy
# --------------------------------------------------------------------------------------
def torch_hand(problem: Problem) -> tuple[float, dict]:
    fns = problem.cache.get("torch-hand")
    if fns is None:
        import torch

        fun = problem.objective("torch")

        def leaf(x):
            return torch.from_numpy(np.array(x, dtype=np.float64)).requires_grad_(True)

        def fg(x):
            xt = leaf(x)
            f = fun(problem.unflatten(xt, "torch"))
            (g,) = torch.autograd.grad(f, xt)
            return f.item(), g.numpy()

        def hessp(x, p):
            xt = leaf(x)
            f = fun(problem.unflatten(xt, "torch"))
            (g,) = torch.autograd.grad(f, xt, create_graph=True)
            (hv,) = torch.autograd.grad(g, xt, torch.from_numpy(np.array(p, dtype=np.float64)))
            return hv.numpy()

        def hess(x):
            xt = torch.from_numpy(np.array(x, dtype=np.float64))
            return torch.autograd.functional.hessian(lambda t: fun(problem.unflatten(t, "torch")), xt).numpy()

        fns = problem.cache["torch-hand"] = {"fg": fg, "hessp": hessp, "hess": hess}
    return _scipy_solve(problem, fns["fg"], fns["hessp"], fns["hess"])


# --------------------------------------------------------------------------------------
# TensorFlow by hand: tf.function with a fixed input_signature returning value and gradient
# --------------------------------------------------------------------------------------
def tf_hand(problem: Problem) -> tuple[float, dict]:
    fns = problem.cache.get("tf-hand")
    if fns is None:
        import tensorflow as tf

        fun = problem.objective("tensorflow")
        spec = tf.TensorSpec([problem.n], tf.float64)

        def flat(x):
            return fun(problem.unflatten(x, "tensorflow"))

        @tf.function(input_signature=[spec])
        def vg(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                f = flat(x)
            return f, tape.gradient(f, x)

        @tf.function(input_signature=[spec, spec])
        def hvp(x, p):
            with tf.autodiff.ForwardAccumulator(x, p) as acc:
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    f = flat(x)
                g = tape.gradient(f, x)
            return acc.jvp(g)

        @tf.function(input_signature=[spec])
        def hessian(x):
            with tf.GradientTape() as outer:
                outer.watch(x)
                with tf.GradientTape() as inner:
                    inner.watch(x)
                    f = flat(x)
                g = inner.gradient(f, x)
            return outer.jacobian(g, x)

        def fg(x):
            f, g = vg(tf.constant(x, dtype=tf.float64))
            return float(f), g.numpy()

        fns = problem.cache["tf-hand"] = {
            "fg": fg,
            "hessp": lambda x, p: hvp(tf.constant(x, dtype=tf.float64), tf.constant(p, dtype=tf.float64)).numpy(),
            "hess": lambda x: hessian(tf.constant(x, dtype=tf.float64)).numpy(),
        }
    return _scipy_solve(problem, fns["fg"], fns["hessp"], fns["hess"])


# --------------------------------------------------------------------------------------
# autominimize
# --------------------------------------------------------------------------------------
def _am_counts(res: so.OptimizeResult) -> dict:
    counts: dict[str, Any] = {name: int(res.get(name, 0) or 0) for name in ("nfev", "njev", "nhev", "nhvp")}
    counts["success"] = bool(res.get("success", False))
    return counts


def am_backend(backend: str) -> Callable[[Problem], tuple[float, dict]]:
    def solve(problem: Problem) -> tuple[float, dict]:
        import autominimize as am

        fun = problem.objective(backend)
        res = am.minimize(fun, problem.x0, method=problem.method, bounds=problem.bounds, backend=backend, options=problem.options)
        return float(res.fun), _am_counts(res)

    solve.__name__ = f"am_{backend}"
    return solve


def am_numpy_user(history: bool) -> Callable[[Problem], tuple[float, dict]]:
    """am.minimize, NumPy backend, fed the hand-written derivatives (``jac=True``, hessp/hess)."""

    def solve(problem: Problem) -> tuple[float, dict]:
        import autominimize as am

        fg, kwargs = problem.numpy_user_derivatives()
        res = am.minimize(
            fg, problem.x0, method=problem.method, bounds=problem.bounds, backend="numpy", options=problem.options, history=history, **kwargs
        )
        return float(res.fun), _am_counts(res)

    return solve


CONTENDERS: list[Contender] = [
    Contender("ref", "(a) scipy + NumPy derivatives", reference),
    Contender("jax-hand", "(b) scipy + jitted JAX by hand", jax_hand, "jax"),
    Contender("am-jax", "am backend='jax'", am_backend("jax"), "jax"),
    Contender("am-torch", "am backend='torch'", am_backend("torch"), "torch"),
    Contender("am-tf", "am backend='tensorflow'", am_backend("tensorflow"), "tensorflow"),
    Contender("am-np", "am backend='numpy' + user jac/hessp/hess", am_numpy_user(history=True)),
    Contender("am-np-nh", "the same with history=False", am_numpy_user(history=False)),
    Contender("torch-hand", "scipy + torch eager autograd by hand", torch_hand, "torch"),
    Contender("tf-hand", "scipy + tf.function by hand", tf_hand, "tensorflow"),
]


def contender_names() -> list[str]:
    return [c.key for c in CONTENDERS]
