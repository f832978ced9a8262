"""Where the native algorithms are run: set-up, the step loop, stopping and the result.

:class:`NativeRun` (:mod:`.run`) turns ``am.minimize``'s arguments into an algorithm and a
stopping criterion (:mod:`.options`), a counting oracle on the framework's flat arrays
(:mod:`.functions`) and, with ``data=``, its mini-batches (:mod:`.batches`); ``advance()``
makes one outer step. ``am.minimize`` exhausts it (:func:`minimize_native`), ``am.iterate``
yields each step. :func:`minimize_batched` (:mod:`.batched`) runs ``batch=True``: stacked
problems in one batched L-BFGS.
"""

from __future__ import annotations

from .batched import minimize_batched
from .run import NativeRun, StepReport, minimize_native, run_to_end

__all__ = ["NativeRun", "StepReport", "minimize_native", "minimize_batched", "run_to_end"]
