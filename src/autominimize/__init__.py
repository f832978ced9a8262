"""autominimize: scipy.optimize with exact derivatives from NumPy, JAX, PyTorch or TensorFlow.

>>> import autominimize as am
>>> res = am.minimize(lambda x: ((x - 3.0) ** 2).sum(), [0.0, 1.0], backend="numpy")
>>> [round(v, 4) for v in res.x]
[3.0, 3.0]

Importing this package imports no framework: each is loaded when a solve first needs it.
"""

from ._minimize import PrecisionFallbackWarning, minimize
from .backends import clear_compile_cache
from .bounds import BoundsError
from .constraints import ConstraintError
from .history import History
from .log import read_log
from .params import ParamSpec

__version__ = "0.1.0"

# Integrations import their framework, so they load on first attribute access only.
_LAZY_SUBMODULES = ("torch", "keras", "tf", "optim", "plot")


def __getattr__(name: str):
    if name in _LAZY_SUBMODULES:
        import importlib

        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'autominimize' has no attribute {name!r}")


__all__ = [
    "minimize",
    "ParamSpec",
    "BoundsError",
    "ConstraintError",
    "History",
    "read_log",
    "PrecisionFallbackWarning",
    "clear_compile_cache",
    "__version__",
]
