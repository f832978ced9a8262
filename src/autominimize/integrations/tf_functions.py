"""The loss and constraints of ``am.tf.ScipyOptimizerInterface`` as flat functions.

Every evaluation assigns the point to the variables and runs the loss in one
``tf.function`` (traced once, with a fixed input signature); the gradients, Hessian-vector
products, Hessians and constraint Jacobians come from ``GradientTape``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import tensorflow as tf

from ..backends.base import as_flat_float64
from ..backends.common import NoGradientError, ObjectiveOutputError, require_real_number, require_scalar_shape
from ..backends.tf_backend import concrete_function
from ..params import tree_leaves
from ..validation import check_constraint_values

__all__ = ["LossFunctions", "ConstraintFunctions"]

_ZERO = tf.UnconnectedGradients.ZERO


class GraphFunctions:
    """Lazily traced ``tf.function``\\s of flat float64 inputs that first assign the variables.

    The helpers that do not call user code are left alone by AutoGraph (``do_not_convert``):
    converting them took 0.2–0.5 s of a first solve. The loss and constraints, and the
    bodies that call them, are converted as ``tf.function`` does.
    """

    def __init__(self, variables: list[tf.Variable]):
        self.variables = variables
        self.sizes = [int(np.prod(v.shape)) for v in variables]
        self._graphs: dict[str, Any] = {}

    @tf.autograph.experimental.do_not_convert
    def _assign(self, x: tf.Tensor) -> None:
        for v, part in zip(self.variables, tf.split(x, self.sizes)):
            v.assign(tf.cast(tf.reshape(part, v.shape), v.dtype))

    @tf.autograph.experimental.do_not_convert
    def _split(self, v: tf.Tensor) -> list[tf.Tensor]:
        return [tf.cast(tf.reshape(p, var.shape), var.dtype) for var, p in zip(self.variables, tf.split(v, self.sizes))]

    @staticmethod
    @tf.autograph.experimental.do_not_convert
    def _flat(tensors: Sequence[tf.Tensor], batch: int | None = None) -> tf.Tensor:
        shape = [-1] if batch is None else [batch, -1]
        return tf.concat([tf.reshape(tf.cast(t, tf.float64), shape) for t in tensors], axis=-1)

    def _run(self, name: str, body: Callable, *inputs: np.ndarray) -> np.ndarray:
        graph = self._graphs.get(name)
        if graph is None:
            signature = [tf.TensorSpec([np.size(a)], tf.float64) for a in inputs]
            graph = self._graphs[name] = concrete_function(tf.function(body, input_signature=signature))
        return graph(*[tf.constant(as_flat_float64(a)) for a in inputs]).numpy()

    @tf.autograph.experimental.do_not_convert
    def _jacobian_rows(self, tape: tf.GradientTape, out: tf.Tensor) -> tf.Tensor:
        """d(out)/d(variables) as an (m, n) matrix."""
        rows = tape.jacobian(out, self.variables, unconnected_gradients=_ZERO, experimental_use_pfor=True)
        return self._flat(rows, batch=int(out.shape[0]))


class LossFunctions(GraphFunctions):
    """The loss as a flat objective (a ``ScalarFunctions``) over the variables.

    ``on_evaluation(loss)`` runs once per point, when its value is first computed; one
    instance serves every solve of an interface (:meth:`observe` before each), so that its
    traced graphs are reused.
    """

    extra_evaluations = 0

    def __init__(self, loss: Callable, variables: list[tf.Variable]):
        super().__init__(variables)
        self.loss = loss
        self.observe(lambda value: None)

    def observe(self, on_evaluation: Callable[[float], None]) -> None:
        """Report the points of the next solve to ``on_evaluation``."""
        self.on_evaluation = on_evaluation
        self._reported: np.ndarray | None = None

    def _report(self, x: np.ndarray, value: float) -> None:
        if self._reported is None or not np.array_equal(x, self._reported):
            self._reported = np.array(x, dtype=np.float64)
            self.on_evaluation(value)

    def _scalar(self) -> tf.Tensor:
        out = self.loss()
        require_real_number(out, "loss")
        out = tf.convert_to_tensor(out)
        if out.shape.is_fully_defined():  # otherwise the reshape below fails at run time
            require_scalar_shape(tuple(out.shape), "loss")
        return tf.reshape(out, [])

    def _gradient(self) -> tuple[tf.Tensor, list[tf.Tensor]]:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(self.variables)
            value = self._scalar()
        grads = tape.gradient(value, self.variables)
        if all(grad is None for grad in grads):  # a zero gradient would stop every method at x0
            raise NoGradientError(
                "loss carries no gradient with respect to var_list: it does not read the variables, "
                "or it was computed outside the gradient tape (NumPy, .numpy(), tf.stop_gradient). "
                "Compute it from the variables with TensorFlow operations."
            )
        return value, [tf.zeros_like(v) if grad is None else grad for v, grad in zip(self.variables, grads)]

    def value(self, x: np.ndarray) -> float:
        def body(x: tf.Tensor) -> tf.Tensor:
            self._assign(x)
            return tf.cast(self._scalar(), tf.float64)

        value = float(self._run("value", body, x))
        self._report(x, value)
        return value

    def value_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        def body(x: tf.Tensor) -> tf.Tensor:
            self._assign(x)
            value, grads = self._gradient()
            return self._flat([value] + grads)

        out = self._run("value_and_grad", body, x)
        self._report(x, float(out[0]))
        return float(out[0]), out[1:].copy()

    def hvp_at(self, x: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        def body(x: tf.Tensor, v: tf.Tensor) -> tf.Tensor:
            self._assign(x)
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(self.variables)
                _, grads = self._gradient()
            return self._flat(tape.gradient(grads, self.variables, output_gradients=self._split(v), unconnected_gradients=_ZERO))

        x = np.array(x, dtype=np.float64)  # scipy may write into its own vector later
        return lambda v: self._run("hvp", body, x, v)

    def hessian(self, x: np.ndarray) -> np.ndarray:
        def body(x: tf.Tensor) -> tf.Tensor:
            self._assign(x)
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(self.variables)
                _, grads = self._gradient()
                flat = self._flat(grads)
            return self._jacobian_rows(tape, flat)

        return self._run("hessian", body, x)


class ConstraintFunctions(GraphFunctions):
    """A zero-argument constraint callable as a flat vector function (a ``VectorFunctions``)."""

    def __init__(self, fun: Callable, variables: list[tf.Variable]):
        super().__init__(variables)
        self.fun = fun

    def _vector(self) -> tf.Tensor:
        leaves = tree_leaves(self.fun())
        check_constraint_values(leaves, f"the constraint function {getattr(self.fun, '__name__', self.fun)!r}", ObjectiveOutputError)
        return self._flat([tf.convert_to_tensor(leaf) for leaf in leaves])

    def value(self, x: np.ndarray) -> np.ndarray:
        def body(x: tf.Tensor) -> tf.Tensor:
            self._assign(x)
            return self._vector()

        return self._run("value", body, x)

    def value_and_jacobian(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        def body(x: tf.Tensor) -> tf.Tensor:
            self._assign(x)
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(self.variables)
                out = self._vector()
            return tf.concat([out[:, None], self._jacobian_rows(tape, out)], axis=1)

        out = self._run("value_and_jacobian", body, x)
        return out[:, 0].copy(), out[:, 1:].copy()

    def weighted_hessian(self, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        def body(x: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
            self._assign(x)
            with tf.GradientTape(watch_accessed_variables=False) as outer:
                outer.watch(self.variables)
                with tf.GradientTape(watch_accessed_variables=False) as inner:
                    inner.watch(self.variables)
                    total = tf.tensordot(w, self._vector(), 1)
                grads = self._flat(inner.gradient(total, self.variables, unconnected_gradients=_ZERO))
            return self._jacobian_rows(outer, grads)

        return self._run("weighted_hessian", body, x, weights)
