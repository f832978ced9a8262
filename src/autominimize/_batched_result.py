"""The result of a batched fit: one OptimizeResult with a row per member, and covariances (per chunk).

``x`` goes back to the stacked structure of the starts; the other fields are NumPy arrays with
one row per member, with scipy ``least_squares``'s names and status codes (plus -1, residuals
not finite at the start, and -2, the member's chunk failed on an executor).
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import scipy.optimize as so

from .drivers.batched_fit import CHUNK_FAILED, PER_POINT
from .drivers.batched_members import MemberProblem
from .native.batched_lm import REASONS
from .params import ParamSpec

__all__ = ["CurveCovariances", "batched_result", "covariances", "best_attached", "restack"]

_EPS = np.finfo(np.float64).eps
# scipy's message, status and success by reason code (CHUNK_FAILED: status -2), looked up for
# all members at once: Python loops over the members took 0.15 s per 10⁵ in the client (measured)
_MESSAGES = np.array([REASONS[c][0] if c in REASONS else "" for c in range(CHUNK_FAILED + 1)], dtype=object)
_STATUS = np.array([REASONS[c][2] if c in REASONS else -2 for c in range(CHUNK_FAILED + 1)])
_SUCCESS = np.array([REASONS.get(c, ("", False))[1] for c in range(CHUNK_FAILED + 1)])


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
    messages = _MESSAGES[reasons].tolist()
    for (start, stop), error in out["errors"].items():
        messages[start:stop] = [error] * (stop - start)
    status, success = _STATUS[reasons], _SUCCESS[reasons]
    x, grad = out["x"], out["grad"]
    lower = np.full(spec.size, -np.inf) if problem.lower is None else problem.lower
    upper = np.full(spec.size, np.inf) if problem.upper is None else problem.upper
    active = np.where(x <= lower, -1, x >= upper)
    # the largest of each row as a maximum over the n columns: max(axis=1) over rows of 3 took
    # 2.5 times as long (36 ms for 4·10⁵ members, measured)
    projected = np.abs(x - np.clip(x - grad, lower, upper))
    optimality = functools.reduce(np.maximum, projected.T) if spec.size else np.zeros(x.shape[0])
    nfev = out["nfev"]
    counts = {code: int(n) for code, n in enumerate(np.bincount(reasons, minlength=1)) if n}
    summary = ", ".join(f"{n} {'failed on the executor' if code == CHUNK_FAILED else REASONS[code][0].rstrip('.')}" for code, n in counts.items())
    return so.OptimizeResult(
        x=restack(stacked, spec, x),
        cost=out["cost"],
        **{key: out[key] for key in PER_POINT if key in out},
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


@contextlib.contextmanager
def best_attached(stacked: ParamSpec, member: ParamSpec) -> Iterator[None]:
    """A Ctrl-C or an exception propagates with every member's latest point, stacked in x0's structure, in
    ``exc.autominimize_best_x`` and its cost in ``exc.autominimize_best_f`` (B,): NaN for the
    members whose chunk had not run, whose point is then their start."""
    try:
        yield
    except BaseException as exc:
        rows = exc.__dict__.pop("autominimize_rows", None)
        if rows is not None:
            exc.autominimize_best_x, exc.autominimize_best_f = restack(stacked, member, rows[0]), rows[1]
        raise


def restack(stacked: ParamSpec, member: ParamSpec, rows: np.ndarray) -> Any:
    """(B, n) rows back in the stacked structure and array types."""
    parts = [rows[:, start:stop].reshape(-1) for start, stop in zip(member.offsets, member.offsets[1:])]
    return stacked.restore(np.concatenate(parts))


def covariances(jac: np.ndarray, chi2: np.ndarray, points: np.ndarray, absolute_sigma: bool) -> np.ndarray:
    """scipy's curve_fit covariance per member: (JᵀJ)⁺ as scipy computes it (SVD of J, singular
    values up to eps·max(m, n)·s₁ dropped), times chi2/(m_b − n).

    A member whose J is far from that threshold (all its singular values kept) has
    (JᵀJ)⁻¹ = R⁻¹R⁻ᵀ from J = QR; the others take scipy's SVD. QR and the inverse of the n×n R
    cost 34 ms for 12 500 Jacobians of 50×3 against 90 ms for their SVDs (measured)."""
    count, m, n = jac.shape
    finite = np.isfinite(jac).all(axis=(1, 2))
    safe = jac if finite.all() else np.where(finite[:, None, None], jac, 0.0)
    pcov = np.empty((count, n, n))
    easy = np.zeros(count, bool)
    if m >= n > 0:
        easy, inverse = _triangular_inverses(safe, finite, m)
        pcov[easy] = np.matmul(inverse, np.swapaxes(inverse, 1, 2))
    if not easy.all():
        pcov[~easy] = _pseudo_inverses(safe[~easy], m)
    if not absolute_sigma:
        dof = points - n
        factor = np.where(dof > 0, chi2 / np.where(dof > 0, dof, 1), np.inf)
        with np.errstate(invalid="ignore"):  # inf·0 for a member that failed at its start (NaN below)
            pcov = np.where((dof > 0)[:, None, None], pcov * factor[:, None, None], np.inf)
    return np.where(finite[:, None, None], pcov, np.nan)


def _triangular_inverses(jac: np.ndarray, finite: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The members whose R (J = QR) is surely kept whole by scipy's threshold, and their R⁻¹.

    s₁ ≤ ‖R‖_F and s_n ≥ 1/‖R⁻¹‖_F, so ‖R‖_F·‖R⁻¹‖_F below 1/(eps·max(m, n)) keeps every
    singular value; a margin of 1000 leaves the members near the threshold, where rounding
    decides, to the SVD."""
    r = np.linalg.qr(jac, mode="r")
    invertible = finite & (np.diagonal(r, axis1=1, axis2=2) != 0).all(axis=1)
    candidates = np.flatnonzero(invertible)
    with np.errstate(over="ignore", invalid="ignore"):
        inverse = np.linalg.inv(r[candidates])
        bound = np.sqrt(np.sum(r[candidates] ** 2, axis=(1, 2)) * np.sum(inverse**2, axis=(1, 2)))
    kept = bound < 1e-3 / (_EPS * max(m, jac.shape[2]))
    easy = np.zeros(jac.shape[0], bool)
    easy[candidates[kept]] = True
    return easy, inverse[kept]


def _pseudo_inverses(jac: np.ndarray, m: int) -> np.ndarray:
    """(JᵀJ)⁺ as scipy's curve_fit computes it: SVD of J, singular values up to eps·max(m, n)·s₁ dropped."""
    _, s, vt = np.linalg.svd(jac, full_matrices=False)
    kept = s > _EPS * max(m, jac.shape[2]) * s[:, :1]
    inverse = np.where(kept, 1.0 / np.where(kept, s, 1.0) ** 2, 0.0)
    return np.matmul(np.swapaxes(vt, 1, 2) * inverse[:, None, :], vt)


@dataclass(frozen=True)
class CurveCovariances:
    """A chunk's covariances, computed where the chunk is solved: on its worker with an
    executor, which spares the client an SVD per member after the last chunk (1.2 s per 10⁵
    fits of 50 points, measured). ``mask_at``: the mask's place among the member data, if any."""

    absolute_sigma: bool
    mask_at: int | None

    def __call__(self, out: dict, member_data: tuple) -> dict:
        jac = out["jac"]
        points = np.full(jac.shape[0], jac.shape[1]) if self.mask_at is None else member_data[self.mask_at].sum(axis=1)
        pcov = covariances(jac, 2 * out["cost"], points, self.absolute_sigma)
        pcov[out["reason"] == CHUNK_FAILED] = np.nan  # unknown even when no chunk told the number of points
        return {"pcov": pcov}
