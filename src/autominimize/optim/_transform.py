"""The updates interface over any parameter structure: ``init`` / ``update`` / ``apply_updates``."""

from __future__ import annotations

import inspect
import reprlib
from typing import Any, Callable, Mapping, NamedTuple

import numpy as np
import optree

from ..backends.common import require_real_number, require_scalar_shape
from ..native._arrays import flatten_leaves, namespace, split_leaves
from ..native.base import Algorithm
from ..params import leaf_path_names, tree_flatten, tree_map
from ..validation import check_callable, check_known

__all__ = ["Transformation", "from_algorithm", "apply_updates", "merge_updates"]


class Transformation(NamedTuple):
    """A pure pair ``init(params) -> state`` and ``update(grads, state, params) -> (updates, state)``.

    The shape of optax's ``GradientTransformation``: ``updates`` has the structure of
    ``params`` and is added to them by :func:`apply_updates`. ``algorithm`` is the native
    algorithm (its hyperparameters), read by the adapters.
    """

    init: Callable[[Any], Any]
    update: Callable[..., tuple[Any, Any]]
    algorithm: Algorithm


class _GivenGradient:
    """The oracle an update sees: the gradient given at params; re-evaluations only on request."""

    def __init__(self, x: Any, g: Any, value: Any, value_and_grad: Callable | None, grad: Callable | None, name: str):
        self.x, self.g, self.f = x, g, value
        self._value_and_grad, self._grad, self._name = value_and_grad, grad, name

    def _need(self, what: str) -> Callable:
        raise ValueError(
            f"{self._name} evaluates {what} at points other than params; pass value_and_grad_fn= "
            "(a function of params returning (value, grads)) to update."
        )

    def value_and_grad(self, x: Any) -> tuple[Any, Any]:
        if x is self.x:
            if self.f is None and self._value_and_grad is not None:
                self.f = self._value_and_grad(x)[0]
            return self.f, self.g
        return (self._value_and_grad or self._need("the loss"))(x)

    def value(self, x: Any) -> Any:
        return self.value_and_grad(x)[0]

    def grad(self, x: Any) -> Any:
        if x is self.x:
            return self.g
        if self._grad is not None:
            return self._grad(x)
        return (self._value_and_grad or self._need("gradients"))(x)[1]

    def hvp(self, x: Any, v: Any) -> Any:
        """H v by a forward difference of gradients (exact products need am.minimize/iterate)."""
        xp = namespace(x)
        v_norm = float(xp.sqrt(xp.sum(v * v)))
        if v_norm == 0.0:
            return xp.zeros_like(v)
        eps = 1.4901161193847656e-08 * (1.0 + float(xp.sqrt(xp.sum(x * x)))) / v_norm
        return (self.grad_at(x + eps * v) - self.grad(x)) / eps

    def grad_at(self, x: Any) -> Any:
        return (self._value_and_grad or self._need("gradients"))(x)[1]

    def gnvp(self, x: Any, v: Any) -> Any:
        raise ValueError(f"{self._name}: Gauss-Newton products need am.minimize or am.iterate with a residual function.")


def from_algorithm(algorithm: Algorithm) -> Transformation:
    """The updates interface of a native algorithm.

    ``update(grads, state, params, *, value=None, value_and_grad_fn=None, grad_fn=None)``:
    first-order algorithms (SGD, delta-bar-delta, TONGA) need only ``grads``; SGD-QN also
    ``grad_fn(params) -> grads`` on the same mini-batch; L-BFGS, nonlinear CG and
    Hessian-free ``value_and_grad_fn(params) -> (value, grads)`` for their line searches
    (Hessian-free then takes Hessian-vector products as differences of gradients; the exact
    and Gauss-Newton products are in ``am.minimize`` and ``am.iterate``).
    Parameters may be any structure of NumPy, JAX or torch arrays; updates keep each leaf's
    dtype.
    """

    def flat(tree: Any) -> tuple[Any, list, Any]:
        leaves, treedef = tree_flatten(tree)
        if not leaves:
            raise ValueError(f"params must be an array or a structure of arrays (NumPy, JAX or torch); got {tree!r}, which holds none.")
        _require_floating(tree, leaves)
        return flatten_leaves(_one_namespace(leaves), leaves), leaves, treedef

    state_type = _state_type(algorithm)

    def init(params: Any) -> Any:
        x, _, _ = flat(params)
        return algorithm.init(x, None) if algorithm.first_order else None

    def update(
        grads: Any,
        state: Any,
        params: Any = None,
        *,
        value: Any = None,
        value_and_grad_fn: Callable | None = None,
        grad_fn: Callable | None = None,
        **unknown: Any,
    ) -> tuple[Any, Any]:
        check_known(unknown, ("value", "value_and_grad_fn", "grad_fn"), f"{algorithm.name}'s update got unknown keyword argument(s)")
        if params is None:
            raise ValueError(f"{algorithm.name}'s update needs params (its step depends on them).")
        if algorithm.needs_evaluator and value_and_grad_fn is None:
            raise ValueError(f"{algorithm.name} evaluates the loss at new points; pass value_and_grad_fn= (params -> (value, grads)).")
        check_callable(value_and_grad_fn, "value_and_grad_fn")
        check_callable(grad_fn, "grad_fn")
        if value is not None:
            _require_loss(value, "value")
        x, leaves, treedef = flat(params)
        xp = namespace(x)
        # gradients in params' structure, matched by key: jax.grad returns a dict's keys sorted
        g = xp.astype(flatten_leaves(xp, _gradient_leaves(grads, params, treedef, leaves)), x.dtype)
        _require_finite_gradient(xp, g, params, leaves)
        _check_state(state, state_type, x)

        as_tree, flat_value_and_grad, flat_grad = _flat_functions(xp, x, treedef, leaves, value_and_grad_fn, grad_fn)
        oracle = _GivenGradient(x, g, value, flat_value_and_grad, flat_grad, algorithm.name)
        if state is None:
            state = algorithm.init(x, oracle)
        elif algorithm.first_order:
            state = state._replace(x=x)
        else:
            f = value if value is not None else oracle.value(x)
            state = state._replace(x=x, f=f, g=g)
        if algorithm.needs_evaluator and _at_convergence(xp, g, value if value is not None else getattr(state, "f", None), x.dtype):
            # a line search here could only fail, or accept a step that changes nothing
            return as_tree(xp.zeros_like(x)), state._replace(flag=CONVERGED)
        new_state = algorithm.step(state, oracle)
        if new_state.flag:
            raise RuntimeError(f"{algorithm.name} could not take a step: {new_state.flag}.")
        return as_tree(new_state.x - x), new_state

    return Transformation(init, update, algorithm)


def _flat_functions(xp: Any, x: Any, treedef: Any, leaves: list, value_and_grad_fn: Callable | None, grad_fn: Callable | None) -> tuple:
    """``as_tree(v)`` (a flat vector in params' structure) and the user's ``value_and_grad_fn``
    and ``grad_fn`` as functions of flat vectors (None where not given), their outputs checked."""

    def as_tree(v: Any) -> Any:
        return optree.tree_unflatten(treedef, split_leaves(xp, v, leaves))

    def flat_value_and_grad(v: Any) -> tuple[Any, Any]:
        tree = as_tree(v)
        out = value_and_grad_fn(tree)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise TypeError(f"value_and_grad_fn must return (value, grads), a pair; it returned a {type(out).__name__}.")
        f, gr = out
        _require_loss(f, "value_and_grad_fn's value")
        found = _gradient_leaves(gr, tree, treedef, leaves, "value_and_grad_fn's grads")
        return f, xp.astype(flatten_leaves(xp, found), x.dtype)

    def flat_grad(v: Any) -> Any:
        tree = as_tree(v)
        return xp.astype(flatten_leaves(xp, _gradient_leaves(grad_fn(tree), tree, treedef, leaves, "grad_fn's grads")), x.dtype)

    return as_tree, flat_value_and_grad if value_and_grad_fn else None, flat_grad if grad_fn else None


def _gradient_leaves(grads: Any, params: Any, treedef: Any, leaves: list, what: str = "grads") -> list:
    """The leaves of ``grads`` in params' order, each of its parameter's shape; an error
    naming (as ``what``) the first leaf that is missing or of another shape."""
    try:
        found = treedef.flatten_up_to(grads)
    except (TypeError, ValueError):
        names = [name.replace("x0", "grads", 1) for name in leaf_path_names(params)]
        raise ValueError(f"{what} must have the structure of params, with leaves {names}; got {reprlib.repr(grads)}.") from None
    for index, (g, p) in enumerate(zip(found, leaves)):
        shape, expected = tuple(getattr(g, "shape", np.shape(g))), tuple(getattr(p, "shape", ()))
        if shape != expected or isinstance(g, (str, bytes)):
            name = leaf_path_names(params)[index].replace("x0", what, 1)
            raise ValueError(f"{name} must be an array of its parameter's shape {expected}; got {reprlib.repr(g)} of shape {shape}.")
    return found


def _require_floating(tree: Any, leaves: list) -> None:
    """A TypeError naming the first leaf of params that is not floating point: its updates
    would be truncated (a small step to zero) when applied."""
    for index, leaf in enumerate(leaves):
        dtype = str(getattr(leaf, "dtype", type(leaf).__name__))
        if "complex" in dtype:
            name = leaf_path_names(tree)[index].replace("x0", "params", 1)
            raise TypeError(
                f"{name} has dtype {dtype.replace('torch.', '')}; am.optim's algorithms update real parameters: give its real and imaginary parts as two real arrays."
            )
        if "int" in dtype or "bool" in dtype:
            name = leaf_path_names(tree)[index].replace("x0", "params", 1)
            raise TypeError(
                f"{name} has dtype {dtype.replace('torch.', '')}; am.optim updates integer parameters only by truncating "
                "each step (to zero for small ones). Give params as floating-point arrays or tensors (e.g. float64)."
            )


def _one_namespace(leaves: list) -> Any:
    """The array namespace of ``leaves``; a TypeError naming params when they are not arrays of one framework."""
    for leaf in leaves:
        if isinstance(leaf, (str, bytes)) or not (hasattr(leaf, "shape") or isinstance(leaf, (int, float, np.number))):
            raise TypeError(
                f"params must hold arrays or tensors (NumPy, JAX or torch); got a leaf that is a {type(leaf).__name__} ({reprlib.repr(leaf)})."
            )
    try:
        return namespace(*leaves)
    except TypeError:
        frameworks = sorted({type(leaf).__module__.split(".")[0] for leaf in leaves})
        raise TypeError(f"params mixes arrays of {', '.join(frameworks)}; give all of them as arrays of one framework.") from None


def _require_loss(value: Any, name: str) -> None:
    """``value`` one real number (a float, or a 0-d array or tensor), else an error naming ``name``."""
    require_real_number(value, name)
    require_scalar_shape(tuple(getattr(value, "shape", ())), name)


def _state_type(algorithm: Algorithm) -> str | None:
    """The name of the state class ``algorithm.init`` returns (None if it does not say)."""
    annotation = inspect.signature(type(algorithm).init).return_annotation
    if annotation is inspect.Signature.empty:
        return None
    return annotation if isinstance(annotation, str) else annotation.__name__


def _check_state(state: Any, state_type: str | None, x: Any) -> None:
    """``state`` None (a first update) or a state of this algorithm over params of x's size."""
    if state is None:
        return
    if state_type is not None and type(state).__name__ != state_type:
        raise TypeError(
            f"state is a {type(state).__name__}, not a {state_type}: give None or the state this "
            "transformation's init (or its last update) returned, not another optimizer's."
        )
    held = getattr(state, "x", None)
    if held is not None and tuple(held.shape) != tuple(x.shape):
        raise ValueError(f"state was made for params of {held.shape[0]} numbers; params have {x.shape[0]}. Call init(params) for these params.")


def _require_finite_gradient(xp: Any, g: Any, params: Any, leaves: list) -> None:
    """A FloatingPointError naming the first leaf of grads with NaN or inf: the update would
    write them into the parameters."""
    if bool(xp.all(xp.isfinite(g))):
        return
    start = 0
    for index, leaf in enumerate(leaves):
        size = int(np.prod(getattr(leaf, "shape", ())))
        if not bool(xp.all(xp.isfinite(g[start : start + size]))):
            name = leaf_path_names(params)[index].replace("x0", "grads", 1)
            raise FloatingPointError(
                f"{name} holds NaN or inf at params; the update would write them into the parameters. "
                "Find where the loss stops being finite (or clip the gradients) before updating."
            )
        start += size


#: ``state.flag`` after an update that found the parameters converged
CONVERGED = "converged: the gradient is at the resolution of the loss in this precision"


def _at_convergence(xp: Any, g: Any, f: Any, dtype: Any) -> bool:
    """Whether the parameters are at a minimum as far as the precision can tell: the gradient
    is below sqrt(eps) of the precision relative to the loss (a gradient of 1e-6 in float32),
    where a line search can resolve no decrease of the loss."""
    eps = float(xp.finfo(dtype).eps)
    scale = max(1.0, abs(float(f))) if f is not None else 1.0
    return float(xp.max(xp.abs(g))) <= eps**0.5 * scale


def apply_updates(params: Any, updates: Any) -> Any:
    """params + updates, leaf by leaf, keeping each parameter's dtype.

    Examples
    --------
    >>> import numpy as np
    >>> apply_updates({"w": np.ones(2)}, {"w": np.full(2, 0.5)})["w"].tolist()
    [1.5, 1.5]
    """
    try:
        tree_flatten(params)[1].flatten_up_to(updates)
    except (TypeError, ValueError):
        names = [name.replace("x0", "params", 1) for name in leaf_path_names(params)]
        raise ValueError(f"updates must have the structure of params, with leaves {names}; got {reprlib.repr(updates)}.") from None
    return tree_map(_add, params, updates)


def _add(p: Any, u: Any) -> Any:
    out = p + u
    if tuple(getattr(out, "shape", ())) != tuple(getattr(p, "shape", ())):  # broadcasting would reshape the parameter
        raise ValueError(
            f"updates: an update of shape {tuple(getattr(u, 'shape', ()))} for a parameter of shape "
            f"{tuple(getattr(p, 'shape', ()))}; each update must have its parameter's shape."
        )
    dtype = getattr(p, "dtype", None)
    if dtype is not None and getattr(out, "dtype", dtype) != dtype:
        out = namespace(out).astype(out, dtype)
    return out


def merge_updates(updates: Mapping, new: Mapping) -> dict:
    """``updates`` extended with ``new``; KeyError for a parameter that already has an update.

    The founding rule of the Theano-era Optimization API: passing ``updates={p: b}`` to an
    optimizer that updates ``p`` raises KeyError.

    Examples
    --------
    >>> merge_updates({"a": 1}, {"p": 2})
    {'a': 1, 'p': 2}
    >>> merge_updates({"p": 1}, {"p": 2})
    Traceback (most recent call last):
    ...
    KeyError: "an update for 'p' already exists"
    """
    merged = dict(updates)
    for key, value in new.items():
        if key in merged:
            raise KeyError(f"an update for {key!r} already exists")
        merged[key] = value
    return merged
