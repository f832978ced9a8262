"""Test problems for autominimize and its users: :mod:`autominimize.testing.mgh`."""

from . import mgh

__all__ = ["mgh"]
