"""Fit an exponential decay three ways: am.least_squares, am.curve_fit, am.minimize.

Run: python examples/least_squares_fit.py
"""

import jax.numpy as jnp
import numpy as np

import autominimize as am


def main() -> dict:
    rng = np.random.default_rng(0)
    t = np.linspace(0.0, 4.0, 60)
    y = 3.0 * np.exp(-0.7 * t) + 0.5 + 0.02 * rng.normal(size=t.size)

    @am.residuals
    def residuals(p):
        return p["amplitude"] * jnp.exp(-p["rate"] * t) + p["offset"] - y

    x0 = {"amplitude": 1.0, "rate": 1.0, "offset": 0.0}
    ls = am.least_squares(residuals, x0, method="lm")
    popt, pcov = am.curve_fit(lambda x, a, k, c: a * jnp.exp(-k * x) + c, t, y, p0=[1.0, 1.0, 0.0])
    gn = am.minimize(residuals, x0, method="trust-ncg")  # Gauss-Newton products J.T @ J @ v
    print(f"least_squares: {ls.x}  (cost {ls.cost:.5f}, nfev {ls.nfev}, njev {ls.njev}, {ls.backend})")
    print(f"curve_fit:     {np.round(popt, 6).tolist()}  standard errors {np.sqrt(np.diag(pcov)).round(4).tolist()}")
    print(f"trust-ncg:     {gn.x}  (fun {gn.fun:.5f}, nhvp {gn.nhvp})")
    return {"least_squares": ls, "curve_fit": (popt, pcov), "minimize": gn}


if __name__ == "__main__":
    main()
