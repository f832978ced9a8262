"""What each scipy.optimize.minimize method uses, so that it gets exactly that."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
    # not scipy's: IPOPT through cyipopt (drivers/ipopt.py), Hessians of the Lagrangian
    "ipopt": MethodInfo("lazy", "hess", bounds=True, constraints=True),
}

#: A user-supplied callable method gets the gradient and HVPs, and bounds and constraints.
CUSTOM_METHOD = MethodInfo("lazy", "hessp", bounds=True, constraints=True)

_BOUNDS_METHODS = ", ".join(name for name, info in METHODS.items() if info.bounds)
_GRADIENT_METHODS = ", ".join(name for name, info in METHODS.items() if info.gradient is not None)
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
        raise ValueError(f"method={name!r} cannot handle bounds (scipy would ignore them); use one of: {_BOUNDS_METHODS}.")
    if has_constraints and not info.constraints:
        raise ValueError(f"method={name!r} cannot handle constraints (scipy would ignore them); use one of: {_CONSTRAINT_METHODS}.")


def check_gradient_use(name: str, info: MethodInfo, jac: Any) -> None:
    """Refuse a gradient (a callable ``jac`` or a difference scheme) for a method that never uses
    one, where scipy would drop it with only a warning. ``jac=True`` is taken: fun returns
    (value, gradient) and the method reads the value alone, as scipy does."""
    if info.gradient is None and (callable(jac) or isinstance(jac, str)):
        raise ValueError(f"method={name!r} does not use gradients; jac would be ignored. Use one of: {_GRADIENT_METHODS}, or leave jac unset.")


def second_order_for(name: str, info: MethodInfo, hess: Any, hessp: Any) -> Any:
    """The second-order information ``name`` gets: its default, or what ``hess``/``hessp`` ask for."""
    user_gives = hess is not None or hessp is not None
    if info.second_order is None:
        if user_gives:
            raise ValueError(
                f"method={name!r} does not use second-order information; hess/hessp would be "
                "ignored. Use Newton-CG, trust-ncg, trust-krylov, trust-exact, dogleg or trust-constr."
            )
        return None
    if hessp is not None and not (hessp is True or callable(hessp)):
        raise TypeError(f"hessp must be a callable hessp(x, p) returning the Hessian times p, or True (autodiff); got {hessp!r}.")
    if hess is not None and not (hess is True or callable(hess)):
        if name != "trust-constr":
            raise ValueError(f"hess={hess!r}: only trust-constr accepts a HessianUpdateStrategy or difference scheme.")
        return hess
    wants_hessian = hess is not None
    wants_hvp = hessp is not None
    if wants_hessian and wants_hvp:
        raise ValueError("give either hess or hessp, not both.")
    if wants_hvp and name in ("dogleg", "trust-exact"):
        raise ValueError(f"method={name!r} needs the full Hessian; pass hess (or leave both unset) instead of hessp.")
    if wants_hessian:
        return "hess"
    if wants_hvp:
        return "hessp"
    return info.second_order
