"""am.torch: the ScipyOptimizer, gngdb's MinimizeWrapper alias, function_factory, load_params."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import scipy.optimize as so

torch = pytest.importorskip("torch")

import autominimize as am  # noqa: E402

METHODS = [
    "Nelder-Mead",
    "Powell",
    "CG",
    "BFGS",
    "Newton-CG",
    "L-BFGS-B",
    "TNC",
    "COBYLA",
    "COBYQA",
    "SLSQP",
    "trust-constr",
    "dogleg",
    "trust-ncg",
    "trust-exact",
    "trust-krylov",
]
DERIVATIVE_FREE = {"Nelder-Mead", "Powell", "COBYLA", "COBYQA"}
#: enough iterations for the derivative-free methods on 4 parameters
OPTIONS = {
    "Nelder-Mead": {"maxiter": 4000, "xatol": 1e-8, "fatol": 1e-12},
    "Powell": {"xtol": 1e-8, "ftol": 1e-12},
    "COBYLA": {"maxiter": 4000, "rhobeg": 0.5, "tol": 1e-9},
    "SLSQP": {"ftol": 1e-10},  # its default 1e-6 is on f, which ends near 1e-7 here
}
#: short budgets for comparing counts: equal counts need equal paths, not convergence
BUDGETS = {"TNC": {"maxfun": 60}, "Powell": {"maxfev": 150}, "COBYQA": {"maxfev": 60}}
TRUE_W, TRUE_B = [1.0, -2.0, 0.5], 0.3


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """These models are tiny: extra intra-op threads only contend (6x slower on 2 busy cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def regression_data(dtype=torch.float32):
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(40, 3, generator=generator, dtype=dtype)
    y = X @ torch.tensor(TRUE_W, dtype=dtype) + TRUE_B
    return X, y


def linear_model(dtype=torch.float32):
    torch.manual_seed(0)
    return torch.nn.Linear(3, 1).to(dtype)


def mlp(dtype=torch.float64):
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1)).to(dtype)


def classification_data(dtype=torch.float64):
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(60, 4, generator=generator, dtype=dtype)
    y = (X @ torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=dtype) > 0).to(dtype)
    return X, y


def mlp_loss(output, y, params):
    bce = torch.nn.functional.binary_cross_entropy_with_logits(output.squeeze(1), y)
    return bce + 1e-2 * sum((p**2).sum() for p in params)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_fits_a_float32_model_in_place(method):
    X, y = regression_data()
    model = linear_model()
    weight, storage = model.weight, model.weight.data_ptr()
    optimizer = am.torch.ScipyOptimizer(model.parameters(), method=method, options=OPTIONS.get(method))

    def closure():
        return torch.mean((model(X).squeeze(1) - y) ** 2)

    loss = optimizer.step(closure)
    atol = 1e-3 if method in DERIVATIVE_FREE else 1e-4
    np.testing.assert_allclose(model.weight.detach().numpy().ravel(), TRUE_W, atol=atol)
    np.testing.assert_allclose(model.bias.item(), TRUE_B, atol=atol)
    assert model.weight is weight and model.weight.data_ptr() == storage  # updated in place
    assert model.weight.dtype == torch.float32 and model.weight.device.type == "cpu"
    assert loss.dtype == torch.float32 and loss.ndim == 0
    assert loss.item() == pytest.approx(optimizer.result.fun, rel=1e-6, abs=1e-12)
    held = torch.cat([model.weight.flatten(), model.bias]).detach().numpy()
    np.testing.assert_array_equal(optimizer.result.x.astype(np.float32), held)  # res.x, rounded
    assert optimizer.result.backend == "torch" and optimizer.result.precision == "float32"
    if method in DERIVATIVE_FREE:
        assert model.weight.grad is None and optimizer.result.njev == 0
    else:
        assert model.weight.grad.dtype == torch.float32 and optimizer.result.njev > 0


def count_tuple(result):
    return result.nfev, result.njev, result.nhev, result.nhvp


# trust-ncg and trust-krylov go through a Closure object: with a plain closure they re-run it
# at the trust-region centre after a rejected step (its graph saved overwritten parameters),
# one more evaluation than am.minimize, which keeps a separate graph per point.
@pytest.mark.parametrize("method", [m for m in METHODS if m not in ("trust-ncg", "trust-krylov")])
def test_counts_match_am_minimize_on_the_same_problem(method):
    X, y = classification_data()
    options = BUDGETS.get(method, {"maxiter": 60})
    model = mlp()
    names = [name for name, _ in model.named_parameters()]

    def fun(params):
        return mlp_loss(torch.func.functional_call(model, dict(zip(names, params)), (X,)), y, params)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's own warnings (e.g. "CG iterations didn't converge")
        reference = am.minimize(fun, [p.detach().clone() for p in model.parameters()], method=method, options=options, unpack="none")
        optimizer = am.torch.ScipyOptimizer(model.parameters(), method=method, options=options)
        optimizer.step(lambda: mlp_loss(model(X), y, list(model.parameters())))
    assert count_tuple(optimizer.result) == count_tuple(reference)
    assert optimizer.result.fun == pytest.approx(reference.fun, rel=1e-10)
    np.testing.assert_allclose(optimizer.result.x, np.concatenate([p.numpy().ravel() for p in reference.x]), rtol=1e-8, atol=1e-10)
    if method not in DERIVATIVE_FREE:
        assert optimizer.result.njev > 0


class Closure:
    """gngdb's Closure object, as its README and tests write it: a static loss(model)."""

    X = y = None  # the data; loss is static, as in gngdb

    def __init__(self, model, optimizer):
        self.model, self.optimizer = model, optimizer
        self.calls = 0

    @staticmethod
    def loss(model):
        return mlp_loss(model(Closure.X), Closure.y, list(model.parameters()))

    def __call__(self):
        self.calls += 1
        self.optimizer.zero_grad()
        loss = self.loss(self.model)
        loss.backward()
        self._loss = loss.item()
        return loss


@pytest.mark.parametrize("method", ["Newton-CG", "trust-ncg", "trust-krylov", "trust-exact", "L-BFGS-B", "Nelder-Mead"])
def test_closure_objects_count_like_am_minimize_and_never_deepcopy(method, monkeypatch):
    X, y = classification_data()
    Closure.X, Closure.y = X, y
    model = mlp()
    names = [name for name, _ in model.named_parameters()]
    params_before = list(model.parameters())

    def fun(params):
        return mlp_loss(torch.func.functional_call(model, dict(zip(names, params)), (X,)), y, params)

    reference = am.minimize(fun, [p.detach().clone() for p in params_before], method=method, options={"maxiter": 30}, unpack="none")

    def refuse(*args, **kwargs):
        raise AssertionError("the model was deep-copied")

    monkeypatch.setattr(copy, "deepcopy", refuse)
    monkeypatch.setattr(torch.nn.Module, "__deepcopy__", refuse, raising=False)
    optimizer = am.torch.MinimizeWrapper(model.parameters(), dict(method=method, options={"maxiter": 30}))
    closure = Closure(model, optimizer)
    loss = optimizer.step(closure)
    assert count_tuple(optimizer.res) == count_tuple(reference)
    assert loss.item() == pytest.approx(reference.fun, rel=1e-10)
    assert all(p is q for p, q in zip(model.parameters(), params_before))  # the same objects, updated
    np.testing.assert_allclose(model[0].weight.detach().numpy(), reference.x[0].numpy(), rtol=1e-8, atol=1e-10)
    # first-order methods run the closure itself; second-order and derivative-free ones loss(model),
    # and then the closure once at the solution (what it records is the solution's)
    assert closure.calls > 1 if method == "L-BFGS-B" else closure.calls == 1


def test_a_closure_calling_backward_gives_the_same_solve_and_leaves_the_solution_gradient():
    X, y = classification_data()
    results = []
    for calls_backward in (False, True):
        model = mlp()
        optimizer = am.torch.ScipyOptimizer(model.parameters(), method="L-BFGS-B")

        def closure():
            optimizer.zero_grad()
            loss = mlp_loss(model(X), y, list(model.parameters()))
            if calls_backward:
                loss.backward()
            return loss

        optimizer.step(closure)
        results.append((optimizer.result, [p.grad.clone() for p in model.parameters()]))
        expected = torch.autograd.grad(mlp_loss(model(X), y, list(model.parameters())), list(model.parameters()))
        for got, want in zip(results[-1][1], expected):
            torch.testing.assert_close(got, want)
    (plain, _), (backward, _) = results
    assert count_tuple(plain) == count_tuple(backward)
    np.testing.assert_array_equal(plain.x, backward.x)


def test_derivative_free_methods_compute_no_gradient():
    X, y = regression_data()
    model = linear_model()
    backward_passes = []
    for p in model.parameters():
        p.register_hook(lambda grad: backward_passes.append(grad))
    grad_mode = []
    optimizer = am.torch.ScipyOptimizer(model.parameters(), method="Powell")

    def closure():
        grad_mode.append(torch.is_grad_enabled())
        return torch.mean((model(X).squeeze(1) - y) ** 2)

    optimizer.step(closure)
    assert backward_passes == [] and not any(grad_mode)
    assert len(grad_mode) == optimizer.result.nfev > 0


def test_a_backward_calling_closure_still_works_with_derivative_free_methods_with_a_warning():
    X, y = regression_data()
    model = linear_model()
    optimizer = am.torch.MinimizeWrapper(model.parameters(), dict(method="Nelder-Mead", jac=False, options=OPTIONS["Nelder-Mead"]))
    calls = []

    def closure():
        calls.append(1)
        optimizer.zero_grad()
        loss = torch.mean((model(X).squeeze(1) - y) ** 2)
        loss.backward()
        return loss

    with pytest.warns(UserWarning, match="torch.is_grad_enabled"):
        optimizer.step(closure)
    np.testing.assert_allclose(model.bias.item(), TRUE_B, atol=1e-3)
    assert optimizer.res.nfev == len(calls)  # the aborted first run is counted too


def test_second_order_methods_refuse_a_closure_that_calls_backward():
    X, y = regression_data()
    model = linear_model()
    start = [p.detach().clone() for p in model.parameters()]
    optimizer = am.torch.ScipyOptimizer(model.parameters(), method="trust-ncg")

    def closure():
        optimizer.zero_grad()
        loss = torch.mean((model(X).squeeze(1) - y) ** 2)
        loss.backward()
        return loss

    with pytest.raises(ValueError, match="Return the loss without calling backward.*Closure object"):
        optimizer.step(closure)
    for p, p0 in zip(model.parameters(), start):  # restored after the failure
        torch.testing.assert_close(p.detach(), p0)


def test_float32_works_with_tnc_and_slsqp_where_gngdb_failed():
    X, y = regression_data()
    for method in ("TNC", "SLSQP"):
        model = linear_model()
        optimizer = am.torch.MinimizeWrapper(model.parameters(), dict(method=method, options=OPTIONS.get(method)))
        optimizer.step(lambda: torch.mean((model(X).squeeze(1) - y) ** 2))
        assert optimizer.res.success and model.weight.dtype == torch.float32
        np.testing.assert_allclose(model.weight.detach().numpy().ravel(), TRUE_W, atol=1e-4)


def test_minimize_wrapper_keeps_scipy_defaults_and_its_arguments():
    X, y = classification_data()
    model = mlp()
    minimizer_args = dict(method="BFGS")
    optimizer = am.torch.MinimizeWrapper(model.parameters(), minimizer_args)
    loss = optimizer.step(lambda: mlp_loss(model(X), y, list(model.parameters())))
    assert minimizer_args == dict(method="BFGS")  # not mutated
    assert optimizer.res.success and optimizer.res.nit > 2  # gngdb stopped after maxiter=2
    assert isinstance(loss, torch.Tensor) and loss.item() == pytest.approx(optimizer.res.fun)


def test_jac_false_asks_scipy_for_finite_differences():
    X, y = regression_data(torch.float64)
    model = linear_model(torch.float64)
    optimizer = am.torch.MinimizeWrapper(model.parameters(), dict(method="L-BFGS-B", jac=False))
    optimizer.step(lambda: torch.mean((model(X).squeeze(1) - y) ** 2))
    assert optimizer.res.njev == 0 and optimizer.res.nfev > 5 * optimizer.res.nit
    np.testing.assert_allclose(model.bias.item(), TRUE_B, atol=1e-5)


def test_bounds_in_every_form_hold_the_solution():
    X, y = regression_data(torch.float64)
    model = linear_model(torch.float64)
    forms = [
        (-1.0, 0.4),  # every parameter
        {model.weight: (-1.0, [0.4, 0.4, 0.4])},  # by tensor, TF1 broadcasting
        [(-1.0, 0.4), None],  # one entry per parameter
        so.Bounds(-1.0, [0.4, 0.4, 0.4, np.inf]),  # the flat vector
    ]
    for bounds in forms:
        with torch.no_grad():
            model.weight.fill_(0.0)
            model.bias.fill_(0.0)
        optimizer = am.torch.ScipyOptimizer(model.parameters(), method="L-BFGS-B", bounds=bounds)
        optimizer.step(lambda: torch.mean((model(X).squeeze(1) - y) ** 2))
        w = model.weight.detach().numpy().ravel()
        assert w.min() >= -1.0 and w.max() <= 0.4 + 1e-12
        assert w[0] == pytest.approx(0.4) and w[1] == pytest.approx(-1.0)  # both bounds active


def test_param_groups_carry_their_own_bounds_and_frozen_parameters_stay():
    X, y = regression_data(torch.float64)
    model = linear_model(torch.float64)
    frozen = torch.nn.Parameter(torch.tensor([5.0], dtype=torch.float64), requires_grad=False)
    optimizer = am.torch.ScipyOptimizer(
        [{"params": [model.weight, frozen], "bounds": [(None, 0.0), None]}, {"params": [model.bias]}], method="L-BFGS-B"
    )
    with pytest.warns(UserWarning, match=r"outside the bounds at params\[0\]\[0, 1\]; it was clipped"):
        optimizer.step(lambda: torch.mean((model(X).squeeze(1) - y) ** 2))
    assert model.weight.max().item() <= 0.0 and frozen.item() == 5.0
    assert optimizer.result.x.size == 4 and frozen.grad is None


def test_constraints_read_the_parameters_and_get_autograd_jacobians():
    X, y = regression_data(torch.float64)
    for method in ("SLSQP", "trust-constr"):
        model = linear_model(torch.float64)
        constraints = [
            {"type": "eq", "fun": lambda: model.weight.sum() - 1.0},
            {"type": "ineq", "fun": lambda: model.bias - 1.0},  # bias >= 1
        ]
        optimizer = am.torch.ScipyOptimizer(model.parameters(), method=method, constraints=constraints)
        optimizer.step(lambda: torch.mean((model(X).squeeze(1) - y) ** 2))
        assert model.weight.sum().item() == pytest.approx(1.0, abs=1e-6)
        # trust-constr's interior point stays a little inside an active inequality
        assert model.bias.item() == pytest.approx(1.0, abs=1e-6 if method == "SLSQP" else 1e-3)
        assert model.bias.item() >= 1.0 - 1e-8
        evaluations = optimizer.result.constraint_evaluations
        assert all(entry["njev"] > 0 for entry in evaluations)
        if method == "trust-constr":
            assert evaluations[0]["nhev"] > 0


def test_bad_input_names_the_argument():
    model = linear_model()
    with pytest.raises(ValueError, match="method='newton' is not a scipy"):
        am.torch.ScipyOptimizer(model.parameters(), method="newton")
    with pytest.raises(TypeError, match="options must be a dict"):
        am.torch.ScipyOptimizer(model.parameters(), options=5)
    optimizer = am.torch.ScipyOptimizer(model.parameters(), method="BFGS", bounds=(0, 1))
    with pytest.raises(ValueError, match="cannot handle bounds"):
        optimizer.step(lambda: model.weight.sum())
    with pytest.raises(TypeError, match="step needs closure"):
        am.torch.ScipyOptimizer(model.parameters()).step(None)
    with pytest.raises(TypeError, match="must take no arguments"):
        am.torch.ScipyOptimizer(model.parameters(), method="SLSQP", constraints={"type": "eq", "fun": lambda x: x[0]}).step(
            lambda: model.weight.sum()
        )
    with pytest.raises(am.BoundsError, match="map parameters of this optimizer"):
        am.torch.ScipyOptimizer(model.parameters(), bounds={torch.zeros(1): (0, 1)}).step(lambda: model.weight.sum())
    with pytest.raises(TypeError, match="minimizer_args must be a dict with at least 'method'"):
        am.torch.MinimizeWrapper(model.parameters(), dict(options={}))
    with pytest.raises(ValueError, match=r"unknown keys \['hess'\]"):
        am.torch.MinimizeWrapper(model.parameters(), dict(method="CG", hess=True))
    with pytest.raises(ValueError, match="the closure returned None"):
        am.torch.ScipyOptimizer(model.parameters()).step(lambda: None)
    with pytest.raises(ValueError, match="loss carries no gradient"):
        am.torch.ScipyOptimizer(model.parameters()).step(lambda: model.weight.sum().item())


def test_a_failing_closure_restores_the_parameters():
    model = linear_model()
    start = model.weight.detach().clone()
    calls = []

    def closure():
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("data loader died")
        return (model.weight**2).sum()

    with pytest.raises(RuntimeError, match="data loader died"):
        am.torch.ScipyOptimizer(model.parameters()).step(closure)
    torch.testing.assert_close(model.weight.detach(), start)


def test_function_factory_leaves_the_model_intact_and_load_params_writes_back():
    X, y = regression_data()
    model = linear_model()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    func, params = am.torch.function_factory(model, torch.nn.functional.mse_loss, X.numpy(), y[:, None].numpy())
    assert set(params) == {"weight", "bias"} and params["weight"].dtype == torch.float32
    result = am.minimize(func, params, method="trust-exact")
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    weight = model.weight
    am.torch.load_params(model, result.x)
    assert model.weight is weight and model.weight.dtype == torch.float32
    np.testing.assert_allclose(model.weight.detach().numpy().ravel(), TRUE_W, atol=1e-5)
    # the same solve through the optimizer lands on the same weights
    other = linear_model()
    optimizer = am.torch.ScipyOptimizer(other.parameters(), method="trust-exact")
    optimizer.step(lambda: torch.nn.functional.mse_loss(other(X), y[:, None]))
    np.testing.assert_allclose(optimizer.result.x, np.concatenate([result.x["weight"].numpy().ravel(), result.x["bias"].numpy()]), atol=1e-5)


def test_load_params_accepts_dicts_sequences_and_flat_vectors():
    model = linear_model()
    am.torch.load_params(model, {"bias": np.array([7.0])})
    assert model.bias.item() == 7.0
    am.torch.load_params(model, [np.ones((1, 3)), torch.tensor([2.0])])
    assert model.weight.sum().item() == 3.0 and model.bias.item() == 2.0
    am.torch.load_params(model, np.arange(4.0))
    assert model.weight.flatten().tolist() == [0.0, 1.0, 2.0] and model.bias.item() == 3.0
    with pytest.raises(KeyError, match="not trainable parameters"):
        am.torch.load_params(model, {"kernel": np.ones(3)})
    with pytest.raises(ValueError, match="flat vector of 5 numbers; model has 4"):
        am.torch.load_params(model, np.ones(5))
    with pytest.raises(ValueError, match=r"values\['weight'\] has shape \(3,\)"):
        am.torch.load_params(model, {"weight": np.ones(3)})


def _recorded_counts(history):
    kinds = [e.kind for e in history.evaluations]
    return {
        "nfev": sum(kind in ("value", "value_and_gradient", "repeat") for kind in kinds),
        "njev": sum(kind in ("value_and_gradient", "gradient") for kind in kinds),
        "nhev": kinds.count("hessian"),
        "nhvp": kinds.count("hvp"),
    }


@pytest.mark.parametrize("method", ["L-BFGS-B", "BFGS", "Newton-CG", "trust-ncg", "trust-exact", "trust-krylov"])
def test_history_records_every_closure_run_and_iteration(method):
    X, y = regression_data(torch.float64)
    model = linear_model(torch.float64)
    optimizer = am.torch.ScipyOptimizer(model.parameters(), method=method)
    optimizer.step(lambda: torch.mean((model(X).squeeze(1) - y) ** 2))
    result = optimizer.result
    assert _recorded_counts(result.history) == {key: result[key] for key in ("nfev", "njev", "nhev", "nhvp")}
    assert [it.nit for it in result.history.iterations] == list(range(1, result.nit + 1))
    assert result.history.iterations[-1].f == pytest.approx(result.fun)
    np.testing.assert_allclose(result.history.iterations[-1].x, result.x)
    assert [name for name, _, _ in result.history.leaves] == ["params[0]", "params[1]"]


def test_optimizer_log_gets_one_run_per_step_and_history_false_records_nothing(tmp_path):
    X, y = regression_data(torch.float64)
    model = linear_model(torch.float64)
    path = tmp_path / "torch.sqlite"
    optimizer = am.torch.ScipyOptimizer(model.parameters(), method="L-BFGS-B", options={"maxiter": 3}, log=path, history=False)

    def closure():
        return torch.mean((model(X).squeeze(1) - y) ** 2)

    optimizer.step(closure)
    first = optimizer.result
    optimizer.step(closure)
    assert "history" not in optimizer.result
    runs = [am.read_log(path, run=k) for k in (1, 2)]
    assert [(run.method, run.backend, run.precision) for run in runs] == [("l-bfgs-b", "torch", "float64")] * 2
    assert len(runs[0].history.evaluations) == first.nfev and len(runs[0].history.iterations) == first.nit == 3
    assert runs[1].best_f == pytest.approx(optimizer.result.fun)
    assert runs[1].success is False and "ITERATIONS REACHED LIMIT" in runs[1].message  # maxiter=3
    np.testing.assert_allclose(runs[1].best_x, optimizer.result.x)
    wrapper = am.torch.MinimizeWrapper(model.parameters(), {"method": "BFGS", "log": path})
    wrapper.step(closure)
    assert am.read_log(path).method == "bfgs" and wrapper.res.history.iterations


def test_closure_runs_repeated_after_a_rejected_trust_step_are_recorded_as_repeats():
    w = torch.nn.Parameter(torch.tensor([-1.2, 1.0, -0.5, 0.8], dtype=torch.float64))
    optimizer = am.torch.ScipyOptimizer([w], method="trust-ncg")
    optimizer.step(lambda: (100 * (w[1:] - w[:-1] ** 2) ** 2 + (1 - w[:-1]) ** 2).sum())
    result = optimizer.result
    kinds = [e.kind for e in result.history.evaluations]
    # a rejected trial overwrites the parameters: the HVPs at the centre need the closure again
    assert kinds.count("repeat") > 0
    assert _recorded_counts(result.history) == {key: result[key] for key in ("nfev", "njev", "nhev", "nhvp")}


def test_ctrl_c_ends_the_step_at_the_best_point_as_in_minimize():
    import _thread

    w = torch.nn.Parameter(torch.tensor([3.0, -1.0, 2.0], dtype=torch.float64))
    scale = torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64)
    optimizer = am.torch.ScipyOptimizer([w], method="BFGS")
    runs = []

    def closure():
        runs.append(1)
        if len(runs) == 6:
            _thread.interrupt_main()  # what a SIGINT does to the main thread
        return (scale * (w - 1.0) ** 2).sum()

    loss = optimizer.step(closure)
    result = optimizer.result
    assert (result.success, result.status) == (False, -1) and "KeyboardInterrupt" in result.message
    assert float(loss) == result.fun < 144.0  # f at the start
    np.testing.assert_allclose(w.detach().numpy(), result.x)
