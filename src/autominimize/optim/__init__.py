"""``am.optim``: the native algorithms as functional updates for training loops.

>>> import numpy as np
>>> import autominimize as am
>>> opt = am.optim.delta_bar_delta(lr=0.1)
>>> params = {"w": np.ones(3)}
>>> state = opt.init(params)
>>> for _ in range(50):
...     grads = {"w": params["w"]}            # gradient of ½‖w‖²
...     updates, state = opt.update(grads, state, params)
...     params = am.optim.apply_updates(params, updates)
>>> bool(np.abs(params["w"]).max() < 1e-3)
True

``as_optax(opt)`` gives an ``optax.GradientTransformation``;
``autominimize.optim.torch_optimizer.Optimizer(model.parameters(), opt)`` a
``torch.optim.Optimizer``.
"""

from __future__ import annotations

import inspect
from typing import Any

from ..native import schedules
from ..native.conjugate_gradient import NonlinearCG
from ..native.delta_bar_delta import DeltaBarDelta
from ..native.gradient_descent import SGD
from ..native.hessian_free import HessianFree
from ..native.lbfgs import LBFGS
from ..native.sgd_qn import SGDQN
from ..native.tonga import Tonga
from ..validation import check_known
from ._transform import Transformation, apply_updates, from_algorithm, merge_updates

__all__ = [
    "Transformation",
    "apply_updates",
    "merge_updates",
    "from_algorithm",
    "as_optax",
    "schedules",
    "sgd",
    "delta_bar_delta",
    "sgd_qn",
    "tonga",
    "lbfgs",
    "nonlinear_cg",
    "hessian_free",
]


def sgd(lr: Any = 0.01, momentum: Any = 0.0, nesterov: bool = False) -> Transformation:
    """SGD with classical or Nesterov momentum (:class:`~autominimize.native.SGD`)."""
    return from_algorithm(SGD(lr, momentum, nesterov))


def delta_bar_delta(**hyperparameters: Any) -> Transformation:
    """Delta-bar-delta (:class:`~autominimize.native.DeltaBarDelta`)."""
    return _made(DeltaBarDelta, "delta_bar_delta", hyperparameters)


def sgd_qn(**hyperparameters: Any) -> Transformation:
    """SGD-QN (:class:`~autominimize.native.SGDQN`); ``update`` needs ``grad_fn``."""
    return _made(SGDQN, "sgd_qn", hyperparameters)


def tonga(**hyperparameters: Any) -> Transformation:
    """TONGA (:class:`~autominimize.native.Tonga`)."""
    return _made(Tonga, "tonga", hyperparameters)


def lbfgs(**hyperparameters: Any) -> Transformation:
    """L-BFGS (:class:`~autominimize.native.LBFGS`); ``update`` needs ``value_and_grad_fn``."""
    return _made(LBFGS, "lbfgs", hyperparameters)


def nonlinear_cg(**hyperparameters: Any) -> Transformation:
    """Nonlinear CG (:class:`~autominimize.native.NonlinearCG`); needs ``value_and_grad_fn``."""
    return _made(NonlinearCG, "nonlinear_cg", hyperparameters)


def hessian_free(**hyperparameters: Any) -> Transformation:
    """Hessian-free (:class:`~autominimize.native.HessianFree`); needs ``value_and_grad_fn`` and
    takes curvature products as differences of gradients (exact ones in am.minimize/iterate)."""
    return _made(HessianFree, "hessian_free", hyperparameters)


def _made(algorithm: type, name: str, hyperparameters: dict[str, Any]) -> Transformation:
    """``algorithm(**hyperparameters)`` as a transformation; an unknown name is refused with the accepted ones."""
    accepted = [key for key in inspect.signature(algorithm).parameters if key != "self"]
    check_known(hyperparameters, accepted, f"am.optim.{name} got unknown hyperparameter(s)")
    return from_algorithm(algorithm(**hyperparameters))


def as_optax(opt: Transformation) -> Any:
    """An ``optax.GradientTransformationExtraArgs`` running ``opt`` (see :mod:`.optax_adapter`)."""
    from .optax_adapter import as_optax as convert

    if not isinstance(opt, Transformation):
        raise TypeError(f"opt must be an am.optim transformation (e.g. am.optim.lbfgs()); got {type(opt).__name__}.")
    return convert(opt)
