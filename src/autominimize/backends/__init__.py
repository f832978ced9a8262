"""Backends and how one is chosen.

Order: an explicit ``backend=``; the array type of x0's leaves; the one framework the
function's code refers to (in its globals, closure and the functions it calls, two levels
down), without evaluating it; otherwise the type one probe evaluation returns; a framework
the code refers to; NumPy for code that calls NumPy's own functions (no framework is
imported); for a function written only with operators, JAX if installed and the function
traces; otherwise NumPy.
"""

from __future__ import annotations

import importlib
import types
from typing import Any, Callable

from ..params import ParamSpec, leaf_kind, tree_leaves
from .base import Backend, args_key, cached_compile, clear_compile_cache
from .common import vector_leaves

__all__ = [
    "Backend",
    "array_backend",
    "constant_like",
    "ravel_like",
    "get_backend",
    "select_backend",
    "args_key",
    "cached_compile",
    "clear_compile_cache",
    "BACKEND_NAMES",
]

_MODULES = {
    "numpy": ("numpy_backend", "NumpyBackend"),
    "jax": ("jax_backend", "JaxBackend"),
    "torch": ("torch_backend", "TorchBackend"),
    "tensorflow": ("tf_backend", "TensorFlowBackend"),
}
_ALIASES = {"tf": "tensorflow", "np": "numpy", "pytorch": "torch"}
BACKEND_NAMES = tuple(_MODULES) + tuple(_ALIASES)
_KIND_TO_BACKEND = {"torch": "torch", "jax": "jax", "tf": "tensorflow"}
_instances: dict[str, Backend] = {}
_available: set[str] = set()


def canonical_name(name: str) -> str:
    if not isinstance(name, str) or name.lower() not in _MODULES and name.lower() not in _ALIASES:
        raise ValueError(
            f"backend={name!r} is not a known backend; use one of 'numpy', 'jax', 'torch', 'tensorflow' (or 'tf'), or leave it as None to detect it."
        )
    name = name.lower()
    return _ALIASES.get(name, name)


def get_backend(name: str) -> Backend:
    """The backend called ``name``, with a clear error if its framework is not installed."""
    if name in _available:  # a canonical name, found before: the lookup of every solve
        return _instances[name]
    name = canonical_name(name)
    if name not in _instances:
        module_name, class_name = _MODULES[name]
        module = importlib.import_module(f"{__name__}.{module_name}")
        _instances[name] = getattr(module, class_name)()
    backend = _instances[name]
    # A framework found once stays installed for the process; looking it up again costs
    # ~80 µs (importlib's find_spec), paid on every evaluation by callers that look a backend up.
    if name not in _available:
        if not backend.available():
            raise ImportError(f"backend={name!r} needs {name}, which is not installed. Install it with: pip install 'autominimize[{backend.extra}]'")
        _available.add(name)
    return backend


_FRAMEWORK_ROOTS = {"torch": "torch", "jax": "jax", "jaxlib": "jax", "tensorflow": "tensorflow"}
_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF", "LOAD_FAST", "LOAD_FAST_BORROW"})
_ATTRIBUTES = frozenset({"LOAD_ATTR", "LOAD_METHOD"})


def _module_root(value: Any) -> str:
    module = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
    return (module if isinstance(module, str) else "").split(".", 1)[0]


def _keras_framework() -> str:
    """The framework Keras runs on (Keras 3 picks it at import: ``KERAS_BACKEND``)."""
    import sys

    keras = sys.modules.get("keras")
    backend = keras.backend.backend() if keras is not None and hasattr(keras, "backend") else "tensorflow"
    return {"jax": "jax", "torch": "torch"}.get(backend, "tensorflow")


def _is_numpy_function(value: Any) -> bool:
    """A NumPy function or ufunc (``np.sum``, ``np.exp``), not a dtype, a constant or an array."""
    return callable(value) and not isinstance(value, type) and _module_root(value) == "numpy"


def _referenced_frameworks(fun: Callable, depth: int = 2) -> list[str]:
    """Frameworks the function's code refers to: in its globals and closure, and ``depth``
    levels down in the Python functions it refers to or defines.

    ``"numpy"`` is among them where the code *calls* one of NumPy's functions (``np.sum(x)``,
    ``np.linalg.norm(x)``, ``from numpy import exp``), not where it reads a constant or a
    dtype (``np.pi``, ``np.float64``) or holds an array. Once per solve: 10-600 µs.
    """
    found: list[str] = []
    _scan(fun, depth, found, set())
    return found


def _scan(fun: Any, depth: int, found: list[str], seen: set[int]) -> None:
    target = getattr(fun, "__wrapped__", fun)
    target = getattr(target, "__func__", target)  # bound methods
    if not isinstance(target, (types.FunctionType, type)) and callable(target):
        target = type(target).__call__  # callable objects
    code = getattr(target, "__code__", None)
    if code is not None:
        _scan_code(code, getattr(target, "__globals__", {}), getattr(target, "__closure__", None) or (), depth, found, seen)


def _scan_code(code: types.CodeType, namespace: dict, closure: tuple, depth: int, found: list[str], seen: set[int]) -> None:
    if id(code) in seen:
        return
    seen.add(id(code))
    values = {name: namespace[name] for name in code.co_names if name in namespace}
    for name, cell in zip(code.co_freevars, closure):
        try:
            values[name] = cell.cell_contents
        except ValueError:
            continue
    for value in values.values():
        root = _module_root(value)
        name = _keras_framework() if root in ("keras", "tf_keras") else _FRAMEWORK_ROOTS.get(root)
        if name is None and _is_numpy_function(value):
            name = "numpy"
        if name is not None:
            if name not in found:
                found.append(name)
        elif depth > 0 and isinstance(value, types.FunctionType):
            _scan(value, depth - 1, found, seen)
    if "numpy" not in found and _calls_numpy(code, values):
        found.append("numpy")
    if depth > 0:
        for const in code.co_consts:  # lambdas and functions defined inside
            if isinstance(const, types.CodeType):
                _scan_code(const, namespace, (), depth - 1, found, seen)


def _calls_numpy(code: types.CodeType, values: dict[str, Any]) -> bool:
    """Whether an attribute chain on the NumPy module (``np.linalg.norm``) ends at a function."""
    modules = {name for name, value in values.items() if isinstance(value, types.ModuleType) and _module_root(value) == "numpy"}
    if not modules:
        return False
    import dis

    current: Any = None
    for instruction in dis.get_instructions(code):
        if instruction.opname in _ATTRIBUTES and current is not None:
            current = getattr(current, str(instruction.argval), None)
            if _is_numpy_function(current):
                return True
            if not isinstance(current, types.ModuleType):
                current = None
            continue
        current = values[instruction.argval] if instruction.opname in _LOADS and instruction.argval in modules else None
    return False


def select_backend(backend: str | None, spec: ParamSpec, call: Callable, x0_flat: Any, probed: list | None = None) -> str:
    """Choose the backend by the documented order and return its canonical name.

    When the choice evaluated ``call`` at x0 and ``probed`` is a list, what it returned is
    appended to it: a NumPy solve takes it as its first value rather than evaluate x0 again.
    """
    if backend is not None:
        return canonical_name(backend)
    kinds = {_KIND_TO_BACKEND[k] for k in spec.kinds() if k in _KIND_TO_BACKEND}
    if len(kinds) > 1:
        raise TypeError(f"x0 mixes tensors of several frameworks ({', '.join(sorted(kinds))}); convert them to one framework or pass backend=.")
    if kinds:
        return kinds.pop()
    referenced = _referenced_frameworks(call)
    frameworks = [name for name in referenced if name != "numpy"]
    if len(frameworks) == 1 and get_backend_available(frameworks[0]):
        # Code written with one framework runs on it: no probe evaluation, which would cost
        # JAX an eager compilation of every operation (about 130 ms for a mean of a product).
        return frameworks[0]
    numpy_params = spec.unflatten(x0_flat)
    try:
        out = call(numpy_params)
    except Exception as exc:
        hinted = [name for name in frameworks if get_backend_available(name)]
        if hinted:
            return hinted[0]
        exc.add_note(
            "autominimize: raised while evaluating the function once at x0 with NumPy arrays to "
            "choose a backend; pass backend='jax', 'torch' or 'tensorflow' if it needs tensors."
        )
        raise
    if probed is not None:
        probed.append(out)
    out_leaves = tree_leaves(out)
    out_kinds = {_KIND_TO_BACKEND.get(leaf_kind(leaf)) for leaf in out_leaves} - {None}
    if out_kinds:
        return sorted(out_kinds)[0]
    hinted = [name for name in frameworks if get_backend_available(name)]
    if hinted:
        return hinted[0]
    if "numpy" in referenced:
        return "numpy"  # NumPy code: it pays for no framework import
    if get_backend_available("jax") and _traces_under_jax(call, spec):
        return "jax"
    return "numpy"


def array_backend(like: Any) -> Backend:
    """The backend of the framework ``like`` (an array, or a number: NumPy) belongs to."""
    return get_backend(_KIND_TO_BACKEND.get(leaf_kind(like), "numpy"))


def constant_like(value: Any, like: Any) -> Any:
    """``value`` as an array of ``like``'s framework, dtype and device."""
    return array_backend(like).constant_like(value, like)


def ravel_like(out: Any, like: Any) -> Any:
    """Every leaf of ``out`` raveled and concatenated into one 1-D array of ``like``'s framework."""
    return array_backend(like).ravel_concatenated(vector_leaves(out, "f"))


def get_backend_available(name: str) -> bool:
    try:
        get_backend(name)
    except ImportError:
        return False
    return True


def _traces_under_jax(call: Callable, spec: ParamSpec) -> bool:
    """Whether the function runs on JAX tracers (it uses only operators or jnp)."""
    import jax

    from .jax_backend import float64_scope

    # float64, as the solve will run
    structs = [jax.ShapeDtypeStruct(shape, "float64") for shape in spec.shapes]
    try:
        with float64_scope():
            jax.eval_shape(lambda leaves: call(spec.unflatten_leaves(leaves)), structs)
    except Exception:
        return False
    return True


def framework_params(name: str, spec: ParamSpec, x: Any) -> Any:
    """The flat vector as x0's structure with leaves of backend ``name``'s array type.

    User-supplied derivatives (``jac``, ``hess``, ``hessp``, constraint Jacobians) receive
    the same kind of arrays as the objective does.
    """
    leaves = spec.split(x)
    if name == "jax":
        import jax.numpy as jnp

        leaves = [jnp.asarray(leaf) for leaf in leaves]
    elif name == "torch":
        import torch

        leaves = [torch.from_numpy(leaf) for leaf in leaves]
    elif name == "tensorflow":
        import tensorflow as tf

        leaves = [tf.constant(leaf) for leaf in leaves]
    return spec.unflatten_leaves(leaves)
