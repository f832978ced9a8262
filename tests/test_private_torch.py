"""PyTorch's private entry points: the fast path runs on the installed torch, and where an
entry point is missing its public fallback gives the same numbers."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.autograd import graph as autograd_graph  # noqa: E402

from autominimize.backends import private_torch  # noqa: E402
from autominimize.backends.common import NoGradientError  # noqa: E402
from autominimize.backends.torch_backend import TorchBackend  # noqa: E402
from autominimize.params import ParamSpec  # noqa: E402


def mlp_loss(p):
    inputs = torch.linspace(-1.0, 1.0, 12, dtype=p["w"].dtype).reshape(6, 2)
    return ((torch.tanh(inputs @ p["w"]) @ p["v"] - 0.5) ** 2).mean()


X0 = {"w": np.zeros((2, 3)), "v": np.zeros(3)}
X = np.random.default_rng(0).normal(size=9)


def rosen(x):
    return torch.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


@pytest.fixture
def fresh_lookup():
    private_torch._engine_run_backward.cache_clear()
    yield
    private_torch._engine_run_backward.cache_clear()


def counting(function, calls):
    def counted(*args, **kwargs):
        calls.append(1)
        return function(*args, **kwargs)

    return counted


def gradient_once(fun=mlp_loss, x0=X0, x=X):
    return TorchBackend().compile_scalar(fun, ParamSpec.from_tree(x0), "float64").value_and_grad_once(x)


def test_scalar_backward_calls_the_autograd_engine_on_this_torch(monkeypatch, fresh_lookup):
    engine, grad = [], []
    monkeypatch.setattr(autograd_graph, "_engine_run_backward", counting(autograd_graph._engine_run_backward, engine))
    monkeypatch.setattr(torch.autograd, "grad", counting(torch.autograd.grad, grad))
    gradient_once()
    assert (len(engine), len(grad)) == (1, 0)


def test_without_the_engine_entry_point_autograd_grad_gives_the_same_gradient(monkeypatch, fresh_lookup):
    f_fast, g_fast = gradient_once()
    monkeypatch.delattr(autograd_graph, "_engine_run_backward")
    private_torch._engine_run_backward.cache_clear()
    assert private_torch._engine_run_backward() is None
    f_public, g_public = gradient_once()
    assert f_fast == f_public and np.array_equal(g_fast, g_public)
    weight = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    with pytest.raises(NoGradientError):  # a loss that does not depend on x
        gradient_once(lambda x: weight * 3.0, np.zeros(2), np.ones(2))


def batched_values(points):
    batched = TorchBackend().compile_batched(rosen, ParamSpec.from_tree(np.zeros(points.shape[1])), "float64")
    return batched, [batched(points) for _ in range(3)]


def test_row_map_enters_the_functorch_primitives_after_its_first_call(monkeypatch):
    import torch._C._functorch as functorch

    levels, mapped = [], []
    monkeypatch.setattr(functorch, "_vmap_increment_nesting", counting(functorch._vmap_increment_nesting, levels))
    row_map = private_torch.RowMap(rosen)
    row_map._mapped = counting(row_map._mapped, mapped)
    rows = torch.from_numpy(np.random.default_rng(1).normal(size=(5, 4)))
    with torch.no_grad():
        outs = [row_map(rows) for _ in range(3)]
    assert len(mapped) == 1 and len(levels) == 2 and row_map._primitives
    for out in outs:
        assert torch.equal(out, torch.func.vmap(rosen)(rows))


def test_without_the_functorch_primitives_vmap_gives_the_same_values(monkeypatch):
    import torch._C._functorch as functorch

    points = np.random.default_rng(2).normal(size=(7, 4))
    _, fast = batched_values(points)
    monkeypatch.delattr(functorch, "_add_batch_dim")
    batched, public = batched_values(points)
    assert batched._mapped._primitives == ()
    for a, b in zip(fast, public):
        np.testing.assert_array_equal(a, b)
