"""JAX backend: ahead-of-time compiled value, fused value-and-gradient, HVP, Hessian."""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from ..params import ParamSpec
from .base import Backend, args_layout, grad_norm
from .common import no_gradient_error, note_coarse_output, require_real_number, require_scalar_shape, vector_leaves
from .jax_passes import HessianPasses, JacobianPasses, tangent_reaches_output
from .jax_sync import compile_function
from .private_jax import clear_trace_caches

if TYPE_CHECKING:
    from .native_functions import NativeFunctions


def _jax():
    import jax
    import jax.numpy as jnp

    return jax, jnp


@contextlib.contextmanager
def float64_scope() -> Iterator[None]:
    """JAX in float64 for the duration of the block, the caller's own JAX code unchanged around it.

    Where 64-bit types are already enabled this does nothing. Otherwise it enables them for the
    block in this thread only (``jax.enable_x64``) and clears JAX's trace caches on entry and
    on exit (:func:`~.private_jax.clear_trace_caches`): JAX keeps traces made with 64-bit
    types off and reuses them with them on (and the reverse), so a function traced on one
    side, say the user's own ``jax.jit`` of the objective, would meet float32 constants in a
    float64 trace. Compiled code is kept: a
    jitted function the caller already ran runs as before.
    """
    jax, _ = _jax()
    if jax.enable_x64.value:
        yield
        return
    clear_trace_caches()
    try:
        with jax.enable_x64(True):
            yield
    finally:
        clear_trace_caches()


class JaxBackend(Backend):
    name = "jax"
    extra = "jax"
    #: arrays in ``args`` are inputs of the compiled functions (NumPy's and these frameworks')
    array_roots = ("jax", "jaxlib")

    def available(self) -> bool:
        return importlib.util.find_spec("jax") is not None

    def solve_context(self, dtype: str) -> contextlib.AbstractContextManager:
        return float64_scope() if dtype == "float64" else contextlib.nullcontext()

    def compile_scalar(self, call: Callable, spec: ParamSpec, dtype: str) -> "JaxScalar":
        return JaxScalar(self, call, spec, dtype)

    def compile_vector(self, call: Callable, spec: ParamSpec, dtype: str) -> "JaxVector":
        return JaxVector(self, call, spec, dtype)

    def compile_batched(self, call: Callable, spec: ParamSpec, dtype: str) -> "JaxBatched":
        return JaxBatched(self, call, spec, dtype)

    def constant_like(self, value: np.ndarray, like: Any) -> Any:
        return _jax()[1].asarray(value, dtype=like.dtype)

    def squared_sum(self, leaf: Any) -> Any:
        return _jax()[1].sum(leaf * leaf)

    def ravel_concatenated(self, leaves: list) -> Any:
        jnp = _jax()[1]
        return jnp.concatenate([jnp.ravel(v) for v in leaves])

    def finite(self, leaf: Any) -> Any:
        return _jax()[1].nan_to_num(leaf)

    def masked(self, values: Any, mask: Any) -> Any:
        return _jax()[1].where(mask, values, 0.0)

    def native_functions(self, call: Callable, spec: ParamSpec, dtype: str, residual: bool, device: Any = None) -> NativeFunctions:
        from .native_jax import jax_functions

        return jax_functions(call, spec, dtype, residual)

    def output_shapes(self, fun: Callable, params: Any) -> list[tuple]:
        """Abstractly (``jax.eval_shape``): fun is traced, not run."""
        jax = _jax()[0]
        return [tuple(leaf.shape) for leaf in jax.tree_util.tree_leaves(jax.eval_shape(fun, params))]


class _JaxCompiled:
    """Shared plumbing: the flat-vector wrapper and lazy ahead-of-time compilation.

    The arrays in the call's ``args`` are inputs of every compiled function, after x (or
    its batch): :meth:`bind` gives a view that runs the same compiled code on other args of
    the same shapes and dtypes. A function that cannot take them traced (it hands them to
    NumPy, or reads their values in Python) gets them as constants instead, compiled per
    solve as before.
    """

    #: the backend that compiled these functions (read by the sparse drivers)
    framework = "jax"

    def __init__(self, backend: JaxBackend, call: Callable, spec: ParamSpec, dtype: str):
        self.backend = backend
        self.call = call
        self.spec = spec
        self.dtype = np.dtype(dtype)
        self.n = spec.size
        self._compiled: dict[str, Any] = {}  # compiled executables, shared by the views
        self._calls: dict[Any, Any] = {}  # the same with this view's args bound
        self.traces = 0
        self.extra_evaluations = 0
        self._set_args(call)

    def _set_args(self, call: Callable) -> None:
        self.call = call
        self.arg_layout = None if self._compiled.get("baked args") else args_layout(self.backend, call)
        self.arg_inputs: tuple = ()
        self._tracing_args: tuple | None = None
        if self.arg_layout is not None:
            self.arg_inputs = tuple(np.asarray(a, dtype=self._input_dtype(np.dtype(a.dtype))) for a in self.arg_layout.arrays())

    def bind(self, call: Callable) -> "_JaxCompiled":
        """This compiled function for ``call``'s args (of the shapes it was compiled for)."""
        view = copy.copy(self)
        view._calls = {}
        if self._compiled.get("baked args"):
            view._compiled = {"baked args": True}
        view._set_args(call)
        return view

    def _input_dtype(self, dtype: np.dtype) -> np.dtype:
        """JAX's dtype for an array input: 64-bit types are 32-bit in a float32 solve."""
        if self.dtype == np.float64 or dtype.itemsize < 8:
            return dtype
        return np.dtype({"f": "float32", "c": "complex64", "i": "int32", "u": "uint32"}.get(dtype.kind, dtype.name))

    def _current_call(self) -> Callable:
        if self._tracing_args is None:
            return self.call
        return self.call.rebind(self.arg_layout.rebuild(self._tracing_args))

    def _taking_args(self, function: Callable) -> Callable:
        """``function`` with the args' arrays as its first inputs (read by ``flat_fun``)."""
        count = len(self.arg_inputs)

        def with_args(*inputs: Any) -> Any:
            previous, self._tracing_args = self._tracing_args, inputs[:count]
            try:
                return function(*inputs[count:])
            finally:
                self._tracing_args = previous

        return with_args

    def _arg_avals(self) -> tuple:
        jax, _ = _jax()
        return tuple(jax.ShapeDtypeStruct(a.shape, a.dtype) for a in self.arg_inputs)

    def params_of(self, x: Any) -> Any:
        leaves = [x[start:stop].reshape(shape) for shape, start, stop in zip(self.spec.shapes, self.spec.offsets, self.spec.offsets[1:])]
        return self.spec.unflatten_leaves(leaves)

    def _input(self, x: np.ndarray) -> np.ndarray:
        return x if self.dtype == np.float64 else x.astype(self.dtype)

    def check_gradient_path(self, x: np.ndarray) -> None:
        """Refuse values that no tangent of x reaches (``jax.lax.stop_gradient``): their
        derivatives are zero everywhere and a method would stop at x0 calling it converged."""
        if not tangent_reaches_output(self.flat_fun, self._input(x)):
            raise no_gradient_error("through jax.lax.stop_gradient (or outside JAX)")

    def _aot(self, name: Any, build: Callable[[], Callable], avals: Callable[[], tuple] | None = None, *, with_args: bool = True) -> Any:
        """The compiled function ``name``; built on its first use from ``build()`` for the
        argument shapes ``avals()`` (default: one flat x), with the args' arrays bound.
        On later calls this is one lookup."""
        bound = self._calls.get(name)
        if bound is not None:
            return bound
        taking_args = with_args and self.arg_layout is not None
        compiled = self._compiled.get(name)
        if compiled is None:
            with self.backend.solve_context(str(self.dtype)):
                arguments = avals() if avals is not None else (self._x_aval(),)
                try:
                    if taking_args:
                        compiled = compile_function(self._taking_args(build()), *self._arg_avals(), *arguments)
                    else:
                        compiled = compile_function(build(), *arguments)
                except Exception:
                    if not taking_args:
                        raise
                    self._bake_args()
                    return self._aot(name, build, avals, with_args=with_args)
            self._compiled[name] = compiled
        bound = self._calls[name] = functools.partial(compiled, *self.arg_inputs) if taking_args else compiled
        return bound

    def _bake_args(self) -> None:
        """The function cannot take its args traced: compile them in as constants from now on,
        for this solve and every later one (the shared executables are marked)."""
        self._compiled["baked args"] = True
        self._compiled = {"baked args": True}
        self._calls = {}
        self.arg_layout, self.arg_inputs = None, ()

    def _x_aval(self) -> Any:
        jax, _ = _jax()
        return jax.ShapeDtypeStruct((self.n,), self.dtype)


class JaxScalar(HessianPasses, _JaxCompiled):
    def flat_fun(self, x: Any) -> Any:
        return self.tree_fun(self.params_of(x))

    def tree_fun(self, params: Any) -> Any:
        """The function of x0's structure, checked to be a real scalar, in the solve's dtype."""
        _, jnp = _jax()
        self.traces += 1
        out = self._current_call()(params)
        require_real_number(out)
        note_coarse_output(self, out)
        out = jnp.asarray(out)
        require_scalar_shape(out.shape)
        return out.reshape(()).astype(self.dtype)

    def value(self, x: np.ndarray) -> float:
        return float(np.asarray(self._aot("value", lambda: self.flat_fun)(self._input(x))))

    def value_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        out = np.asarray(self._aot("value_and_grad", self._fused_value_and_grad)(self._input(x)))
        return float(out[0]), out[1:].astype(np.float64)

    def _fused_value_and_grad(self) -> Callable:
        """f and its gradient as one output vector [f, g]: one transfer per evaluation."""
        jax, jnp = _jax()
        value_and_grad = jax.value_and_grad(self.flat_fun)

        def fused(x):
            v, g = value_and_grad(x)
            return jnp.concatenate([v[None], g])

        return fused

    def value_grad_and_norm(self, x: np.ndarray) -> tuple[float, np.ndarray, float]:
        """f, its gradient and the gradient's norm, all from one call: what a recorded solve
        asks for. In float32 the norm is taken on the host in float64, where it cannot overflow."""
        if self.dtype != np.float64:
            f, g = self.value_and_grad(x)
            return f, g, grad_norm(g)
        out = np.asarray(self._aot("value_grad_and_norm", self._fused_value_grad_and_norm)(x))
        return float(out[0]), out[2:].copy(), float(out[1])

    def _fused_value_grad_and_norm(self) -> Callable:
        """[f, |g|, g] as one output vector."""
        jax, jnp = _jax()
        value_and_grad = jax.value_and_grad(self.flat_fun)

        def fused(x):
            v, g = value_and_grad(x)
            return jnp.concatenate([v[None], jnp.sqrt(jnp.vdot(g, g))[None], g])

        return fused

    def value_grad_and_hvp(self, x: np.ndarray) -> tuple[float, np.ndarray, Callable[[np.ndarray], np.ndarray]]:
        """Value, gradient and the linearized gradient at ``x`` from ONE compiled call.

        ``jax.linearize`` of value-and-gradient returns the primal outputs and a linear map
        whose residuals are packed into one buffer per dtype; each HVP at this point is then
        one compiled call that applies the map to those buffers, without re-running ``fun``.
        """
        jax, jnp = _jax()

        def build():
            value_and_grad = jax.value_and_grad(self.flat_fun)

            def linearized(x):
                (v, g), linear = jax.linearize(value_and_grad, x)
                leaves, treedef = jax.tree_util.tree_flatten(linear)
                layout = [(leaf.shape, leaf.dtype) for leaf in leaves]
                dtypes = sorted({str(dtype) for _, dtype in layout})
                # The linear map's structure depends only on shapes, so what one trace
                # records serves every later point.
                self._compiled["linear_structure"] = (treedef, layout, dtypes)
                buffers = tuple(jnp.concatenate([jnp.ravel(leaf) for leaf in leaves if str(leaf.dtype) == dtype]) for dtype in dtypes)
                return jnp.concatenate([v[None], g]), buffers

            return linearized

        primal, buffers = self._aot("value_grad_linearize", build)(self._input(x))
        apply = self._compiled.get("apply")
        if apply is None:
            treedef, layout, dtypes = self._compiled["linear_structure"]

            def apply_linear(*arguments):  # the buffers, then v: flat arguments call fastest
                *buffers, v = arguments
                cursors = dict.fromkeys(dtypes, 0)
                leaves = []
                for shape, dtype in layout:
                    start, size = cursors[str(dtype)], int(np.prod(shape, dtype=int))
                    leaves.append(buffers[dtypes.index(str(dtype))][start : start + size].reshape(shape))
                    cursors[str(dtype)] = start + size
                return treedef.unflatten(leaves)(v)[1]

            avals = [jax.ShapeDtypeStruct(b.shape, b.dtype) for b in buffers]
            apply = self._aot("apply", lambda: apply_linear, lambda: (*avals, self._x_aval()), with_args=False)
        primal = np.asarray(primal)

        def hvp(v: np.ndarray) -> np.ndarray:
            return np.array(apply(*buffers, self._input(v)), dtype=np.float64)

        return float(primal[0]), np.array(primal[1:], dtype=np.float64), hvp

    def hvp_at(self, x: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        return self.value_grad_and_hvp(x)[2]

    def hessian(self, x: np.ndarray) -> np.ndarray:
        jax, _ = _jax()
        compiled = self._aot("hessian", lambda: jax.hessian(self.flat_fun))
        return np.array(compiled(self._input(x)), dtype=np.float64)


class JaxBatched(JaxScalar):
    """The scalar objective mapped over the rows of a batch: ``jax.jit(jax.vmap(fun))``.

    Compiled ahead of time once per batch size (a population keeps its size, so once per
    solve).
    """

    def __call__(self, points: np.ndarray) -> np.ndarray:
        compiled = self._aot(
            ("batched", points.shape), lambda: _jax()[0].vmap(self.flat_fun), lambda: (_jax()[0].ShapeDtypeStruct(points.shape, self.dtype),)
        )
        return np.asarray(compiled(self._input(points)), dtype=np.float64)


class JaxVector(JacobianPasses, _JaxCompiled):
    def flat_fun(self, x: Any) -> Any:
        _, jnp = _jax()
        self.traces += 1
        out = self._current_call()(self.params_of(x))
        leaves = vector_leaves(out)
        return jnp.concatenate([jnp.ravel(jnp.asarray(leaf)) for leaf in leaves]).astype(self.dtype)

    @property
    def m(self) -> int:
        if "m" not in self._compiled:
            with self.backend.solve_context(str(self.dtype)):
                self._compiled["m"] = self._output_size()
        return self._compiled["m"]

    def _output_size(self) -> int:
        jax, _ = _jax()
        if self.arg_layout is None:
            return int(jax.eval_shape(self.flat_fun, self._x_aval()).shape[0])
        try:
            return int(jax.eval_shape(self._taking_args(self.flat_fun), *self._arg_avals(), self._x_aval()).shape[0])
        except Exception:
            self._bake_args()
            return self._output_size()

    def value(self, x: np.ndarray) -> np.ndarray:
        compiled = self._aot("value", lambda: self.flat_fun)
        return np.array(compiled(self._input(x)), dtype=np.float64)

    def value_and_jacobian(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        jax, _ = _jax()
        # Forward mode costs one pass per input, reverse mode one per output.
        jacobian = jax.jacfwd if self.m >= self.n else jax.jacrev

        def build():
            return jacobian(lambda x: (self.flat_fun(x), self.flat_fun(x)), has_aux=True)

        jac, value = self._aot("value_and_jacobian", build)(self._input(x))
        return np.array(value, dtype=np.float64), np.array(jac, dtype=np.float64).reshape(self.m, self.n)

    def weighted_hessian(self, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        jax, jnp = _jax()

        def build():
            return jax.hessian(lambda x, w: jnp.dot(w, self.flat_fun(x)))

        compiled = self._aot("weighted_hessian", build, lambda: (self._x_aval(), jax.ShapeDtypeStruct((self.m,), self.dtype)))
        w = np.asarray(weights, dtype=self.dtype).reshape(-1)
        return np.array(compiled(self._input(x), w), dtype=np.float64)
