"""Where a user's function failed: the point is attached to the exception it raised."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .params import ParamSpec

__all__ = ["attach_point"]


def attach_point(exc: BaseException, spec: ParamSpec, x: np.ndarray, what: str) -> None:
    """Record on ``exc`` where the user's function failed (once, innermost wins)."""
    if getattr(exc, "autominimize_x", None) is not None:
        return
    try:
        exc.autominimize_x = spec.restore(x)
    except Exception:  # the point is context, never a reason to hide the original error
        exc.autominimize_x = np.array(x)
    if hasattr(exc, "add_note"):
        exc.add_note(f"autominimize: raised while computing {what} at the point stored in exception.autominimize_x")
