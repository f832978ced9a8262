"""What ``am.curve_fit`` adds to a least-squares solve: how the model takes the parameters,
the weights of ``sigma``, and the covariance of the fitted parameters."""

from __future__ import annotations

import inspect
import warnings
from typing import Any, Callable

import numpy as np
import scipy.optimize as so

from ..params import leaf_kind, leaf_to_numpy, tree_leaves

__all__ = ["spread", "positional", "weights", "covariance"]


def spread(f: Callable, p0: Any) -> str:
    """How curve_fit calls f: f(x, *p) for a flat vector of numbers, f(x, **p) for a dict of
    f's parameter names, f(x, p) otherwise."""
    if isinstance(p0, dict) and p0 and all(isinstance(k, str) for k in p0):
        try:
            names = set(list(inspect.signature(f).parameters)[1:])
        except (TypeError, ValueError):
            names = set()
        return "kwargs" if set(p0) <= names else "none"
    leaves = tree_leaves(p0)
    if (
        isinstance(p0, (list, tuple))
        and not hasattr(p0, "_fields")
        and all(np.ndim(leaf_to_numpy(v)) == 0 for v in leaves)
        and len(leaves) == len(p0)
    ):
        return "args"
    if isinstance(p0, np.ndarray) and p0.ndim == 1 or leaf_kind(p0) in ("torch", "jax", "tf") and np.ndim(leaf_to_numpy(p0)) == 1:
        return "array"
    return "none"


def positional(params: Any, spread: str, p0: Any) -> list:
    """The parameters f takes after xdata, by position (none for keywords)."""
    if spread == "args":
        return list(params)
    if spread == "array":
        return [params[i] for i in range(np.shape(leaf_to_numpy(p0))[0])]
    if spread == "kwargs":
        return []
    return [params]


def weights(sigma: Any, y: np.ndarray, keep: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """1/sigma for a 1-D sigma; the inverse Cholesky factor for a covariance matrix."""
    if sigma is None:
        return None, None
    try:
        sigma = np.asarray(sigma, dtype=np.float64)
    except (TypeError, ValueError):
        sigma = None
    if sigma is None or sigma.ndim not in (1, 2):
        raise ValueError(f"sigma must be None, one standard deviation per data point (shape {y.shape}) or a covariance matrix ({y.size}, {y.size}).")
    if sigma.ndim == 1:
        if keep is not None and sigma.size == keep.size:
            sigma = sigma[keep]
        if sigma.shape != y.shape:
            raise ValueError(f"sigma has shape {sigma.shape}; expected {y.shape} (one per data point) or ({y.size}, {y.size}).")
        bad = np.flatnonzero(~(sigma > 0))
        if bad.size:
            raise ValueError(f"sigma must be positive (one standard deviation per point); got {sigma[bad[0]]} at index {bad[0]}.")
        return 1.0 / sigma, None
    if sigma.ndim == 2:
        if keep is not None and sigma.shape[0] == keep.size:
            sigma = sigma[np.ix_(keep, keep)]
        if sigma.shape != (y.size, y.size):
            raise ValueError(f"sigma has shape {sigma.shape}; expected ({y.size}, {y.size}) for a covariance matrix.")
        try:
            lower = np.linalg.cholesky(sigma)
        except np.linalg.LinAlgError:
            raise ValueError("sigma, given as a covariance matrix, is not positive definite.") from None
        return None, np.linalg.inv(lower)
    raise ValueError(f"sigma must be 1-D (standard deviations) or 2-D (a covariance); got {sigma.ndim} dimensions.")


def covariance(jac: np.ndarray, chi2: float, m: int, absolute_sigma: bool) -> np.ndarray:
    """(J^T J)^+ (Moore-Penrose, dropping singular values at rounding level), scaled by the
    residual variance chi2 / (m - n) unless sigma is absolute."""
    n = jac.shape[1]
    _, s, vt = np.linalg.svd(jac, full_matrices=False)
    keep = s > np.finfo(np.float64).eps * max(jac.shape) * (s[0] if s.size else 0.0)
    vt = vt[keep]
    pcov = (vt.T / s[keep] ** 2) @ vt
    if absolute_sigma:
        return pcov
    if m > n:
        return pcov * (chi2 / (m - n))
    warnings.warn("Covariance of the parameters could not be estimated (no more data points than parameters).", so.OptimizeWarning, stacklevel=3)
    return np.full((n, n), np.inf)
