"""Sparse derivatives: the pattern of ``J`` and ``∇²ₓₓL``, its colouring, compressed passes.

The pattern comes from one of three sources:

* ``'user'``: the caller's ``jac_sparsity`` (m, n) and ``hess_sparsity`` (n, n), any array
  of booleans or numbers (nonzero = structural nonzero) or a ``scipy.sparse`` matrix;
* ``'asdex'`` (JAX): read from the traced program by asdex's abstract interpretation: a
  global pattern, valid at every point;
* ``'probed'`` (PyTorch, TensorFlow, JAX without asdex): the union of the nonzeros of the exact Hessian of the
  Lagrangian (which holds J as a block) at two random points near x0 with random
  multipliers, computed with ``n`` Hessian-vector products per point. It is local: an entry
  that is zero at both points (a branch not taken there) is missed, so give a pattern when
  the function branches on x.

One greedy column colouring of the stacked pattern ``[∇²ₓₓL; J]`` (columns sharing a row get
different colours, in natural order: a band of width w gets w colours) gives the seed
vectors; one Hessian-vector product of the Lagrangian per colour gives both matrices (see
:mod:`.lagrangian`). When that takes more than ``SYMMETRIC_ABOVE`` passes (a variable
coupled to all others makes every column conflict), J is coloured alone and ∇²L with asdex's
star colouring, which exploits its symmetry, if that takes fewer passes in all.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["SYMMETRIC_ABOVE", "SparsePattern", "color_columns", "detect_pattern", "jacobian_only", "pattern_from_user", "reads_programs"]


#: more compressed passes than this for J and ∇²L together: try colouring them apart
SYMMETRIC_ABOVE = 8


@dataclass
class SparsePattern:
    """Where ``J`` (nonlinear constraints stacked, (m, n)) and the lower triangle of
    ``∇²ₓₓL`` can be nonzero, with the colouring that compresses both."""

    n: int
    m: int
    jac_rows: np.ndarray
    jac_cols: np.ndarray
    hess_rows: np.ndarray
    hess_cols: np.ndarray
    source: str
    #: compressed passes per evaluation (the rows of :meth:`seeds`)
    num_colors: int = field(init=False)
    seconds: float = 0.0
    #: whether detection (or, for the caller's pattern, colouring) was skipped because an
    #: earlier solve of the same functions did it
    cached: bool = False
    #: patterns made from this one (:func:`jacobian_only`), kept with it
    derived: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.jac_rows, self.jac_cols = _sorted_pairs(self.jac_rows, self.jac_cols, (self.m, self.n))
        lower = self.hess_rows >= self.hess_cols
        rows = np.concatenate([self.hess_rows[lower], self.hess_cols[~lower]])
        cols = np.concatenate([self.hess_cols[lower], self.hess_rows[~lower]])
        self.hess_rows, self.hess_cols = _sorted_pairs(rows, cols, (self.n, self.n))
        # every column of ∇²L in full (both triangles) and of J, one row space after the other
        full_rows = np.concatenate([self.hess_rows, self.hess_cols, self.n + self.jac_rows])
        full_cols = np.concatenate([self.hess_cols, self.hess_rows, self.jac_cols])
        colors = color_columns(full_rows, full_cols, (self.n + self.m, self.n))
        self.num_colors = int(colors.max()) + 1 if self.n else 0
        self._seeds = _one_hot(colors, self.num_colors)
        self._jac_seed, self._jac_pos = colors[self.jac_cols], self.jac_rows
        self._hess_seed, self._hess_pos = colors[self.hess_cols], self.hess_rows
        if self.num_colors > SYMMETRIC_ABOVE and self.hess_rows.size:
            self._split_if_fewer()
        # flat positions in the compressed (p, n) and (p, m) arrays: np.take reads them in a
        # fifth of the time of indexing by (row, column) pairs (3.5 µs against 17 for 2000 entries)
        self._hess_flat = self._hess_seed * self.n + self._hess_pos
        self._jac_flat = self._jac_seed * self.m + self._jac_pos

    def _split_if_fewer(self) -> None:
        """Colour J alone and ∇²L symmetrically (star colouring: a variable coupled to all
        others costs one colour, not n), when that takes fewer passes in all."""
        star = _star_colors(self.hess_rows, self.hess_cols, self.n)
        if star is None:
            return
        jac = color_columns(self.jac_rows, self.jac_cols, (self.m, self.n)) if self.jac_rows.size else np.zeros(self.n, dtype=np.int64)
        p_jac = int(jac.max()) + 1 if self.jac_rows.size else 0
        p_hess = int(star.max()) + 1
        if p_jac + p_hess >= self.num_colors:
            return
        # H[i, j] is read directly from row i of colour c(j)'s pass when j is the only column
        # of that colour in row i, else from row j of colour c(i)'s; a star colouring makes
        # one of the two hold for every entry
        rows, cols = _sorted_pairs(
            np.concatenate([self.hess_rows, self.hess_cols]), np.concatenate([self.hess_cols, self.hess_rows]), (self.n, self.n)
        )
        keys, counts = np.unique(rows * p_hess + star[cols], return_counts=True)

        def unique(row: np.ndarray, color: np.ndarray) -> np.ndarray:
            where = np.searchsorted(keys, row * p_hess + color)
            return counts[np.minimum(where, keys.size - 1)] == 1

        i, j = self.hess_rows, self.hess_cols
        via_j = unique(i, star[j])
        via_i = unique(j, star[i])
        if not np.all(via_j | via_i):
            return
        self._hess_seed = p_jac + np.where(via_j, star[j], star[i])
        self._hess_pos = np.where(via_j, i, j)
        self._jac_seed = jac[self.jac_cols]
        self._seeds = np.vstack([_one_hot(jac, p_jac), _one_hot(star, p_hess)])
        self.num_colors = p_jac + p_hess

    def seeds(self) -> np.ndarray:
        """The (p, n) seed matrix: row k is the indicator of the columns of colour k."""
        return self._seeds

    def hessian_values(self, compressed: np.ndarray) -> np.ndarray:
        """The lower-triangle values, in pattern order, from ``∇²ₓₓL · S`` (p, n)."""
        return compressed.take(self._hess_flat)

    def jacobian_values(self, compressed: np.ndarray) -> np.ndarray:
        """J's values, in pattern order, from ``J · S`` given as (p, m)."""
        return compressed.take(self._jac_flat)

    def summary(self) -> dict:
        return {
            "source": self.source,
            "jacobian_nnz": int(self.jac_rows.size),
            "hessian_nnz": int(self.hess_rows.size),
            "passes": self.num_colors,
            "setup_seconds": self.seconds,
            "cached": self.cached,
        }


def _one_hot(colors: np.ndarray, count: int) -> np.ndarray:
    seeds = np.zeros((count, colors.size))
    seeds[colors, np.arange(colors.size)] = 1.0
    return seeds


def _star_colors(rows: np.ndarray, cols: np.ndarray, n: int) -> np.ndarray | None:
    """asdex's star colouring of the symmetric pattern (None without asdex)."""
    try:
        import asdex
    except ImportError:
        return None
    full_rows = np.concatenate([rows, cols]).astype(np.int32)
    full_cols = np.concatenate([cols, rows]).astype(np.int32)
    colors, _, _ = asdex.color_symmetric(asdex.SparsityPattern(full_rows, full_cols, (n, n)))
    return np.asarray(colors, dtype=np.int64)


def _sorted_pairs(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Unique (row, col) pairs in row-major order, as int64 arrays."""
    if rows.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    keys = np.unique(np.asarray(rows, dtype=np.int64) * shape[1] + np.asarray(cols, dtype=np.int64))
    return keys // shape[1], keys % shape[1]


def color_columns(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A greedy colouring of the columns of a pattern: columns that share a row differ.

    Natural order, smallest free colour first; at most one more colour than the largest
    number of columns that any column conflicts with.
    """
    n = shape[1]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    pattern = sp.csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=shape)
    pattern.data[:] = 1
    conflicts = (pattern.T @ pattern).tocsr()  # columns j, k conflict when they share a row
    indptr, indices = conflicts.indptr, conflicts.indices
    colors = np.full(n, -1, dtype=np.int64)
    for j in range(n):
        used = colors[indices[indptr[j] : indptr[j + 1]]]
        used = used[used >= 0]
        if used.size == 0:
            colors[j] = 0
            continue
        taken = np.zeros(used.max() + 2, dtype=bool)
        taken[used] = True
        colors[j] = int(np.argmin(taken))
    return colors


def _coordinates(pattern: Any, shape: tuple[int, int], name: str, in_options: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the structural nonzeros of a user pattern, checked against ``shape``."""
    label = f"options[{name!r}]" if in_options else name
    if sp.issparse(pattern):
        coo = sp.coo_matrix(pattern)
        got = coo.shape
        rows, cols = coo.row, coo.col
    else:
        array = np.asarray(pattern)
        if array.dtype == object:
            raise TypeError(f"{label} must be an array or a scipy.sparse matrix of shape {shape}; got {type(pattern).__name__}.")
        got = array.shape
        if got == shape:
            rows, cols = np.nonzero(array)
    if got != shape:
        raise ValueError(
            f"{label} has shape {got}; it must be {shape} (rows: {'constraint values' if name == 'jac_sparsity' else 'parameters'}, columns: parameters)."
        )
    return np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)


def pattern_from_user(
    jac_sparsity: Any, hess_sparsity: Any, n: int, m: int, detected: SparsePattern | None = None, in_options: bool = True, kept: dict | None = None
) -> SparsePattern:
    """A pattern from the caller's arrays; an argument left None is taken from ``detected``
    (without one: no entries, for a matrix that is not wanted). With ``kept`` (the compiled
    functions' :attr:`~.lagrangian.Lagrangian.patterns`), the pattern of an earlier solve with
    the same entries is used again, ``cached``: its colouring took 20 ms at n = 10⁴."""
    start = time.perf_counter()
    empty = np.zeros(0, dtype=np.int64)
    if jac_sparsity is not None:
        jac_rows, jac_cols = _coordinates(jac_sparsity, (m, n), "jac_sparsity", in_options)
    else:
        jac_rows, jac_cols = (detected.jac_rows, detected.jac_cols) if detected is not None else (empty, empty)
    if hess_sparsity is not None:
        hess_rows, hess_cols = _coordinates(hess_sparsity, (n, n), "hess_sparsity")
    else:
        hess_rows, hess_cols = (detected.hess_rows, detected.hess_cols) if detected is not None else (empty, empty)
    key = (n, m, *(np.ascontiguousarray(a).tobytes() for a in (jac_rows, jac_cols, hess_rows, hess_cols)))
    earlier = kept.get("user") if kept is not None else None
    if earlier is not None and earlier[0] == key:
        earlier[1].cached = True
        return earlier[1]
    pattern = SparsePattern(n, m, jac_rows, jac_cols, hess_rows, hess_cols, "user")
    pattern.seconds = time.perf_counter() - start + (detected.seconds if detected is not None else 0.0)
    if kept is not None:
        kept["user"] = (key, pattern)  # the last one only: a pattern keeps arrays of its size
    return pattern


def jacobian_only(pattern: SparsePattern) -> SparsePattern:
    """The same Jacobian pattern without the Hessian's: fewer colours when only J is wanted
    (coloured once, kept with ``pattern``)."""
    only = pattern.derived.get("jacobian")
    if only is None:
        empty = np.zeros(0, dtype=np.int64)
        only = pattern.derived["jacobian"] = SparsePattern(pattern.n, pattern.m, pattern.jac_rows, pattern.jac_cols, empty, empty, pattern.source)
        only.seconds = pattern.seconds
    only.cached = pattern.cached
    return only


def jacobian_pattern(lagrangian: Any, x0: np.ndarray, bounds: tuple[np.ndarray, np.ndarray] | None) -> SparsePattern:
    """J's pattern, detected once per compiled Lagrangian and kept on it (``cached`` once reused)."""
    pattern = lagrangian.patterns.get("jacobian")
    if pattern is None:
        pattern = lagrangian.patterns["jacobian"] = jacobian_only(detect_pattern(lagrangian, x0, bounds))
    else:
        pattern.cached = True
    return pattern


def reads_programs() -> bool:
    """Whether asdex (the ``sparse`` extra) is installed to read patterns from JAX programs;
    without it JAX problems are probed like the others, and only on request."""
    return importlib.util.find_spec("asdex") is not None


def detect_pattern(lagrangian: Any, x0: np.ndarray, bounds: tuple[np.ndarray, np.ndarray] | None, seed: int = 0) -> SparsePattern:
    """The pattern of J and ∇²ₓₓL: from the program on JAX (asdex), else by probing."""
    start = time.perf_counter()
    if lagrangian.backend == "jax" and reads_programs():
        rows, cols = _asdex_pattern(lagrangian, x0)
        source = "asdex"
    else:
        rows, cols = _probed_pattern(lagrangian, x0, bounds, seed)
        source = "probed"
    n, m = lagrangian.n, lagrangian.m
    in_x = cols < n
    hess = in_x & (rows < n)
    jac = in_x & (rows > n)
    pattern = SparsePattern(n, m, rows[jac] - n - 1, cols[jac], rows[hess], cols[hess], source)
    pattern.seconds = time.perf_counter() - start
    return pattern


def _asdex_pattern(lagrangian: Any, x0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import asdex
    import jax

    z = lagrangian.point(x0, 1.0, np.ones(lagrangian.m))
    with jax.enable_x64(True):
        found = asdex.hessian_sparsity(lagrangian.functions.flat_fun, jax.numpy.asarray(z, dtype=lagrangian.functions.dtype))
    return np.asarray(found.rows, dtype=np.int64), np.asarray(found.cols, dtype=np.int64)


def _probed_pattern(lagrangian: Any, x0: np.ndarray, bounds: tuple[np.ndarray, np.ndarray] | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n, m = lagrangian.n, lagrangian.m
    size = n + 1 + m
    found = []
    for _ in range(2):
        x = x0 + 0.1 * (1.0 + np.abs(x0)) * rng.standard_normal(n)
        if bounds is not None:
            x = np.clip(x, bounds[0], bounds[1])
        hvp = lagrangian.functions.hvp_at(lagrangian.point(x, 1.0, rng.standard_normal(m)))
        v = np.zeros(size)
        for j in range(n):
            v[j] = 1.0
            found.append(np.flatnonzero(np.asarray(hvp(v))) * size + j)
            v[j] = 0.0
    keys = np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)
    return keys // size, keys % size
