"""Sparse derivatives: patterns (asdex, probing, the user's), colouring, compressed passes."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import autominimize as am
from autominimize.backends.sparsity import color_columns
from conftest import keep_jax_programs, spy_ipopt_iterates

pytest.importorskip("cyipopt")


def _data(n):
    t = np.linspace(0.0, 10.0, n)
    return 2.8 * np.cos(t) + 0.05 * np.random.default_rng(0).standard_normal(n)


def _banded(n, like):
    """A discretised pendulum fitted to data: n - 2 banded equality constraints."""
    h = 10.0 / (n - 1)
    y = _data(n)
    if like == "torch":
        import torch as xp

        y = xp.asarray(y)
        sin, cos = xp.sin, xp.cos
    else:
        import jax.numpy as xp

        sin, cos = xp.sin, xp.cos

    def f(x):
        return h * ((x - y) ** 2).sum() + (1 - cos(x[1:] - x[:-1])).sum()

    def c(x):
        return x[:-2] - 2 * x[1:-1] + x[2:] + h * h * sin(x[1:-1])

    return f, {"type": "eq", "fun": c}


def _tridiagonal_patterns(n):
    jac = sp.diags([1.0, 1.0, 1.0], [0, 1, 2], shape=(n - 2, n))
    hess = sp.diags([1.0, 1.0, 1.0], [-1, 0, 1], shape=(n, n))
    return jac, hess


def test_colouring_of_bands_and_its_limit():
    n = 50
    band = sp.diags([1.0] * 5, [-2, -1, 0, 1, 2], shape=(n, n)).tocoo()
    colors = color_columns(band.row, band.col, (n, n))
    assert colors.max() + 1 == 5
    for row in range(n):  # columns sharing a row never share a colour
        cols = band.col[band.row == row]
        assert len(set(colors[cols])) == len(cols)
    rows = np.concatenate([np.arange(n), np.full(n, n - 1)])
    cols = np.concatenate([np.arange(n), np.arange(n)])
    arrow = color_columns(rows, cols, (n, n))  # a dense row: every column its own colour
    assert arrow.max() + 1 == n


def test_jax_sparse_matches_dense_in_three_passes():
    pytest.importorskip("asdex")
    n = 300
    f, constraint = _banded(n, "jax")
    x0 = np.zeros(n)
    sparse = am.minimize(f, x0, method="ipopt", constraints=constraint, backend="jax", options={"sparse": True})
    dense = am.minimize(f, x0, method="ipopt", constraints=constraint, backend="jax", options={"sparse": False})
    assert sparse.success and dense.success
    assert sparse.sparsity["source"] == "asdex"
    assert sparse.sparsity["jacobian_nnz"] == 3 * (n - 2)
    assert sparse.sparsity["hessian_nnz"] == 2 * n - 1
    assert sparse.sparsity["passes"] == 3
    assert "sparsity" not in dense
    assert sparse.nit == dense.nit
    assert abs(sparse.fun - dense.fun) < 1e-10
    np.testing.assert_allclose(sparse.x, dense.x, atol=1e-8)


def test_quasi_newton_hessian_with_a_sparse_jacobian():
    n = 60
    f, constraint = _banded(n, "torch")
    res = am.minimize(
        f, np.zeros(n), method="ipopt", constraints=constraint, backend="torch", options={"sparse": True, "hessian_approximation": "limited-memory"}
    )
    exact = am.minimize(f, np.zeros(n), method="ipopt", constraints=constraint, backend="torch")
    assert res.success and res.hessian == "limited-memory" and res.nhev == 0
    assert (res.sparsity["jacobian_nnz"], res.sparsity["hessian_nnz"], res.sparsity["passes"]) == (3 * (n - 2), 0, 3)
    assert abs(res.fun - exact.fun) < 1e-7


def test_auto_rule_and_cached_set_up():
    pytest.importorskip("asdex")
    small_f, small_c = _banded(40, "jax")
    small = am.minimize(small_f, np.zeros(40), method="ipopt", constraints=small_c, backend="jax")
    assert "sparsity" not in small  # below AUTO_SPARSE_MIN_SIZE parameters: dense
    f, constraint = _banded(200, "jax")
    first = am.minimize(f, np.zeros(200), method="ipopt", constraints=constraint, backend="jax")
    assert first.sparsity["passes"] == 3 and not first.sparsity["cached"]
    again = am.minimize(f, np.zeros(200), method="ipopt", constraints=constraint, backend="jax")
    assert again.sparsity["cached"] and again.fun == first.fun


def test_torch_probing_finds_the_pattern_asdex_reads():
    n = 60
    f, constraint = _banded(n, "torch")
    res = am.minimize(f, np.zeros(n), method="ipopt", constraints=constraint, backend="torch", options={"sparse": True})
    assert res.success
    assert res.sparsity["source"] == "probed"
    assert (res.sparsity["jacobian_nnz"], res.sparsity["hessian_nnz"], res.sparsity["passes"]) == (3 * (n - 2), 2 * n - 1, 3)
    dense = am.minimize(f, np.zeros(n), method="ipopt", constraints=constraint, backend="torch", options={"sparse": False})
    assert abs(res.fun - dense.fun) < 1e-10


def test_tensorflow_probing_finds_the_banded_pattern():
    """TF has no program reader here: the Lagrangian's pattern is probed, and its three
    compressed passes give the dense solve's optimum."""
    tf = pytest.importorskip("tensorflow")
    n = 60
    h = 10.0 / (n - 1)
    y = tf.constant(_data(n))

    def f(x):
        return h * tf.reduce_sum((x - y) ** 2) + tf.reduce_sum(1 - tf.cos(x[1:] - x[:-1]))

    constraint = {"type": "eq", "fun": lambda x: x[:-2] - 2 * x[1:-1] + x[2:] + h * h * tf.sin(x[1:-1])}
    res = am.minimize(f, np.zeros(n), method="ipopt", constraints=constraint, backend="tensorflow", options={"sparse": True})
    dense = am.minimize(f, np.zeros(n), method="ipopt", constraints=constraint, backend="tensorflow", options={"sparse": False})
    assert res.success and dense.success and res.backend == "tensorflow"
    assert res.sparsity["source"] == "probed"
    assert (res.sparsity["jacobian_nnz"], res.sparsity["hessian_nnz"], res.sparsity["passes"]) == (3 * (n - 2), 2 * n - 1, 3)
    assert "sparsity" not in dense and res.nit == dense.nit
    assert abs(res.fun - dense.fun) < 1e-10


def test_user_patterns_and_their_errors():
    n = 60
    f, constraint = _banded(n, "torch")
    jac, hess = _tridiagonal_patterns(n)
    res = am.minimize(
        f, np.zeros(n), method="ipopt", constraints=constraint, backend="torch", options={"jac_sparsity": jac, "hess_sparsity": hess.toarray() != 0}
    )
    assert res.success and res.sparsity["source"] == "user" and res.sparsity["passes"] == 3
    with pytest.raises(ValueError, match=r"options\['jac_sparsity'\] has shape \(58, 61\); it must be \(58, 60\)"):
        am.minimize(
            f,
            np.zeros(n),
            method="ipopt",
            constraints=constraint,
            backend="torch",
            options={"jac_sparsity": np.ones((n - 2, n + 1)), "hess_sparsity": hess},
        )
    with pytest.raises(ValueError, match="contradicts"):
        am.minimize(f, np.zeros(n), method="ipopt", constraints=constraint, backend="torch", options={"sparse": False, "hess_sparsity": hess})


def test_a_user_hessian_pattern_with_the_jacobian_probed():
    n = 60
    f, constraint = _banded(n, "torch")
    _, hess = _tridiagonal_patterns(n)
    res = am.minimize(f, np.zeros(n), method="ipopt", constraints=constraint, backend="torch", options={"hess_sparsity": hess})
    assert res.success and res.sparsity["source"] == "user"
    assert (res.sparsity["jacobian_nnz"], res.sparsity["hessian_nnz"]) == (3 * (n - 2), 2 * n - 1)


def test_compressed_values_equal_the_hand_built_derivatives():
    """The benchmark's hand-written triplets, entry by entry, from three compressed passes."""
    pytest.importorskip("asdex")
    import jax

    from autominimize.backends import get_backend
    from autominimize.backends.lagrangian import Lagrangian
    from autominimize.backends.sparsity import detect_pattern
    from benchmarks.ipopt import _HandBuilt, _jax_problem
    from autominimize.params import ParamSpec

    n = 40
    fit, dynamics = _jax_problem(n)
    hand = _HandBuilt(n)
    spec = ParamSpec.from_tree(np.zeros(n))
    backend = get_backend("jax")
    rng = np.random.default_rng(1)
    x, lam, sigma = rng.standard_normal(n), rng.standard_normal(n - 2), 0.7
    with jax.enable_x64(True):
        lagrangian = Lagrangian(
            backend.compile_scalar(fit, spec, "float64"), [backend.compile_vector(dynamics["fun"], spec, "float64")], n - 2, "float64"
        )
        pattern = detect_pattern(lagrangian, np.zeros(n), None)
        hess_c, jac_c = lagrangian.compressed(x, sigma, lam, pattern.seeds())
    assert pattern.num_colors == 3
    expected_jac = sp.coo_matrix((hand.jacobian(x), hand.jacobianstructure()), shape=(n - 2, n)).toarray()
    expected_hess = sp.coo_matrix((hand.hessian(x, lam, sigma), hand.hessianstructure()), shape=(n, n)).toarray()
    got_jac = sp.coo_matrix((pattern.jacobian_values(jac_c), (pattern.jac_rows, pattern.jac_cols)), shape=(n - 2, n)).toarray()
    got_hess = sp.coo_matrix((pattern.hessian_values(hess_c), (pattern.hess_rows, pattern.hess_cols)), shape=(n, n)).toarray()
    np.testing.assert_allclose(got_jac, expected_jac, atol=1e-12)
    np.testing.assert_allclose(got_hess, expected_hess, atol=1e-12)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_trust_constr_sparse_jacobians_and_hessian_products(backend):
    pytest.importorskip(backend)
    if backend == "jax":
        pytest.importorskip("asdex")
    n = 120
    f, constraint = _banded(n, backend)
    sparse = am.minimize(f, np.zeros(n), method="trust-constr", constraints=constraint, backend=backend, options={"sparse": True})
    dense = am.minimize(f, np.zeros(n), method="trust-constr", constraints=constraint, backend=backend, options={"sparse": False})
    assert sparse.sparsity["source"] == ("asdex" if backend == "jax" else "probed")
    assert sparse.sparsity["jacobian_nnz"] == 3 * (n - 2) and sparse.sparsity["passes"] == 3
    assert sparse.nhev == 0 and sparse.nhvp > 0  # no (n, n) matrix: Hessian-vector products only
    assert "sparsity" not in dense and dense.nhev > 0
    assert abs(sparse.fun - dense.fun) < 1e-8
    counts = sparse.constraint_evaluations[0]
    assert counts["njev"] >= 1 and counts["nhev"] >= 1


def test_trust_constr_user_pattern_and_errors():
    n = 60
    f, constraint = _banded(n, "torch")
    jac, hess = _tridiagonal_patterns(n)
    res = am.minimize(f, np.zeros(n), method="trust-constr", constraints=constraint, backend="torch", options={"jac_sparsity": jac})
    assert res.sparsity["source"] == "user" and res.sparsity["passes"] == 3
    with pytest.raises(ValueError, match="hess_sparsity.*ipopt"):
        am.minimize(f, np.zeros(n), method="trust-constr", constraints=constraint, backend="torch", options={"hess_sparsity": hess})
    with pytest.raises(ValueError, match="nonlinear constraints"):
        am.minimize(f, np.zeros(n), method="trust-constr", backend="torch", options={"sparse": True})


def _smoothing_residuals(n, like):
    """Data misfit and a nonlinear second-difference penalty: 2n - 2 residuals, banded J."""
    y = np.sin(3 * np.linspace(0.0, 1.0, n))
    if like == "torch":
        import torch

        y = torch.as_tensor(y)
        return lambda x: torch.cat([x - y, 10 * (x[:-2] - 2 * x[1:-1] + x[2:]) + 0.1 * x[1:-1] ** 3])
    import jax.numpy as jnp

    return lambda x: jnp.concatenate([x - y, 10 * (x[:-2] - 2 * x[1:-1] + x[2:]) + 0.1 * x[1:-1] ** 3])


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_least_squares_sparse_jacobian(backend):
    pytest.importorskip(backend)
    if backend == "jax":
        pytest.importorskip("asdex")
    n = 80
    r = _smoothing_residuals(n, backend)
    sparse = am.least_squares(r, np.zeros(n), backend=backend, jac_sparsity=True)
    dense = am.least_squares(r, np.zeros(n), backend=backend, jac_sparsity=False)
    assert sparse.sparsity["source"] == ("asdex" if backend == "jax" else "probed")
    assert sparse.sparsity["jacobian_nnz"] == n + 3 * (n - 2) and sparse.sparsity["passes"] == 3
    assert "sparsity" not in dense
    assert abs(sparse.cost - dense.cost) < 1e-9 * max(1.0, dense.cost)
    assert sparse.njev >= 1


def test_least_squares_sparse_jacobian_stays_sparse_on_the_result():
    n = 40
    r = _smoothing_residuals(n, "torch")
    sparse = am.least_squares(r, np.zeros(n), backend="torch", jac_sparsity=True)
    dense = am.least_squares(r, np.zeros(n), backend="torch", jac_sparsity=False)
    assert sp.issparse(sparse.jac) and sparse.jac.shape == (2 * n - 2, n)
    assert sparse.jac.nnz <= n + 3 * (n - 2)
    np.testing.assert_allclose(sparse.jac.toarray(), dense.jac, atol=1e-6)


def _tf_smoothing_residuals(n):
    import tensorflow as tf

    y = tf.constant(np.sin(3 * np.linspace(0.0, 1.0, n)))
    return lambda x: tf.concat([x - y, 10 * (x[:-2] - 2 * x[1:-1] + x[2:]) + 0.1 * x[1:-1] ** 3], axis=0)


@pytest.mark.parametrize("backend", ["jax", "torch", "tensorflow", "numpy"])
def test_least_squares_sparse_jacobian_with_a_fixed_variable(backend):
    """lower == upper holds a variable on the sparse paths too (scipy itself refuses it): the
    backend's compressed Jacobian on JAX, torch and TF, scipy's sparse differences on NumPy."""
    n = 30
    lower, upper = np.full(n, -np.inf), np.full(n, np.inf)
    lower[5] = upper[5] = 0.3
    if backend == "numpy":
        y = np.sin(3 * np.linspace(0.0, 1.0, n))
        r = lambda x: np.concatenate([x - y, 10 * (x[:-2] - 2 * x[1:-1] + x[2:]) + 0.1 * x[1:-1] ** 3])
        pattern = np.vstack([np.eye(n), sp.diags([1.0, 1.0, 1.0], [0, 1, 2], shape=(n - 2, n)).toarray()])
        sparse_options = {"jac": "2-point", "jac_sparsity": pattern}
    else:
        r = _tf_smoothing_residuals(n) if backend == "tensorflow" else _smoothing_residuals(n, backend)
        sparse_options = {"jac_sparsity": True}
    sparse = am.least_squares(r, np.zeros(n), bounds=(lower, upper), backend=backend, **sparse_options)
    dense = am.least_squares(r, np.zeros(n), bounds=(lower, upper), backend=backend, jac_sparsity=False if backend != "numpy" else None)
    assert sparse.x[5] == 0.3 and dense.x[5] == 0.3
    np.testing.assert_allclose(sparse.x, dense.x, atol=1e-4)  # LSMR and the exact solver stop at their own tolerances
    assert abs(sparse.cost - dense.cost) < 1e-8 * max(1.0, dense.cost)
    assert sp.issparse(sparse.jac) and sparse.jac.shape == (2 * n - 2, n)
    assert sparse.jac[:, 5].nnz == 0 and sparse.grad[5] == 0.0


def test_least_squares_user_pattern_and_errors():
    n = 40
    r = _smoothing_residuals(n, "torch")
    pattern = np.vstack([np.eye(n), sp.diags([1.0, 1.0, 1.0], [0, 1, 2], shape=(n - 2, n)).toarray()])
    res = am.least_squares(r, np.zeros(n), backend="torch", jac_sparsity=sp.csr_matrix(pattern))
    assert res.sparsity["source"] == "user" and res.sparsity["passes"] == 3
    with pytest.raises(ValueError, match="not 'lm'"):
        am.least_squares(r, np.zeros(n), backend="torch", method="lm", jac_sparsity=True)
    with pytest.raises(ValueError, match=r"^jac_sparsity has shape \(3, 40\); it must be \(78, 40\)"):
        am.least_squares(r, np.zeros(n), backend="torch", jac_sparsity=np.ones((3, n)))


def test_a_parameter_coupled_to_all_is_coloured_symmetrically():
    """A global scale s couples to every x in ∇²L: the stacked column colouring needs n + 1
    passes; J coloured alone plus a star colouring of ∇²L needs a handful, and its values
    equal the dense Lagrangian Hessian's entry by entry."""
    pytest.importorskip("asdex")
    import jax
    import jax.numpy as jnp

    from autominimize.backends import get_backend
    from autominimize.backends.lagrangian import Lagrangian
    from autominimize.backends.sparsity import detect_pattern
    from autominimize.params import ParamSpec

    n = 60
    h = 10.0 / (n - 1)
    y = _data(n)

    def f(p):
        x, s = p["x"], p["s"]
        return h * jnp.sum((x - s * y) ** 2) + jnp.sum(1 - jnp.cos(x[1:] - x[:-1])) + (s - 1.0) ** 2

    def c(p):
        x = p["x"]
        return x[:-2] - 2 * x[1:-1] + x[2:] + h * h * jnp.sin(x[1:-1])

    x0 = {"x": np.zeros(n), "s": 0.5}
    spec = ParamSpec.from_tree(x0)
    backend = get_backend("jax")
    rng = np.random.default_rng(2)
    x, lam = rng.standard_normal(n + 1), rng.standard_normal(n - 2)
    with jax.enable_x64(True):
        lagrangian = Lagrangian(backend.compile_scalar(f, spec, "float64"), [backend.compile_vector(c, spec, "float64")], n - 2, "float64")
        pattern = detect_pattern(lagrangian, np.zeros(n + 1), None)
        hess_c, jac_c = lagrangian.compressed(x, 1.3, lam, pattern.seeds())
        dense_h, dense_j = lagrangian.hessian_blocks(x, 1.3, lam)
    assert pattern.num_colors <= 8
    np.testing.assert_allclose(pattern.hessian_values(hess_c), dense_h[pattern.hess_rows, pattern.hess_cols], atol=1e-12)
    np.testing.assert_allclose(pattern.jacobian_values(jac_c), dense_j[pattern.jac_rows, pattern.jac_cols], atol=1e-12)


def test_a_dense_linear_constraint_stays_out_of_the_colouring():
    import scipy.optimize as so

    n = 60
    f, constraint = _banded(n, "torch")
    total = so.LinearConstraint(np.ones((1, n)), -np.inf, 10.0)
    res = am.minimize(f, np.zeros(n), method="ipopt", constraints=[constraint, total], backend="torch", options={"sparse": True})
    assert res.success and res.sparsity["passes"] == 3
    assert res.constr[1][0] <= 10.0 + 1e-8


def test_one_compiled_call_per_point_and_per_hessian(monkeypatch):
    """IPOPT asks for c then f at a trial point and, where it accepts it, for ∇f then J: ONE
    compiled call of [f, ∇f, c, J · S] for the four (were [f, c] and [f, ∇f, c, J · S], and
    before that four calls); a point's 3 compressed Hessian-vector products are one call, in
    x alone; a second solve of the same functions neither traces nor compiles again."""
    pytest.importorskip("asdex")
    from autominimize.backends import jax_backend

    calls, compiled = {}, []
    compile_function = jax_backend.compile_function

    def counting(function, *avals):
        executable = compile_function(function, *avals)
        compiled.append(function.__name__)

        def run(*arguments):
            calls[function.__name__] = calls.get(function.__name__, 0) + 1
            return executable(*arguments)

        return run

    monkeypatch.setattr(jax_backend, "compile_function", counting)
    n = 300
    f, constraint = _banded(n, "jax")
    first = am.minimize(f, np.zeros(n), method="ipopt", constraints=constraint, backend="jax", options={"sparse": True})
    traced = len(compiled)
    calls.clear()
    res = am.minimize(f, np.zeros(n), method="ipopt", constraints=constraint, backend="jax", options={"sparse": True})
    assert len(compiled) == traced and compiled.count("head_hvps") == compiled.count("first_order") == 1
    assert res.sparsity["cached"] and (res.nit, res.fun) == (first.nit, first.fun)
    counts = res.constraint_evaluations[0]
    assert calls["head_hvps"] == res.nhev == res.nit == 7
    # x0 and the 7 trial points, each accepted: one call each, whose f, ∇f, c and J IPOPT
    # was given, and no Jacobian asked for elsewhere (no forward passes alone)
    assert calls["first_order"] == res.nfev == res.njev == 8 and "jvps" not in calls
    assert (counts["nfev"], counts["njev"]) == (8, 9)  # IPOPT asks for J at x0 twice
    # no call of c alone: the constraints' size is known from the first solve (which evaluated
    # c at x0 for it), and c is computed with f everywhere IPOPT asks
    assert set(calls) == {"first_order", "head_hvps"}  # no per-product calls
    assert sum(calls.values()) == 15  # were 16 with c at x0 for its size, 23 with [f, c] apart, 31 with f, c, ∇f and J · S apart


def test_hessian_passes_take_x_and_multipliers_as_two_leaves(monkeypatch):
    """The Hessian's passes in x alone get x and [σ, λ] as the Lagrangian's two leaves: no
    array of the size of [x, σ, λ] in the compiled program (differentiated through their
    concatenation, the gradient was formed in all of it: 133 µs instead of 87 µs a call at
    n = 1000), and the same Hessian."""
    pytest.importorskip("asdex")
    import re

    programs = keep_jax_programs(monkeypatch)
    n = 300
    f, constraint = _banded(n, "jax")
    sparse = am.minimize(f, np.zeros(n), method="ipopt", constraints=constraint, backend="jax", options={"sparse": True})
    dense = am.minimize(f, np.zeros(n), method="ipopt", constraints=constraint, backend="jax", options={"sparse": False})
    augmented = n + 1 + (n - 2)
    assert "head_hvps" in programs and re.search(rf"\[(\d+,)?{augmented}\]", programs["head_hvps"][-1]) is None
    assert (sparse.nit, sparse.nhev) == (dense.nit, dense.nhev) and abs(sparse.fun - dense.fun) < 1e-12


def test_callbacks_per_solve_alike_for_ours_and_the_hand_built_triplets():
    """The benchmark's callback accounting: IPOPT asks ours and the hand-built problem for the
    same values and derivatives, as many times each."""
    pytest.importorskip("asdex")
    from benchmarks.ipopt import CALLBACKS, callback_costs

    rows = callback_costs(n=150, repeats=1)
    ours, hand = rows["am ipopt"], rows["hand-built"]
    assert {key: ours["calls"][key] for key in CALLBACKS[:5]} == hand["calls"]
    assert ours["calls"]["hessian"] == ours["calls"]["intermediate"] - 1 > 3  # no Hessian after the last iterate
    assert hand["ratio"] == 1.0 and ours["callbacks_s"] > 0


def test_counts_alike_with_pairs_in_one_call_and_apart():
    """Under error_handling='continue' the constraints' own evaluations say what a failed point
    is, so f, c, ∇f and J are computed apart: the same solve, and the same counts of the values
    IPOPT was given, as with each pair in one call."""
    pytest.importorskip("asdex")
    f, constraint = _banded(300, "jax")
    runs = [
        am.minimize(f, np.zeros(300), method="ipopt", constraints=constraint, backend="jax", options={"sparse": True}, error_handling=policy)
        for policy in ("raise", "continue")
    ]
    fused, apart = ((r.nit, r.fun, r.nfev, r.njev, r.nhev, r.constraint_evaluations) for r in runs)
    assert fused == apart
    assert fused[2:] == (8, 8, 7, [{"name": "constraints", "nfev": 8, "njev": 9, "nhev": 7}])


@pytest.mark.parametrize(
    "options",
    [
        {"sparse": True},
        {"jac_sparsity": _tridiagonal_patterns(300)[0], "hess_sparsity": _tridiagonal_patterns(300)[1]},
        {"sparse": True, "hessian_approximation": "limited-memory"},
    ],
    ids=["detected", "given", "quasi-newton"],
)
def test_a_second_solve_traces_detects_and_colours_nothing(monkeypatch, options):
    """A second solve of the same functions re-uses the first one's set-up: no trace, no
    pattern detection, no colouring, and no evaluation at x0 to size the constraints; the
    compiled calls are those IPOPT's requests make, and the solve is the same."""
    pytest.importorskip("asdex")
    from autominimize.backends import jax_backend, sparsity

    counts = {"traces": 0, "detections": 0, "colourings": 0, "sizing": 0}

    def counting(key, function):
        def counted(*arguments, **keywords):
            counts[key] += 1
            return function(*arguments, **keywords)

        return counted

    monkeypatch.setattr(jax_backend.JaxScalar, "tree_fun", counting("traces", jax_backend.JaxScalar.tree_fun))
    monkeypatch.setattr(jax_backend.JaxVector, "flat_fun", counting("traces", jax_backend.JaxVector.flat_fun))
    monkeypatch.setattr(jax_backend.JaxVector, "value", counting("sizing", jax_backend.JaxVector.value))
    monkeypatch.setattr(sparsity, "_asdex_pattern", counting("detections", sparsity._asdex_pattern))
    monkeypatch.setattr(sparsity, "color_columns", counting("colourings", sparsity.color_columns))
    n = 300
    f, constraint = _banded(n, "jax")

    def solve():
        return am.minimize(f, np.zeros(n), method="ipopt", constraints=constraint, backend="jax", options=dict(options))

    first = solve()
    assert counts["traces"] > 0 and counts["colourings"] > 0
    counts.update(dict.fromkeys(counts, 0))
    again = solve()
    assert counts == {"traces": 0, "detections": 0, "colourings": 0, "sizing": 0}
    assert again.sparsity["cached"] and again.sparsity["passes"] == first.sparsity["passes"] == 3
    assert (again.nit, again.fun, again.nfev, again.constraint_evaluations) == (first.nit, first.fun, first.nfev, first.constraint_evaluations)


def test_ipopt_callbacks_make_few_python_calls_in_the_library():
    """Python calls into the library inside each IPOPT callback of a warm sparse solve on JAX,
    the most over the solve (counted, not timed). Before this count was taken: c 10, J 6 and
    the Hessian 13 (each count through a constraint's property, a getter and a setter, and the
    compiled calls' inputs passed through a conversion that float64 does not need)."""
    pytest.importorskip("asdex")
    import os
    import sys

    from autominimize.drivers import ipopt as driver

    n = 300
    f, constraint = _banded(n, "jax")

    def solve():
        return am.minimize(f, np.zeros(n), method="ipopt", constraints=constraint, backend="jax", options={"sparse": True})

    solve()
    root = os.path.dirname(am.__file__)
    kinds = {getattr(driver.problem_class(), kind).__code__: kind for kind in ("constraints", "jacobian", "hessian", "intermediate")}
    open_calls: list[list] = []
    most = dict.fromkeys(kinds.values(), 0)

    def profile(frame, event, arg):
        code = frame.f_code
        if event == "call" and code in kinds:
            open_calls.append([kinds[code], 0])
        if event == "call" and open_calls and code.co_filename.startswith(root):
            open_calls[-1][1] += 1
        if event == "return" and code in kinds:
            kind, count = open_calls.pop()
            most[kind] = max(most[kind], count)

    sys.setprofile(profile)
    try:
        res = solve()
    finally:
        sys.setprofile(None)
    assert res.success and res.sparsity["cached"]
    # c: the callback, its guard, the evaluator's and the point's fused call (2 frames: the
    # compiled call's own wrapper splits its output; were 3, and a frame more to keep c);
    # J: read from that call; the Hessian: the journal's row and its passes, JAX's call as it
    # is (were a frame more, which put σ and λ together); an iteration: the callback, the
    # journal's row with the iterate read from the objective's cache (IPOPT is not asked for
    # it); the history looks at the points it keeps only once they could exceed its budget
    assert most == {"constraints": 5, "jacobian": 4, "hessian": 8, "intermediate": 3}


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_iterations_recorded_without_asking_ipopt_for_its_iterate(monkeypatch, backend):
    """The history's iterates, and a callback's, are IPOPT's current iterates, taken from the
    objective's cache (the point where IPOPT asked for ∇f last) instead of asked of IPOPT at
    each iteration (``get_current_iterate``: 15-23 µs an iteration at n = 1000)."""
    pytest.importorskip(backend)
    if backend == "jax":
        pytest.importorskip("asdex")
    asked, spied = spy_ipopt_iterates(monkeypatch)
    n = 300
    f, constraint = _banded(n, backend)
    seen = []
    res = am.minimize(
        f, np.zeros(n), method="ipopt", constraints=constraint, backend=backend, history=True, callback=lambda x: seen.append(np.array(x))
    )
    iterates = [x for _, x in spied]
    assert res.success and res.nit == len(iterates) > 3 and not asked
    recorded = [row.x for row in res.history.iterations]
    for points in (recorded, seen):
        assert len(points) == res.nit
        for point, iterate in zip(points, iterates):
            np.testing.assert_array_equal(point, iterate)


def test_a_colourings_passes_loop_over_one_linearization(monkeypatch):
    """The compressed passes of the Hessian and of J run in a loop over the linear map of one
    linearization: every sine and cosine of the pendulum is computed before the loop, once,
    not again in each pass (XLA fused a mapped pass into one loop over its outputs, which
    computed them again for each output: 247 µs against 118 µs a Hessian at n = 1000). The
    identity's n passes of a dense problem stay mapped, and the solves agree."""
    pytest.importorskip("asdex")
    import re

    programs = keep_jax_programs(monkeypatch)
    n = 300
    f, constraint = _banded(n, "jax")
    sparse = am.minimize(f, np.zeros(n), method="ipopt", constraints=constraint, backend="jax", options={"sparse": True})
    dense = am.minimize(f, np.zeros(n), method="ipopt", constraints=constraint, backend="jax", options={"sparse": False})
    (hessian,), (looped, mapped) = programs["head_hvps"], programs["first_order"]
    for program in (hessian, looped):
        assert program.count(" while(") == 1
        trigonometric = [line for line in program.splitlines() if re.search(r" (sine|cosine)\(", line)]
        assert trigonometric and not any("while/body" in line for line in trigonometric)
    assert " while(" not in mapped
    assert (sparse.nit, sparse.nfev, sparse.nhev) == (dense.nit, dense.nfev, dense.nhev) and abs(sparse.fun - dense.fun) < 1e-12
