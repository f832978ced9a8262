"""The framework integrations tried from outside: torch optimizers and model helpers, am.optim,
TF's ScipyOptimizerInterface and Keras.

Each row is one malformed call: the error must be of the expected type and its message must
name the argument and say what would be accepted (not a framework's or NumPy's text). The
tests after the tables are calls that were accepted silently or gave a wrong answer.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

import autominimize as am

torch = pytest.importorskip("torch")
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from autominimize.backends.common import ObjectiveOutputError  # noqa: E402
from autominimize.optim.torch_optimizer import Optimizer  # noqa: E402

X = torch.randn(20, 2, generator=torch.Generator().manual_seed(0))
Y = X @ torch.tensor([[1.0], [-2.0]]) + 0.5
XK = np.random.default_rng(0).normal(size=(30, 2))
YK = XK @ np.array([[1.5], [-0.5]]) + 0.2


def linear():
    torch.manual_seed(0)
    return torch.nn.Linear(2, 1)


def mse(model):
    return lambda: torch.mean((model(X) - Y) ** 2)


def scipy_step(closure=None, **kwargs):
    def call():
        model = linear()
        return am.torch.ScipyOptimizer(model.parameters(), **kwargs).step(closure(model) if closure else mse(model))

    return call


def native_step(closure):
    def call():
        model = linear()
        optimizer = Optimizer(model.parameters(), am.optim.lbfgs())
        return optimizer.step(closure(model, optimizer))

    return call


def with_backward(out):
    """A closure in torch's convention whose return value is ``out(model, loss)``."""

    def make(model, optimizer):
        def closure():
            optimizer.zero_grad()
            loss = torch.mean((model(X) - Y) ** 2)
            loss.backward()
            return out(model, loss)

        return closure

    return make


def de_step(closure):
    def call():
        model = linear()
        return am.torch.DifferentialEvolution(model.parameters(), bounds=(-3, 3), maxiter=2, rng=0).step(closure(model))

    return call


def sgd_update(params, state=None, **kwargs):
    opt = am.optim.sgd(lr=0.1, momentum=0.5)
    return lambda: opt.update(params, opt.init(params) if state is None else state, params, **kwargs)


def lbfgs_state():
    params = {"w": np.ones(2)}
    _, state = am.optim.lbfgs().update(params, None, params, value_and_grad_fn=lambda p: (float(np.sum(p["w"] ** 2) / 2), p))
    return state


def optax_lbfgs_update(**extra):
    jnp = pytest.importorskip("jax.numpy")
    tx = am.optim.as_optax(am.optim.lbfgs())
    params = {"w": jnp.ones(2)}
    return tx.update(params, tx.init(params), params, **extra)


def interface(loss=None, variable=None, **kwargs):
    v = tf.Variable([3.0, -1.0]) if variable is None else variable
    return am.tf.ScipyOptimizerInterface(loss or (lambda: tf.reduce_sum((tf.cast(v, tf.float32) - 1.0) ** 2)), var_list=[v], **kwargs)


def kmodel():
    return keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1)])


def bias_path(model):
    return model.layers[0].bias.path


#: (call, error type, message parts)
ROWS = {
    # torch.optim.Optimizer subclasses: the params argument
    "scipy params str": (lambda: am.torch.ScipyOptimizer("abc"), TypeError, ["params", "model.parameters()", "str"]),
    "scipy params object": (lambda: am.torch.ScipyOptimizer([object()]), TypeError, ["params[0]", "object", "tensor"]),
    "scipy params dict": (lambda: am.torch.ScipyOptimizer({"w": torch.zeros(2)}), TypeError, ["params", "dict", "param groups"]),
    "scipy params empty": (lambda: am.torch.ScipyOptimizer([]), ValueError, ["params", "empty", "model.parameters()"]),
    "scipy params non-leaf": (
        lambda: am.torch.ScipyOptimizer([torch.ones(2, requires_grad=True) * 2]),
        ValueError,
        ["params[0]", "leaf", "torch.nn.Parameter"],
    ),
    "native params str": (lambda: Optimizer("abc", am.optim.sgd()), TypeError, ["params", "str"]),
    "global params str": (lambda: am.torch.BasinHopping("abc"), TypeError, ["params", "str"]),
    "scipy callback not callable": (lambda: am.torch.ScipyOptimizer(linear().parameters(), callback=5), TypeError, ["callback", "callable", "int"]),
    "scipy group unknown key": (
        lambda: am.torch.ScipyOptimizer([{"params": linear().parameters(), "bound": (0, 1)}]),
        ValueError,
        ["'bound'", "param group", "'bounds'"],
    ),
    "scipy state of Adam": (
        lambda: am.torch.ScipyOptimizer(linear().parameters()).load_state_dict(torch.optim.Adam(linear().parameters()).state_dict()),
        ValueError,
        ["state_dict", "'bounds'", "ScipyOptimizer"],
    ),
    # closures that return something other than the loss
    "scipy closure complex": (scipy_step(lambda m: lambda: torch.mean((m(X) - Y) ** 2) * (1 + 1j)), ObjectiveOutputError, ["closure", "complex"]),
    "native closure None": (native_step(with_backward(lambda m, loss: None)), ObjectiveOutputError, ["closure", "None"]),
    "native closure vector": (native_step(with_backward(lambda m, loss: (m(X) - Y) ** 2)), ObjectiveOutputError, ["closure", "shape (20, 1)"]),
    "native step not callable": (lambda: Optimizer(linear().parameters(), am.optim.lbfgs()).step("abc"), TypeError, ["closure", "str"]),
    "global closure None": (de_step(lambda m: lambda: None), ObjectiveOutputError, ["closure", "None"]),
    "global closure vector": (de_step(lambda m: lambda: m(X)), ObjectiveOutputError, ["closure", "shape (20, 1)"]),
    "global closure str": (de_step(lambda m: lambda: "a"), ObjectiveOutputError, ["closure", "str"]),
    "global closure complex": (de_step(lambda m: lambda: torch.mean((m(X) - Y) ** 2) * (1 + 1j)), ObjectiveOutputError, ["closure", "complex"]),
    "scipy constraint str": (
        scipy_step(method="SLSQP", constraints={"type": "eq", "fun": lambda: "a"}),
        ObjectiveOutputError,
        ["constraint", "str", "number"],
    ),
    # function_factory and load_params
    "factory loss_fn str": (lambda: am.torch.function_factory(linear(), "mse", X, Y), TypeError, ["loss_fn", "callable", "str"]),
    "factory X str": (
        lambda: am.torch.function_factory(linear(), torch.nn.functional.mse_loss, "abc", Y),
        TypeError,
        ["X", "array of numbers", "str"],
    ),
    "factory samples": (
        lambda: am.torch.function_factory(linear(), torch.nn.functional.mse_loss, X, Y[:5]),
        ValueError,
        ["X has 20 samples", "y has 5"],
    ),
    "factory loss None": (
        lambda: am.minimize(*am.torch.function_factory(linear(), lambda out, target: None, X, Y)),
        ObjectiveOutputError,
        ["loss_fn", "None"],
    ),
    "load_params complex": (lambda: am.torch.load_params(linear(), np.array([1 + 1j, 2.0, 3.0])), TypeError, ["values", "complex", "real"]),
    "load_params NaN": (
        lambda: am.torch.load_params(linear(), {"weight": np.full((1, 2), np.nan)}),
        ValueError,
        ["values['weight']", "NaN", "finite"],
    ),
    # am.optim: functional init/update and their adapters
    "optim unknown hyperparameter": (lambda: am.optim.lbfgs(foo=1), TypeError, ["lbfgs", "'foo'", "Accepted"]),
    "optim init str": (lambda: am.optim.sgd().init("abc"), TypeError, ["params", "str", "arrays"]),
    "optim mixed frameworks": (
        lambda: am.optim.sgd().init({"a": np.ones(2), "b": torch.ones(2)}),
        TypeError,
        ["params", "one framework", "numpy", "torch"],
    ),
    "optim complex params": (sgd_update({"w": np.ones(2, complex)}), TypeError, ["params['w']", "complex128", "real"]),
    "optim state str": (sgd_update({"w": np.ones(2)}, state="abc"), TypeError, ["state", "SGDState", "init"]),
    "optim state of lbfgs": (lambda: sgd_update({"w": np.ones(2)}, state=lbfgs_state())(), TypeError, ["state", "LBFGSState", "SGDState"]),
    "optim state of other params": (
        lambda: sgd_update({"w": np.ones(2)}, state=am.optim.sgd(lr=0.1, momentum=0.5).init({"w": np.ones(3)}))(),
        ValueError,
        ["state", "3 numbers", "params have 2"],
    ),
    "optim grads NaN": (sgd_update({"w": np.ones(2)}), None, None),
    "optim update unknown keyword": (sgd_update({"w": np.ones(2)}, lr=0.1), TypeError, ["sgd's update", "'lr'", "value_and_grad_fn"]),
    "optim value_and_grad_fn int": (
        lambda: am.optim.lbfgs().update({"w": np.ones(2)}, None, {"w": np.ones(2)}, value_and_grad_fn=5),
        TypeError,
        ["value_and_grad_fn", "callable", "int"],
    ),
    "optim value_and_grad_fn value only": (
        lambda: am.optim.lbfgs().update({"w": np.ones(2)}, None, {"w": np.ones(2)}, value_and_grad_fn=lambda p: 1.0),
        TypeError,
        ["value_and_grad_fn", "(value, grads)", "float"],
    ),
    "optim value_and_grad_fn vector value": (
        lambda: am.optim.lbfgs().update({"w": np.ones(2)}, None, {"w": np.ones(2)}, value_and_grad_fn=lambda p: (p["w"] ** 2, p)),
        ObjectiveOutputError,
        ["value_and_grad_fn's value", "shape (2,)"],
    ),
    "optim value_and_grad_fn None value": (
        lambda: am.optim.lbfgs().update({"w": np.ones(2)}, None, {"w": np.ones(2)}, value_and_grad_fn=lambda p: (None, p)),
        ObjectiveOutputError,
        ["value_and_grad_fn's value", "None"],
    ),
    "optim value_and_grad_fn grads structure": (
        lambda: am.optim.lbfgs().update({"w": np.ones(2)}, None, {"w": np.ones(2)}, value_and_grad_fn=lambda p: (1.0, {"v": p["w"]})),
        ValueError,
        ["value_and_grad_fn's grads", "structure of params", "grads['w']"],
    ),
    "optim value str": (
        lambda: am.optim.lbfgs().update({"w": np.ones(2)}, None, {"w": np.ones(2)}, value="a", value_and_grad_fn=lambda p: (1.0, p)),
        ObjectiveOutputError,
        ["value", "str"],
    ),
    "optax value_fn int": (lambda: optax_lbfgs_update(value_fn=5), TypeError, ["value_fn", "callable", "int"]),
    "optax value_fn vector": (lambda: optax_lbfgs_update(value_fn=lambda p: p["w"] ** 2), ObjectiveOutputError, ["value_fn", "shape (2,)"]),
    "apply_updates structure": (
        lambda: am.optim.apply_updates({"w": np.ones(2)}, {"v": np.ones(2)}),
        ValueError,
        ["updates", "structure of params", "'w'"],
    ),
    "as_optax str": (lambda: am.optim.as_optax("sgd"), TypeError, ["opt", "am.optim", "str"]),
    # TF's ScipyOptimizerInterface
    "tf int variable": (lambda: interface(variable=tf.Variable([3, 2])), TypeError, ["var_list[0]", "int32", "floating"]),
    "tf complex variable": (lambda: interface(variable=tf.Variable([1 + 1j])), TypeError, ["var_list[0]", "complex128", "floating"]),
    "tf var_list of a model not built": (
        lambda: am.tf.ScipyOptimizerInterface(lambda: tf.constant(1.0), var_list=keras.Sequential([keras.layers.Dense(1)])),
        ValueError,
        ["var_list holds no trainable variable", "built"],
    ),
    "tf equalities not a list": (lambda: interface(equalities=5, method="SLSQP"), TypeError, ["equalities", "int", "callable"]),
    "tf equality None": (lambda: interface(equalities=[lambda: None], method="SLSQP").minimize(), ObjectiveOutputError, ["constraint", "None"]),
    "tf equality str": (lambda: interface(equalities=[lambda: "a"], method="SLSQP").minimize(), ObjectiveOutputError, ["constraint", "str"]),
    "tf step_callback": (lambda: interface().minimize(step_callback=5), TypeError, ["step_callback", "callable", "int"]),
    "tf loss_callback": (lambda: interface().minimize(loss_callback=5), TypeError, ["loss_callback", "callable", "int"]),
    "tf session positional": (lambda: interface().minimize(object()), TypeError, ["step_callback", "callable", "session"]),
    "tf fetches not a list": (lambda: interface().minimize(loss_callback=print, fetches=5), TypeError, ["fetches", "list", "int"]),
    # Keras
    "keras samples in lists": (lambda: am.keras.fit(kmodel(), "mse", [XK], [YK[:10]]), ValueError, ["X[0] has 30 samples", "y[0] has 10"]),
    "keras load_params model": (lambda: am.keras.load_params("m", {}), TypeError, ["model", "keras.Model", "str"]),
    "keras load_params str": (
        lambda: (m := kmodel(), am.keras.load_params(m, {bias_path(m): "a"})),
        TypeError,
        ["values[", "str", "array or tensor of numbers"],
    ),
    "keras load_params complex": (
        lambda: (m := kmodel(), am.keras.load_params(m, {bias_path(m): np.array([1j])})),
        TypeError,
        ["values[", "complex", "real"],
    ),
    "keras load_params NaN": (
        lambda: (m := kmodel(), am.keras.load_params(m, {bias_path(m): np.array([np.nan])})),
        ValueError,
        ["values[", "NaN", "finite"],
    ),
    "keras loss None": (lambda: am.keras.fit(kmodel(), lambda y_true, y_pred: None, XK, YK), ObjectiveOutputError, ["loss", "None"]),
    "keras X of another shape than the input": (
        lambda: am.keras.fit(kmodel(), "mse", XK[:, 0], YK),
        ValueError,
        ["X has shape (30,)", "input", "(None, 2)"],
    ),
    "keras X with other features": (
        lambda: am.keras.fit(kmodel(), "mse", np.zeros((30, 3)), YK),
        ValueError,
        ["X has shape (30, 3)", "input", "(None, 2)"],
    ),
    "keras backend of another framework": (
        lambda: am.keras.fit(kmodel(), "mse", XK, YK, backend="torch"),
        ValueError,
        ["backend='torch'", "Keras", "tensorflow"],
    ),
    "keras output broadcast to y": (
        lambda: am.keras.fit(kmodel(), "mse", XK, np.zeros((30, 2))),
        ValueError,
        ["y has shape (30, 2)", "output", "(30, 1)"],
    ),
}
ROWS["optim grads NaN"] = (
    lambda: am.optim.sgd().update({"w": np.array([np.nan, 1.0])}, None, {"w": np.ones(2)}),
    FloatingPointError,
    ["grads['w']", "NaN", "params"],
)


@pytest.mark.parametrize("name", list(ROWS))
def test_malformed_integration_call(name):
    call, error, parts = ROWS[name]
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"


# -- silent wrong answers -------------------------------------------------------------------
def test_closure_writing_into_parameters_leaves_the_solution_in_them():
    w = torch.nn.Parameter(torch.tensor([3.0, 3.0]))

    def closure():
        loss = ((w - 1.0) ** 2).sum()
        with torch.no_grad():
            w.add_(0.5)  # a closure that moves the parameters after computing the loss
        return loss

    optimizer = am.torch.ScipyOptimizer([w])
    loss = optimizer.step(closure)
    np.testing.assert_array_equal(w.detach().numpy(), optimizer.result.x.astype(np.float32))
    np.testing.assert_allclose(w.detach().numpy(), [1.0, 1.0], atol=1e-5)
    assert float(loss) < 1e-10
    assert w.dtype == torch.float32 and w.requires_grad and isinstance(w, torch.nn.Parameter)


def test_tf_complex_variable_is_refused_not_solved_on_its_real_part():
    v = tf.Variable([1.0 + 1.0j])
    with pytest.raises(TypeError, match="complex128"):
        am.tf.ScipyOptimizerInterface(lambda: tf.reduce_sum(tf.abs(v) ** 2), var_list=[v])
    assert v.numpy().tolist() == [1.0 + 1.0j]


def test_native_optimizer_state_dict_round_trip_continues_the_run():
    model = linear()
    optimizer = Optimizer(model.parameters(), am.optim.lbfgs())
    closure = with_backward(lambda m, loss: loss)(model, optimizer)
    for _ in range(3):
        optimizer.step(closure)
    saved = optimizer.state_dict()
    state = saved["state"][0]["autominimize"]
    restored = Optimizer(model.parameters(), am.optim.lbfgs())
    restored.load_state_dict(saved)
    assert type(restored.state[model.weight]["autominimize"]) is type(state)
    for _ in range(20):
        loss = restored.step(with_backward(lambda m, loss: loss)(model, restored))
    assert float(loss.detach()) < 1e-6
    np.testing.assert_allclose(model.weight.detach().numpy(), [[1.0, -2.0]], atol=1e-3)


def test_native_optimizer_refuses_a_nan_gradient_and_keeps_the_parameters():
    w = torch.nn.Parameter(torch.tensor([0.0]))
    optimizer = Optimizer([w], am.optim.sgd(lr=0.1))
    torch.sqrt(w).sum().backward()
    with pytest.raises(FloatingPointError, match=r"grads\[0\]"):
        optimizer.step()
    assert w.tolist() == [0.0]


def test_scipy_optimizer_state_dict_round_trip():
    model = linear()
    optimizer = am.torch.ScipyOptimizer(model.parameters(), bounds=(-5, 5))
    optimizer.step(mse(model))
    restored = am.torch.ScipyOptimizer(model.parameters())
    restored.load_state_dict(optimizer.state_dict())
    assert restored.param_groups[0]["bounds"] == (-5, 5)
    restored.step(mse(model))
    assert restored.result.nit == 0


def test_keras_target_without_a_trailing_axis_still_fits():
    model = kmodel()
    result = am.keras.fit(model, "mse", XK, YK[:, 0])
    assert result.fun < 1e-10
    np.testing.assert_allclose(model.layers[0].kernel.numpy().ravel(), [1.5, -0.5], atol=1e-4)


def test_keras_fit_of_a_subclassed_model_whose_call_takes_no_training_argument():
    class Linear(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)

        def call(self, x):
            return self.dense(x)

    model = Linear()
    result = am.keras.fit(model, "mse", XK, YK)
    assert result.fun < 1e-10
    np.testing.assert_allclose(model.dense.kernel.numpy().ravel(), [1.5, -0.5], atol=1e-4)


@pytest.mark.parametrize("method", ["L-BFGS-B", "BFGS", "CG", "TNC", "SLSQP"])
@pytest.mark.parametrize("jac", ["2-point", "3-point", False])
def test_scipy_differences_of_a_float32_model_move_it(method, jac):
    """scipy's default steps (1e-8 relative) vanish in float32: every difference was zero and
    the solve reported convergence at the start."""
    model = linear()
    optimizer = am.torch.ScipyOptimizer(model.parameters(), method=method, jac=jac)
    loss = optimizer.step(mse(model))
    assert optimizer.result.nit > 0
    assert float(loss.detach()) < 1e-4
    np.testing.assert_allclose(model.weight.detach().numpy(), [[1.0, -2.0]], atol=1e-2)
    assert model.weight.dtype == torch.float32


def test_keras_target_in_a_list_of_one_for_a_single_output_model():
    model = kmodel()
    result = am.keras.fit(model, "mse", XK, [YK])
    assert result.fun < 1e-10
    np.testing.assert_allclose(model.layers[0].kernel.numpy().ravel(), [1.5, -0.5], atol=1e-4)


@pytest.mark.parametrize("method", ["L-BFGS-B", "BFGS", "SLSQP"])
def test_minimize_differences_of_float32_tensors_move_them(method):
    """The same step rule in am.minimize: float32 torch parameters with jac='2-point'."""
    result = am.minimize(lambda p: 1e3 * ((p - 1.0) ** 2).sum(), torch.full((2,), 3.0), method=method, jac="2-point")
    assert result.nit > 0 and result.precision == "float32"
    np.testing.assert_allclose(result.x.numpy(), [1.0, 1.0], atol=1e-2)


def test_function_factory_runs_on_the_numpy_backend():
    model = linear()
    func, params = am.torch.function_factory(model, torch.nn.functional.mse_loss, X, Y)
    result = am.minimize(func, params, method="BFGS", backend="numpy")
    am.torch.load_params(model, result.x)
    np.testing.assert_allclose(model.weight.detach().numpy(), [[1.0, -2.0]], atol=1e-3)
