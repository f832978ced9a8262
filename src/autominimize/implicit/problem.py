"""What is differentiated: the objective (or residuals), its constraints and bounds, as data.

A framework adapter evaluates these with x as one flat framework vector and θ (the leaves of
``args``) as framework arrays; nothing here imports a framework.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import LinearConstraint, NonlinearConstraint

from ..calling import make_caller, resolve_unpack
from ..params import ParamSpec, tree_flatten, tree_leaves

__all__ = ["Constraint", "ImplicitProblem"]


@dataclass
class Constraint:
    """One constraint ``lb <= c(params) <= ub``; ``matrix`` set for a LinearConstraint (c = A x)."""

    fun: Callable | None
    lower: Any
    upper: Any
    own_args: tuple | None = None
    matrix: np.ndarray | None = None


@dataclass
class ImplicitProblem:
    """The solved problem as functions of (params, args).

    ``args_leaves`` are the leaves of ``args`` (optree's order); ``differentiable`` marks the
    leaves the caller's framework differentiates with respect to.
    """

    fun: Callable
    spec: ParamSpec
    template: Any
    unpack: str
    requested_unpack: str
    args_treedef: Any
    residual: bool = False
    bounds: tuple[np.ndarray, np.ndarray] | None = None
    constraints: list[Constraint] = field(default_factory=list)

    def args(self, leaves: list) -> tuple:
        return tuple(self.args_treedef.unflatten(leaves))

    def objective_output(self, params: Any, args: tuple) -> Any:
        """What ``fun`` returns at params: a scalar, or the residuals (any structure)."""
        return make_caller(self.fun, self.unpack, args, self.template)(params)

    def constraint_outputs(self, params: Any, args: tuple) -> list[Any]:
        """Each nonlinear constraint's output at params (LinearConstraints are applied by the adapter)."""
        outputs = []
        for item in self.constraints:
            if item.fun is not None:
                extra = item.own_args if item.own_args is not None else args
                unpack = resolve_unpack(item.fun, self.template, self.requested_unpack, len(extra))
                outputs.append(make_caller(item.fun, unpack, extra, self.template)(params))
        return outputs

    def constraint_bounds(self, sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper limits of the concatenated constraint values (``sizes`` per constraint)."""
        lower, upper = [], []
        for item, size in zip(self.constraints, sizes):
            lower.append(np.broadcast_to(np.asarray(item.lower, dtype=np.float64), (size,)))
            upper.append(np.broadcast_to(np.asarray(item.upper, dtype=np.float64), (size,)))
        if not lower:
            return np.zeros(0), np.zeros(0)
        return np.concatenate(lower), np.concatenate(upper)


def split_args(args: tuple) -> tuple[list, Any]:
    """The leaves of ``args`` (tensors and arrays are leaves) and its structure."""
    leaves, treedef = tree_flatten(tuple(args), none_is_leaf=False)
    return leaves, treedef


def flat_solution(x: Any) -> np.ndarray:
    """A solution's leaves as one float64 vector, in order."""
    from ..params import leaf_to_numpy

    return np.concatenate([np.ravel(leaf_to_numpy(leaf)).astype(np.float64) for leaf in tree_leaves(x, none_is_leaf=False)])


def keep_host_fields(record: dict, result: dict, traced: tuple[str, ...]) -> None:
    """Copy into ``record`` (the result the user holds) what the host solve ``result`` made
    besides the fields ``traced`` by the framework: ``history``, ``njev``, ``hess_inv``...
    The solve may run after the result is returned (when a compiled graph runs), so this is
    done each time it runs; the fields are then those of the latest solve."""
    record.update((key, value) for key, value in result.items() if key not in traced)


def parse_constraints(constraints: Any) -> list[Constraint]:
    """scipy's and autograd-minimize's constraint forms as :class:`Constraint` items."""
    if constraints is None:
        return []
    items = [constraints] if isinstance(constraints, (dict, LinearConstraint, NonlinearConstraint)) else list(constraints)
    parsed = []
    for item in items:
        if isinstance(item, LinearConstraint):
            parsed.append(Constraint(None, item.lb, item.ub, matrix=np.atleast_2d(np.asarray(item.A, dtype=np.float64))))
        elif isinstance(item, NonlinearConstraint):
            parsed.append(Constraint(item.fun, item.lb, item.ub))
        elif isinstance(item, dict):
            own = tuple(item["args"]) if "args" in item else None
            if "lb" in item or "ub" in item:
                lower, upper = item.get("lb", -np.inf), item.get("ub", np.inf)
            elif item.get("type", "eq") == "eq":
                lower, upper = 0.0, 0.0
            else:
                lower, upper = 0.0, np.inf
            parsed.append(Constraint(item["fun"], lower, upper, own_args=own))
        else:
            raise TypeError(f"constraints: {type(item).__name__} is not a dict, LinearConstraint or NonlinearConstraint.")
    return parsed


def build_problem(
    fun: Callable,
    template: Any,
    args: tuple,
    unpack: str,
    *,
    residual: bool = False,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
    constraints: Any = (),
) -> ImplicitProblem:
    """The problem for ``fun`` at x0's structure ``template`` (leaves concrete arrays)."""
    spec = ParamSpec.from_tree(template)
    _, treedef = split_args(args)
    return ImplicitProblem(
        fun=fun,
        spec=spec,
        template=template,
        unpack=resolve_unpack(fun, template, unpack, len(args)),
        requested_unpack=unpack,
        args_treedef=treedef,
        residual=residual,
        bounds=bounds,
        constraints=parse_constraints(constraints),
    )
