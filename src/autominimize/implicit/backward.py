"""The framework-neutral half of a derivative: the active set and the adjoint at the solution,
failures reported."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .adjoint import ActiveSet, Adjoint, ImplicitDifferentiationWarning, find_active_set, solve_adjoint
from .problem import ImplicitProblem

__all__ = ["active_set_at", "adjoint_at", "count_hvps"]


def _constraint_bounds(problem: ImplicitProblem, ops: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    if not problem.constraints:
        return None
    ops.constraints(x)
    return problem.constraint_bounds(ops.sizes)


def active_set_at(problem: ImplicitProblem, ops: Any, x: np.ndarray, success: bool) -> ActiveSet:
    """The active set and multipliers at the solution ``x`` (no warning: the derivative that
    needs them warns)."""
    return find_active_set(ops, x, bounds=problem.bounds, constraint_bounds=_constraint_bounds(problem, ops, x), success=success)


def adjoint_at(problem: ImplicitProblem, ops: Any, x: np.ndarray, v: np.ndarray, success: bool) -> Adjoint:
    """The adjoint for cotangent ``v`` at the solution ``x``; a warning when it is NaN.

    ``ops`` is the framework adapter's :class:`~.adjoint.Operators`, with ``sizes`` (the
    number of values of each constraint) known once its ``constraints`` ran.
    """
    c_bounds = _constraint_bounds(problem, ops, x)
    adjoint = solve_adjoint(ops, x, v, bounds=problem.bounds, constraint_bounds=c_bounds, success=success)
    if adjoint.failure is not None:
        warnings.warn(f"the derivative of the solution with respect to args is NaN: {adjoint.failure}.", ImplicitDifferentiationWarning, stacklevel=2)
    return adjoint


def count_hvps(result: Any, adjoint: Adjoint) -> None:
    """Add a backward pass's Hessian-vector products to the result it differentiates."""
    result["implicit_nhvp"] = result.get("implicit_nhvp", 0) + adjoint.nhvp
    result["implicit_nbackward"] = result.get("implicit_nbackward", 0) + 1
