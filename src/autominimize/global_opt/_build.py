"""The flat global problem of a user's function: :func:`build_problem`.

``am.basinhopping`` and friends build their problem here from ``fun``, ``args`` and x0 or
the bounds; the torch integration builds its own from a closure.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import scipy.optimize as so

from .._setup import Setup, cached, compile_key, prepare
from ..constraints import normalize_constraints
from ..problem import Objective, check_error_handling
from ._parallel import RemoteValue
from ._problem import GlobalProblem
from ._structure import problem_structure

__all__ = ["build_problem"]


def build_problem(
    fun: Callable,
    x0: Any,
    bounds: Any,
    args: tuple,
    *,
    backend: str | None,
    precision: str | None,
    unpack: str,
    finite: bool,
    torch_device: Any = None,
    error_handling: str = "raise",
    fun_name: str = "fun",
) -> tuple[GlobalProblem, Any, tuple[np.ndarray, np.ndarray] | None]:
    """The flat problem of ``fun``; the structure comes from ``x0`` or else from ``bounds``.

    Returns the problem, the structure template (x0 itself when given) and the flat bounds.
    ``finite`` requires finite bounds on every parameter. ``error_handling`` applies to
    every evaluation, batched, remote and local ones included. ``fun_name`` is the name the
    entry point gives ``fun`` (scipy's ``func`` for most global optimizers).
    """
    if not callable(fun):
        raise TypeError(f"{fun_name} must be callable; got {type(fun).__name__}.")
    check_error_handling(error_handling)
    args = args if isinstance(args, tuple) else (args,)
    template, _, flat_bounds = problem_structure(x0, bounds, finite)
    setup = prepare(fun, template, args, unpack=unpack, precision=precision, device=torch_device, precision_from_x0=False)
    backend_name = setup.choose_backend(backend)
    objective = Objective(
        setup.compile("scalar", fun, setup.call),
        setup.spec,
        differentiable=False,
        error_handling=error_handling,
        batched=_batched_values(setup, torch_device),
    )
    keys = setup.x0 if setup.unpack == "kwargs" else None
    problem = GlobalProblem(
        setup.spec,
        objective,
        _local_solve(setup, torch_device, error_handling),
        backend=backend_name,
        precision=setup.dtype,
        context=lambda: setup.backend_obj.solve_context(setup.dtype),
        remote=RemoteValue(fun, setup.unpack, args, keys, setup.spec, backend_name, setup.dtype, error_handling),
        make_constraints=_constraint_maker(setup, error_handling),
    )
    return problem, setup.x0, flat_bounds


def _local_solve(setup: Setup, torch_device: Any, error_handling: str) -> Callable[[np.ndarray, tuple | None, dict], so.OptimizeResult]:
    """One ``am.minimize`` of the user's function from a flat start, within a flat box."""
    from .._minimize import minimize

    unpack = setup.callers.requested

    def local_solve(x: np.ndarray, box: tuple | None, kwargs: dict) -> so.OptimizeResult:
        box_bounds = None if box is None else so.Bounds(box[0], box[1])
        return minimize(
            setup.fun,
            setup.spec.restore(x),
            args=setup.args,
            bounds=box_bounds,
            backend=setup.backend,
            precision=setup.dtype,
            unpack=unpack,
            torch_device=torch_device,
            error_handling=error_handling,
            **kwargs,
        )

    return local_solve


def _batched_values(setup: Setup, torch_device: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Values at the rows of ``points`` in one call, compiled on first use."""
    device = torch_device if setup.backend == "torch" else None
    key = compile_key(setup.backend, "batched", setup.spec, setup.dtype, setup.unpack, setup.args, device)
    compiled: list = []  # looked up in the compile cache once per problem, not per generation

    def build() -> Any:
        if device is not None:
            return setup.backend_obj.compile_batched(setup.call, setup.spec, setup.dtype, device=device)
        return setup.backend_obj.compile_batched(setup.call, setup.spec, setup.dtype)

    def batched(points: np.ndarray) -> np.ndarray:
        if not compiled:
            compiled.append(cached(setup.fun, key, setup.args, build))
        return compiled[0](points)

    return batched


def _constraint_maker(setup: Setup, error_handling: str) -> Callable[[Any, str], list]:
    """``make_constraints(constraints, method)``: the user's constraints as scipy's objects on
    the flat vector, compiled like the objective."""

    def make_constraints(constraints: Any, method: str) -> list:
        def compile_vector(c: Callable, extra: tuple) -> Any:
            return setup.compile("vector", c, extra=extra or setup.args)

        def make_call(f: Callable, extra: tuple) -> Callable:
            return setup.flat_call(f, extra or setup.args)

        return normalize_constraints(constraints, method, setup.spec, compile_vector, make_call, error_handling, setup.bounds)[0]

    return make_constraints
