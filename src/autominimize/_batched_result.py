"""The result of a batched fit: one OptimizeResult with a row per member, and covariances.

``x`` goes back to the stacked structure of the starts; the other fields are NumPy arrays with
one row per member, with scipy ``least_squares``'s names and status codes (plus -1, residuals
not finite at the start, and -2, the member's chunk failed on an executor).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.optimize as so

from .drivers.batched_fit import CHUNK_FAILED
from .drivers.batched_members import MemberProblem
from .native.batched_lm import REASONS
from .params import ParamSpec

__all__ = ["batched_result", "covariances", "restack"]

_EPS = np.finfo(np.float64).eps


def batched_result(out: dict, problem: MemberProblem, stacked: ParamSpec, spec: ParamSpec) -> so.OptimizeResult:
    """The batch's OptimizeResult from the solved rows ``out``; raises for members not finite at
    their start unless ``problem.error_handling`` is 'continue'."""
    reasons = out["reason"]
    bad = np.flatnonzero(reasons == 6)
    if bad.size and problem.error_handling == "raise":
        raise ValueError(
            f"the residuals or their Jacobian are not finite at the start of member(s) {bad[:10].tolist()}"
            f"{' ...' if bad.size > 10 else ''}; fix those starts or data, or pass error_handling='continue' "
            "to report them per member (status -1) and solve the others."
        )
    messages = [error or (REASONS[int(c)][0] if c in REASONS else "") for c, error in zip(reasons, out["errors"])]
    status = np.array([REASONS[int(c)][2] if c in REASONS else -2 for c in reasons], dtype=int)
    success = np.array([REASONS[int(c)][1] if c in REASONS else False for c in reasons], dtype=bool)
    x, grad = out["x"], out["grad"]
    lower = np.full(spec.size, -np.inf) if problem.lower is None else problem.lower
    upper = np.full(spec.size, np.inf) if problem.upper is None else problem.upper
    active = np.where(x <= lower, -1, np.where(x >= upper, 1, 0))
    optimality = np.max(np.abs(x - np.clip(x - grad, lower, upper)), axis=1) if spec.size else np.zeros(x.shape[0])
    nfev = out["nfev"]
    counts = {code: int(np.sum(reasons == code)) for code in sorted(set(reasons.tolist()))}
    summary = ", ".join(f"{n} {'failed on the executor' if code == CHUNK_FAILED else REASONS[code][0].rstrip('.')}" for code, n in counts.items())
    return so.OptimizeResult(
        x=restack(stacked, spec, x),
        cost=out["cost"],
        fun=out["fun"],
        jac=out["jac"],
        grad=grad,
        optimality=optimality,
        active_mask=active,
        nfev=nfev,
        njev=nfev.copy(),
        status=status,
        success=success,
        messages=messages,
        message=f"{reasons.size} problems: {summary}",
        backend=problem.backend,
        precision=problem.precision,
    )


def restack(stacked: ParamSpec, member: ParamSpec, rows: np.ndarray) -> Any:
    """(B, n) rows back in the stacked structure and array types."""
    parts = [rows[:, start:stop].reshape(-1) for start, stop in zip(member.offsets, member.offsets[1:])]
    return stacked.restore(np.concatenate(parts))


def covariances(jac: np.ndarray, chi2: np.ndarray, points: np.ndarray, absolute_sigma: bool) -> np.ndarray:
    """scipy's curve_fit covariance per member: (JᵀJ)⁺ by SVD, times chi2/(m_b − n)."""
    _, m, n = jac.shape
    finite = np.isfinite(jac).all(axis=(1, 2))
    safe = np.where(finite[:, None, None], jac, 0.0)
    _, s, vt = np.linalg.svd(safe, full_matrices=False)
    kept = s > _EPS * max(m, n) * s[:, :1]
    inverse = np.where(kept, 1.0 / np.where(kept, s, 1.0) ** 2, 0.0)
    pcov = np.matmul(np.swapaxes(vt, 1, 2) * inverse[:, None, :], vt)
    if not absolute_sigma:
        dof = points - n
        factor = np.where(dof > 0, chi2 / np.where(dof > 0, dof, 1), np.inf)
        with np.errstate(invalid="ignore"):  # inf·0 for a member that failed at its start (NaN below)
            pcov = np.where((dof > 0)[:, None, None], pcov * factor[:, None, None], np.inf)
    return np.where(finite[:, None, None], pcov, np.nan)
