"""Fit a small JAX MLP's weights with scipy's L-BFGS-B and trust-ncg through am.minimize.

JAX models are pytrees of arrays, so their weights go to ``am.minimize`` as they are:

* a plain pytree (a dict of layers, each a dict of arrays) is x0 directly;
* an Equinox module (if equinox is installed) is split with ``eqx.partition`` into its
  arrays and the rest, and the arrays' leaves are x0 (``am.minimize`` flattens containers
  with optree, which does not know JAX's own pytree classes such as ``eqx.Module``).

Run with ``python examples/jax_mlp.py``.
"""

from __future__ import annotations

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np

import autominimize as am


def data(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A 1-D regression target: y = sin(3x) on [-1, 1]."""
    X = np.linspace(-1.0, 1.0, n)[:, None]
    return X, np.sin(3.0 * X)


def init_mlp(key: jax.Array, sizes: tuple[int, ...] = (1, 16, 1)) -> dict:
    """A plain pytree: {'layer0': {'w': ..., 'b': ...}, ...}."""
    params = {}
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        key, sub = jax.random.split(key)
        params[f"layer{i}"] = {"w": jax.random.normal(sub, (n_in, n_out)) / np.sqrt(n_in), "b": jnp.zeros(n_out)}
    return params


def mlp(params: dict, X: jax.Array) -> jax.Array:
    *hidden, last = [params[name] for name in sorted(params)]
    for layer in hidden:
        X = jnp.tanh(X @ layer["w"] + layer["b"])
    return X @ last["w"] + last["b"]


def fit_pytree(method: str) -> tuple[float, object]:
    X, y = data()

    def loss(params):
        return jnp.mean((mlp(params, X) - y) ** 2)

    result = am.minimize(loss, init_mlp(jax.random.PRNGKey(0)), method=method, options={"maxiter": 500})
    return result.fun, result


def fit_equinox(method: str) -> tuple[float, object]:
    import equinox as eqx

    X, y = data()
    model = eqx.nn.MLP(1, 1, 16, 1, activation=jnp.tanh, key=jax.random.PRNGKey(0))
    arrays, static = eqx.partition(model, eqx.is_array)
    leaves, treedef = jax.tree_util.tree_flatten(arrays)

    def loss(leaves):
        net = eqx.combine(jax.tree_util.tree_unflatten(treedef, leaves), static)
        return jnp.mean((jax.vmap(net)(X) - y) ** 2)

    result = am.minimize(loss, leaves, method=method, options={"maxiter": 500}, unpack="none")
    fitted = eqx.combine(jax.tree_util.tree_unflatten(treedef, result.x), static)
    return result.fun, fitted


def main() -> dict[str, float]:
    losses = {}
    fits = {"pytree": fit_pytree}
    if importlib.util.find_spec("equinox") is not None:
        fits["equinox"] = fit_equinox
    for kind, fit in fits.items():
        for method in ("L-BFGS-B", "trust-ncg"):
            losses[f"{kind} {method}"], _ = fit(method)
    for label, value in losses.items():
        print(f"{label:<22} final mean squared error {value:.2e}")
    return losses


if __name__ == "__main__":
    main()
