"""Drivers: where scipy, IPOPT and the native state machines are run on a problem."""
