"""Native iterative algorithms, written once over the Python array API.

Each algorithm is a frozen dataclass of hyperparameters with a pure ``init``/``step`` pair
(:mod:`.base`), running on the framework's own flat arrays (NumPy, JAX, torch) through
``array_api_compat``. Three interfaces drive them: ``am.minimize(method=...)``,
``am.iterate`` and the ``am.optim`` updates.

==================  =============================================  ==================
method              algorithm                                      module
==================  =============================================  ==================
``sgd``             SGD, classical / Nesterov momentum, schedules  gradient_descent
``delta-bar-delta`` Jacobs 1988                                    delta_bar_delta
``cg-native``       nonlinear CG (FR, PR, PR+, HS, DY)             conjugate_gradient
``lbfgs-native``    L-BFGS, strong Wolfe; projected with bounds    lbfgs
``hessian-free``    Martens 2010 (Gauss-Newton or Hessian)         hessian_free
``sgd-qn``          Bordes, Bottou & Gallinari 2009/2010           sgd_qn
``tonga``           Le Roux, Manzagol & Bengio 2008                tonga
==================  =============================================  ==================

The algorithms and stopping criteria load on first use: ``am.minimize`` asks
:func:`is_native_method` of every method name, and importing all of them to answer cost a
plain scipy solve in a fresh interpreter about 27 ms.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: method name -> (module, class) of its algorithm; each class's ``name`` is its key
_ALGORITHM_CLASSES = {
    "sgd": ("gradient_descent", "SGD"),
    "delta-bar-delta": ("delta_bar_delta", "DeltaBarDelta"),
    "cg-native": ("conjugate_gradient", "NonlinearCG"),
    "lbfgs-native": ("lbfgs", "LBFGS"),
    "hessian-free": ("hessian_free", "HessianFree"),
    "sgd-qn": ("sgd_qn", "SGDQN"),
    "tonga": ("tonga", "Tonga"),
}
_ALIASES = {
    "l-bfgs-native": "lbfgs-native",
    "ncg": "cg-native",
    "nonlinear-cg": "cg-native",
    "hf": "hessian-free",
    "dbd": "delta-bar-delta",
    "sgdqn": "sgd-qn",
    "momentum": "sgd",
}
_STOPPING = (
    "Criterion",
    "Progress",
    "Stop",
    "MaxIterations",
    "MaxEvaluations",
    "MaxEpochs",
    "GradientTolerance",
    "FunctionTolerance",
    "TimeBudget",
    "AnyOf",
    "AllOf",
)
#: public name -> the submodule that defines it
_EXPORTS = {"Algorithm": "base", **{cls: module for module, cls in _ALGORITHM_CLASSES.values()}, **{name: "stopping" for name in _STOPPING}}

if TYPE_CHECKING:  # for type checkers and IDEs; at run time names load lazily
    from .base import Algorithm
    from .conjugate_gradient import NonlinearCG
    from .delta_bar_delta import DeltaBarDelta
    from .gradient_descent import SGD
    from .hessian_free import HessianFree
    from .lbfgs import LBFGS
    from .sgd_qn import SGDQN
    from .stopping import (
        AllOf,
        AnyOf,
        Criterion,
        FunctionTolerance,
        GradientTolerance,
        MaxEpochs,
        MaxEvaluations,
        MaxIterations,
        Progress,
        Stop,
        TimeBudget,
    )
    from .tonga import Tonga

    ALGORITHMS: dict[str, type[Algorithm]]


def native_method_name(method: object) -> str | None:
    """The canonical native method name, or None if ``method`` is not a native method."""
    if not isinstance(method, str):
        return None
    name = method.lower()
    name = _ALIASES.get(name, name)
    return name if name in _ALGORITHM_CLASSES else None


def is_native_method(method: object) -> bool:
    """Whether ``method`` names a native algorithm (an alias included); imports none of them."""
    return native_method_name(method) is not None


def __getattr__(name: str) -> Any:
    if name == "ALGORITHMS":
        value: Any = {method: __getattr__(cls) for method, (_, cls) in _ALGORITHM_CLASSES.items()}
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "SGD",
    "DeltaBarDelta",
    "NonlinearCG",
    "LBFGS",
    "HessianFree",
    "SGDQN",
    "Tonga",
    "is_native_method",
    "native_method_name",
    "Criterion",
    "Progress",
    "Stop",
    "MaxIterations",
    "MaxEvaluations",
    "MaxEpochs",
    "GradientTolerance",
    "FunctionTolerance",
    "TimeBudget",
    "AnyOf",
    "AllOf",
]
