"""A tqdm progress bar for a solve: iteration, f, |g| and evaluations per second."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

__all__ = ["ProgressBar"]


class ProgressBar:
    """Observer showing one bar per solve (``progress=True``).

    tqdm picks a notebook widget in Jupyter; outside a terminal or notebook (a log file, a
    CI job) the bar is disabled, so it never writes carriage returns into a log.
    """

    def __init__(self, description: str, total: int | None = None):
        try:
            from tqdm.auto import tqdm
        except ImportError:
            raise ImportError("progress=True needs tqdm: pip install 'autominimize[progress]'") from None
        self.bar = tqdm(total=total, desc=description, unit="it", disable=None, dynamic_ncols=True)
        self.start = time.perf_counter()
        self._next_postfix = self.start  # the figures are formatted at most every mininterval
        self._last: tuple[float, np.ndarray | None, int] | None = None

    #: told of iterations only: each brings the evaluation counts
    evaluation = None

    def iteration(self, nit: int, x: np.ndarray, f: float, grad: np.ndarray | None, counts: Any) -> None:
        self._last = (f, grad, counts.nfev + counts.nhvp + counts.nhev)
        now = time.perf_counter()
        if now >= self._next_postfix and not self.bar.disable:
            self._next_postfix = now + self.bar.mininterval
            self._show(now)
        self.bar.update(1)

    def _show(self, now: float) -> None:
        f, grad, evaluations = self._last
        postfix = {"f": f"{f:.6g}", "evals/s": f"{evaluations / max(now - self.start, 1e-9):.0f}"}
        if grad is not None:
            postfix["|g|"] = f"{np.linalg.norm(grad):.3g}"
        self.bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        if self._last is not None and not self.bar.disable:
            self._show(time.perf_counter())  # the final figures, whatever the throttle skipped
        self.bar.close()
