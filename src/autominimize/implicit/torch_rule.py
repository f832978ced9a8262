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

__all__ = ["solve_with_torch"]


class TorchOperators:
    """The adjoint's operators at one θ: autograd on x as one flat tensor."""

    def __init__(self, problem: ImplicitProblem, leaves: list, dtype: Any, device: Any):
        import torch

        self.torch, self.problem, self.leaves, self.dtype, self.device = torch, problem, leaves, dtype, device
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

    def lagrangian_gradient(self, x: Any, leaves: list, weights: np.ndarray) -> Any:
        return self.torch.autograd.grad(self.lagrangian(x, leaves, weights), x, create_graph=True)[0]

    def gradient(self, x: np.ndarray) -> np.ndarray:
        with self.torch.enable_grad():
            xt = self._x(x)
            return self.torch.autograd.grad(self.objective(xt, self.leaves), xt)[0].detach().cpu().numpy().astype(np.float64)

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
        """H @ vectors. Many columns at once: forward-over-reverse under ``torch.func.vmap``
        (several times faster than a batched double backward), where the function allows it.
        One column at a time (conjugate gradients): products from the gradient's graph, built
        once per (x, weights)."""
        torch = self.torch
        rows = torch.as_tensor(np.ascontiguousarray(vectors.T), dtype=self.dtype, device=self.device)
        if rows.shape[0] > 1 and self._functional:
            try:
                return self._vectorized_hvp(x, weights, rows)
            except Exception:  # in-place operations, .item() or data-dependent control flow: one at a time
                self._functional = False
        key = (x.tobytes(), weights.tobytes())
        if self._linearized is None or self._linearized[0] != key:
            with torch.enable_grad():
                xt = self._x(x)
                self._linearized = (key, xt, self.lagrangian_gradient(xt, self.leaves, weights))
        _, xt, g = self._linearized
        with torch.enable_grad():
            products = [torch.autograd.grad(g, xt, row, retain_graph=True)[0] for row in rows]
        return torch.stack(products).detach().cpu().numpy().T.astype(np.float64)

    def _vectorized_hvp(self, x: np.ndarray, weights: np.ndarray, rows: Any) -> np.ndarray:
        func = self.torch.func
        point = self.torch.as_tensor(x, dtype=self.dtype, device=self.device)
        gradient = func.grad(lambda y: self.lagrangian(y, self.leaves, weights))
        products = func.vmap(lambda v: func.jvp(gradient, (point,), (v,))[1])(rows)
        return products.detach().cpu().numpy().T.astype(np.float64)

    def theta_vjp(self, x: np.ndarray, weights: np.ndarray, w: np.ndarray, z: np.ndarray, mask: list[bool]) -> list:
        """-∂θ(⟨∇ₓL, w⟩ + ⟨c, z⟩) for the leaves in ``mask``, in their dtypes."""
        torch = self.torch
        with torch.enable_grad():
            xt = self._x(x)
            leaves = [leaf.detach().requires_grad_(True) if keep else leaf for leaf, keep in zip(self.leaves, mask)]
            value = self.lagrangian_gradient(xt, leaves, weights) @ torch.as_tensor(w, dtype=self.dtype, device=self.device)
            if z.size:
                value = value + self.constraint_values(xt, leaves) @ torch.as_tensor(z, dtype=self.dtype, device=self.device)
            wanted = [leaf for leaf, keep in zip(leaves, mask) if keep]
            grads = torch.autograd.grad(value, wanted, allow_unused=True)
        return [torch.zeros_like(leaf) if g is None else -g.to(leaf.dtype) for g, leaf in zip(grads, wanted)]


def _flat(torch: Any, out: Any, dtype: Any) -> Any:
    return torch.cat([torch.as_tensor(leaf).reshape(-1).to(dtype) for leaf in tree_leaves(out)])


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
            ops = TorchOperators(problem, detached, dtype, device)
            v = cotangent.detach().cpu().numpy().astype(np.float64)
            adjoint = adjoint_at(problem, ops, x_flat, v, success)
            count_hvps(result, adjoint)
            wanted = [leaf for leaf, keep in zip(detached, mask) if keep]
            if adjoint.failure is not None:
                return tuple(torch.full_like(leaf, float("nan")) for leaf in wanted)
            return tuple(ops.theta_vjp(x_flat, adjoint.weights, adjoint.w, adjoint.z, mask))

    flat = Solution.apply(*[leaf for leaf, keep in zip(leaves, mask) if keep])
    parts = []
    for info, a, b in zip(spec.leaves, spec.offsets, spec.offsets[1:]):
        part = flat[a:b].reshape(info.shape)
        part_dtype = info.torch_dtype if info.torch_dtype is not None else torch.from_numpy(np.zeros(0, dtype=info.dtype)).dtype
        parts.append(part.to(device=info.device or device, dtype=part_dtype))
    result.x = spec.unflatten_leaves(parts)
    return result
