"""``am.check_grad``: compare exact derivatives with central finite differences."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import numdiff
from ._setup import prepare
from .user_derivatives import flatten_jacobian
from .params import ParamSpec, leaf_to_numpy
from .validation import check_relative_steps, check_tolerance

__all__ = ["check_grad", "GradientCheck"]


@dataclass(frozen=True)
class GradientCheck:
    """What :func:`check_grad` found.

    Attributes
    ----------
    derivative, numerical : x0's structure, or (m, n) arrays for vector functions
        The checked derivative (autodiff or the user's) and the finite-difference one.
    error : float
        ``||derivative - numerical||`` (scipy's ``check_grad`` value; also ``float(check)``).
    max_abs_error, max_rel_error : float
        The largest elementwise differences; relative to ``max(|numerical|, 1)``.
    worst_leaf : str
        The path of the parameter leaf (``x0['w']``) holding the worst element.
    worst_index : tuple
        That element's index in the leaf (and, for a vector function, the output row first).
    ok : bool
        Whether ``max_rel_error <= rtol``.
    source : str
        ``'jax'``, ``'torch'``, ``'tensorflow'`` (autodiff) or ``'user jac'``.
    """

    derivative: Any
    numerical: Any
    error: float
    max_abs_error: float
    max_rel_error: float
    worst_leaf: str
    worst_index: tuple
    ok: bool
    source: str

    def __float__(self) -> float:
        return self.error

    def __str__(self) -> str:
        verdict = "OK" if self.ok else "MISMATCH"
        return (
            f"{verdict}: {self.source} vs central differences, max relative error "
            f"{self.max_rel_error:.3g} (absolute {self.max_abs_error:.3g}) at {self.worst_leaf}"
            f"{list(self.worst_index)}"
        )


def check_grad(
    fun: Callable,
    x0: Any,
    args: tuple = (),
    *,
    jac: Callable | None = None,
    backend: str | None = None,
    rel_step: float | None = None,
    rtol: float = 1e-5,
    unpack: str = "auto",
) -> GradientCheck:
    """Compare the gradient (or Jacobian) of ``fun`` at x0 with central finite differences.

    The derivative checked is the user's ``jac`` when given, else the backend's autodiff;
    for a function returning several values the Jacobian is checked. The report names the
    leaf and element where the two disagree most.

    Parameters
    ----------
    fun : callable
        The function, called like ``am.minimize``'s ``fun``.
    x0 : array, scalar, tensor or nested structure
        The point.
    jac : callable, optional
        A gradient (x0's structure or flat) or Jacobian (``(m, n)``) to check instead of
        autodiff; called like ``fun``.
    backend : str, optional
        As in ``am.minimize``; the NumPy backend has no exact derivative, so it needs ``jac``.
    rel_step : float, optional
        Relative step of the central differences (default ``eps**(1/3)``).
    rtol : float
        The largest relative error (over ``max(|numerical|, 1)``) that counts as agreement.

    Returns
    -------
    GradientCheck

    Examples
    --------
    >>> import numpy as np
    >>> import autominimize as am
    >>> f = lambda p: (p["w"] ** 2).sum() + 3 * p["b"]
    >>> bad = lambda p: {"w": 2 * p["w"], "b": 2.0}          # should be 3.0
    >>> check = am.check_grad(f, {"w": np.ones(3), "b": 0.5}, jac=bad)
    >>> check.ok, check.worst_leaf, check.worst_index
    (False, "x0['b']", ())
    """
    if not callable(fun):
        raise TypeError(f"fun must be callable; got {type(fun).__name__}.")
    if callable(x0):
        raise TypeError(
            f"x0 is a callable ({getattr(x0, '__qualname__', type(x0).__name__)}), not a point: am.check_grad(fun, x0, args=(), jac=...) "
            "takes the gradient to check as jac=, not second as scipy.optimize.check_grad(func, grad, x0) does."
        )
    check_tolerance(rtol, "rtol")
    check_relative_steps(rel_step, "rel_step", None)
    setup = prepare(fun, x0, args, unpack=unpack, precision="float64")
    x0, spec, x, call = setup.x0, setup.spec, setup.x0_flat, setup.call
    if jac is not None and not callable(jac):
        raise TypeError(f"jac must be a callable returning the gradient or Jacobian; got {type(jac).__name__}.")
    backend_name = setup.choose_backend(backend)
    if backend_name == "numpy" and jac is None:
        raise ValueError(
            "the NumPy backend has no exact derivative to check; pass jac=, or a function "
            "written with JAX, PyTorch or TensorFlow (or backend='jax' for one written with operators)."
        )
    backend_obj = setup.backend_obj
    with backend_obj.solve_context("float64"):
        functions = setup.compile("vector", fun, call)
        value = functions.value(x)
        if jac is not None:
            out = setup.flat_call(jac)(x)
            derivative = _flat_user_derivative(out, spec, value.size)
            source = "user jac"
        else:
            value, derivative = functions.value_and_jacobian(x)
            source = backend_name
        numerical, _ = numdiff.approx_jacobian(functions.value, x, method="central", rel_step=rel_step)
    numerical = numerical.reshape(value.size, spec.size)
    derivative = np.asarray(derivative, dtype=np.float64).reshape(value.size, spec.size)
    diff = np.abs(derivative - numerical)
    relative = diff / np.maximum(np.abs(numerical), 1.0)
    row, column = np.unravel_index(int(np.argmax(relative)), relative.shape)
    leaf = int(np.searchsorted(spec.offsets, column, side="right") - 1)
    info = spec.leaves[leaf]
    element = tuple(int(i) for i in np.unravel_index(column - spec.offsets[leaf], info.shape)) if info.shape else ()
    scalar = value.size == 1
    return GradientCheck(
        derivative=spec.restore(derivative[0]) if scalar else derivative,
        numerical=spec.restore(numerical[0]) if scalar else numerical,
        error=float(np.linalg.norm(derivative - numerical)),
        max_abs_error=float(diff.max()),
        max_rel_error=float(relative.max()),
        worst_leaf=info.path,
        worst_index=element if scalar else (int(row),) + element,
        ok=bool(relative.max() <= rtol),
        source=source,
    )


def _flat_user_derivative(out: Any, spec: ParamSpec, m: int) -> np.ndarray:
    if isinstance(out, (dict, list, tuple)):
        if m == 1:
            return spec.flatten(out, "jac")
        return flatten_jacobian(out, spec, m)
    array = leaf_to_numpy(out).astype(np.float64)
    if array.size != m * spec.size:
        raise ValueError(f"jac returned shape {array.shape}; expected {spec.size} gradient values or an ({m}, {spec.size}) Jacobian.")
    return array
