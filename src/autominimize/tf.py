"""TensorFlow 2 successor of TF1's ``tf.contrib.opt.ScipyOptimizerInterface``.

TF1 built the loss and constraints as graph tensors and fed variable values through a
session. In TF2 the loss and each constraint are zero-argument callables reading
``tf.Variable``\\s; every evaluation assigns the point to the variables and runs the loss in
one ``tf.function`` (traced once, with a fixed input signature), and the gradients,
Hessian-vector products, Hessians and constraint Jacobians come from ``GradientTape``.
"""

from .integrations.tf_scipy import ScipyOptimizerInterface

__all__ = ["ScipyOptimizerInterface"]
