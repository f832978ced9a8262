"""The float32 fallback of a first evaluation: when a torch or TF objective with float32
constants cannot run in float64 and no precision was chosen, it runs in float32, told once."""

from __future__ import annotations

import sys
import warnings
import weakref
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ._setup import Setup

__all__ = ["PrecisionFallbackWarning", "float32_fallback", "stacklevel_outside"]


class PrecisionFallbackWarning(UserWarning):
    """The objective could not run in float64 and was computed in float32."""


def _is_dtype_mismatch(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "double" in text or "dtype" in text or "float64" in text


#: functions already warned about, so a fallback is told once per function
_fallback_warned: "weakref.WeakSet[Any]" = weakref.WeakSet()


def stacklevel_outside() -> int:
    """The ``stacklevel`` of the first frame outside autominimize, for the function calling this one."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] == "autominimize":
        frame, level = frame.f_back, level + 1
    return level


def _warn_precision_fallback(fun: Callable, exc: BaseException) -> None:
    """One PrecisionFallbackWarning per function, quoting the line of the error that names
    the dtypes (TensorFlow's messages start with traceback fragments such as "in user code:")."""
    target = getattr(fun, "__func__", fun)
    try:
        if target in _fallback_warned:
            return
        _fallback_warned.add(target)
    except TypeError:  # not weakly referable: warn each time
        pass
    lines = [line.strip() for line in str(exc).splitlines() if line.strip() and not line.strip().endswith(":")]
    quoted = next((line for line in lines if _is_dtype_mismatch(Exception(line))), lines[0] if lines else type(exc).__name__)
    warnings.warn(
        f"the objective failed in float64 ({quoted}); it embeds float32 constants, so it is computed in "
        "float32. Pass precision='float32' to choose this explicitly (or give x0 as float32 tensors).",
        PrecisionFallbackWarning,
        stacklevel=stacklevel_outside(),
    )


def float32_fallback(fun: Callable, setup: Setup, exc: BaseException) -> bool:
    """Whether a first evaluation that raised ``exc`` is retried in float32 (with one warning):
    a torch or TF objective with float32 constants, when no precision was chosen."""
    if setup.precision_explicit or setup.dtype == "float32" or setup.backend not in ("torch", "tensorflow") or not _is_dtype_mismatch(exc):
        return False
    _warn_precision_fallback(fun, exc)
    return True
