"""Batched differential evolution calls the user's function once per generation: how it is
called (mapped over the rows, or on the whole batch once that is known to give the mapped
values) and that every way follows the point-by-point trajectory."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import autominimize as am

torch = pytest.importorskip("torch")

BOUNDS = [(-5.12, 5.12)] * 4
MEMBERS = 15 * 4  # popsize * n


def rastrigin_rows(x):  # any leading axes: safe on the whole batch
    return 10 * x.shape[-1] + torch.sum(x**2 - 10 * torch.cos(2 * np.pi * x), -1)


def rastrigin_total(x):  # sums every axis: right for one point only
    return 10 * x.shape[-1] + torch.sum(x**2 - 10 * torch.cos(2 * np.pi * x))


def centred_rows(x):  # the mean over the first axis: of the point's components, or of the rows
    return torch.sum((x - x.mean(0)) ** 2 + x**2, -1)


def first_component(x):  # x[0]: a component of a point, a row of a batch
    return x[0] ** 2 + torch.sum(x**2, -1)


def shapes_seen(fun):
    """``fun`` recording the shape of every argument it is called with."""
    shapes = []

    def recorded(x):
        shapes.append(tuple(x.shape))
        return fun(x)

    return recorded, shapes


def evolve(fun, **kwargs):
    generations = []

    def record(intermediate_result):
        generations.append(intermediate_result.population.copy())

    res = am.differential_evolution(fun, BOUNDS, rng=5, maxiter=30, polish=False, backend="torch", callback=record, **kwargs)
    return res, generations


@pytest.mark.parametrize(
    "fun, whole",
    [(rastrigin_rows, True), (rastrigin_total, False), (centred_rows, False), (first_component, False)],
    ids=["rows", "total", "centred", "first-component"],
)
def test_one_call_a_generation_on_the_whole_batch_once_it_gives_the_mapped_values(fun, whole):
    recorded, shapes = shapes_seen(fun)
    batched, generations = evolve(recorded)
    # the first population: mapped (vmap shows the function one point), then the probe on
    # the whole batch; then one call per generation, never one per member
    assert batched.evaluation == "batched" and batched.nit == 30
    assert len(shapes) == batched.nit + 2 and batched.nfev == MEMBERS * (batched.nit + 1)
    assert shapes[:2] == [(4,), (MEMBERS, 4)]
    assert shapes[2:] == [(MEMBERS, 4) if whole else (4,)] * batched.nit
    single, single_generations = evolve(fun, vectorized=False, updating="deferred")
    assert single.evaluation == "pointwise"
    for population, expected in zip(generations, single_generations, strict=True):
        np.testing.assert_array_equal(population, expected)
    assert batched.fun == pytest.approx(single.fun, abs=1e-12)


def test_a_structured_function_gets_every_leaf_with_a_leading_batch_axis():
    seen = []

    def fun(p):
        seen.append((tuple(p["w"].shape), tuple(p["b"].shape)))
        return torch.sum(p["w"] ** 2, (-2, -1)) + (p["b"] - 0.5) ** 2

    bounds = {"w": (np.full((2, 3), -1.0), 1.0), "b": (0.0, 1.0)}
    res = am.differential_evolution(fun, bounds, rng=0, maxiter=5, polish=False, backend="torch")
    assert seen[:2] == [((2, 3), ()), ((105, 2, 3), (105,))]
    assert seen[2:] == [((105, 2, 3), (105,))] * res.nit


def test_a_function_that_fails_on_the_whole_batch_stays_mapped_without_a_warning():
    calls = []

    def fun(x):
        calls.append(tuple(x.shape))
        return torch.dot(x, x)  # 1-D tensors only

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = am.differential_evolution(fun, [(-1, 1)] * 3, rng=0, maxiter=4, polish=False, backend="torch")
    assert res.evaluation == "batched" and calls == [(3,), (45, 3)] + [(3,)] * res.nit
