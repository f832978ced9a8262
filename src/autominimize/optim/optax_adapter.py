"""``as_optax``: an autominimize transformation as an ``optax.GradientTransformationExtraArgs``."""

from __future__ import annotations

from typing import Any

from ..backends.common import require_real_number, require_scalar_shape
from ..validation import check_callable
from ._transform import Transformation


def as_optax(opt: Transformation) -> Any:
    """Wrap ``opt`` for optax (``optax.chain``, ``optax.apply_updates``, training loops).

    Extra arguments follow optax's convention: ``value`` (the loss at params), and
    ``value_fn`` (the loss as a function of params; its ``jax.value_and_grad`` feeds the line
    searches of L-BFGS, nonlinear CG and Hessian-free) or directly ``value_and_grad_fn`` /
    ``grad_fn``. The update runs eagerly: line searches branch in Python, so do not jit it.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import autominimize as am
    >>> tx = am.optim.as_optax(am.optim.sgd(lr=0.1, momentum=0.5))
    >>> params = {"w": jnp.ones(2)}
    >>> state = tx.init(params)
    >>> updates, state = tx.update({"w": params["w"]}, state, params)
    >>> [round(v, 6) for v in optax.apply_updates(params, updates)["w"].tolist()]
    [0.9, 0.9]
    """
    import jax
    import optax

    def update(updates: Any, state: Any, params: Any = None, **extra: Any) -> tuple[Any, Any]:
        value_and_grad_fn = extra.get("value_and_grad_fn")
        value_fn = extra.get("value_fn")
        if value_and_grad_fn is None and value_fn is not None:
            check_callable(value_fn, "value_fn")

            def scalar_value(params: Any) -> Any:
                value = value_fn(params)
                require_real_number(value, "value_fn")
                require_scalar_shape(tuple(getattr(value, "shape", ())), "value_fn")
                return value

            value_and_grad_fn = jax.value_and_grad(scalar_value)
        return opt.update(updates, state, params, value=extra.get("value"), value_and_grad_fn=value_and_grad_fn, grad_fn=extra.get("grad_fn"))

    return optax.GradientTransformationExtraArgs(opt.init, update)
