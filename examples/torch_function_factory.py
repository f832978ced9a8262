"""A torch model as a pure function of its parameters, minimized with am.minimize.

``am.torch.function_factory`` returns ``(func, params)``: ``func(params)`` evaluates the
model with ``torch.func.functional_call``, so the model is neither copied nor stripped of
its parameters (autograd-minimize's ``torch_function_factory`` deleted them). The solution
is loaded back with ``am.torch.load_params``. Here a small float32 MLP is fitted to a 1-D
curve with trust-exact (exact Hessians) and with L-BFGS-B under a bound on the output bias.

Run with ``python examples/torch_function_factory.py``.
"""

from __future__ import annotations

import torch

import autominimize as am


def curve(n: int = 80) -> tuple[torch.Tensor, torch.Tensor]:
    X = torch.linspace(-2.0, 2.0, n).unsqueeze(1)
    return X, torch.tanh(2.0 * X) + 0.1 * X


def new_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def main() -> dict[str, float]:
    X, y = curve()
    report = {}
    for label, kwargs in (
        ("trust-exact", dict(method="trust-exact", options={"gtol": 1e-6})),
        ("L-BFGS-B, output bias <= 0", dict(method="L-BFGS-B", bounds={"2.bias": (None, 0.0)})),
    ):
        model = new_model()
        func, params = am.torch.function_factory(model, torch.nn.functional.mse_loss, X, y)
        result = am.minimize(func, params, **kwargs)
        am.torch.load_params(model, result.x)  # the model was untouched until now
        with torch.no_grad():
            report[label] = torch.nn.functional.mse_loss(model(X), y).item()
        print(
            f"{label:<28} mse {report[label]:.2e}  output bias {model[2].bias.item():+.4f}  "
            f"nfev/njev/nhev {result.nfev}/{result.njev}/{result.nhev}  {model[0].weight.dtype}"
        )
    return report


if __name__ == "__main__":
    main()
