"""The PyTorch backend against hand-written NumPy derivatives."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest
from scipy.optimize import rosen, rosen_der, rosen_hess, rosen_hess_prod

torch = pytest.importorskip("torch")

from autominimize.backends.common import NoGradientError, ObjectiveOutputError  # noqa: E402
from autominimize.backends.torch_backend import TorchBackend  # noqa: E402
from autominimize.params import ParamSpec  # noqa: E402

# torch's forward-mode AD scripts its decompositions on first use, which warns inside torch.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

TIGHT = dict(rtol=1e-12, atol=1e-12)


def torch_rosen(x):
    return torch.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def compile_scalar(fun, x0, dtype="float64"):
    return TorchBackend().compile_scalar(fun, ParamSpec.from_tree(x0), dtype)


def compile_vector(fun, x0, dtype="float64"):
    return TorchBackend().compile_vector(fun, ParamSpec.from_tree(x0), dtype)


class Counted:
    """Wrap a function and count how often it runs."""

    def __init__(self, fun):
        self.fun = fun
        self.calls = 0

    def __call__(self, params):
        self.calls += 1
        return self.fun(params)


def test_backend_metadata():
    backend = TorchBackend()
    assert (backend.name, backend.extra) == ("torch", "torch")
    assert backend.available()


def test_rosenbrock_value_grad_hvp_hessian():
    x = np.array([-1.2, 1.0, 0.5, -0.3, 2.0])
    v = np.array([0.3, -1.0, 2.0, 0.5, -0.7])
    f = compile_scalar(torch_rosen, np.zeros(5))

    assert f.extra_evaluations == 0
    value = f.value(x)
    assert isinstance(value, float)
    np.testing.assert_allclose(value, rosen(x), **TIGHT)
    value, grad = f.value_and_grad(x)
    np.testing.assert_allclose(value, rosen(x), **TIGHT)
    assert grad.dtype == np.float64 and grad.shape == (5,)
    np.testing.assert_allclose(grad, rosen_der(x), **TIGHT)
    np.testing.assert_allclose(f.hvp_at(x)(v), rosen_hess_prod(x, v), **TIGHT)
    hess = f.hessian(x)
    assert hess.shape == (5, 5) and hess.dtype == np.float64
    np.testing.assert_allclose(hess, rosen_hess(x), **TIGHT)


def test_gradient_is_a_fresh_writable_array():
    f = compile_scalar(torch_rosen, np.zeros(3))
    x = np.array([0.5, 1.5, -1.0])
    _, grad = f.value_and_grad(x)
    grad[:] = 0.0
    np.testing.assert_allclose(f.value_and_grad(x)[1], rosen_der(x), **TIGHT)


def test_scipy_writing_into_x_does_not_corrupt_the_kept_graph():
    f = compile_scalar(torch_rosen, np.zeros(3))
    x = np.array([0.5, 1.5, -1.0])
    expected = rosen_der(x)
    f.value(x)
    x_seen = x.copy()
    x[:] = 7.0  # the caller reuses its buffer
    np.testing.assert_allclose(f.value_and_grad(x_seen)[1], expected, **TIGHT)


def dict_fun(p):
    a, b = p["a"], p["b"]
    return torch.sum(torch.sin(b)) * torch.sum(a**2) + b[0] * a[1, 0]


def dict_grad(a, b):
    ga = 2.0 * a * np.sum(np.sin(b))
    ga[1, 0] += b[0]
    gb = np.cos(b) * np.sum(a**2)
    gb[0] += a[1, 0]
    return {"b": gb, "a": ga}


def test_dict_params_with_unsorted_keys():
    x0 = {"b": np.zeros(3), "a": np.zeros((2, 2))}
    spec = ParamSpec.from_tree(x0)
    f = TorchBackend().compile_scalar(dict_fun, spec, "float64")
    a, b = np.array([[1.0, -2.0], [0.5, 3.0]]), np.array([0.1, -0.7, 2.0])
    x = spec.flatten({"b": b, "a": a})

    value, grad = f.value_and_grad(x)
    np.testing.assert_allclose(value, np.sum(np.sin(b)) * np.sum(a**2) + b[0] * a[1, 0], **TIGHT)
    np.testing.assert_allclose(grad, spec.flatten(dict_grad(a, b)), **TIGHT)

    # The Hessian is computed on the flat vector: check it column by column against
    # central differences of the analytic gradient, and against the HVP.
    h = 1e-6
    columns = [(spec.flatten(dict_grad(*_ab(spec, x + h * e))) - spec.flatten(dict_grad(*_ab(spec, x - h * e)))) / (2 * h) for e in np.eye(x.size)]
    hess = f.hessian(x)
    np.testing.assert_allclose(hess, np.array(columns).T, rtol=1e-7, atol=1e-7)
    v = np.linspace(-1.0, 1.0, x.size)
    np.testing.assert_allclose(f.hvp_at(x)(v), hess @ v, **TIGHT)


def _ab(spec, x):
    tree = spec.unflatten(x)
    return tree["a"], tree["b"]


Pair = namedtuple("Pair", ["w", "s"])


def test_nested_structure_with_tensor_leaves():
    x0 = [Pair(w=torch.zeros(2, 3, dtype=torch.float64), s=0.0), {"z": (torch.zeros(2), 1.0)}]
    spec = ParamSpec.from_tree(x0)

    def fun(p):
        pair, rest = p
        z, c = rest["z"]
        return torch.sum(pair.w**2) * pair.s + torch.dot(z, z) * c

    f = TorchBackend().compile_scalar(fun, spec, "float64")
    w, s, z, c = np.arange(6.0).reshape(2, 3) / 7, 1.5, np.array([0.3, -2.0]), -0.5
    x = spec.flatten([Pair(w=w, s=s), {"z": (z, c)}])
    expected = [Pair(w=2 * w * s, s=np.sum(w**2)), {"z": (2 * z * c, z @ z)}]

    value, grad = f.value_and_grad(x)
    np.testing.assert_allclose(value, np.sum(w**2) * s + (z @ z) * c, **TIGHT)
    np.testing.assert_allclose(grad, spec.flatten(expected), **TIGHT)
    assert f.hessian(x).shape == (spec.size, spec.size)


def test_float32_computes_in_float32_and_returns_float64():
    seen = set()

    def fun(x):
        seen.add(x.dtype)
        return torch_rosen(x)

    f = compile_scalar(fun, np.zeros(4), "float32")
    x = np.array([-1.2, 1.0, 0.5, -0.3])
    value, grad = f.value_and_grad(x)
    v = np.ones(4)
    hvp, hess = f.hvp_at(x)(v), f.hessian(x)

    assert seen == {torch.float32}
    assert isinstance(value, float)
    assert grad.dtype == hvp.dtype == hess.dtype == np.float64
    np.testing.assert_allclose(value, rosen(x), rtol=1e-6)
    np.testing.assert_allclose(grad, rosen_der(x), rtol=1e-5)
    np.testing.assert_allclose(hvp, rosen_hess_prod(x, v), rtol=1e-5)
    np.testing.assert_allclose(hess, rosen_hess(x), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    "reduce",
    [
        lambda s: s,  # 0-d tensor
        lambda s: s.reshape(1),
        lambda s: s.reshape(1, 1),
    ],
    ids=["0-d", "(1,)", "(1,1)"],
)
def test_one_element_outputs_are_scalars(reduce):
    f = compile_scalar(lambda x: reduce(torch_rosen(x)), np.zeros(3))
    x = np.array([0.5, 1.5, -1.0])
    value, grad = f.value_and_grad(x)
    np.testing.assert_allclose(value, rosen(x), **TIGHT)
    np.testing.assert_allclose(grad, rosen_der(x), **TIGHT)


@pytest.mark.parametrize("constant", [2.5, np.float64(2.5)], ids=["python", "numpy"])
def test_constant_output_has_no_gradient(constant):
    # indistinguishable from a loss computed outside autograd (.item(), NumPy): refused,
    # since a zero gradient would stop every method at x0 reporting success
    f = compile_scalar(lambda x: constant, np.zeros(3))
    x = np.ones(3)
    assert f.value(x) == 2.5
    for derivative in (f.value_and_grad, f.value_and_grad_once, f.hvp_at, f.hessian):
        with pytest.raises(NoGradientError, match="carries no gradient"):
            derivative(x)


def test_linear_function_has_zero_hessian():
    c = np.array([1.0, -2.0, 3.0])
    f = compile_scalar(lambda x: torch.dot(torch.from_numpy(c), x), np.zeros(3))
    x = np.array([0.5, 1.5, -1.0])
    np.testing.assert_allclose(f.value_and_grad(x)[1], c, **TIGHT)
    np.testing.assert_array_equal(f.hvp_at(x)(np.ones(3)), np.zeros(3))
    np.testing.assert_array_equal(f.hessian(x), np.zeros((3, 3)))


def test_non_scalar_output_is_a_clear_error():
    f = compile_scalar(lambda x: x**2, np.zeros(3))
    with pytest.raises(ObjectiveOutputError, match=r"must return a scalar.*shape \(3,\)"):
        f.value(np.ones(3))


def test_value_then_gradient_runs_the_function_once():
    fun = Counted(torch_rosen)
    f = compile_scalar(fun, np.zeros(5))
    x = np.linspace(-1.0, 1.0, 5)
    f.value(x)
    value, grad = f.value_and_grad(x.copy())
    assert fun.calls == 1
    np.testing.assert_allclose(grad, rosen_der(x), **TIGHT)
    f.value_and_grad(x + 1.0)
    assert fun.calls == 2


def test_repeated_hvps_reuse_one_forward_pass():
    fun = Counted(torch_rosen)
    f = compile_scalar(fun, np.zeros(5))
    x = np.linspace(-1.0, 1.0, 5)
    hvp = f.hvp_at(x)
    for v in np.eye(5)[:3]:
        np.testing.assert_allclose(hvp(v), rosen_hess_prod(x, v), **TIGHT)
    assert fun.calls == 1
    # The gradient and the Hessian at the same point reuse that forward pass too.
    f.value_and_grad(x)
    f.hessian(x)
    assert fun.calls == 1


def test_hvps_survive_a_move_to_another_point():
    f = compile_scalar(torch_rosen, np.zeros(3))
    x, y, v = np.array([0.5, 1.5, -1.0]), np.array([2.0, 0.0, 1.0]), np.array([1.0, 2.0, 3.0])
    hvp = f.hvp_at(x)
    f.value_and_grad(y)
    np.testing.assert_allclose(hvp(v), rosen_hess_prod(x, v), **TIGHT)


def test_evaluation_inside_no_grad():
    f = compile_scalar(torch_rosen, np.zeros(3))
    x = np.array([0.5, 1.5, -1.0])
    with torch.no_grad():
        np.testing.assert_allclose(f.value_and_grad(x)[1], rosen_der(x), **TIGHT)
        np.testing.assert_allclose(f.hessian(x), rosen_hess(x), **TIGHT)


# -- vector functions ---------------------------------------------------------------------

X2D = np.array([[0.5, -1.0, 2.0], [1.5, 0.3, -0.7]])  # a 2-D x0: n = 6


def wide(x):
    """m = 2 < n = 6."""
    return torch.stack([torch.sum(x**2), x[0, 0] * x[1, 2]])


def wide_jacobian(x):
    jac = np.zeros((2,) + x.shape)
    jac[0] = 2 * x
    jac[1, 0, 0], jac[1, 1, 2] = x[1, 2], x[0, 0]
    return jac.reshape(2, -1)


def tall(x):
    """m = 8 > n = 6, returned as a structure of a matrix and two scalars."""
    return (x**2, [torch.sum(x), x[0, 0] ** 3])


def tall_value(x):
    return np.concatenate([(x**2).ravel(), [np.sum(x)], [x[0, 0] ** 3]])


def tall_jacobian(x):
    flat = x.ravel()
    jac = np.vstack([np.diag(2 * flat), np.ones((1, flat.size)), np.zeros((1, flat.size))])
    jac[-1, 0] = 3 * flat[0] ** 2
    return jac


@pytest.mark.parametrize(
    "fun, value, jacobian, m",
    [(wide, lambda x: np.array([np.sum(x**2), x[0, 0] * x[1, 2]]), wide_jacobian, 2), (tall, tall_value, tall_jacobian, 8)],
    ids=["m<n", "m>n"],
)
def test_vector_jacobian_has_shape_m_by_n(fun, value, jacobian, m):
    counted = Counted(fun)
    c = compile_vector(counted, np.zeros((2, 3)))
    x = X2D.ravel()
    assert c.extra_evaluations == 0
    np.testing.assert_allclose(c.value(x), value(X2D), **TIGHT)
    assert c.m == m
    calls = counted.calls
    val, jac = c.value_and_jacobian(x)
    assert counted.calls == calls + 1
    assert val.shape == (m,) and jac.shape == (m, 6)
    assert val.dtype == jac.dtype == np.float64
    np.testing.assert_allclose(val, value(X2D), **TIGHT)
    np.testing.assert_allclose(jac, jacobian(X2D), **TIGHT)


def test_vector_jacobian_before_any_value():
    c = compile_vector(tall, np.zeros((2, 3)))
    val, jac = c.value_and_jacobian(X2D.ravel())
    assert c.m == 8
    np.testing.assert_allclose(jac, tall_jacobian(X2D), **TIGHT)


def test_scalar_output_gives_a_one_row_jacobian():
    c = compile_vector(lambda x: torch.sum(x**2), np.zeros((2, 3)))
    val, jac = c.value_and_jacobian(X2D.ravel())
    assert val.shape == (1,) and jac.shape == (1, 6)
    np.testing.assert_allclose(jac[0], 2 * X2D.ravel(), **TIGHT)


def test_forward_mode_falls_back_when_torch_func_cannot_trace():
    def leaves_torch(x):
        scale = float(x.detach().numpy()[0, 0])  # opaque to torch.func
        return x.reshape(-1) * scale

    c = compile_vector(leaves_torch, np.zeros((2, 3)))
    x = X2D.ravel()
    for _ in range(2):
        val, jac = c.value_and_jacobian(x)
        np.testing.assert_allclose(val, x * x[0], **TIGHT)
        np.testing.assert_allclose(jac, np.eye(6) * x[0], **TIGHT)


def test_vector_float32():
    seen = set()

    def fun(x):
        seen.add(x.dtype)
        return wide(x)

    c = compile_vector(fun, np.zeros((2, 3)), "float32")
    val, jac = c.value_and_jacobian(X2D.ravel())
    assert seen == {torch.float32}
    assert val.dtype == jac.dtype == np.float64
    np.testing.assert_allclose(jac, wide_jacobian(X2D), rtol=1e-6)


def test_weighted_hessian():
    def constraints(x):
        return torch.stack([torch.sum(x**2), x[0] * x[1] * x[2], torch.sum(torch.sin(x))])

    c = compile_vector(constraints, np.zeros(3))
    x, w = np.array([0.5, -1.0, 2.0]), np.array([2.0, -3.0, 0.5])
    cross = np.array([[0.0, x[2], x[1]], [x[2], 0.0, x[0]], [x[1], x[0], 0.0]])
    expected = w[0] * 2 * np.eye(3) + w[1] * cross + w[2] * np.diag(-np.sin(x))
    np.testing.assert_allclose(c.weighted_hessian(x, w), expected, **TIGHT)


def test_explicit_device():
    spec = ParamSpec.from_tree(np.zeros(3))
    f = TorchBackend(device="cpu").compile_scalar(torch_rosen, spec, "float64")
    x = np.array([0.5, 1.5, -1.0])
    np.testing.assert_allclose(f.value_and_grad(x)[1], rosen_der(x), **TIGHT)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_first_order_path_gives_the_kept_graph_results_and_keeps_no_graph(dtype):
    x0 = {"a": np.zeros(3), "b": np.zeros((2, 2))}

    def fun(p):
        return torch_rosen(torch.cat([p["a"], p["b"].reshape(-1)])) + torch.sum(p["b"] ** 3)

    compiled = compile_scalar(fun, x0, dtype)
    x = np.random.default_rng(1).normal(size=7)
    f_once, g_once = compiled.value_and_grad_once(x)
    assert compiled._last is None  # nothing kept for derivatives that will not come
    f_kept, g_kept = compiled.value_and_grad(x)
    assert compiled._last is not None
    assert f_once == f_kept and np.array_equal(g_once, g_kept) and g_once.dtype == np.float64
    g_once[0] = 1e9  # the caller owns the array it gets
    assert compiled.value_and_grad_once(x)[1][0] == g_kept[0]


def test_first_order_gradient_calls_the_engine_as_autograd_grad_would_and_touches_nothing_else():
    from autominimize.backends.private_torch import _engine_run_backward

    assert _engine_run_backward() is not None  # the pinned torch has the entry point: the fast path runs
    weight = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)  # a captured parameter
    functions = {"uses x and the weight": lambda x: weight * torch_rosen(x), "uses part of x": lambda x: weight * x[0] ** 2}
    x = np.random.default_rng(2).normal(size=4)
    for name, fun in functions.items():
        f, g = compile_scalar(fun, np.zeros(4)).value_and_grad_once(x)
        xt = torch.from_numpy(x.copy()).requires_grad_()
        out = fun(xt)
        (expected,) = torch.autograd.grad(out, xt, materialize_grads=True)
        assert f == out.item() and np.array_equal(g, expected.numpy()), name
        assert weight.grad is None, name  # nothing accumulated into the user's tensors
    with pytest.raises(NoGradientError):  # a loss that does not depend on x at all
        compile_scalar(lambda x: weight**2, np.zeros(4)).value_and_grad_once(x)
    assert weight.grad is None


def test_minimize_uses_the_graphless_path_only_without_curvature(monkeypatch):
    import autominimize as am
    from autominimize.backends.torch_backend import TorchScalar

    calls = {"value_and_grad_once": 0, "value_and_grad": 0}
    for name in calls:
        original = getattr(TorchScalar, name)

        def counted(self, x, _original=original, _name=name):
            calls[_name] += 1
            return _original(self, x)

        monkeypatch.setattr(TorchScalar, name, counted)

    first = am.minimize(torch_rosen, np.zeros(5), method="L-BFGS-B", backend="torch", history=False)
    assert calls == {"value_and_grad_once": first.nfev, "value_and_grad": 0}
    reference = am.minimize(rosen, np.zeros(5), method="L-BFGS-B", backend="numpy", jac=rosen_der)
    assert (first.nfev, first.njev) == (reference.nfev, reference.njev)
    np.testing.assert_allclose(first.x, reference.x, rtol=1e-10, atol=1e-10)
    calls.update(value_and_grad_once=0)
    second = am.minimize(torch_rosen, np.zeros(5), method="trust-ncg", backend="torch", history=False)
    assert second.success and calls == {"value_and_grad_once": 0, "value_and_grad": second.njev}


# -- batches: the vmap of the flat function ------------------------------------------------
def compile_batched(fun, x0):
    return TorchBackend().compile_batched(fun, ParamSpec.from_tree(x0), "float64")


def test_batched_calls_after_the_first_skip_vmaps_wrapper_and_give_its_values():
    x0 = {"b": 0.0, "w": np.zeros((2, 3))}

    def fun(p):
        return torch.sum(p["w"] ** 2 - torch.cos(p["w"])) + p["b"] ** 3

    batched = compile_batched(fun, x0)
    points = np.random.default_rng(0).normal(size=(9, 7))
    wrapper_calls = []
    first = batched(points)
    mapped = batched._mapped._mapped
    batched._mapped._mapped = lambda rows: wrapper_calls.append(1) or mapped(rows)
    later = [batched(points) for _ in range(3)]
    assert wrapper_calls == [] and batched.traces == 4
    with torch.no_grad():
        expected = torch.func.vmap(batched.flat_fun)(torch.from_numpy(points)).numpy()
    for out in [first, *later]:
        assert out.dtype == np.float64 and out.shape == (9,)
        np.testing.assert_array_equal(out, expected)


def test_batched_calls_keep_vmaps_behaviour_on_constants_randomness_and_errors():
    constant = compile_batched(lambda x: torch.tensor(2.5, dtype=torch.float64), np.zeros(3))
    for _ in range(2):
        np.testing.assert_array_equal(constant(np.zeros((4, 3))), 2.5)

    def noisy(x):
        if noisy.random:
            return torch.sum(x + torch.rand(3, dtype=x.dtype))
        return torch.sum(x)

    noisy.random = False
    batched = compile_batched(noisy, np.zeros(3))
    batched(np.zeros((4, 3)))
    noisy.random = True
    with pytest.raises(RuntimeError, match="randomness"):
        batched(np.zeros((4, 3)))
    assert torch._C._functorch.maybe_current_level() is None  # the vmap level was left
    noisy.random = False
    np.testing.assert_array_equal(batched(np.ones((4, 3))), 3.0)
