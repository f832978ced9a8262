"""Where the native algorithms are run: set-up, the step loop, stopping and the result.

:class:`NativeRun` turns ``am.minimize``'s arguments into an algorithm, a counting oracle on
the framework's flat arrays and a stopping criterion; ``advance()`` makes one outer step.
``am.minimize`` exhausts it (:func:`minimize_native`), ``am.iterate`` yields each step.
:func:`minimize_batched` runs ``batch=True``: stacked problems in one batched L-BFGS.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from typing import Any, Callable

import numpy as np
import scipy.optimize as so

from .._setup import cached, compile_key, prepare
from ..recording import in_nested_solve
from ..native import ALGORITHMS, native_method_name
from ..native._arrays import flatten_leaves, namespace, norm_inf
from ..native.batched import REASONS, BatchedLBFGS, batched_value_and_grad
from ..native.oracles import CountingOracle, NativeFunctions, compile_functions, make_params_of
from ..native.stopping import (
    AnyOf,
    Criterion,
    FunctionTolerance,
    GradientTolerance,
    MaxEpochs,
    MaxEvaluations,
    MaxIterations,
    Progress,
    Stop,
    TimeBudget,
    as_criterion,
)
from ..params import ParamSpec
from .state import IterationState

__all__ = ["NativeRun", "minimize_native", "minimize_batched"]

_STOP_OPTIONS = ("gtol", "ftol", "maxiter", "maxfev", "max_time", "stop")
# Defaults: scipy L-BFGS-B (gtol, ftol, maxiter=15000); scipy CG (maxiter=200·n, no ftol);
# Martens' demo runs 500 epochs; gradient-only methods get a generous iteration budget.
_DEFAULT_STOP = {
    "lbfgs-native": {"gtol": 1e-5, "ftol": 2.220446049250313e-09, "maxiter": 15000},
    "cg-native": {"gtol": 1e-5, "ftol": None, "maxiter": "200n"},
    "hessian-free": {"gtol": 1e-5, "ftol": 2.220446049250313e-09, "maxiter": 500},
}
_FIRST_ORDER_STOP = {"gtol": 1e-5, "ftol": None, "maxiter": 10000}
_END = object()


class _Batches:
    """Mini-batches with one batch of look-ahead, so an epoch ends with its last step."""

    def __init__(self, data: Any):
        self.data = data
        self.epoch = 0
        self._iterator = iter(data)
        self._next = next(self._iterator, _END)
        if self._next is _END:
            raise ValueError("data= holds no mini-batch.")

    def peek(self) -> Any:
        return self._next

    def take(self) -> Any:
        if self._next is _END:
            self._iterator = iter(self.data)
            self._next = next(self._iterator, _END)
            if self._next is _END:
                raise ValueError(
                    "data= was exhausted after one epoch: it is a one-shot iterator. Pass a "
                    "re-iterable (a list, a torch DataLoader, ...) to run several epochs."
                )
        batch, self._next = self._next, next(self._iterator, _END)
        if self._next is _END:
            self.epoch += 1
        return batch


class NativeRun:
    """One native solve, advanced one outer step at a time."""

    def __init__(
        self,
        fun: Callable,
        x0: Any,
        args: tuple,
        method: str,
        *,
        jac: Callable | bool | None = None,
        bounds: Any = None,
        tol: float | None = None,
        callback: Callable | None = None,
        options: dict | None = None,
        backend: str | None = None,
        precision: str | None = None,
        unpack: str = "auto",
        torch_device: Any = None,
        data: Any = None,
        epochs: int | None = None,
        stop: Any = None,
    ):
        if not callable(fun):
            raise TypeError(f"fun must be callable; got {type(fun).__name__}.")
        self.method = native_method_name(method)
        args = args if isinstance(args, tuple) else (args,)
        options = dict(options or {})
        stop_options = {k: options.pop(k) for k in _STOP_OPTIONS if k in options}
        if stop is not None:
            stop_options["stop"] = stop
        cls = ALGORITHMS[self.method]
        unknown = sorted(set(options) - set(cls.hyperparameters()) - {"lower", "upper"})
        if unknown:
            raise TypeError(
                f"method={self.method!r} has no option {', '.join(map(repr, unknown))}; its options are "
                f"{', '.join(h for h in cls.hyperparameters() if h not in ('lower', 'upper'))} and the "
                f"stopping options {', '.join(_STOP_OPTIONS)}."
            )
        self.algorithm = cls(**options)
        self.stochastic = data is not None
        if self.stochastic and not cls.first_order:
            first_order = ", ".join(repr(n) for n, c in ALGORITHMS.items() if c.first_order)
            raise ValueError(f"method={self.method!r} needs exact values at several points and cannot run on mini-batches (data=); use {first_order}.")
        if epochs is not None and not self.stochastic:
            raise ValueError("epochs= counts passes over data=; give data= (an iterable of mini-batches) too.")
        if bounds is not None and self.method != "lbfgs-native":
            raise ValueError(f"method={self.method!r} does not take bounds; use method='lbfgs-native' (projected L-BFGS) or a scipy method such as 'L-BFGS-B'.")
        self.batches = _Batches(data) if self.stochastic else None
        stochastic = self.stochastic
        # a stochastic objective takes the mini-batch after the parameters, before args
        setup = prepare(fun, x0, ((None,) if stochastic else ()) + args, unpack=unpack, precision=precision, device=torch_device, precision_from_x0=False)
        self.dtype, self.spec, x0, x0_flat, unpack = setup.dtype, setup.spec, setup.x0, setup.x0_flat, setup.unpack
        spec = self.spec

        def caller(function: Callable) -> Callable[[Any, Any], Any]:
            def call(params: Any, batch: Any) -> Any:
                return setup.caller(function, (batch,) + args if stochastic else args)(params)

            return call

        call = caller(fun)

        probe_batch = self.batches.peek() if self.stochastic else None
        self.backend = setup.choose_backend(backend, call=lambda p: call(p, probe_batch))
        self.backend_obj = setup.backend_obj
        self._context = lambda: self.backend_obj.solve_context(self.dtype)
        with self._context():
            x = _to_framework(self.backend, x0_flat, self.dtype, spec, torch_device)
            residual = self.method == "hessian-free" and _returns_vector(self.backend, call, spec, x, probe_batch)
            if callable(jac):
                self.functions = _user_gradient(call, caller(jac), spec, x)
            elif jac is True:
                self.functions = _user_gradient(call, None, spec, x)
            elif jac is None:
                self.functions = self._functions(fun, call, spec, unpack, args, torch_device, residual)
            else:
                raise ValueError(f"jac={jac!r}: native methods take None (autodiff), a callable or True.")
            if bounds is not None:
                lower, upper = setup.normalize_bounds(bounds)
                x0_flat = setup.clip_start(x0_flat, stacklevel=3)
                x = _to_framework(self.backend, x0_flat, self.dtype, spec, torch_device)
                xp = namespace(x)
                self.algorithm = self.algorithm.replace(
                    lower=xp.asarray(_like(x, lower)), upper=xp.asarray(_like(x, upper))
                )
        self.x0 = x
        self.criterion = self._criterion(stop_options, tol, epochs, spec.size)
        self.criterion.start()
        self.callback = callback
        self.oracle = CountingOracle(self.functions)
        self.state: Any = None
        self.nit = 0
        self.stop: Stop | None = None
        self._start = 0.0
        self._epoch_loss: Any = 0.0
        self._epoch_steps = 0
        self._last_epoch_mean: Any = None

    # -- set-up helpers ---------------------------------------------------------------
    def _functions(self, fun, call, spec, unpack, args, device, residual) -> NativeFunctions:
        key = compile_key(self.backend, "native", spec, self.dtype, unpack, args, device, residual, self.stochastic)
        return cached(fun, key, args, lambda: compile_functions(self.backend, call, spec, self.dtype, residual, device))

    def _criterion(self, options: dict, tol: float | None, epochs: int | None, n: int) -> Criterion:
        if "stop" in options:
            return as_criterion(options["stop"])
        defaults = dict(_FIRST_ORDER_STOP if self.algorithm.first_order else _DEFAULT_STOP[self.method])
        if tol is not None:
            defaults["gtol"] = tol
            if defaults["ftol"] is not None:
                defaults["ftol"] = tol
        defaults.update({k: v for k, v in options.items() if k in ("gtol", "ftol", "maxiter")})
        criteria: list[Criterion] = []
        if self.stochastic:
            criteria.append(MaxEpochs(1 if epochs is None else int(epochs)))
            if "maxiter" in options:
                criteria.append(MaxIterations(int(options["maxiter"])))
        else:
            if defaults["gtol"] is not None:
                criteria.append(GradientTolerance(defaults["gtol"]))
            if defaults["ftol"] is not None:
                criteria.append(FunctionTolerance(defaults["ftol"]))
            maxiter = 200 * n if defaults["maxiter"] == "200n" else defaults["maxiter"]
            criteria.append(MaxIterations(int(maxiter)))
        if "maxfev" in options:
            criteria.append(MaxEvaluations(int(options["maxfev"])))
        if "max_time" in options:
            criteria.append(TimeBudget(float(options["max_time"])))
        return AnyOf(*criteria)

    # -- the loop ---------------------------------------------------------------------
    def set_hyperparameters(self, **changes: Any) -> None:
        self.algorithm = self.algorithm.replace(**changes)

    def advance(self) -> IterationState | None:
        """Make one outer step; None once the run has stopped."""
        if self.stop is not None:
            return None
        with self._context():
            if self.state is None:
                self._start = time.perf_counter()
                self.state = self.algorithm.init(self.x0, self.oracle)
                if self.state.g is not None and not self.stochastic:
                    # scipy returns x0 with nit=0 when it already satisfies the tolerances
                    grad_norm = norm_inf(namespace(self.x0), self.algorithm.stationarity(self.state))
                    initial = self.criterion(Progress(0, self.oracle.nfev, self.oracle.njev, float(self.state.f), None, grad_norm))
                    if initial is not None and initial.success:
                        self.stop = initial
                        return None
            f_prev = None if self.state.f is None or self.stochastic else float(self.state.f)
            if self.stochastic:
                self.oracle.batch = self.batches.take()
            self.state = self.algorithm.step(self.state, self.oracle)
            self.nit += 1
            progress = self._progress(f_prev)
            if self.stochastic:
                self._epoch_loss = self._epoch_loss + self.state.f
                self._epoch_steps += 1
                if self.batches.peek() is _END:
                    self._last_epoch_mean = self._epoch_loss / self._epoch_steps
                    self._epoch_loss, self._epoch_steps = 0.0, 0
            if self.state.flag:
                self.stop = Stop(self.state.flag, False, 2)
            else:
                self.stop = self.criterion(progress)
            snapshot = self._snapshot(progress)
            if self.callback is not None and self.stop is None and self._call_back(snapshot):
                self.stop = Stop("stopped by the callback", False, 1)
                snapshot = self._snapshot(progress)
        return snapshot

    def _progress(self, f_prev: float | None) -> Progress:
        elapsed = time.perf_counter() - self._start
        common = dict(nit=self.nit, nfev=self.oracle.nfev, njev=self.oracle.njev, elapsed=elapsed)
        if self.stochastic:
            return Progress(**common, epoch=self.batches.epoch)
        grad_norm = norm_inf(namespace(self.state.x), self.algorithm.stationarity(self.state))
        return Progress(**common, fun=float(self.state.f), fun_prev=f_prev, grad_norm=grad_norm)

    def _snapshot(self, progress: Progress) -> IterationState:
        return IterationState(
            self.nit, self.oracle.nfev, self.oracle.njev, self.oracle.nhvp, progress.elapsed,
            progress.epoch, self.state.f, progress.grad_norm, self.stop, self.state, self._restore,
        )

    def _restore(self, flat: Any) -> Any:
        return self.spec.restore(to_host(flat))

    def _call_back(self, snapshot: IterationState) -> bool:
        intermediate = so.OptimizeResult(x=snapshot.x, fun=snapshot.fun, nit=snapshot.nit)
        try:
            return bool(self.callback(intermediate))
        except StopIteration:
            return True

    def result(self) -> so.OptimizeResult:
        """The OptimizeResult of the run so far."""
        with self._context():
            if self.state is None:
                self.state = self.algorithm.init(self.x0, self.oracle)
            x, f, g = self.state.x, self.state.f, self.state.g
            if self.stochastic:
                f = self._last_epoch_mean if self._last_epoch_mean is not None else (
                    self._epoch_loss / self._epoch_steps if self._epoch_steps else f
                )
            elif self.algorithm.first_order or f is None:
                # gradient-only steps record f and g before the step: evaluate at the final x
                f, g = self.oracle.value_and_grad(x)
            stop = self.stop or Stop(f"stopped by the caller after {self.nit} iterations", False, 1)
            result = so.OptimizeResult(
                x=self._restore(x),
                fun=float(f) if f is not None else math.nan,
                jac=None if g is None else self._restore(g),
                nit=self.nit,
                nfev=self.oracle.nfev,
                njev=self.oracle.njev,
                nhev=0,
                nhvp=self.oracle.nhvp,
                success=stop.success,
                status=stop.status,
                message=stop.message,
                backend=self.backend,
                precision=self.dtype,
            )
            if self.stochastic:
                result.epochs = self.batches.epoch
        return result


#: ``report(nit, x, f, g, counts)`` after each step: flat float64 NumPy x and g (None without one)
StepReport = Callable[[int, np.ndarray, float, "np.ndarray | None", dict], None]


def minimize_native(
    fun: Callable, x0: Any, args: tuple = (), method: str = "lbfgs-native", *, batch: bool = False, **kwargs: Any
) -> so.OptimizeResult:
    """Run a native method to the end and return scipy's ``OptimizeResult``."""
    if batch:
        return minimize_batched(fun, x0, args, method, **kwargs)
    return run_to_end(NativeRun(fun, x0, args, method, **kwargs))


def run_to_end(run: NativeRun, report: StepReport | None = None) -> so.OptimizeResult:
    """Advance ``run`` until it stops; ``report`` is told of every step (on host copies of x and g).

    A KeyboardInterrupt (Ctrl-C) ends the run at the last completed step, with
    ``success=False`` and ``status=-1``.
    """
    # one backend context for the whole run: entered per step, JAX's float64 scope would clear
    # its trace caches and recompile every step
    with run.backend_obj.solve_context(run.dtype):
        try:
            while (state := run.advance()) is not None:
                if report is not None:
                    g = state.raw.g
                    counts = {"nfev": state.nfev, "njev": state.njev, "nhev": 0, "nhvp": state.nhvp}
                    report(state.nit, to_host(state.raw.x).reshape(-1), state.fun, None if g is None else to_host(g).reshape(-1), counts)
        except KeyboardInterrupt:
            if in_nested_solve():  # the outer run ends too
                raise
            run.stop = Stop("Interrupted by KeyboardInterrupt (Ctrl-C); x is the last completed step.", False, -1)
        return run.result()


# -- batch=True ---------------------------------------------------------------------------
_BATCH_OPTIONS = ("memory", "c1", "c2", "max_line_search", "curvature_eps", "line_search", "gtol", "ftol", "maxiter", "maxfev", "max_time")


def minimize_batched(
    fun: Callable,
    x0: Any,
    args: tuple = (),
    method: str = "lbfgs-native",
    *,
    bounds: Any = None,
    tol: float | None = None,
    options: dict | None = None,
    backend: str | None = None,
    precision: str | None = None,
    unpack: str = "auto",
    torch_device: Any = None,
    **unsupported: Any,
) -> so.OptimizeResult:
    """Solve the B problems stacked along the first axis of x0's leaves in one batched L-BFGS.

    ``fun`` is written for one problem; JAX maps it with ``jax.vmap``, torch with
    ``torch.func.vmap`` (:mod:`autominimize.native.batched`). Each member stops on its own.
    The result's ``x`` and ``jac`` are stacked like x0; ``fun``, ``nit``, ``nfev``, ``njev``,
    ``success`` and ``status`` are NumPy arrays of shape (B,); ``messages`` says why each
    member stopped and ``message`` sums them up.
    """
    if native_method_name(method) != "lbfgs-native":
        raise ValueError(f"batch=True runs method='lbfgs-native' only; got method={method!r}.")
    given = sorted(k for k, v in unsupported.items() if v is not None)
    if given:
        raise ValueError(f"batch=True does not take {', '.join(given)}; it takes bounds, tol, options, backend, precision, unpack and torch_device.")
    options = dict(options or {})
    unknown = sorted(set(options) - set(_BATCH_OPTIONS))
    if unknown:
        raise TypeError(f"batch=True has no option {', '.join(map(repr, unknown))}; its options are {', '.join(_BATCH_OPTIONS)}.")
    if options.get("line_search", "armijo") not in ("armijo", "wolfe"):
        raise ValueError("batch=True takes line_search='armijo' (default: each member is the unbatched Armijo solve) or 'wolfe' (strong Wolfe).")
    if tol is not None:
        options.setdefault("gtol", tol)
        options.setdefault("ftol", tol)
    stacked, spec, rows = unstack(x0)
    setup = prepare(fun, spec.restore(rows[0]), args, unpack=unpack, precision=precision, device=torch_device, precision_from_x0=False)
    dtype, unpack, call, args = setup.dtype, setup.unpack, setup.call, setup.args
    backend = setup.choose_backend(backend)
    if backend not in ("jax", "torch"):
        raise ValueError(f"batch=True needs JAX or torch to map fun over the batch (vmap); the backend is {backend!r}.")
    backend_obj = setup.backend_obj
    key = compile_key(backend, "native-batched", spec, dtype, unpack, args, torch_device)
    value_and_grad = cached(fun, key, args, lambda: batched_value_and_grad(backend, call, spec))
    with backend_obj.solve_context(dtype):
        if bounds is not None:
            lower, upper = setup.normalize_bounds(bounds)
            clipped = np.clip(rows, lower, upper)
            moved = int(np.count_nonzero(np.any(clipped != rows, axis=1)))
            if moved:
                warnings.warn(f"{moved} of the {rows.shape[0]} starting points are outside the bounds; they were clipped into them.", UserWarning, stacklevel=4)
            rows = clipped
        x = _to_framework(backend, rows, dtype, spec, torch_device)
        if bounds is not None:
            xp = namespace(x)
            options.update(lower=xp.asarray(_like(x, lower)), upper=xp.asarray(_like(x, upper)))
        try:
            state = BatchedLBFGS(**options).run(x, value_and_grad)
        except Exception as exc:
            exc.add_note(
                f"(raised while mapping fun over the batch with {'jax.vmap' if backend == 'jax' else 'torch.func.vmap'}: "
                "batch=True needs fun free of .item() and of Python branches on values)"
            )
            raise
        reasons = to_host(state.reason).astype(int)
        nfev = to_host(state.nfev).astype(int)
        return so.OptimizeResult(
            x=_restack(stacked, spec, to_host(state.x)),
            fun=to_host(state.f),
            jac=_restack(stacked, spec, to_host(state.g)),
            nit=to_host(state.nit).astype(int),
            nfev=nfev,
            njev=nfev.copy(),
            nhev=0,
            nhvp=0,
            success=np.array([REASONS[r][1] for r in reasons], dtype=bool),
            status=np.array([REASONS[r][2] for r in reasons], dtype=int),
            message=_batch_message(reasons),
            messages=[REASONS[r][0] for r in reasons],
            backend=backend,
            precision=dtype,
        )


def unstack(x0: Any) -> tuple[ParamSpec, ParamSpec, np.ndarray]:
    """x0's stacked structure, the structure of one member, and the (B, n) float64 rows."""
    stacked = ParamSpec.from_tree(x0)
    sizes = {leaf.shape[0] if leaf.shape else None for leaf in stacked.leaves}
    if None in sizes or len(sizes) != 1:
        raise ValueError(
            "batch=True stacks the problems along the first axis of every leaf of x0; the leaves' "
            f"shapes are {[leaf.shape for leaf in stacked.leaves]} (numbers have no batch axis)."
        )
    batch = sizes.pop()
    member = ParamSpec(stacked.treedef, tuple(dataclasses.replace(leaf, shape=leaf.shape[1:]) for leaf in stacked.leaves))
    parts = stacked.split(stacked.flatten(x0))
    return stacked, member, np.concatenate([part.reshape(batch, -1) for part in parts], axis=1)


def _restack(stacked: ParamSpec, member: ParamSpec, rows: np.ndarray) -> Any:
    """(B, n) rows back in x0's stacked structure and array types."""
    parts = [rows[:, start:stop].reshape(-1) for start, stop in zip(member.offsets, member.offsets[1:])]
    return stacked.restore(np.concatenate(parts))


def _batch_message(reasons: np.ndarray) -> str:
    counts = np.bincount(reasons, minlength=len(REASONS) + 1)
    parts = [f"{counts[code]} {REASONS[code][0]}" for code in REASONS if counts[code]]
    return f"{reasons.size} problems: " + ", ".join(parts)


# -- helpers ------------------------------------------------------------------------------
def _to_framework(backend: str, flat: np.ndarray, dtype: str, spec: ParamSpec, device: Any) -> Any:
    """x0's flat vector as the backend's array, on x0's device (a one-off copy)."""
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.asarray(flat, dtype=dtype)
    if backend == "torch":
        import torch

        torch_leaves = [leaf for leaf in spec.leaves if leaf.kind == "torch"]
        where = device if device is not None else (torch_leaves[0].device if torch_leaves else "cpu")
        return torch.as_tensor(flat, dtype=getattr(torch, dtype), device=where)
    return np.asarray(flat, dtype=dtype)


def _like(x: Any, values: np.ndarray) -> Any:
    """A NumPy vector as an array of x's framework, dtype and device."""
    kind = type(x).__module__.split(".", 1)[0]
    if kind == "torch":
        import torch

        return torch.tensor(values, dtype=x.dtype, device=x.device)  # a copy: bounds may be read-only
    if kind in ("jax", "jaxlib"):
        import jax.numpy as jnp

        return jnp.asarray(values, dtype=x.dtype)
    return np.asarray(values, dtype=x.dtype)


def to_host(x: Any) -> np.ndarray:
    """A framework array as float64 NumPy (a host copy)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    return np.asarray(x, dtype=np.float64)


def _returns_vector(backend: str, call: Callable, spec: ParamSpec, x: Any, batch: Any) -> bool:
    """Whether fun returns residuals (more than one number), checked without counting."""
    import optree

    params = make_params_of(spec)(x)
    if backend == "jax":
        import jax

        out = jax.eval_shape(lambda p: call(p, batch), params)
        return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(out)) > 1
    if backend == "torch":
        import torch

        with torch.no_grad():
            out = call(params, batch)
    else:
        out = call(params, batch)
    return sum(int(np.prod(np.shape(leaf))) for leaf in optree.tree_leaves(out)) > 1


def _user_gradient(call: Callable, jac: Callable | None, spec: ParamSpec, x: Any) -> NativeFunctions:
    """Value and gradient from the user: ``jac(params)``, or ``fun`` returning ``(f, g)`` if None."""
    xp = namespace(x)
    params_of = make_params_of(spec)

    def flat_gradient(tree: Any) -> Any:
        leaves = spec.leaves_of(tree, "jac") if isinstance(tree, (dict, list, tuple)) else [tree]
        g = flatten_leaves(xp, leaves)
        if g.shape[0] != spec.size:
            raise ValueError(f"jac returned {g.shape[0]} numbers; x0 has {spec.size} parameters.")
        return xp.astype(g, x.dtype)

    def value(x: Any, batch: Any) -> Any:
        return xp.asarray(call(params_of(x), batch), dtype=x.dtype)

    if jac is None:
        def value_and_grad(x: Any, batch: Any) -> tuple[Any, Any]:
            f, g = call(params_of(x), batch)
            return xp.asarray(f, dtype=x.dtype), flat_gradient(g)

        return NativeFunctions(lambda x, batch: value_and_grad(x, batch)[0], value_and_grad, None, None)

    def grad(x: Any, batch: Any) -> Any:
        return flat_gradient(jac(params_of(x), batch))

    return NativeFunctions(value, lambda x, batch: (value(x, batch), grad(x, batch)), None, None, grad=grad)
