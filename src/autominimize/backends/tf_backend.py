"""TensorFlow backend: graph-compiled value, fused value-and-gradient, HVP, Hessian.

Every computation is one ``tf.function`` with a fixed ``input_signature`` (flat vectors),
traced once per compiled object; the flat vector is split into the parameter structure
*inside* the graph. The concrete function is called directly, which skips the argument
binding of ``tf.function.__call__`` (about 80 µs per call). Graphs are compiled with XLA
when the backend's ``jit_compile`` is true (2-3x less overhead per call on CPU); a graph
XLA rejects (``tf.numpy_function``, ``tf.print``, ...) is retraced once without it.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..params import ParamSpec
from .base import Backend, args_layout, as_flat_float64
from .common import no_gradient_error, note_coarse_output, require_real_number, require_scalar_shape, vector_leaves

if TYPE_CHECKING:
    from .native_functions import NativeFunctions


def _tf():
    import tensorflow as tf

    return tf


class TensorFlowBackend(Backend):
    """Exact derivatives from TensorFlow's ``GradientTape``.

    Attributes
    ----------
    jit_compile : bool
        Compile the graphs with XLA (default). Set to False on an instance before compiling
        to get plain TensorFlow graphs.
    """

    name = "tensorflow"
    extra = "tensorflow"
    jit_compile: bool = True
    #: arrays in ``args`` are inputs of the graphs (NumPy's and TensorFlow's)
    array_roots = ("tensorflow",)

    def available(self) -> bool:
        return importlib.util.find_spec("tensorflow") is not None

    def compile_scalar(self, call: Callable, spec: ParamSpec, dtype: str) -> "TfScalar":
        return TfScalar(self, call, spec, dtype)

    def compile_vector(self, call: Callable, spec: ParamSpec, dtype: str) -> "TfVector":
        return TfVector(self, call, spec, dtype)

    def compile_batched(self, call: Callable, spec: ParamSpec, dtype: str) -> "TfBatched":
        return TfBatched(self, call, spec, dtype)

    def constant_like(self, value: np.ndarray, like: Any) -> Any:
        return _tf().constant(value, dtype=like.dtype)

    def squared_sum(self, leaf: Any) -> Any:
        return _tf().reduce_sum(leaf * leaf)

    def ravel_concatenated(self, leaves: list) -> Any:
        tf = _tf()
        return tf.concat([tf.reshape(v, [-1]) for v in leaves], axis=0)

    def matvec(self, matrix: Any, vector: Any) -> Any:
        return _tf().linalg.matvec(matrix, vector)

    def finite(self, leaf: Any) -> Any:
        tf = _tf()
        if not leaf.dtype.is_floating:
            return leaf
        return tf.where(tf.math.is_finite(leaf), leaf, tf.zeros_like(leaf))

    def masked(self, values: Any, mask: Any) -> Any:
        tf = _tf()
        return tf.where(mask, values, tf.zeros_like(values))

    def native_functions(self, call: Callable, spec: ParamSpec, dtype: str, residual: bool, device: Any = None) -> NativeFunctions:
        from .native_host import host_functions

        return host_functions(self, call, spec, dtype, residual)

    #: the batched fits map fun over the members with jax.vmap, torch.func or NumPy's own arrays
    batched_fits = False


def raise_traced(exc: BaseException) -> None:
    """Raise what the traced code raised: AutoGraph re-raises it as a new exception (its
    StagingError for types it cannot rebuild), and the caller catches the user's own object."""
    original = exc.__context__ if hasattr(exc, "ag_error_metadata") else None
    if original is not None:
        raise original from None
    raise exc


def concrete_function(function: Any) -> Any:
    """``function.get_concrete_function()``, raising what the traced code raised."""
    try:
        return function.get_concrete_function()
    except Exception as exc:
        raise_traced(exc)


def _value_and_grad(f: Callable, x: Any) -> tuple[Any, Any]:
    tf = _tf()
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = f(x)
    # x is one flat tensor: a function that ignores part of it still has a gradient (zero
    # there); None means that the output does not depend on x at all.
    grad = tape.gradient(value, x)
    if grad is None:
        raise no_gradient_error("outside the gradient tape (NumPy, .numpy(), tf.stop_gradient)")
    return value, grad


def _taped_grad(f: Callable, x: Any) -> tuple[Any, Any]:
    """The gradient of ``f`` at ``x`` and a tape that recorded it, to differentiate it again."""
    tf = _tf()
    with tf.GradientTape() as tape:
        tape.watch(x)
        _, grad = _value_and_grad(f, x)
    return tape, grad


def _hessian(f: Callable, x: Any) -> Any:
    tf = _tf()
    tape, grad = _taped_grad(f, x)
    return tape.jacobian(grad, x, unconnected_gradients=tf.UnconnectedGradients.ZERO, experimental_use_pfor=True)


def _to_numpy(tensor: Any) -> np.ndarray:
    out = np.asarray(tensor.numpy(), dtype=np.float64)
    return out if out.flags.writeable else out.copy()


class _TfCompiled:
    """Shared plumbing: in-graph unflattening and lazily traced concrete functions.

    Attributes
    ----------
    traces : int
        How many times a computation's Python body was traced (one per computation used).
    extra_evaluations : int
        Evaluations beyond those asked for; always 0, derivatives are exact.
    """

    #: the backend that compiled these functions (read by the sparse drivers)
    framework = "tensorflow"

    def __init__(self, backend: TensorFlowBackend, call: Callable, spec: ParamSpec, dtype: str):
        self.backend = backend
        self.spec = spec
        self.dtype = np.dtype(dtype)
        self.n = spec.size
        self.traces = 0
        self.extra_evaluations = 0
        self._compiled: dict[str, Any] = {}  # concrete functions, shared by the views
        self._plain: set[str] = set()
        self._set_args(call)

    def _set_args(self, call: Callable) -> None:
        """The arrays in ``call``'s args become graph inputs after x (floating ones in the
        compute dtype, as constants mixed with the parameters would be)."""
        self.call = call
        self.arg_layout = None if self._compiled.get("baked args") else args_layout(self.backend, call)
        self.arg_inputs: tuple = ()
        self._tracing_args: tuple | None = None
        if self.arg_layout is not None:
            tf = _tf()
            inputs = []
            for array in self.arg_layout.arrays():
                tensor = tf.convert_to_tensor(array)
                inputs.append(tf.cast(tensor, self.dtype.name) if tensor.dtype.is_floating else tensor)
            self.arg_inputs = tuple(inputs)

    def bind(self, call: Callable) -> "_TfCompiled":
        """This compiled function for ``call``'s args (of the shapes it was traced for)."""
        view = copy.copy(self)
        if self._compiled.get("baked args"):
            view._compiled, view._plain = {"baked args": True}, set()
        view._set_args(call)
        return view

    def _current_call(self) -> Callable:
        if self._tracing_args is None:
            return self.call
        return self.call.rebind(self.arg_layout.rebuild(self._tracing_args))

    def _arg_specs(self) -> list:
        return [_tf().TensorSpec(a.shape, a.dtype) for a in self.arg_inputs]

    def _taking_args(self, body: Callable) -> Callable:
        count = len(self.arg_inputs)

        def with_args(*inputs: Any) -> Any:
            previous, self._tracing_args = self._tracing_args, inputs[:count]
            try:
                return body(*inputs[count:])
            finally:
                self._tracing_args = previous

        return with_args

    def _bake_args(self) -> None:
        """The function cannot take its args as graph inputs: trace them in as constants from
        now on, for this solve and every later one (the shared functions are marked)."""
        self._compiled["baked args"] = True
        self._compiled, self._plain = {"baked args": True}, set()
        self.arg_layout, self.arg_inputs = None, ()

    def params_of(self, x: Any) -> Any:
        tf = _tf()
        parts = tf.split(x, self.spec.sizes)
        return self.spec.unflatten_leaves([tf.reshape(part, shape) for part, shape in zip(parts, self.spec.shapes)])

    def _input(self, x: np.ndarray) -> Any:
        return _tf().constant(as_flat_float64(x), dtype=self.dtype.name)

    def _tensor(self, out: Any) -> Any:
        """A user's output as a tensor of the compute dtype (Python floats read at it)."""
        tf = _tf()
        return tf.cast(tf.convert_to_tensor(out, dtype_hint=self.dtype.name), self.dtype.name)

    def _function(self, name: str, body: Callable, *sizes: int) -> Any:
        """The concrete function of ``body`` for flat inputs of ``sizes``, traced once."""
        compiled = self._compiled.get(name)
        if compiled is None:
            tf = _tf()

            inner = self._taking_args(body) if self.arg_inputs else body

            def traced(*args: Any) -> Any:
                self.traces += 1
                return inner(*args)

            signature = self._arg_specs() + [tf.TensorSpec([size], self.dtype.name) for size in sizes]
            jit = self.backend.jit_compile and name not in self._plain
            function = tf.function(traced, input_signature=signature, jit_compile=jit)
            try:
                compiled = self._compiled[name] = function.get_concrete_function()
            except Exception as exc:
                if self.arg_inputs:
                    self._bake_args()
                    return self._function(name, body, *sizes)
                raise_traced(exc)
        return compiled

    def _run(self, name: str, body: Callable, *args: Any) -> Any:
        function = self._function(name, body, *(int(arg.shape[0]) for arg in args))
        try:
            return function(*self.arg_inputs, *args)
        except _tf().errors.InvalidArgumentError:
            # XLA refuses some ops only when it compiles, at the first call: retrace without
            # it. A genuine runtime error is raised again by the plain graph.
            if not self.backend.jit_compile or name in self._plain:
                raise
            self._plain.add(name)
            del self._compiled[name]
            return self._run(name, body, *args)


class TfScalar(_TfCompiled):
    """A scalar objective compiled to TensorFlow graphs.

    ``hvp_at(x)`` returns a map that recomputes the gradient at ``x`` on each call: TF
    cannot keep a linearization between graph calls cheaply. The HVP is back-over-back
    (reverse mode through the gradient with ``output_gradients=v``), measured a little
    faster than forward-over-back with ``ForwardAccumulator`` on Rosenbrock n=100 and
    about three times faster to trace.
    """

    def scalar_of(self, x: Any) -> Any:
        out = self._current_call()(self.params_of(x))
        require_real_number(out)
        note_coarse_output(self, out)
        out = self._tensor(out)
        if out.shape.is_fully_defined():  # otherwise the reshape below fails at run time
            require_scalar_shape(tuple(out.shape))
        return _tf().reshape(out, [])

    def value(self, x: np.ndarray) -> float:
        return float(self._run("value", self.scalar_of, self._input(x)).numpy())

    def value_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        def fused(x: Any) -> Any:
            value, grad = _value_and_grad(self.scalar_of, x)
            return _tf().concat([value[None], grad], axis=0)

        out = _to_numpy(self._run("value_and_grad", fused, self._input(x)))
        return float(out[0]), out[1:]

    def hvp_at(self, x: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        def hvp_graph(x: Any, v: Any) -> Any:
            tape, grad = _taped_grad(self.scalar_of, x)
            return tape.gradient(grad, x, output_gradients=v, unconnected_gradients=_tf().UnconnectedGradients.ZERO)

        x_tensor = self._input(x)

        def hvp(v: np.ndarray) -> np.ndarray:
            return _to_numpy(self._run("hvp", hvp_graph, x_tensor, self._input(v)))

        return hvp

    def hessian(self, x: np.ndarray) -> np.ndarray:
        hessian = functools.partial(_hessian, self.scalar_of)
        return _to_numpy(self._run("hessian", hessian, self._input(x)))


class TfBatched(TfScalar):
    """The scalar objective mapped over the rows of a batch with ``tf.vectorized_map``.

    One ``tf.function`` with input signature ``[None, n]``, traced once for every batch size;
    XLA-compiled where XLA accepts the ops, like the other graphs.
    """

    def __call__(self, points: np.ndarray) -> np.ndarray:
        tf = _tf()
        batched = self._compiled.get("batched")
        if batched is None:

            def mapped(rows: Any) -> Any:
                self.traces += 1
                return tf.vectorized_map(self.scalar_of, rows)

            traced = self._taking_args(mapped) if self.arg_inputs else mapped
            signature = self._arg_specs() + [tf.TensorSpec([None, self.n], self.dtype.name)]
            jit = self.backend.jit_compile and "batched" not in self._plain
            batched = self._compiled["batched"] = tf.function(traced, input_signature=signature, jit_compile=jit)
        rows = tf.constant(np.asarray(points, dtype=np.float64), dtype=self.dtype.name)
        try:
            return _to_numpy(batched(*self.arg_inputs, rows))
        except tf.errors.InvalidArgumentError:
            if not self.backend.jit_compile or "batched" in self._plain:
                raise
            self._plain.add("batched")  # an op XLA refuses: retrace as a plain graph
            del self._compiled["batched"]
            return self(points)


class TfVector(_TfCompiled):
    """A vector function (constraints, residuals) compiled to TensorFlow graphs.

    The user's output (a scalar, an array or any pytree of them) is flattened and
    concatenated into one vector of length ``m``; the Jacobian is always ``(m, n)``.
    """

    def vector_of(self, x: Any) -> Any:
        tf = _tf()
        leaves = vector_leaves(self._current_call()(self.params_of(x)))
        return tf.concat([tf.reshape(self._tensor(leaf), [-1]) for leaf in leaves], axis=0)

    @property
    def m(self) -> int:
        """The output length, read from the traced value graph."""
        return int(self._function("value", self.vector_of, self.n).structured_outputs.shape[0])

    def value(self, x: np.ndarray) -> np.ndarray:
        return _to_numpy(self._run("value", self.vector_of, self._input(x)))

    def value_and_jacobian(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        def fused(x: Any) -> Any:
            tf = _tf()
            with tf.GradientTape(persistent=True) as tape:
                tape.watch(x)
                value = self.vector_of(x)
            # checked while tracing; the graph keeps only the Jacobian
            if tape.gradient(value, x) is None:
                raise no_gradient_error("outside the gradient tape (NumPy, .numpy(), tf.stop_gradient)")
            jacobian = tape.jacobian(value, x, unconnected_gradients=tf.UnconnectedGradients.ZERO, experimental_use_pfor=True)
            return tf.concat([value, tf.reshape(jacobian, [-1])], axis=0)

        out = _to_numpy(self._run("value_and_jacobian", fused, self._input(x)))
        m = out.size // (self.n + 1)
        return out[:m], out[m:].reshape(m, self.n)

    def weighted_hessian(self, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        def weighted(x: Any, w: Any) -> Any:
            def weighted_sum(x: Any) -> Any:
                return _tf().tensordot(w, self.vector_of(x), 1)

            return _hessian(weighted_sum, x)

        hessian = self._run("weighted_hessian", weighted, self._input(x), self._input(weights))
        return _to_numpy(hessian)
