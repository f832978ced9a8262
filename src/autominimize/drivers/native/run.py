"""One native solve, advanced one outer step at a time, and the loop that runs it to the end."""

from __future__ import annotations

import contextlib
import inspect
import math
import time
from typing import Any, Callable

import numpy as np
import scipy.optimize as so

from ..._setup import prepare
from ...recording import attach_best, in_nested_solve
from ...validation import check_batches
from ...native import native_method_name
from ...native._arrays import namespace, norm_inf
from ...native.oracles import CountingOracle
from ...native.stopping import Progress, Stop
from ..state import IterationState
from .arrays import like, to_framework, to_host
from .batched import minimize_batched
from .batches import Batches
from .functions import native_functions
from .options import make_algorithm, make_criterion

__all__ = ["NativeRun", "StepReport", "minimize_native", "run_to_end"]


class NativeRun:
    """One native solve, advanced one outer step at a time (``am.minimize``'s arguments)."""

    def __init__(
        self,
        fun: Callable,
        x0: Any,
        args: tuple,
        method: str,
        *,
        jac: Callable | bool | None = None,
        bounds: Any = None,
        tol: float | None = None,
        callback: Callable | None = None,
        options: dict | None = None,
        backend: str | None = None,
        precision: str | None = None,
        unpack: str = "auto",
        torch_device: Any = None,
        data: Any = None,
        epochs: int | None = None,
        stop: Any = None,
    ):
        if not callable(fun):
            raise TypeError(f"fun must be callable; got {type(fun).__name__}.")
        self.method = native_method_name(method)
        check_batches(data, epochs)
        self.stochastic = data is not None
        self.algorithm, stop_options = make_algorithm(self.method, options, stop, stochastic=self.stochastic, epochs=epochs, bounds=bounds)
        self.batches = Batches(data) if self.stochastic else None
        self._set_up(fun, x0, args if isinstance(args, tuple) else (args,), jac, bounds, backend, precision, unpack, torch_device)
        self.criterion = make_criterion(
            self.method, self.algorithm.first_order, stop_options, tol, epochs, self.spec.size, stochastic=self.stochastic
        )
        self.criterion.start()
        self.callback = callback
        self._new_style = callback is not None and _takes_intermediate_result(callback)
        self.oracle = CountingOracle(self.functions)
        self.oracle.track_best = not self.stochastic  # mini-batch values are not comparable
        self.state: Any = None
        self.nit = 0
        self.stop: Stop | None = None
        self._start = 0.0
        # the point the last value was measured at (a first-order step measures before it moves)
        self.fun_point: Any = None

    def _set_up(
        self, fun: Callable, x0: Any, args: tuple, jac: Any, bounds: Any, backend: str | None, precision: str | None, unpack: str, device: Any
    ) -> None:
        """x0's structure, the backend, the functions on its flat arrays, the start and the bounds."""
        stochastic = self.stochastic
        # a stochastic objective takes the mini-batch after the parameters, before args
        setup = prepare(fun, x0, ((None,) if stochastic else ()) + args, unpack=unpack, precision=precision, device=device, precision_from_x0=False)
        self.dtype, self.spec, x0_flat = setup.dtype, setup.spec, setup.x0_flat

        def caller(function: Callable) -> Callable[[Any, Any], Any]:
            def call(params: Any, batch: Any) -> Any:
                return setup.caller(function, (batch,) + args if stochastic else args)(params)

            return call

        call = caller(fun)
        probe_batch = self.batches.peek() if stochastic else None
        self.backend = setup.choose_backend(backend, call=lambda p: call(p, probe_batch))
        self.backend_obj = setup.backend_obj
        with self._context():
            x = to_framework(self.backend, x0_flat, self.dtype, self.spec, device)
            self.functions = native_functions(
                fun,
                call,
                jac,
                caller(jac) if callable(jac) else None,
                x,
                method=self.method,
                backend=self.backend,
                spec=self.spec,
                dtype=self.dtype,
                unpack=setup.unpack,
                args=args,
                device=device,
                probe_batch=probe_batch,
                stochastic=stochastic,
            )
            if bounds is not None:
                lower, upper = setup.normalize_bounds(bounds)
                x = to_framework(self.backend, setup.clip_start(x0_flat, stacklevel=4), self.dtype, self.spec, device)
                xp = namespace(x)
                self.algorithm = self.algorithm.replace(lower=xp.asarray(like(x, lower)), upper=xp.asarray(like(x, upper)))
        self.x0 = x

    def _context(self) -> contextlib.AbstractContextManager:
        return self.backend_obj.solve_context(self.dtype)

    # -- the loop ---------------------------------------------------------------------
    def set_hyperparameters(self, **changes: Any) -> None:
        self.algorithm = self.algorithm.replace(**changes)

    def advance(self) -> IterationState | None:
        """Make one outer step; None once the run has stopped. An exception (the user's
        fun failing) or a Ctrl-C propagates with the best point evaluated attached."""
        if self.stop is not None:
            return None
        try:
            return self._step()
        except BaseException as exc:
            if self.oracle.best_x is not None:
                attach_best(exc, self._restore(self.oracle.best_x), self.oracle.best_f)
            raise

    def _step(self) -> IterationState | None:
        with self._context():
            if self.state is None and self._initial_stop():
                return None
            f_prev = None if self.state.f is None or self.stochastic else float(self.state.f)
            if self.stochastic:
                self.oracle.batch = self.batches.take()
            x_before = self.state.x
            self.state = self.algorithm.step(self.state, self.oracle)
            self.fun_point = x_before if self.algorithm.first_order else self.state.x
            self.nit += 1
            progress = self._progress(f_prev)
            if self.stochastic:
                self.batches.record(self.state.f)
            elif self.nit == 1 and self.algorithm.first_order:
                self._check_gradient_path(progress.grad_norm)
            self.stop = Stop(self.state.flag, False, 2) if self.state.flag else self.criterion(progress)
            snapshot = self._snapshot(progress)
            if self.callback is not None and self.stop is None and self._call_back(snapshot):
                self.stop = Stop("stopped by the callback", False, 1)
                snapshot = self._snapshot(progress)
        return snapshot

    def _initial_stop(self) -> bool:
        """Start the algorithm; True if x0 already meets the tolerances (scipy then returns x0 with nit=0)."""
        self._start = time.perf_counter()
        self.state = self.algorithm.init(self.x0, self.oracle)
        if self.state.g is None or self.stochastic:
            return False
        self.fun_point = self.state.x
        grad_norm = norm_inf(namespace(self.x0), self.algorithm.stationarity(self.state))
        self._check_gradient_path(grad_norm)
        initial = self.criterion(Progress(0, self.oracle.counts.nfev, self.oracle.counts.njev, float(self.state.f), None, grad_norm))
        if initial is not None and initial.success:
            self.stop = initial
            return True
        return False

    def _check_gradient_path(self, grad_norm: float) -> None:
        """A zero first gradient may come from a value not connected to x (JAX's stop_gradient)."""
        check = self.functions.check_gradient_path
        if grad_norm == 0.0 and check is not None:
            check(self.fun_point, None)

    def _progress(self, f_prev: float | None) -> Progress:
        elapsed = time.perf_counter() - self._start
        counts = self.oracle.counts
        common = dict(nit=self.nit, nfev=counts.nfev, njev=counts.njev, elapsed=elapsed)
        if self.stochastic:
            return Progress(**common, epoch=self.batches.epoch)
        grad_norm = norm_inf(namespace(self.state.x), self.algorithm.stationarity(self.state))
        return Progress(**common, fun=float(self.state.f), fun_prev=f_prev, grad_norm=grad_norm)

    def _snapshot(self, progress: Progress) -> IterationState:
        counts = self.oracle.counts
        return IterationState(
            self.nit,
            counts.nfev,
            counts.njev,
            counts.nhvp,
            progress.elapsed,
            progress.epoch,
            self.state.f,
            progress.grad_norm,
            self.stop,
            self.state,
            self._restore,
        )

    def _restore(self, flat: Any) -> Any:
        return self.spec.restore(to_host(flat))

    def _call_back(self, snapshot: IterationState) -> bool:
        intermediate = so.OptimizeResult(x=snapshot.x, fun=snapshot.fun, nit=snapshot.nit)
        try:  # scipy's rule: callback(intermediate_result) by that name, else callback(x)
            return bool(self.callback(intermediate if self._new_style else snapshot.x))
        except StopIteration:
            return True

    def result(self) -> so.OptimizeResult:
        """The OptimizeResult of the run so far.

        A deterministic run interrupted by Ctrl-C, or ending where fun is not finite, returns
        the best point evaluated (nothing is evaluated after a Ctrl-C), with ``success=False``.
        """
        with self._context():
            if self.state is None:
                self.state = self.algorithm.init(self.x0, self.oracle)
            x, f, g = self.state.x, self.state.f, self.state.g
            stop = self.stop or Stop(f"stopped by the caller after {self.nit} iterations", False, 1)
            if self.stochastic:
                f = self.batches.mean_loss(f)
            elif stop.status == -1 and self.oracle.best_x is not None:
                x, f, g = self.oracle.best_x, self.oracle.best_f, None
            elif self.algorithm.first_order or f is None:
                # gradient-only steps record f and g before the step: evaluate at the final x
                f, g = self.oracle.value_and_grad(x)
            f = float(f) if f is not None else math.nan
            if not self.stochastic and not (math.isfinite(f) and math.isfinite(norm_inf(namespace(x), x))):
                x, f, g, stop = self._not_finite_end(x, f, stop)
            result = so.OptimizeResult(
                x=self._restore(x),
                fun=f,
                jac=None if g is None else self._restore(g),
                nit=self.nit,
                **self.oracle.counts.as_dict(),
                success=stop.success,
                status=stop.status,
                message=stop.message,
                backend=self.backend,
                precision=self.dtype,
            )
            if self.stochastic:
                result.epochs = self.batches.epoch
        return result

    def _not_finite_end(self, x: Any, f: float, stop: Stop) -> tuple[Any, float, Any, Stop]:
        """A run that ended where fun (or x) is not finite: never a success; the best finite
        point evaluated, else x0 (never a point that is not finite)."""
        if self.oracle.best_x is None:
            message = (
                f"fun is {f} where the method ended, and no point evaluated had a finite value; x is x0. The method's own message: {stop.message}"
            )
            return self.x0, f, None, Stop(message, False, 3)
        message = f"the last point was not finite (fun is {f} where the method ended); x is the best finite point evaluated. The method's own message: {stop.message}"
        return self.oracle.best_x, self.oracle.best_f, None, Stop(message, False, 3)


#: ``report(nit, x, f, g, counts)`` after each step: flat float64 NumPy x and g (None without one)
StepReport = Callable[[int, np.ndarray, float, "np.ndarray | None", dict], None]


def minimize_native(
    fun: Callable, x0: Any, args: tuple = (), method: str = "lbfgs-native", *, batch: bool = False, **kwargs: Any
) -> so.OptimizeResult:
    """Run a native method to the end and return scipy's ``OptimizeResult``."""
    if batch:
        return minimize_batched(fun, x0, args, method, **kwargs)
    return run_to_end(NativeRun(fun, x0, args, method, **kwargs))


def run_to_end(run: NativeRun, report: StepReport | None = None) -> so.OptimizeResult:
    """Advance ``run`` until it stops; ``report`` is told of every step (on host copies of x and g).

    A KeyboardInterrupt (Ctrl-C) ends the run at the best point evaluated (a stochastic run: the
    last completed step), with ``success=False`` and ``status=-1``.
    """
    # one backend context for the whole run: entered per step, JAX's float64 scope would clear
    # its trace caches and recompile every step
    with run.backend_obj.solve_context(run.dtype):
        try:
            while (state := run.advance()) is not None:
                if report is not None:
                    g = state.raw.g
                    counts = {"nfev": state.nfev, "njev": state.njev, "nhev": 0, "nhvp": state.nhvp}
                    # the point fun and g were measured at (a first-order step measures before it moves)
                    report(state.nit, to_host(run.fun_point).reshape(-1), state.fun, None if g is None else to_host(g).reshape(-1), counts)
        except KeyboardInterrupt:
            if in_nested_solve():  # the outer run ends too
                raise
            run.stop = Stop("Interrupted by KeyboardInterrupt (Ctrl-C); x is the best point evaluated.", False, -1)
        return run.result()


def _takes_intermediate_result(callback: Callable) -> bool:
    """Whether ``callback``'s one parameter is named ``intermediate_result`` (scipy's new style)."""
    try:
        return set(inspect.signature(callback).parameters) == {"intermediate_result"}
    except (TypeError, ValueError):
        return False
