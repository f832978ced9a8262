"""``am.least_squares``, ``am.curve_fit`` and residual functions in ``am.minimize``.

A residual function returns any structure of arrays; its leaves are raveled and concatenated
into one residual vector r (m values). The least-squares solvers get r and its Jacobian J,
computed by the backend (forward mode when m >= n, reverse mode otherwise); the scalar
methods of ``am.minimize`` get ``f = 0.5 * r @ r`` (scipy's ``cost``), its gradient
``J.T @ r`` as one reverse pass, and Gauss-Newton products ``J.T @ J @ v``.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from typing import Any, Callable

import numpy as np
import optree
import scipy.optimize as so

from . import numdiff
from ._setup import compile_functions, prepare
from .backends.common import flatten_output
from .drivers.blas_threads import single_blas_thread
from .drivers.fixed_variables import FixedVariables
from .params import ParamSpec, leaf_kind, leaf_to_numpy
from .errors import attach_point
from .problem import check_error_handling
from .user_derivatives import flatten_jacobian

__all__ = ["least_squares", "curve_fit", "residuals", "Residuals", "LEAST_SQUARES_METHODS"]

LEAST_SQUARES_METHODS = ("trf", "dogbox", "lm")
_SCIPY_SCHEMES = ("2-point", "3-point", "cs")


# -- marking a residual function ---------------------------------------------------------
class Residuals:
    """A residual function, optionally with its Jacobian; made by :func:`residuals`.

    Calling it calls the wrapped function, so it can be used anywhere the function can.
    """

    def __init__(self, fun: Callable, jac: Callable | None = None) -> None:
        if not callable(fun):
            raise TypeError(f"residuals() needs a callable; got {type(fun).__name__}.")
        if jac is not None and not callable(jac):
            raise TypeError(f"residuals(jac=...) must be a callable returning the residual Jacobian; got {type(jac).__name__}.")
        self.fun = fun
        self.jac = jac
        functools.update_wrapper(self, fun)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fun(*args, **kwargs)

    def __repr__(self) -> str:
        return f"residuals({getattr(self.fun, '__name__', self.fun)!r}{', jac=...' if self.jac else ''})"


def residuals(fun: Callable | None = None, *, jac: Callable | None = None) -> Any:
    """Mark ``fun`` as a residual function: ``am.minimize`` then minimizes ``0.5 * sum(r**2)``.

    Parameters
    ----------
    fun : callable
        Returns the residuals: an array or any structure of arrays (raveled and concatenated).
    jac : callable, optional
        The residual Jacobian, called like ``fun``: an ``(m, n)`` array over the flat
        residuals and x0's flat parameters, or x0's structure with leaves of shape
        ``(m, *leaf.shape)``. It replaces autodiff for every method (the gradient for the
        scalar methods is then ``J.T @ r``).

    Returns
    -------
    Residuals
        A callable wrapper (or, used as ``@residuals(jac=...)``, a decorator).

    Examples
    --------
    >>> import numpy as np
    >>> import autominimize as am
    >>> @am.residuals
    ... def r(p):
    ...     return {"a": p["x"] - 1.0, "b": 10 * (p["y"] - p["x"] ** 2)}
    >>> res = am.minimize(r, {"x": 0.0, "y": 0.0}, method="BFGS", backend="numpy")
    >>> round(res.x["x"], 4), round(res.x["y"], 4)
    (1.0, 1.0)
    """
    if fun is None:
        return lambda f: Residuals(f, jac)
    if isinstance(fun, Residuals) and jac is None:
        return fun
    return Residuals(getattr(fun, "fun", fun) if isinstance(fun, Residuals) else fun, jac)


def is_residual_function(fun: Any) -> bool:
    return isinstance(fun, Residuals)


# -- constants in the caller's array type ---------------------------------------------
def constant_like(value: np.ndarray, like: Any) -> Any:
    """``value`` as an array of ``like``'s framework, dtype and device."""
    kind = leaf_kind(like)
    if kind == "torch":
        import torch

        return torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if kind == "jax":
        import jax.numpy as jnp

        return jnp.asarray(value, dtype=like.dtype)
    if kind == "tf":
        import tensorflow as tf

        return tf.constant(value, dtype=like.dtype)
    dtype = getattr(like, "dtype", np.float64)
    return np.asarray(value, dtype=dtype if np.issubdtype(np.dtype(dtype), np.floating) else np.float64)


def _sum_of_squares(out: Any) -> Any:
    """0.5 * sum of squares over every leaf, with the framework's own reduction."""
    total = None
    for leaf in optree.tree_leaves(out):
        kind = leaf_kind(leaf)
        if kind == "torch":
            term = (leaf * leaf).sum()
        elif kind == "jax":
            import jax.numpy as jnp

            term = jnp.sum(leaf * leaf)
        elif kind == "tf":
            import tensorflow as tf

            term = tf.reduce_sum(leaf * leaf)
        else:
            term = np.sum(np.multiply(leaf, leaf))
        total = term if total is None else total + term
    if total is None:
        raise ValueError("the residual function returned no array.")
    return 0.5 * total


# -- flat residual problem --------------------------------------------------------------
class ResidualProblem:
    """The flat residual function scipy sees: one-slot caches, honest counts, error context.

    ``nfev`` counts residual evaluations, finite-difference ones included; ``njev``
    Jacobians. ``jacobian(x)`` is one of: the backend's (autodiff, or numdiff on NumPy), the
    user's (``jac`` or ``fun_and_jac``), or finite differences of the residuals (a scheme).

    With ``error_handling='continue'``, residuals that raise or are not finite at a trial
    point become ``+inf`` (``trf`` and ``dogbox`` then reject the step and shrink their trust
    region), with a zero Jacobian; ``failures`` counts such points.
    """

    def __init__(
        self,
        functions: Any,
        spec: ParamSpec,
        *,
        user_jacobian: Callable[[np.ndarray], Any] | None = None,
        user_fun_and_jac: Callable[[np.ndarray], tuple[Any, Any]] | None = None,
        scheme: str | None = None,
        rel_step: Any = None,
        bounds: tuple[np.ndarray, np.ndarray] | None = None,
        evaluator: numdiff.Evaluator | None = None,
        error_handling: str = "raise",
    ) -> None:
        self.functions = functions
        self.error_handling = check_error_handling(error_handling)
        self.failures = 0
        self.spec = spec
        self.user_jacobian = user_jacobian
        self.user_fun_and_jac = user_fun_and_jac
        self.scheme = scheme
        self.rel_step = rel_step
        self.bounds = bounds
        self.evaluator = evaluator
        self.nfev = self.njev = 0
        self._r: tuple[bytes, np.ndarray] | None = None
        self._jac: tuple[bytes, np.ndarray] | None = None

    def _guard(self, x: np.ndarray, what: str, thunk: Callable[[], Any]) -> Any:
        before = getattr(self.functions, "extra_evaluations", 0)
        try:
            return thunk()
        except Exception as exc:
            attach_point(exc, self.spec, getattr(exc, "autominimize_point", x), what)
            raise
        finally:
            self.nfev += getattr(self.functions, "extra_evaluations", 0) - before

    def value(self, x: Any) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
        key = x.tobytes()
        if self._r is not None and self._r[0] == key:
            return self._r[1]
        try:
            r = self._residuals(x, key)
        except Exception:
            if self.error_handling == "raise" or self._r is None:  # x0 must evaluate
                raise
            r = None
        self.nfev += 1
        if self.error_handling == "continue" and self._r is not None:
            if r is None or not np.isfinite(r).all() or not self._jacobian_formed(x, key, r):
                return self._fail(x, key)
        self._r = (key, r)
        return r

    def start(self, x0: np.ndarray) -> None:
        """Evaluate the residuals at x0, so that a failure shows before the method starts;
        under 'continue' the Jacobian too, which must be finite there: there is no earlier
        point to back off to."""
        r = self.value(x0)
        if self.error_handling != "continue":
            return
        if not np.isfinite(r).all():
            raise ValueError("the residuals are not finite at x0; error_handling='continue' needs finite residuals at x0 to back off to.")
        jac = self.jacobian(x0)
        if not np.isfinite(jac).all():
            row, column = (int(i) for i in np.argwhere(~np.isfinite(jac))[0])
            raise ValueError(
                f"the Jacobian of the residuals is not finite at x0 (residual {row} with respect to "
                f"{self.spec.element_name(column)}: its finite-difference points fail on both sides, or "
                "jac returned it); error_handling='continue' needs a finite Jacobian at x0 to back off to. "
                "Start from a point where the residuals are differentiable."
            )

    def _jacobian_formed(self, x: np.ndarray, key: bytes, r: np.ndarray) -> bool:
        """Under 'continue', whether the Jacobian at a trial point can be formed (finite): it
        is computed with the residuals, so that a point where it cannot be is rejected as a
        failed value is, before the method accepts it."""
        self._r = (key, r)
        try:
            return bool(np.isfinite(self.jacobian(x)).all())
        except Exception:
            return False

    def _fail(self, x: np.ndarray, key: bytes) -> np.ndarray:
        """Make x a failed point: residuals +inf, Jacobian zero."""
        self.failures += 1
        r = np.full(self._r[1].size, np.inf)
        self._r, self._jac = (key, r), (key, np.zeros((r.size, x.size)))
        return r

    def _residuals(self, x: np.ndarray, key: bytes) -> np.ndarray:
        if self.user_fun_and_jac is None:
            return self._guard(x, "the residuals", lambda: self.functions.value(x))
        r, jac = self._guard(x, "fun_and_jac", lambda: self.user_fun_and_jac(x))
        r = flatten_output(r, "the residual function's output")
        self._jac = (key, flatten_jacobian(jac, self.spec, r.size, "fun_and_jac"))
        self.njev += 1
        return r

    def value_uncached(self, x: np.ndarray) -> np.ndarray:
        self.nfev += 1
        return self._guard(x, "the residuals", lambda: self.functions.value(x))

    def jacobian(self, x: Any) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
        key = x.tobytes()
        if self._jac is not None and self._jac[0] == key:
            return self._jac[1]
        if self.user_fun_and_jac is not None:
            self._r = None
            self.value(x)
            return self._jac[1]
        if self.user_jacobian is not None:
            m = self.value(x).size
            jac = flatten_jacobian(self._guard(x, "the user-supplied jac", lambda: self.user_jacobian(x)), self.spec, m)
        elif self.scheme is not None:
            r0 = self.value(x)

            # the plain flat function where the backend has one: it can be sent to processes
            evaluate = getattr(self.functions, "flat", None) or self.functions.value
            jac, count = self._guard(
                x, "the residuals", lambda: numdiff.approx_jacobian(
                    evaluate, x, method=self.scheme, rel_step=self.rel_step, bounds=self.bounds, f0=r0, evaluator=self.evaluator
                )
            )
            self.nfev += count
            jac = jac.reshape(r0.size, x.size)
        else:
            r, jac = self._guard(x, "the Jacobian", lambda: self.functions.value_and_jacobian(x))
            if self._r is None or self._r[0] != key:
                self._r = (key, r)
                self.nfev += 1
        self.njev += 1
        self._jac = (key, jac)
        return jac


class GaussNewtonFunctions:
    """A residual function seen as the scalar ``0.5 * r @ r`` by ``am.minimize``'s methods.

    Value and gradient come from ``scalar`` (the backend's compiled sum of squares: the
    gradient is one reverse pass, ``J.T @ r``), or from the residual problem when the user
    gave the residual Jacobian. Hessian-vector products are Gauss-Newton's ``J.T @ (J @ v)``
    with J computed once per point; ``hessian`` is ``J.T @ J``.
    """

    def __init__(self, scalar: Any, problem: ResidualProblem) -> None:
        self.scalar = scalar
        self.problem = problem
        self.use_residual_gradient = problem.user_jacobian is not None or problem.user_fun_and_jac is not None

    @property
    def extra_evaluations(self) -> int:
        # every residual evaluation the Jacobian side made counts as an extra evaluation
        scalar_extra = getattr(self.scalar, "extra_evaluations", 0) if self.scalar is not None else 0
        return scalar_extra + self.problem.nfev

    def value(self, x: np.ndarray) -> float:
        if self.use_residual_gradient:
            r = self.problem.value(x)
            self.problem.nfev -= 1  # the objective counts this evaluation itself
            return 0.5 * float(r @ r)
        return self.scalar.value(x)

    def value_without_gradient(self, x: np.ndarray) -> float:
        if self.use_residual_gradient:
            return self.value(x)
        return getattr(self.scalar, "value_without_gradient", self.scalar.value)(x)

    def value_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        if self.use_residual_gradient:
            f = self.value(x)
            return f, self.problem.jacobian(x).T @ self.problem.value(x)
        return self.scalar.value_and_grad(x)

    def hvp_at(self, x: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        jac = self.problem.jacobian(x)
        return lambda v: jac.T @ (jac @ np.asarray(v, dtype=np.float64))

    def hessian(self, x: np.ndarray) -> np.ndarray:
        jac = self.problem.jacobian(x)
        return jac.T @ jac


# -- shared set-up ---------------------------------------------------------------------
def _validate_common(fun: Any, fun_and_jac: Any, workers: Any, executor: Any) -> None:
    if fun is None and fun_and_jac is None:
        raise TypeError("give fun (the residual function) or fun_and_jac.")
    if fun is not None and not callable(fun):
        raise TypeError(f"fun must be callable; got {type(fun).__name__}.")
    if fun_and_jac is not None and not callable(fun_and_jac):
        raise TypeError(f"fun_and_jac must be a callable returning (residuals, jacobian); got {type(fun_and_jac).__name__}.")


def numdiff_evaluator(backend_name: str, numerical: bool, workers: Any, executor: Any, error_handling: str = "raise") -> numdiff.Evaluator:
    if (workers is not None or executor is not None) and not numerical:
        raise ValueError(
            f"workers= and executor= parallelize autominimize's finite differences, but none are "
            f"taken here (the {backend_name} backend computes exact derivatives, or jac is given). "
            "Leave them unset, or use backend='numpy' without jac."
        )
    return numdiff.Evaluator(workers, executor, tolerate_failures=error_handling == "continue")


def configure_numdiff(functions: Any, bounds: Any, evaluator: numdiff.Evaluator) -> Any:
    """Give the NumPy backend's finite differences the solve's bounds and evaluator."""
    configured = getattr(functions, "configured", None)
    return configured(bounds, evaluator) if configured is not None else functions


def _build_problem(
    fun: Callable | None,
    x0: Any,
    *,
    jac: Any,
    fun_and_jac: Callable | None,
    args: tuple,
    kwargs: dict | None,
    bounds: Any,
    backend: str | None,
    precision: str | None,
    unpack: str,
    diff_step: Any,
    workers: Any,
    executor: Any,
    torch_device: Any = None,
    error_handling: str = "raise",
):
    """Normalize everything; return what a least-squares solve needs (evaluator still open)."""
    if not isinstance(args, tuple):
        args = (args,)
    if isinstance(fun, Residuals):
        if fun.jac is not None:
            if jac is not None and not isinstance(jac, str):
                raise ValueError("the residual function carries its Jacobian (residuals(jac=...)); do not also pass jac.")
            jac = fun.jac
        fun = fun.fun
    if kwargs:
        fun = functools.partial(fun, **kwargs) if fun is not None else None
        fun_and_jac = functools.partial(fun_and_jac, **kwargs) if fun_and_jac is not None else None
    setup = prepare(fun if fun is not None else fun_and_jac, x0, args, unpack=unpack, precision=precision, device=torch_device)
    x0, spec, x0_flat, dtype, call = setup.x0, setup.spec, setup.x0_flat, setup.dtype, setup.call
    if fun is None:  # only fun_and_jac: its first output is the residuals
        call_residuals = lambda params: call(params)[0]  # noqa: E731
    else:
        call_residuals = call
    if jac is not None and not (callable(jac) or jac in _SCIPY_SCHEMES or jac in numdiff.METHODS):
        raise ValueError(
            f"jac={jac!r} is not accepted; use None (autodiff), a callable returning the residual "
            f"Jacobian, or a difference scheme: {_SCIPY_SCHEMES[:2] + numdiff.METHODS}."
        )
    if fun_and_jac is not None and callable(jac):
        raise ValueError("give the residual Jacobian once: jac= or fun_and_jac=, not both.")
    user_given = callable(jac) or fun_and_jac is not None
    backend_name = setup.choose_backend(backend, from_leaves=user_given and backend is None, call=call_residuals)
    backend_obj = setup.backend_obj
    flat_bounds = setup.normalize_bounds(_scipy_least_squares_bounds(bounds, spec.size))
    x0_flat = setup.clip_start(x0_flat, stacklevel=3)
    scheme = None
    if isinstance(jac, str):
        if jac == "cs":
            raise ValueError("jac='cs' (complex step) is not supported; use None (autodiff), '2-point' or '3-point'.")
        scheme = numdiff.canonical_method(jac)
    numerical = scheme is not None or (backend_name == "numpy" and not user_given)
    evaluator = numdiff_evaluator(backend_name, numerical, workers, executor, check_error_handling(error_handling))

    compile_key = fun if fun is not None else fun_and_jac
    functions = setup.compile("vector", compile_key, call_residuals)
    functions = configure_numdiff(functions, flat_bounds, evaluator)
    problem = ResidualProblem(
        functions,
        spec,
        user_jacobian=setup.flat_call(jac) if callable(jac) else None,
        user_fun_and_jac=setup.flat_call(fun_and_jac) if fun_and_jac is not None else None,
        scheme=scheme,
        rel_step=diff_step,
        bounds=flat_bounds,
        evaluator=evaluator,
        error_handling=error_handling,
    )
    return problem, spec, x0_flat, flat_bounds, backend_obj, backend_name, dtype, evaluator


def _scipy_least_squares_bounds(bounds: Any, n: int) -> Any:
    """scipy.optimize.least_squares reads a 2-tuple as ``(lb, ub)``, each a number or n numbers."""
    if not (isinstance(bounds, tuple) and len(bounds) == 2):
        return bounds

    def flat_limit(value: Any) -> bool:
        if value is None or np.ndim(value) == 0:
            return True
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            return False
        return array.ndim == 1 and array.size == n

    if all(flat_limit(part) for part in bounds) and any(np.ndim(part) == 1 for part in bounds):
        low, high = (np.full(n, -np.inf if i == 0 else np.inf) if part is None else part for i, part in enumerate(bounds))
        return so.Bounds(low, high)
    return bounds


def _flat_x_scale(x_scale: Any, spec: ParamSpec) -> Any:
    if x_scale is None or isinstance(x_scale, str) or np.ndim(x_scale) == 0 and not isinstance(x_scale, (dict, list, tuple)):
        return x_scale
    if isinstance(x_scale, np.ndarray) and x_scale.size == spec.size:
        return x_scale.astype(np.float64).reshape(-1)
    return spec.flatten(x_scale, "x_scale")


def least_squares(
    fun: Callable | None,
    x0: Any,
    jac: Callable | str | None = None,
    bounds: Any = None,
    method: str = "trf",
    ftol: float | None = 1e-8,
    xtol: float | None = 1e-8,
    gtol: float | None = 1e-8,
    x_scale: Any = None,
    loss: str | Callable = "linear",
    f_scale: float = 1.0,
    diff_step: Any = None,
    tr_solver: str | None = None,
    tr_options: dict | None = None,
    jac_sparsity: Any = None,
    max_nfev: int | None = None,
    verbose: int = 0,
    args: tuple = (),
    kwargs: dict | None = None,
    callback: Callable | None = None,
    *,
    fun_and_jac: Callable | None = None,
    backend: str | None = None,
    precision: str | None = None,
    unpack: str = "auto",
    workers: int | None = None,
    executor: Any = None,
    torch_device: Any = None,
    error_handling: str = "raise",
) -> so.OptimizeResult:
    """Nonlinear least squares with the residual Jacobian from the user's framework.

    ``scipy.optimize.least_squares`` with its arguments and meaning, where the residuals may
    be written in NumPy, JAX, PyTorch or TensorFlow, x0 may be any parameter structure and
    the residual output any structure of arrays. The Jacobian is computed by the backend:
    forward mode when there are at least as many residuals as parameters, reverse mode
    otherwise; finite differences (:mod:`autominimize.numdiff`) on the NumPy backend.

    Parameters
    ----------
    fun : callable
        ``fun(params, *args, **kwargs)`` returns the residuals (an array, a scalar, or any
        structure of them, raveled and concatenated). May be None when ``fun_and_jac`` is given.
    x0 : array, scalar, tensor or nested dict/list/tuple/namedtuple of those
        The starting point; ``res.x`` comes back in this structure and these array types.
    jac : callable, '2-point', '3-point', 'forward', 'backward', 'central' or None
        None (default): the backend's Jacobian. A callable takes the parameters like ``fun``
        and returns the ``(m, n)`` Jacobian, or x0's structure with ``(m, *leaf.shape)``
        leaves. A scheme: finite differences, bound-aware, with ``diff_step`` as the relative
        step and evaluated in parallel with ``workers`` / ``executor``.
    bounds : optional
        Any form ``am.minimize`` accepts; a 2-tuple of numbers or flat vectors is read as
        scipy's ``(lb, ub)``, as ``scipy.optimize.least_squares`` does. Not with 'lm'.
    method : {'trf', 'dogbox', 'lm'}
        scipy's methods.
    ftol, xtol, gtol, x_scale, loss, f_scale, diff_step, tr_solver, tr_options, max_nfev, verbose, args, kwargs, callback
        As in scipy (``x_scale`` may also mirror x0's structure; the callback receives an
        ``OptimizeResult`` or ``x`` with x in x0's structure).
    jac_sparsity : None, bool or (m, n) pattern, optional
        With the backend's Jacobian ('trf', 'dogbox'): a pattern (array or ``scipy.sparse``)
        or True (the pattern read from a JAX program, probed on PyTorch/TensorFlow) gives a
        sparse Jacobian from one compressed pass per colour, solved with ``tr_solver='lsmr'``;
        None (default) does so on JAX from 1000 parameters when at most 10% of J can be
        nonzero (``res.sparsity`` then says so); False keeps J dense. With
        ``jac='2-point'`` or ``'3-point'``: scipy's sparse finite differences.
    fun_and_jac : callable, optional
        Returns ``(residuals, jacobian)`` in one call (optimagic's argument).
    backend, precision, unpack, torch_device
        As in ``am.minimize``.
    error_handling : {'raise', 'continue'}
        'continue': residuals that raise or are not finite at a trial point count as
        ``+inf``, so ``trf`` and ``dogbox`` reject the step and shrink their trust region
        (MINPACK's 'lm' shortens its step too); ``res.nfail`` counts such points. x0 must
        evaluate.
    workers : int, optional
        Evaluate finite differences on this many local processes.
    executor : concurrent.futures.Executor, optional
        ... or on this executor (``ProcessPoolExecutor``, a dask Client's ``get_executor()``).

    Returns
    -------
    scipy.optimize.OptimizeResult
        scipy's fields, with ``x`` in x0's structure; ``fun`` the flat residual vector (m,);
        ``jac`` the ``(m, n)`` Jacobian at x over the flat residuals (rows, in the order of
        the output's leaves) and x0's flat parameters (columns, x0's leaves in order);
        ``grad`` the gradient of ``cost`` in x0's structure; ``nfev`` every residual
        evaluation (finite-difference ones included), ``njev`` Jacobians; ``backend``,
        ``precision``.

    Examples
    --------
    >>> import numpy as np
    >>> import autominimize as am
    >>> t = np.linspace(0, 1, 20)
    >>> y = 2.0 * np.exp(-1.5 * t)
    >>> def r(p):
    ...     return p["a"] * np.exp(-p["k"] * t) - y
    >>> res = am.least_squares(r, {"a": 1.0, "k": 1.0}, method="lm", backend="numpy")
    >>> round(res.x["a"], 6), round(res.x["k"], 6), res.jac.shape
    (2.0, 1.5, (20, 2))
    """
    from .implicit import differentiable_framework

    if differentiable_framework(args) is not None:  # res.x differentiable with respect to args
        from .implicit.entry import least_squares as differentiable_least_squares

        return differentiable_least_squares(least_squares, locals())
    _validate_common(fun, fun_and_jac, workers, executor)
    if method not in LEAST_SQUARES_METHODS:
        raise ValueError(f"method={method!r} is not a least-squares method; use one of {LEAST_SQUARES_METHODS}.")
    if jac_sparsity is not None and jac not in ("2-point", "3-point", None):
        raise ValueError(
            "jac_sparsity is for the backend's Jacobian (jac=None) or scipy's sparse finite differences "
            "(jac='2-point' or '3-point')."
        )
    problem, spec, x0_flat, flat_bounds, backend_obj, backend_name, dtype, evaluator = _build_problem(
        fun, x0, jac=jac, fun_and_jac=fun_and_jac, args=args, kwargs=kwargs, bounds=bounds, backend=backend,
        precision=precision, unpack=unpack, diff_step=diff_step, workers=workers, executor=executor,
        torch_device=torch_device, error_handling=error_handling,
    )
    if method == "lm" and flat_bounds is not None:
        raise ValueError("method='lm' does not handle bounds; use method='trf' or 'dogbox'.")
    if method == "lm" and callback is not None and not isinstance(callback, IterationReport):
        raise ValueError("method='lm' does not call a callback (scipy would ignore it); use 'trf' or 'dogbox'.")
    options: dict[str, Any] = dict(
        method=method, ftol=ftol, xtol=xtol, gtol=gtol, loss=loss, f_scale=f_scale, tr_solver=tr_solver,
        tr_options=tr_options or {}, max_nfev=max_nfev, verbose=verbose,
    )
    x_scale = _flat_x_scale(x_scale, spec)
    if x_scale is not None:
        options["x_scale"] = x_scale
    if flat_bounds is not None:
        options["bounds"] = flat_bounds
    sparse = None
    if jac is None and fun_and_jac is None:
        from .drivers.sparse_least_squares import sparse_residual_jacobian

        with backend_obj.solve_context(dtype):
            sparse = sparse_residual_jacobian(problem, x0_flat, flat_bounds, jac_sparsity, method, tr_solver)
    if sparse is not None:  # compressed passes of the backend; scipy's LSMR needs only J @ v and J.T @ u
        options.update(jac=sparse[0], tr_solver=tr_solver or "lsmr")
        jac_sparsity = None
    elif jac_sparsity is not None and jac is not None:
        options.update(jac=jac, jac_sparsity=jac_sparsity, diff_step=diff_step)
        problem.scheme = None
    else:
        jac_sparsity = None
        options["jac"] = problem.jacobian
    if isinstance(callback, IterationReport):
        scipy_callback = callback.scipy_callback(problem, spec, x0_flat, backend_name, dtype)
        if method != "lm":
            options["callback"] = scipy_callback
    elif callback is not None:
        options["callback"] = _wrap_callback(callback, spec)
    residual_function = problem.value_uncached if jac_sparsity is not None else problem.value
    start = x0_flat
    fixed = FixedVariables.of(x0_flat, flat_bounds) if sparse is None and jac_sparsity is None else None
    if fixed is not None:  # scipy refuses lower = upper: it solves for the free variables only
        residual_function, start = fixed.function(residual_function), fixed.template[fixed.free]
        options.update(bounds=fixed.bounds, jac=fixed.jacobian(options["jac"]))
        if "x_scale" in options:
            options["x_scale"] = fixed.reduce(options["x_scale"])
        if "callback" in options:
            options["callback"] = fixed.callback(options["callback"])
    with backend_obj.solve_context(dtype), evaluator:
        problem.start(x0_flat)  # fail before scipy starts, with the point attached
        with single_blas_thread():
            result = so.least_squares(residual_function, start, **options)
    if fixed is not None:
        result = fixed.expand(result)
    result = _finish(result, problem, spec, backend_name, dtype)
    if sparse is not None:
        result.sparsity = sparse[1].summary()
    return result


class IterationReport:
    """A callback on the flat problem, for ``am.minimize``'s least-squares family.

    ``start(spec, x0, backend, precision)`` once the problem is built;
    ``report(nit, x, f, g, counts)`` after each iteration, where ``f`` is the cost
    ``0.5 * r @ r``, ``g`` its gradient ``J.T @ r`` when the Jacobian at x is known (None
    otherwise) and ``counts`` the problem's evaluation counts; then the user's ``callback``
    as ``am.least_squares`` calls it. 'lm' calls no callback: it is only started.
    """

    def __init__(self, start: Callable, report: Callable, callback: Callable | None = None) -> None:
        self.start, self.report, self.callback = start, report, callback

    def scipy_callback(self, problem: ResidualProblem, spec: ParamSpec, x0: np.ndarray, backend: str, precision: str) -> Callable:
        self.start(spec, x0, backend, precision)
        user = None if self.callback is None else _wrap_callback(self.callback, spec)

        def callback(intermediate_result: so.OptimizeResult) -> None:
            x = np.asarray(intermediate_result.x, dtype=np.float64).reshape(-1)
            key = x.tobytes()
            known = problem._jac is not None and problem._jac[0] == key and problem._r is not None and problem._r[0] == key
            g = problem._jac[1].T @ problem._r[1] if known else None
            counts = {"nfev": problem.nfev, "njev": problem.njev, "nhev": 0, "nhvp": 0}
            self.report(int(intermediate_result.nit), x, float(intermediate_result.cost), g, counts)
            if user is not None:
                user(intermediate_result)

        return callback


def _wrap_callback(callback: Callable, spec: ParamSpec) -> Callable:
    params = list(inspect.signature(callback).parameters) if callable(callback) else []
    if params == ["intermediate_result"]:

        def new_style(intermediate_result: so.OptimizeResult) -> Any:
            fields = dict(intermediate_result)
            fields["x"] = spec.restore(np.asarray(fields["x"]))
            if callback(intermediate_result=so.OptimizeResult(fields)) is True:
                raise StopIteration

        return new_style

    def old_style(intermediate_result: so.OptimizeResult) -> Any:
        if callback(spec.restore(np.asarray(intermediate_result.x))) is True:
            raise StopIteration

    return old_style


def _finish(result: so.OptimizeResult, problem: ResidualProblem, spec: ParamSpec, backend: str, dtype: str) -> so.OptimizeResult:
    x_flat = np.asarray(result.x, dtype=np.float64).reshape(-1)
    result.x = spec.restore(x_flat)
    jac = result.jac
    if not isinstance(jac, np.ndarray):  # scipy's sparse Jacobian (jac_sparsity) or a LinearOperator
        jac = jac.toarray() if hasattr(jac, "toarray") else jac
    result.jac = jac
    result.grad = spec.restore(np.asarray(result.grad, dtype=np.float64).reshape(-1))
    result.nfev = problem.nfev
    result.njev = problem.njev
    result.nfail = problem.failures
    result.backend = backend
    result.precision = dtype
    return result


# -- am.minimize's side --------------------------------------------------------------
def minimize_least_squares(
    fun: Callable,
    x0: Any,
    args: tuple,
    method: str,
    *,
    jac: Any,
    fun_and_jac: Callable | None,
    bounds: Any,
    tol: float | None,
    callback: Callable | None,
    options: dict | None,
    backend: str | None,
    precision: str | None,
    unpack: str,
    torch_device: Any,
    workers: Any,
    executor: Any,
    error_handling: str = "raise",
) -> so.OptimizeResult:
    """``am.minimize(..., method='trf'|'dogbox'|'lm')``: a least-squares solve, reported like
    the scalar methods: ``fun`` is ``0.5 * r @ r`` and ``jac`` its gradient in x0's structure;
    ``residuals``, ``residual_jac``, ``cost``, ``optimality`` and ``active_mask`` are scipy's.
    """
    if isinstance(fun, Residuals) and fun.jac is not None:
        jac = None  # one call site for both kinds: the scalar gradient is for scalar methods
    kwargs = dict(options or {})
    allowed = set(inspect.signature(least_squares).parameters) - {"fun", "x0", "jac", "bounds", "method", "args", "callback", "fun_and_jac", "backend", "precision", "unpack", "torch_device", "workers", "executor", "error_handling"}
    unknown = set(kwargs) - allowed
    if unknown:
        raise ValueError(f"options: {sorted(unknown)} are not options of method={method!r}; accepted: {sorted(allowed)}.")
    if tol is not None:
        for name in ("ftol", "xtol", "gtol"):
            kwargs.setdefault(name, tol)
    res = least_squares(
        fun, x0, jac=jac, bounds=bounds, method=method, args=args, callback=callback, fun_and_jac=fun_and_jac,
        backend=backend, precision=precision, unpack=unpack, torch_device=torch_device, workers=workers,
        executor=executor, error_handling=error_handling, **kwargs,
    )
    res.residuals, res.residual_jac = res.fun, res.jac
    res.fun, res.jac = float(res.cost), res.grad
    del res["grad"]
    return res


def residual_scalar_functions(
    backend_obj: Any,
    fun: Residuals,
    call: Callable,
    spec: ParamSpec,
    dtype: str,
    unpack: str,
    args: tuple,
    torch_device: Any,
    framework_flat: Callable[[Callable], Callable],
    *,
    fun_and_jac: Callable | None = None,
    bounds: Any = None,
    evaluator: numdiff.Evaluator | None = None,
) -> GaussNewtonFunctions:
    """What ``am.minimize``'s scalar methods see for a residual function (see
    :class:`GaussNewtonFunctions`); compiled once per function like any objective."""
    vector = configure_numdiff(compile_functions(backend_obj, "vector", fun, call, spec, dtype, unpack, args, torch_device), bounds, evaluator)
    user_jacobian = framework_flat(fun.jac) if fun.jac is not None else None
    user_fun_and_jac = framework_flat(fun_and_jac) if fun_and_jac is not None else None
    problem = ResidualProblem(vector, spec, user_jacobian=user_jacobian, user_fun_and_jac=user_fun_and_jac, bounds=bounds, evaluator=evaluator)
    scalar = None
    if user_jacobian is None and user_fun_and_jac is None:
        scalar = compile_functions(backend_obj, "sum-of-squares", fun, lambda params: _sum_of_squares(call(params)), spec, dtype, unpack, args, torch_device)
        scalar = configure_numdiff(scalar, bounds, evaluator)
    return GaussNewtonFunctions(scalar, problem)


# -- curve_fit ----------------------------------------------------------------------
def _spread(f: Callable, p0: Any) -> str:
    """How curve_fit calls f: f(x, *p) for a flat vector of numbers, f(x, **p) for a dict of
    f's parameter names, f(x, p) otherwise."""
    if isinstance(p0, dict) and p0 and all(isinstance(k, str) for k in p0):
        try:
            names = set(list(inspect.signature(f).parameters)[1:])
        except (TypeError, ValueError):
            names = set()
        return "kwargs" if set(p0) <= names else "none"
    leaves = optree.tree_leaves(p0)
    if isinstance(p0, (list, tuple)) and not hasattr(p0, "_fields") and all(np.ndim(leaf_to_numpy(v)) == 0 for v in leaves) and len(leaves) == len(p0):
        return "args"
    if isinstance(p0, np.ndarray) and p0.ndim == 1 or leaf_kind(p0) in ("torch", "jax", "tf") and np.ndim(leaf_to_numpy(p0)) == 1:
        return "array"
    return "none"


def curve_fit(
    f: Callable,
    xdata: Any,
    ydata: Any,
    p0: Any = None,
    sigma: Any = None,
    absolute_sigma: bool = False,
    check_finite: bool | None = None,
    bounds: Any = None,
    method: str | None = None,
    jac: Callable | str | None = None,
    *,
    full_output: bool = False,
    nan_policy: str | None = None,
    backend: str | None = None,
    precision: str | None = None,
    **kwargs: Any,
) -> tuple:
    """Fit ``f(xdata, *params)`` to ``ydata``; scipy's ``curve_fit`` with an autodiff Jacobian.

    Parameters
    ----------
    f : callable
        The model. With ``p0`` a flat list/tuple/1-D array of numbers it is called
        ``f(xdata, *p)`` (scipy's convention); with a dict of names, ``f(xdata, **p)``; with
        any other structure, ``f(xdata, p)``. ``xdata`` is passed in the parameters' array
        type (a NumPy float array is converted once per framework), so ``torch.exp(-k * x)``
        works.
    xdata, ydata
        The data; ``ydata`` may be any structure matching f's output (raveled).
    p0 : optional
        The starting point, any structure; by default ones, one per parameter of ``f`` after
        the first (scipy's rule).
    sigma, absolute_sigma
        As in scipy: a 1-D sigma weights the residuals by ``1/sigma``, a 2-D sigma is the
        covariance of ``ydata``.
    check_finite, nan_policy
        As in scipy: ``check_finite`` (default True unless ``nan_policy`` is given) raises on
        NaN or inf in the data; ``nan_policy='omit'`` drops such points, 'raise' raises.
    bounds : optional
        Any bounds form accepted by ``am.least_squares``.
    method : {'lm', 'trf', 'dogbox'}, optional
        'lm' without bounds, 'trf' with them (scipy's default).
    jac : callable or scheme, optional
        The Jacobian of ``f`` with respect to the parameters (called like ``f``); None uses
        the backend's.
    full_output : bool
        Also return ``infodict`` (``nfev``, ``njev``, ``fvec``, ``fjac``), ``mesg``, ``ier``.
    backend, precision
        As in ``am.minimize``.
    **kwargs
        Passed to :func:`least_squares` (``ftol``, ``max_nfev``, ``loss``, ...).

    Returns
    -------
    popt : ndarray or p0's structure
        The fitted parameters: a float64 ndarray for a list or tuple of numbers (as scipy
        returns), else p0's structure and array type.
    pcov : ndarray (n, n)
        Their covariance over the flat parameter vector (x0's leaves in order).

    Examples
    --------
    >>> import numpy as np
    >>> import autominimize as am
    >>> x = np.linspace(0, 4, 30)
    >>> y = 3.0 * np.exp(-0.7 * x) + 0.5
    >>> popt, pcov = am.curve_fit(lambda x, a, k, c: a * np.exp(-k * x) + c, x, y, p0=[1.0, 1.0, 0.0])
    >>> popt.round(6).tolist(), pcov.shape
    ([3.0, 0.7, 0.5], (3, 3))
    """
    if not callable(f):
        raise TypeError(f"f must be callable; got {type(f).__name__}.")
    from .implicit import differentiable_framework

    if differentiable_framework((xdata, ydata, sigma)) is not None:  # popt differentiable with respect to the data
        from .implicit.entry import curve_fit as differentiable_curve_fit

        return differentiable_curve_fit(curve_fit, locals())
    if p0 is None:
        parameters = [p for p in inspect.signature(f).parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(parameters) < 2:
            raise ValueError("p0 is not given and f's signature names no parameter after xdata; pass p0.")
        p0 = [1.0] * (len(parameters) - 1)
    spread = _spread(f, p0)
    y = flatten_output(ydata, "ydata")
    x_array = xdata
    if check_finite is None:
        check_finite = nan_policy is None
    if nan_policy not in (None, "raise", "omit"):
        raise ValueError(f"nan_policy={nan_policy!r} is not supported; use None, 'raise' or 'omit'.")
    finite = np.isfinite(y)
    if isinstance(xdata, np.ndarray) and np.issubdtype(xdata.dtype, np.number):
        x_finite = np.isfinite(xdata).reshape(-1, y.size).all(axis=0) if xdata.size % max(y.size, 1) == 0 and xdata.size else np.ones(y.size, bool)
        finite &= x_finite
    if not finite.all():
        if check_finite or nan_policy == "raise":
            raise ValueError("xdata or ydata contain NaN or inf; clean them or pass nan_policy='omit'.")
        if nan_policy == "omit":
            if isinstance(xdata, np.ndarray) and xdata.shape[-1] == y.size:
                x_array = xdata[..., finite]
            y = y[finite]
    keep = finite if nan_policy == "omit" and not finite.all() else None
    weights, transform = _weights(sigma, y, keep)
    # dropped points leave xdata and ydata alike, so f's output has the kept size already
    cache: dict[str, tuple] = {}

    def data_like(like: Any) -> tuple:
        kind = leaf_kind(like)
        if kind in cache:
            return cache[kind]
        x_conv = constant_like(x_array, like) if isinstance(x_array, np.ndarray) and np.issubdtype(x_array.dtype, np.floating) else x_array
        data = (
            x_conv,
            constant_like(y, like),
            None if weights is None else constant_like(weights, like),
            None if transform is None else constant_like(transform, like),
        )
        if kind in ("numpy", "torch"):  # eager: convert once; traced (JAX, TF): once per trace
            cache[kind] = data
        return data

    def model(params: Any) -> Any:
        if spread == "kwargs":
            return f(x_array_for(params), **params)
        if spread == "args":
            return f(x_array_for(params), *params)
        if spread == "array":
            return f(x_array_for(params), *[params[i] for i in range(np.shape(leaf_to_numpy(p0))[0])])
        return f(x_array_for(params), params)

    def x_array_for(params: Any) -> Any:
        return data_like(optree.tree_leaves(params)[0])[0]

    def residual(params: Any) -> Any:
        like = optree.tree_leaves(params)[0]
        _, y_c, w_c, t_c = data_like(like)
        diff = _ravel_output(model(params), like) - y_c
        if w_c is not None:
            return diff * w_c
        if t_c is not None:
            return _matvec(t_c, diff)
        return diff

    residual.__wrapped__ = f  # backend detection looks at the frameworks f refers to
    residual_jac = None
    if callable(jac):

        def residual_jac(params: Any) -> Any:
            J = leaf_to_numpy(jac(*([x_array_for(params)] + _positional(params, spread, p0)), **(params if spread == "kwargs" else {})))
            J = np.asarray(J, dtype=np.float64).reshape(-1, ParamSpec.from_tree(p0).size)
            if weights is not None:
                return J * weights[:, None]
            if transform is not None:
                return transform @ J
            return J

    if method is None:
        method = "trf" if bounds is not None else "lm"
    res = least_squares(
        residual, p0, jac=residual_jac if callable(jac) else jac, bounds=bounds, method=method, backend=backend,
        precision=precision, unpack="none", **kwargs,
    )
    if not res.success:
        raise RuntimeError(f"Optimal parameters not found: {res.message}")
    pcov = _covariance(res.jac, 2 * res.cost, y.size, absolute_sigma)
    popt = res.x
    if spread == "args" and all(leaf_kind(v) in ("python", "numpy") for v in optree.tree_leaves(p0)):
        popt = np.asarray(popt, dtype=np.float64)  # scipy's popt for an array-like p0
    if full_output:
        info = {"nfev": res.nfev, "njev": res.njev, "fvec": res.fun, "fjac": res.jac}
        return popt, pcov, info, res.message, res.status
    return popt, pcov


def _positional(params: Any, spread: str, p0: Any) -> list:
    if spread == "args":
        return list(params)
    if spread == "array":
        return [params[i] for i in range(np.shape(leaf_to_numpy(p0))[0])]
    if spread == "kwargs":
        return []
    return [params]


def _ravel_output(out: Any, like: Any) -> Any:
    leaves = optree.tree_leaves(out)
    kind = leaf_kind(like)
    if kind == "torch":
        import torch

        return torch.cat([torch.as_tensor(v).reshape(-1) for v in leaves])
    if kind == "jax":
        import jax.numpy as jnp

        return jnp.concatenate([jnp.ravel(v) for v in leaves])
    if kind == "tf":
        import tensorflow as tf

        return tf.concat([tf.reshape(v, [-1]) for v in leaves], axis=0)
    return np.concatenate([np.ravel(np.asarray(v)) for v in leaves])


def _matvec(matrix: Any, vector: Any) -> Any:
    if leaf_kind(vector) == "tf":
        import tensorflow as tf

        return tf.linalg.matvec(matrix, vector)
    return matrix @ vector


def _weights(sigma: Any, y: np.ndarray, keep: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """1/sigma for a 1-D sigma; the inverse Cholesky factor for a covariance matrix."""
    if sigma is None:
        return None, None
    sigma = np.asarray(sigma, dtype=np.float64)
    if sigma.ndim == 1:
        if keep is not None and sigma.size == keep.size:
            sigma = sigma[keep]
        if sigma.shape != y.shape:
            raise ValueError(f"sigma has shape {sigma.shape}; expected {y.shape} (one per data point) or ({y.size}, {y.size}).")
        return 1.0 / sigma, None
    if sigma.ndim == 2:
        if keep is not None and sigma.shape[0] == keep.size:
            sigma = sigma[np.ix_(keep, keep)]
        if sigma.shape != (y.size, y.size):
            raise ValueError(f"sigma has shape {sigma.shape}; expected ({y.size}, {y.size}) for a covariance matrix.")
        try:
            lower = np.linalg.cholesky(sigma)
        except np.linalg.LinAlgError:
            raise ValueError("sigma, given as a covariance matrix, is not positive definite.") from None
        return None, np.linalg.inv(lower)
    raise ValueError(f"sigma must be 1-D (standard deviations) or 2-D (a covariance); got {sigma.ndim} dimensions.")


def _covariance(jac: np.ndarray, chi2: float, m: int, absolute_sigma: bool) -> np.ndarray:
    """(J^T J)^+ (Moore-Penrose, dropping singular values at rounding level), scaled by the
    residual variance chi2 / (m - n) unless sigma is absolute."""
    n = jac.shape[1]
    _, s, vt = np.linalg.svd(jac, full_matrices=False)
    keep = s > np.finfo(np.float64).eps * max(jac.shape) * (s[0] if s.size else 0.0)
    vt = vt[keep]
    pcov = (vt.T / s[keep] ** 2) @ vt
    if absolute_sigma:
        return pcov
    if m > n:
        return pcov * (chi2 / (m - n))
    warnings.warn("Covariance of the parameters could not be estimated (no more data points than parameters).", so.OptimizeWarning, stacklevel=3)
    return np.full((n, n), np.inf)
