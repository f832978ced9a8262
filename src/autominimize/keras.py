"""Keras 3 integration: a model's loss as a pure function of its weights, and a one-call fit.

The model is evaluated with ``model.stateless_call``, which takes the weights as arguments,
so the function works on every Keras backend (TensorFlow, JAX, PyTorch) and ``am.minimize``
differentiates it with that backend's framework. The model itself is not modified until
:func:`load_params` (or :func:`fit`) writes a solution into it.
"""

from __future__ import annotations

import inspect
import weakref
from typing import Any, Callable

import keras
import numpy as np
import scipy.optimize as so

from ._minimize import minimize
from .backends.common import require_real_number
from .validation import check_data, check_known, check_real_values, check_sample_counts, check_switch

__all__ = ["function_factory", "fit", "load_params"]

#: am.minimize's backend for each Keras backend
_BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch", "numpy": "numpy"}


def _as_data(data: Any, dtype: str) -> Any:
    """Floating point data in the model's compute dtype, as the backend's tensors."""
    if isinstance(data, (list, tuple)):
        return type(data)(_as_data(item, dtype) for item in data)
    if isinstance(data, dict):
        return {key: _as_data(item, dtype) for key, item in data.items()}
    tensor = keras.ops.convert_to_tensor(data)
    return keras.ops.cast(tensor, dtype) if "float" in keras.backend.standardize_dtype(tensor.dtype) else tensor


def _trainable(model: keras.Model) -> list[keras.Variable]:
    variables = list(model.trainable_variables)
    if not variables:
        raise ValueError(
            "model has no trainable weights; build it first (keras.Input(shape=...) or call it on a batch) and leave some weights trainable."
        )
    return variables


def function_factory(
    model: keras.Model, loss: Any, X: Any, y: Any, *, training: bool = False
) -> tuple[Callable[[dict[str, Any]], Any], dict[str, np.ndarray]]:
    """A Keras model's training loss as a pure function of its trainable weights.

    Parameters
    ----------
    model : keras.Model
        A built model (a model that is not built yet is built by calling it on ``X``).
    loss : str, keras.losses.Loss or callable
        Called as ``loss(y_true, y_pred)`` (Keras's order); a per-sample loss is averaged.
        A name such as ``'mse'`` is looked up with ``keras.losses.get``. The model's own
        regularization losses (``kernel_regularizer`` and ``add_loss``) are added.
    X, y : arrays or backend tensors
        The whole training set; floating point data takes the model's compute dtype.
    training : bool
        Passed to the model's layers (False by default: dropout off, batch normalization
        using its moving statistics, which are not updated).

    Returns
    -------
    func : callable
        ``func(params)`` -> the scalar loss, a tensor of the Keras backend, differentiable
        in ``params``. Each weight is cast to its variable's dtype, so the model computes in
        its own precision whatever ``am.minimize``'s ``precision``.
    params : dict of str to numpy.ndarray
        The current weights by variable path (e.g. ``'sequential/dense/kernel'``): the
        starting point, and the keys for per-weight ``bounds``.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> import autominimize as am
    >>> X = np.random.default_rng(0).normal(size=(30, 2))
    >>> y = X @ np.array([[1.5], [-0.5]]) + 0.2
    >>> model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1)])
    >>> func, params = am.keras.function_factory(model, "mse", X, y)
    >>> res = am.minimize(func, params, method="L-BFGS-B")
    >>> am.keras.load_params(model, res.x)
    >>> [round(float(b), 3) for b in model.layers[0].bias.numpy()]
    [0.2]
    """
    weights_loss, params, data = _weights_loss(model, loss, X, y, training)

    def func(params: dict[str, Any], /) -> Any:
        return weights_loss(params, *data)

    return func, params


#: per model, its weights' loss for each (loss, training, trainable weights): one function
#: object, so that a second fit compiles nothing (with a new function per fit, a second
#: Newton-CG fit of a small model on Keras's JAX backend compiled again, 3.0 s of its 3.1 s)
_WEIGHTS_LOSSES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _loss_function(loss: Any) -> Callable:
    """``loss`` as a callable ``(y_true, y_pred)``: a Keras loss name looked up, else as given."""
    accepted = "a Keras loss name such as 'mse' or 'binary_crossentropy', a keras.losses.Loss or a callable(y_true, y_pred)"
    try:
        loss_fn = keras.losses.get(loss) if isinstance(loss, str) else loss
    except ValueError:  # Keras's own text names its deserializer, not the argument
        raise ValueError(f"loss={loss!r} is not a Keras loss; give {accepted}.") from None
    if not callable(loss_fn):
        raise TypeError(f"loss must be {accepted}; got {loss!r}.")
    return loss_fn


def _weights_loss(model: keras.Model, loss: Any, X: Any, y: Any, training: bool) -> tuple[Callable, dict[str, np.ndarray], tuple]:
    """``weights_loss(params, inputs, target, non_trainable)``, the starting weights, and the
    data arguments ``(inputs, target, non_trainable)`` (see :func:`function_factory`)."""
    check_data(X, "X")
    check_data(y, "y")
    check_sample_counts(X, y)
    _check_inputs(model, X)
    if not model.built:
        model(X)
    variables = _trainable(model)
    paths = tuple(v.path for v in variables)
    loss_fn = _loss_function(loss)
    check_switch(training, "training")
    known = _WEIGHTS_LOSSES.setdefault(model, {})
    key = (loss_fn, training, paths)
    if key not in known:
        held = weakref.ref(model)  # the cache's value must not keep its key alive
        # stateless_call passes keywords to call() as given: only a call() taking training gets it
        call_parameters = inspect.signature(model.call).parameters.values()
        takes_training = any(p.name == "training" or p.kind is p.VAR_KEYWORD for p in call_parameters)
        modes = {"training": training} if takes_training else {}

        def weights_loss(params: dict[str, Any], inputs: Any, target: Any, non_trainable: list, /) -> Any:
            values = [keras.ops.cast(params[path], v.dtype) for path, v in zip(paths, variables)]
            outputs, _, extra_losses = held().stateless_call(values, non_trainable, inputs, return_losses=True, **modes)
            if isinstance(target, (list, tuple)) and len(target) == 1 and hasattr(outputs, "shape"):
                target = target[0]  # y=[y] for a model of one output, as Keras's fit reads it
            _check_target_shape(target, outputs)
            per_sample = loss_fn(target, outputs)
            require_real_number(per_sample, "loss")
            total = keras.ops.mean(per_sample)
            for extra in extra_losses:
                total = total + keras.ops.cast(extra, total.dtype)
            return total

        known[key] = weights_loss
    data = (
        _as_data(X, model.compute_dtype),
        _as_data(y, model.compute_dtype),
        [keras.ops.convert_to_tensor(v) for v in model.non_trainable_variables],
    )
    return known[key], {path: np.array(v.numpy()) for path, v in zip(paths, variables)}, data


def _check_inputs(model: keras.Model, X: Any) -> None:
    """A ValueError when the one array ``X`` does not fit the model's one declared input: Keras
    would fail in its graph, printing the data."""
    inputs = getattr(model, "inputs", None) if model.built else None
    if not inputs or len(inputs) != 1 or not hasattr(X, "shape") and not isinstance(X, np.ndarray):
        return
    expected, shape = tuple(inputs[0].shape), tuple(np.shape(X))
    if len(expected) != len(shape) or any(e is not None and e != s for e, s in zip(expected, shape)):
        raise ValueError(f"X has shape {shape} but the model's input has shape {expected} (None: any size); give X in that shape.")


def _check_target_shape(target: Any, outputs: Any) -> None:
    """A ValueError when the model's output would be broadcast over the columns of ``y``: a
    loss such as 'mse' would then fit every column of y with the one output, silently."""
    if not (hasattr(target, "shape") and hasattr(outputs, "shape")):
        return  # several outputs or targets: each is matched by Keras's own rules
    want, got = tuple(target.shape), tuple(outputs.shape)
    if len(want) == len(got) and any(o == 1 and t is not None and t > 1 for o, t in zip(got, want)):
        raise ValueError(
            f"y has shape {want} but the model's output has shape {got}: the loss would broadcast the output over y's "
            "columns. Give y one column per output (or a model with as many outputs as y has columns)."
        )


def load_params(model: keras.Model, values: dict[str, Any]) -> None:
    """Assign weights by variable path (``res.x`` of ``am.minimize``) to the model, in place.

    Paths left out keep their values; values are cast to each variable's dtype.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> import autominimize as am
    >>> model = keras.Sequential([keras.Input(shape=(1,)), keras.layers.Dense(1)])
    >>> am.keras.load_params(model, {model.layers[0].kernel.path: np.array([[2.0]])})
    >>> model.layers[0].kernel.numpy().tolist()
    [[2.0]]
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model (its trainable weights are assigned); got {type(model).__name__}.")
    if not isinstance(values, dict):
        raise TypeError(f"values must be a dict of weights by variable path (res.x); got {type(values).__name__}.")
    by_path = {v.path: v for v in _trainable(model)}
    unknown = sorted(set(values) - set(by_path))
    if unknown:
        raise KeyError(f"values has keys {unknown} that are not trainable weights of model; those are {sorted(by_path)}.")
    for path, value in values.items():
        variable = by_path[path]
        array = check_real_values(value if isinstance(value, (np.ndarray, str, bytes)) else keras.ops.convert_to_numpy(value), f"values[{path!r}]")
        if array.shape != tuple(variable.shape):
            raise ValueError(f"values[{path!r}] has shape {array.shape}; the weight has shape {tuple(variable.shape)}.")
        variable.assign(array.astype(variable.dtype))


def fit(
    model: keras.Model, loss: Any, X: Any, y: Any, method: str = "L-BFGS-B", *, training: bool = False, **minimize_kwargs: Any
) -> so.OptimizeResult:
    """Fit a Keras model's weights with one ``am.minimize`` solve and write them back.

    The loss of the weights is one function per model, loss and ``training``, with ``X``,
    ``y`` and the non-trainable weights as its arguments: a second fit of the model, also on
    new data of the same shapes and dtypes, reuses what the first compiled.

    Parameters
    ----------
    model, loss, X, y, training
        As for :func:`function_factory`.
    method : str, default 'L-BFGS-B'
        Any ``scipy.optimize.minimize`` method.
    **minimize_kwargs
        Passed to ``am.minimize``: ``bounds`` (e.g. by variable path), ``constraints``,
        ``options``, ``tol``, ``callback``, ``precision``... ``backend`` defaults to the
        Keras backend's framework.

    Returns
    -------
    scipy.optimize.OptimizeResult
        ``res.x`` holds the weights by variable path; they are also in the model.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> import autominimize as am
    >>> X = np.linspace(-1, 1, 20)[:, None]
    >>> model = keras.Sequential([keras.Input(shape=(1,)), keras.layers.Dense(1)])
    >>> res = am.keras.fit(model, "mse", X, 3 * X - 1)
    >>> np.round(model.predict(np.array([[0.5]]), verbose=0), 3).tolist()
    [[0.5]]
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model (its trainable weights are fitted); got {type(model).__name__}.")
    passed_on = [name for name in inspect.signature(minimize).parameters if name not in ("fun", "x0", "args", "method")]
    check_known(minimize_kwargs, passed_on, "am.keras.fit got unknown keyword argument(s)")
    framework = _BACKENDS.get(keras.backend.backend())
    if minimize_kwargs.get("backend") not in (None, framework, "numpy"):
        raise ValueError(
            f"backend={minimize_kwargs['backend']!r}: the model computes with Keras's backend, {framework!r}; give "
            f"backend={framework!r} (the default) or 'numpy' (finite differences), or set KERAS_BACKEND before importing Keras."
        )
    weights_loss, params, data = _weights_loss(model, loss, X, y, training)
    minimize_kwargs.setdefault("backend", framework)
    result = minimize(weights_loss, params, args=data, method=method, **minimize_kwargs)
    load_params(model, result.x)
    return result
