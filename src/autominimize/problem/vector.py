"""The flat vector function scipy sees, residuals and constraints alike.

:class:`VectorObjective` keeps a one-slot cache of the values and one of the Jacobian, one
:class:`~autominimize.problem.policy.Counters` (``nfev`` counts evaluations of the function,
finite-difference ones included; ``njev`` Jacobians; ``nhev`` Hessians), the error policy,
and the point of a failure attached to its exception. The Jacobian is one of: the backend's
(autodiff, or numdiff on NumPy), the user's (``jac`` or ``fun_and_jac``, flat or in x0's
structure), or finite differences of the values. Residuals
(:mod:`autominimize.problem.residuals`) and constraints (:mod:`autominimize.constraints`)
are thin layers on it, saying what a failed point's values are and what else they check.

With ``error_handling='continue'``, a point after the first where the values raise or are
not finite is a *failed point*: its values are :meth:`VectorObjective.failed_values` (+inf
unless a layer says otherwise), its Jacobian is zero, and ``failures`` counts it. The first
point must evaluate: there is no earlier one to back off to.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import numdiff
from ..backends.base import VectorFunctions, as_flat_float64, offered
from ..backends.common import flatten_output
from ..errors import attach_point
from ..params import ParamSpec
from ..user_derivatives import flatten_jacobian
from .policy import Counters, check_error_handling

__all__ = ["VectorObjective"]


class VectorObjective:
    """Values and Jacobian of a vector function at flat points, each at most once per point.

    Parameters
    ----------
    functions
        The backend's compiled vector function.
    spec
        x0's structure: reads a user Jacobian given in it and gives failures a readable point.
    name
        What the function is called in the notes of a failure (``'the value of <name>'``);
        None: the bare labels.
    user_jacobian
        The user's Jacobian as a function of the flat vector, returning it flat ``(m, n)`` or
        in x0's structure with ``(m, *leaf.shape)`` leaves; ``jac_name`` names it in errors.
    user_fun_and_jac
        The user's ``(values, Jacobian)`` in one call.
    scheme, rel_step, bounds, evaluator
        Finite differences of the values (:func:`autominimize.numdiff.approx_jacobian`): the
        scheme, its relative step, the bounds it stays within and where it evaluates.
    error_handling
        ``'raise'`` or ``'continue'`` (see the module docstring).
    """

    #: what the notes of a failure call an evaluation of the function
    value_label = "the value"
    #: whether ``nfev`` counts the backend's own finite-difference evaluations too
    counts_extra_evaluations = True

    def __init__(
        self,
        functions: VectorFunctions,
        spec: ParamSpec,
        *,
        name: str | None = None,
        user_jacobian: Callable[[np.ndarray], Any] | None = None,
        jac_name: str = "jac",
        user_fun_and_jac: Callable[[np.ndarray], tuple[Any, Any]] | None = None,
        scheme: str | None = None,
        rel_step: Any = None,
        bounds: tuple[np.ndarray, np.ndarray] | None = None,
        evaluator: numdiff.Evaluator | None = None,
        error_handling: str = "raise",
    ) -> None:
        self.functions = functions
        self.spec = spec
        self.name = name
        self.user_jacobian = user_jacobian
        self.jac_name = jac_name
        self.user_fun_and_jac = user_fun_and_jac
        self.scheme = scheme
        self.rel_step = rel_step
        self.bounds = bounds
        self.evaluator = evaluator
        self.error_handling = check_error_handling(error_handling)
        self.counters = Counters()
        self.failures = 0
        self._values: tuple[bytes, np.ndarray] | None = None
        self._jac: tuple[bytes, np.ndarray] | None = None
        self._failed_key: bytes | None = None

    # The counts as scipy's result fields name them; drivers that compute a Jacobian or a
    # Hessian of this function themselves add theirs.
    @property
    def nfev(self) -> int:
        return self.counters.nfev

    @nfev.setter
    def nfev(self, count: int) -> None:
        self.counters.nfev = count

    @property
    def njev(self) -> int:
        return self.counters.njev

    @njev.setter
    def njev(self, count: int) -> None:
        self.counters.njev = count

    @property
    def nhev(self) -> int:
        return self.counters.nhev

    @nhev.setter
    def nhev(self, count: int) -> None:
        self.counters.nhev = count

    # -- what a layer may change ---------------------------------------------------
    def failed_values(self, m: int) -> np.ndarray:
        """The values of a failed point."""
        return np.full(m, np.inf)

    def check_size(self, m: int) -> None:
        """Check a number of values known before any evaluation (read from a traced program)
        as the values of a first evaluation are checked."""
        self._check_first(np.empty(m))

    def _check_first(self, values: np.ndarray) -> None:
        """Check the values at the first point evaluated (their size is known from then on)."""

    def _evaluated(self, x: np.ndarray, values: np.ndarray) -> None:
        """Told of the values at each point evaluated (not a failed one)."""

    def _usable(self, x: np.ndarray, key: bytes, values: np.ndarray | None) -> bool:
        """Under 'continue', whether the values at a trial point make it a point the method
        may use (else it is a failed point)."""
        return values is not None and bool(np.isfinite(values).all())

    # -- bookkeeping ---------------------------------------------------------------
    def _label(self, what: str) -> str:
        return what if self.name is None else f"{what} of {self.name}"

    def _run(self, x: np.ndarray, what: str, function: Callable, *arguments: Any, **keywords: Any) -> Any:
        """Call a backend or user function; count its extra (finite-difference) evaluations
        and attach the point to any exception."""
        before = self._extra_evaluations()
        try:
            return function(*arguments, **keywords)
        except Exception as exc:
            attach_point(exc, self.spec, getattr(exc, "autominimize_point", x), self._label(what))
            raise
        finally:
            self.counters.nfev += self._extra_evaluations() - before

    def _extra_evaluations(self) -> int:
        if not self.counts_extra_evaluations:
            return 0
        return offered(self.functions, "extra_evaluations") or 0

    def _fail(self, x: np.ndarray, key: bytes) -> np.ndarray:
        """Make x a failed point: its failed values and a zero Jacobian."""
        self.failures += 1
        m = self._values[1].size
        values = self.failed_values(m)
        self._values, self._jac = (key, values), (key, np.zeros((m, x.size)))
        self._failed_key = key
        return values

    def is_failed(self, x: np.ndarray) -> bool:
        """Whether x is a failed point (its Jacobian is zero)."""
        return self._failed_key is not None and x.tobytes() == self._failed_key

    def known(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The values and the Jacobian at x where both are computed already, else None."""
        key = x.tobytes()
        if self._values is not None and self._values[0] == key and self._jac is not None and self._jac[0] == key:
            return self._values[1], self._jac[1]
        return None

    # -- what scipy calls ----------------------------------------------------------
    def value(self, x: Any) -> np.ndarray:
        x = as_flat_float64(x)
        key = x.tobytes()
        if self._values is not None and self._values[0] == key:
            return self._values[1]
        first = self._values is None
        try:
            values = self._evaluate(x, key)
        except Exception:
            if self.error_handling == "raise" or first:
                raise
            values = None
        self.counters.nfev += 1
        if first:
            self._check_first(values)
        elif self.error_handling == "continue" and not self._usable(x, key, values):
            return self._fail(x, key)
        self._values = (key, values)
        self._evaluated(x, values)
        return values

    def _evaluate(self, x: np.ndarray, key: bytes) -> np.ndarray:
        if self.user_fun_and_jac is None:
            return self._run(x, self.value_label, self.functions.value, x)
        values, jac = self._run(x, "fun_and_jac", self.user_fun_and_jac, x)
        values = flatten_output(values)
        self._jac = (key, flatten_jacobian(jac, self.spec, values.size, "fun_and_jac"))
        self.counters.njev += 1
        return values

    def value_uncached(self, x: np.ndarray) -> np.ndarray:
        """The values at x evaluated again (for differences taken outside this object)."""
        self.counters.nfev += 1
        values = self._run(x, self.value_label, self.functions.value, x)
        self._evaluated(x, values)
        return values

    def jacobian(self, x: Any) -> np.ndarray:
        x = as_flat_float64(x)
        key = x.tobytes()
        if self._jac is not None and self._jac[0] == key:
            return self._jac[1]
        if self.error_handling == "continue" and self._values is not None:
            self.value(x)  # a failing point gets its failed values and zero Jacobian here
            if self._jac is not None and self._jac[0] == key:
                return self._jac[1]
        if self.user_fun_and_jac is not None:
            self._values = None
            self.value(x)
            return self._jac[1]
        if self.user_jacobian is not None:
            jac = self.user_jacobian_at(x, self.value(x).size)
        elif self.scheme is not None:
            jac = self._differences(x, self.value(x))
        else:
            values, jac = self._run(x, "the Jacobian", self.functions.value_and_jacobian, x)
            if self._values is None or self._values[0] != key:
                self._values = (key, values)
                self.counters.nfev += 1
                self._evaluated(x, values)
        self.counters.njev += 1
        self._jac = (key, jac)
        return jac

    def user_jacobian_at(self, x: np.ndarray, m: int) -> np.ndarray:
        """The user's Jacobian of the m values at x, as an (m, n) array."""
        return self._run(x, "the user-supplied jac", self._flat_user_jacobian, x, m)

    def _flat_user_jacobian(self, x: np.ndarray, m: int) -> np.ndarray:
        return flatten_jacobian(self.user_jacobian(x), self.spec, m, self.jac_name)

    def _differences(self, x: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Finite differences of the values, with ``scheme``."""
        # the plain flat function where the backend has one: it can be sent to processes
        evaluate = offered(self.functions, "flat") or self.functions.value
        jac, count = self._run(
            x,
            self.value_label,
            numdiff.approx_jacobian,
            evaluate,
            x,
            method=self.scheme,
            rel_step=self.rel_step,
            bounds=self.bounds,
            f0=values,
            evaluator=self.evaluator,
        )
        self.counters.nfev += count
        return jac.reshape(values.size, x.size)
