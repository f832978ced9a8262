"""The problem layer: every evaluation of the user's functions is cached, counted and put
under the error policy here.

:class:`Objective` is the scalar objective of ``am.minimize`` and the integrations;
:class:`VectorObjective` the vector one, with :class:`ResidualObjective` (least squares) and
the constraints of :mod:`autominimize.constraints` as thin layers on it.
"""

from .policy import ERROR_HANDLING, Counters, check_error_handling, numdiff_evaluator
from .residuals import GaussNewtonFunctions, ResidualObjective, sum_of_squares
from .scalar import Objective
from .vector import VectorObjective

__all__ = [
    "ERROR_HANDLING",
    "Counters",
    "GaussNewtonFunctions",
    "Objective",
    "ResidualObjective",
    "VectorObjective",
    "check_error_handling",
    "numdiff_evaluator",
    "sum_of_squares",
]
