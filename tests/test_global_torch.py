"""Global optimizers as torch optimizers over model.parameters(), and gngdb's aliases."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from autominimize.integrations import torch_global as tg  # noqa: E402


def _model_and_closure(backward: bool = False):
    model = torch.nn.Linear(2, 1).double()
    with torch.no_grad():
        model.weight.fill_(1.5)
        model.bias.fill_(-2.0)

    def closure():
        x = torch.cat([model.weight.flatten(), model.bias])
        loss = 30 + torch.sum(x**2 - 10 * torch.cos(2 * torch.pi * x))  # Rastrigin, minimum 0 at 0
        if backward and torch.is_grad_enabled():
            loss.backward()
        return loss

    return model, closure


CASES = [
    (tg.BasinHopping, lambda p: dict(niter=30, stepsize=1.5, rng=0, bounds=(-5.12, 5.12))),
    (tg.DifferentialEvolution, lambda p: dict(bounds=(-5.12, 5.12), rng=0)),
    (tg.SHGO, lambda p: dict(bounds=(-5.12, 5.12))),
    (tg.DualAnnealing, lambda p: dict(bounds=(-5.12, 5.12), rng=0, maxiter=200)),
    (
        tg.BasinHoppingWrapper,
        lambda p: dict(minimizer_args={"method": "L-BFGS-B", "jac": True}, basinhopping_kwargs={"niter": 30, "stepsize": 1.5, "rng": 0}),
    ),
    (tg.DifferentialEvolutionWrapper, lambda p: dict(de_kwargs={"bounds": [(-5.12, 5.12)] * 3, "rng": 0})),
    (tg.SHGOWrapper, lambda p: dict(minimizer_args={"method": "SLSQP"}, shgo_kwargs={"bounds": [(-5.12, 5.12)] * 3})),
    (
        tg.DualAnnealingWrapper,
        lambda p: dict(minimizer_args={"method": "L-BFGS-B", "jac": True}, da_kwargs={"bounds": [(-5.12, 5.12)] * 3, "rng": 0, "maxiter": 200}),
    ),
]


@pytest.mark.parametrize("backward", [False, True])
@pytest.mark.parametrize("cls, kwargs", CASES, ids=[c.__name__ for c, _ in CASES])
def test_step_finds_the_global_minimum_in_place(cls, kwargs, backward):
    model, closure = _model_and_closure(backward)
    weight = model.weight
    optimizer = cls(model.parameters(), **kwargs(model))
    loss = optimizer.step(closure)
    assert model.weight is weight and model.weight.dtype == torch.float64
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(model.weight.detach().numpy(), 0.0, atol=1e-4)
    assert optimizer.result.backend == "torch" and optimizer.result.nfev > 0
    assert isinstance(optimizer.result.x, list) and len(optimizer.result.x) == 2


def test_same_seed_same_parameters():
    outcomes = []
    for _ in range(2):
        model, closure = _model_and_closure()
        tg.DualAnnealing(model.parameters(), bounds=(-5.12, 5.12), rng=7, maxiter=50).step(closure)
        outcomes.append(torch.cat([model.weight.flatten(), model.bias]).detach().clone())
    assert torch.equal(outcomes[0], outcomes[1])


def test_callback_receives_tensors_and_errors_restore_the_parameters():
    model, closure = _model_and_closure()
    seen = []
    tg.DifferentialEvolution(
        model.parameters(), bounds=(-5.12, 5.12), rng=0, maxiter=3, callback=lambda intermediate_result: seen.append(intermediate_result.x)
    ).step(closure)
    assert seen and all(isinstance(x, list) and isinstance(x[0], torch.Tensor) for x in seen)

    model, _ = _model_and_closure()

    def failing():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        tg.DualAnnealing(model.parameters(), bounds=(-1, 1), rng=0).step(failing)
    assert model.weight.detach().numpy().tolist() == [[1.5, 1.5]]
    with pytest.raises(ValueError, match="finite bounds"):
        tg.DifferentialEvolution(model.parameters(), bounds=None).step(closure)
    with pytest.raises(TypeError, match="de_kwargs must contain 'bounds'"):
        tg.DifferentialEvolutionWrapper(model.parameters(), {"maxiter": 3})
