"""autominimize: scipy.optimize with exact derivatives from NumPy, JAX, PyTorch or TensorFlow.

>>> import numpy as np, autominimize as am
>>> res = am.minimize(lambda x: ((x - 3.0) ** 2).sum(), np.array([0.0, 1.0]), backend="numpy")
>>> [round(float(v), 4) for v in res.x]
[3.0, 3.0]

``import autominimize`` is cheap: it imports no framework and not even scipy. Each public
name is loaded from its module the first time it is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.8.0"

#: public name -> the module that defines it
_EXPORTS = {
    "minimize": "._minimize",
    "PrecisionFallbackWarning": "._precision_fallback",
    "ImplicitDifferentiationWarning": ".implicit",
    "iterate": "._iterate",
    "least_squares": "._least_squares",
    "curve_fit": "._curve_fit",
    "residuals": "._residuals",
    "Residuals": "._residuals",
    "batched_least_squares": "._batched_fit",
    "batched_curve_fit": "._batched_fit",
    "check_grad": "._check_grad",
    "GradientCheck": "._check_grad",
    "basinhopping": ".global_opt",
    "differential_evolution": ".global_opt",
    "shgo": ".global_opt",
    "dual_annealing": ".global_opt",
    "direct": ".global_opt",
    "multistart": ".global_opt",
    "read_log": ".recording.log_reader",
    "SQLiteLog": ".recording.log_writer",
    "LogError": ".recording.log_schema",
    "LogWriteWarning": ".recording.log_writer",
    "History": ".recording.history",
    "ParamSpec": ".params",
    "BoundsError": ".bounds",
    "ConstraintError": ".constraints",
    "clear_compile_cache": ".backends",
}
#: submodules reached as attributes (``am.torch``, ``am.plot``...); integrations import
#: their framework, so they load on first use only
_SUBMODULES = ("torch", "keras", "tf", "optim", "plot", "numdiff", "native", "bench", "testing")

if TYPE_CHECKING:  # for type checkers and IDEs; at run time names load lazily
    from ._batched_fit import batched_curve_fit, batched_least_squares
    from ._check_grad import GradientCheck, check_grad
    from ._iterate import iterate
    from ._curve_fit import curve_fit
    from ._least_squares import least_squares
    from ._residuals import Residuals, residuals
    from ._minimize import minimize
    from ._precision_fallback import PrecisionFallbackWarning
    from .implicit import ImplicitDifferentiationWarning
    from .backends import clear_compile_cache
    from .bounds import BoundsError
    from .constraints import ConstraintError
    from .global_opt import basinhopping, differential_evolution, direct, dual_annealing, multistart, shgo
    from .params import ParamSpec
    from .recording.history import History
    from .recording.log_reader import read_log
    from .recording.log_schema import LogError
    from .recording.log_writer import LogWriteWarning, SQLiteLog


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'autominimize' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))


__all__ = sorted(_EXPORTS) + ["__version__"]
