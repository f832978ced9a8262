"""The Lagrangian ``σ f(x) + λ · c(x)`` as ONE scalar function that the backend compiles.

The function is of the augmented flat vector ``z = [x, σ, λ]`` (``n + 1 + m`` entries,
``c`` the nonlinear constraints stacked in order), built from the objective's and the
constraints' own compiled pieces, so it is traced, differentiated and compiled by the same
backend code as any objective. One Hessian-vector product of it with ``v = [s, 0, 0]`` gives,
in one pass,

* ``∇²ₓₓL · s`` (its first ``n`` entries): the Lagrangian Hessian's part, and
* ``J · s`` (its last ``m`` entries), since ``∂²L/∂λ∂x = J``: the constraint Jacobian's part.

So a colouring of the stacked pattern ``[∇²ₓₓL; J]`` gets both matrices from the same few
passes, and the full Hessian of ``L`` holds both as blocks. On JAX a point's passes are one
compiled call, and ``J · S`` asked for alone is one call of forward passes of ``c``; where
IPOPT gets J with ∇f (:meth:`Lagrangian.first_order_call`) the Hessian's passes run in x
alone (:meth:`Lagrangian.hessian_call`), at a quarter of the cost.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..params import ParamSpec

__all__ = ["Lagrangian", "backend_name_of", "dtype_name", "lagrangian_for", "supports_exact_lagrangian"]

#: the framework functions of a flat vector, by compiled class: (scalar, vector)
_FLAT_FUNCTIONS = {"jax": ("flat_fun", "flat_fun"), "torch": ("flat_fun", "flat_fun"), "tensorflow": ("scalar_of", "vector_of")}


def backend_name_of(functions: Any) -> str | None:
    """The backend that compiled ``functions``, or None for NumPy and user-supplied wrappers."""
    framework = getattr(type(functions), "framework", None)
    return framework if framework in _FLAT_FUNCTIONS else None


def dtype_name(functions: Any) -> str:
    """The dtype compiled functions compute in, by name ('float64', 'float32')."""
    dtype = getattr(functions, "dtype", None)
    if dtype is None:  # torch keeps its own dtype object
        return str(functions.torch_dtype).rsplit(".", 1)[-1]
    return np.dtype(dtype).name


def supports_exact_lagrangian(objective_functions: Any, constraint_functions: Sequence[Any]) -> bool:
    """Whether the objective (None: none) and every constraint are compiled framework
    functions of x, of one backend."""
    first = objective_functions if objective_functions is not None else (constraint_functions or [None])[0]
    name = backend_name_of(first)
    if name is None:
        return False
    scalar, vector = _FLAT_FUNCTIONS[name]
    return (objective_functions is None or hasattr(objective_functions, scalar)) and all(
        backend_name_of(c) == name and hasattr(c, vector) for c in constraint_functions
    )


def _weighted_sum(kind: str, weights: Any, values: Any) -> Any:
    if kind == "tensorflow":
        import tensorflow as tf

        return tf.tensordot(weights, values, 1)
    return (weights * values).sum()


class Lagrangian:
    """``L(z) = σ f(x) + λ · c(x)`` compiled by the objective's backend (without an objective,
    ``objective_functions=None``: ``λ · c(x)``, whose passes give J and Σ λᵢ∇²cᵢ).

    Attributes
    ----------
    n, m : int
        Parameters and nonlinear constraint values.
    functions
        The backend's compiled scalar functions of ``z`` (``hvp_at``, ``hessian``, ...).
    backend : str
        The backend's name.
    """

    def __init__(self, objective_functions: Any, constraint_functions: Sequence[Any], m: int, dtype: str) -> None:
        from . import get_backend

        first = objective_functions if objective_functions is not None else constraint_functions[0]
        self.backend = backend_name_of(first)
        self.n = int(first.n)
        self.m = int(m)
        scalar_name, vector_name = _FLAT_FUNCTIONS[self.backend]
        scalar = getattr(objective_functions, scalar_name) if objective_functions is not None else None
        vectors = [getattr(c, vector_name) for c in constraint_functions]
        kind = self.backend

        def lagrangian(params: tuple) -> Any:
            x, w = params
            total = w[0] * scalar(x) if scalar is not None else 0.0 * w[0]
            start = 1
            for vector in vectors:
                values = vector(x)
                size = int(values.shape[0])
                total = total + _weighted_sum(kind, w[start : start + size], values)
                start += size
            return total

        self.spec = ParamSpec.from_tree((np.zeros(self.n), np.zeros(1 + self.m)))
        #: sparsity patterns found for these functions, kept for a later solve
        self.patterns: dict[str, Any] = {}
        backend = get_backend(self.backend)
        if self.backend == "torch":
            self.functions = backend.compile_scalar(lagrangian, self.spec, dtype, device=first.device)
        else:
            self.functions = backend.compile_scalar(lagrangian, self.spec, dtype)
        #: c(x) stacked, compiled on JAX for forward passes (where J is asked for alone)
        self.constraint_values = None
        #: [f(x), c(x)] stacked, compiled on JAX: a point's f, ∇f, c and J · S in one call (:meth:`first_order_call`)
        self.point_values = None
        if self.backend == "jax" and vectors:
            import jax.numpy as jnp

            def stacked(x: Any) -> Any:
                return jnp.concatenate([vector(x) for vector in vectors])

            flat = ParamSpec.from_tree(np.zeros(self.n))
            self.constraint_values = backend.compile_vector(stacked, flat, dtype)
            if scalar is not None:

                def with_objective(x: Any) -> Any:
                    return jnp.concatenate([jnp.reshape(scalar(x), (1,)), stacked(x)])

                self.point_values = backend.compile_vector(with_objective, flat, dtype)

    def point(self, x: np.ndarray, sigma: float, multipliers: np.ndarray) -> np.ndarray:
        """The augmented vector ``z = [x, σ, λ]``."""
        return np.concatenate([x, [sigma], multipliers])

    def x_slice(self) -> slice:
        return slice(0, self.n)

    def multiplier_slice(self) -> slice:
        return slice(self.n + 1, self.n + 1 + self.m)

    def hessian_blocks(self, x: np.ndarray, sigma: float, multipliers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The dense ``∇²ₓₓL`` (n, n) and ``J`` (m, n) from one Hessian of ``L``."""
        full = self.functions.hessian(self.point(x, sigma, multipliers))
        xs, ms = self.x_slice(), self.multiplier_slice()
        return full[xs, xs], full[ms, xs]

    def compressed(self, x: np.ndarray, sigma: float, multipliers: np.ndarray, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``∇²ₓₓL · S`` and ``J · S`` for the seed matrix ``seeds`` (p, n), as (p, n) and
        (p, m) arrays: one Hessian-vector product of ``L`` per row of ``seeds``, all in one
        compiled call where the backend maps them over the rows (JAX)."""
        z = self.point(x, sigma, multipliers)
        xs, ms = self.x_slice(), self.multiplier_slice()
        directions = np.zeros((len(seeds), z.size))
        directions[:, xs] = seeds
        hvps = getattr(self.functions, "hvps", None)
        if hvps is not None:
            out = hvps(z, directions)
        else:
            hvp = self.functions.hvp_at(z)
            out = np.array([np.asarray(hvp(v), dtype=np.float64) for v in directions]).reshape(len(seeds), z.size)
        return out[:, xs], out[:, ms]

    def hessian_call(self, seeds: np.ndarray) -> tuple[Callable[[np.ndarray, np.ndarray], Any], bool]:
        """``(x, [σ, λ]) ->`` ``∇²ₓₓL · S`` (p, n), and whether the call gives ``J · S`` (p, m)
        with it, as ``(∇²ₓₓL · S, J · S)``. On JAX the passes run in x alone
        (:meth:`~.jax_passes.HessianPasses.head_hvps_call`, found once here), at a quarter of
        the cost of those in ``[x, σ, λ]``, and J comes from :meth:`first_order_call`; the call
        is JAX's own, one Python frame fewer at each Hessian. Elsewhere the products in
        ``[x, σ, λ]`` give both."""
        head_hvps_call = getattr(self.functions, "head_hvps_call", None)
        if head_hvps_call is None:
            return (lambda x, rest: self.compressed(x, rest[0], rest[1:], seeds)), True
        return head_hvps_call(1 + self.m, np.asarray(seeds, dtype=np.float64)), False

    def first_order_call(self, seeds: np.ndarray, coloured: bool = True) -> Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray, np.ndarray]]:
        """``x ->`` ``f(x)``, ``∇f(x)``, ``c(x)`` and ``J · S`` (p, m) from one compiled call
        (JAX, with an objective; found once here): what IPOPT asks for at a trial point, c then
        f, and where it accepts it, ∇f then J, in one dispatch instead of four. ``coloured``:
        the seeds are a colouring's (few), not the identity's (J's passes then run in a loop,
        :mod:`.jax_passes`)."""
        return self.point_values.first_order_call(np.asarray(seeds, dtype=np.float64), 1 + self.m, looped=coloured)

    def jacobian_compressed(self, x: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """``J · S`` (p, m) alone: forward passes of c in one call on JAX (0.04–0.14 ms
        against 0.36–0.55 ms for the Lagrangian's 3 products on the banded problem at
        n = 1000), elsewhere the Lagrangian's products with σ = 0 and λ = 0."""
        if self.constraint_values is not None:
            return self.constraint_values.jvps(x, np.asarray(seeds, dtype=np.float64))
        return self.compressed(x, 0.0, np.zeros(self.m), seeds)[1]


_lagrangians: weakref.WeakKeyDictionary[Any, dict] = weakref.WeakKeyDictionary()


def lagrangian_for(objective_functions: Any, constraint_functions: Sequence[Any], m: int, dtype: str) -> Lagrangian:
    """The Lagrangian of these compiled functions, built once and reused by a later solve of
    the same functions (the compile cache hands out the same compiled objects again)."""
    owner = objective_functions if objective_functions is not None else constraint_functions[0]
    per_objective = _lagrangians.setdefault(owner, {})
    key = (objective_functions is None, tuple(id(c) for c in constraint_functions), m, dtype)
    entry = per_objective.get(key)
    if entry is None:
        entry = per_objective[key] = (Lagrangian(objective_functions, constraint_functions, m, dtype), list(constraint_functions))
    return entry[0]
