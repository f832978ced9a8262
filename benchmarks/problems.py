"""The benchmark problems: one objective per framework plus hand-written NumPy derivatives.

Every problem is defined on a parameter structure (an array, or a dict of arrays) for
``am.minimize`` and on the flat float64 vector for the hand-written baselines, which feed
scipy directly. No framework is imported here until an objective for it is asked for.

Rosenbrock starts at ``zeros(n)`` everywhere (the matrix factorisation and logistic
regression start from seeded random / zero points, see their builders).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import scipy.optimize as so
from scipy.special import expit

__all__ = ["Problem", "Cell", "CELLS", "QUICK_CELLS", "select_cells"]

FRAMEWORKS = ("numpy", "jax", "torch", "tensorflow")


# --------------------------------------------------------------------------------------
# the problem container
# --------------------------------------------------------------------------------------
@dataclass
class Problem:
    """One benchmark problem, with everything each contender needs.

    Attributes
    ----------
    name : str
        The cell name, e.g. ``"rosen100 Newton-CG"``.
    method : str
        The scipy method.
    x0 : array or dict of arrays
        The NumPy starting point in its structure (what ``am.minimize`` receives).
    leaves : list of (key, shape)
        x0's leaves in flat order (``key`` is None for a bare array).
    bounds : optional
        Bounds in am's structured form; ``flat_bounds`` the same for scipy.
    second_order : None, 'hessp' or 'hess'
        What the method is fed besides the gradient.
    np_fg, np_hessp, np_hess : callables of the flat vector
        Hand-written NumPy value-and-gradient, Hessian-vector product and Hessian.
    builders : dict framework -> () -> fun(params)
        Objectives written in each framework, taking x0's structure.
    """

    name: str
    method: str
    x0: Any
    leaves: list
    np_fg: Callable[[np.ndarray], tuple[float, np.ndarray]]
    builders: dict
    bounds: Any = None
    flat_bounds: Any = None
    second_order: str | None = None
    np_hessp: Callable | None = None
    np_hess: Callable | None = None
    np_struct_fg: Callable | None = None
    #: scipy ``options`` every contender passes (the runner's short warm-up sets maxiter)
    options: dict | None = None
    cache: dict = field(default_factory=dict, repr=False)

    @property
    def x0_flat(self) -> np.ndarray:
        if "x0_flat" not in self.cache:
            self.cache["x0_flat"] = self.flatten(self.x0)
        return self.cache["x0_flat"]

    @property
    def n(self) -> int:
        return int(self.x0_flat.size)

    # -- structure <-> flat -----------------------------------------------------------
    def flatten(self, params: Any) -> np.ndarray:
        if self.leaves[0][0] is None:
            return np.asarray(params, dtype=np.float64).reshape(-1)
        return np.concatenate([np.asarray(params[k], dtype=np.float64).reshape(-1) for k, _ in self.leaves])

    def unflatten(self, x: Any, framework: str = "numpy") -> Any:
        """The flat vector (of any framework) as x0's structure, by slicing and reshaping."""
        if self.leaves[0][0] is None:
            return x
        out, start = {}, 0
        for key, shape in self.leaves:
            size = int(np.prod(shape))
            piece = x[start : start + size]
            if framework == "tensorflow":
                import tensorflow as tf

                out[key] = tf.reshape(piece, shape)
            else:
                out[key] = piece.reshape(shape)
            start += size
        return out

    # -- objectives ------------------------------------------------------------------
    def objective(self, framework: str) -> Callable:
        """``fun(params)`` written in ``framework`` (built once, then reused)."""
        key = ("objective", framework)
        if key not in self.cache:
            self.cache[key] = self.builders[framework]()
        return self.cache[key]

    def numpy_user_derivatives(self) -> dict:
        """am.minimize arguments for the NumPy backend fed hand-written derivatives.

        When x0 is one array, these are the very functions (a) gives scipy; otherwise they
        take x0's structure (a hand-written one where the problem has it).
        """
        key = "numpy_user"
        if key not in self.cache:
            if self.leaves[0][0] is None:
                fg, hessp, hess = self.np_fg, self.np_hessp, self.np_hess
            else:
                flatten, np_fg, np_hessp, np_hess = self.flatten, self.np_fg, self.np_hessp, self.np_hess
                fg = self.np_struct_fg or (lambda params: np_fg(flatten(params)))
                hessp = np_hessp and (lambda params, p: np_hessp(flatten(params), flatten(p)))
                hess = np_hess and (lambda params: np_hess(flatten(params)))
            kwargs: dict[str, Any] = {"jac": True}
            if self.second_order == "hessp":
                kwargs["hessp"] = hessp
            elif self.second_order == "hess":
                kwargs["hess"] = hess
            self.cache[key] = (fg, kwargs)
        return self.cache[key]


@dataclass(frozen=True)
class Cell:
    """A named benchmark cell: a problem builder and how many repeats it may take."""

    name: str
    build: Callable[[], Problem]
    max_repeats: int | None = None
    quick: bool = False
    #: |f - f_ref| <= atol + RTOL * |f_ref| is the same optimum
    atol: float = 1e-6


# --------------------------------------------------------------------------------------
# Rosenbrock
# --------------------------------------------------------------------------------------
def rosen_fg(x: np.ndarray) -> tuple[float, np.ndarray]:
    a = x[1:] - x[:-1] ** 2
    b = 1.0 - x[:-1]
    f = 100.0 * (a @ a) + b @ b
    g = np.zeros_like(x)
    g[:-1] = -400.0 * x[:-1] * a - 2.0 * b
    g[1:] += 200.0 * a
    return float(f), g


def rosen_hessp(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    hp = np.empty_like(x)
    hp[0] = (1200.0 * x[0] ** 2 - 400.0 * x[1] + 2.0) * p[0] - 400.0 * x[0] * p[1]
    hp[1:-1] = -400.0 * x[:-2] * p[:-2] + (202.0 + 1200.0 * x[1:-1] ** 2 - 400.0 * x[2:]) * p[1:-1] - 400.0 * x[1:-1] * p[2:]
    hp[-1] = -400.0 * x[-2] * p[-2] + 200.0 * p[-1]
    return hp


def rosen_hess(x: np.ndarray) -> np.ndarray:
    diag = np.empty_like(x)
    diag[0] = 1200.0 * x[0] ** 2 - 400.0 * x[1] + 2.0
    diag[1:-1] = 202.0 + 1200.0 * x[1:-1] ** 2 - 400.0 * x[2:]
    diag[-1] = 200.0
    off = -400.0 * x[:-1]
    return np.diag(diag) + np.diag(off, 1) + np.diag(off, -1)


def _rosen_numpy():
    def rosen(x):
        return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    return rosen


def _rosen_jax():
    import jax.numpy as jnp

    def rosen(x):
        return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    return rosen


def _rosen_torch():
    import torch

    def rosen(x):
        return torch.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    return rosen


def _rosen_tf():
    import tensorflow as tf

    def rosen(x):
        return tf.reduce_sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    return rosen


def rosen_problem(n: int, method: str) -> Callable[[], Problem]:
    second = {"newton-cg": "hessp", "trust-ncg": "hessp", "trust-krylov": "hessp", "trust-exact": "hess", "dogleg": "hess"}

    def build() -> Problem:
        return Problem(
            name=f"rosen{n} {method}",
            method=method,
            x0=np.zeros(n),
            leaves=[(None, (n,))],
            np_fg=rosen_fg,
            np_hessp=rosen_hessp,
            np_hess=rosen_hess,
            second_order=second.get(method.lower()),
            builders={"numpy": _rosen_numpy, "jax": _rosen_jax, "torch": _rosen_torch, "tensorflow": _rosen_tf},
        )

    return build


# --------------------------------------------------------------------------------------
# Bounded matrix factorisation with a dict x0
# --------------------------------------------------------------------------------------
MATFAC_SHAPES = [("U", (10, 3)), ("V", (3, 15))]
MATFAC_BOUNDS = {"U": (None, 0), "V": (-1, None)}


def matfac_problem() -> Problem:
    rng = np.random.default_rng(0)
    # a random rank-3 matrix that has an exact factorisation inside the bounds, so the
    # bounded optimum is f = 0 (reached at many points: any answer near 0 is right)
    M = -np.abs(rng.standard_normal((10, 3))) @ rng.uniform(-1.0, 2.0, (3, 15))
    # a seeded random start inside the bounds (U <= 0, V >= -1)
    x0 = {"U": -rng.uniform(0.0, 1.0, (10, 3)), "V": rng.uniform(-1.0, 1.0, (3, 15))}
    nU = 30

    def np_fg(x):
        U = x[:nU].reshape(10, 3)
        V = x[nU:].reshape(3, 15)
        R = U @ V - M
        f = float(np.vdot(R, R))
        return f, np.concatenate([(2.0 * R @ V.T).reshape(-1), (2.0 * U.T @ R).reshape(-1)])

    def np_struct_fg(p):
        U, V = p["U"], p["V"]
        R = U @ V - M
        return float(np.vdot(R, R)), {"U": 2.0 * R @ V.T, "V": 2.0 * U.T @ R}

    def numpy_fun():
        return lambda p: np.sum((p["U"] @ p["V"] - M) ** 2)

    def jax_fun():
        import jax.numpy as jnp

        return lambda p: jnp.sum((p["U"] @ p["V"] - M) ** 2)

    def torch_fun():
        import torch

        Mt = torch.from_numpy(M)
        return lambda p: torch.sum((p["U"] @ p["V"] - Mt) ** 2)

    def tf_fun():
        import tensorflow as tf

        Mt = tf.constant(M)
        return lambda p: tf.reduce_sum(tf.square(tf.matmul(p["U"], p["V"]) - Mt))

    lower = np.concatenate([np.full(30, -np.inf), np.full(45, -1.0)])
    upper = np.concatenate([np.zeros(30), np.full(45, np.inf)])
    return Problem(
        name="matfac L-BFGS-B",
        method="L-BFGS-B",
        x0=x0,
        leaves=MATFAC_SHAPES,
        np_fg=np_fg,
        np_struct_fg=np_struct_fg,
        bounds=MATFAC_BOUNDS,
        flat_bounds=so.Bounds(lower, upper),
        builders={"numpy": numpy_fun, "jax": jax_fun, "torch": torch_fun, "tensorflow": tf_fun},
    )


# --------------------------------------------------------------------------------------
# L2-regularised logistic regression
# --------------------------------------------------------------------------------------
LOGREG_N, LOGREG_D, LOGREG_LAMBDA = 20000, 200, 1e-4


def logreg_problem(n: int = LOGREG_N, d: int = LOGREG_D, lam: float = LOGREG_LAMBDA) -> Callable[[], Problem]:
    """Logistic loss (mean) + lam/2 ||w||^2 on seeded Gaussian features whose scales span
    10^-0.75 .. 10^0.75 (a mildly ill-conditioned problem: ~150 L-BFGS-B evaluations)."""

    def build() -> Problem:
        rng = np.random.default_rng(7)
        scale = np.logspace(-0.75, 0.75, d)
        X = rng.standard_normal((n, d)) * scale
        w_true = rng.standard_normal(d) * (3.0 / np.sqrt(d)) / scale
        y = np.where(rng.random(n) < expit(X @ w_true), 1.0, -1.0)
        Xt = np.ascontiguousarray(X.T)

        def np_fg(w):
            z = y * (X @ w)
            f = np.logaddexp(0.0, -z).mean() + 0.5 * lam * (w @ w)
            g = Xt @ (-y * expit(-z)) / n + lam * w
            return float(f), g

        def numpy_fun():
            return lambda w: np.logaddexp(0.0, -y * (X @ w)).mean() + 0.5 * lam * np.sum(w * w)

        def jax_fun():
            import jax.numpy as jnp

            return lambda w: jnp.mean(jnp.logaddexp(0.0, -y * (X @ w))) + 0.5 * lam * jnp.sum(w * w)

        def torch_fun():
            import torch

            Xt_, yt = torch.from_numpy(X), torch.from_numpy(y)
            zero = torch.zeros((), dtype=torch.float64)
            return lambda w: torch.mean(torch.logaddexp(zero, -yt * (Xt_ @ w))) + 0.5 * lam * torch.sum(w * w)

        def tf_fun():
            import tensorflow as tf

            Xc, yc = tf.constant(X), tf.constant(y)
            return lambda w: tf.reduce_mean(tf.nn.softplus(-yc * tf.linalg.matvec(Xc, w))) + 0.5 * lam * tf.reduce_sum(w * w)

        return Problem(
            name=f"logreg {n}x{d} L-BFGS-B" if n != LOGREG_N else "logreg L-BFGS-B",
            method="L-BFGS-B",
            x0=np.zeros(d),
            leaves=[(None, (d,))],
            np_fg=np_fg,
            builders={"numpy": numpy_fun, "jax": jax_fun, "torch": torch_fun, "tensorflow": tf_fun},
        )

    return build


# --------------------------------------------------------------------------------------
# the cells
# --------------------------------------------------------------------------------------
CELLS: list[Cell] = [
    Cell("rosen2 L-BFGS-B", rosen_problem(2, "L-BFGS-B"), quick=True),
    Cell("rosen100 L-BFGS-B", rosen_problem(100, "L-BFGS-B")),
    Cell("rosen1000 L-BFGS-B", rosen_problem(1000, "L-BFGS-B")),
    # from zeros, L-BFGS-B at n=10000 stops at scipy's maxfun=15000 (f ~ 7.3e3): this cell is
    # a fixed workload of 15001 evaluations (see the runner's rule for unconverged references)
    Cell("rosen10000 L-BFGS-B", rosen_problem(10000, "L-BFGS-B"), max_repeats=3),
    Cell("rosen100 BFGS", rosen_problem(100, "BFGS")),
    Cell("rosen100 CG", rosen_problem(100, "CG")),
    # scipy's Newton-CG stops on a small relative step (xtol=1e-5) before the minimum: from
    # zeros the final f lies anywhere in 1e-7..1e-2 depending on rounding, so any f within
    # 0.05 of the reference counts as right (a wrong HVP ends far off, or at f = 3.98).
    Cell("rosen100 Newton-CG", rosen_problem(100, "Newton-CG"), quick=True, atol=0.05),
    Cell("rosen1000 Newton-CG", rosen_problem(1000, "Newton-CG"), atol=0.05),
    Cell("rosen100 trust-ncg", rosen_problem(100, "trust-ncg")),
    Cell("rosen1000 trust-ncg", rosen_problem(1000, "trust-ncg")),
    Cell("rosen50 trust-exact", rosen_problem(50, "trust-exact"), quick=True),
    Cell("matfac L-BFGS-B", matfac_problem, quick=True),
    Cell("logreg L-BFGS-B", logreg_problem()),
]

QUICK_CELLS = [cell for cell in CELLS if cell.quick]


def select_cells(only: Any = None, quick: bool = False) -> list[Cell]:
    """Cells whose name contains any of the substrings in ``only`` (case-insensitive).

    ``only`` may be None (every cell; the quick subset when ``quick``), one string, or a
    list of strings; a string may hold several substrings separated by commas.
    """
    if only is None or only == [] or only == "":
        return list(QUICK_CELLS if quick else CELLS)
    if isinstance(only, str):
        only = [only]
    wanted = [part.strip().lower() for item in only for part in str(item).split(",") if part.strip()]
    chosen = [cell for cell in CELLS if any(w in cell.name.lower() for w in wanted)]
    if not chosen:
        raise ValueError(f"no benchmark cell matches {only!r}; cells: {', '.join(c.name for c in CELLS)}")
    return chosen
