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
"""

from __future__ import annotations

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

ALGORITHMS: dict[str, type[Algorithm]] = {
    cls.name: cls for cls in (SGD, DeltaBarDelta, NonlinearCG, LBFGS, HessianFree, SGDQN, Tonga)
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


def native_method_name(method: object) -> str | None:
    """The canonical native method name, or None if ``method`` is not a native method."""
    if not isinstance(method, str):
        return None
    name = method.lower()
    name = _ALIASES.get(name, name)
    return name if name in ALGORITHMS else None


def is_native_method(method: object) -> bool:
    return native_method_name(method) is not None


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
