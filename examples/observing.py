"""Watch a solve: history, an SQLite log read back, and the three kinds of plot.

Usage: python examples/observing.py [OUTPUT_DIR]   (default: docs/images)
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

import autominimize as am


def rosen(p):
    x = p["x"]
    return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum() + (p["shift"] ** 2).sum()


def main(out_dir: str) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    x0 = {"x": np.zeros(6), "shift": np.ones(2)}
    log = os.path.join(tempfile.mkdtemp(), "runs.sqlite")
    results = {method: am.minimize(rosen, x0, method=method, log=log) for method in ("L-BFGS-B", "BFGS", "trust-ncg")}
    for method, res in results.items():
        print(f"{method:<10} f={res.fun:.2e} nit={res.nit:4d} nfev={res.nfev:4d} history={res.history}")
    logged = am.read_log(log)  # the last run, read back from the file
    print(f"read back run {logged.run_id} ({logged.method}): best f = {logged.best_f:.2e} at x = {logged.x}")

    written = []
    for name, figure in {
        "criterion.png": am.plot.criterion(results, x="evaluations"),
        "params.png": am.plot.params(results["BFGS"]),
        "profile.png": am.plot.profile(
            [
                {"problem": f"rosen x0={start}", "solver": method, "seconds": res.history.evaluations[-1].time}
                for start in (0.0, 0.5, -0.5)
                for method, res in {
                    m: am.minimize(rosen, {"x": np.full(6, start), "shift": np.ones(2)}, method=m) for m in ("L-BFGS-B", "BFGS", "trust-ncg")
                }.items()
            ]
        ),
    }.items():
        path = os.path.join(out_dir, name)
        figure.savefig(path, dpi=80)
        written.append(path)
    return written


if __name__ == "__main__":
    print(main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "docs", "images")))
