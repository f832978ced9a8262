"""Batched Levenberg–Marquardt: B least-squares problems stacked along the first axis.

Member b has parameters x_b (n,), residuals r_b (m,) and Jacobian J_b (m, n). One step
solves every member's damped Gauss–Newton system (A_b + μ_b diag(d_b)) h_b = −g_b with
A = JᵀJ, g = Jᵀr and Marquardt's scaling d_b = max over the iterates of diag(A_b) (MINPACK's
monotone rule, so the step does not depend on the parameters' units), evaluates r and J at
x_b + h_b in one batched call, and accepts or rejects each member on its own gain ratio
ρ_b = (F_b − F_b⁺)/pred_b. The damping follows Nielsen (Madsen, Nielsen & Tingleff 2004,
§3.2): μ ← μ·max(1/3, 1 − (2ρ − 1)³) on acceptance, μ ← μν with ν doubling on rejection —
one solve per trial and no inner loop, so the step is branch-free.

With box bounds the step is active-set projected LM: variables at a bound whose gradient
points outwards are held fixed, the system is solved on the others, and the step is clipped
into the box; the gain ratio uses the clipped step. (A plain clip of the full step stalls
at non-optimal points; see the note in ``docs/many-fits.md``.)

Stopping per member follows scipy's ``least_squares`` (method 'trf', ``common.check_termination``):
ftol when the accepted reduction is below ``ftol·F`` with ρ > 0.25, xtol when
‖h‖ < xtol·(xtol + ‖x‖), gtol when the projected gradient's ∞-norm is below gtol, and a
budget of evaluations. The status codes are scipy's.

Every update is masked with ``where``, so a member that has stopped never changes and a
member's arithmetic never depends on its batch-mates. :meth:`BatchedLM.run` drops stopped
members between steps (on JAX to power-of-four sizes, so that few shapes are compiled), so a
converged member costs no further evaluations.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import array_api_compat

from ..backends.jax_aot import AheadOfTime
from ..validation import check_settings
from ._arrays import namespace
from .compaction import KEEP_SHARE, ActiveRows, gather_rows

__all__ = ["BatchedLM", "LMState", "REASONS", "RUNNING"]

#: Why a member stopped, by its code in ``LMState.reason``: (message, success, scipy status).
REASONS = {
    1: ("`gtol` termination condition is satisfied.", True, 1),
    2: ("`ftol` termination condition is satisfied.", True, 2),
    3: ("`xtol` termination condition is satisfied.", True, 3),
    4: ("Both `ftol` and `xtol` termination conditions are satisfied.", True, 4),
    5: ("The maximum number of function evaluations is exceeded.", False, 0),
    6: ("Residuals or Jacobian are not finite at the starting point.", False, -1),
}
RUNNING, _GTOL, _FTOL, _XTOL, _BOTH, _MAXFEV, _NOT_FINITE = 0, 1, 2, 3, 4, 5, 6
_MU_MAX = 1e30  # beyond this the step is far below any xtol; caps μ·ν before it overflows


class LMState(NamedTuple):
    x: Any  # (B, n)
    r: Any  # (B, m) residuals at x
    J: Any  # (B, m, n) Jacobian at x
    A: Any  # (B, n, n) JᵀJ
    cost: Any  # (B,) ½‖r‖²
    g: Any  # (B, n) Jᵀr
    scale: Any  # (B, n) Marquardt's diag scaling, nondecreasing
    mu: Any  # (B,) damping
    nu: Any  # (B,) growth of the damping on rejection
    nfev: Any  # (B,) residual evaluations (each with its Jacobian)
    nit: Any  # (B,) steps tried
    reason: Any  # (B,) RUNNING or a key of REASONS


@dataclass(frozen=True)
class BatchedLM:
    """Levenberg–Marquardt over B stacked problems, optionally in a box.

    Parameters
    ----------
    ftol, xtol, gtol : float
        scipy ``least_squares``'s tolerances (defaults 1e-8); None switches a test off.
    max_nfev : int, optional
        Evaluations per member (the first included); default 100·n as scipy's 'trf'.
    mu0 : float
        The first damping relative to diag(JᵀJ) (Marquardt's 1e-3).

    Examples
    --------
    Two exponential decays fitted at once on NumPy (``evaluate`` returns r and J per row):

    >>> import numpy as np
    >>> from autominimize.native.batched_lm import BatchedLM, REASONS
    >>> t = np.linspace(0, 3, 20)
    >>> y = np.stack([2 * np.exp(-1.5 * t), 1 * np.exp(-0.5 * t)])
    >>> def evaluate(x, y):
    ...     e = np.exp(-x[:, 1:2] * t)
    ...     return x[:, :1] * e - y, np.stack([e, -x[:, :1] * t * e], axis=-1)
    >>> state = BatchedLM().run(np.ones((2, 2)), evaluate, (y,))
    >>> np.round(state.x, 6).tolist(), [REASONS[int(c)][1] for c in state.reason]
    ([[2.0, 1.5], [1.0, 0.5]], [True, True])
    """

    ftol: float | None = 1e-8
    xtol: float | None = 1e-8
    gtol: float | None = 1e-8
    max_nfev: int | None = None
    mu0: float = 1e-3

    def __post_init__(self) -> None:
        check_settings({"max_nfev": self.max_nfev}, {"ftol": self.ftol, "xtol": self.xtol, "gtol": self.gtol}, positive=("max_nfev",))
        if not self.mu0 > 0:
            raise ValueError(f"mu0 must be positive; got {self.mu0!r}.")

    def run(
        self, x0: Any, evaluate: Callable[..., tuple[Any, Any]], data: tuple = (), lower: Any = None, upper: Any = None, *, row_by_row: bool = False
    ) -> LMState:
        """Iterate from the rows of ``x0`` until every member has stopped; the final state, on the host.

        ``evaluate(x, *data)`` returns the residuals (k, m) and Jacobian (k, m, n) of the k
        rows of ``x`` (k ≤ B), ``data`` being the per-member arrays (leading axis B) gathered
        to the same rows. ``lower``/``upper`` are (n,) bounds; x0 must lie in them. The state
        returned holds NumPy arrays, one row per member in x0's order. A Ctrl-C propagates
        with every member's latest accepted row in ``exc.autominimize_rows`` (an LMState).

        Stopped members leave the batch once a quarter of its rows have stopped
        (:class:`~.compaction.ActiveRows`); with ``row_by_row`` (``evaluate`` loops over
        the rows, so a stopped row would cost a whole evaluation) at every step where one stops.
        """
        xp = namespace(x0)
        jit = array_api_compat.is_jax_array(x0)
        box = None if lower is None and upper is None else (lower, upper)
        init, step, gather = _pieces(xp, self, evaluate, jit)
        state = init(x0, box, *data)
        active = ActiveRows(x0.shape[0], padded=jit, drop_at=1.0 if row_by_row else KEEP_SHARE)
        with active.latest_attached(lambda: state):
            while True:
                state, data = active.compact(state, data, gather)
                if state is None:
                    return active.result(LMState)
                state = step(state, box, *data)


def _device(x: Any) -> Any:
    return array_api_compat.device(x)


@functools.lru_cache(maxsize=32)
def _pieces(xp: Any, algo: BatchedLM, evaluate: Callable, jit: bool) -> tuple[Callable, Callable, Callable]:
    """init, step and gather for one algorithm and residual function (compiled on JAX)."""
    pieces = (functools.partial(_init, xp, algo, evaluate), functools.partial(_step, xp, algo, evaluate), functools.partial(gather_rows, xp))
    return tuple(AheadOfTime(piece) for piece in pieces) if jit else pieces


def _project(xp: Any, x: Any, box: tuple | None) -> Any:
    if box is None:
        return x
    lower, upper = box
    x = x if lower is None else xp.maximum(x, lower)
    return x if upper is None else xp.minimum(x, upper)


def _normal_equations(xp: Any, r: Any, J: Any) -> tuple[Any, Any]:
    Jt = xp.matrix_transpose(J)
    return xp.matmul(Jt, J), xp.matmul(Jt, r[..., None])[..., 0]


def _diagonal(xp: Any, A: Any) -> Any:
    n = A.shape[-1]
    return xp.sum(A * xp.eye(n, dtype=A.dtype, device=_device(A)), axis=-1)


def _binding(xp: Any, x: Any, g: Any, box: tuple | None) -> Any:
    """Variables at a bound whose gradient points out of the box (held fixed by the step)."""
    fixed = xp.zeros(x.shape, dtype=xp.bool, device=_device(x))
    if box is None:
        return fixed
    lower, upper = box
    if lower is not None:
        fixed = xp.logical_or(fixed, xp.logical_and(x <= lower, g > 0))
    if upper is not None:
        fixed = xp.logical_or(fixed, xp.logical_and(x >= upper, g < 0))
    return fixed


def _gradient_norm(xp: Any, x: Any, g: Any, box: tuple | None) -> Any:
    """Row-wise ‖x − P(x − g)‖_∞ (‖g‖_∞ without bounds)."""
    return xp.max(xp.abs(x - _project(xp, x - g, box)), axis=-1)


def _evaluated(xp: Any, evaluate: Callable, x: Any, data: tuple) -> tuple[Any, ...]:
    """r, J, A = JᵀJ, g = Jᵀr and the cost ½‖r‖² at the rows x, and which rows are finite.

    A row is finite when its cost and diag(A) are: a NaN or inf in r or J reaches them. This
    reads two (B,)-sized results instead of testing every entry of r and J, two fewer passes
    over the (B, m, n) Jacobian per step (those passes cost most on torch, whose eager ops on
    large arrays each synchronise their threads).
    """
    r, J = evaluate(x, *data)
    A, g = _normal_equations(xp, r, J)
    cost = 0.5 * xp.sum(r * r, axis=-1)
    finite = xp.logical_and(xp.isfinite(cost), xp.all(xp.isfinite(_diagonal(xp, A)), axis=-1))
    return r, J, A, g, cost, finite


_UNROLLED = 8  # up to this n, an unrolled Cholesky: XLA compiles jnp.linalg.solve's batched LU in ~1 s


def _solve_spd(xp: Any, M: Any, b: Any) -> Any:
    """Row-wise M⁻¹b for symmetric positive definite (B, n, n) M (Cholesky, unrolled for small n)."""
    n = M.shape[-1]
    if n > _UNROLLED:
        return xp.linalg.solve(M, b[..., None])[..., 0]
    L: dict[tuple[int, int], Any] = {}
    for j in range(n):
        pivot = M[:, j, j] - sum((L[j, k] ** 2 for k in range(j)), xp.zeros_like(b[:, 0]))
        # exact arithmetic keeps pivot ≥ μ·d_j > 0; rounding at tiny μ may not
        L[j, j] = xp.sqrt(xp.maximum(pivot, 1e-300 + 1e-15 * M[:, j, j]))
        for i in range(j + 1, n):
            L[i, j] = (M[:, i, j] - sum((L[i, k] * L[j, k] for k in range(j)), xp.zeros_like(b[:, 0]))) / L[j, j]
    z: list[Any] = []
    for i in range(n):
        z.append((b[:, i] - sum((L[i, k] * z[k] for k in range(i)), xp.zeros_like(b[:, 0]))) / L[i, i])
    h: list[Any] = [None] * n
    for i in reversed(range(n)):
        h[i] = (z[i] - sum((L[k, i] * h[k] for k in range(i + 1, n)), xp.zeros_like(b[:, 0]))) / L[i, i]
    return xp.stack(h, axis=-1)


def _accepted_rows(xp: Any, accept: Any, new: Any, old: Any) -> Any:
    """``new`` in the accepted rows, ``old`` in the others. On NumPy the rejected rows are
    written into ``new`` (this step's own array): of the (B, m) residuals and (B, m, n)
    Jacobians only the rejected rows travel, instead of a ``where`` over all of them."""
    if array_api_compat.is_numpy_array(new) and new.flags.writeable:
        rejected = xp.logical_not(accept)
        new[rejected] = old[rejected]
        return new
    return xp.where(xp.reshape(accept, accept.shape + (1,) * (new.ndim - 1)), new, old)


def _init(xp: Any, algo: BatchedLM, evaluate: Callable, x: Any, box: tuple | None, *data: Any) -> LMState:
    r, J, A, g, cost, finite = _evaluated(xp, evaluate, x, data)
    r = xp.where(finite[:, None], r, xp.zeros_like(r))
    J = xp.where(finite[:, None, None], J, xp.zeros_like(J))
    A = xp.where(finite[:, None, None], A, xp.zeros_like(A))
    g = xp.where(finite[:, None], g, xp.zeros_like(g))
    diag = _diagonal(xp, A)
    scale = xp.where(diag > 0, diag, xp.ones_like(diag))
    batch = x.shape[0]
    ints = xp.zeros((batch,), dtype=xp.int32, device=_device(x))
    reason = xp.where(finite, ints, xp.full_like(ints, _NOT_FINITE))
    if algo.gtol is not None:
        at_start = xp.logical_and(finite, _gradient_norm(xp, x, g, box) < algo.gtol)
        reason = xp.where(at_start, xp.full_like(ints, _GTOL), reason)
    cost = xp.where(finite, cost, xp.full_like(cost, float("inf")))
    mu = xp.full((batch,), algo.mu0, dtype=x.dtype, device=_device(x))
    return LMState(x, r, J, A, cost, g, scale, mu, xp.full_like(mu, 2.0), ints + 1, ints, reason)


def _step(xp: Any, algo: BatchedLM, evaluate: Callable, s: LMState, box: tuple | None, *data: Any) -> LMState:
    running = s.reason == RUNNING
    n = s.x.shape[-1]
    eye = xp.eye(n, dtype=s.x.dtype, device=_device(s.x))
    A = s.A
    free = xp.logical_and(xp.logical_not(_binding(xp, s.x, s.g, box)), running[:, None])
    both = xp.logical_and(free[:, :, None], free[:, None, :])
    system = xp.where(both, A + (s.mu[:, None] * s.scale)[:, :, None] * eye, eye)
    rhs = xp.where(free, -s.g, xp.zeros_like(s.g))
    h = _solve_spd(xp, system, rhs)
    x_new = _project(xp, s.x + h, box)
    h = x_new - s.x
    predicted = -(xp.sum(h * s.g, axis=-1) + 0.5 * xp.sum(h * xp.matmul(A, h[..., None])[..., 0], axis=-1))

    r_new, J_new, A_new, g_new, cost_new, finite = _evaluated(xp, evaluate, x_new, data)
    reduction = s.cost - cost_new
    safe_pred = xp.where(predicted > 0, predicted, xp.ones_like(predicted))
    ratio = xp.where(predicted > 0, reduction / safe_pred, xp.zeros_like(predicted))
    accept = xp.logical_and(xp.logical_and(running, finite), xp.logical_and(reduction > 0, predicted > 0))

    shrink = xp.maximum(xp.full_like(ratio, 1.0 / 3.0), 1.0 - (2.0 * ratio - 1.0) ** 3)
    mu = xp.where(accept, s.mu * shrink, xp.minimum(s.mu * s.nu, xp.full_like(s.mu, _MU_MAX)))
    mu = xp.where(running, mu, s.mu)
    nu = xp.where(running, xp.where(accept, xp.full_like(s.nu, 2.0), 2.0 * s.nu), s.nu)
    keep = accept[:, None]
    x = xp.where(keep, x_new, s.x)
    r = _accepted_rows(xp, accept, r_new, s.r)
    J = _accepted_rows(xp, accept, J_new, s.J)
    A = xp.where(accept[:, None, None], A_new, A)
    g = xp.where(keep, g_new, s.g)
    scale = xp.where(keep, xp.maximum(s.scale, _diagonal(xp, A_new)), s.scale)
    cost = xp.where(accept, cost_new, s.cost)
    counted = xp.astype(running, s.nfev.dtype)
    nfev, nit = s.nfev + counted, s.nit + counted

    # scipy's check_termination after each finite trial, then gtol at the (new) point
    tested = xp.logical_and(running, finite)
    no = xp.zeros_like(running)
    ftol_hit = no if algo.ftol is None else xp.logical_and(accept, xp.logical_and(reduction < algo.ftol * s.cost, ratio > 0.25))
    xtol_hit = no
    if algo.xtol is not None:
        step_norm = xp.sqrt(xp.sum(h * h, axis=-1))
        x_norm = xp.sqrt(xp.sum(s.x * s.x, axis=-1))
        xtol_hit = xp.logical_and(tested, step_norm < algo.xtol * (algo.xtol + x_norm))
    gtol_hit = no if algo.gtol is None else xp.logical_and(running, _gradient_norm(xp, x, g, box) < algo.gtol)
    max_nfev = algo.max_nfev if algo.max_nfev is not None else 100 * n
    code = xp.full_like(s.reason, RUNNING)
    for hit, value in (
        (nfev >= max_nfev, _MAXFEV),
        (gtol_hit, _GTOL),
        (xtol_hit, _XTOL),
        (ftol_hit, _FTOL),
        (xp.logical_and(ftol_hit, xtol_hit), _BOTH),
    ):  # the last listed wins
        code = xp.where(xp.logical_and(running, hit), xp.full_like(code, value), code)
    reason = xp.where(running, code, s.reason)
    return LMState(x, r, J, A, cost, g, scale, mu, nu, nfev, nit, reason)
