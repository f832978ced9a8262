"""JAX's private entry points: the fast path runs on the installed JAX, and where an entry
point is missing its public fallback gives the same numbers."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
from jax._src import lib as jax_lib  # noqa: E402
from jax._src import util as jax_util  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import autominimize as am  # noqa: E402
from autominimize.backends import jax_sync, private_jax  # noqa: E402


def counting(function, calls):
    def counted(*args, **kwargs):
        calls.append(1)
        return function(*args, **kwargs)

    return counted


def solve(scale):
    def bowl(x):  # a new function per solve: nothing comes from the compile cache
        return jnp.sum(scale * (x - 1.5) ** 2) + jnp.sum(x**4)

    return am.minimize(bowl, np.zeros(4), method="BFGS", backend="jax")


def test_a_float64_solve_forgets_the_traces_and_keeps_the_executables(monkeypatch):
    traces, everything = [], []
    monkeypatch.setattr(jax_util, "clear_all_caches", counting(jax_util.clear_all_caches, traces))
    monkeypatch.setattr(jax, "clear_caches", counting(jax.clear_caches, everything))
    solve(2.0)
    assert len(traces) >= 2 and not everything  # on entry and on exit


def test_without_the_trace_cache_entry_point_jax_clear_caches_gives_the_same_solve(monkeypatch):
    fast = solve(3.0)
    everything, clear_traces, clear_caches = [], jax_util.clear_all_caches, jax.clear_caches

    def public_clear_caches():  # jax.clear_caches itself calls the private entry point
        everything.append(1)
        with monkeypatch.context() as inside:
            inside.setattr(jax_util, "clear_all_caches", clear_traces, raising=False)
            clear_caches()

    monkeypatch.delattr(jax_util, "clear_all_caches")
    monkeypatch.setattr(jax, "clear_caches", public_clear_caches)
    public = solve(3.0)
    assert len(everything) >= 2
    assert np.array_equal(fast.x, public.x) and fast.fun == public.fun and fast.nfev == public.nfev


def test_the_synchronous_client_is_made_on_this_jax_and_missing_its_maker_selects_the_default(monkeypatch):
    assert private_jax.synchronous_cpu_client() is not None
    assert jax_sync._make_client() is not None
    monkeypatch.delattr(jax_lib.xla_client, "make_cpu_client")
    assert private_jax.synchronous_cpu_client() is None
    assert jax_sync._make_client() is None


def test_host_effects_are_read_from_the_lowering_and_assumed_where_jax_does_not_say():
    aval = jax.ShapeDtypeStruct((2,), np.float32)

    def noisy(x):
        jax.debug.print("{}", x)
        return x

    assert private_jax.has_host_effects(jax.jit(jnp.sin).lower(aval)) is False
    assert private_jax.has_host_effects(jax.jit(noisy).lower(aval)) is True
    assert private_jax.has_host_effects(object()) is True
