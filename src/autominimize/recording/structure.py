"""A parameter structure described as plain data, and rebuilt from that description alone.

The SQLite log stores x0's structure this way (as JSON) so that reading a log never runs
code from it: containers are named by kind (dict, ordered dict, list, tuple, namedtuple,
None), keys are strings, integers, floats, booleans or None, and each leaf is its path,
shape, dtype and array type. A structure that data cannot describe (a custom pytree node
such as an Equinox module, a dict with other keys) is described by its leaves alone, and
rebuilt as a dict from leaf path to array.
"""

from __future__ import annotations

import collections
import keyword
import math
import operator
from typing import Any

import numpy as np

from ..params import ParamSpec

__all__ = ["check_description", "describe", "leaf_shapes", "rebuild"]

#: array types a leaf may have been
ARRAY_TYPES = ("python", "numpy", "torch", "jax", "tf")
#: dtypes a leaf may have had (parameters are real numbers)
DTYPES = ("float16", "float32", "float64", "float128", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
_KEY_TYPES = {str: "str", bool: "bool", int: "int", float: "float", type(None): "none"}
#: deepest nesting of containers a description may hold
MAX_DEPTH = 100


class _Undescribable(Exception):
    """The structure holds a container or key that plain data cannot describe."""


def describe(spec: ParamSpec) -> dict:
    """A JSON-ready description of ``spec``'s structure and leaves.

    Examples
    --------
    >>> import numpy as np
    >>> d = describe(ParamSpec.from_tree({"w": np.zeros((2, 2)), "b": 1.0}))
    >>> d["tree"]["kind"], [leaf["path"] for leaf in d["leaves"]]
    ('dict', ["x0['w']", "x0['b']"])
    """
    leaves = [{"path": leaf.path, "shape": list(leaf.shape), "dtype": np.dtype(leaf.dtype).name, "array": leaf.kind} for leaf in spec.leaves]
    try:
        counter = iter(range(len(leaves)))
        tree = _node(spec.treedef, counter, 0)
        note = None
    except _Undescribable as reason:
        tree, note = None, f"x0's structure holds {reason}, which plain data cannot describe: the parameters are keyed by leaf path"
    return {"tree": tree, "leaves": leaves, "note": note}


def _node(treespec: Any, counter: Any, depth: int) -> dict:
    import optree

    kind = getattr(treespec, "kind", None)
    if not isinstance(kind, optree.PyTreeKind):
        raise _Undescribable("a custom pytree node")
    if depth > MAX_DEPTH:
        raise _Undescribable(f"containers nested deeper than {MAX_DEPTH}")
    if kind == optree.PyTreeKind.LEAF:
        return {"kind": "leaf", "index": next(counter)}
    if kind == optree.PyTreeKind.NONE:
        return {"kind": "none"}
    names = {
        optree.PyTreeKind.TUPLE: "tuple",
        optree.PyTreeKind.LIST: "list",
        optree.PyTreeKind.DICT: "dict",
        optree.PyTreeKind.ORDEREDDICT: "ordereddict",
        optree.PyTreeKind.NAMEDTUPLE: "namedtuple",
    }
    if kind not in names or (
        kind in (optree.PyTreeKind.TUPLE, optree.PyTreeKind.LIST, optree.PyTreeKind.DICT) and treespec.type not in (tuple, list, dict)
    ):
        raise _Undescribable(
            f"a {getattr(treespec.type, '__name__', kind.name)} (a custom pytree node)"
            if kind == optree.PyTreeKind.CUSTOM
            else f"a {treespec.type.__name__}"
        )
    node: dict[str, Any] = {"kind": names[kind]}
    if kind in (optree.PyTreeKind.DICT, optree.PyTreeKind.ORDEREDDICT):
        node["keys"] = [_key(key) for key in treespec.entries()]
    if kind == optree.PyTreeKind.NAMEDTUPLE:
        node["name"] = treespec.type.__name__
        node["fields"] = list(treespec.type._fields)
    node["children"] = [_node(child, counter, depth + 1) for child in treespec.children()]
    return node


def _key(key: Any) -> list:
    name = _KEY_TYPES.get(type(key))
    if name is None or (name == "float" and not math.isfinite(key)):
        raise _Undescribable(f"a dict key {key!r} of type {type(key).__name__}")
    return [name, key]


def check_description(description: Any, n: int) -> None:
    """Raise ValueError, saying what is wrong, unless ``description`` is one that
    :func:`describe` could have written for ``n`` parameters."""
    if not isinstance(description, dict) or set(description) != {"tree", "leaves", "note"}:
        raise ValueError("the structure is not an object with keys 'tree', 'leaves' and 'note'")
    leaves = description["leaves"]
    if not isinstance(leaves, list) or not leaves:
        raise ValueError("the structure lists no leaves")
    total = 0
    for i, leaf in enumerate(leaves):
        if not isinstance(leaf, dict) or set(leaf) != {"path", "shape", "dtype", "array"}:
            raise ValueError(f"leaf {i} of the structure is not an object with keys 'path', 'shape', 'dtype' and 'array'")
        shape = leaf["shape"]
        if not isinstance(leaf["path"], str) or not isinstance(shape, list) or not all(type(d) is int and 0 <= d <= n for d in shape):
            raise ValueError(f"leaf {i} of the structure has a path that is not a string or a shape that is not a list of sizes")
        if leaf["dtype"] not in DTYPES or leaf["array"] not in ARRAY_TYPES:
            raise ValueError(f"leaf {i} of the structure has dtype {leaf['dtype']!r} or array type {leaf['array']!r}, neither of which is written")
        total += _size(shape, n)
        if total > n:
            break
    if total != n:
        raise ValueError(f"the structure's leaves hold {total} numbers but the run has n = {n}")
    if description["note"] is not None and not isinstance(description["note"], str):
        raise ValueError("the structure's note is not a string")
    if description["tree"] is not None:
        indices: list[int] = []
        _check_node(description["tree"], indices, 0)
        if indices != list(range(len(leaves))):
            raise ValueError("the structure's tree does not hold each leaf once, in order")


def _size(shape: list[int], n: int) -> int:
    """The number of elements of ``shape``, or n + 1 once it is known to exceed n."""
    if 0 in shape:
        return 0
    size = 1
    for dim in shape:
        size *= dim
        if size > n:
            return n + 1
    return size


def _check_node(node: Any, indices: list[int], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"the structure nests containers deeper than {MAX_DEPTH}")
    kind = node.get("kind") if isinstance(node, dict) else None
    fields = {
        "leaf": {"kind", "index"},
        "none": {"kind"},
        "tuple": {"kind", "children"},
        "list": {"kind", "children"},
        "dict": {"kind", "keys", "children"},
        "ordereddict": {"kind", "keys", "children"},
        "namedtuple": {"kind", "name", "fields", "children"},
    }.get(kind)
    if fields is None or set(node) != fields:
        raise ValueError(f"the structure holds a node {str(node)[:80]!r} that is not one it writes")
    if kind == "leaf":
        if type(node["index"]) is not int:
            raise ValueError("the structure holds a leaf whose index is not an integer")
        indices.append(node["index"])
        return
    if kind == "none":
        return
    children = node["children"]
    if not isinstance(children, list):
        raise ValueError(f"the structure holds a {kind} whose children are not a list")
    if kind in ("dict", "ordereddict"):
        keys = node["keys"]
        if not isinstance(keys, list) or len(keys) != len(children) or not all(_is_key(key) for key in keys):
            raise ValueError(f"the structure holds a {kind} whose keys are not one [type, value] pair per child")
        if len({(kind_, value) for kind_, value in keys}) != len(keys):
            raise ValueError(f"the structure holds a {kind} with a repeated key")
    if kind == "namedtuple":
        names = [node["name"], *node["fields"]] if isinstance(node["fields"], list) else [None]
        if not all(isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name) for name in names):
            raise ValueError("the structure holds a namedtuple whose name or fields are not identifiers")
        if len(set(node["fields"])) != len(node["fields"]) or len(node["fields"]) != len(children) or any(f.startswith("_") for f in node["fields"]):
            raise ValueError("the structure holds a namedtuple whose fields do not match its children")
    for child in children:
        _check_node(child, indices, depth + 1)


def _is_key(key: Any) -> bool:
    if not isinstance(key, list) or len(key) != 2:
        return False
    kind, value = key
    expected = {"str": str, "bool": bool, "int": int, "float": float, "none": type(None)}.get(kind)
    return expected is not None and type(value) is expected


def leaf_shapes(description: dict) -> list[tuple[str, tuple[int, ...]]]:
    """(path, shape) of each leaf, in the order of the flat vector."""
    return [(leaf["path"], tuple(leaf["shape"])) for leaf in description["leaves"]]


def rebuild(description: dict, flat: np.ndarray) -> Any:
    """The flat vector in the described structure, with NumPy float64 leaves (a Python float
    where the leaf was a Python number); a dict from leaf path to array when the structure
    was described by its leaves alone. ``description`` must have passed :func:`check_description`."""
    parts = []
    start = 0
    for leaf in description["leaves"]:
        shape = tuple(leaf["shape"])
        stop = start + math.prod(shape)
        part = flat[start:stop].reshape(shape)
        parts.append(float(part) if leaf["array"] == "python" and not shape else part)
        start = stop
    if description["tree"] is None:
        return {leaf["path"]: part for leaf, part in zip(description["leaves"], parts)}
    return _build(description["tree"], parts)


def _build(node: dict, parts: list) -> Any:
    kind = node["kind"]
    if kind == "leaf":
        return parts[node["index"]]
    if kind == "none":
        return None
    children = [_build(child, parts) for child in node["children"]]
    if kind == "tuple":
        return tuple(children)
    if kind == "list":
        return children
    if kind in ("dict", "ordereddict"):
        pairs = zip((value for _, value in node["keys"]), children)
        return dict(pairs) if kind == "dict" else collections.OrderedDict(pairs)
    return _record_type(node["name"], tuple(node["fields"]))(*children)


def _record_type(name: str, fields: tuple[str, ...]) -> type:
    """A namedtuple class made without ``collections.namedtuple``, whose ``eval`` would see
    the names read from the file: a tuple whose fields are read-only properties."""

    def __new__(cls: type, *values: Any) -> tuple:
        return tuple.__new__(cls, values)

    def __repr__(self: tuple) -> str:
        return f"{name}({', '.join(f'{field}={value!r}' for field, value in zip(fields, self))})"

    namespace: dict[str, Any] = {
        "__slots__": (),
        "_fields": fields,
        "__new__": __new__,
        "__repr__": __repr__,
        "_make": classmethod(lambda cls, values: cls(*values)),
        "_asdict": lambda self: dict(zip(fields, self)),
        "_replace": lambda self, **changes: type(self)(*(changes.pop(f, v) for f, v in zip(fields, self))),
    }
    namespace.update({field: property(operator.itemgetter(i)) for i, field in enumerate(fields)})
    return type(name, (tuple,), namespace)
