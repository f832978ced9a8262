"""PyTorch integration: a ``torch.optim.Optimizer`` that runs a whole scipy solve per step.

* :class:`ScipyOptimizer`: ``step(closure)`` minimizes the closure's loss over the
  optimizer's parameters with any ``scipy.optimize.minimize`` method and leaves the solution
  in the parameters (same tensors, dtype and device).
* :class:`MinimizeWrapper`: gngdb/pytorch-minimize's interface on top of it.
* :func:`function_factory` and :func:`load_params`: a model as a pure function of a
  parameter dict, for ``am.minimize``, and the way back into the model.

The closure may call ``loss.backward()`` itself or only return the loss; a gngdb
``Closure`` object gives second-order methods the loss as a pure function of the parameters.
"""

from .integrations.torch_global import (
    SHGO,
    BasinHopping,
    BasinHoppingWrapper,
    DifferentialEvolution,
    DifferentialEvolutionWrapper,
    DualAnnealing,
    DualAnnealingWrapper,
    SHGOWrapper,
)
from .integrations.torch_models import function_factory, load_params
from .integrations.torch_scipy import MinimizeWrapper, ScipyOptimizer
from .optim.torch_optimizer import Optimizer

__all__ = [
    "ScipyOptimizer",
    "MinimizeWrapper",
    "function_factory",
    "load_params",
    "Optimizer",
    "BasinHopping",
    "DifferentialEvolution",
    "SHGO",
    "DualAnnealing",
    "BasinHoppingWrapper",
    "DifferentialEvolutionWrapper",
    "SHGOWrapper",
    "DualAnnealingWrapper",
]
