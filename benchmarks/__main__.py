"""Command line: ``python -m benchmarks [--repeats N] [--quick] [--only S] [--markdown]``."""

from __future__ import annotations

import argparse
import platform
import sys
import time


def _versions() -> str:
    import importlib.metadata as md

    parts = [f"python {platform.python_version()}"]
    for name in ("numpy", "scipy", "jax", "torch", "tensorflow"):
        try:
            parts.append(f"{name} {md.version(name)}")
        except md.PackageNotFoundError:
            parts.append(f"{name} -")
    return ", ".join(parts)


#: further tables, each a self-contained module: name -> (module, run function, format function, title)
SECTIONS = {
    "observing": (
        "observing",
        "run_observing",
        "format_observing",
        "cost of history=, log= and progress= (L-BFGS-B on JAX: rosen100 and a small network)",
    ),
    "least-squares": ("least_squares", "run_least_squares", "format_least_squares", "least squares on the MGH set; parallel numerical gradients"),
    "global": ("global_opt", "run_global", "format_global", "batched differential evolution; multistart"),
    "native": ("native", "run_native", "format_native", "native L-BFGS vs scipy L-BFGS-B and torchmin; batched L-BFGS vs a loop"),
    "torch-mlp": ("torch_mlp", "run_torch_mlp", "format_torch_mlp", "am.torch.ScipyOptimizer vs torch.optim.LBFGS on a 2-layer MLP"),
    "implicit": (
        "implicit",
        "run_implicit",
        "format_implicit",
        "implicit differentiation: backward pass vs forward solve, logistic regression 20000 x 200",
    ),
    "batched": ("batched", "run_batched", "format_batched", "10 000 bounded curve fits and 1 000 bounded L-BFGS starts in one batch vs loops"),
    "memory": (
        "memory",
        "run_memory",
        "format_memory",
        "peak RSS of the default history on 200 000 parameters, and of 20 torch closures (subprocesses)",
    ),
    "first-hour": (
        "first_hour",
        "run_first_hour",
        "format_first_hour",
        "first (cold) and second solves in fresh processes per backend and integration; 40 fits to new data vs one data set",
    ),
    "ipopt": (
        "ipopt",
        "run_ipopt_bench",
        "format_ipopt_bench",
        "method='ipopt' with automatic sparse derivatives vs hand-built triplets and dense trust-constr; the Hock-Schittkowski set",
    ),
}


def run_sections(names: list[str], repeats: int) -> None:
    """Run and print the further tables, one after the other."""
    import importlib

    for name in names:
        module_name, run_name, format_name, title = SECTIONS[name]
        module = importlib.import_module(f"{__package__}.{module_name}")
        start = time.perf_counter()
        rows = getattr(module, run_name)(repeats=repeats)
        print(f"\n## {name}: {title} ({time.perf_counter() - start:.0f} s)\n")
        print(getattr(module, format_name)(rows))
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="timed warm rounds per cell (default 5; n=10000 and logreg take at most 3; a cell whose rounds take under a second runs more, up to 20x)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repeat, small cells only (unless --only)")
    parser.add_argument(
        "--only",
        action="append",
        default=None,
        metavar="SUBSTRING",
        help="run the cells whose name contains SUBSTRING (repeatable, or comma-separated)",
    )
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--contenders", default=None, help="comma-separated contender keys (default all)")
    parser.add_argument(
        "--per-solve-limits", action="store_true", help="baselines also enter threadpool_limits(1) around every solve, as am.minimize does"
    )
    parser.add_argument(
        "--budget", type=float, default=None, help="seconds of timed rounds per cell before no further round starts (default 20; 0 = no limit)"
    )
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the rows as JSON to PATH")
    parser.add_argument("--no-import-time", action="store_true", help="skip the import-time measurement")
    parser.add_argument(
        "--section",
        action="append",
        choices=["core", *SECTIONS],
        default=None,
        help="run only these tables (repeatable); default: all of them, or only 'core' with --quick or --only",
    )
    parser.add_argument(
        "--jax-sync-dispatch", action="store_true", help="run JAX's CPU computations inline (jax_cpu_enable_async_dispatch=False) for every contender"
    )
    args = parser.parse_args(argv)
    sections = args.section or (["core"] if args.quick or args.only else ["core", *SECTIONS])
    if "core" not in sections:
        run_sections(sections, repeats=min(args.repeats, 3))
        return 0

    from . import contenders as contenders_module
    from .problems import select_cells
    from .report import format_import, format_summary, format_table
    from .runner import CELL_BUDGET, RTOL, import_time, run, setup_threads

    select_cells(args.only, args.quick)  # fail early on a bad --only
    contenders_module.PER_SOLVE_LIMITS["enabled"] = args.per_solve_limits
    start = time.perf_counter()
    imp = None if args.no_import_time else import_time(3)
    threads = setup_threads()
    if args.jax_sync_dispatch:
        import jax

        # Read when JAX creates its CPU client, i.e. before the first computation (and after
        # setup_threads has set XLA_FLAGS).
        jax.config.update("jax_cpu_enable_async_dispatch", False)
    print(f"# autominimize benchmark ({_versions()})")
    print(
        "# float64; Rosenbrock from zeros(n); medians of interleaved warm rounds (contenders shuffled in each) after one warm-up"
        f" solve; threads: BLAS {threads.get('blas')}, XLA {threads.get('xla', '-')}, torch"
        f" {threads.get('torch', '-')}, TF {threads.get('tensorflow', '-')}"
        + ("; baselines also enter threadpool_limits per solve" if args.per_solve_limits else "")
        + ("; JAX CPU dispatch synchronous for every contender" if args.jax_sync_dispatch else "")
    )
    sys.stdout.flush()
    if imp is not None:
        print("# " + format_import(imp))
    progress = lambda msg: print("#   " + msg, file=sys.stderr, flush=True)
    contenders = args.contenders.split(",") if args.contenders else None
    budget = CELL_BUDGET if args.budget is None else (args.budget or None)
    if args.quick and args.budget is None:
        budget = 5.0
    rows = run(args.only, args.repeats, quick=args.quick, contenders=contenders, progress=progress, limit_threads=True, budget=budget)
    if args.json:
        import json

        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    print()
    print(format_table(rows, markdown=args.markdown))
    print()
    print(
        "ref s: median seconds of (a) scipy fed hand-written NumPy f+g (jac=True) and hessp/hess. "
        "Other columns: median time / (a), except am-jax/b = am-jax / jax-hand (target <= 1.0), "
        "am-torch/th = am-torch / torch-hand and am-tf/tfh = am-tf / tf-hand (targets <= 1.15). "
        "jax-hand = (b) jitted value_and_grad (+ jvp-of-grad HVP / jax.hessian) with NumPy "
        "conversion, x64 on; torch-hand = eager autograd with from_numpy; tf-hand = tf.function "
        "with fixed input_signature; am-np = am backend='numpy' fed the hand-written derivatives (targets <= 1.25; "
        "am-np-nh, the same with history=False: <= 1.10). "
        "counts = nfev/njev(/hessp or hess calls) (scipy's trust-ncg reports one Hessian evaluation more than it makes); on am-jax '=b' = differ from (a)'s but equal "
        "(b)'s (same XLA arithmetic), '≠' = equal neither. '!' = the optimum differs from (a)'s by more than "
        f"atol + {RTOL:g}*|f_ref| (atol 1e-6; 0.05 for Newton-CG, which stops early on a small step); when (a) "
        "stops unconverged (rosen10000 hits maxfun=15000), a contender must stop too, within 1% of (a)'s f. "
        "n/a = unavailable or raised. Slow cells run fewer timed rounds (see 'rounds per cell')."
    )
    print()
    print("rounds per cell: " + ", ".join(f"{row['cell']} {row['repeats']}" for row in rows))
    print(format_summary(rows))
    sys.stdout.flush()
    run_sections([name for name in sections if name != "core"], repeats=min(args.repeats, 3))
    print(f"# total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
