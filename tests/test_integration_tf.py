"""am.tf.ScipyOptimizerInterface: TF1's documented examples and the TF2 behaviour around them."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import autominimize as am  # noqa: E402


def norm_loss(vector):
    def loss():
        return tf.reduce_sum(tf.square(vector))

    return loss


def test_tf1_example_unconstrained_vector_norm():
    vector = tf.Variable([7.0, 7.0], name="vector")
    result = am.tf.ScipyOptimizerInterface(norm_loss(vector), options={"maxiter": 100}).minimize()
    np.testing.assert_allclose(vector.numpy(), [0.0, 0.0], atol=1e-5)
    assert vector.dtype == tf.float32 and result.success and result.precision == "float32"


def test_tf1_example_bounds_broadcast_to_the_variable():
    vector = tf.Variable([7.0, 7.0], name="vector")
    optimizer = am.tf.ScipyOptimizerInterface(norm_loss(vector), var_to_bounds={vector.ref(): ([1, 2], np.inf)})
    optimizer.minimize()
    np.testing.assert_allclose(vector.numpy(), [1.0, 2.0])


def test_tf1_example_equality_and_inequality_with_slsqp():
    vector = tf.Variable([7.0, 7.0], name="vector")
    optimizer = am.tf.ScipyOptimizerInterface(
        norm_loss(vector),
        equalities=[lambda: vector[1] - 1.0],  # y == 1
        inequalities=[lambda: vector[0] - 1.0],  # x >= 1
        method="SLSQP",
    )
    result = optimizer.minimize()
    np.testing.assert_allclose(vector.numpy(), [1.0, 1.0], atol=1e-6)
    assert [entry["njev"] > 0 for entry in result.constraint_evaluations] == [True, True]


def test_variables_are_updated_in_place_and_the_result_is_kept():
    matrix = tf.Variable(np.ones((2, 3), dtype=np.float64))
    target = np.arange(6.0).reshape(2, 3)
    optimizer = am.tf.ScipyOptimizerInterface(
        lambda: tf.reduce_sum((matrix - target) ** 2 + (matrix - target) ** 4), var_list=[matrix], method="Newton-CG"
    )
    handle = matrix.handle
    result = optimizer.minimize()
    assert matrix.handle is handle and matrix.dtype == tf.float64
    np.testing.assert_allclose(matrix.numpy(), target, atol=1e-6)
    assert optimizer.result is result and result.x.shape == (6,) and result.nhvp > 0


def test_var_to_bounds_by_name_and_as_pairs_broadcast_like_tf1():
    # TF1's documented broadcasting for a 3x2 variable: (-inf, [1, 2]) and (-inf, [[1], [2], [3]])
    for upper, expected in (([1.0, 2.0], [[1, 2]] * 3), ([[1.0], [2.0], [3.0]], [[1, 1], [2, 2], [3, 3]])):
        matrix = tf.Variable(np.zeros((3, 2)), name="matrix")
        loss = lambda: -tf.reduce_sum(matrix)  # noqa: E731 - pushes every element to its upper bound
        for bounds in ({"matrix": (-np.inf, upper)}, [(matrix, (-np.inf, upper))]):
            matrix.assign(np.zeros((3, 2)))
            am.tf.ScipyOptimizerInterface(loss, var_to_bounds=bounds).minimize()
            np.testing.assert_allclose(matrix.numpy(), expected)


def test_var_list_none_collects_the_trainable_variables_the_loss_reads():
    used = tf.Variable([3.0], name="used")
    frozen = tf.Variable([5.0], name="frozen", trainable=False)
    unused = tf.Variable([9.0], name="unused")
    optimizer = am.tf.ScipyOptimizerInterface(lambda: tf.reduce_sum((used - frozen) ** 2))
    assert [v.name for v in optimizer.variables] == ["used:0"]
    optimizer.minimize()
    assert used.numpy()[0] == pytest.approx(5.0, abs=1e-4)
    assert frozen.numpy()[0] == 5.0 and unused.numpy()[0] == 9.0


def test_a_tf_module_gives_its_trainable_variables():
    class Quadratic(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable([2.0, -3.0])

        def __call__(self):
            return tf.reduce_sum((self.w - 0.5) ** 2)

    module = Quadratic()
    am.tf.ScipyOptimizerInterface(module).minimize()
    np.testing.assert_allclose(module.w.numpy(), [0.5, 0.5], atol=1e-5)


def test_counts_match_am_minimize_on_the_same_problem():
    start = np.array([-1.2, 1.0, 0.5, -0.3])

    def rosen(x):
        return tf.reduce_sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    for method in ("L-BFGS-B", "trust-ncg", "trust-exact", "Nelder-Mead"):
        x = tf.Variable(start)
        result = am.tf.ScipyOptimizerInterface(lambda: rosen(x), method=method, options={"maxiter": 200}).minimize()
        reference = am.minimize(rosen, start, method=method, backend="tensorflow", options={"maxiter": 200})
        counts = (result.nfev, result.njev, result.nhev, result.nhvp)
        assert counts == (reference.nfev, reference.njev, reference.nhev, reference.nhvp)
        np.testing.assert_allclose(x.numpy(), reference.x, rtol=1e-7, atol=1e-9)


def test_step_and_loss_callbacks_with_fetches():
    vector = tf.Variable([7.0, 7.0])
    steps, losses = [], []
    optimizer = am.tf.ScipyOptimizerInterface(norm_loss(vector))
    result = optimizer.minimize(
        step_callback=steps.append,
        loss_callback=lambda loss, value, doubled: losses.append((loss, value, doubled)),
        fetches=[vector, lambda: 2 * vector],
    )
    assert len(steps) == result.nit and all(s.dtype == np.float64 and s.shape == (2,) for s in steps)
    assert len(losses) == result.nfev
    loss, value, doubled = losses[0]
    assert loss == pytest.approx(98.0) and value.tolist() == [7.0, 7.0] and doubled.tolist() == [14.0, 14.0]


def test_step_callback_returning_true_stops():
    vector = tf.Variable([7.0, -3.0, 2.0])
    result = am.tf.ScipyOptimizerInterface(lambda: tf.reduce_sum(vector**4)).minimize(step_callback=lambda x: True)
    assert not result.success and result.nit == 1


def test_keras_variables_through_a_model():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("Keras runs on another backend in this process")
    model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1)])
    X = np.random.default_rng(0).normal(size=(30, 2)).astype("float32")
    y = X @ np.array([[1.5], [-0.5]], dtype="float32") + 0.25
    kernel = model.layers[0].kernel

    def loss():
        return tf.reduce_mean((model(X) - y) ** 2)

    am.tf.ScipyOptimizerInterface(loss, var_list=model).minimize()
    np.testing.assert_allclose(kernel.numpy().ravel(), [1.5, -0.5], atol=1e-4)


def test_bad_input_names_the_argument_and_the_remedy():
    vector = tf.Variable([7.0, 7.0])
    loss = norm_loss(vector)
    with pytest.raises(ValueError, match="cannot handle equalities or inequalities; use method='SLSQP' or 'trust-constr'"):
        am.tf.ScipyOptimizerInterface(loss, equalities=[lambda: vector[0]])
    with pytest.raises(TypeError, match="bounds is not accepted here; use var_to_bounds"):
        am.tf.ScipyOptimizerInterface(loss, bounds=(0, 1))
    with pytest.raises(TypeError, match="zero-argument callable"):
        am.tf.ScipyOptimizerInterface(loss(), var_list=[vector])
    with pytest.raises(TypeError, match=r"inequalities\[0\] is a .*zero-argument callable"):
        am.tf.ScipyOptimizerInterface(loss, inequalities=[vector[0] - 1.0], method="SLSQP")
    with pytest.raises(ValueError, match="not one of the variables being optimized"):
        am.tf.ScipyOptimizerInterface(loss, var_to_bounds={"other": (0, 1)})
    with pytest.raises(TypeError, match=r"var_list\[0\] is a ndarray; expected a tf.Variable"):
        am.tf.ScipyOptimizerInterface(loss, var_list=[np.zeros(2)])
    with pytest.raises(ValueError, match="reads no trainable tf.Variable"):
        am.tf.ScipyOptimizerInterface(lambda: tf.constant(1.0))
    with pytest.raises(TypeError, match="give loss_callback too"):
        am.tf.ScipyOptimizerInterface(loss).minimize(fetches=[vector])


def test_a_failing_loss_restores_the_variables():
    vector = tf.Variable([7.0, 7.0])

    def loss():
        with tf.control_dependencies([tf.debugging.assert_greater(vector[0], 6.5, message="out of range")]):
            return tf.reduce_sum(vector**2)

    with pytest.raises(tf.errors.InvalidArgumentError, match="out of range"):
        am.tf.ScipyOptimizerInterface(loss).minimize()
    assert vector.numpy().tolist() == [7.0, 7.0]


def test_history_and_log_record_the_solve(tmp_path):
    vector = tf.Variable([7.0, -3.0], dtype=tf.float64)
    path = tmp_path / "tf.sqlite"
    optimizer = am.tf.ScipyOptimizerInterface(lambda: tf.reduce_sum((vector - 1.0) ** 2), method="BFGS", log=path)
    result = optimizer.minimize()
    kinds = [e.kind for e in result.history.evaluations]
    assert kinds.count("value_and_gradient") == result.nfev == result.njev
    assert len(result.history.iterations) == result.nit
    logged = am.read_log(path)
    assert (logged.method, logged.backend, logged.precision) == ("bfgs", "tensorflow", "float64")
    assert len(logged.history.evaluations) == result.nfev and logged.success
    np.testing.assert_allclose(logged.best_x, [1.0, 1.0], atol=1e-6)
    quiet = am.tf.ScipyOptimizerInterface(lambda: tf.reduce_sum((vector - 2.0) ** 2), history=False).minimize()
    assert "history" not in quiet
    with pytest.raises(TypeError, match="the extra arguments are tol, hessp, history, log, progress"):
        am.tf.ScipyOptimizerInterface(lambda: tf.reduce_sum(vector), histroy=False)
