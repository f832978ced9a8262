"""``am.tf.ScipyOptimizerInterface``: TF1's interface, minimizing a TF2 loss over ``tf.Variable``\\s.

The variables and TF1's arguments are read here; the loss and constraints become flat
functions in :mod:`.tf_functions`, and the solve is am.minimize's scipy pipeline, through
:mod:`.solve`.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import scipy.optimize as so
import tensorflow as tf

from ..bounds import normalize_bounds
from ..drivers.methods import METHODS, method_name
from ..params import ParamSpec, tree_map
from ..validation import check_callable, check_options, check_tolerance
from .solve import integration_plan, solve
from .tf_functions import ConstraintFunctions, LossFunctions

__all__ = ["ScipyOptimizerInterface"]

#: scipy.optimize.minimize arguments that have their own place in this interface
_REPLACED = {
    "bounds": "var_to_bounds",
    "constraints": "equalities and inequalities",
    "callback": "step_callback of minimize()",
    "jac": "nothing: gradients are exact, from GradientTape",
    "hess": "nothing: Hessians are exact, from GradientTape",
    "x0": "the variables' current values",
    "args": "a closure: the loss takes no arguments",
}


def _as_tf_variable(value: Any, where: str) -> tf.Variable:
    """A ``tf.Variable``, unwrapping Keras 3 variables (whose ``.value`` is one)."""
    if isinstance(value, tf.Variable):
        return value
    inner = getattr(value, "value", None)
    if isinstance(inner, tf.Variable):
        return inner
    raise TypeError(f"{where} is a {type(value).__name__}; expected a tf.Variable (or a Keras variable).")


def _collect_variables(loss: Callable, var_list: Any) -> list[tf.Variable]:
    if var_list is None and hasattr(loss, "trainable_variables"):
        var_list = loss
    if var_list is None:
        with tf.GradientTape() as tape:
            loss()
        found = [v for v in tape.watched_variables() if v.trainable]
    elif hasattr(var_list, "trainable_variables"):
        found = list(var_list.trainable_variables)
    elif isinstance(var_list, (list, tuple)):
        found = list(var_list)
    else:
        raise TypeError(f"var_list must be None, a list of tf.Variables, or a tf.Module or Keras model; got {type(var_list).__name__}.")
    variables: list[tf.Variable] = []
    seen: set = set()
    for index, value in enumerate(found):
        variable = _as_tf_variable(value, f"var_list[{index}]")
        if not variable.dtype.is_floating:
            raise TypeError(
                f"var_list[{index}] has dtype {variable.dtype.name}; only floating-point variables (float16, bfloat16, float32, "
                "float64) can be optimized: a complex one would be solved on its real part, an integer one has no gradient."
            )
        if variable.ref() not in seen:
            seen.add(variable.ref())
            variables.append(variable)
    if not variables and var_list is not None:
        raise ValueError(
            "var_list holds no trainable variable to optimize; a Keras model or tf.Module holds none until it is built "
            "(call it on a batch, or start it with keras.Input) or when its layers are frozen (trainable=False)."
        )
    if not variables:
        raise ValueError(
            "there is no variable to optimize: the loss reads no trainable tf.Variable. Pass "
            "var_list, or make the loss a callable that reads the variables."
        )
    return variables


def _callables(value: Any, name: str) -> list[Callable]:
    if not (value is None or callable(value) or isinstance(value, (list, tuple))):
        raise TypeError(f"{name} must be a list of zero-argument callables reading the variables (or one of them); got {type(value).__name__}.")
    items = [] if value is None else [value] if callable(value) else list(value)
    for index, item in enumerate(items):
        if not callable(item):
            raise TypeError(
                f"{name}[{index}] is a {type(item).__name__}; in TF2 each constraint is a "
                f"zero-argument callable reading the variables, e.g. lambda: vector[1] - 1."
            )
    return items


def _bounds_entries(var_to_bounds: Any, variables: list[tf.Variable]) -> list[Any] | None:
    """``var_to_bounds`` as one entry per variable (None where unbounded)."""
    if var_to_bounds is None:
        return None
    if isinstance(var_to_bounds, dict):
        pairs = list(var_to_bounds.items())
    elif isinstance(var_to_bounds, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in var_to_bounds):
        pairs = list(var_to_bounds)
    else:
        raise TypeError(
            "var_to_bounds must map variables to (low, high): a dict keyed by variable.ref() "
            "or variable name, or a list of (variable, (low, high)) pairs (a tf.Variable cannot "
            f"be a dict key in TF2); got {type(var_to_bounds).__name__}."
        )
    position = {v.ref(): i for i, v in enumerate(variables)}
    names = {}
    for i, v in enumerate(variables):
        names[v.name] = names[v.name.split(":")[0]] = i
    entries: list[Any] = [None] * len(variables)
    for key, bounds in pairs:
        if isinstance(key, str):
            index = names.get(key)
        else:
            variable = key.deref() if hasattr(key, "deref") else _as_tf_variable(key, "a var_to_bounds key")
            index = position.get(variable.ref())
        if index is None:
            raise ValueError(f"var_to_bounds names {key!r}, which is not one of the variables being optimized: {[v.name for v in variables]}.")
        entries[index] = bounds
    return entries


def _fetch(item: Any, index: int) -> Any:
    if callable(item):
        value = item()
    elif hasattr(item, "numpy"):  # a variable (or an eager tensor)
        value = item
    else:
        raise TypeError(f"fetches[{index}] is a {type(item).__name__}; give a zero-argument callable or a tf.Variable.")
    return tree_map(lambda leaf: leaf.numpy() if hasattr(leaf, "numpy") else leaf, value)


#: The keyword arguments ScipyOptimizerInterface takes besides TF1's.
_EXTRA_ARGUMENTS = ("tol", "hessp", "history", "log", "progress")


class ScipyOptimizerInterface:
    """Minimize a TF2 loss over ``tf.Variable``\\s with ``scipy.optimize.minimize``, in place.

    The TF2 form of ``tf.contrib.opt.ScipyOptimizerInterface``, with TF1's arguments.

    Parameters
    ----------
    loss : callable
        Takes no arguments, reads the variables and returns a scalar tensor. A ``tf.Module``
        with ``__call__`` works too. It is traced into a graph at the first :meth:`minimize`,
        and that graph serves the later calls: it reads ``tf.Variable``\\s at each call,
        while Python values it uses are those of the first call (as for a ``tf.function``).
    var_list : list of tf.Variable, tf.Module or Keras model, optional
        The variables to optimize (Keras 3 variables are accepted). None: the module's
        trainable variables if ``loss`` is a ``tf.Module``, else the trainable variables the
        loss reads, found by calling it once now.
    equalities, inequalities : list of callables, optional
        Zero-argument callables whose values (scalars or tensors) are held at zero and at
        or above zero. They need ``method='SLSQP'`` or ``'trust-constr'`` (exact Jacobians),
        or the derivative-free ``'COBYLA'`` / ``'COBYQA'``.
    var_to_bounds : optional
        ``(low, high)`` per variable; each side a number, None/±inf, or an array broadcast to
        the variable's shape (``np.broadcast_to``, as in TF1). A ``tf.Variable`` cannot be a
        dict key in TF2, so key the dict by ``variable.ref()`` or by variable name, or give a
        list of ``(variable, (low, high))`` pairs.
    method : str, default 'L-BFGS-B'
        Any ``scipy.optimize.minimize`` method.
    options : dict, optional
        scipy's solver options.
    **minimize_kwargs
        ``tol``; ``hessp=True`` (trust-constr: Hessian-vector products instead of Hessians);
        ``history`` (default True), ``log`` and ``progress`` as in ``am.minimize``.

    Attributes
    ----------
    result : scipy.optimize.OptimizeResult or None
        The last result: flat float64 ``x`` and ``jac`` over ``var_list`` in order, the
        ``nfev``/``njev``/``nhev``/``nhvp`` counts and ``history``.

    Examples
    --------
    >>> import tensorflow as tf
    >>> import autominimize as am
    >>> vector = tf.Variable([7.0, 7.0])
    >>> optimizer = am.tf.ScipyOptimizerInterface(
    ...     lambda: tf.reduce_sum(tf.square(vector)),
    ...     equalities=[lambda: vector[1] - 1.0],
    ...     inequalities=[lambda: vector[0] - 1.0],
    ...     method="SLSQP",
    ... )
    >>> result = optimizer.minimize()
    >>> [round(float(v), 4) for v in vector.numpy()]
    [1.0, 1.0]
    """

    def __init__(
        self,
        loss: Callable[[], Any],
        var_list: Any = None,
        equalities: Sequence[Callable[[], Any]] | None = None,
        inequalities: Sequence[Callable[[], Any]] | None = None,
        var_to_bounds: Any = None,
        method: str = "L-BFGS-B",
        options: dict | None = None,
        **minimize_kwargs: Any,
    ):
        if not callable(loss):
            raise TypeError(
                f"loss must be a zero-argument callable reading tf.Variables (TF2 has no graph tensors to minimize); got {type(loss).__name__}."
            )
        for key in minimize_kwargs:
            if key in _REPLACED:
                raise TypeError(f"{key} is not accepted here; use {_REPLACED[key]}.")
            if key not in _EXTRA_ARGUMENTS:
                raise TypeError(f"unexpected argument {key!r}; the extra arguments are {', '.join(_EXTRA_ARGUMENTS)}.")
        if options is not None and not isinstance(options, dict):
            raise TypeError(f"options must be a dict of scipy solver options or None; got {type(options).__name__}.")
        check_options(options, method)  # counts, tolerances and switches, as am.minimize checks them
        self.loss = loss
        self.variables = _collect_variables(loss, var_list)
        self.spec = ParamSpec.from_tree([np.zeros(tuple(v.shape)) for v in self.variables], name="var_list")
        entries = _bounds_entries(var_to_bounds, self.variables)
        self.bounds = None if entries is None else normalize_bounds(entries, self.spec)
        self.constraints = [{"type": "eq", "fun": f} for f in _callables(equalities, "equalities")]
        self.constraints += [{"type": "ineq", "fun": f} for f in _callables(inequalities, "inequalities")]
        name = method_name(method, self.bounds is not None, False)
        if self.constraints and not METHODS[name].constraints:
            raise ValueError(
                f"method={method!r} cannot handle equalities or inequalities; use method='SLSQP' "
                "or 'trust-constr' (exact constraint Jacobians), or the derivative-free 'COBYLA' "
                "or 'COBYQA'."
            )
        self.method = method
        self.options = options
        self.tol = minimize_kwargs.get("tol")
        if self.tol is not None:
            check_tolerance(self.tol, "tol")
        self.hessp = minimize_kwargs.get("hessp", False)
        self.observing = {key: minimize_kwargs[key] for key in ("history", "log", "progress") if key in minimize_kwargs}
        self.result: so.OptimizeResult | None = None
        # traced on first use and kept: each minimize() traced the loss again (0.06 s of
        # a 0.07 s second solve of a 3-weight least-squares fit)
        self._loss_functions = LossFunctions(loss, self.variables)
        self._constraint_functions: dict[int, ConstraintFunctions] = {}

    def minimize(
        self,
        step_callback: Callable[[np.ndarray], Any] | None = None,
        loss_callback: Callable[..., Any] | None = None,
        fetches: Sequence[Any] | None = None,
    ) -> so.OptimizeResult:
        """Run the solve; the variables end at the solution.

        Parameters
        ----------
        step_callback : callable, optional
            Called after each iteration with the current values of all variables flattened
            into one float64 vector (TF1's convention); returning True stops the solve.
        loss_callback : callable, optional
            Called after every loss evaluation as ``loss_callback(loss, *fetched)``.
        fetches : list, optional
            Zero-argument callables or variables, evaluated after each loss evaluation and
            passed to ``loss_callback``.

        Returns
        -------
        scipy.optimize.OptimizeResult
            Also kept as :attr:`result`. If the solve raises, the variables are restored to
            their starting values; a KeyboardInterrupt (Ctrl-C) ends it at the best point
            evaluated, as in ``am.minimize``.
        """
        if not (step_callback is None or callable(step_callback)):
            raise TypeError(
                f"step_callback must be callable (or None); got {type(step_callback).__name__}. TF2 has no session: "
                "minimize() takes step_callback, loss_callback and fetches, not a session."
            )
        check_callable(loss_callback, "loss_callback")
        if not (fetches is None or isinstance(fetches, (list, tuple))):
            raise TypeError(f"fetches must be a list of zero-argument callables or tf.Variables; got {type(fetches).__name__}.")
        fetch_items = list(fetches or ())
        if fetch_items and loss_callback is None:
            raise TypeError("fetches are passed to loss_callback; give loss_callback too.")

        def on_evaluation(value: float) -> None:
            if loss_callback is not None:
                loss_callback(value, *[_fetch(item, i) for i, item in enumerate(fetch_items)])

        callback = None
        if step_callback is not None:

            def callback(values: list[np.ndarray]) -> Any:
                return step_callback(np.concatenate([np.ravel(v) for v in values]))

        self._loss_functions.observe(on_evaluation)
        plan = integration_plan(self.method, has_bounds=self.bounds is not None, has_constraints=bool(self.constraints), hessp=self.hessp)
        start = [v.numpy() for v in self.variables]
        x0 = np.concatenate([np.ravel(v).astype(np.float64) for v in start])
        try:
            result = solve(
                plan,
                self._loss_functions,
                self.spec,
                x0,
                bounds=self.bounds,
                constraints=self.constraints,
                compile_vector=self._compile_constraint,
                make_call=None,
                tol=self.tol,
                options=self.options,
                callback=callback,
                precision="/".join(sorted({v.dtype.name for v in self.variables})),
                backend="tensorflow",
                **self.observing,
            )
        except BaseException:
            for v, value in zip(self.variables, start):
                v.assign(value)
            raise
        for v, part in zip(self.variables, self.spec.split(result.x)):
            v.assign(part.astype(v.dtype.as_numpy_dtype))
        self.result = result
        return result

    def _compile_constraint(self, fun: Callable, args: tuple) -> ConstraintFunctions:
        """The flat functions of the constraint ``fun``, traced once for all solves."""
        key = id(fun)  # fun is held by self.constraints, so its id stays its own
        if key not in self._constraint_functions:
            self._constraint_functions[key] = ConstraintFunctions(fun, self.variables)
        return self._constraint_functions[key]
