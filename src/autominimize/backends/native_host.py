"""The native functions of a NumPy or TensorFlow objective: the backends' compiled flat functions."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..params import ParamSpec, tree_leaves
from .base import Backend
from .native_functions import Call, NativeFunctions, make_params_of, sum_squared_case_gradients

__all__ = ["host_functions"]


def host_functions(backend: Backend, call: Call, spec: ParamSpec, dtype: str, residual: bool) -> NativeFunctions:
    """NumPy and TensorFlow: the backend's compiled flat functions, one per mini-batch."""
    compiled: dict[int, tuple] = {}

    def for_batch(batch):
        key = id(batch)
        if key not in compiled:
            if len(compiled) > 1:  # keep the current batch only (and None)
                compiled.pop(next(k for k in compiled if k != id(None)))
            bound = lambda params: call(params, batch)
            vector = backend.compile_vector(bound, spec, dtype)
            scalar = backend.compile_scalar((lambda params: 0.5 * _sum_squares(backend, bound(params))) if residual else bound, spec, dtype)
            compiled[key] = (batch, scalar, vector)
        return compiled[key][1:]

    def value(x, batch):
        return np.float64(for_batch(batch)[0].value(x))

    def value_and_grad(x, batch):
        f, g = for_batch(batch)[0].value_and_grad(x)
        return np.float64(f), g

    def hvp(x, v, batch):
        return for_batch(batch)[0].hvp_at(x)(v)

    def gnvp(x, v, batch):
        _, jac = for_batch(batch)[1].value_and_jacobian(x)
        return jac.T @ (jac @ v)

    shapes_of: dict[int, tuple] = {}

    def residual_shapes(x, batch):
        """The residual leaves' shapes: one extra call of fun per batch."""
        key = id(batch)
        if key not in shapes_of:
            shapes_of.clear()
            shapes_of[key] = (batch, [np.shape(leaf) for leaf in tree_leaves(call(make_params_of(spec)(x), batch))])
        return shapes_of[key][1]

    def squared_case_gradients(x, batch):
        r, jac = for_batch(batch)[1].value_and_jacobian(x)
        return sum_squared_case_gradients(residual_shapes(x, batch), np.asarray(r), jac)

    return NativeFunctions(
        value, value_and_grad, hvp, gnvp if residual else None, squared_case_gradients=squared_case_gradients if residual else None
    )


def _sum_squares(backend: Backend, out: Any) -> Any:
    total = 0.0
    for leaf in tree_leaves(out):
        total = total + backend.squared_sum(leaf)
    return total
