"""The framework-neutral half of a backward pass: the adjoint at the solution, failures reported."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .adjoint import Adjoint, ImplicitDifferentiationWarning, solve_adjoint
from .problem import ImplicitProblem

__all__ = ["adjoint_at", "count_hvps"]


def adjoint_at(problem: ImplicitProblem, ops: Any, x: np.ndarray, v: np.ndarray, success: bool) -> Adjoint:
    """The adjoint for cotangent ``v`` at the solution ``x``; a warning when it is NaN.

    ``ops`` is the framework adapter's :class:`~.adjoint.Operators`, with ``sizes`` (the
    number of values of each constraint) known once its ``constraints`` ran.
    """
    c_bounds = None
    if problem.constraints:
        ops.constraints(x)
        c_bounds = problem.constraint_bounds(ops.sizes)
    adjoint = solve_adjoint(ops, x, v, bounds=problem.bounds, constraint_bounds=c_bounds, success=success)
    if adjoint.failure is not None:
        warnings.warn(
            f"the derivative of the solution with respect to args is NaN: {adjoint.failure}.",
            ImplicitDifferentiationWarning,
            stacklevel=2,
        )
    return adjoint


def count_hvps(result: Any, adjoint: Adjoint) -> None:
    """Add a backward pass's Hessian-vector products to the result it differentiates."""
    result["implicit_nhvp"] = result.get("implicit_nhvp", 0) + adjoint.nhvp
    result["implicit_nbackward"] = result.get("implicit_nbackward", 0) + 1
