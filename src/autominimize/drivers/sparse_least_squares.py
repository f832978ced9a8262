"""A sparse residual Jacobian for ``am.least_squares`` ('trf', 'dogbox'), from compressed passes.

The residuals ``r(x)`` are seen as ``λ · r(x)`` (:class:`..backends.lagrangian.Lagrangian`
without an objective), which gives ``J · s`` for one seed ``s`` per colour of J's columns:
all the forward passes of ``r`` in one compiled call on JAX, Hessian-vector products of
``λ · r`` with ``[s, 0, 0]`` on PyTorch and TensorFlow. The pattern is read from the program (asdex, JAX), probed
(PyTorch, TensorFlow) or the caller's ``jac_sparsity``. scipy then solves its trust-region
subproblems with LSMR, which needs only products with J and Jᵀ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..backends.lagrangian import backend_name_of, dtype_name, lagrangian_for, supports_exact_lagrangian
from ..backends.sparsity import SparsePattern, jacobian_pattern, pattern_from_user, reads_programs

__all__ = ["LEAST_SQUARES_AUTO_MIN_SIZE", "sparse_residual_jacobian"]

#: jac_sparsity=None on JAX: detect the pattern from n parameters on, and use it when at most
#: 10% of J's entries can be nonzero
LEAST_SQUARES_AUTO_MIN_SIZE = 1000
_AUTO_MAX_DENSITY = 0.1


def sparse_residual_jacobian(
    problem: Any, x0: np.ndarray, bounds: Any, jac_sparsity: Any, method: str, tr_solver: str | None
) -> tuple[Callable[[np.ndarray], sp.csr_matrix], SparsePattern] | None:
    """The sparse Jacobian callable and its pattern, or None for the dense one.

    ``jac_sparsity``: None (automatic, see :data:`LEAST_SQUARES_AUTO_MIN_SIZE`), False
    (dense), True (the pattern read or probed), or an (m, n) pattern.
    """
    asked = jac_sparsity is not None and jac_sparsity is not False
    if jac_sparsity is False:
        return None
    usable = method != "lm" and tr_solver != "exact" and problem.user_jacobian is None and problem.user_fun_and_jac is None
    usable = usable and supports_exact_lagrangian(None, [problem.functions])
    if not usable:
        if asked:
            raise ValueError(
                "jac_sparsity is for scipy's sparse finite differences; pass it with jac='2-point' or '3-point'. "
                "A sparse Jacobian from the backend needs residuals differentiated by JAX, PyTorch or TensorFlow, "
                "method='trf' or 'dogbox' (not 'lm') and tr_solver 'lsmr' or None."
            )
        return None
    n = x0.size
    if not asked and (backend_name_of(problem.functions) != "jax" or n < LEAST_SQUARES_AUTO_MIN_SIZE or not reads_programs()):
        return None
    m = problem.value(x0).size
    lagrangian = lagrangian_for(None, [problem.functions], m, dtype_name(problem.functions))
    if asked and jac_sparsity is not True:
        pattern = pattern_from_user(jac_sparsity, None, n, m, in_options=False, kept=lagrangian.patterns)
    else:
        pattern = jacobian_pattern(lagrangian, x0, bounds)
        if not asked and pattern.jac_rows.size > _AUTO_MAX_DENSITY * m * n:
            return None
    seeds = pattern.seeds()

    def jacobian(x: np.ndarray) -> sp.csr_matrix:
        x = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
        compressed = lagrangian.jacobian_compressed(x, seeds)
        problem.njev += 1
        return sp.csr_matrix((pattern.jacobian_values(compressed), (pattern.jac_rows, pattern.jac_cols)), shape=(m, n))

    return jacobian, pattern
