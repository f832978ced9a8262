"""What each scipy.optimize.minimize method uses, so that it gets exactly that."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodInfo:
    """Capabilities of one method.

    ``gradient`` is ``None`` (never uses one), ``"fused"`` (every value it asks for is followed
    by a gradient at the same point: compute both in one call), ``"lazy"`` (it also asks for
    values alone: compute the gradient only when asked) or ``"scipy"`` (the user chose scipy's
    finite differences with ``jac='2-point'`` and the like). ``second_order`` is ``None``,
    ``"hessp"`` or ``"hess"``: the default kind of second-order information it gets.
    """

    gradient: str | None
    second_order: str | None
    bounds: bool
    constraints: bool
    new_callback: bool = True


METHODS: dict[str, MethodInfo] = {
    "nelder-mead": MethodInfo(None, None, bounds=True, constraints=False),
    "powell": MethodInfo(None, None, bounds=True, constraints=False),
    "cobyla": MethodInfo(None, None, bounds=True, constraints=True),
    "cobyqa": MethodInfo(None, None, bounds=True, constraints=True),
    "cg": MethodInfo("fused", None, bounds=False, constraints=False),
    "bfgs": MethodInfo("fused", None, bounds=False, constraints=False),
    "l-bfgs-b": MethodInfo("fused", None, bounds=True, constraints=False),
    "tnc": MethodInfo("fused", None, bounds=True, constraints=False, new_callback=False),
    "newton-cg": MethodInfo("fused", "hessp", bounds=False, constraints=False),
    "slsqp": MethodInfo("lazy", None, bounds=True, constraints=True),
    "trust-constr": MethodInfo("lazy", "hess", bounds=True, constraints=True),
    "dogleg": MethodInfo("lazy", "hess", bounds=False, constraints=False),
    "trust-ncg": MethodInfo("lazy", "hessp", bounds=False, constraints=False),
    "trust-exact": MethodInfo("lazy", "hess", bounds=False, constraints=False),
    "trust-krylov": MethodInfo("lazy", "hessp", bounds=False, constraints=False),
}

#: A user-supplied callable method gets the gradient and HVPs, and bounds and constraints.
CUSTOM_METHOD = MethodInfo("lazy", "hessp", bounds=True, constraints=True)

_BOUNDS_METHODS = ", ".join(name for name, info in METHODS.items() if info.bounds)
_CONSTRAINT_METHODS = ", ".join(name for name, info in METHODS.items() if info.constraints)


def method_name(method: object, has_bounds: bool, has_constraints: bool) -> str:
    """Canonical lower-case name; ``None`` picks scipy's default for the problem."""
    if method is None:
        if has_constraints:
            return "slsqp"
        return "l-bfgs-b" if has_bounds else "bfgs"
    if not isinstance(method, str):
        raise TypeError(f"method must be a string or a callable; got {type(method).__name__}.")
    name = method.lower()
    if name not in METHODS:
        raise ValueError(f"method={method!r} is not a scipy.optimize.minimize method; choose one of: {', '.join(METHODS)}, or pass a callable.")
    return name


def check_supports(name: str, info: MethodInfo, has_bounds: bool, has_constraints: bool) -> None:
    """Refuse what scipy would silently drop with only a warning."""
    if has_bounds and not info.bounds:
        raise ValueError(
            f"method={name!r} cannot handle bounds (scipy would ignore them); use one of: "
            f"{_BOUNDS_METHODS}."
        )
    if has_constraints and not info.constraints:
        raise ValueError(
            f"method={name!r} cannot handle constraints (scipy would ignore them); use one of: "
            f"{_CONSTRAINT_METHODS}."
        )
