"""Property-based tests of the normalization layer: parameter structures and bounds.

An empty array leaf (size 0) is a valid leaf: it contributes nothing to the flat vector and
comes back with its shape and type.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest
import scipy.optimize as so
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from autominimize.bounds import BoundsError, normalize_bounds
from autominimize.params import ParamSpec

Pair = namedtuple("Pair", "first second")
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

shapes = st.one_of(
    st.just(()),
    hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4),
    st.just((300,)),  # a large leaf
)
dtypes = st.sampled_from([np.float64, np.float32, np.float16, np.int32, np.int64])


@st.composite
def numpy_leaves(draw):
    dtype = draw(dtypes)
    shape = draw(shapes)
    elements = st.integers(-1000, 1000) if np.issubdtype(dtype, np.integer) else st.floats(-1e3, 1e3, width=np.finfo(dtype).bits)
    return draw(hnp.arrays(dtype, shape, elements=elements))


def as_framework(array: np.ndarray, framework: str):
    if framework == "torch":
        import torch

        return torch.tensor(array)
    if framework == "jax":
        import jax.numpy as jnp

        return jnp.asarray(array)
    return array


@st.composite
def leaves(draw):
    kind = draw(st.sampled_from(["float", "int", "numpy", "numpy", "torch", "jax"]))
    if kind == "float":
        return draw(st.floats(-1e6, 1e6))
    if kind == "int":
        return draw(st.integers(-1000, 1000))
    array = draw(numpy_leaves())
    if kind != "numpy" and array.dtype.kind == "f" and array.dtype != np.float16:
        return as_framework(array, kind)
    return array


def trees(leaf_strategy):
    return st.recursive(
        leaf_strategy,
        lambda children: st.one_of(
            st.lists(children, min_size=1, max_size=3),
            st.lists(children, min_size=1, max_size=3).map(tuple),
            st.dictionaries(st.text("abcxyz", min_size=1, max_size=3), children, min_size=1, max_size=3),
            st.tuples(children, children).map(lambda t: Pair(*t)),
        ),
        max_leaves=6,
    )


def to_numpy(leaf):
    from autominimize.params import leaf_to_numpy

    return np.asarray(leaf_to_numpy(leaf))


def assert_same_tree(a, b):
    import optree

    leaves_a, treedef_a = optree.tree_flatten(a)
    leaves_b, treedef_b = optree.tree_flatten(b)
    assert treedef_a == treedef_b
    for x, y in zip(leaves_a, leaves_b):
        assert type(x).__module__.split(".")[0] == type(y).__module__.split(".")[0] or isinstance(x, (int, float))
        x_np, y_np = to_numpy(x), to_numpy(y)
        assert x_np.shape == y_np.shape
        if x_np.dtype.kind == "f":  # float16, like an integer, comes back in the precision that ran
            assert y_np.dtype == (x_np.dtype if x_np.dtype.itemsize >= 4 else np.float64)
        np.testing.assert_array_equal(y_np, x_np.astype(y_np.dtype))


@SETTINGS
@given(trees(leaves()))
def test_flatten_restore_round_trips_exactly(x0):
    import optree

    assume(any(np.size(to_numpy(leaf)) for leaf in optree.tree_leaves(x0)))  # an x0 holding no number is refused
    spec = ParamSpec.from_tree(x0)
    flat = spec.flatten(x0)
    assert flat.dtype == np.float64 and flat.shape == (spec.size,)
    assert_same_tree(x0, spec.restore(flat))
    np.testing.assert_array_equal(spec.flatten(spec.restore(flat)), flat)
    np.testing.assert_array_equal(spec.flatten(spec.unflatten(flat)), flat)


@settings(max_examples=5, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3), elements=st.floats(-10, 10, width=32)))
def test_tensorflow_leaves_round_trip(array):
    assume(array.size > 0)  # an x0 holding no number is refused
    tf = pytest.importorskip("tensorflow")
    x0 = {"w": tf.constant(array), "v": [tf.Variable(array)]}
    spec = ParamSpec.from_tree(x0)
    back = spec.restore(spec.flatten(x0))
    np.testing.assert_array_equal(back["w"].numpy(), array)
    assert back["w"].dtype == tf.float32


def test_an_empty_leaf_is_a_valid_leaf():
    spec = ParamSpec.from_tree({"a": np.zeros((0, 3)), "b": np.ones(2)})
    assert spec.size == 2
    back = spec.restore(np.array([3.0, 4.0]))
    assert back["a"].shape == (0, 3) and back["b"].tolist() == [3.0, 4.0]


# -- bounds ------------------------------------------------------------------------------
limits = st.one_of(st.none(), st.floats(-100, 100), st.just(-np.inf), st.just(np.inf))


@st.composite
def leaf_with_bounds(draw):
    """A leaf and explicit per-element (lb, ub) arrays for it, lb <= ub."""
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    size = int(np.prod(shape))
    lo = draw(hnp.arrays(np.float64, size, elements=st.floats(-100, 0)))
    hi = draw(hnp.arrays(np.float64, size, elements=st.floats(0, 100)))
    open_low = draw(hnp.arrays(np.bool_, size))
    open_high = draw(hnp.arrays(np.bool_, size))
    lo[open_low] = -np.inf
    hi[open_high] = np.inf
    return np.zeros(shape), lo, hi


def per_leaf_forms(leaf, lo, hi, draw):
    """Every accepted form of one leaf's bounds that can express (lo, hi) exactly."""
    shape = leaf.shape
    forms = [
        [(None if np.isinf(a) else a, None if np.isinf(b) else b) for a, b in zip(lo, hi)] if leaf.size != 1 or shape else (lo[0], hi[0]),
        np.stack([lo, hi], axis=-1).reshape(shape + (2,)),
        np.stack([lo, hi], axis=-1),
        so.Bounds(lo.reshape(shape), hi.reshape(shape)),
        (lo.reshape(shape), hi.reshape(shape)),  # TF1's var_to_bounds with full arrays
    ]
    if np.all(lo == lo[0]) and np.all(hi == hi[0]):
        forms.append((lo[0], hi[0]))  # one pair broadcast to the leaf
    return forms[draw(st.integers(0, len(forms) - 1))]


@SETTINGS
@given(st.data(), st.lists(leaf_with_bounds(), min_size=1, max_size=3))
def test_every_bounds_form_broadcasts_like_explicit_pairs(data, items):
    x0 = {f"p{i}": leaf for i, (leaf, _, _) in enumerate(items)}
    spec = ParamSpec.from_tree(x0)
    lb = np.concatenate([lo for _, lo, _ in items])
    ub = np.concatenate([hi for _, _, hi in items])
    explicit = normalize_bounds([(a, b) for a, b in zip(lb, ub)], spec, x0) if spec.size > 1 or len(items) > 1 else None
    bounds = {f"p{i}": per_leaf_forms(leaf, lo, hi, data.draw) for i, (leaf, lo, hi) in enumerate(items)}
    got_lb, got_ub = normalize_bounds(bounds, spec, x0)
    np.testing.assert_array_equal(got_lb, lb)
    np.testing.assert_array_equal(got_ub, ub)
    if explicit is not None:
        np.testing.assert_array_equal(explicit[0], lb)
        np.testing.assert_array_equal(explicit[1], ub)
    flat_lb, flat_ub = normalize_bounds(so.Bounds(lb, ub), spec, x0)
    np.testing.assert_array_equal(flat_lb, lb)
    np.testing.assert_array_equal(flat_ub, ub)


@SETTINGS
@given(limits, limits, st.lists(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3), min_size=1, max_size=3))
def test_one_pair_applies_to_every_element(low, high, shapes_):
    if low is not None and high is not None and low > high:
        low, high = high, low
    x0 = [np.zeros(shape) for shape in shapes_]
    spec = ParamSpec.from_tree(x0)
    if low == np.inf or high == -np.inf:  # a side no number reaches is refused
        with pytest.raises(BoundsError, match="which no number reaches"):
            normalize_bounds((low, high), spec, x0)
        return
    lb, ub = normalize_bounds((low, high), spec, x0)
    np.testing.assert_array_equal(lb, np.full(spec.size, -np.inf if low is None else low))
    np.testing.assert_array_equal(ub, np.full(spec.size, np.inf if high is None else high))
