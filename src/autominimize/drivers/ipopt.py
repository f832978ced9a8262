"""``method='ipopt'``: IPOPT through cyipopt, fed exact (and, for large problems, sparse)
derivatives.

IPOPT gets the objective and its gradient from the solve's :class:`~autominimize.problem.Objective`
(one-slot cache, counters, error policy, recording), the constraints from their
``ConstraintFunction``\\ s, and the Hessian of the Lagrangian ``σ∇²f + Σ λᵢ∇²cᵢ`` from ONE
compiled function of the Lagrangian (:mod:`..backends.lagrangian`): its full Hessian for a
dense problem, a few compressed Hessian-vector products for a sparse one
(:mod:`..backends.sparsity`), which give the constraint Jacobian as well.

IPOPT's callbacks (:mod:`.ipopt_problem`) catch what they raise and stop IPOPT; the
exception is raised again here after ``solve`` returns, and a KeyboardInterrupt too, for the
entry point to return the best point.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.optimize as so
import scipy.sparse as sp

from ..backends.lagrangian import backend_name_of, dtype_name, lagrangian_for, supports_exact_lagrangian
from ..backends.sparsity import SparsePattern, detect_pattern, jacobian_only, pattern_from_user, reads_programs
from ..problem import Objective
from .blas_threads import single_blas_thread
from .ipopt_options import IPOPT_OPTIONS, float32_note, set_options, warm_start
from .ipopt_problem import Derivatives, problem_class

__all__ = ["AUTO_SPARSE_MAX_DENSITY", "AUTO_SPARSE_MIN_SIZE", "IPOPT_OPTIONS", "run_ipopt"]

#: sparse='auto' on JAX: detect the pattern from n parameters on ...
AUTO_SPARSE_MIN_SIZE = 100
#: ... and use it when at most this fraction of the dense entries can be nonzero
AUTO_SPARSE_MAX_DENSITY = 0.1

_EXTRA_STATUS = {-5: "Maximum wall time exceeded."}
_INVALID_NUMBER = -13


@dataclass
class _Block:
    """One constraint as rows of IPOPT's g: a ConstraintFunction, or a linear A."""

    rows: slice
    lower: np.ndarray
    upper: np.ndarray
    function: Any = None  # the ConstraintFunction of a nonlinear constraint
    matrix: sp.csr_matrix | None = None  # A of a LinearConstraint


def run_ipopt(
    objective: Objective,
    x0: np.ndarray,
    *,
    second_order: Any = "hess",
    bounds: tuple[np.ndarray, np.ndarray] | None,
    constraints: list,
    tol: float | None,
    callback: Callable | None,
    options: dict | None,
) -> so.OptimizeResult:
    """Solve with IPOPT from ``x0``; the scipy-style ``constraints`` are those
    :func:`~autominimize.constraints.normalize_constraints` made for this solve."""
    try:
        import cyipopt  # noqa: F401 - only to say which extra is missing
    except ImportError:
        raise ImportError("method='ipopt' needs cyipopt, with the IPOPT library: pip install 'autominimize[ipopt]'") from None
    if second_order != "hess" or objective.user_hessian is not None:
        raise ValueError(
            "method='ipopt' computes the Hessian of the Lagrangian itself; hess and hessp are not used. "
            "For IPOPT's quasi-Newton approximation pass options={'hessian_approximation': 'limited-memory'}."
        )
    settings = dict(options or {})
    ours = {key: settings.pop(key) for key in IPOPT_OPTIONS if key in settings}
    n = x0.size
    blocks, sized_at_x0 = _blocks(constraints, x0, n)
    evaluator = _derivatives(objective, blocks, settings, ours, x0, bounds)
    if sized_at_x0:
        evaluator.start(x0)
    m = blocks[-1].rows.stop if blocks else 0
    x_start, warm = warm_start(ours.get("warm_start"), objective.spec, x0, m, settings)
    lower, upper = bounds if bounds is not None else (np.full(n, -np.inf), np.full(n, np.inf))
    problem = problem_class()(
        n=n,
        m=m,
        evaluator=evaluator,
        callback=callback,
        lb=lower,
        ub=upper,
        cl=np.concatenate([b.lower for b in blocks]) if blocks else np.zeros(0),
        cu=np.concatenate([b.upper for b in blocks]) if blocks else np.zeros(0),
    )
    float32 = _in_float32(objective.functions)
    chosen = set_options(problem, settings, tol, float32)
    with single_blas_thread(), evaluator.evaluations():
        x, info = problem.solve(x_start, **(warm or {}))
        if not (problem.interrupted or problem.failure is not None):
            _at_returned_point(objective, x, info, blocks)
    if problem.interrupted:
        raise KeyboardInterrupt
    if problem.failure is not None:
        raise problem.failure
    result = objective.settle(_result(x, info, problem, blocks, objective.spec, evaluator), x0, constrained=bool(blocks))
    if float32:
        result.message += float32_note(result.status, chosen)
    return result


def _derivatives(objective: Objective, blocks: list[_Block], settings: dict, ours: dict, x0: np.ndarray, bounds: Any) -> Derivatives:
    """What IPOPT will be fed: exact (dense or sparse) or quasi-Newton, with its structures.

    Sets ``hessian_approximation='limited-memory'`` in ``settings`` when the backend cannot
    differentiate the problem.
    """
    n = x0.size
    nonlinear = [b for b in blocks if b.function is not None]
    nonlinear_rows = np.concatenate([np.arange(b.rows.start, b.rows.stop) for b in nonlinear]) if nonlinear else np.zeros(0, dtype=np.int64)
    differentiable = _differentiable(objective, nonlinear)
    if settings.get("hessian_approximation") == "exact" and not differentiable:
        raise ValueError(
            "options['hessian_approximation']='exact' needs the objective and the constraints differentiated by the "
            "backend (JAX, PyTorch or TensorFlow, no user-supplied jac); use 'limited-memory'."
        )
    exact = settings.get("hessian_approximation", "exact") == "exact" and differentiable
    if not exact:
        settings.setdefault("hessian_approximation", "limited-memory")
    evaluator = Derivatives(objective, blocks, nonlinear_rows, n)
    evaluator.exact = exact
    if differentiable:
        functions = [b.function.functions for b in nonlinear]
        evaluator.lagrangian = lagrangian_for(objective.functions, functions, nonlinear_rows.size, dtype_name(objective.functions))
        pattern = _choose_pattern(evaluator.lagrangian, ours, x0, bounds, n, nonlinear_rows.size)
        # under IPOPT's quasi-Newton Hessian the Jacobian alone is computed: J's colours only
        evaluator.pattern = pattern if exact or pattern is None else jacobian_only(pattern)
    elif any(ours.get(key) is not None for key in ("jac_sparsity", "hess_sparsity")) or ours.get("sparse") is True:
        raise ValueError(
            "options['sparse'], ['jac_sparsity'] and ['hess_sparsity'] need derivatives from the backend "
            "(JAX, PyTorch or TensorFlow, no user-supplied jac)."
        )
    evaluator.structure()
    evaluator.fuse()
    return evaluator


def _in_float32(functions: Any) -> bool:
    """Whether the backend computes in float32 (a float32 model, or the float32 fallback)."""
    try:
        return dtype_name(functions) == "float32"
    except AttributeError:  # NumPy and user-supplied functions: float64
        return False


def _differentiable(objective: Objective, nonlinear: list[_Block]) -> bool:
    """Whether the backend differentiates the objective and every constraint itself."""
    if objective.user_gradient is not None:
        return False
    if any(b.function.user_jacobian is not None or b.function.finite_differences for b in nonlinear):
        return False
    return supports_exact_lagrangian(objective.functions, [b.function.functions for b in nonlinear])


def _blocks(constraints: list, x0: np.ndarray, n: int) -> tuple[list[_Block], bool]:
    """Each constraint's rows of g and its bounds, in the order given; and whether a constraint
    was evaluated at x0 for its size (see :func:`_size`)."""
    blocks: list[_Block] = []
    start = 0
    evaluated = False
    for item in constraints:
        if isinstance(item, so.LinearConstraint):
            matrix = sp.csr_matrix(np.atleast_2d(item.A) if not sp.issparse(item.A) else item.A, dtype=np.float64)
            size, function = matrix.shape[0], None
            lb, ub = item.lb, item.ub
        else:
            fun = item["fun"] if isinstance(item, dict) else item.fun
            function, matrix = fun.__self__, None
            size, at_x0 = _size(function, x0)
            evaluated = evaluated or at_x0
            if isinstance(item, dict):
                lb, ub = 0.0, (0.0 if item["type"] == "eq" else np.inf)
            else:
                lb, ub = item.lb, item.ub
        rows = slice(start, start + size)
        blocks.append(_Block(rows, _broadcast(lb, size), _broadcast(ub, size), function, matrix))
        start += size
    return blocks, evaluated


def _size(function: Any, x0: np.ndarray) -> tuple[int, bool]:
    """The number of values of a nonlinear constraint, and whether it was evaluated at x0 for it.

    JAX and TensorFlow read it from the traced program (kept for a later solve), so that no
    value is computed where IPOPT does not ask (it may start from x0 moved inside the bounds);
    PyTorch, NumPy and user-supplied functions are evaluated at x0, and so is a program that
    fails to trace, so that the failure is raised as an evaluation's, with the point."""
    if backend_name_of(function.functions) in ("jax", "tensorflow") and function.user_fun_and_jac is None:
        try:
            size = int(function.functions.m)
        except Exception:  # noqa: BLE001 - raised again by the evaluation below
            pass
        else:
            function.check_size(size)  # lb and ub against the size
            return size, False
    return function.value(x0).size, True


def _broadcast(value: Any, size: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (size,)).astype(np.float64)


def _choose_pattern(lagrangian: Any, ours: dict, x0: np.ndarray, bounds: Any, n: int, m: int) -> SparsePattern | None:
    """The sparse pattern to use, or None for dense derivatives (see docs/large-constrained.md)."""
    sparse = ours.get("sparse", "auto")
    if sparse not in (True, False, "auto", None):
        raise ValueError(f"options['sparse']={sparse!r} is not accepted; use True, False or 'auto' (default).")
    user_jac, user_hess = ours.get("jac_sparsity"), ours.get("hess_sparsity")
    given = user_jac is not None or user_hess is not None
    if sparse is False:
        if given:
            raise ValueError("options['sparse']=False contradicts the jac_sparsity/hess_sparsity given; drop one.")
        return None
    if given and (user_hess is not None and (user_jac is not None or m == 0)):
        return pattern_from_user(user_jac, user_hess, n, m, kept=lagrangian.patterns)
    if sparse in ("auto", None) and not given and (lagrangian.backend != "jax" or n < AUTO_SPARSE_MIN_SIZE or not reads_programs()):
        return None
    detected = lagrangian.patterns.get("detected")
    cached = detected is not None
    if detected is None:
        detected = lagrangian.patterns["detected"] = detect_pattern(lagrangian, x0, bounds)
    if given:
        pattern = pattern_from_user(user_jac, user_hess, n, m, detected, kept=lagrangian.patterns)
    else:
        pattern = detected
        pattern.cached = cached
    if sparse in ("auto", None) and not given:
        dense = m * n + n * (n + 1) // 2
        if (pattern.jac_rows.size + pattern.hess_rows.size) > AUTO_SPARSE_MAX_DENSITY * dense:
            return None
    return pattern


def _at_returned_point(objective: Objective, x: np.ndarray, info: dict, blocks: list[_Block]) -> None:
    """Put f and g at the point IPOPT returns into ``info`` where they are not IPOPT's.

    IPOPT reports f and g at its last iterate, which may lie just outside the bounds
    (``bound_relax_factor``); with ``honor_original_bounds`` it returns that iterate moved
    onto the bounds. There f, its gradient and g are evaluated (and counted) again.
    """
    x = np.asarray(x, dtype=np.float64)
    if objective.known_gradient(x) is not None:
        return
    info["obj_val"], _ = objective.value_and_grad(x)
    if blocks:
        info["g"] = np.concatenate([b.function.value(x) if b.function is not None else b.matrix @ x for b in blocks])


def _result(x: np.ndarray, info: dict, problem: Any, blocks: list[_Block], spec: Any, evaluator: Derivatives) -> so.OptimizeResult:
    status = int(info["status"])
    message = info["status_msg"].decode() if isinstance(info["status_msg"], bytes) else str(info["status_msg"])
    if status in _EXTRA_STATUS:
        message = _EXTRA_STATUS[status]
    if problem.stopped:
        message = f"{message} (the callback asked to stop)"
    mult_g = np.asarray(info["mult_g"], dtype=np.float64)
    g = np.asarray(info["g"], dtype=np.float64)
    result = so.OptimizeResult(
        x=np.asarray(x, dtype=np.float64),
        # IPOPT stopped by a value that is not finite reports 0, not the value at x
        fun=math.nan if status == _INVALID_NUMBER else float(info["obj_val"]),
        success=status == 0,
        status=status,
        message=message,
        nit=problem.iterations,
        mult_g=mult_g,
        v=[mult_g[b.rows] for b in blocks],
        constr=[g[b.rows] for b in blocks],
        mult_x_L=spec.restore(np.asarray(info["mult_x_L"], dtype=np.float64)),
        mult_x_U=spec.restore(np.asarray(info["mult_x_U"], dtype=np.float64)),
        hessian="exact" if evaluator.exact else "limited-memory",
    )
    if evaluator.pattern is not None:
        result.sparsity = evaluator.pattern.summary()
    return result
