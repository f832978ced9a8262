"""``am.curve_fit``: scipy's ``curve_fit`` as a least-squares solve with an exact Jacobian.

The model's residuals ``(f(xdata, *p) - ydata)``, weighted by ``sigma``, are solved by
``am.least_squares``; the data enter f in the parameters' array type.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import numpy as np

from ._least_squares import least_squares
from .backends import array_backend, constant_like, ravel_like
from .backends.common import flatten_output
from .calling import is_number_list
from .drivers.curve_fit import covariance, positional, spread, weights
from .implicit import differentiable_call
from .implicit.entry import curve_fit as differentiable_curve_fit
from .params import ParamSpec, leaf_kind, leaf_to_numpy, tree_leaves
from .recording import nested_solves
from .validation import check_known, check_model, check_switch, check_switches, is_one_of

__all__ = ["curve_fit"]


def curve_fit(
    f: Callable,
    xdata: Any,
    ydata: Any,
    p0: Any = None,
    sigma: Any = None,
    absolute_sigma: bool = False,
    check_finite: bool | None = None,
    bounds: Any = None,
    method: str | None = None,
    jac: Callable | str | None = None,
    *,
    full_output: bool = False,
    nan_policy: str | None = None,
    backend: str | None = None,
    precision: str | None = None,
    **kwargs: Any,
) -> tuple:
    """Fit ``f(xdata, *params)`` to ``ydata``; scipy's ``curve_fit`` with an autodiff Jacobian.

    Parameters
    ----------
    f : callable
        The model. With ``p0`` a flat list/tuple/1-D array of numbers it is called
        ``f(xdata, *p)`` (scipy's convention); with a dict of names, ``f(xdata, **p)``; with
        any other structure, ``f(xdata, p)``. ``xdata`` is passed in the parameters' array
        type (a NumPy float array is converted once per framework), so ``torch.exp(-k * x)``
        works. f gets its own copy of xdata, which it may not write into: a write raises a
        ValueError (a NumPy copy is read-only; a torch one is checked after each call).
    xdata, ydata
        The data; ``ydata`` may be any structure matching f's output (raveled).
    p0 : optional
        The starting point, any structure; by default ones, one per parameter of ``f`` after
        the first (scipy's rule).
    sigma, absolute_sigma
        As in scipy: a 1-D sigma weights the residuals by ``1/sigma``, a 2-D sigma is the
        covariance of ``ydata``.
    check_finite, nan_policy
        As in scipy: ``check_finite`` (default True unless ``nan_policy`` is given) raises on
        NaN or inf in the data; ``nan_policy='omit'`` drops such points, 'raise' raises.
    bounds : optional
        Any bounds form accepted by ``am.least_squares``.
    method : {'lm', 'trf', 'dogbox'}, optional
        'lm' without bounds, 'trf' with them (scipy's default).
    jac : callable or scheme, optional
        The Jacobian of ``f`` with respect to the parameters (called like ``f``); None uses
        the backend's.
    full_output : bool
        Also return ``infodict`` (``nfev``, ``njev``, ``fvec``, ``fjac``), ``mesg``, ``ier``.
    backend, precision
        As in ``am.minimize``.
    **kwargs
        Passed to :func:`~autominimize.least_squares` (``ftol``, ``max_nfev``, ``loss``, ...).
        scipy's ``maxfev`` (leastsq's name, for 'lm') is taken as ``max_nfev`` for every
        method, as scipy's curve_fit passes it to 'trf' and 'dogbox'; 0 is the default.

    Returns
    -------
    popt : ndarray or p0's structure
        The fitted parameters: a float64 ndarray for a list or tuple of numbers (as scipy
        returns), else p0's structure and array type.
    pcov : ndarray (n, n)
        Their covariance over the flat parameter vector: x0's leaves in x0's own order (a
        dict's in the order of its keys, as in ``popt``).

    Raises
    ------
    KeyboardInterrupt
        A Ctrl-C stops the fit and propagates, with the point of lowest cost evaluated in
        ``exc.autominimize_best_x`` (in popt's form) and its cost ``0.5 * r @ r`` in
        ``exc.autominimize_best_f``.

    Examples
    --------
    >>> import numpy as np
    >>> import autominimize as am
    >>> x = np.linspace(0, 4, 30)
    >>> y = 3.0 * np.exp(-0.7 * x) + 0.5
    >>> popt, pcov = am.curve_fit(lambda x, a, k, c: a * np.exp(-k * x) + c, x, y, p0=[1.0, 1.0, 0.0])
    >>> popt.round(6).tolist(), pcov.shape
    ([3.0, 0.7, 0.5], (3, 3))
    """
    if not callable(f):
        raise TypeError(f"f must be callable; got {type(f).__name__}.")
    for name in ("args", "kwargs"):
        if name in kwargs:
            raise TypeError(
                f"curve_fit takes no {name}=: it calls f(xdata, *params) as scipy's does; give f its extra arguments "
                "with functools.partial or a closure."
            )
    check_known(kwargs, _passed_on(), "curve_fit got unknown keyword argument(s)")
    check_switches(absolute_sigma=absolute_sigma, full_output=full_output)
    check_switch(check_finite, "check_finite", none=True)
    p0 = _default_p0(f) if p0 is None else p0
    x0 = _start(p0)
    kwargs = _max_nfev_of_maxfev(kwargs)
    how = spread(f, p0)
    check_model(f, how, p0)
    if differentiable_call((xdata, ydata, sigma), f):  # popt differentiable with respect to the data (or values f captures)
        with nested_solves():  # a Ctrl-C propagates, with the best point (popt's form already)
            return differentiable_curve_fit(curve_fit, locals(), least_squares)
    x_array, y, keep = _finite_data(xdata, flatten_output(ydata, "ydata"), check_finite, nan_policy)
    data = _Data(x_array, y, *weights(sigma, y, keep))
    # a list p0 solved as one vector reaches f as that vector's items, indexed as an array
    # start's are (a symbolic TensorFlow tensor cannot be unpacked with *)
    start, spread_as = (x0, "array") if how == "args" and x0 is not p0 else (p0, how)
    residual = _residuals(f, start, spread_as, data)
    residual_jac = _residual_jacobian(jac, start, spread_as, data) if callable(jac) else jac
    if method is None:
        method = "trf" if bounds is not None else "lm"
    try:
        with nested_solves():  # curve_fit has no status to return a Ctrl-C with: it propagates, with the best point
            res = least_squares(
                residual, x0, jac=residual_jac, bounds=bounds, method=method, backend=backend, precision=precision, unpack="none", **kwargs
            )
    except KeyboardInterrupt as exc:
        if getattr(exc, "autominimize_best_x", None) is not None:
            exc.autominimize_best_x = _popt(exc.autominimize_best_x, how, p0)
        raise
    if not res.success:
        raise RuntimeError(f"Optimal parameters not found: {res.message}")
    pcov = covariance(res.jac, 2 * res.cost, y.size, absolute_sigma)
    popt = _popt(res.x, how, p0)
    if full_output:
        info = {"nfev": res.nfev, "njev": res.njev, "fvec": res.fun, "fjac": res.jac}
        return popt, pcov, info, res.message, res.status
    return popt, pcov


def _popt(x: Any, how: str, p0: Any) -> Any:
    """x as popt: scipy's float64 ndarray for a list or tuple of numbers, else p0's structure."""
    if how == "args" and all(leaf_kind(v) in ("python", "numpy") for v in tree_leaves(p0)):
        return np.asarray(x, dtype=np.float64)
    return x


@functools.cache
def _passed_on() -> tuple[str, ...]:
    """The keywords curve_fit passes on to am.least_squares (scipy's maxfev included)."""
    own = ("fun", "x0", "jac", "bounds", "method", "backend", "precision", "unpack", "fun_and_jac", "args", "kwargs")
    return ("maxfev",) + tuple(name for name in inspect.signature(least_squares).parameters if name not in own)


def _max_nfev_of_maxfev(kwargs: dict) -> dict:
    """``kwargs`` with scipy's ``maxfev`` renamed ``max_nfev``: every method runs on least_squares."""
    if "maxfev" not in kwargs:
        return kwargs
    if "max_nfev" in kwargs:
        raise TypeError("give maxfev or max_nfev (the same limit on evaluations), not both.")
    kwargs = dict(kwargs)
    maxfev = kwargs.pop("maxfev")
    kwargs["max_nfev"] = None if maxfev == 0 else maxfev  # leastsq's 0: the default
    return kwargs


def _start(p0: Any) -> Any:
    """p0 as the solve's x0, read once: scipy's flat list or tuple of finite numbers is one
    float64 vector (the ndarray popt is; a list of three numbers is read in about 57 µs, the
    vector in 3), read by the solve alone since nothing in it can be wrong. Any other p0 is
    read here first, so that a malformed one is named p0 rather than x0."""
    if is_number_list(p0):
        x0 = np.asarray(p0, dtype=np.float64)
        if np.isfinite(x0).all():
            return x0
    ParamSpec.from_tree(p0, "p0")
    return p0


def _default_p0(f: Callable) -> list[float]:
    """scipy's p0: ones, one per parameter of f after xdata."""
    parameters = [p for p in inspect.signature(f).parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(parameters) < 2:
        raise ValueError("p0 is not given and f's signature names no parameter after xdata; pass p0.")
    return [1.0] * (len(parameters) - 1)


def _finite_data(xdata: Any, y: np.ndarray, check_finite: bool | None, nan_policy: str | None) -> tuple[Any, np.ndarray, np.ndarray | None]:
    """xdata and the flat ydata under scipy's ``check_finite`` and ``nan_policy``, and the
    mask of the points kept where points were dropped (else None)."""
    x_array = xdata
    if check_finite is None:
        check_finite = nan_policy is None
    if not is_one_of(nan_policy, (None, "raise", "omit")):
        raise ValueError(f"nan_policy={nan_policy!r} is not supported; use None, 'raise' or 'omit'.")
    finite = np.isfinite(y)
    if isinstance(xdata, np.ndarray) and np.issubdtype(xdata.dtype, np.number):
        x_finite = np.isfinite(xdata).reshape(-1, y.size).all(axis=0) if xdata.size % max(y.size, 1) == 0 and xdata.size else np.ones(y.size, bool)
        finite &= x_finite
    if not finite.all():
        if check_finite or nan_policy == "raise":
            raise ValueError("xdata or ydata contain NaN or inf; clean them or pass nan_policy='omit'.")
        if nan_policy == "omit":
            if isinstance(xdata, np.ndarray) and xdata.shape[-1] == y.size:
                x_array = xdata[..., finite]
            y = y[finite]
    keep = finite if nan_policy == "omit" and not finite.all() else None
    return x_array, y, keep


_WRITES = (
    "f writes into xdata (or hands it to code that needs a writable array): xdata is the same "
    "data at every evaluation, so a write would change the fit. f gets its own read-only copy; "
    "compute on a new array instead (x = x * 2, not x *= 2; np.array(x) where a writable copy is needed)."
)


class _Data:
    """The fit's data, as NumPy arrays and converted to the parameters' array type.

    Dropped points leave xdata and ydata alike, so f's output has the kept size already.
    xdata is f's own copy, made once per fit: read-only as a NumPy array (a write raises at
    once), and as a torch tensor checked after each call of f by its version counter.
    """

    def __init__(self, x: Any, y: np.ndarray, weights: np.ndarray | None, transform: np.ndarray | None) -> None:
        if isinstance(x, np.ndarray):
            x = x.copy()
        elif leaf_kind(x) == "torch":
            x = x.detach().clone()
        self.x, self.y, self.weights, self.transform = x, y, weights, transform
        self._converted: dict[str, tuple] = {}
        self._tensors: list[tuple[Any, int]] = []  # the torch xdata f gets, with its version count

    def _watch(self, x: Any) -> Any:
        if isinstance(x, np.ndarray):
            x = x.view()
            x.flags.writeable = False
        elif leaf_kind(x) == "torch":
            self._tensors.append((x, x._version))
        return x

    def check_unwritten(self) -> None:
        """Raise if f wrote into a torch xdata (NumPy's is read-only: a write raises itself)."""
        for tensor, version in self._tensors:
            if tensor._version != version:
                raise ValueError(_WRITES)

    def like(self, like: Any) -> tuple:
        """(x, y, weights, transform) in ``like``'s array type."""
        kind = leaf_kind(like)
        if kind in self._converted:
            return self._converted[kind]
        x = self.x
        if isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating):
            x = constant_like(x, like)
        if kind in ("numpy", "torch"):
            x = self._watch(x)
        data = (
            x,
            constant_like(self.y, like),
            None if self.weights is None else constant_like(self.weights, like),
            None if self.transform is None else constant_like(self.transform, like),
        )
        if kind in ("numpy", "torch"):  # eager: convert once; traced (JAX, TF): once per trace
            self._converted[kind] = data
        return data

    def x_for(self, params: Any) -> Any:
        return self.like(tree_leaves(params)[0])[0]


def _residuals(f: Callable, p0: Any, how: str, data: _Data) -> Callable[[Any], Any]:
    """The weighted residuals ``f(x, p) - y`` as a function of the parameters, f taking them
    as ``how`` says (:func:`~autominimize.drivers.curve_fit.spread`)."""

    def model(params: Any) -> Any:
        if how == "kwargs":
            return f(data.x_for(params), **params)
        if how == "args":
            return f(data.x_for(params), *params)
        if how == "array":
            return f(data.x_for(params), *[params[i] for i in range(np.shape(leaf_to_numpy(p0))[0])])
        return f(data.x_for(params), params)

    def residual(params: Any) -> Any:
        like = tree_leaves(params)[0]
        _, y, w, transform = data.like(like)
        try:
            out = model(params)
        except ValueError as exc:
            if "read-only" in str(exc):  # NumPy's "output array is read-only", Cython's "buffer source array is read-only"
                raise ValueError(_WRITES) from exc
            raise
        data.check_unwritten()
        values = ravel_like(out, like)
        if values.shape[0] is not None and values.shape[0] != y.shape[0]:
            raise ValueError(f"f returned {values.shape[0]} values but ydata has {y.shape[0]}; f(xdata, ...) must return one value per data point.")
        diff = values - y
        if w is not None:
            return diff * w
        if transform is not None:
            return array_backend(diff).matvec(transform, diff)
        return diff

    residual.__wrapped__ = f  # backend detection looks at the frameworks f refers to
    return residual


def _residual_jacobian(jac: Callable, p0: Any, how: str, data: _Data) -> Callable[[Any], np.ndarray]:
    """The user's Jacobian of f (called like f) as the Jacobian of the weighted residuals."""
    n = ParamSpec.from_tree(p0, "p0").size

    def residual_jac(params: Any) -> np.ndarray:
        J = leaf_to_numpy(jac(*([data.x_for(params)] + positional(params, how, p0)), **(params if how == "kwargs" else {})))
        data.check_unwritten()
        J = np.asarray(J, dtype=np.float64).reshape(-1, n)
        if data.weights is not None:
            return J * data.weights[:, None]
        if data.transform is not None:
            return data.transform @ J
        return J

    return residual_jac
