"""gngdb/pytorch-minimize's code as its users wrote it, with only the import changed.

From its README (``MinimizeWrapper(model.parameters(), minimizer_args)``, a closure that calls
``backward``), its tests (a ``Closure`` object with a static ``loss(model)`` whose ``__call__``
records ``_loss``) and its global wrappers with a closure that computes the loss under
``torch.no_grad()``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.optimize as so

torch = pytest.importorskip("torch")
import autominimize.torch as amt  # noqa: E402

torch.manual_seed(0)
X = torch.randn(30, 3, dtype=torch.float64)
Y = X @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64) + 0.3


def _model() -> torch.nn.Module:
    torch.manual_seed(1)
    return torch.nn.Linear(3, 1).double()


def test_readme_closure_and_optimizer_res():
    model = _model()
    loss_fn = torch.nn.MSELoss()
    optimizer = amt.MinimizeWrapper(model.parameters(), dict(method="CG", options={"disp": False, "maxiter": 100}))

    def closure():
        optimizer.zero_grad()
        loss = loss_fn(model(X), Y)
        loss.backward()
        return loss

    optimizer.step(closure)
    assert optimizer.res is optimizer.result and optimizer.res.success
    assert optimizer.res.fun < 1e-12


class Closure:
    """gngdb's tests' closure: ``loss(model)`` for Hessians, ``__call__`` for the optimizer."""

    def __init__(self, model, optimizer_ref):
        self.model = model
        self.optimizer_ref = optimizer_ref
        self.calls = 0

    @staticmethod
    def loss(model):
        return torch.nn.functional.mse_loss(model(X), Y)

    def __call__(self):
        self.calls += 1
        self.optimizer_ref[0].zero_grad()
        loss = self.loss(self.model)
        loss.backward()
        self._loss = loss.item()
        return loss


@pytest.mark.parametrize("method", ["Newton-CG", "trust-ncg", "trust-exact", "BFGS"])
def test_closure_object_is_called_at_the_solution(method):
    model = _model()
    ref: list = []
    optimizer = amt.MinimizeWrapper(model.parameters(), dict(method=method, jac=True, tol=1e-10))
    ref.append(optimizer)
    closure = Closure(model, ref)
    returned = optimizer.step(closure)
    assert closure.calls >= 1
    assert closure._loss == pytest.approx(optimizer.res.fun, rel=1e-12, abs=1e-15)
    assert float(returned) == pytest.approx(closure._loss, rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(model.weight.detach().numpy().ravel(), [1.0, -2.0, 0.5], atol=1e-5)


def _no_grad_closure(model):
    def closure():
        with torch.no_grad():
            return torch.nn.functional.mse_loss(model(X), Y)

    return closure


def test_no_grad_closure_under_differential_evolution():
    model = _model()
    optimizer = amt.DifferentialEvolutionWrapper(model.parameters(), {"bounds": (-3.0, 3.0), "maxiter": 60, "rng": 0})
    loss = optimizer.step(_no_grad_closure(model))
    res = optimizer.res
    assert float(loss) == pytest.approx(res.fun) and res.fun < 1e-6
    assert res.local_gradient == "finite differences" and "finite differences" in res.message
    np.testing.assert_allclose(model.weight.detach().numpy().ravel(), [1.0, -2.0, 0.5], atol=1e-3)


@pytest.mark.parametrize(
    "make",
    [
        lambda params: amt.DualAnnealingWrapper(params, None, {"bounds": (-3.0, 3.0), "maxiter": 30, "rng": 0}),
        lambda params: amt.DifferentialEvolution(params, bounds=(-3.0, 3.0), maxiter=20, polish=False, rng=0),
    ],
    ids=["dual-annealing", "de-no-polish"],
)
def test_no_grad_closure_under_other_derivative_free_solvers(make):
    model = _model()
    optimizer = make(model.parameters())
    optimizer.step(_no_grad_closure(model))
    assert np.isfinite(optimizer.res.fun) and optimizer.res.fun < 1.0


def test_maxiter_for_a_method_without_it_warns_as_scipy_does():
    model = _model()
    optimizer = amt.MinimizeWrapper(model.parameters(), dict(method="TNC", options={"maxiter": 50}))
    closure = Closure(model, [optimizer])
    with pytest.warns(so.OptimizeWarning, match="maxiter"):
        optimizer.step(closure)
    assert optimizer.res.fun < 1e-8


def test_an_option_no_method_knows_is_an_error_with_a_suggestion():
    model = _model()
    optimizer = amt.MinimizeWrapper(model.parameters(), dict(method="BFGS", options={"maxiterr": 5}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"'maxiterr' is not an option of any scipy.optimize.minimize method; did you mean 'maxiter'"):
            optimizer.step(Closure(model, [optimizer]))
