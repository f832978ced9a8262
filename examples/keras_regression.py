"""Fit a Keras 3 regression model with scipy's solvers in one call: am.keras.fit.

The model is a small float32 MLP; ``am.keras.fit`` turns it into a pure function of its
weights (``model.stateless_call``), minimizes it with exact gradients from the Keras
backend's framework and writes the weights back. The same code runs on Keras's TensorFlow,
JAX and PyTorch backends (set ``KERAS_BACKEND``). The second fit constrains the output
layer's bias to [-0.5, 0.5] through ``bounds`` keyed by the weight's path.

Run with ``python examples/keras_regression.py``.
"""

from __future__ import annotations

import keras
import numpy as np

import autominimize as am


def housing(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic regression: three features, a smooth nonlinear target and some noise."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.0, 1.0, size=(n, 3)).astype("float32")
    y = np.sin(2.0 * X[:, :1]) + X[:, 1:2] ** 2 - 0.5 * X[:, 2:3] + 0.05 * rng.normal(size=(n, 1))
    return X, y.astype("float32")


def new_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(1)])


def main() -> dict[str, float]:
    X, y = housing()
    report = {}
    model = new_model()
    result = am.keras.fit(model, "mse", X, y, method="L-BFGS-B", options={"maxiter": 300})
    report["free"] = float(np.mean((model.predict(X, verbose=0) - y) ** 2))
    print(f"L-BFGS-B                mse {report['free']:.4f}  nfev {result.nfev}  backend {result.backend}")

    model = new_model()
    bias = model.layers[-1].bias
    result = am.keras.fit(model, "mse", X, y, method="L-BFGS-B", bounds={bias.path: (-0.5, 0.5)}, options={"maxiter": 300})
    report["bounded"] = float(np.mean((model.predict(X, verbose=0) - y) ** 2))
    report["bias"] = float(bias.numpy()[0])
    print(f"L-BFGS-B, |bias| <= 0.5 mse {report['bounded']:.4f}  bias {report['bias']:.3f}  nfev {result.nfev}")
    return report


if __name__ == "__main__":
    main()
