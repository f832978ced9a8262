"""The cyipopt problem behind ``method='ipopt'``: IPOPT's callbacks, each guarded.

cyipopt holds the GIL for the whole solve and loses exceptions raised in its Hessian
callback, so every callback here catches what it raises, stops IPOPT, and keeps the
exception in ``failure`` for the driver to raise again after ``solve`` returns; a
KeyboardInterrupt stops IPOPT the same way (``interrupted``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.optimize as so

__all__ = ["problem_class"]


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
            return _tell_callback(self, state)

    return _Problem


def _tell_callback(problem: Any, state: dict) -> bool:
    """Give the user's callback IPOPT's current iterate; False stops IPOPT (a StopIteration,
    a KeyboardInterrupt, or any exception, kept to be raised again after ``solve``)."""
    try:
        x = np.array(problem.get_current_iterate(scaled=False)["x"], dtype=np.float64)
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
