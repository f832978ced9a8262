"""Batched L-BFGS: B independent problems stacked along the first axis, solved in one run.

The state holds one row per problem (``x`` and ``g`` of shape (B, n), ``f`` of shape (B,),
the curvature pairs as (B, m, n) arrays) and every update is masked, so a member that has
stopped no longer changes while the others go on. On NumPy and torch the stopped members
leave the batch between iterations, so a member that has stopped costs no further
evaluations; on JAX, where each batch size is compiled, they stay, masked. The run ends when
all have stopped.
One evaluation computes all B values and gradients in one call: ``jax.vmap`` or
``torch.func.vmap`` of the single problem's ``value_and_grad``
(:func:`batched_value_and_grad`).

Two line searches, chosen by ``line_search``:

* ``"armijo"`` (default): each member follows **exactly** the arithmetic of the unbatched
  :class:`~.lbfgs.LBFGS` with ``line_search="armijo"`` (or with bounds, its projected
  variant): the same two-loop recursion, memory rule, first step, backtracking and stopping
  tests, so member i's iterates, ``nit`` and ``nfev`` are those of that solve. L-BFGS stays
  well defined since pairs with ⟨s, y⟩ ≤ ``curvature_eps`` are skipped (Nocedal & Wright
  2006, §7.2).
* ``"wolfe"``: the strong Wolfe bracketing and zoom of Nocedal & Wright (Algorithms 3.5 and
  3.6, cubic interpolation safeguarded by bisection), written as a per-member stage
  (bracketing, zooming, done) updated with masks, one batched evaluation per round. The
  curvature condition keeps ⟨s, y⟩ > 0, so pairs are rarely skipped. With bounds, variables
  at a bound whose gradient points out of the box are held, and the search runs along the
  straight line up to the largest step that stays in the box (L-BFGS-B's ``stpmax``): a
  member whose function still decreases there stops at the bound, which is then held
  (:mod:`.batched_wolfe`).

The pieces are pure array-API functions without Python branches on values, so on JAX each
piece (the direction with the line search's start, one line-search trial, the update and
stopping tests) is one ``jax.jit``-compiled call, compiled when first called; torch runs
them eagerly. One boolean leaves the device per line-search trial ("is any member still
searching?").
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import array_api_compat

from ..params import ParamSpec
from ._arrays import namespace
from .batched_two_loop import two_loop
from .batched_wolfe import project, row_dot, wolfe_finish, wolfe_start, wolfe_trial
from .compaction import ActiveRows, gather_rows
from ..backends.jax_aot import AheadOfTime
from ..backends.common import no_gradient_error
from .oracles import _scalar_check, make_params_of
from ..validation import is_one_of

__all__ = ["BatchedLBFGS", "BatchedState", "REASONS", "batched_value_and_grad"]

#: Why a member stopped, by the code in ``BatchedState.reason``: (message, success, status).
#: Status follows scipy and :mod:`.stopping`: 0 converged, 1 a budget ran out, 2 failure.
REASONS = {
    1: ("gradient norm <= gtol", True, 0),
    2: ("relative reduction of f <= ftol", True, 0),
    3: ("maximum number of iterations reached", False, 1),
    4: ("maximum number of function evaluations reached", False, 1),
    5: ("line search failed to find a point with sufficient decrease", False, 2),
    6: ("time budget used", False, 1),
}
_RUNNING, _GTOL, _FTOL, _MAXITER, _MAXFEV, _LINE_SEARCH, _TIME = 0, 1, 2, 3, 4, 5, 6


class BatchedState(NamedTuple):
    x: Any  # (B, n)
    f: Any  # (B,)
    g: Any  # (B, n)
    S: Any  # (B, m, n) steps, oldest first; unused slots are zero with rho = 0
    Y: Any  # (B, m, n) gradient changes
    rho: Any  # (B, m) 1 / ⟨s, y⟩, 0 for an unused slot
    count: Any  # (B,) pairs stored
    nit: Any  # (B,) iterations made
    nfev: Any  # (B,) evaluations made (value and gradient together)
    reason: Any  # (B,) 0 while running, else a key of REASONS


@dataclass(frozen=True)
class BatchedLBFGS:
    """L-BFGS on B stacked problems, with backtracking Armijo and per-member stopping.

    Parameters
    ----------
    line_search : {'armijo', 'wolfe'}
        Backtracking Armijo (the unbatched solve's arithmetic) or strong Wolfe (see above).
    c2 : float
        The curvature constant of the Wolfe search (0.9, Nocedal & Wright §3.1).
    memory, c1, max_line_search, curvature_eps
        As for :class:`~.lbfgs.LBFGS` (defaults 10, 1e-4, 20, 1e-10; scipy L-BFGS-B
        ``maxcor``/``maxls``, Nocedal & Wright §3.1, torch ``LBFGS``).
    shrink : float
        Step reduction per backtracking trial; 0.5 (halving, Nocedal & Wright Algorithm 3.1).
    gtol, ftol, maxiter, maxfev
        Per-member stopping, tested in this order after each step as by ``am.minimize``:
        ‖g‖_∞ (the projected gradient with bounds) ≤ gtol, relative reduction
        (f_prev − f)/max(|f_prev|, |f|, 1) ≤ ftol, iterations, evaluations. Defaults are
        scipy L-BFGS-B's: 1e-5, 2.220446049250313e-09 (factr 1e7 × machine epsilon), 15000.
    max_time : float, optional
        Seconds for the whole run; members still running then stop with status 1.
    lower, upper : array, optional
        Flat (n,) bounds: projected L-BFGS as in :class:`~.lbfgs.LBFGS`.

    Examples
    --------
    ``am.minimize(..., batch=True)`` drives it:

    >>> import numpy as np
    >>> import autominimize as am
    >>> rosen = lambda x: 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2
    >>> x0 = np.array([[-1.2, 1.0], [2.0, 2.0], [0.0, 0.0]])
    >>> res = am.minimize(rosen, x0, method="lbfgs-native", batch=True, backend="jax")
    >>> res.x.shape, bool(np.allclose(res.x, 1.0, atol=1e-3)), res.success.tolist()
    ((3, 2), True, [True, True, True])
    """

    memory: int = 10
    c1: float = 1e-4
    c2: float = 0.9
    line_search: str = "armijo"
    shrink: float = 0.5
    max_line_search: int = 20
    curvature_eps: float = 1e-10
    gtol: float | None = 1e-5
    ftol: float | None = 2.220446049250313e-09
    maxiter: int = 15000
    maxfev: int | None = None
    max_time: float | None = None
    lower: Any = None
    upper: Any = None

    def __post_init__(self) -> None:
        if self.memory < 1:
            raise ValueError(f"memory must be at least 1; got {self.memory}.")
        if not 0.0 < self.shrink < 1.0:
            raise ValueError(f"shrink must be in (0, 1); got {self.shrink}.")
        if not is_one_of(self.line_search, ("armijo", "wolfe")):
            raise ValueError(f"line_search must be 'armijo' or 'wolfe'; got {self.line_search!r}.")
        if not 0.0 < self.c1 < self.c2 < 1.0:
            raise ValueError(f"the Wolfe constants need 0 < c1 < c2 < 1; got c1={self.c1}, c2={self.c2}.")

    @property
    def bounded(self) -> bool:
        return self.lower is not None or self.upper is not None

    # -- the run ----------------------------------------------------------------------
    def run(self, x0: Any, value_and_grad: Callable[[Any], tuple[Any, Any]]) -> BatchedState:
        """Iterate from the rows of ``x0`` until every member has stopped; the final state, on
        the host (NumPy arrays, one row per member in x0's order).

        Between iterations the members that have stopped leave the batch
        (:class:`~.compaction.ActiveRows`), so ``value_and_grad`` sees only running rows;
        on JAX, whose pieces are compiled per batch size, they stay in it, masked. A Ctrl-C
        or an exception propagates with every member's latest row in ``exc.autominimize_rows``.
        """
        xp = namespace(x0)
        jit = array_api_compat.is_jax_array(x0)
        # bounds are arguments of the compiled pieces, so these stay cached across runs
        pieces = _pieces(xp, dataclasses.replace(self, lower=None, upper=None), value_and_grad, jit)
        box = (self.lower, self.upper) if self.bounded else None
        start = time.perf_counter()
        state = pieces[0](x0, box)
        # on JAX every new batch size compiles the pieces again: 1 000 bounded rosen10
        # starts took 21–24 s cold instead of 6–8 s, for no less CPU time warm (0.76–0.78 s
        # against 0.72–0.84 s), so the JAX batch keeps its size and masks stopped members
        active = ActiveRows(x0.shape[0], padded=jit, whole=jit)
        with active.latest_attached(lambda: state):
            while True:
                state, _ = active.compact(state, (), pieces[-1])
                if state is None:
                    return active.result(BatchedState)
                if self.max_time is not None and time.perf_counter() - start >= self.max_time:
                    state = state._replace(reason=xp.where(state.reason == _RUNNING, xp.full_like(state.reason, _TIME), state.reason))
                else:
                    state = self._iteration(xp, pieces, state, box)

    def _iteration(self, xp: Any, pieces: tuple, state: BatchedState, box: tuple | None) -> BatchedState:
        """One direction, line search and update for every row of ``state``."""
        _, start, trial, finish, _ = pieces
        state, d, search, searching, found, more = start(state, box)
        for _ in range(self.max_line_search):
            if not bool(more):
                break
            searching, search, found, more = trial(state, d, search, searching, found, box)
        return finish(state, search, searching, found, box)


@functools.lru_cache(maxsize=32)
def _pieces(xp: Any, algo: BatchedLBFGS, value_and_grad: Callable, jit: bool) -> tuple[Callable, ...]:
    """init, the start of an iteration (direction and line-search setup), one line-search
    trial, its end (the update and stopping tests), and the gather of running rows, for one
    algorithm and function (compiled on JAX, each when first called).

    Each piece also does the small array operations between the pieces (the mask of
    members searching, whether any is): run eagerly on JAX each was one more compilation,
    after every float64 solve again: a 64-start multistart compiled 6 pieces and 4 eager
    operations, and its second solve those 4 again; now 4 pieces, and then nothing.
    """
    wolfe = algo.line_search == "wolfe"
    pieces = (
        functools.partial(_init, xp, algo, value_and_grad),
        functools.partial(_start, xp, algo, wolfe),
        functools.partial(_search_trial, xp, algo, value_and_grad, wolfe_trial if wolfe else _trial),
        functools.partial(_finish, xp, algo, wolfe),
        functools.partial(gather_rows, xp),
    )
    # ahead of time: a float64 solve clears JAX's caches, so jax.jit alone recompiles each solve
    return tuple(AheadOfTime(piece) for piece in pieces) if jit else pieces


def _start(xp: Any, algo: BatchedLBFGS, wolfe: bool, state: BatchedState, box: tuple | None) -> tuple:
    """The directions, the line search's state (the Armijo step or :class:`WolfeSearch`), the
    members searching, the best points found so far (the current ones) and whether any searches."""
    state, d, alpha = _direction(xp, algo, state, box)
    search = alpha
    if wolfe:
        search, d = wolfe_start(xp, state, d, alpha, box)
    searching = state.reason == _RUNNING
    found = (state.x, state.f, state.g, xp.zeros_like(searching), state.nfev)
    return state, d, search, searching, found, xp.any(searching)


def _search_trial(xp: Any, algo: BatchedLBFGS, value_and_grad: Callable, trial: Callable, *args: Any) -> tuple:
    """One trial of the line search (``trial``: :func:`_trial` or :func:`wolfe_trial`), and
    whether any member still searches."""
    searching, search, found = trial(xp, algo, value_and_grad, *args)
    return searching, search, found, xp.any(searching)


def _finish(
    xp: Any, algo: BatchedLBFGS, wolfe: bool, state: BatchedState, search: Any, searching: Any, found: tuple, box: tuple | None
) -> BatchedState:
    """The end of an iteration: the Wolfe fallback for searches out of trials, then the update."""
    if wolfe:
        found = wolfe_finish(xp, search, searching, found)
    return _update(xp, algo, state, found, box)


def _grad_norm(xp: Any, x: Any, g: Any, box: tuple | None) -> Any:
    """Row-wise ‖g‖_∞, of the projected gradient x − P(x − g) with bounds (scipy's pgtol)."""
    stationarity = g if box is None else x - project(xp, x - g, box)
    return xp.max(xp.abs(stationarity), axis=-1)


def _init(xp: Any, algo: BatchedLBFGS, value_and_grad: Callable, x0: Any, box: tuple | None) -> BatchedState:
    x = project(xp, x0, box)
    f, g = value_and_grad(x)
    batch, n = x.shape
    zeros_int = xp.zeros((batch,), dtype=xp.int32)
    # scipy returns x0 with nit = 0 when it already satisfies gtol (am.minimize does too)
    done = _grad_norm(xp, x, g, box) <= algo.gtol if algo.gtol is not None else xp.zeros((batch,), dtype=xp.bool)
    reason = xp.where(done, xp.full_like(zeros_int, _GTOL), zeros_int)
    memory = xp.zeros((batch, algo.memory, n), dtype=x.dtype)
    return BatchedState(
        x, f, g, memory, xp.zeros_like(memory), xp.zeros((batch, algo.memory), dtype=x.dtype), zeros_int, zeros_int, zeros_int + 1, reason
    )


def _direction(xp: Any, algo: BatchedLBFGS, state: BatchedState, box: tuple | None) -> tuple[BatchedState, Any, Any]:
    """The search directions and first trial steps; members that lost descent forget pairs."""
    x, g = state.x, state.g
    gradient = g
    if box is not None:
        binding = xp.logical_or(xp.logical_and(x <= box[0], g > 0), xp.logical_and(x >= box[1], g < 0))
        gradient = xp.where(binding, xp.zeros_like(g), g)
    d = -two_loop(xp, gradient, state.S, state.Y, state.rho, state.count)
    if box is not None:
        d = xp.where(binding, xp.zeros_like(d), d)
    descent = row_dot(xp, g, d) < 0.0
    d = xp.where(descent[:, None], d, -gradient)
    keep = descent[:, None, None]
    state = state._replace(
        S=xp.where(keep, state.S, xp.zeros_like(state.S)),
        Y=xp.where(keep, state.Y, xp.zeros_like(state.Y)),
        rho=xp.where(descent[:, None], state.rho, xp.zeros_like(state.rho)),
        count=xp.where(descent, state.count, xp.zeros_like(state.count)),
    )
    # first step: 1 with curvature pairs, else min(1, 1/‖g‖₁) (minFunc, torch LBFGS)
    norm1 = xp.sum(xp.abs(gradient), axis=-1)
    first = xp.minimum(xp.ones_like(norm1), 1.0 / xp.maximum(norm1, xp.full_like(norm1, 1e-300)))
    alpha = xp.where(state.count > 0, xp.ones_like(norm1), first)
    return state, d, alpha


def _trial(
    xp: Any, algo: BatchedLBFGS, value_and_grad: Callable, state: BatchedState, d: Any, alpha: Any, searching: Any, found: tuple, box: tuple | None
):
    """One backtracking trial for every member still searching (Armijo along the arc with bounds)."""
    x_best, f_best, g_best, accepted, nfev = found
    x_new = project(xp, state.x + alpha[:, None] * d, box)
    f_new, g_new = value_and_grad(x_new)
    decrease = f_new <= state.f + algo.c1 * row_dot(xp, state.g, x_new - state.x)
    ok = xp.logical_and(searching, xp.logical_and(xp.isfinite(f_new), decrease))
    found = (
        xp.where(ok[:, None], x_new, x_best),
        xp.where(ok, f_new, f_best),
        xp.where(ok[:, None], g_new, g_best),
        xp.logical_or(accepted, ok),
        nfev + xp.astype(searching, nfev.dtype),
    )
    searching = xp.logical_and(searching, xp.logical_not(ok))
    return searching, xp.where(searching, alpha * algo.shrink, alpha), found


def _update(xp: Any, algo: BatchedLBFGS, state: BatchedState, found: tuple, box: tuple | None) -> BatchedState:
    """Accept the line-search points, store new pairs, count, and test stopping per member."""
    x_new, f_new, g_new, accepted, nfev = found
    running = state.reason == _RUNNING
    s, y = x_new - state.x, g_new - state.g
    sy = row_dot(xp, s, y)
    store = xp.logical_and(accepted, sy > algo.curvature_eps)
    safe_sy = xp.where(store, sy, xp.ones_like(sy))
    S = xp.where(store[:, None, None], xp.concat([state.S[:, 1:], s[:, None]], axis=1), state.S)
    Y = xp.where(store[:, None, None], xp.concat([state.Y[:, 1:], y[:, None]], axis=1), state.Y)
    rho = xp.where(store[:, None], xp.concat([state.rho[:, 1:], (1.0 / safe_sy)[:, None]], axis=1), state.rho)
    count = xp.where(store, xp.minimum(state.count + 1, xp.full_like(state.count, algo.memory)), state.count)
    nit = state.nit + xp.astype(running, state.nit.dtype)

    reduction = (state.f - f_new) / xp.maximum(xp.maximum(xp.abs(state.f), xp.abs(f_new)), xp.ones_like(f_new))
    tests = [(xp.logical_not(accepted), _LINE_SEARCH)]
    if algo.gtol is not None:
        tests.append((_grad_norm(xp, x_new, g_new, box) <= algo.gtol, _GTOL))
    if algo.ftol is not None:
        tests.append((xp.logical_and(reduction >= 0.0, reduction <= algo.ftol), _FTOL))
    tests.append((nit >= algo.maxiter, _MAXITER))
    if algo.maxfev is not None:
        tests.append((nfev >= algo.maxfev, _MAXFEV))
    reason = state.reason
    for hit, code in reversed(tests):  # the first test listed wins
        reason = xp.where(xp.logical_and(running, hit), xp.full_like(reason, code), reason)
    return BatchedState(x_new, f_new, g_new, S, Y, rho, count, nit, nfev, reason)


# -- one value_and_grad for all members ---------------------------------------------------
def batched_value_and_grad(backend: str, call: Callable[[Any], Any], spec: ParamSpec) -> Callable[[Any], tuple[Any, Any]]:
    """Value and gradient of ``call`` (one problem's parameters → a scalar) over (B, n) rows.

    JAX: ``jax.vmap(jax.value_and_grad(objective))``, jitted by the caller together with the
    step; torch: ``torch.func.vmap(torch.func.grad_and_value(objective))``, where
    ``objective`` is ``call`` of the row's views in ``spec``'s structure. Returns ``(f, g)`` of
    shapes (B,) and (B, n).
    """
    params_of = make_params_of(spec)
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        def objective(x: Any) -> Any:
            out = jnp.asarray(call(params_of(x)))
            _scalar_check(out.shape, False)
            return out.reshape(()).astype(x.dtype)

        return jax.vmap(jax.value_and_grad(objective))
    if backend == "torch":
        import torch

        def objective(x: Any) -> Any:
            out = torch.as_tensor(call(params_of(x)))
            _scalar_check(tuple(out.shape), False)
            return out.reshape(()).to(x.dtype)

        mapped = torch.func.vmap(torch.func.grad_and_value(objective))
        checked: list[bool] = []

        def value_and_grad(x: Any) -> tuple[Any, Any]:
            if not checked:  # under vmap an output detached from x only shows as a zero gradient
                with torch.enable_grad():
                    if not objective(x[0].detach().requires_grad_(True)).requires_grad:
                        raise no_gradient_error("outside torch's autograd (float(), .item(), .detach(), NumPy, or under torch.no_grad())")
                checked.append(True)
            g, f = mapped(x)
            return f, g

        return value_and_grad
    raise ValueError(f"batched solves need JAX (jax.vmap) or torch (torch.func.vmap); got backend={backend!r}.")
