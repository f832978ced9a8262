"""PyTorch: the solution as the output of an ``autograd.Function`` whose backward is implicit.

The forward pass is the ordinary solve on detached arguments; ``backward`` solves the adjoint
system with torch's own derivatives of the user's function at the solution and returns one
vector-Jacobian product per argument tensor that requires grad. First order only: the backward
is marked ``once_differentiable``, so differentiating it again raises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.optimize as so

from ..params import tree_leaves
from .backward import adjoint_at, count_hvps
from .problem import ImplicitProblem, flat_solution, split_args

__all__ = ["depends_on_captured", "solve_with_torch"]


class TorchOperators:
    """The adjoint's operators at one θ: autograd on x as one flat tensor."""

    def __init__(self, problem: ImplicitProblem, leaves: list, mask: list[bool], dtype: Any, device: Any):
        import torch

        self.torch, self.problem, self.dtype, self.device = torch, problem, dtype, device
        # θ's leaves to differentiate are leaves of every graph built here: the gradient's graph
        # serves the Hessian-vector products and the product with respect to θ alike
        self.mask = mask
        self.leaves = [leaf.detach().requires_grad_(True) if keep else leaf for leaf, keep in zip(leaves, mask)]
        self.matrices = [torch.as_tensor(item.matrix, dtype=dtype, device=device) for item in problem.constraints if item.fun is None]
        self.sizes: list[int] = []
        self._linearized: tuple | None = None
        self._functional = True

    def params_of(self, x: Any) -> Any:
        spec = self.problem.spec
        return spec.unflatten_leaves([x[a:b].reshape(shape) for shape, a, b in zip(spec.shapes, spec.offsets, spec.offsets[1:])])

    def _x(self, x: np.ndarray) -> Any:
        return self.torch.tensor(x, dtype=self.dtype, device=self.device).requires_grad_(True)

    def objective(self, x: Any, leaves: list) -> Any:
        torch = self.torch
        out = self.problem.objective_output(self.params_of(x), self.problem.args(leaves))
        if self.problem.residual:
            r = _flat(torch, out, self.dtype)
            return 0.5 * (r * r).sum()
        return torch.as_tensor(out).reshape(())

    def constraint_values(self, x: Any, leaves: list) -> Any:
        torch = self.torch
        if not self.problem.constraints:
            return x.new_zeros(0)
        outputs = iter(self.problem.constraint_outputs(self.params_of(x), self.problem.args(leaves)))
        matrices = iter(self.matrices)
        parts = [next(matrices) @ x if item.fun is None else _flat(torch, next(outputs), self.dtype) for item in self.problem.constraints]
        self.sizes = [int(part.numel()) for part in parts]
        return torch.cat(parts)

    def lagrangian(self, x: Any, leaves: list, weights: np.ndarray) -> Any:
        value = self.objective(x, leaves)
        if weights.size:
            value = value + self.constraint_values(x, leaves) @ self.torch.as_tensor(weights, dtype=self.dtype, device=self.device)
        return value

    def linearized(self, x: np.ndarray, weights: np.ndarray) -> tuple[Any, Any]:
        """x as a tensor and ∇ₓL(x, θ) with its graph (``create_graph``), built once per (x, weights)."""
        torch = self.torch
        key = (x.tobytes(), weights.tobytes())
        if self._linearized is None or self._linearized[0] != key:
            with torch.enable_grad():
                xt = self._x(x)
                g = torch.autograd.grad(self.lagrangian(xt, self.leaves, weights), xt, create_graph=True)[0]
            self._linearized = (key, xt, g)
        return self._linearized[1], self._linearized[2]

    def gradient(self, x: np.ndarray) -> np.ndarray:
        return self.linearized(x, np.zeros(0))[1].detach().cpu().numpy().astype(np.float64)

    def constraints(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self.problem.constraints:
            return np.zeros(0), np.zeros((0, x.size))
        torch = self.torch
        with torch.enable_grad():
            xt = self._x(x)
            c = self.constraint_values(xt, self.leaves)
            rows = [torch.autograd.grad(c[i], xt, retain_graph=True)[0] for i in range(c.numel())]
        jac = torch.stack(rows) if rows else xt.new_zeros((0, x.size))
        return c.detach().cpu().numpy().astype(np.float64), jac.detach().cpu().numpy().astype(np.float64)

    def hvp(self, x: np.ndarray, weights: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """H @ vectors. Many columns at once: the gradient's pullback (reverse over reverse,
        H being symmetric) under ``torch.func.vmap``, where the function allows it: the gradient
        is computed once and only its pullback is batched (about twice as fast as
        forward-over-reverse, which batches the tangents of the gradient's computation too, and
        many times faster than autograd's batched double backward). One column at a time
        (conjugate gradients): products from the gradient's graph, built once per (x, weights)."""
        torch = self.torch
        rows = torch.as_tensor(np.ascontiguousarray(vectors.T), dtype=self.dtype, device=self.device)
        if rows.shape[0] > 1 and self._functional:
            try:
                return self._vectorized_hvp(x, weights, rows)
            except Exception:  # in-place operations, .item() or data-dependent control flow: one at a time
                self._functional = False
        xt, g = self.linearized(x, weights)
        with torch.enable_grad():
            products = [torch.autograd.grad(g, xt, row, retain_graph=True)[0] for row in rows]
        return torch.stack(products).detach().cpu().numpy().T.astype(np.float64)

    def _vectorized_hvp(self, x: np.ndarray, weights: np.ndarray, rows: Any) -> np.ndarray:
        func = self.torch.func
        point = self.torch.as_tensor(x, dtype=self.dtype, device=self.device)
        gradient = func.grad(lambda y: self.lagrangian(y, self.leaves, weights))
        with self.torch.no_grad():  # func.grad differentiates inside; θ's leaves need no graph here
            _, pullback = func.vjp(gradient, point)
            products = func.vmap(pullback)(rows)[0]
        return products.detach().cpu().numpy().T.astype(np.float64)

    def theta_vjp(self, x: np.ndarray, weights: np.ndarray, w: np.ndarray, z: np.ndarray) -> list:
        """-∂θ(⟨∇ₓL, w⟩ + ⟨c, z⟩) for the leaves to differentiate, in their dtypes: one product
        through the gradient's graph."""
        torch = self.torch
        xt, g = self.linearized(x, weights)
        wanted = [leaf for leaf, keep in zip(self.leaves, self.mask) if keep]
        with torch.enable_grad():
            value = g @ torch.as_tensor(w, dtype=self.dtype, device=self.device)
            if z.size:
                value = value + self.constraint_values(xt.detach(), self.leaves) @ torch.as_tensor(z, dtype=self.dtype, device=self.device)
            grads = torch.autograd.grad(value, wanted, allow_unused=True)
        return [torch.zeros_like(leaf) if grad is None else -grad.to(leaf.dtype) for grad, leaf in zip(grads, wanted)]


def _flat(torch: Any, out: Any, dtype: Any) -> Any:
    return torch.cat([torch.as_tensor(leaf).reshape(-1).to(dtype) for leaf in tree_leaves(out)])


def depends_on_captured(fun: Callable, template: Any, args: tuple, unpack: str) -> bool:
    """Whether ``fun``'s value at x0 depends on a tensor that requires grad other than x0's
    (which does not here): one evaluation, for a function that captures such a tensor. A
    tensor captured for its dtype or device only (``am.torch.function_factory``) does not count."""
    import torch

    from ..calling import is_number_list, make_caller, resolve_unpack
    from ..params import ParamSpec

    template = np.asarray(template, dtype=np.float64) if is_number_list(template) else template  # a vector, as in the solve
    spec = ParamSpec.from_tree(template)
    flat = torch.as_tensor(flat_solution(template))
    params = spec.unflatten_leaves([flat[a:b].reshape(shape) for shape, a, b in zip(spec.shapes, spec.offsets, spec.offsets[1:])])
    with torch.enable_grad():
        out = make_caller(fun, resolve_unpack(fun, template, unpack, len(args)), args, template)(params)
    return any(isinstance(leaf, torch.Tensor) and leaf.requires_grad for leaf in tree_leaves(out, none_is_leaf=False))


def solve_with_torch(problem: ImplicitProblem, run: Callable[[Any, tuple], so.OptimizeResult], x0: Any, args: tuple) -> so.OptimizeResult:
    """The ordinary solve on detached arguments, with ``res.x`` attached to the autograd graph."""
    import torch

    leaves = split_args(args)[0]
    mask = [isinstance(leaf, torch.Tensor) and leaf.requires_grad for leaf in leaves]
    detached = [leaf.detach() if isinstance(leaf, torch.Tensor) else leaf for leaf in leaves]
    result = run(x0, problem.args(detached))
    spec = problem.spec
    x_flat = flat_solution(result.x)
    dtype = torch.float64 if result.get("precision", "float64") == "float64" else torch.float32
    device = next((leaf.device for leaf, keep in zip(leaves, mask) if keep), torch.device("cpu"))
    success = bool(result.get("success", False))

    class Solution(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *wanted):
            return torch.as_tensor(x_flat, dtype=dtype, device=device)

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, cotangent):
            ops = TorchOperators(problem, detached, mask, dtype, device)
            v = cotangent.detach().cpu().numpy().astype(np.float64)
            adjoint = adjoint_at(problem, ops, x_flat, v, success)
            count_hvps(result, adjoint)
            wanted = [leaf for leaf, keep in zip(detached, mask) if keep]
            if adjoint.failure is not None:
                return tuple(torch.full_like(leaf, float("nan")) for leaf in wanted)
            return tuple(ops.theta_vjp(x_flat, adjoint.weights, adjoint.w, adjoint.z))

    flat = Solution.apply(*[leaf for leaf, keep in zip(leaves, mask) if keep])
    parts = []
    for info, a, b in zip(spec.leaves, spec.offsets, spec.offsets[1:]):
        part = flat[a:b].reshape(info.shape)
        part_dtype = info.torch_dtype if info.torch_dtype is not None else torch.from_numpy(np.zeros(0, dtype=info.dtype)).dtype
        parts.append(part.to(device=info.device or device, dtype=part_dtype))
    result.x = spec.unflatten_leaves(parts)
    return result
