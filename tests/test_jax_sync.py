"""The JAX backend runs its compiled functions synchronously on a private CPU client."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import autominimize as am  # noqa: E402
from autominimize.backends.jax_sync import compile_function, synchronous_client  # noqa: E402


def rosen(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _compile(function, *avals):
    with jax.enable_x64(True):
        return compile_function(function, *avals)


def _on_private_client(array) -> bool:
    return set(array.devices()) <= set(synchronous_client()[0].local_devices())


def test_the_synchronous_call_gives_the_public_compiled_results_bit_for_bit():
    assert synchronous_client() is not None  # the CPU default backend of the test machine
    aval = jax.ShapeDtypeStruct((7,), np.float64)
    synchronous = _compile(jax.value_and_grad(rosen), aval)
    with jax.enable_x64(True):
        public = jax.jit(jax.value_and_grad(rosen)).lower(aval).compile()
    x = np.random.default_rng(0).normal(size=7)
    with jax.enable_x64(True):  # a compiled function checks the mode it was built in
        (f_sync, g_sync), (f_pub, g_pub) = synchronous(x), public(x)
    assert _on_private_client(g_sync) and not _on_private_client(g_pub)
    assert float(f_sync) == float(f_pub) and np.array_equal(np.asarray(g_sync), np.asarray(g_pub))


def test_pytree_arguments_outputs_unused_arguments_and_its_own_outputs_fed_back():
    def function(x, pair):
        scale, _unused = pair
        return {"sum": jnp.sum(x * scale), "double": 2 * x}

    avals = (jax.ShapeDtypeStruct((3,), np.float64), (jax.ShapeDtypeStruct((), np.float32), jax.ShapeDtypeStruct((2,), np.int32)))
    call = _compile(function, *avals)
    with jax.enable_x64(True):
        out = call(np.array([1.0, 2.0, 3.0]), (np.float32(2.0), np.array([5, 6], dtype=np.int32)))
        assert float(out["sum"]) == 12.0 and _on_private_client(out["double"])
        again = call(out["double"], (np.float32(3.0), np.zeros(2, dtype=np.int32)))  # a device array from this client
    assert float(again["sum"]) == 36.0 and np.array_equal(np.asarray(again["double"]), [4.0, 8.0, 12.0])


def test_host_callbacks_take_the_public_path_and_still_run(capfd):
    def noisy(x):
        jax.debug.print("seen {}", x[0])
        return jnp.sum(x**2)

    call = _compile(noisy, jax.ShapeDtypeStruct((2,), np.float64))
    with jax.enable_x64(True):
        out = call(np.array([3.0, 4.0]))
        assert float(out) == 25.0 and not _on_private_client(out)
        jax.effects_barrier()
    assert "seen 3.0" in capfd.readouterr().out


def test_minimize_results_equal_with_and_without_the_synchronous_client(monkeypatch):
    res = am.minimize(rosen, np.zeros(20), method="L-BFGS-B", backend="jax")
    hvp = am.minimize(rosen, np.zeros(20), method="trust-ncg", backend="jax")

    import autominimize.backends.jax_sync as jax_sync

    monkeypatch.setattr(jax_sync, "synchronous_client", lambda: None)

    def public_rosen(x):  # a new function: nothing comes from the compile cache
        return rosen(x)

    reference = am.minimize(public_rosen, np.zeros(20), method="L-BFGS-B", backend="jax")
    hvp_reference = am.minimize(public_rosen, np.zeros(20), method="trust-ncg", backend="jax")
    assert (res.nfev, res.njev, res.nit) == (reference.nfev, reference.njev, reference.nit)
    assert np.array_equal(res.x, reference.x) and res.fun == reference.fun
    assert (hvp.nfev, hvp.njev, hvp.nhvp) == (hvp_reference.nfev, hvp_reference.njev, hvp_reference.nhvp)
    assert np.array_equal(hvp.x, hvp_reference.x)


def test_the_users_jax_keeps_its_asynchronous_dispatch():
    am.minimize(rosen, np.zeros(3), method="BFGS", backend="jax")
    assert jax.config.read("jax_cpu_enable_async_dispatch") is True
    assert jax.devices()[0] not in synchronous_client()[0].local_devices()


def test_with_async_dispatch_off_jax_own_client_serves(tmp_path):
    import subprocess
    import sys

    script = (
        "import jax, numpy as np\n"
        "jax.config.update('jax_cpu_enable_async_dispatch', False)\n"
        "import autominimize as am\n"
        "from autominimize.backends.jax_sync import synchronous_client\n"
        "res = am.minimize(lambda x: ((x - 3.0) ** 2).sum(), np.zeros(4), method='BFGS', backend='jax')\n"
        "print(synchronous_client() is None, np.allclose(res.x, 3.0))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"]


def test_the_backend_places_its_functions_on_the_private_client():
    from autominimize.backends.jax_backend import JaxBackend
    from autominimize.params import ParamSpec

    compiled = JaxBackend().compile_scalar(rosen, ParamSpec.from_tree(np.zeros(4)), "float64")
    x = np.arange(4.0)
    with jax.enable_x64(True):
        f, g = compiled.value_and_grad(x)
        f_lin, g_lin, hvp = compiled.value_grad_and_hvp(x)
        hvp(np.ones(4))
        fused = compiled._compiled["value_and_grad"](x)
        primal, buffers = compiled._compiled["value_grad_linearize"](x)
        product = compiled._compiled["apply"](*buffers, np.ones(4))
    assert all(_on_private_client(out) for out in (fused, primal, *buffers, product))
    assert f == f_lin and np.array_equal(g, g_lin)


def test_a_function_too_large_for_the_hand_off_to_count_runs_on_jaxs_default_client(monkeypatch):
    from autominimize.backends import jax_sync

    matrix = np.random.default_rng(1).normal(size=(300, 200))

    def loss(w):
        return jnp.mean(jnp.logaddexp(0.0, matrix @ w))

    aval = jax.ShapeDtypeStruct((200,), np.float64)
    with jax.enable_x64(True):
        flops = jax_sync.estimated_flops(jax.jit(loss).lower(aval))
    assert 2 * 300 * 200 <= flops < jax_sync.SYNCHRONOUS_MOST_FLOPS  # the matrix-vector product, counted by XLA
    small = _compile(jax.value_and_grad(loss), aval)
    monkeypatch.setattr(jax_sync, "SYNCHRONOUS_MOST_FLOPS", flops / 2)
    large = _compile(jax.value_and_grad(loss), aval)
    w = np.linspace(-0.1, 0.1, 200)
    with jax.enable_x64(True):
        (f_small, g_small), (f_large, g_large) = small(w), large(w)
    assert _on_private_client(g_small) and not _on_private_client(g_large)
    assert float(f_small) == float(f_large) and np.array_equal(np.asarray(g_small), np.asarray(g_large))
