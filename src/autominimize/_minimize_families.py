"""``am.minimize``'s native and least-squares families, recorded like scipy's methods.

scipy's scalar methods report every evaluation through the problem layer. The native methods
(which evaluate on the framework's own arrays) and the least-squares methods (whose problem
is a vector of residuals) report their iterations instead: each step is recorded in the
history and the log, shown by the progress bar and passed to ``step_callback`` and the
observers. The options that need single evaluations (``loss_callback``, observers told of
evaluations) are refused with an error saying so, never dropped.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import scipy.optimize as so

from ._least_squares import minimize_least_squares
from .backends.base import grad_norm
from .drivers.native import NativeRun, minimize_native, run_to_end
from .drivers.native.arrays import to_host
from .drivers.scipy_least_squares import IterationReport
from .drivers.scipy_pipeline import Recording
from .native import native_method_name
from .params import ParamSpec
from .problem import Counters
from .recording import attach_best

__all__ = ["minimize_native_recorded", "minimize_least_squares_recorded"]


class _Recorder:
    """Records each iterate of one run and keeps the best; the sinks are opened by :meth:`start`."""

    def __init__(self, recording: Recording, method: str, options: dict | None) -> None:
        self.recording = recording
        self.watchers, self.sinks = recording.make_recorders(method, options)
        self.counters = Counters()
        self.best_f, self.best_x = math.inf, None
        self.spec: ParamSpec | None = None

    def start(self, spec: ParamSpec, x0: np.ndarray, *, method: str, backend: str, precision: str, tol: Any, options: Any, has_bounds: bool) -> None:
        self.spec = spec
        self.sinks.start(
            spec, x0, method=method, backend=backend, precision=precision, tol=tol, options=options, has_bounds=has_bounds, has_constraints=False
        )

    def records(self) -> bool:
        """Whether anything is told of the iterations."""
        return self.sinks.journal is not None or bool(self.watchers) or self.recording.step_callback is not None

    def report(self, nit: int, x: np.ndarray, f: Any, g: np.ndarray | None, counts: dict) -> bool:
        f = float(f)
        for name, value in counts.items():
            setattr(self.counters, name, int(value))
        if f < self.best_f or self.best_x is None:
            self.best_f, self.best_x = f, x
        if self.sinks.journal is not None:
            self.sinks.journal.add_iteration(nit, x, f, grad_norm(g), self.counters.nfev, self.counters.njev)
        for watcher in self.watchers:
            watcher.iteration(nit, x, f, g, self.counters)
        if self.recording.step_callback is not None:
            self.recording.step_callback(self.spec.restore(x))
        return False

    def close(self, result: so.OptimizeResult | None, error: BaseException | None = None) -> None:
        if result is None:
            self.sinks.close(status=-1, success=False, message=f"{type(error).__name__}: {error}", objective=self)
        else:
            self.sinks.close(
                status=result.get("status"), success=bool(result.get("success", False)), message=result.get("message", ""), objective=self
            )

    def attach(self, result: so.OptimizeResult) -> so.OptimizeResult:
        if self.sinks.history is not None:
            result.history = self.sinks.history
        log_error = getattr(self.sinks, "log_error", None)
        if self.sinks.log is not None and log_error is not None:
            result.log_error = log_error
        return result


def _start_point(x0: Any, resume: Any) -> Any:
    """x0, or the best point of the last run logged in ``resume`` in x0's structure."""
    if resume is None:
        return x0
    from .recording.log_reader import resume_point

    spec = ParamSpec.from_tree(x0)
    return spec.restore(resume_point(resume, spec))


def minimize_native_recorded(
    fun: Callable, x0: Any, args: tuple, method: str, recording: Recording, *, batch: bool, **kwargs: Any
) -> so.OptimizeResult:
    """A native method through ``am.minimize``: each step recorded; Ctrl-C ends it at the last step."""
    if batch:
        given = [name for name in recording.given() if name != "callback"]
        if given:
            raise ValueError(
                f"batch=True solves every problem at once and records no run; {', '.join(given)} "
                "would be ignored. Solve one problem at a time to record it."
            )
        return minimize_native(fun, x0, args, method, batch=True, callback=recording.callback, **kwargs)
    name = native_method_name(method)
    recording.refuse_evaluations(name)
    run = NativeRun(fun, _start_point(x0, recording.resume), args, method, callback=recording.callback, **kwargs)
    recorder = _Recorder(recording, name, kwargs.get("options"))
    recorder.start(
        run.spec,
        to_host(run.x0).reshape(-1),
        method=name,
        backend=run.backend,
        precision=run.dtype,
        tol=kwargs.get("tol"),
        options=kwargs.get("options"),
        has_bounds=kwargs.get("bounds") is not None,
    )
    try:
        result = run_to_end(run, recorder.report if recorder.records() else None)
    except BaseException as exc:
        if recorder.best_x is not None:
            attach_best(exc, run.spec.restore(recorder.best_x), recorder.best_f)
        recorder.close(None, exc)
        raise
    recorder.close(result)
    return recorder.attach(result)


def minimize_least_squares_recorded(fun: Callable, x0: Any, args: tuple, method: str, recording: Recording, **kwargs: Any) -> so.OptimizeResult:
    """A least-squares method through ``am.minimize``: each iteration recorded ('lm' calls back
    at none: its history holds no iterations); Ctrl-C returns the best point evaluated."""
    if method == "lm":
        given = [name for name in recording.given() if name != "resume"]
        if given:
            raise ValueError(
                f"method='lm' reports no iteration (scipy calls no callback from it), so {', '.join(given)} "
                "would be ignored; use method='trf' or 'dogbox'."
            )
    recording.refuse_evaluations(method)
    recorder = _Recorder(recording, method, kwargs.get("options"))

    def start(spec: ParamSpec, x: np.ndarray, backend: str, precision: str) -> None:
        recorder.start(
            spec,
            x,
            method=method,
            backend=backend,
            precision=precision,
            tol=kwargs.get("tol"),
            options=kwargs.get("options"),
            has_bounds=kwargs.get("bounds") is not None,
        )

    report = IterationReport(start, recorder.report, recording.callback)
    try:
        result = minimize_least_squares(fun, _start_point(x0, recording.resume), args, method, callback=report, **kwargs)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt) and recorder.best_x is not None:
            attach_best(exc, recorder.spec.restore(recorder.best_x), recorder.best_f)
        recorder.close(None, exc)
        raise
    if result.status == -1 and result.fun < recorder.best_f:  # a Ctrl-C: the best point evaluated, not only the iterates
        recorder.best_f, recorder.best_x = result.fun, recorder.spec.flatten(result.x)
    recorder.close(result)
    return recorder.attach(result)
