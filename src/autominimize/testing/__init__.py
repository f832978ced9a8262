"""Test problems for autominimize and its users: :mod:`autominimize.testing.mgh` (least
squares) and :mod:`autominimize.testing.hock_schittkowski` (constrained)."""

from . import hock_schittkowski, mgh

__all__ = ["hock_schittkowski", "mgh"]
