"""Shared internals of the framework integrations (``am.torch``, ``am.keras``, ``am.tf``).

The integrations evaluate objectives that read and write the framework's own parameter
objects (torch parameters, ``tf.Variable``\\s) instead of pure functions of a parameter
structure, so they build their own flat functions and hand them to :func:`solve.solve`,
which runs them through the scipy pipeline ``am.minimize`` runs too
(:mod:`autominimize.drivers.scipy_pipeline`).
"""
