"""NumPy backend: plain evaluation, derivatives by finite differences.

Derivatives the user supplies (``jac``, ``hess``, ``hessp``) replace these in the problem
layer; what is left is computed here with scipy's ``approx_derivative`` and every extra
evaluation is counted in ``extra_evaluations``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from scipy.optimize._numdiff import approx_derivative

from ..params import ParamSpec, leaf_to_numpy
from .base import Backend, as_flat_float64
from .common import require_scalar_shape


class NumpyBackend(Backend):
    name = "numpy"
    extra = ""

    def available(self) -> bool:
        return True

    def compile_scalar(self, call: Callable, spec: ParamSpec, dtype: str) -> "NumpyScalar":
        return NumpyScalar(call, spec, dtype)

    def compile_vector(self, call: Callable, spec: ParamSpec, dtype: str) -> "NumpyVector":
        return NumpyVector(call, spec, dtype)


def _to_array(out: Any) -> np.ndarray:
    import optree

    leaves = optree.tree_leaves(out)
    if not leaves:
        raise ValueError("the function returned no array.")
    return np.concatenate([np.ravel(leaf_to_numpy(leaf)) for leaf in leaves]).astype(np.float64)


class _NumpyCompiled:
    def __init__(self, call: Callable, spec: ParamSpec, dtype: str):
        self.call = call
        self.spec = spec
        self.dtype = np.dtype(dtype)
        self.n = spec.size
        self.extra_evaluations = 0

    def _params(self, x: np.ndarray) -> Any:
        x = as_flat_float64(x)
        if self.dtype != np.float64:
            x = x.astype(self.dtype)
        return self.spec.unflatten_leaves(self.spec.split(x))


class NumpyScalar(_NumpyCompiled):
    def value(self, x: np.ndarray) -> float:
        out = leaf_to_numpy(self.call(self._params(x)))
        require_scalar_shape(out.shape)
        return float(out.reshape(()))

    def _counted_value(self, x: np.ndarray) -> float:
        self.extra_evaluations += 1
        return self.value(x)

    def value_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        x = as_flat_float64(x)
        f0 = self.value(x)
        grad = approx_derivative(self._counted_value, x, method="2-point", f0=f0)
        return f0, np.asarray(grad, dtype=np.float64).reshape(-1)

    def gradient(self, x: np.ndarray) -> np.ndarray:
        return self.value_and_grad(x)[1]

    def hvp_at(self, x: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        x = as_flat_float64(x)
        g0 = self.gradient(x)
        scale = np.sqrt(np.finfo(np.float64).eps) * max(1.0, float(np.linalg.norm(x)))

        def hvp(v: np.ndarray) -> np.ndarray:
            v = as_flat_float64(v)
            norm = float(np.linalg.norm(v))
            if norm == 0.0:
                return np.zeros_like(x)
            h = scale / norm
            return (self.gradient(x + h * v) - g0) / h

        return hvp

    def hessian(self, x: np.ndarray) -> np.ndarray:
        x = as_flat_float64(x)
        hess = approx_derivative(self.gradient, x, method="2-point")
        return 0.5 * (hess + hess.T)


class NumpyVector(_NumpyCompiled):
    def value(self, x: np.ndarray) -> np.ndarray:
        return _to_array(self.call(self._params(x)))

    def _counted_value(self, x: np.ndarray) -> np.ndarray:
        self.extra_evaluations += 1
        return self.value(x)

    def value_and_jacobian(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = as_flat_float64(x)
        c0 = self.value(x)
        jac = approx_derivative(self._counted_value, x, method="2-point", f0=c0)
        return c0, np.atleast_2d(np.asarray(jac, dtype=np.float64)).reshape(c0.size, self.n)

    def weighted_hessian(self, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        x = as_flat_float64(x)
        w = as_flat_float64(weights)

        def weighted_grad(z: np.ndarray) -> np.ndarray:
            return w @ self.value_and_jacobian(z)[1]

        hess = approx_derivative(weighted_grad, x, method="2-point")
        return 0.5 * (hess + hess.T)


class UserValueAndGrad(NumpyScalar):
    """A function that returns ``(value, gradient)`` itself (scipy's ``jac=True``).

    ``call_flat(x)`` returns the user's ``(f, grad)`` with ``grad`` already flat. Second-order
    information comes from finite differences of that gradient.
    """

    def __init__(self, call_flat: Callable[[np.ndarray], tuple[Any, np.ndarray]], spec: ParamSpec):
        super().__init__(call_flat, spec, "float64")

    def value_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = self.call(as_flat_float64(x))
        f = leaf_to_numpy(f)
        require_scalar_shape(f.shape)
        return float(f.reshape(())), g

    def value(self, x: np.ndarray) -> float:
        return self.value_and_grad(x)[0]

    def gradient(self, x: np.ndarray) -> np.ndarray:
        self.extra_evaluations += 1
        return self.value_and_grad(x)[1]
