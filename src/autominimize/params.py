"""Parameter structures: any nesting of dicts, lists, tuples and namedtuples of arrays.

A :class:`ParamSpec` records the structure and leaf metadata of ``x0`` once, then
converts between that structure and the single flat float64 vector scipy works on.

The flat order is x0's own order: a dict's leaves come in the order its keys were written
(insertion order), not sorted by key. Every flat-order input (flat bounds, a
``LinearConstraint``'s columns) and output (``hess_inv``, ``pcov``, ``res.jac``'s columns,
the rows of a dict of residuals) follows it. The library flattens every structure with
:func:`tree_flatten`, :func:`tree_leaves` and :func:`tree_map` here, so that one order holds
throughout; only an x0 holding containers registered with JAX alone is flattened by JAX (see
:func:`_flatten_with_paths`).
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import optree

from .leaf_arrays import check_torch_leaf, restore_leaf, torch_dtype_of

__all__ = ["ParamSpec", "LeafInfo", "leaf_kind", "leaf_to_numpy", "leaf_path_names", "tree_flatten", "tree_leaves", "tree_map", "structure_text"]

_NONE_IS_LEAF = False

#: The optree namespace of every structure the library flattens: in it a dict's leaves come
#: in the dict's own (insertion) order. The mode is set once for the process, as optree's
#: context manager is not thread-safe and solves run in worker threads; the manager is kept
#: for the life of the process, since exiting it (as garbage collection of a dropped one
#: does) would restore the sorted order.
NAMESPACE = "autominimize"
_INSERTION_ORDER = optree.dict_insertion_ordered(True, namespace=NAMESPACE)
_INSERTION_ORDER.__enter__()


def tree_flatten(tree: Any, none_is_leaf: bool = _NONE_IS_LEAF) -> tuple[list[Any], Any]:
    """Leaves and treedef of ``tree``, a dict's leaves in insertion order."""
    return optree.tree_flatten(tree, none_is_leaf=none_is_leaf, namespace=NAMESPACE)


def tree_leaves(tree: Any, none_is_leaf: bool = _NONE_IS_LEAF) -> list[Any]:
    """The leaves of ``tree``, a dict's leaves in insertion order."""
    return optree.tree_leaves(tree, none_is_leaf=none_is_leaf, namespace=NAMESPACE)


def tree_map(fun: Any, tree: Any, *rest: Any, **kwargs: Any) -> Any:
    """``optree.tree_map`` in the namespace of :func:`tree_flatten`."""
    return optree.tree_map(fun, tree, *rest, namespace=NAMESPACE, **kwargs)


def structure_text(treedef: Any) -> str:
    """A treedef as messages show it (``PyTreeSpec({'w': *, 'b': *})``), without the namespace."""
    return str(treedef).replace(f", namespace={NAMESPACE!r}", "")


def leaf_kind(leaf: Any) -> str:
    """Name the array family a leaf belongs to: python, numpy, torch, jax or tf."""
    if isinstance(leaf, (bool, int, float, complex)):
        return "python"
    if isinstance(leaf, (np.ndarray, np.generic)):
        return "numpy"
    module = type(leaf).__module__ or ""
    root = module.split(".", 1)[0]
    if root == "torch":
        return "torch"
    if root in ("jax", "jaxlib"):
        return "jax"
    if root in ("tensorflow", "keras", "tf_keras"):
        return "tf"
    return "other"


def leaf_to_numpy(leaf: Any) -> np.ndarray:
    """Convert one leaf of any framework to a NumPy array, without copying where possible."""
    kind = leaf_kind(leaf)
    if kind == "torch":
        return leaf.detach().cpu().numpy()
    if kind == "tf":
        return np.asarray(leaf.numpy() if hasattr(leaf, "numpy") else leaf)
    return np.asarray(leaf)


@dataclass(frozen=True)
class LeafInfo:
    """What is needed to rebuild one leaf in its original type."""

    path: str
    shape: tuple[int, ...]
    dtype: np.dtype
    kind: str
    device: Any = None
    torch_dtype: Any = None

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def _format_path(accessor: Any) -> str:
    parts = []
    for entry in accessor:
        key = entry.entry
        fields = getattr(entry.type, "_fields", None) if entry.type is not None else None
        if fields is not None and isinstance(key, int) and 0 <= key < len(fields):
            key = fields[key]  # a namedtuple's field, named rather than numbered
        if isinstance(key, str) and fields is not None:
            parts.append(f".{key}")
        else:
            parts.append(f"[{key!r}]")
    return "x0" + "".join(parts)


def leaf_path_names(tree: Any) -> list[str]:
    """Readable paths (``x0['U']``, ``x0[0].a``) of the leaves of ``tree``."""
    accessors, _, _ = optree.tree_flatten_with_accessor(tree, none_is_leaf=_NONE_IS_LEAF, namespace=NAMESPACE)
    return [_format_path(a) for a in accessors]


_reshape = np.ndarray.reshape

#: The treedef of a lone leaf: a NumPy array x0 (scipy's own case) is recorded without
#: optree's walk with accessors (about 4 µs of a solve's fixed cost).
_LEAF_TREEDEF = optree.tree_structure(0.0, none_is_leaf=_NONE_IS_LEAF, namespace=NAMESPACE)


def _flatten_with_paths(tree: Any) -> tuple[list[str], list[Any], Any]:
    """Leaves, readable paths and treedef of ``tree``.

    optree handles dicts, lists, tuples, namedtuples and None. Containers registered with
    JAX only (Equinox modules, Flax structs) look like leaves to it; when JAX is loaded,
    such a tree is flattened with ``jax.tree_util`` instead (both treedefs offer
    ``unflatten`` and ``flatten_up_to``), in JAX's order, where a dict's keys are sorted.
    """
    if type(tree) is np.ndarray:
        return ["x0"], [tree], _LEAF_TREEDEF
    accessors, leaves, treedef = optree.tree_flatten_with_accessor(tree, none_is_leaf=_NONE_IS_LEAF, namespace=NAMESPACE)
    if "jax" in sys.modules and any(leaf_kind(leaf) == "other" for leaf in leaves):
        import jax

        jax_paths, jax_treedef = jax.tree_util.tree_flatten_with_path(tree)
        if jax_paths and all(leaf_kind(leaf) != "other" for _, leaf in jax_paths):
            return (["x0" + jax.tree_util.keystr(path) for path, _ in jax_paths], [leaf for _, leaf in jax_paths], jax_treedef)
    return [_format_path(a) for a in accessors], leaves, treedef


class ParamSpec:
    """The structure of ``x0`` and the map between it and one flat float64 vector.

    Examples
    --------
    >>> import numpy as np
    >>> spec = ParamSpec.from_tree({"w": np.zeros((2, 2)), "b": 1.0})
    >>> spec.size
    5
    >>> spec.unflatten(np.arange(5.0))["w"].tolist()
    [[0.0, 1.0], [2.0, 3.0]]
    """

    def __init__(self, treedef: Any, leaves: tuple[LeafInfo, ...]):
        self.treedef = treedef
        self.leaves = leaves
        self.sizes = tuple(leaf.size for leaf in leaves)
        self.offsets = tuple(itertools.accumulate(self.sizes, initial=0))
        self.size = self.offsets[-1]
        self.shapes = tuple(leaf.shape for leaf in leaves)
        self._slices = tuple(map(slice, self.offsets, self.offsets[1:]))  # each leaf's part of the flat vector
        # Hashable identity of the structure, used to key compiled functions.
        self.key = (treedef, self.shapes)
        #: x0 was one NumPy array (scipy's own case): its leaf, for the fast paths below
        self.array_leaf = leaves[0] if treedef is _LEAF_TREEDEF and leaves[0].kind == "numpy" else None
        #: every leaf a NumPy array: their dtypes, for restoring them by mapped C calls
        self._numpy_dtypes = tuple(leaf.dtype for leaf in leaves) if all(leaf.kind == "numpy" for leaf in leaves) else None

    @classmethod
    def from_tree(cls, x0: Any, name: str = "x0", precision: str = "float64") -> "ParamSpec":
        """Record the structure of ``x0``.

        Integer and float16 leaves are solved in floating point: they are restored as floats
        of ``precision`` (float64 unless the solve runs in float32), in their own array type.
        """
        if type(x0) is np.ndarray and x0.dtype.kind in "fiu" and x0.size and np.isfinite(x0).all():
            # scipy's own x0: its structure depends on shape and dtype alone, recorded once
            # (about 1 µs a solve); any other x0, or one with an error to report, is read below
            return _array_spec(x0.shape, x0.dtype, name, precision)
        if type(x0) in (dict, list, tuple):
            # a structure of finite NumPy arrays: recorded once per structure, shapes and dtypes
            # (the walk with paths costs about 40 Python calls a solve)
            leaves, treedef = optree.tree_flatten(x0, none_is_leaf=_NONE_IS_LEAF, namespace=NAMESPACE)
            if leaves and all(type(leaf) is np.ndarray and leaf.dtype.kind in "fiu" and leaf.size and np.isfinite(leaf).all() for leaf in leaves):
                return _tree_spec(treedef, tuple((leaf.shape, leaf.dtype) for leaf in leaves), name, precision)
        return cls._read(x0, name, precision)

    @classmethod
    def with_start(cls, x0: Any, precision: str = "float64") -> tuple["ParamSpec", np.ndarray]:
        """:meth:`from_tree` and the flat float64 start (:meth:`flatten`), read together.

        A finite NumPy array, or a dict, list or tuple of them, is read once: its leaves are
        joined into the start, whose finiteness is checked once, where reading the structure
        and then flattening x0 walked it twice and checked each leaf on its own (about a
        third of the set-up of a solve from a dict x0). Any other x0 is read as those two do.
        """
        if type(x0) is np.ndarray and x0.dtype.kind in "fiu" and x0.size:
            start = x0.astype(np.float64).reshape(-1)
            if np.isfinite(start).all():
                return _array_spec(x0.shape, x0.dtype, "x0", precision), start
        elif type(x0) in (dict, list, tuple):
            leaves, treedef = optree.tree_flatten(x0, none_is_leaf=_NONE_IS_LEAF, namespace=NAMESPACE)
            # mapped C calls: no Python frame per leaf
            if leaves and set(map(type, leaves)) == {np.ndarray} and all(map(_size, leaves)):
                dtypes = tuple(map(_dtype, leaves))
                if {dtype.kind for dtype in dtypes} <= {"f", "i", "u"}:
                    start = np.concatenate(list(map(_ravel, leaves)), dtype=np.float64)
                    if np.isfinite(start).all():  # else read below, naming the leaf
                        return _tree_spec(treedef, tuple(zip(map(_shape, leaves), dtypes)), "x0", precision), start
        spec = cls.from_tree(x0, precision=precision)
        return spec, spec.flatten(x0)

    @classmethod
    def _read(cls, x0: Any, name: str, precision: str) -> "ParamSpec":
        floating = np.dtype(precision)
        paths, leaves, treedef = _flatten_with_paths(x0)
        if not leaves:
            raise ValueError(f"{name} has no array or number in it; got {x0!r}.")
        infos = []
        for path, leaf in zip(paths, leaves):
            path = path.replace("x0", name, 1)
            kind = leaf_kind(leaf)
            if kind == "other":
                raise TypeError(
                    f"{path} is a {type(leaf).__name__}; every leaf of {name} must be a number, "
                    "a NumPy array, or a JAX, PyTorch or TensorFlow tensor."
                )
            if kind == "torch":
                check_torch_leaf(path, leaf)
            array = leaf_to_numpy(leaf)
            if array.dtype.kind not in "fiu":  # floating point, signed or unsigned integers
                raise TypeError(f"{path} has dtype {array.dtype}; parameters must be real numbers (floating point or integer arrays).")
            if array.size and not np.isfinite(array).all():
                bad = np.argwhere(~np.isfinite(np.atleast_1d(array)))[0].tolist()
                raise ValueError(f"{path} contains NaN or inf (first at index {tuple(bad)}); the starting point must be finite.")
            # float16 (about 3 decimal digits) would round the solution as an integer type
            # would truncate it: both are solved and returned in the precision that ran
            dtype = array.dtype if array.dtype.kind == "f" and array.dtype.itemsize >= 4 else floating
            device = torch_dtype = None
            if kind == "torch":
                device, torch_dtype = leaf.device, torch_dtype_of(dtype)
            infos.append(LeafInfo(path, array.shape, dtype, kind, device, torch_dtype))
        if sum(info.size for info in infos) == 0:
            raise ValueError(
                f"{name} has no parameter: its leaves hold no number (shapes {[info.shape for info in infos]}); give at least one value to optimize."
            )
        return cls(treedef, tuple(infos))

    # -- structure <-> flat vector -------------------------------------------------
    def flatten(self, tree: Any, name: str = "x0") -> np.ndarray:
        """Flatten a tree with x0's structure into one float64 vector (of its own)."""
        if self.array_leaf is not None and type(tree) is np.ndarray and tree.size == self.size:
            return tree.astype(np.float64).reshape(-1)
        leaves = self.leaves_of(tree, name)
        out = np.empty(self.size, dtype=np.float64)
        for info, leaf, size, start, stop in zip(self.leaves, leaves, self.sizes, self.offsets, self.offsets[1:]):
            # a gradient of NumPy arrays, read at every evaluation: leaf_to_numpy skipped
            array = leaf if type(leaf) is np.ndarray else leaf_to_numpy(leaf)
            if array.size != size:
                raise ValueError(f"{name}: {info.path.replace('x0', name, 1)} has shape {array.shape}, expected {info.shape}.")
            out[start:stop] = array.reshape(-1)
        return out

    def leaves_of(self, tree: Any, name: str = "x0") -> list[Any]:
        """The leaves of ``tree`` in x0's order, with a clear error if the structure differs."""
        try:
            return self.treedef.flatten_up_to(tree)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name} does not have the structure of x0 ({structure_text(self.treedef)}): {exc}") from None

    # split and views map C functions over the leaves rather than run a comprehension: a
    # Python frame fewer at every evaluation of a structured x0
    def split(self, flat: np.ndarray) -> list[np.ndarray]:
        """Views of the flat vector reshaped to each leaf's shape."""
        return list(map(_reshape, map(flat.__getitem__, self._slices), self.shapes))

    def views(self, flat: np.ndarray) -> Any:
        """The flat vector in x0's structure, each leaf a view of it in the leaf's shape."""
        return self.treedef.unflatten(map(_reshape, map(flat.__getitem__, self._slices), self.shapes))

    def copied_views(self, flat: np.ndarray) -> Any:
        """:meth:`views` of a copy of the flat vector: what a user's function may write into."""
        flat = flat.copy()
        return self.treedef.unflatten(map(_reshape, map(flat.__getitem__, self._slices), self.shapes))

    def unflatten(self, flat: np.ndarray) -> Any:
        """The flat vector as x0's structure with NumPy float64 leaves."""
        return self.treedef.unflatten(self.split(np.asarray(flat, dtype=np.float64)))

    def unflatten_leaves(self, leaves: list[Any]) -> Any:
        """Rebuild x0's structure from leaves of any array type (used inside compiled code)."""
        return self.treedef.unflatten(leaves)

    def restore(self, flat: np.ndarray) -> Any:
        """The flat vector in x0's structure *and* x0's array types, dtypes and devices."""
        if self.array_leaf is not None:
            return np.array(flat, dtype=self.array_leaf.dtype).reshape(self.array_leaf.shape)
        if self._numpy_dtypes is not None:  # restore_leaf's NumPy case, without a Python call per leaf
            return self.treedef.unflatten(list(map(np.array, self.split(np.asarray(flat)), self._numpy_dtypes)))
        leaves = [
            restore_leaf(info.kind, part, info.dtype, info.torch_dtype, info.device) for info, part in zip(self.leaves, self.split(np.asarray(flat)))
        ]
        return self.treedef.unflatten(leaves)

    def restore_rows(self, matrix: np.ndarray) -> Any:
        """A (m, n) matrix as x0's structure whose leaves have shape (m, *leaf.shape)."""
        m = matrix.shape[0]
        leaves = [matrix[:, start:stop].reshape((m,) + info.shape) for info, start, stop in zip(self.leaves, self.offsets, self.offsets[1:])]
        return self.treedef.unflatten(leaves)

    def element_name(self, index: int) -> str:
        """The readable name of one entry of the flat vector (``x0['w'][1, 0]``, ``x0[2]``)."""
        leaf = int(np.searchsorted(self.offsets, index, side="right")) - 1
        info = self.leaves[leaf]
        if not info.shape:
            return info.path
        position = np.unravel_index(index - self.offsets[leaf], info.shape)
        return f"{info.path}[{', '.join(str(int(i)) for i in position)}]"

    def kinds(self) -> set[str]:
        return {leaf.kind for leaf in self.leaves}

    def __repr__(self) -> str:
        return f"ParamSpec({structure_text(self.treedef)}, size={self.size})"


_size, _dtype, _shape, _ravel = operator.attrgetter("size"), operator.attrgetter("dtype"), operator.attrgetter("shape"), np.ndarray.ravel


@functools.lru_cache(maxsize=64)
def _tree_spec(treedef: Any, leaves: tuple[tuple[tuple[int, ...], np.dtype], ...], name: str, precision: str) -> ParamSpec:
    """The structure of a tree of finite NumPy arrays of these shapes and dtypes."""
    return ParamSpec._read(treedef.unflatten([np.zeros(shape, dtype) for shape, dtype in leaves]), name, precision)


@functools.lru_cache(maxsize=64)
def _array_spec(shape: tuple[int, ...], dtype: np.dtype, name: str, precision: str) -> ParamSpec:
    """The structure of a finite NumPy array x0 of ``shape`` and ``dtype``."""
    return ParamSpec._read(np.zeros(shape, dtype), name, precision)
