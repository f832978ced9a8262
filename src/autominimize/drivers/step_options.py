"""scipy's finite-difference step options (``eps``, ``finite_diff_rel_step``): honoured or refused.

scipy reads them only when it takes the differences itself. autominimize computes the
gradient itself (autodiff, the user's ``jac``, or its own differences on the NumPy backend),
where scipy would silently ignore them. On the NumPy backend without a ``jac``, for the
methods scipy documents them for, the differences are then left to scipy, which takes them
with these steps, as a plain scipy call does; anywhere else they are refused by name.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..validation import STEP_OPTIONS
from .scipy_pipeline import MethodPlan

__all__ = ["STEP_OPTIONS", "honour_step_options"]
#: the methods whose gradient scipy can difference with them (``jac='2-point'``)
_DIFFERENCED = frozenset({"bfgs", "cg", "l-bfgs-b", "tnc", "slsqp"})


def honour_step_options(plan: MethodPlan, options: Any, *, backend: str, user_gradient: bool, parallel: bool) -> MethodPlan:
    """``plan``, or a plan whose gradient scipy differences with the step ``options`` give."""
    given = [name for name in STEP_OPTIONS if isinstance(options, dict) and name in options]
    if not given or plan.info.gradient in (None, "scipy"):
        return plan  # no step given, or scipy takes the differences (or warns that it takes none)
    if backend == "numpy" and not user_gradient and plan.name in _DIFFERENCED and not parallel:
        # scipy takes eps (an absolute step) with jac=None, finite_diff_rel_step with jac='2-point'
        return replace(plan, info=replace(plan.info, gradient="scipy"), gradient_scheme=None if "eps" in given else "2-point")
    if user_gradient:
        source = "the one your jac returns"
    elif backend == "numpy":
        source = "autominimize's own finite differences" + (" in parallel (workers=/executor=)" if parallel else f" (method={plan.name!r})")
    else:
        source = f"exact ({backend} autodiff)"
    raise ValueError(
        f"options[{given[0]!r}] is the step of scipy's finite differences, which this solve does not take: the gradient is "
        f"{source}. Remove it, or pass jac='2-point' to have scipy take the differences with it."
    )
