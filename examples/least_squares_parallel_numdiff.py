"""A slow NumPy model fitted with finite differences evaluated on 4 local processes.

Run: python examples/least_squares_parallel_numdiff.py
"""

import time

import numpy as np

import autominimize as am

T = np.linspace(0.0, 2.0, 30)
Y = 2.0 * np.exp(-1.5 * T) + 0.3


def slow_residuals(p):
    time.sleep(0.01)  # a stand-in for a simulation with no derivatives
    return p[0] * np.exp(-p[1] * T) + p[2] - Y


def main(workers: int = 4):
    start = time.perf_counter()
    serial = am.least_squares(slow_residuals, np.ones(3), method="trf", backend="numpy")
    middle = time.perf_counter()
    parallel = am.least_squares(slow_residuals, np.ones(3), method="trf", backend="numpy", workers=workers)
    end = time.perf_counter()
    print(f"serial:   {serial.x.round(6)} nfev={serial.nfev} in {middle - start:.2f} s")
    print(f"parallel: {parallel.x.round(6)} nfev={parallel.nfev} in {end - middle:.2f} s (incl. starting {workers} processes)")
    return serial, parallel


if __name__ == "__main__":
    main()
