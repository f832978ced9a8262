"""Differentiate through a solve: ``res.x`` as a function of ``args`` (implicit differentiation).

When ``args`` hold values the caller's framework differentiates with respect to (see
:func:`differentiable_framework`), or the objective captures such values (see
:func:`captured_differentiable`), ``am.minimize``, ``am.least_squares`` and ``am.curve_fit``
run the ordinary solve on concrete values and attach a derivative rule to ``res.x``: the implicit
function theorem at the solution (:mod:`.adjoint`), with one adapter per framework. See
``docs/implicit-differentiation.md``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import sys
import types
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..captured import captured_values
from ..params import tree_leaves
from .adjoint import ImplicitDifferentiationWarning

__all__ = [
    "ImplicitDifferentiationWarning",
    "captured_differentiable",
    "concrete_solve",
    "constraint_functions",
    "differentiable_call",
    "differentiable_framework",
]

#: set while the ordinary solve runs inside a differentiable one: its arguments are values
_CONCRETE = contextvars.ContextVar("autominimize_concrete_solve", default=False)


@contextlib.contextmanager
def concrete_solve() -> Iterator[None]:
    """Within this block no argument counts as differentiable (the solve under a derivative rule)."""
    token = _CONCRETE.set(True)
    try:
        yield
    finally:
        _CONCRETE.reset(token)


def _tf_records(tf: Any) -> bool:
    """Whether TensorFlow could differentiate what runs now: inside a ``tf.function`` (graph)
    or under an active ``GradientTape``."""
    if not tf.executing_eagerly():
        return True
    try:
        from tensorflow.python.eager import record
    except ImportError:  # no way to ask: assume a tape may watch
        return True
    return bool(record.could_possibly_record())


#: captured values of these types hold nothing a framework differentiates
_PLAIN = (np.ndarray, int, float, complex, str, bytes, type(None), types.FunctionType, functools.partial, type, types.ModuleType)


def _differentiating_modules() -> bool:
    return "jax" in sys.modules or "torch" in sys.modules or "tensorflow" in sys.modules


def constraint_functions(constraints: Any) -> list:
    """The functions of scipy-style constraints (a dict, a NonlinearConstraint, or a list of them)."""
    if constraints is None:
        return []
    items = constraints if isinstance(constraints, (list, tuple)) else [constraints]
    return [item.get("fun") if isinstance(item, dict) else getattr(item, "fun", None) for item in items]


def constraint_args(constraints: Any) -> list[tuple]:
    """The own ``'args'`` of scipy-style constraint dicts, one tuple per constraint (empty for
    the others)."""
    if constraints is None:
        return []
    items = constraints if isinstance(constraints, (list, tuple)) else [constraints]
    return [tuple(item.get("args", ())) if isinstance(item, dict) and isinstance(item.get("args", ()), (list, tuple)) else () for item in items]


def differentiable_call(args: Any, *functions: Any, constraints: Any = ()) -> bool:
    """Whether a solve's result is to be differentiated: ``args`` hold differentiable values
    (:func:`differentiable_framework`), or one of ``functions`` captures one
    (:func:`captured_differentiable`); ``constraints``' functions and own args count too (the
    differentiable entry refuses the latter by name). Runs on every solve: without a framework
    imported, or for a function capturing nothing, it costs a few microseconds.

    Examples
    --------
    >>> import numpy as np
    >>> scale = np.ones(3)
    >>> differentiable_call((2.0,), lambda x, c: c * scale @ x)
    False
    """
    if _CONCRETE.get() or not _differentiating_modules():
        return False
    if type(constraints) is not tuple or constraints:
        args, functions = (args, constraint_args(constraints)), (*functions, *constraint_functions(constraints))
    held = [value for function in functions if function is not None for _, value in captured_values(function) if not isinstance(value, _PLAIN)]
    if not held and (args is None or (type(args) is tuple and not args)):  # nothing to look at: 2.5 µs with torch loaded
        return False
    if differentiable_framework(args, held) is None:  # one pass over every leaf: the common case
        return False
    return differentiable_framework(args) is not None or captured_differentiable(*functions) is not None


def captured_differentiable(*functions: Any) -> tuple[str, str] | None:
    """A value captured by one of ``functions`` (not passed in ``args``) that the caller's
    framework differentiates, as (framework, its name), or None.

    On JAX such values are hoisted into the derivative's inputs; elsewhere they would be
    constants to the solve, and a gradient through them silently incomplete. The rule is
    :func:`differentiable_framework`'s, except on TensorFlow, where only trainable variables
    count (any captured tensor could be watched, and constants are common).

    Examples
    --------
    >>> import numpy as np
    >>> scale = np.ones(3)
    >>> captured_differentiable(lambda x: scale @ x) is None
    True
    """
    if _CONCRETE.get() or not _differentiating_modules():
        return None
    for function in functions:
        if function is None:
            continue
        for name, value in captured_values(function):
            framework = differentiable_framework(value)
            if framework == "tensorflow":
                leaves = tree_leaves(value, none_is_leaf=False)
                tf = sys.modules["tensorflow"]
                framework = framework if any(isinstance(leaf, tf.Variable) and leaf.trainable for leaf in leaves) else None
            if framework is not None:
                return framework, name
    return None


def differentiable_framework(*trees: Any) -> str | None:
    """The framework that differentiates with respect to a leaf of ``trees``, if any.

    The rule: a JAX tracer (under ``jax.grad``, ``jit``, ``vmap``...) makes it ``'jax'``; a
    torch tensor with ``requires_grad`` while gradients are enabled, ``'torch'``; a TensorFlow
    tensor or trainable variable inside a ``tf.function`` or under a ``GradientTape``,
    ``'tensorflow'``. A framework that is not imported yet cannot have made any of these, and
    is not imported here.

    Examples
    --------
    >>> import numpy as np
    >>> differentiable_framework((np.ones(3), 2.0)) is None
    True
    """
    if _CONCRETE.get():
        return None
    leaves = tree_leaves(trees, none_is_leaf=False)
    if "jax" in sys.modules:
        import jax

        if any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):
            return "jax"
    if "torch" in sys.modules:
        import torch

        if torch.is_grad_enabled() and any(isinstance(leaf, torch.Tensor) and leaf.requires_grad for leaf in leaves):
            return "torch"
    if "tensorflow" in sys.modules:
        tf = sys.modules["tensorflow"]
        tf_leaves = [leaf for leaf in leaves if isinstance(leaf, (tf.Tensor, tf.Variable))]
        if tf_leaves and _tf_records(tf) and any(leaf.dtype.is_floating for leaf in tf_leaves):
            return "tensorflow"
    return None
