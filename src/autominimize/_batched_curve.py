"""Batched curve fits as batched least squares: the model's weighted residuals and the data.

``am.batched_curve_fit`` fits one model ``f(x, *p)`` to every row of ``ydata``. This module
turns that into a member problem of ``am.batched_least_squares``: :func:`curve_data` checks
and lays out the observations, the shared or per-member ``xdata``, the weights (1/sigma) and
the mask of existing points; :func:`curve_starts` reads p0 as one start for all or one per
member; :class:`CurveResidual` is one member's weighted residuals.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ._batched_setup import as_numpy, finite_copy, unstack
from .backends import array_backend
from .drivers.batched_members import ravel
from .params import ParamSpec, leaf_kind, leaf_to_numpy, tree_leaves, tree_map

__all__ = ["CurveData", "CurveResidual", "curve_data", "curve_starts", "default_p0", "spread"]


@dataclass(frozen=True)
class CurveResidual:
    """One member's weighted residuals ``(f(x, p) - y) / sigma``, zero at masked points.

    ``names`` gives the meaning of the data arguments in order ('y', 'x', 'w', 'mask');
    equal instances are one key of the compile cache, so a second fit with the same ``f``
    does not recompile.
    """

    f: Callable
    spread: str
    names: tuple
    vectorized: bool = False

    def __call__(self, params: Any, *data: Any) -> Any:
        d = dict(zip(self.names, data))
        like = tree_leaves(params)[0]
        if self.vectorized:  # (k, *shape) leaves as (k, 1, *shape) columns against (k, m) data
            params = tree_map(lambda v: v.reshape((v.shape[0], 1) + v.shape[1:]), params)
            if self.spread == "array":
                params = [params[:, :, i] for i in range(params.shape[2])]
        try:
            out = self._model(d["x"], params)
        except Exception as exc:
            what = f"the {like.shape[0]} members' xdata stacked, shape" if self.vectorized else "xdata of shape"
            exc.add_note(f"autominimize: raised by f(xdata, ...) given {what} {tuple(np.shape(d['x']))}")
            raise
        if self.vectorized:
            count, values = like.shape[0], np.asarray(out, dtype=np.float64)
            per_member = values.reshape(count, -1) if values.ndim and values.shape[0] == count else values.reshape(1, -1)
            _check_values(per_member.shape[1], d, np.shape(d["x"])[1:])
            diff = per_member - d["y"]
        else:
            flat = ravel(out, like)
            _check_values(flat.shape[-1], d, tuple(np.shape(d["x"])))
            diff = flat - d["y"]
        if "w" in d:
            diff = diff * d["w"]
        if "mask" in d:
            diff = array_backend(diff).masked(diff, d["mask"])
        return diff

    def _model(self, x: Any, params: Any) -> Any:
        if self.spread == "kwargs":
            return self.f(x, **params)
        if self.spread == "args" or self.vectorized and self.spread == "array":
            return self.f(x, *params)
        if self.spread == "array":
            return self.f(x, *[params[i] for i in range(params.shape[0])])
        return self.f(x, params)


def _check_values(count: int, data: dict, x_shape: tuple) -> None:
    """Refuse a model that returns ``count`` values for a member's ``m`` points (one value for
    all of them broadcasts, as in scipy), naming xdata, the shape ``f`` received."""
    m = data["y"].shape[-1]
    if count not in (1, m):
        raise ValueError(
            f"xdata must be what f reads to return one value per point of a member: an array of shape ({m},) or (k, {m}) "
            f"(k independent variables) shared by every member, an array of ydata's shape (one xdata per member), or any "
            f"form from which f returns {m} values; got xdata of shape {x_shape} (as f received it), for which f returned "
            f"{count} values for the {m} points of a member."
        )


def spread(p0: Any) -> str:
    """How ``f`` receives the parameters: scipy's ``f(x, *p)`` for a flat sequence or array."""
    if isinstance(p0, dict):
        return "kwargs"
    if isinstance(p0, (list, tuple)) and not hasattr(p0, "_fields"):
        return "args"
    if leaf_kind(p0) not in ("python", "other"):  # an array of any framework
        return "array"
    return "none"


def default_p0(f: Callable) -> list[float]:
    """scipy's default start: ones, one per positional parameter of ``f`` after the first."""
    parameters = [p for p in inspect.signature(f).parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(parameters) < 2:
        raise ValueError("p0 is not given and f's signature names no parameter after xdata; pass p0.")
    return [1.0] * (len(parameters) - 1)


def curve_starts(p0: Any, count: int) -> tuple[ParamSpec, ParamSpec, np.ndarray, Any]:
    """The stacked starts from p0 (one per member, batch axis first, or one for all): the
    stacked structure, one member's structure, the (B, n) rows and one member's p0."""
    leaves = tree_leaves(p0)
    if spread(p0) == "array":
        per_member = np.ndim(leaf_to_numpy(p0)) == 2
    else:
        per_member = bool(leaves) and all(np.ndim(leaf_to_numpy(v)) >= 1 and np.shape(leaf_to_numpy(v))[0] == count for v in leaves)
    if per_member:
        stacked, spec, rows = unstack(p0, "p0")
        if rows.shape[0] != count:
            raise ValueError(
                f"p0 has {rows.shape[0]} rows but ydata has {count} members; give one start for all (shape (n,)) "
                f"or one per member (shape ({count}, n))."
            )
        return stacked, spec, rows, tree_map(lambda v: leaf_to_numpy(v)[0], p0) if spread(p0) != "array" else leaf_to_numpy(p0)[0]
    spec = ParamSpec.from_tree(finite_copy(p0), "p0")
    stacked = ParamSpec(
        spec.treedef,
        tuple(dataclasses.replace(leaf, shape=(count,) + leaf.shape, kind="numpy" if leaf.kind == "python" else leaf.kind) for leaf in spec.leaves),
    )
    rows = np.tile(spec.flatten(p0, "p0"), (count, 1))
    return stacked, spec, rows, p0


@dataclass(frozen=True)
class CurveData:
    """The fit's data: ``member`` arrays (one row per member) named first in ``names``, then the
    ``shared`` ones; ``count`` members."""

    member: tuple
    shared: tuple
    names: tuple
    count: int


def curve_data(xdata: Any, ydata: Any, sigma: Any, mask: Any) -> CurveData:
    """Check and lay out ``ydata`` (B, ...), ``xdata`` (shared or per member), 1/sigma and mask."""
    y, keep = _observations(ydata, mask)
    count, m = y.shape
    x = as_numpy(xdata, "xdata")
    weights = None if sigma is None else _weights(sigma, np.shape(ydata), count, m)
    bad_members = np.union1d(_not_finite_rows(y, None), [] if weights is None else _not_finite_rows(weights, keep))
    if bad_members.size:
        raise ValueError(
            f"ydata is NaN or inf, or sigma NaN, inf or 0, at points of member(s) {bad_members[:10].astype(int).tolist()}; "
            "mark points that do not exist with mask= (False)."
        )
    x_per_member = x.shape == np.shape(ydata)
    member, names = [y], ["y"]
    for name, values in (("x", x if x_per_member else None), ("w", weights), ("mask", keep)):
        if values is not None:
            member.append(np.ascontiguousarray(values) if name == "w" else values)
            names.append(name)
    shared = () if x_per_member else (x,)
    return CurveData(tuple(member), shared, tuple(names) + (() if x_per_member else ("x",)), count)


def _not_finite_rows(values: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
    """The rows of ``values`` (B, m) with a NaN or inf at a kept point. A row's sum is finite
    unless one of its values is not (or finite values overflow), so only the rows whose sum is
    not finite are checked value by value: one pass without a temporary of the batch's size
    (which np.isfinite over the batch and its combination with the mask took, measured)."""
    with np.errstate(over="ignore", invalid="ignore"):
        suspects = np.flatnonzero(~np.isfinite(values.sum(axis=1)))
    if not suspects.size:
        return suspects
    bad = ~np.isfinite(values[suspects])
    if keep is not None:
        bad &= keep[suspects]
    return suspects[bad.any(axis=1)]


def _observations(ydata: Any, mask: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """ydata as (B, m) float64 (masked points set to 0) and the mask as (B, m) booleans."""
    y = as_numpy(ydata, "ydata")
    if y.ndim < 2:
        raise ValueError(f"ydata has shape {y.shape}; it needs one row per member, shape (B, m) (B fits of m points).")
    count = y.shape[0]
    if y.size == 0:
        raise ValueError(f"ydata has shape {y.shape}: no point to fit; it needs at least one member of at least one point, shape (B, m).")
    y = y.reshape(count, -1).astype(np.float64, copy=False)  # float64 ydata is read, not copied
    if mask is None:
        return y, None
    keep = as_numpy(mask, "mask")
    if keep.shape != np.shape(ydata) or keep.dtype != bool:
        raise ValueError(f"mask must be a boolean array of ydata's shape {np.shape(ydata)}; got {keep.dtype} of shape {keep.shape}.")
    keep = keep.reshape(y.shape)
    empty = np.flatnonzero(~keep.any(axis=1))
    if empty.size:
        raise ValueError(
            f"mask leaves member(s) {empty[:10].tolist()} without a point (every one False): nothing to fit them to; drop them from ydata."
        )
    return np.where(keep, y, 0.0), keep


def _weights(sigma: Any, shape: tuple, count: int, m: int) -> np.ndarray:
    """1/sigma as (B, m): sigma of shape (m,) for every member, or ydata's shape per member."""
    s = as_numpy(sigma, "sigma").astype(np.float64)
    if s.shape == shape:
        return 1.0 / s.reshape(count, m)
    if s.shape == (m,):
        return np.broadcast_to(1.0 / s, (count, m))
    raise ValueError(f"sigma has shape {s.shape}; expected ({m},) for every member or ydata's shape {shape} per member.")
