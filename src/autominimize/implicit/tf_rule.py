"""TensorFlow: the solution through ``tf.custom_gradient`` with an implicit gradient function.

The forward pass is the ordinary solve on the arguments' values; the gradient function solves
the adjoint system with ``GradientTape`` derivatives of the user's function at the solution.
Inside a ``tf.function`` both run as ``tf.numpy_function`` ops when the graph runs. First order
only; ``res.fun`` is not differentiated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.optimize as so

from ..params import tree_leaves
from .backward import adjoint_at, count_hvps
from .problem import ImplicitProblem, flat_solution, keep_host_fields, split_args

__all__ = ["solve_with_tf"]


class TensorFlowOperators:
    """The adjoint's operators at one θ: tapes over x as one flat tensor."""

    def __init__(self, problem: ImplicitProblem, leaves: list, dtype: Any):
        import tensorflow as tf

        self.tf, self.problem, self.leaves, self.dtype = tf, problem, leaves, dtype
        self.matrices = [tf.constant(item.matrix, dtype=dtype) for item in problem.constraints if item.fun is None]
        self.sizes: list[int] = []
        self._linearized: tuple | None = None

    def params_of(self, x: Any) -> Any:
        spec = self.problem.spec
        tf = self.tf
        return spec.unflatten_leaves([tf.reshape(x[a:b], shape) for shape, a, b in zip(spec.shapes, spec.offsets, spec.offsets[1:])])

    def objective(self, x: Any, leaves: list) -> Any:
        tf = self.tf
        out = self.problem.objective_output(self.params_of(x), self.problem.args(leaves))
        if self.problem.residual:
            r = self._flat(out)
            return 0.5 * tf.reduce_sum(r * r)
        return tf.reshape(tf.convert_to_tensor(out), [])

    def _flat(self, out: Any) -> Any:
        tf = self.tf
        return tf.concat([tf.cast(tf.reshape(leaf, [-1]), self.dtype) for leaf in tree_leaves(out)], axis=0)

    def constraint_values(self, x: Any, leaves: list) -> Any:
        tf = self.tf
        if not self.problem.constraints:
            return tf.zeros([0], dtype=self.dtype)
        outputs = iter(self.problem.constraint_outputs(self.params_of(x), self.problem.args(leaves)))
        matrices = iter(self.matrices)
        parts = [tf.linalg.matvec(next(matrices), x) if item.fun is None else self._flat(next(outputs)) for item in self.problem.constraints]
        self.sizes = [int(part.shape[0]) for part in parts]
        return tf.concat(parts, axis=0)

    def _lagrangian(self, x: Any, leaves: list, weights: np.ndarray) -> Any:
        value = self.objective(x, leaves)
        if weights.size:
            value = value + self.tf.tensordot(self.constraint_values(x, leaves), self.tf.constant(weights, dtype=self.dtype), 1)
        return value

    def gradient(self, x: np.ndarray) -> np.ndarray:
        tf = self.tf
        xt = tf.constant(x, dtype=self.dtype)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            value = self.objective(xt, self.leaves)
        return tape.gradient(value, xt).numpy().astype(np.float64)

    def constraints(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tf = self.tf
        if not self.problem.constraints:
            return np.zeros(0), np.zeros((0, x.size))
        xt = tf.constant(x, dtype=self.dtype)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(xt)
            c = self.constraint_values(xt, self.leaves)
        jac = tape.jacobian(c, xt, experimental_use_pfor=False)
        del tape
        return c.numpy().astype(np.float64), np.asarray(jac.numpy(), dtype=np.float64).reshape(-1, x.size)

    def hvp(self, x: np.ndarray, weights: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """Products from one persistent tape over the gradient per (x, weights): conjugate
        gradients ask for one product at a time at the same point."""
        tf = self.tf
        key = (x.tobytes(), weights.tobytes())
        if self._linearized is None or self._linearized[0] != key:
            xt = tf.constant(x, dtype=self.dtype)
            with tf.GradientTape(persistent=True) as outer:
                outer.watch(xt)
                with tf.GradientTape() as inner:
                    inner.watch(xt)
                    value = self._lagrangian(xt, self.leaves, weights)
                g = inner.gradient(value, xt)
            self._linearized = (key, outer, xt, g)
        _, outer, xt, g = self._linearized
        columns = [outer.gradient(g, xt, output_gradients=tf.constant(vectors[:, j], dtype=self.dtype)).numpy() for j in range(vectors.shape[1])]
        return np.stack(columns, axis=1).astype(np.float64)

    def theta_vjp(self, x: np.ndarray, weights: np.ndarray, w: np.ndarray, z: np.ndarray, mask: list[bool]) -> list:
        """-∂θ(⟨∇ₓL, w⟩ + ⟨c, z⟩) for the leaves in ``mask``."""
        tf = self.tf
        xt = tf.constant(x, dtype=self.dtype)
        wanted = [leaf for leaf, keep in zip(self.leaves, mask) if keep]
        with tf.GradientTape() as outer:
            outer.watch(wanted)
            with tf.GradientTape() as inner:
                inner.watch(xt)
                value = self._lagrangian(xt, self.leaves, weights)
            total = tf.tensordot(inner.gradient(value, xt), tf.constant(w, dtype=self.dtype), 1)
            if z.size:
                total = total + tf.tensordot(self.constraint_values(xt, self.leaves), tf.constant(z, dtype=self.dtype), 1)
        grads = outer.gradient(total, wanted)
        return [tf.zeros_like(leaf) if g is None else -tf.cast(g, leaf.dtype) for g, leaf in zip(grads, wanted)]


def solve_with_tf(problem: ImplicitProblem, run: Callable[[Any, tuple], so.OptimizeResult], x0: Any, args: tuple) -> so.OptimizeResult:
    """The ordinary solve on the arguments' values, with ``res.x`` differentiable by a tape."""
    import tensorflow as tf

    leaves = split_args(args)[0]
    tensors = [tf.convert_to_tensor(leaf) if isinstance(leaf, tf.Variable) else leaf for leaf in leaves]
    mask = [isinstance(leaf, tf.Tensor) and leaf.dtype.is_floating for leaf in tensors]
    if not tf.executing_eagerly():
        return _solve_in_graph(problem, run, x0, tensors)
    result = run(x0, problem.args([tf.stop_gradient(t) if isinstance(t, tf.Tensor) else t for t in tensors]))  # no tape records the solve
    spec = problem.spec
    x_flat = flat_solution(result.x)
    dtype = tf.float64 if result.get("precision", "float64") == "float64" else tf.float32
    success = bool(result.get("success", False))
    wanted = [leaf for leaf, keep in zip(tensors, mask) if keep]

    @tf.custom_gradient
    def solution(*_):
        def gradient(cotangent):
            ops = TensorFlowOperators(problem, tensors, dtype)
            adjoint = adjoint_at(problem, ops, x_flat, cotangent.numpy().astype(np.float64), success)
            count_hvps(result, adjoint)
            if adjoint.failure is not None:
                return [tf.fill(tf.shape(leaf), tf.constant(np.nan, dtype=leaf.dtype)) for leaf in wanted]
            return ops.theta_vjp(x_flat, adjoint.weights, adjoint.w, adjoint.z, mask)

        return tf.constant(x_flat, dtype=dtype), gradient

    flat = solution(*wanted)
    parts = [
        tf.cast(tf.reshape(flat[a:b], info.shape), info.dtype if info.dtype.kind == "f" else np.float64)
        for info, a, b in zip(spec.leaves, spec.offsets, spec.offsets[1:])
    ]
    result.x = spec.unflatten_leaves(parts)
    return result


def _restore(spec: Any, flat: Any) -> Any:
    import tensorflow as tf

    return spec.unflatten_leaves(
        [
            tf.cast(tf.reshape(flat[a:b], info.shape), info.dtype if info.dtype.kind == "f" else np.float64)
            for info, a, b in zip(spec.leaves, spec.offsets, spec.offsets[1:])
        ]
    )


#: the result's fields that are tensors of the graph: the host solve's do not replace them
_TRACED = ("x", "fun", "success", "backend", "message")


def _solve_in_graph(problem: ImplicitProblem, run: Callable[[Any, tuple], so.OptimizeResult], x0: Any, tensors: list) -> so.OptimizeResult:
    """Inside a ``tf.function``: the solve and the backward pass as ``tf.numpy_function`` ops
    (run on the host when the graph runs), joined by ``tf.custom_gradient``."""
    import tensorflow as tf

    spec = problem.spec
    inputs = [tf.convert_to_tensor(t) for t in tensors]
    mask = [t.dtype.is_floating for t in inputs]
    record = so.OptimizeResult()

    def host_forward(*values):
        result = run(x0, problem.args([tf.constant(v) for v in values]))
        keep_host_fields(record, result, _TRACED)
        return flat_solution(result.x), np.float64(result.get("fun", np.nan)), np.bool_(result.get("success", False))

    def host_backward(x_flat, success, cotangent, *values):
        ops = TensorFlowOperators(problem, [tf.constant(v) for v in values], tf.float64)
        adjoint = adjoint_at(problem, ops, x_flat, cotangent.astype(np.float64), bool(success))
        count_hvps(record, adjoint)
        wanted = [v for v, keep in zip(values, mask) if keep]
        if adjoint.failure is not None:
            return [np.full(np.shape(v), np.nan, dtype=v.dtype) for v in wanted]
        return [g.numpy() for g in ops.theta_vjp(x_flat, adjoint.weights, adjoint.w, adjoint.z, mask)]

    x, value, success = tf.numpy_function(host_forward, inputs, [tf.float64, tf.float64, tf.bool], stateful=True)
    x.set_shape([spec.size])

    @tf.custom_gradient
    def attach(solution, *values):
        def gradient(cotangent):
            wanted = [v for v, keep in zip(values, mask) if keep]
            grads = iter(tf.numpy_function(host_backward, [solution, success, cotangent, *values], [v.dtype for v in wanted], stateful=True))
            out = [None]
            for v, keep in zip(values, mask):
                g = next(grads) if keep else None
                if g is not None:
                    g.set_shape(v.shape)
                out.append(g)
            return out

        return tf.identity(solution), gradient

    x = attach(x, *inputs)
    record.update(x=_restore(spec, x), fun=value, success=success, backend="tensorflow")
    record.message = (
        "solved inside a tf.function: fun and success are tensors (fun is not differentiated), nit and nfev are filled in when the graph runs"
    )
    return record
