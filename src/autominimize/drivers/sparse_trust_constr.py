"""Sparse derivatives for ``trust-constr``: sparse constraint Jacobians and Hessians as
``LinearOperator``\\ s, from the compressed passes of :mod:`..backends.sparsity`.

The nonlinear constraints are stacked into ``λ · c(x)`` (:class:`..backends.lagrangian.Lagrangian`
without an objective): the pattern of J and of Σ λᵢ∇²cᵢ is found once (asdex on JAX, probing
on PyTorch and TensorFlow, or the caller's ``options['jac_sparsity']``), and at each point a
few passes (forward passes of the constraints in one call on JAX, Hessian-vector products
elsewhere) give every constraint's Jacobian as a CSR matrix. A constraint's
Hessian ``Σ vᵢ∇²cᵢ`` is a LinearOperator whose products are Hessian-vector products of the
same function, and the objective's Hessian reaches trust-constr as products too
(``hessp``), so no (n, n) or dense (m, n) matrix is formed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import NonlinearConstraint
from scipy.sparse.linalg import LinearOperator

from ..backends.lagrangian import backend_name_of, dtype_name, lagrangian_for, supports_exact_lagrangian
from ..backends.sparsity import SparsePattern, jacobian_pattern, pattern_from_user, reads_programs
from ..problem import Objective
from .ipopt import AUTO_SPARSE_MAX_DENSITY

__all__ = ["SPARSE_OPTIONS", "TRUST_CONSTR_AUTO_MIN_SIZE", "sparse_constraints"]

#: autominimize's keys in trust-constr's ``options``
SPARSE_OPTIONS = ("sparse", "jac_sparsity", "hess_sparsity")
#: sparse='auto' on JAX: detect the Jacobian's pattern from n parameters on (below, dense
#: trust-constr is as fast: 1.5 s dense against 5.9 s for a first sparse solve of the banded
#: problem at n = 300, 7 s dense at n = 1000)
TRUST_CONSTR_AUTO_MIN_SIZE = 1000


def sparse_constraints(
    objective: Objective, x0: np.ndarray, bounds: Any, constraints: list, options: dict | None, second_order: Any
) -> tuple[list, dict | None, SparsePattern | None]:
    """trust-constr's constraints with sparse derivatives when the rule or the caller asks
    for them; the options without autominimize's keys; the pattern used (or None)."""
    if options is None or not any(key in options for key in SPARSE_OPTIONS):
        settings, ours = options, {}
    else:
        settings = {k: v for k, v in options.items() if k not in SPARSE_OPTIONS}
        ours = {k: options[k] for k in SPARSE_OPTIONS if k in options}
    sparse = ours.get("sparse", "auto")
    if sparse not in (True, False, "auto", None):
        raise ValueError(f"options['sparse']={sparse!r} is not accepted; use True, False or 'auto' (default).")
    if ours.get("hess_sparsity") is not None:
        raise ValueError("options['hess_sparsity'] is for method='ipopt'; trust-constr gets Hessian-vector products, which need no pattern.")
    user_jac = ours.get("jac_sparsity")
    asked = sparse is True or user_jac is not None
    if sparse is False:
        if user_jac is not None:
            raise ValueError("options['sparse']=False contradicts the jac_sparsity given; drop one.")
        return constraints, settings, None
    nonlinear = [item for item in constraints if isinstance(item, NonlinearConstraint)]
    functions = [item.fun.__self__ for item in nonlinear]
    usable = (
        bool(nonlinear)
        and second_order in ("hess", "hessp")
        and objective.user_hessian is None
        and all(cf.user_jacobian is None and not cf.finite_differences for cf in functions)
        and supports_exact_lagrangian(None, [cf.functions for cf in functions])
    )
    if not usable:
        if asked:
            raise ValueError(
                "options['sparse'] and ['jac_sparsity'] for trust-constr need nonlinear constraints differentiated "
                "by the backend (JAX, PyTorch or TensorFlow, no user-supplied jac or hess)."
            )
        return constraints, settings, None
    n = x0.size
    if not asked and (backend_name_of(functions[0].functions) != "jax" or n < TRUST_CONSTR_AUTO_MIN_SIZE or not reads_programs()):
        return constraints, settings, None
    sizes = [cf.value(x0).size for cf in functions]
    m = int(sum(sizes))
    lagrangian = lagrangian_for(None, [cf.functions for cf in functions], m, dtype_name(functions[0].functions))
    if user_jac is not None:
        pattern = pattern_from_user(user_jac, None, n, m, kept=lagrangian.patterns)
    else:
        pattern = jacobian_pattern(lagrangian, x0, bounds)
        if not asked and pattern.jac_rows.size > AUTO_SPARSE_MAX_DENSITY * m * n:
            return constraints, settings, None
    jacobians = _Jacobians(lagrangian, pattern, functions, sizes)
    replaced, start = [], 0
    for item in constraints:
        if not isinstance(item, NonlinearConstraint):
            replaced.append(item)
            continue
        k = len([r for r in replaced if isinstance(r, NonlinearConstraint)])
        rows = slice(start, start + sizes[k])
        start += sizes[k]
        replaced.append(
            NonlinearConstraint(
                item.fun, item.lb, item.ub, jac=jacobians.getter(k), hess=jacobians.hessian_getter(k, rows), keep_feasible=item.keep_feasible
            )
        )
    return replaced, settings, pattern


class _Jacobians:
    """Every constraint's sparse Jacobian at x from one set of compressed passes."""

    def __init__(self, lagrangian: Any, pattern: SparsePattern, functions: list, sizes: list[int]) -> None:
        self.lagrangian = lagrangian
        self.pattern = pattern
        self.functions = functions
        self.seeds = pattern.seeds()
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self._key: bytes | None = None
        self._blocks: list[sp.csr_matrix] = []

    def _at(self, x: np.ndarray) -> list[sp.csr_matrix]:
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.tobytes() != self._key:
            compressed = self.lagrangian.jacobian_compressed(x, self.seeds)
            values = self.pattern.jacobian_values(compressed)
            full = sp.csr_matrix((values, (self.pattern.jac_rows, self.pattern.jac_cols)), shape=(self.lagrangian.m, self.lagrangian.n))
            self._blocks = [full[a:b] for a, b in zip(self.offsets, self.offsets[1:])]
            self._key = x.tobytes()
        return self._blocks

    def getter(self, k: int):
        def jacobian(x: np.ndarray) -> sp.csr_matrix:
            self.functions[k].njev += 1
            return self._at(x)[k]

        return jacobian

    def hessian_getter(self, k: int, rows: slice):
        lagrangian = self.lagrangian
        n = lagrangian.n

        def hessian(x: np.ndarray, v: np.ndarray) -> LinearOperator:
            self.functions[k].nhev += 1
            weights = np.zeros(lagrangian.m)
            weights[rows] = np.asarray(v, dtype=np.float64).reshape(-1)
            hvp = lagrangian.functions.hvp_at(lagrangian.point(np.asarray(x, dtype=np.float64), 0.0, weights))
            direction = np.zeros(n + 1 + lagrangian.m)

            def matvec(p: np.ndarray) -> np.ndarray:
                direction[:n] = np.asarray(p, dtype=np.float64).reshape(-1)
                return np.asarray(hvp(direction), dtype=np.float64)[:n]

            return LinearOperator((n, n), matvec=matvec, rmatvec=matvec, dtype=np.float64)

        return hessian
