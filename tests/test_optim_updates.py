"""am.optim: the updates interface, KeyError on collision, optax and torch adapters."""

from __future__ import annotations

import numpy as np
import pytest

import autominimize as am

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402


def test_updates_keyerror_on_collision():
    assert am.optim.merge_updates({"a": 1}, {"p": 2}) == {"a": 1, "p": 2}
    with pytest.raises(KeyError, match="'p'"):
        am.optim.merge_updates({"p": 1}, {"p": 2})


def test_sgd_updates_example_of_the_seed_document():
    """sgd([p], gradients=[g], step_size=.1) returns {p: p - .1*g}."""
    opt = am.optim.sgd(lr=0.1)
    params, grads = {"p": np.array([1.0, 2.0])}, {"p": np.array([0.5, -1.0])}
    updates, _ = opt.update(grads, opt.init(params), params)
    assert np.allclose(am.optim.apply_updates(params, updates)["p"], params["p"] - 0.1 * grads["p"])


def test_momentum_matches_torch_sgd():
    """With constant η our CM and NAG iterates equal torch.optim.SGD's (note §3.1)."""
    for nesterov in (False, True):
        w_torch = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
        reference = torch.optim.SGD([w_torch], lr=0.05, momentum=0.9, nesterov=nesterov)
        opt = am.optim.sgd(lr=0.05, momentum=0.9, nesterov=nesterov)
        params = {"w": torch.tensor([1.0, -2.0], dtype=torch.float64)}
        state = opt.init(params)
        scale = torch.tensor([1.0, 10.0], dtype=torch.float64)
        for _ in range(30):
            reference.zero_grad()
            (0.5 * (scale * w_torch**2).sum()).backward()
            reference.step()
            updates, state = opt.update({"w": scale * params["w"]}, state, params)
            params = am.optim.apply_updates(params, updates)
        assert torch.allclose(params["w"], w_torch.detach(), atol=1e-12, rtol=0)


def test_updates_keep_structure_and_mixed_dtypes():
    opt = am.optim.delta_bar_delta(lr=0.1)
    params = {"a": np.ones(2, dtype=np.float32), "b": (np.ones((2, 2)), np.float64(3.0))}
    state = opt.init(params)
    updates, state = opt.update(params, state, params)
    new = am.optim.apply_updates(params, updates)
    assert new["a"].dtype == np.float32 and new["b"][0].dtype == np.float64 and new["b"][0].shape == (2, 2)
    assert np.allclose(new["b"][0], 0.9) and np.allclose(new["a"], 0.9)


def test_lbfgs_updates_need_value_and_grad_fn():
    rosen = lambda p: 100 * (p["x"][1] - p["x"][0] ** 2) ** 2 + (1 - p["x"][0]) ** 2  # noqa: E731
    with jax.enable_x64(True):
        value_and_grad = jax.value_and_grad(rosen)
        opt = am.optim.lbfgs()
        params = {"x": jnp.array([-1.2, 1.0])}
        state = opt.init(params)
        with pytest.raises(ValueError, match="value_and_grad_fn"):
            opt.update(value_and_grad(params)[1], state, params)
        for _ in range(40):
            value, grads = value_and_grad(params)
            updates, state = opt.update(grads, state, params, value=value, value_and_grad_fn=value_and_grad)
            params = am.optim.apply_updates(params, updates)
        assert np.allclose(params["x"], 1.0, atol=1e-6)


def _mlp_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3))
    y = np.sin(x @ np.array([1.0, -0.5, 0.3]))[:, None]
    return x, y


def test_optax_adapter_trains_a_small_model():
    import optax

    x, y = _mlp_data()
    key = jax.random.PRNGKey(0)
    params = {"w1": 0.5 * jax.random.normal(key, (3, 16)), "b1": jnp.zeros(16), "w2": 0.5 * jax.random.normal(key, (16, 1))}

    def loss(p):
        return jnp.mean((jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] - y) ** 2)

    tx = optax.chain(optax.clip_by_global_norm(10.0), am.optim.as_optax(am.optim.sgd(lr=0.1, momentum=0.9)))
    state = tx.init(params)
    start = float(loss(params))
    for _ in range(200):
        grads = jax.grad(loss)(params)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    assert float(loss(params)) < 0.1 * start

    tx = am.optim.as_optax(am.optim.lbfgs())
    params = {"w1": 0.5 * jax.random.normal(key, (3, 16)), "b1": jnp.zeros(16), "w2": 0.5 * jax.random.normal(key, (16, 1))}
    state = tx.init(params)
    for _ in range(30):
        value, grads = jax.value_and_grad(loss)(params)
        updates, state = tx.update(grads, state, params, value=value, value_fn=loss)
        params = optax.apply_updates(params, updates)
    assert float(loss(params)) < 0.05 * start


@pytest.mark.parametrize(
    "make, steps",
    [(lambda: am.optim.lbfgs(), 40), (lambda: am.optim.delta_bar_delta(lr=0.05, kappa=0.005), 300), (lambda: am.optim.hessian_free(), 15)],
)
def test_torch_optimizer_trains_a_small_model(make, steps):
    from autominimize.optim.torch_optimizer import Optimizer

    torch.manual_seed(0)
    x, y = (torch.as_tensor(a) for a in _mlp_data())
    model = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()
    optimizer = Optimizer(model.parameters(), make())
    assert isinstance(optimizer, torch.optim.Optimizer)

    def closure():
        optimizer.zero_grad()
        loss = torch.mean((model(x) - y) ** 2)
        loss.backward()
        return loss

    start = float(closure().detach())
    for _ in range(steps):
        optimizer.step(closure)
    assert float(closure().detach()) < 0.1 * start


def test_torch_optimizer_follows_lr_scheduler_and_needs_closure_for_line_search():
    from autominimize.optim.torch_optimizer import Optimizer

    w = torch.nn.Parameter(torch.ones(1, dtype=torch.float64))
    optimizer = Optimizer([w], am.optim.sgd(lr=0.1))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    for _ in range(2):
        optimizer.zero_grad()
        (w**2).sum().backward()
        optimizer.step()
        scheduler.step()
    assert float(w.detach()) == pytest.approx(0.8 * 0.9)
    with pytest.raises(ValueError, match="step\\(closure\\)"):
        Optimizer([w], am.optim.lbfgs()).step()


@pytest.mark.parametrize("framework", ["numpy", "torch", "jax"])
def test_an_update_that_would_reshape_its_parameter_is_refused(framework):
    """p + u broadcasts: an update of another shape would silently change the parameter's."""
    module = {"numpy": np, "torch": pytest.importorskip("torch"), "jax": pytest.importorskip("jax.numpy")}[framework]
    params = {"w": module.ones(2)}
    with pytest.raises(ValueError, match=r"updates: an update of shape \(3, 2\) for a parameter of shape \(2,\)"):
        am.optim.apply_updates(params, {"w": module.ones((3, 2))})
    assert am.optim.apply_updates(params, {"w": module.ones(2)})["w"].shape == (2,)
