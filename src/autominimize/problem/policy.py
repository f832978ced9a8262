"""What every objective of the problem layer shares: evaluation counters and the error policy."""

from __future__ import annotations

from typing import Any

from .. import numdiff

__all__ = ["ERROR_HANDLING", "Counters", "check_error_handling", "numdiff_evaluator"]

#: The error policies: stop at the first failing evaluation, or count the point as failed.
ERROR_HANDLING = ("raise", "continue")


def check_error_handling(value: Any) -> str:
    """``value`` if it is an error policy, else a ValueError saying what is accepted."""
    if not (type(value) is str and value in ERROR_HANDLING):  # an array is not compared element by element
        raise ValueError(
            f"error_handling={value!r} is not accepted; use 'raise' (default: a failing evaluation "
            "stops the solve) or 'continue' (a point where fun raises or is not finite counts as "
            "+inf and the solve goes on)."
        )
    return value


class Counters:
    """Evaluation counts: value, gradient (or Jacobian), Hessian, Hessian-vector product."""

    __slots__ = ("nfev", "njev", "nhev", "nhvp")

    def __init__(self) -> None:
        self.nfev = self.njev = self.nhev = self.nhvp = 0

    def as_dict(self) -> dict[str, int]:
        return {"nfev": self.nfev, "njev": self.njev, "nhev": self.nhev, "nhvp": self.nhvp}


def numdiff_evaluator(backend_name: str, numerical: bool, workers: Any, executor: Any, error_handling: str = "raise") -> numdiff.Evaluator:
    """Where the solve's finite differences are evaluated, tolerating failed points under
    ``error_handling='continue'``; ``workers`` and ``executor`` only where any are taken."""
    if (workers is not None or executor is not None) and not numerical:
        raise ValueError(
            f"workers= and executor= parallelize autominimize's finite differences, but none are "
            f"taken here (the {backend_name} backend computes exact derivatives, or jac is given). "
            "Leave them unset, or use backend='numpy' without jac."
        )
    return numdiff.Evaluator(workers, executor, tolerate_failures=error_handling == "continue")
