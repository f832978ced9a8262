"""Finite differences: forward, backward and central, bound-aware, evaluated in parallel.

Steps are relative to the size of each coordinate, ``h_i = rel_step * max(1, |x_i|)``, with
``rel_step = sqrt(eps)`` for one-sided differences (error O(h) + O(eps/h), balanced at
sqrt(eps)) and ``eps**(1/3)`` for central ones (error O(h**2) + O(eps/h)); see Nocedal &
Wright, *Numerical Optimization*, 2nd ed., section 8.1. Each step is rounded so that
``x + h`` is exactly representable.

Near a bound a step that would leave the box switches side; a central difference that does
not fit becomes the second-order one-sided formula ``(-3 f(x) + 4 f(x+h) - f(x+2h)) / 2h``,
and where even one step does not fit on either side, the step shrinks to the room there is.
The function is therefore never evaluated outside ``bounds``. A fixed variable (lower bound
equal to upper bound) is not stepped: its derivative is zero, as a solver never moves it.

With ``Evaluator(tolerate_failures=True)`` (``error_handling='continue'`` in the solvers), a
difference point where the function raises or is not finite is replaced by the mirrored
point on the other side of x (a one-sided difference there); a coordinate where both sides
fail gets a NaN derivative, which the solver's error policy then handles.

All points of one derivative are evaluated as one batch: serially, on ``workers`` local
processes, or on any ``concurrent.futures.Executor`` (a ``dask.distributed`` Client's
``get_executor()`` included), so the n + 1 evaluations of a forward-difference gradient run
at once.

>>> import numpy as np
>>> from autominimize import numdiff
>>> g = numdiff.gradient(lambda x: (x ** 2).sum(), np.array([1.0, 2.0]), method="central")
>>> np.round(g, 6).tolist()
[2.0, 4.0]
"""

from .evaluator import Evaluator
from .flat import approx_jacobian
from .plans import METHODS, canonical_method, default_rel_step, difference_plan
from .public import gradient, jacobian

__all__ = ["METHODS", "gradient", "jacobian", "default_rel_step", "canonical_method", "Evaluator", "approx_jacobian", "difference_plan"]
