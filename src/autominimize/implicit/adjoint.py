"""The implicit function theorem at a solution, on flat float64 vectors (no framework here).

At a solution x* of ``min f(x, θ)`` subject to bounds and constraints ``lb <= c(x, θ) <= ub``,
the active rows ``a(x, θ) = 0`` (equalities, inequalities at a limit, variables at a bound)
and the multipliers λ satisfy ``∇ₓL = ∇ₓf + Σ λ_r ∇ₓa_r = 0``. Differentiating that system in
θ, a cotangent ``v`` of x* gives the adjoint ``(w, z)`` of

    [[H_L, Jᵀ], [J, 0]] [w; z] = [v; 0]

on the free variables (variables at an active bound have zero sensitivity), and the gradient
with respect to θ is ``-∂θ(⟨∇ₓL(x*, θ), w⟩ + ⟨a(x*, θ), z⟩)``: one vector-Jacobian product that
the framework adapter takes. This module finds the active set, recovers the multipliers by least
squares at x* and solves the system, by conjugate gradients on Hessian-vector products when
nothing but bounds is active and the free set is large, densely otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..drivers.blas_threads import single_blas_thread

__all__ = [
    "DENSE_LIMIT",
    "ActiveSet",
    "Adjoint",
    "ImplicitDifferentiationWarning",
    "KKTSystem",
    "Operators",
    "find_active_set",
    "solve_adjoint",
    "stationarity_failure",
]

#: a free set up to this size (or any active constraint) is solved with the dense Hessian, built
#: from one batch of Hessian-vector products (matrix-matrix work, faster than conjugate gradients'
#: one product at a time up to a few hundred variables)
DENSE_LIMIT = 512
#: a point within this relative distance of a limit is at it, whatever its multiplier
EXACT_ACTIVE = 1e-8
#: within this relative distance a limit is active only when its multiplier says so
#: (interior-point methods such as trust-constr stop this far from the limit)
LOOSE_ACTIVE = 1e-4
#: relative stationarity below which a point is a solution even when the method reported failure
STATIONARY = 1e-6
#: relative stationarity above which the point is no solution, whatever the method reported
NOT_STATIONARY = 1e-3
#: smallest eigenvalue of the reduced Hessian, relative to the largest, still taken as positive
CURVATURE = 1e-12
#: conjugate gradients stop at this residual, relative to the cotangent
CG_RTOL = 1e-11


class ImplicitDifferentiationWarning(UserWarning):
    """The implicit derivative does not exist or could not be computed: it is NaN."""


class Operators(Protocol):
    """What a framework adapter computes at the solution x, with θ fixed inside it."""

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """∇ₓf (n,)."""
        ...

    def constraints(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All constraint values c (m,) and their Jacobian (m, n); m = 0 without constraints."""
        ...

    def hvp(self, x: np.ndarray, weights: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """The Hessian of ``f + weights @ c`` times the columns of ``vectors`` (n, k)."""
        ...


@dataclass
class Adjoint:
    """The solution of the adjoint system, or why there is none.

    ``weights`` are the multipliers per constraint value (m,), ``w`` the adjoint of x (n,),
    ``z`` the adjoint of the constraint values (m,); the gradient with respect to θ is
    ``-∂θ(⟨∇ₓ(f + weights @ c), w⟩ + ⟨c, z⟩)``. ``failure`` says why the derivative is NaN.
    """

    weights: np.ndarray
    w: np.ndarray
    z: np.ndarray
    nhvp: int
    failure: str | None = None


@dataclass
class _Rows:
    """Candidate active rows: a unit row for a variable at a bound, a Jacobian row otherwise."""

    jac: np.ndarray  # (k, n)
    component: np.ndarray  # index into c, or -1 for a bound
    variable: np.ndarray  # index into x for a bound, or -1
    sign: np.ndarray  # +1 upper limit (λ >= 0), -1 lower limit (λ <= 0), 0 equality
    exact: np.ndarray  # at the limit to rounding: kept even with a zero multiplier


def _scale(limit: np.ndarray) -> np.ndarray:
    return 1.0 + np.abs(limit)


def _candidates(x, lower, upper, c, jac, c_lower, c_upper) -> _Rows:
    n = x.size
    rows, component, variable, sign, exact = [], [], [], [], []

    def add(row, comp, var, s, distance, scale):
        rows.append(row)
        component.append(comp)
        variable.append(var)
        sign.append(s)
        exact.append(distance <= EXACT_ACTIVE * scale)

    for i in range(c.size):
        lo, hi = c_lower[i], c_upper[i]
        if lo == hi:
            add(jac[i], i, -1, 0, 0.0, 1.0)
            continue
        for limit, s in ((lo, -1), (hi, +1)):
            if np.isfinite(limit) and abs(c[i] - limit) <= LOOSE_ACTIVE * _scale(limit):
                add(jac[i], i, -1, s, abs(c[i] - limit), _scale(limit))
    if lower is not None:
        eye = np.eye(n)
        for bound, s in ((lower, -1), (upper, +1)):
            distance = np.abs(x - bound)
            for j in np.flatnonzero(np.isfinite(bound) & (distance <= LOOSE_ACTIVE * _scale(bound))):
                add(eye[j], -1, j, s, distance[j], _scale(bound[j]))
    return _Rows(
        np.array(rows, dtype=np.float64).reshape(len(rows), n),
        np.array(component, dtype=int),
        np.array(variable, dtype=int),
        np.array(sign, dtype=int),
        np.array(exact, dtype=bool),
    )


def _multipliers(g: np.ndarray, rows: _Rows) -> tuple[_Rows, np.ndarray, float]:
    """Least-squares multipliers of ∇f + Jᵀλ = 0 over the candidates, dropping the rows whose
    multiplier has the wrong sign (or is zero, for a row only near its limit), until none does.
    Returns the kept rows, their multipliers and the stationarity residual ‖∇f + Jᵀλ‖∞."""
    keep = np.ones(rows.jac.shape[0], dtype=bool)
    gscale = 1.0 + np.abs(g).max(initial=0.0)
    while True:
        jac = rows.jac[keep]
        lam = np.linalg.lstsq(jac.T, -g, rcond=None)[0] if jac.shape[0] else np.zeros(0)
        tiny = 1e-8 * gscale
        signs, exact = rows.sign[keep], rows.exact[keep]
        wrong = (signs * lam < -tiny) | (~exact & (signs != 0) & (np.abs(lam) <= tiny))
        if not wrong.any():
            residual = g + jac.T @ lam if jac.shape[0] else g
            picked = _Rows(jac, rows.component[keep], rows.variable[keep], rows.sign[keep], rows.exact[keep])
            return picked, lam, float(np.abs(residual).max(initial=0.0))
        index = np.flatnonzero(keep)[np.argmax(np.where(wrong, np.abs(lam), -1.0))]
        keep[index] = False


def _cg(matvec: Callable[[np.ndarray], np.ndarray], b: np.ndarray, maxiter: int) -> tuple[np.ndarray | None, int, str | None]:
    """Conjugate gradients on a symmetric positive definite operator, from zero."""
    norm_b = math.sqrt(b @ b)
    if norm_b == 0.0:
        return np.zeros_like(b), 0, None
    b = b / norm_b  # a unit right-hand side: tiny cotangents do not underflow the iteration
    w = np.zeros_like(b)
    r = b.copy()
    p = r.copy()
    rr = r @ r
    for count in range(1, maxiter + 1):
        hp = matvec(p)
        curvature = p @ hp
        if not curvature > 0.0:
            return None, count, "the Hessian has a direction of zero or negative curvature at the solution (a saddle point or a flat minimum)"
        alpha = rr / curvature
        w += alpha * p
        r -= alpha * hp
        rr_new = r @ r
        if math.sqrt(rr_new) <= CG_RTOL:
            return w * norm_b, count, None
        p = r + (rr_new / rr) * p
        rr = rr_new
    return None, maxiter, f"conjugate gradients did not reach a relative residual of {CG_RTOL:g} in {maxiter} Hessian-vector products"


def _null_space_check(hessian: np.ndarray, jac: np.ndarray) -> str | None:
    """Why the implicit function theorem does not apply (dependent active constraints, or a
    Hessian not positive definite on their null space), or None when it does."""
    k, n = jac.shape
    if k:
        _, s, vt = np.linalg.svd(jac)
        if k > n or s.min() <= 1e-10 * max(1.0, s.max()):
            return "the active constraints are linearly dependent at the solution (their multipliers are not unique)"
        null = vt[k:].T
    else:
        null = np.eye(n)
    if null.shape[1]:
        eig = np.linalg.eigvalsh(null.T @ hessian @ null)
        if eig.min() <= CURVATURE * max(1.0, np.abs(eig).max()):
            return (
                "the Hessian of the Lagrangian is not positive definite on the free directions at the solution "
                f"(smallest eigenvalue {eig.min():.3g}): the solution is not a strict local minimum there"
            )
    return None


def stationarity_failure(stationarity: float, success: bool) -> str | None:
    """Why a point with relative stationarity residual ``stationarity`` is no solution, or None."""
    if stationarity > NOT_STATIONARY or (not success and stationarity > STATIONARY):
        return (
            f"the point is not a solution: the gradient of the Lagrangian has relative norm {stationarity:.3g} there"
            + ("" if success else " and the method did not report success")
            + "; tighten the solver's tolerances"
        )
    return None


@dataclass
class ActiveSet:
    """The multipliers and active rows at a solution.

    ``weights`` are the multipliers per constraint value (m,), ``free`` marks the variables
    not at an active bound (n,), ``active`` the constraint values at a limit (m,);
    ``stationarity`` is ‖∇ₓf + Jᵀλ‖∞ relative to 1 + ‖∇ₓf‖∞ and ``failure`` says why the
    point is no solution.
    """

    weights: np.ndarray
    free: np.ndarray
    active: np.ndarray
    stationarity: float
    failure: str | None = None


def find_active_set(
    ops: Operators,
    x: np.ndarray,
    *,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
    constraint_bounds: tuple[np.ndarray, np.ndarray] | None = None,
    success: bool = True,
) -> ActiveSet:
    """The active set and multipliers at the solution ``x`` (see :func:`solve_adjoint`)."""
    n = x.size
    g = ops.gradient(x)
    c, jac = ops.constraints(x)
    m = c.size
    lower = upper = None
    if bounds is not None:
        lower, upper = (np.broadcast_to(np.asarray(b, dtype=np.float64), (n,)) for b in bounds)
    c_lower, c_upper = (
        (np.broadcast_to(np.asarray(b, dtype=np.float64), (m,)) for b in constraint_bounds)
        if constraint_bounds is not None
        else (np.full(m, -np.inf), np.full(m, np.inf))
    )
    rows, lam, residual = _multipliers(g, _candidates(x, lower, upper, c, jac, c_lower, c_upper))
    stationarity = residual / (1.0 + np.abs(g).max(initial=0.0))
    weights = np.zeros(m)
    general = rows.component >= 0
    np.add.at(weights, rows.component[general], lam[general])
    free = np.ones(n, dtype=bool)
    free[rows.variable[~general]] = False
    active = np.zeros(m, dtype=bool)
    active[rows.component[general]] = True
    return ActiveSet(weights, free, active, stationarity, stationarity_failure(stationarity, success))


class KKTSystem:
    """``[[H_L, Jᵀ], [J, 0]]`` on the free variables and active constraint values at a solution.

    Its solutions for any number of right-hand sides share one factorisation: the Hessian of
    the Lagrangian from one batch of Hessian-vector products, checked positive definite on the
    null space of J. Without active constraints and with more than :data:`DENSE_LIMIT` free
    variables, each right-hand side is solved by conjugate gradients instead. Rows of fixed
    variables and inactive constraints are the identity, so the system is symmetric on the
    full (n + m) space.
    """

    def __init__(self, ops: Operators, x: np.ndarray, active_set: ActiveSet):
        self.ops, self.x, self.active_set = ops, x, active_set
        self.nhvp = 0
        self.failure = active_set.failure
        self._factors: tuple | None = None
        free = np.flatnonzero(active_set.free)
        self._iterative = not active_set.active.any() and free.size > DENSE_LIMIT
        if self.failure is None and free.size and not self._iterative:
            self._factorize(free)

    def _factorize(self, free: np.ndarray) -> None:
        import scipy.linalg as sla

        n = self.x.size
        basis = np.zeros((n, free.size))
        basis[free, np.arange(free.size)] = 1.0
        hessian = self.ops.hvp(self.x, self.active_set.weights, basis)[free]
        hessian = 0.5 * (hessian + hessian.T)
        self.nhvp += free.size
        rows = np.flatnonzero(self.active_set.active)
        jac = self.ops.constraints(self.x)[1][rows][:, free] if rows.size else np.zeros((0, free.size))
        # small dense algebra: BLAS threads would only contend with the framework's own
        with single_blas_thread():
            self.failure = _null_space_check(hessian, jac)
            if self.failure is None:
                k = rows.size
                kkt = np.block([[hessian, jac.T], [jac, np.zeros((k, k))]])
                self._factors = (free, rows, sla.lu_factor(kkt, check_finite=False))

    def solve(self, b_x: np.ndarray, b_c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(u, y)`` with ``H u + Jᵀ y = b_x`` on the free variables, ``J u = b_c`` on the active
        constraint values, and the identity elsewhere; NaN (and :attr:`failure` set) where the
        implicit function theorem does not apply."""
        import scipy.linalg as sla

        n, m = self.x.size, self.active_set.weights.size
        free_mask, active = self.active_set.free, self.active_set.active
        u = np.where(free_mask, 0.0, b_x)
        y = np.where(active, 0.0, b_c)
        if self.failure is not None:
            return np.full(n, np.nan), np.full(m, np.nan)
        if self._iterative:
            weights = self.active_set.weights

            def matvec(p: np.ndarray) -> np.ndarray:
                full = np.zeros(n)
                full[free_mask] = p
                return self.ops.hvp(self.x, weights, full[:, None])[free_mask, 0]

            solution, count, failure = _cg(matvec, b_x[free_mask], maxiter=10 * int(free_mask.sum()))
            self.nhvp += count
            if failure is not None:
                self.failure = failure
                return np.full(n, np.nan), np.full(m, np.nan)
            u[free_mask] = solution
        elif self._factors is not None:
            free, rows, factors = self._factors
            solution = sla.lu_solve(factors, np.concatenate([b_x[free], b_c[rows]]), check_finite=False)
            u[free], y[rows] = solution[: free.size], solution[free.size :]
        return u, y


def solve_adjoint(
    ops: Operators,
    x: np.ndarray,
    v: np.ndarray,
    *,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
    constraint_bounds: tuple[np.ndarray, np.ndarray] | None = None,
    success: bool = True,
) -> Adjoint:
    """The adjoint of the optimality system at the solution ``x`` for the cotangent ``v``.

    Parameters
    ----------
    ops : Operators
        The gradient, constraints and Hessian-vector products at fixed θ.
    x, v : ndarray (n,)
        The solution and the cotangent of the loss with respect to it.
    bounds : (lower, upper), optional
        Flat bounds on x (±inf where unbounded).
    constraint_bounds : (lower, upper), optional
        Limits of the constraint values (equal for an equality).
    success : bool
        Whether the method reported success; a point it did not converge at must still be
        stationary to rounding, or the derivative is NaN.

    Returns
    -------
    Adjoint
        With ``failure`` set (and NaN in ``w``) where the implicit function theorem does not
        apply or the point is no solution.

    Examples
    --------
    >>> import numpy as np
    >>> class Quadratic:  # f = ½ xᵀAx - θᵀx: x* = A⁻¹θ
    ...     A = np.array([[2.0, 0.5], [0.5, 1.0]])
    ...     def gradient(self, x): return self.A @ x - np.array([1.0, 1.0])
    ...     def constraints(self, x): return np.zeros(0), np.zeros((0, 2))
    ...     def hvp(self, x, weights, vectors): return self.A @ vectors
    >>> ops = Quadratic()
    >>> x = np.linalg.solve(ops.A, [1.0, 1.0])
    >>> adj = solve_adjoint(ops, x, np.array([1.0, 0.0]))
    >>> bool(np.allclose(adj.w, np.linalg.solve(ops.A, [1.0, 0.0])))
    True
    """
    active_set = find_active_set(ops, x, bounds=bounds, constraint_bounds=constraint_bounds, success=success)
    system = KKTSystem(ops, x, active_set)
    w, z = system.solve(np.where(active_set.free, v, 0.0), np.zeros(active_set.weights.size))
    if system.failure is not None:
        return Adjoint(np.zeros(active_set.weights.size), w, np.zeros_like(z), system.nhvp, system.failure)
    return Adjoint(active_set.weights, w, z, system.nhvp)
