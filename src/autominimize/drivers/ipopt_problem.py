"""The cyipopt problem behind ``method='ipopt'``: IPOPT's callbacks, each guarded, and
:class:`Derivatives`, which computes what they ask for.

cyipopt holds the GIL for the whole solve and loses exceptions raised in its Hessian
callback, so every callback here catches what it raises, stops IPOPT, and keeps the
exception in ``failure`` for the driver to raise again after ``solve`` returns; a
KeyboardInterrupt stops IPOPT the same way (``interrupted``).
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.optimize as so


__all__ = ["Derivatives", "problem_class"]


@functools.cache
def problem_class() -> type:
    """cyipopt.Problem with guarded callbacks; defined on first use (cyipopt loads lazily).

    It takes ``evaluator``, which computes what IPOPT asks for (``objective``, ``constraints``,
    ``jacobian``, ``hessian`` and their structures), and the user's ``callback``.
    """
    import cyipopt

    class _Problem(cyipopt.Problem):
        def __init__(self, *, n: int, m: int, evaluator: Any, callback: Callable | None, lb, ub, cl, cu) -> None:
            self.evaluator = evaluator  # cyipopt reads the structures while it initialises
            self.user_callback = callback
            self.failure: BaseException | None = None
            self.interrupted = False
            self.stopped = False
            self.iterations = 0
            super().__init__(n=n, m=m, lb=lb, ub=ub, cl=cl, cu=cu)

        def _guard(self, function: Callable, *arguments: Any) -> Any:
            if self.failure is None and not self.interrupted:
                try:
                    return function(*arguments)
                except KeyboardInterrupt:
                    self.interrupted = True
                except BaseException as exc:  # noqa: BLE001 - IPOPT would lose it (the Hessian's) or retry past it
                    self.failure = exc
            raise cyipopt.CyIpoptEvaluationError

        def objective(self, x):
            return self._guard(self.evaluator.objective.value, x)

        def gradient(self, x):
            return self._guard(self.evaluator.objective.gradient, x)

        def constraints(self, x):
            return self._guard(self.evaluator.constraints, x)

        def jacobian(self, x):
            return self._guard(self.evaluator.jacobian, x)

        def jacobianstructure(self):
            return self.evaluator.jac_rows, self.evaluator.jac_cols

        def hessian(self, x, lagrange, obj_factor):
            return self._guard(self.evaluator.hessian, x, lagrange, obj_factor)

        def hessianstructure(self):
            return self.evaluator.hess_rows, self.evaluator.hess_cols

        def intermediate(self, alg_mod, iter_count, obj_value, inf_pr, inf_du, mu, d_norm, regularization_size, alpha_du, alpha_pr, ls_trials):
            if self.failure is not None or self.interrupted:
                return False
            self.iterations = iter_count
            if iter_count == 0 or self.user_callback is None:
                return True
            state = {"fun": float(obj_value), "nit": iter_count, "inf_pr": inf_pr, "inf_du": inf_du, "mu": mu, "d_norm": d_norm}
            state.update(alpha_pr=alpha_pr, alpha_du=alpha_du, ls_trials=ls_trials, restoration=alg_mod == 1)
            return _tell_callback(self, state, None if alg_mod else obj_value)

    return _Problem


def _tell_callback(problem: Any, state: dict, f: float | None) -> bool:
    """Give the user's callback IPOPT's current iterate; False stops IPOPT (a StopIteration,
    a KeyboardInterrupt, or any exception, kept to be raised again after ``solve``).

    Outside the restoration phase (``f`` not None, IPOPT's objective value) the iterate is the
    objective's cached point when ∇f was computed there and f is its value: IPOPT asks for ∇f
    at the point it accepts, then calls back. The cache's copy of x is never modified. Else
    (an objective IPOPT scales, the restoration phase) IPOPT is asked for it, which took
    15-23 µs an iteration at n = 1000."""
    try:
        objective = problem.evaluator.objective
        if f is not None and objective._f == f and objective._g is not None:
            x = objective._x
        else:
            x = problem.get_current_iterate(scaled=False)["x"]  # a new float64 array, ours to keep
        problem.user_callback(so.OptimizeResult(x=x, **state))
    except StopIteration:
        problem.stopped = True
        return False
    except KeyboardInterrupt:
        problem.interrupted = True
        return False
    except BaseException as exc:  # noqa: BLE001 - raised again after solve returns
        problem.failure = exc
        return False
    return True


class Derivatives:
    """f, g, their derivatives and the Lagrangian Hessian as IPOPT asks for them, counted.

    IPOPT asks for c and then f at each trial point, and for ∇f and then J at each point it
    accepts, which is nearly always the trial point it asked for last. With the Lagrangian
    compiled on JAX (:meth:`fuse`), the four are ONE compiled call ``[f, ∇f, c, J · S]`` (S
    the seeds of the Jacobian's compressed passes, the identity for a dense problem), made
    for the first request at a point and kept for the others. The objective's own value and
    gradient evaluations take f and ∇f from that call, so its cache, counters, records and
    error notes stay its own. Each count counts the points where IPOPT was given the value:
    ``nfev`` the points where it got f (or ∇f, which brings f), ``njev`` those where it got
    ∇f, a constraint's ``nfev`` those where it got c, its ``njev`` the Jacobians. What was
    computed at a trial point that IPOPT rejects (it then asks for no ∇f or J there, nor f
    when c alone rejects it) is not counted: no more is counted than where IPOPT fed the
    same derivatives separately would evaluate.
    """

    def __init__(self, objective: Any, blocks: list, nonlinear_rows: np.ndarray, n: int) -> None:
        self.objective = objective
        self.blocks = blocks
        self.nonlinear = [b for b in blocks if b.function is not None]
        self.linear = [b for b in blocks if b.matrix is not None]
        # the nonlinear constraints' counters, counted directly: through each constraint's
        # nfev/njev/nhev properties a count was two Python calls more per callback
        self._counters = [b.function.counters for b in self.nonlinear]
        self.nonlinear_rows = nonlinear_rows
        self.n = n
        self.m = blocks[-1].rows.stop if blocks else 0
        self.lagrangian: Any = None
        self.exact = False  # whether IPOPT gets the Lagrangian's Hessian (else its quasi-Newton one)
        self.pattern: Any = None
        self.fused = False
        self._seeds: np.ndarray | None = None
        self._point_call: Callable | None = None  # x -> f, ∇f, c, J · S (fused)
        self._hessian_passes: Callable | None = None  # (x, [σ, λ]) -> ∇²ₓₓL · S, or with J · S (sparse)
        self._hessian_gives_jacobian = False
        self._values_key: bytes | None = None  # the point of _values: g, constraints stacked
        self._values: np.ndarray | None = None
        self._counted = True  # whether the constraints' nfev counts _values (IPOPT was given them)
        self._spare_key: bytes | None = None  # the point of _spare_f and _spare_g: computed with c, not asked for yet
        self._spare_f = math.nan
        self._spare_g: np.ndarray | None = None
        self._jacobian_key: bytes | None = None  # the point of _jacobian: J · S
        self._jacobian: np.ndarray | None = None

    # structures, fixed for the solve
    def structure(self) -> None:
        """The Jacobian's and the Hessian's triplets: the linear blocks' entries first (their
        values fixed), then the nonlinear constraints' (a pattern's, or every entry of theirs)."""
        n = self.n
        rows = [b.rows.start + b.matrix.tocoo().row for b in self.linear]
        cols = [b.matrix.tocoo().col for b in self.linear]
        self._linear_values = np.concatenate([b.matrix.tocoo().data for b in self.linear]) if self.linear else np.zeros(0)
        if self.pattern is not None and self.nonlinear_rows.size:
            rows.append(self.nonlinear_rows[self.pattern.jac_rows])
            cols.append(self.pattern.jac_cols)
        elif self.nonlinear_rows.size:
            rows.append(np.repeat(self.nonlinear_rows, n))
            cols.append(np.tile(np.arange(n), self.nonlinear_rows.size))
        self.jac_rows = np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, dtype=np.int64)
        self.jac_cols = np.concatenate(cols).astype(np.int64) if cols else np.zeros(0, dtype=np.int64)
        if self.pattern is not None:
            self._seeds = self.pattern.seeds()
            if self.exact:
                self._hessian_passes, self._hessian_gives_jacobian = self.lagrangian.hessian_call(self._seeds)
        if not self.exact:
            self.hess_rows = self.hess_cols = np.zeros(0, dtype=np.int64)
        elif self.pattern is None:
            self.hess_rows, self.hess_cols = np.tril_indices(n)
        else:
            self.hess_rows, self.hess_cols = self.pattern.hess_rows, self.pattern.hess_cols
        self._all_nonlinear = not self.linear
        self._jac = np.zeros(self.jac_rows.size)
        self._jac[: self._linear_values.size] = self._linear_values

    def start(self, x0: np.ndarray) -> None:
        """Keep g at x0, where the constraints were evaluated already (for their sizes)."""
        self.constraints(x0)

    def fuse(self) -> None:
        """Decide whether the objective's value and gradient go through the Lagrangian's point
        calls (see the class docstring): for a JAX problem under error_handling='raise' (under
        'continue' the constraints' own evaluations say what a failed point is)."""
        objective, lagrangian = self.objective, self.lagrangian
        if lagrangian is None or lagrangian.point_values is None or not self.nonlinear or objective.error_handling != "raise":
            return
        if any(b.function.error_handling != "raise" for b in self.nonlinear) or not hasattr(objective, "evaluated_by"):
            return
        if self._seeds is None:  # J · I: n forward passes, no more than the dense Hessian's
            self._seeds = np.eye(self.n)
        self._point_call = lagrangian.first_order_call(self._seeds, coloured=self.pattern is not None)
        self.fused = True

    def evaluations(self) -> contextlib.AbstractContextManager:
        """The block of the solve: with :meth:`fuse`'s choice, the objective evaluated through
        the Lagrangian's point calls; else its own evaluations."""
        if not self.fused:
            return contextlib.nullcontext()
        return self.objective.evaluated_by(self._value_and_constraints, self._first_order)

    def _value_and_constraints(self, x: np.ndarray) -> float:
        key = x.tobytes()
        if key != self._spare_key:
            self._point(key, x)
        return self._spare_f

    def _first_order(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        key = x.tobytes()
        if key != self._spare_key:
            self._point(key, x)
        return self._spare_f, self._spare_g

    def _point(self, key: bytes, x: np.ndarray) -> None:
        """f, ∇f, c and J · S at x from one compiled call, kept until IPOPT asks for them.

        IPOPT asks for c and f at a trial point and, where it accepts it (nearly always),
        for ∇f and J there next: computing all four at once saves a call per accepted
        point. The first compiled call after IPOPT's own work costs 50-90 µs more than the
        computation (measured at n = 1000: the dispatch path is cold), more than the
        gradient and the Jacobian's passes cost when computed with f and c."""
        self._spare_f, self._spare_g, c, self._jacobian = self._point_call(x)
        self._spare_key = self._jacobian_key = key
        if key != self._values_key:  # c kept, uncounted until IPOPT asks for it
            self._values = c if self._all_nonlinear else self._with_linear(x, c)
            self._values_key, self._counted = key, False

    def _with_linear(self, x: np.ndarray, c: np.ndarray) -> np.ndarray:
        """IPOPT's g at x: the nonlinear constraints' values ``c`` and the linear blocks' rows."""
        g = np.empty(self.m)
        g[self.nonlinear_rows] = c
        for block in self.linear:
            g[block.rows] = block.matrix @ x
        return g

    def constraints(self, x: np.ndarray) -> np.ndarray:
        key = x.tobytes()
        if key != self._values_key:
            if self.fused and self.objective.counters.nfev:
                # f and ∇f with c in one call, kept for IPOPT's next requests (f at this
                # point) and counted then: at a trial point it rejects on c alone it asks for none
                self._point(key, x)
            elif self.fused:
                self.objective.value(x)  # the objective's first evaluation (its probe) runs [f, ∇f, c, J · S]
            if key != self._values_key:
                g = np.empty(self.m)
                for block in self.blocks:
                    g[block.rows] = block.function.value(x) if block.function is not None else block.matrix @ x
                self._values, self._values_key, self._counted = g, key, True  # counted by the constraints
        if not self._counted:
            for counters in self._counters:
                counters.nfev += 1
            self._counted = True
        return self._values

    def jacobian(self, x: np.ndarray) -> np.ndarray:
        if not self.nonlinear:
            return self._jac
        if self._seeds is None:  # dense, not fused: the constraints' own Jacobians
            values = np.concatenate([np.asarray(b.function.jacobian(x)).reshape(-1) for b in self.nonlinear])
        else:
            key = x.tobytes()
            if self._jacobian_key != key:  # asked alone: forward passes, no Hessian
                self._jacobian = self.lagrangian.jacobian_compressed(x, self._seeds)
                self._jacobian_key = key
            for counters in self._counters:
                counters.njev += 1
            # J · I is J transposed; a pattern reads its entries from the compressed passes
            values = self.pattern.jacobian_values(self._jacobian) if self.pattern is not None else self._jacobian.T.reshape(-1)
        if self._all_nonlinear:
            return values
        self._jac[self._linear_values.size :] = values
        return self._jac

    def hessian(self, x: np.ndarray, multipliers: np.ndarray, sigma: float) -> np.ndarray:
        weights = multipliers if self._all_nonlinear else multipliers[self.nonlinear_rows]
        self.objective.counters.nhev += 1
        for counters in self._counters:
            counters.nhev += 1
        if self.objective.reporting:
            self.objective._report("hessian", x, np.nan, None)
        if self.pattern is None:
            hessian = self.lagrangian.hessian_blocks(x, float(sigma), weights)[0]
            return hessian[self.hess_rows, self.hess_cols]
        # IPOPT asks once per iterate, with new multipliers: nothing to look up first
        rest = np.empty(1 + weights.size)
        rest[0] = sigma
        rest[1:] = weights
        if not self._hessian_gives_jacobian:
            return self.pattern.hessian_values(self._hessian_passes(x, rest))
        # the products in [x, σ, λ] (PyTorch, TensorFlow) bring J · S
        compressed, self._jacobian = self._hessian_passes(x, rest)
        self._jacobian_key = x.tobytes()
        return self.pattern.hessian_values(compressed)
