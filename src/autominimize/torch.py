"""PyTorch integration: a ``torch.optim.Optimizer`` that runs a whole scipy solve per step.

* :class:`ScipyOptimizer`: ``step(closure)`` minimizes the closure's loss over the
  optimizer's parameters with any ``scipy.optimize.minimize`` method and leaves the solution
  in the parameters (same tensors, dtype and device).
* :class:`MinimizeWrapper`: gngdb/pytorch-minimize's interface on top of it.
* :func:`function_factory` and :func:`load_params`: a model as a pure function of a
  parameter dict, for ``am.minimize``, and the way back into the model.

The closure is evaluated at each point scipy asks for by writing the point into the
parameters in place. It may call ``loss.backward()`` itself (the gradient is read from
``p.grad``, as ``torch.optim.LBFGS`` does) or only return the loss (it is then
differentiated here: once for gradients, twice for Hessian-vector products and Hessians).
A gngdb ``Closure`` object (``.model`` and a static ``loss(model)``) gives second-order
methods the loss as a pure function of the parameters through ``torch.func.functional_call``.
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
from .integrations.torch_scipy import MinimizeWrapper, ScipyOptimizer, function_factory, load_params
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
