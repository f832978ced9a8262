"""Global optimizers over any parameter structure and backend.

scipy's ``basinhopping``, ``differential_evolution``, ``shgo``, ``dual_annealing`` and
``direct`` with the user's function, structure and bounds; local solves run through
``am.minimize`` with exact derivatives, differential evolution evaluates each generation as
one batched call, and :func:`multistart` runs local solves from quasi-random starts.
"""

from .basinhopping import basinhopping
from .differential_evolution import differential_evolution
from .direct import direct
from .dual_annealing import dual_annealing
from .multistart import multistart
from .shgo import shgo

__all__ = ["basinhopping", "differential_evolution", "shgo", "dual_annealing", "direct", "multistart"]
