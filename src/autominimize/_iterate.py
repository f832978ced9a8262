"""``am.iterate``: one outer step per ``next()``, so the caller keeps program control.

The seed document's ``minimize_iterator`` ("more useful than minimize() because it doesn't
hog program control"). The iterator yields :class:`IterationState` snapshots, a type that
does not depend on the method; between steps the caller may read them, change a
hyperparameter with :meth:`Iteration.set`, or simply stop iterating, and
:meth:`Iteration.result` gives the ``OptimizeResult`` at any time.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterator, Protocol

import scipy.optimize as so

from .drivers.state import IterationState
from .recording import attach_best
from .validation import check_callable, check_constraints, check_known, check_solve_arguments

__all__ = ["iterate", "Iteration", "IterationState"]


class Runner(Protocol):
    """What a method's driver provides to :class:`Iteration`."""

    def advance(self) -> IterationState | None: ...

    def result(self) -> so.OptimizeResult: ...

    def set_hyperparameters(self, **changes: Any) -> None: ...


class Iteration(Iterator[IterationState]):
    """The iterator ``am.iterate`` returns.

    Examples
    --------
    >>> import numpy as np
    >>> import autominimize as am
    >>> it = am.iterate(lambda x: ((x - 1.0) ** 2).sum(), np.zeros(3), method="sgd",
    ...                 options={"lr": 0.1}, backend="jax")
    >>> for state in it:
    ...     if state.nit == 5:
    ...         it.set(lr=0.4)          # change a hyperparameter between steps
    >>> res = it.result()
    >>> bool(res.success), bool(np.allclose(res.x, 1.0, atol=1e-5))
    (True, True)
    """

    def __init__(self, runner: Runner):
        self._runner = runner
        self.state: IterationState | None = None

    def __iter__(self) -> "Iteration":
        return self

    def __next__(self) -> IterationState:
        try:
            state = self._runner.advance()
        except KeyboardInterrupt as exc:
            self._interrupted(exc)
            raise
        if state is None:
            raise StopIteration
        self.state = state
        return state

    def set(self, **changes: Any) -> None:
        """Change hyperparameters (``lr``, ``momentum``, ``memory``…) from the next step on."""
        self._runner.set_hyperparameters(**changes)

    def result(self) -> so.OptimizeResult:
        """The result so far (``success=False`` if stopped by the caller before convergence)."""
        return self._runner.result()

    def close(self) -> None:
        """End the run now (a scipy method's worker thread stops and exits)."""
        close = getattr(self._runner, "close", None)
        if close is not None:
            close()

    def _interrupted(self, exc: KeyboardInterrupt) -> None:
        """A Ctrl-C ends the run: the solve stops (a scipy method's worker thread ends before
        the exception goes on) and the best point so far goes with the exception."""
        self.close()
        try:
            result = self._runner.result()
        except Exception:  # the solve failed, or never started: no point to attach
            return
        attach_best(exc, result.x, float(result.fun))

    def __enter__(self) -> "Iteration":
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, traceback: Any) -> None:
        if isinstance(exc, KeyboardInterrupt) and not hasattr(exc, "autominimize_best_x"):
            self._interrupted(exc)  # a Ctrl-C in the loop body
        else:
            self.close()

    def __del__(self) -> None:
        # ``for state in am.iterate(...): break`` drops the iterator: a scipy method's
        # worker thread must not stay parked behind it
        try:
            self.close()
        except Exception:  # a solve that failed raised its error where it was followed
            pass


def iterate(
    fun: Callable,
    x0: Any,
    args: tuple = (),
    method: str = "lbfgs-native",
    jac: Callable | bool | None = None,
    bounds: Any = None,
    tol: float | None = None,
    callback: Callable | None = None,
    options: dict | None = None,
    *,
    backend: str | None = None,
    precision: str | None = None,
    unpack: str = "auto",
    torch_device: Any = None,
    data: Any = None,
    epochs: int | None = None,
    stop: Any = None,
    **minimize_kwargs: Any,
) -> Iteration:
    """Minimize step by step: ``for state in am.iterate(fun, x0, method=...)``.

    Takes ``am.minimize``'s arguments, for the native methods ('lbfgs-native', 'cg-native',
    'hessian-free', 'sgd', 'delta-bar-delta', 'sgd-qn', 'tonga') and for scipy's methods
    alike (a scipy method runs in a worker thread that pauses at each of scipy's iterations
    and never outlives the iterator). Each ``next()`` makes one outer step (one scipy
    iteration; one line search; one Hessian-free CG solve; one mini-batch) and returns an
    :class:`IterationState`; the iterator raises ``StopIteration`` once a stopping criterion
    is met (the step that met it is still yielded). A Ctrl-C propagates with the best point
    in ``exc.autominimize_best_x`` after the solve (and its worker thread) stopped; one that
    lands in the loop body is seen only by a ``with am.iterate(...) as it:`` block.

    Parameters
    ----------
    fun, x0, args, jac, bounds, tol, callback, options, backend, precision, unpack, torch_device
        As in ``am.minimize``.
    method : str
        A native method name (default 'lbfgs-native') or any of ``am.minimize``'s scipy
        methods ('L-BFGS-B', 'trust-constr', ...).
    **minimize_kwargs
        For scipy's methods, the rest of ``am.minimize``'s arguments (``constraints``,
        ``hess``, ``log``, ...).
    data : iterable, optional
        Mini-batches for the stochastic methods: ``fun(params, batch)`` is called with one
        batch per step. Must be re-iterable (list, DataLoader) to run several epochs.
    epochs : int, optional
        Passes over ``data`` (default 1).
    stop : Criterion or callable, optional
        Replaces the default stopping rule, e.g.
        ``GradientTolerance(1e-8) | TimeBudget(60)`` (:mod:`autominimize.native.stopping`).

    Returns
    -------
    Iteration
        An iterator of :class:`IterationState`, with ``set(**hyperparameters)`` and
        ``result()``.
    """
    from .drivers.native import NativeRun
    from .native import is_native_method

    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable; got {type(callback).__name__}.")
    if not is_native_method(method):
        if data is not None or epochs is not None or stop is not None:
            raise ValueError(f"data=, epochs= and stop= are for the native methods; method={method!r} is scipy's.")
        runner = _scipy_runner(
            fun,
            x0,
            args=args,
            method=method,
            jac=jac,
            bounds=bounds,
            tol=tol,
            callback=callback,
            options=options,
            backend=backend,
            precision=precision,
            unpack=unpack,
            torch_device=torch_device,
            **minimize_kwargs,
        )
        return Iteration(runner)
    if minimize_kwargs:
        raise TypeError(
            f"am.iterate with the native method {method!r} does not take {sorted(minimize_kwargs)}; "
            "those are am.minimize's (batch=True solves run in one call, without an iterator)."
        )
    check_solve_arguments(tol, options, method, {"callback": callback})
    runner = NativeRun(
        fun,
        x0,
        args,
        method,
        jac=jac,
        bounds=bounds,
        tol=tol,
        callback=callback,
        options=options,
        backend=backend,
        precision=precision,
        unpack=unpack,
        torch_device=torch_device,
        data=data,
        epochs=epochs,
        stop=stop,
    )
    return Iteration(runner)


def _scipy_runner(fun: Callable, x0: Any, **minimize_kwargs: Any) -> Any:
    """A runner for one of scipy's methods: ``am.minimize`` in a worker thread (``am.minimize``'s arguments)."""
    from ._minimize import minimize
    from .drivers.methods import method_name
    from .drivers.scipy_thread import ScipyRunner
    from .params import ParamSpec

    if "observers" in minimize_kwargs:
        raise TypeError("am.iterate follows the solve itself; observers= is for am.minimize.")
    check_known(minimize_kwargs, inspect.signature(minimize).parameters, "am.iterate got unknown keyword argument(s)")
    # what am.minimize checks before its solve, checked here: the worker thread that runs it
    # would report a mistake only at the first next()
    check_callable(fun, "fun", optional=False)
    method = minimize_kwargs.get("method")
    if not callable(method):
        method_name(method, False, False)
    check_solve_arguments(minimize_kwargs.get("tol"), minimize_kwargs.get("options"), method, {"callback": minimize_kwargs.get("callback")})
    check_constraints(minimize_kwargs.get("constraints"))
    spec = ParamSpec.from_tree(x0)

    def solve(observers: list) -> so.OptimizeResult:
        return minimize(fun, x0, observers=observers, **minimize_kwargs)

    return ScipyRunner(solve, spec.restore, IterationState)
