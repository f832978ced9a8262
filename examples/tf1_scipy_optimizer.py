"""TF1's ScipyOptimizerInterface examples, in TF2 with am.tf.ScipyOptimizerInterface.

The three examples of ``tf.contrib.opt.ScipyOptimizerInterface``'s documentation. In TF2 the
loss and the constraints are zero-argument callables reading the variables, and since a
``tf.Variable`` cannot be a dict key, ``var_to_bounds`` is keyed by ``variable.ref()``.

Run with ``python examples/tf1_scipy_optimizer.py``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

import autominimize as am


def main() -> dict[str, np.ndarray]:
    vector = tf.Variable([7.0, 7.0], name="vector")

    def loss():  # make the vector's norm as small as possible
        return tf.reduce_sum(tf.square(vector))

    def y_is_one():
        return vector[1] - 1.0

    def x_at_least_one():
        return vector[0] - 1.0

    report = {}
    optimizer = am.tf.ScipyOptimizerInterface(loss, options={"maxiter": 100})
    optimizer.minimize()
    report["unconstrained"] = vector.numpy()  # [0, 0]

    vector.assign([7.0, 7.0])
    optimizer = am.tf.ScipyOptimizerInterface(loss, var_to_bounds={vector.ref(): ([1, 2], np.inf)})
    optimizer.minimize()
    report["bounds"] = vector.numpy()  # [1, 2]

    vector.assign([7.0, 7.0])
    optimizer = am.tf.ScipyOptimizerInterface(loss, equalities=[y_is_one], inequalities=[x_at_least_one], method="SLSQP")
    optimizer.minimize()
    report["constraints"] = vector.numpy()  # [1, 1]

    for label, value in report.items():
        print(f"{label:<14} {np.round(value, 6)}")
    return report


if __name__ == "__main__":
    main()
