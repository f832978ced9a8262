"""Multinomial logistic regression on MNIST-like synthetic digits with am.torch.ScipyOptimizer.

The data are 8x8 "images" of 10 classes (a random prototype per class plus noise); the
model is a float64 ``nn.Linear(64, 10)`` (a float32 model works the same way, but Newton
steps then stall at float32's precision, which scipy reports as "precision loss"). One
``optimizer.step(closure)`` runs a whole
Newton-CG solve: gradients by autograd, Hessian-vector products by differentiating the
closure's loss twice. The same fit is then done the gngdb/pytorch-minimize way, with
``MinimizeWrapper`` and a ``Closure`` object, using trust-ncg.

Run with ``python examples/torch_logistic_regression.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import autominimize as am

N_CLASSES, N_PIXELS, N_SAMPLES = 10, 64, 600
WEIGHT_DECAY = 1e-3


def digits(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.rand(N_CLASSES, N_PIXELS, generator=generator, dtype=torch.float64)
    labels = torch.randint(N_CLASSES, (N_SAMPLES,), generator=generator)
    images = prototypes[labels] + torch.randn(N_SAMPLES, N_PIXELS, generator=generator, dtype=torch.float64)
    return images, labels


def objective(model: torch.nn.Module, X: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy plus a little weight decay, which makes the problem strictly convex."""
    return F.cross_entropy(model(X), labels) + WEIGHT_DECAY * (model.weight**2).sum()


def accuracy(model: torch.nn.Module, X: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(X).argmax(dim=1) == labels).float().mean().item()


def fit_with_scipy_optimizer(X: torch.Tensor, labels: torch.Tensor) -> tuple[torch.nn.Module, am.torch.ScipyOptimizer]:
    torch.manual_seed(0)
    model = torch.nn.Linear(N_PIXELS, N_CLASSES, dtype=torch.float64)
    optimizer = am.torch.ScipyOptimizer(model.parameters(), method="Newton-CG")

    def closure():  # returns the loss without calling backward: it is differentiated twice
        return objective(model, X, labels)

    optimizer.step(closure)
    return model, optimizer


def fit_the_gngdb_way(X: torch.Tensor, labels: torch.Tensor) -> tuple[torch.nn.Module, am.torch.MinimizeWrapper]:
    torch.manual_seed(0)
    model = torch.nn.Linear(N_PIXELS, N_CLASSES, dtype=torch.float64)
    optimizer = am.torch.MinimizeWrapper(model.parameters(), dict(method="trust-ncg", options={"gtol": 1e-6}))

    class Closure:
        def __init__(self, model):
            self.model = model

        @staticmethod
        def loss(model):
            return objective(model, X, labels)

        def __call__(self):
            optimizer.zero_grad()
            loss = self.loss(self.model)
            loss.backward()
            return loss

    optimizer.step(Closure(model))
    return model, optimizer


def main() -> dict[str, dict]:
    X, labels = digits()
    report = {}
    for label, fit in (("ScipyOptimizer Newton-CG", fit_with_scipy_optimizer), ("MinimizeWrapper trust-ncg", fit_the_gngdb_way)):
        model, optimizer = fit(X, labels)
        result = optimizer.result
        report[label] = {
            "loss": result.fun,
            "accuracy": accuracy(model, X, labels),
            "dtype": model.weight.dtype,
            "counts": (result.nfev, result.njev, result.nhvp),
            "success": bool(result.success),
        }
        print(
            f"{label:<26} loss {result.fun:.6f}  train accuracy {report[label]['accuracy']:.3f}  "
            f"nfev/njev/nhvp {report[label]['counts']}  {model.weight.dtype}  {result.message}"
        )
    return report


if __name__ == "__main__":
    main()
