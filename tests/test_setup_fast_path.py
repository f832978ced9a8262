"""The fixed cost of a solve: work done once per function or skipped where it cannot matter."""

import functools
import inspect

import numpy as np
import optree
import pytest

import autominimize as am
from autominimize import calling, params


@pytest.fixture
def signature_reads(monkeypatch):
    """The callables whose signature was read, in order."""
    reads = []
    real = inspect.signature

    def counting(fun, *args, **kwargs):
        reads.append(fun)
        return real(fun, *args, **kwargs)

    monkeypatch.setattr(calling.inspect, "signature", counting)
    return reads


def _loss(U, V):
    return float(np.sum((U - 1.0) ** 2) + np.sum((V + 2.0) ** 2))


def _loss_grad(U, V):
    return {"U": 2.0 * (U - 1.0), "V": 2.0 * (V + 2.0)}


def _solve(fun, jac=None, x0=None):
    x0 = {"U": np.zeros(2), "V": np.zeros(3)} if x0 is None else x0
    return am.minimize(fun, x0, jac=jac, method="L-BFGS-B", backend="numpy")


def test_a_function_signature_is_read_once_for_two_solves(signature_reads):
    first, second = _solve(_loss, _loss_grad), _solve(_loss, _loss_grad)
    assert first.success and second.success
    np.testing.assert_allclose(second.x["V"], -2.0, atol=1e-6)
    assert signature_reads.count(_loss) == 1
    assert signature_reads.count(_loss_grad) == 1


def test_no_signature_is_read_for_an_array_x0(signature_reads):
    def fun(x):
        return float(np.sum((x - 3.0) ** 2))

    res = am.minimize(fun, np.zeros(3), jac=lambda x: 2.0 * (x - 3.0), method="L-BFGS-B", backend="numpy")
    np.testing.assert_allclose(res.x, 3.0, atol=1e-6)
    assert signature_reads == []


def test_a_changed_function_is_read_again(signature_reads):
    def fun(U, V=None):
        return _loss(U, V)

    assert calling.resolve_unpack(fun, {"U": np.zeros(2), "V": np.zeros(3)}, "auto") == "kwargs"
    assert calling.resolve_unpack(fun, {"U": np.zeros(2), "V": np.zeros(3)}, "auto") == "kwargs"
    assert signature_reads.count(fun) == 1
    fun.__code__ = (lambda params: float(np.sum(params["U"] ** 2))).__code__
    assert calling.resolve_unpack(fun, {"U": np.zeros(2), "V": np.zeros(3)}, "auto") == "none"
    assert signature_reads.count(fun) == 2
    fun.__defaults__ = tuple([0.5])
    calling.resolve_unpack(fun, {"U": np.zeros(2), "V": np.zeros(3)}, "auto")
    assert signature_reads.count(fun) == 3


class _Model:
    def loss(self, U, V):
        return _loss(U, V)

    def grad(self, U, V):
        return _loss_grad(U, V)


def test_bound_methods_and_partials_still_follow_their_own_signature(signature_reads):
    model = _Model()
    for _ in range(2):
        res = _solve(model.loss, model.grad)
        np.testing.assert_allclose(res.x["U"], 1.0, atol=1e-6)
    # the bound method's signature is read once (keyed by its function), without self
    assert len([f for f in signature_reads if getattr(f, "__func__", None) is _Model.loss]) == 1
    partial = functools.partial(lambda U, V, scale: scale * _loss(U, V), scale=2.0)
    res = _solve(partial)
    np.testing.assert_allclose(res.x["V"], -2.0, atol=1e-5)
    assert calling.resolve_unpack(partial, {"U": 0.0, "V": 0.0}, "auto") == "kwargs"


def test_a_wrapped_function_follows_its_wrapped_signature(signature_reads):
    def inner(U, V):
        return _loss(U, V)

    @functools.wraps(inner)
    def outer(*args, **kwargs):
        return inner(*args, **kwargs)

    res = _solve(outer)
    np.testing.assert_allclose(res.x["U"], 1.0, atol=1e-6)


def test_an_array_x0_is_recorded_without_walking_a_structure(monkeypatch):
    walks = []
    real = optree.tree_flatten_with_accessor
    monkeypatch.setattr(params.optree, "tree_flatten_with_accessor", lambda *a, **k: walks.append(1) or real(*a, **k))
    x0 = np.array([[1.0, 2.0], [3.0, 4.0]])
    spec = params.ParamSpec.from_tree(x0)
    assert walks == []
    reference_paths, _, reference_treedef = real(x0, none_is_leaf=False, namespace=params.NAMESPACE)
    assert spec.treedef == reference_treedef and spec.leaves[0].path == "x0" and len(reference_paths) == 1
    np.testing.assert_array_equal(spec.restore(spec.flatten(x0)), x0)
    with pytest.raises(ValueError, match="NaN or inf"):
        params.ParamSpec.from_tree(np.array([1.0, np.nan]))
