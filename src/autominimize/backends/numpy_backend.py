"""NumPy backend: plain evaluation, derivatives by finite differences.

Derivatives the user supplies (``jac``, ``hess``, ``hessp``) replace these in the problem
layer; what is left is computed here with :mod:`autominimize.numdiff` (forward differences,
steps relative to |x|, one-sided away from the bounds of the solve) and every extra
evaluation is counted in ``extra_evaluations``. The points of one derivative can be evaluated
in parallel: :meth:`_NumpyCompiled.configured` gives a copy that uses the solve's bounds and
an :class:`~autominimize.numdiff.Evaluator`.
"""

from __future__ import annotations

import copy
import warnings
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .. import numdiff
from ..params import ParamSpec, leaf_to_numpy
from ..errors import attach_point
from .base import Backend, as_flat_float64
from .common import ObjectiveOutputError, coarse_type, flatten_output, require_real_number, require_scalar_shape, warn_coarse_output

if TYPE_CHECKING:
    from .native_functions import NativeFunctions


_FLOAT64 = np.dtype(np.float64)
_EPS = float(np.finfo(np.float64).eps)


class NumpyBackend(Backend):
    name = "numpy"
    extra = ""

    def available(self) -> bool:
        return True

    def compile_scalar(self, call: Callable, spec: ParamSpec, dtype: str) -> "NumpyScalar":
        return NumpyScalar(call, spec, dtype)

    def compile_vector(self, call: Callable, spec: ParamSpec, dtype: str) -> "NumpyVector":
        return NumpyVector(call, spec, dtype)

    def compile_batched(self, call: Callable, spec: ParamSpec, dtype: str) -> "NumpyBatched":
        """The user declares ``call`` vectorized: NumPy cannot map a function over rows."""
        return NumpyBatched(call, spec, dtype)

    def constant_like(self, value: np.ndarray, like: Any) -> np.ndarray:
        dtype = getattr(like, "dtype", np.float64)
        return np.asarray(value, dtype=dtype if np.issubdtype(np.dtype(dtype), np.floating) else np.float64)

    def squared_sum(self, leaf: Any) -> Any:
        return np.sum(np.multiply(leaf, leaf))

    def ravel_concatenated(self, leaves: list) -> np.ndarray:
        return np.concatenate([np.ravel(np.asarray(v)) for v in leaves])

    def finite(self, leaf: Any) -> np.ndarray:
        return np.nan_to_num(leaf)

    def masked(self, values: Any, mask: Any) -> np.ndarray:
        return np.where(mask, values, 0.0)

    def native_functions(self, call: Callable, spec: ParamSpec, dtype: str, residual: bool, device: Any = None) -> NativeFunctions:
        from .native_host import host_functions

        return host_functions(self, call, spec, dtype, residual)


class _FlatFunction:
    """The user's function of the flat vector: what is sent to worker processes."""

    def __init__(self, call: Callable, spec: ParamSpec, dtype: np.dtype, scalar: bool) -> None:
        self.call = call
        self.spec = spec
        self.dtype = dtype
        self.scalar = scalar
        #: the coarsest floating type of fun's values when coarser than x's (float32 values of
        #: a float64 solve), which sets the finite-difference steps; None: x's type
        self.coarse_output: np.dtype | None = None
        self.warned = False

    def __call__(self, x: np.ndarray) -> Any:
        # a copy of its own: the user's function may write into its input, which the method
        # (or a finite-difference step) must not read back
        x = np.array(x, dtype=self.dtype).reshape(-1)
        return self.read(self.call(self.spec.views(x)))

    def read(self, out: Any) -> Any:
        """What the function returned, as the float (scalar) or flat float64 vector it gives."""
        if not self.scalar:
            out = flatten_output(out, dtype=None)
            if out.dtype is not _FLOAT64:
                self._note_type(out.dtype)
            return out.astype(np.float64)
        require_real_number(out)
        array = leaf_to_numpy(out)
        require_scalar_shape(array.shape)
        if array.dtype is not _FLOAT64:
            self._note_type(array.dtype, type(out).__name__ if isinstance(out, (int, bool)) else array.dtype.name)
        return float(array.reshape(()))

    def _note_type(self, dtype: np.dtype, name: str | None = None) -> None:
        if dtype.kind == "f" and dtype.itemsize < (self.coarse_output or self.dtype).itemsize:
            self.coarse_output = dtype
        coarse = coarse_type(name or dtype.name)
        if coarse is not None and not self.warned:
            self.warned = True  # the finite-difference warning would say it again
            warn_coarse_output(coarse, stacklevel=4)

    def resolution(self) -> float:
        """The relative resolution (eps) of the coarser of x's type and fun's values."""
        return float(np.finfo(self.coarse_output or self.dtype).eps)


class _NumpyCompiled:
    """Shared plumbing: the flat function, a one-slot value cache and the numdiff settings.

    The value at the last point is kept so that a derivative asked for at a point whose value
    is known (SLSQP, least squares) does not evaluate the function there again.
    """

    scalar = True

    def __init__(self, call: Callable, spec: ParamSpec, dtype: str):
        self.flat = _FlatFunction(call, spec, np.dtype(dtype), self.scalar)
        self.spec = spec
        self.n = spec.size
        self.extra_evaluations = 0
        self.bounds: tuple[np.ndarray, np.ndarray] | None = None
        self.evaluator: numdiff.Evaluator | None = None
        self._last: tuple[bytes, Any] | None = None
        #: what fun returned at a point before the solve (choosing the backend evaluated it),
        #: read in place of the first evaluation there
        self._first: tuple[bytes, Any] | None = None

    def configured(
        self, bounds: tuple[np.ndarray, np.ndarray] | None = None, evaluator: numdiff.Evaluator | None = None, first: tuple | None = None
    ) -> "_NumpyCompiled":
        """A copy whose finite differences stay within ``bounds`` and run on ``evaluator``;
        ``first``: ``(x, out)``, what fun returned at x already (a float64 solve reads it once
        in place of evaluating x again)."""
        clone = copy.copy(self)
        clone.bounds, clone.evaluator, clone._last = bounds, evaluator, None
        clone._first = (as_flat_float64(first[0]).tobytes(), first[1]) if first is not None and self.flat.dtype == _FLOAT64 else None
        return clone

    def value(self, x: np.ndarray) -> Any:
        x = as_flat_float64(x)
        if self._first is not None:
            return self._read_first(x)
        out = self.flat(x)
        self._last = (x.tobytes(), out)
        return out

    def _read_first(self, x: np.ndarray) -> Any:
        key, raw = self._first
        self._first = None
        out = self.flat.read(raw) if key == x.tobytes() else self.flat(x)
        self._last = (x.tobytes(), out)
        return out

    def _known_value(self, x: np.ndarray) -> Any:
        if self._last is not None and self._last[0] == x.tobytes():
            return self._last[1]
        return self.value(x)

    def _rel_step(self, order: float) -> float | None:
        """The relative step ``eps**order`` for the resolution of x and of fun's values, as
        scipy chooses its steps for float32 (``_numdiff._eps_for_method``); None: float64's."""
        eps = self.flat.resolution()
        if eps == _EPS:
            return None
        if self.flat.coarse_output is not None and not self.flat.warned:
            self.flat.warned = True
            warnings.warn(
                f"fun returned {self.flat.coarse_output} values, whose resolution (~{eps:.0e} relative) is coarser than "
                f"float64 finite-difference steps: the steps are scaled to it ({eps**0.5:.0e} relative for the gradient), "
                "so the gradient is accurate to about that at best. Return float64 values, give jac, or use a framework "
                "backend ('jax', 'torch', 'tensorflow') for exact gradients.",
                UserWarning,
                stacklevel=2,
            )
        return eps**order

    def _differences(self, fun: Callable, x: np.ndarray, f0: Any) -> np.ndarray:
        try:
            rel_step = self._rel_step(1 / 2)
            jac, evaluations = numdiff.approx_jacobian(
                fun, x, method="forward", rel_step=rel_step, bounds=self.bounds, f0=f0, evaluator=self.evaluator
            )
        except Exception as exc:
            if getattr(exc, "autominimize_point", None) is not None:
                attach_point(exc, self.spec, exc.autominimize_point, "a finite-difference evaluation")
            raise
        self.extra_evaluations += evaluations
        return jac


class NumpyScalar(_NumpyCompiled):
    #: an exact gradient of the flat vector (the user's jac) whose differences give the
    #: curvature, or None: central differences of central-difference gradients
    _exact_gradient: Callable[[np.ndarray], np.ndarray] | None = None

    def with_gradient(self, gradient: Callable[[np.ndarray], np.ndarray]) -> "NumpyScalar":
        """A copy whose curvature comes from central differences of ``gradient``: with the
        user's jac, trust-constr took 483 evaluations of values where scipy's 14 differences
        of the gradient sufficed, and stopped short of scipy's status."""
        clone = copy.copy(self)
        clone._exact_gradient = gradient
        return clone

    def value_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        x = as_flat_float64(x)
        f0 = self._known_value(x)
        try:
            return f0, self._differences(self.flat, x, f0)
        except BaseException as exc:  # a Ctrl-C too: the value at x is kept as evaluated
            exc.autominimize_value = (x, f0)  # the value at x is known: see problem.py
            raise

    def gradient(self, x: np.ndarray) -> np.ndarray:
        return self.value_and_grad(x)[1]

    def _accurate_gradient(self, x: np.ndarray) -> np.ndarray:
        """A central-difference gradient (error ~eps**(2/3)), to be differenced once more."""
        jac, evaluations = numdiff.approx_jacobian(
            self.flat, x, method="central", rel_step=self._rel_step(1 / 3), bounds=self.bounds, evaluator=self.evaluator
        )
        self.extra_evaluations += evaluations
        return jac

    def hvp_at(self, x: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        x = as_flat_float64(x)
        gradient = self._exact_gradient
        if gradient is not None:
            exact = _EXACT_GRADIENT_STEP * max(1.0, float(np.linalg.norm(x)))
            return _along(x, exact, lambda step, h: (gradient(x + step) - gradient(x - step)) / (2 * h))
        g0 = self._accurate_gradient(x)
        scale = (self._rel_step(1 / 4) or _SECOND_ORDER_STEP) * max(1.0, float(np.linalg.norm(x)))
        return _along(x, scale, lambda step, h: (self._accurate_gradient(x + step) - g0) / h)

    def hessian(self, x: np.ndarray) -> np.ndarray:
        if self._exact_gradient is not None:
            return _symmetric_jacobian(self._exact_gradient, as_flat_float64(x), self.bounds, _EXACT_GRADIENT_STEP)
        return _symmetric_jacobian(self._accurate_gradient, as_flat_float64(x), self.bounds, self._rel_step(1 / 4))


#: the step for differencing a central-difference gradient again: eps**(1/4) balances its
#: O(eps**(2/3) / h) rounding error against the O(h**2) truncation of a central difference
_SECOND_ORDER_STEP = np.finfo(np.float64).eps ** 0.25
#: the step for differencing an exact gradient (the user's own) once: eps**(1/3) for a central difference
_EXACT_GRADIENT_STEP = np.finfo(np.float64).eps ** (1 / 3)


def _along(x: np.ndarray, scale: float, difference: Callable[[np.ndarray, float], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """``hvp(v)``: ``difference(h * v, h)``, a difference of gradients along v with the step
    ``h = scale / |v|`` (zeros for v = 0)."""

    def hvp(v: np.ndarray) -> np.ndarray:
        v = as_flat_float64(v)
        norm = float(np.linalg.norm(v))
        if norm == 0.0:
            return np.zeros_like(x)
        h = scale / norm
        return difference(h * v, h)

    return hvp


def _symmetric_jacobian(gradient: Callable[[np.ndarray], np.ndarray], x: np.ndarray, bounds, rel_step: float | None = None) -> np.ndarray:
    hess, _ = numdiff.approx_jacobian(gradient, x, method="central", rel_step=rel_step or _SECOND_ORDER_STEP, bounds=bounds)
    return 0.5 * (hess + hess.T)


class NumpyVector(_NumpyCompiled):
    scalar = False

    def value_and_jacobian(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = as_flat_float64(x)
        c0 = self._known_value(x)
        jac = self._differences(self.flat, x, c0)
        return c0, jac.reshape(c0.size, self.n)

    def weighted_hessian(self, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        w = as_flat_float64(weights)

        def weighted_gradient(z: np.ndarray) -> np.ndarray:
            jac, evaluations = numdiff.approx_jacobian(
                self.flat, z, method="central", rel_step=self._rel_step(1 / 3), bounds=self.bounds, evaluator=self.evaluator
            )
            self.extra_evaluations += evaluations
            return w @ jac.reshape(w.size, self.n)

        return _symmetric_jacobian(weighted_gradient, as_flat_float64(x), self.bounds, self._rel_step(1 / 4))


class NumpyBatched:
    """A function the user wrote vectorized: every leaf gets a leading batch axis of size S,
    ``(S, *leaf.shape)``, and it returns the S values."""

    def __init__(self, call: Callable, spec: ParamSpec, dtype: str):
        self.call = call
        self.spec = spec
        self.dtype = np.dtype(dtype)
        self.traces = 0

    def __call__(self, points: np.ndarray) -> np.ndarray:
        points = np.array(points, dtype=self.dtype)  # its own copy: fun may write into it
        count = points.shape[0]
        leaves = [
            points[:, start:stop].reshape((count,) + shape) for shape, start, stop in zip(self.spec.shapes, self.spec.offsets, self.spec.offsets[1:])
        ]
        self.traces += 1
        out = np.asarray(leaf_to_numpy(self.call(self.spec.unflatten_leaves(leaves))), dtype=np.float64)
        if out.size != count:
            raise ObjectiveOutputError(
                f"a vectorized fun must return one value per point: given {count} points (a "
                f"leading axis on every leaf) it returned shape {out.shape}."
            )
        return out.reshape(count)


class UserValueAndGrad(NumpyScalar):
    """A function that returns ``(value, gradient)`` itself (scipy's ``jac=True``).

    ``call_flat(x)`` returns the user's value as a Python float (see :meth:`scalar`) and
    gradient as a flat float64 vector; it is this object's ``value_and_grad`` itself, a call
    fewer per evaluation (x is a flat float64 vector, as the problem layer hands over).
    ``value``, when given, is the user's plain function of the flat vector, used where only a
    value is needed (optimagic's ``fun`` next to ``fun_and_jac``); ``with_norm``, when given,
    is ``call_flat`` that returns the gradient's norm too (``value_grad_and_norm``, which a
    solve with a journal calls). Second-order information comes from finite differences of
    the gradient.
    """

    def __init__(
        self,
        call_flat: Callable[[np.ndarray], tuple[float, np.ndarray]],
        spec: ParamSpec,
        value: Callable[[np.ndarray], Any] | None = None,
        with_norm: Callable[[np.ndarray], tuple[float, np.ndarray, float]] | None = None,
    ):
        super().__init__(call_flat, spec, "float64")
        self.call = call_flat
        self.value_and_grad = call_flat  # type: ignore[method-assign]
        self.value_call = value
        if with_norm is not None:
            self.value_grad_and_norm = with_norm

    @staticmethod
    def scalar(value: Any) -> float:
        """The user's value as a Python float, with a clear error if it is not one number."""
        return _scalar(value)

    def value(self, x: np.ndarray) -> float:
        if self.value_call is not None:
            return _scalar(self.value_call(as_flat_float64(x)))
        return self.value_and_grad(x)[0]

    def gradient(self, x: np.ndarray) -> np.ndarray:
        self.extra_evaluations += 1
        return self.value_and_grad(x)[1]

    def hvp_at(self, x: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """Central differences of the user's own gradient along v (error ~eps**(2/3))."""
        x = as_flat_float64(x)
        scale = _EXACT_GRADIENT_STEP * max(1.0, float(np.linalg.norm(x)))
        return _along(x, scale, lambda step, h: (self.gradient(x + step) - self.gradient(x - step)) / (2 * h))

    def hessian(self, x: np.ndarray) -> np.ndarray:
        return _symmetric_jacobian(self.gradient, as_flat_float64(x), self.bounds, _EXACT_GRADIENT_STEP)


def _scalar(value: Any) -> float:
    if isinstance(value, float):  # a Python or NumPy float64: 0.1 µs, where the general path takes 1.5
        return float(value)
    value = leaf_to_numpy(value)
    require_scalar_shape(value.shape)
    return float(value.reshape(()))
