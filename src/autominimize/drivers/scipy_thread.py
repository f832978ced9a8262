"""scipy's methods one iteration at a time: the solve runs in a worker thread that hands
control back after every iteration and waits to be told to go on or to stop.

Stopping early raises StopIteration inside scipy's callback (scipy's own mechanism; TNC's is
emulated by the scipy driver), so the solve ends cleanly and the thread exits.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import scipy.optimize as so

__all__ = ["ScipyRunner"]

_GO_ON, _STOP = "go on", "stop"


@dataclass(frozen=True)
class ScipyStep:
    """The raw state of one scipy iteration: flat x and, when known, the flat gradient."""

    x: np.ndarray
    g: np.ndarray | None


class _HandOff:
    """Observer that parks the worker thread after each iteration until the caller decides."""

    def __init__(self, runner: "ScipyRunner"):
        self.runner = runner

    evaluation = None  # told of iterations only

    def iteration(self, nit: int, x: np.ndarray, f: float, grad: np.ndarray | None, counts: Any) -> None:
        self.runner._to_caller.put(("step", (nit, x.copy(), f, None if grad is None else grad.copy(), counts.as_dict())))
        if self.runner._to_worker.get() == _STOP:
            raise StopIteration


class ScipyRunner:
    """Drive ``am.minimize`` with a scipy method through ``am.iterate``'s Runner protocol.

    ``restore`` turns a flat vector into x0's structure; ``state_type`` is the iterator's
    state class (the same one the native methods yield).
    """

    def __init__(self, solve: Callable[..., so.OptimizeResult], restore: Callable[[np.ndarray], Any], state_type: type):
        self._solve = solve
        self._restore = restore
        self._state_type = state_type
        self._to_caller: queue.Queue = queue.Queue()
        self._to_worker: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._outcome: tuple[str, Any] | None = None
        self._waiting = False
        self._stopped = False  # whether the caller stopped the solve
        self._start = time.perf_counter()

    def _work(self) -> None:
        try:
            self._to_caller.put(("done", self._solve(observers=[_HandOff(self)])))
        except BaseException as exc:  # handed to the caller's thread and raised there
            self._to_caller.put(("error", exc))

    def _receive(self) -> Any:
        kind, payload = self._to_caller.get()
        if kind == "step":
            self._waiting = True
            nit, x, f, g, counts = payload
            return self._state_type(
                nit=nit,
                nfev=counts["nfev"],
                njev=counts["njev"],
                nhvp=counts["nhvp"],
                elapsed=time.perf_counter() - self._start,
                epoch=0,
                fun_value=f,
                grad_norm=None if g is None else float(np.linalg.norm(g)),
                stop=None,
                raw=ScipyStep(x, g),
                _restore=self._restore,
            )
        self._waiting = False
        if kind == "done" and self._stopped:
            payload.success = False
            payload.message = "stopped by the caller: the iterator was closed before the method converged."
        self._outcome = (kind, payload)  # kept before the join, which a Ctrl-C may interrupt
        self._thread.join()
        if kind == "error":
            raise payload
        return None

    def advance(self) -> Any:
        if self._outcome is not None:
            return None
        if self._thread is None:
            self._start = time.perf_counter()
            self._thread = threading.Thread(target=self._work, name="autominimize-scipy-iterate", daemon=True)
            self._thread.start()
        elif self._waiting:
            self._to_worker.put(_GO_ON)
        return self._receive()

    def close(self) -> None:
        """Stop the solve (if it is still running) and wait for its thread to end."""
        if self._outcome is None and self._thread is not None:
            self._stopped = True
            if self._waiting:
                self._to_worker.put(_STOP)
            try:
                while self._receive() is not None:
                    self._to_worker.put(_STOP)
            except BaseException:
                if self._outcome is None:
                    raise

    def result(self) -> so.OptimizeResult:
        """The solve's result; stops it first if the caller left it mid-way."""
        if self._thread is None:
            raise RuntimeError("the solve has not started: call next() on the iterator first.")
        self.close()
        kind, payload = self._outcome
        if kind == "error":
            raise payload
        return payload

    def set_hyperparameters(self, **changes: Any) -> None:
        raise TypeError(f"scipy's methods take their options once, at the start; set them with options= (got {sorted(changes)}).")
