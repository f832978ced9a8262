"""JAX models as pytrees: examples/jax_mlp.py fits a plain pytree MLP and an Equinox MLP."""

from __future__ import annotations

import importlib.util
import runpy
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax")

EXAMPLE = runpy.run_path(str(Path(__file__).parents[1] / "examples" / "jax_mlp.py"))


@pytest.mark.parametrize("method", ["L-BFGS-B", "trust-ncg"])
def test_a_plain_pytree_mlp_fits(method):
    loss, result = EXAMPLE["fit_pytree"](method)
    assert loss < 1e-4 and result.backend == "jax"
    start = EXAMPLE["init_mlp"](jax.random.PRNGKey(0))
    assert jax.tree_util.tree_structure(result.x) == jax.tree_util.tree_structure(start)
    assert all(isinstance(leaf, jax.Array) and leaf.dtype == np.float32 for leaf in jax.tree_util.tree_leaves(result.x))
    if method == "trust-ncg":
        assert result.nhvp > 0
    X, y = EXAMPLE["data"]()
    assert float(np.mean((np.asarray(EXAMPLE["mlp"](result.x, X)) - y) ** 2)) == pytest.approx(loss, rel=1e-3)


@pytest.mark.skipif(importlib.util.find_spec("equinox") is None, reason="equinox is not installed")
@pytest.mark.parametrize("method", ["L-BFGS-B", "trust-ncg"])
def test_an_equinox_mlp_fits(method):
    import equinox as eqx

    loss, model = EXAMPLE["fit_equinox"](method)
    assert loss < 1e-4 and isinstance(model, eqx.nn.MLP)
    assert model.layers[0].weight.shape == (16, 1) and model.layers[0].weight.dtype == np.float32
    X, y = EXAMPLE["data"]()
    assert float(np.mean((np.asarray(jax.vmap(model)(X)) - y) ** 2)) == pytest.approx(loss, rel=1e-3)
