"""The machine's own limit: dense matrix-product throughput in GFLOP/s, per dtype.

Benchmarks divide their throughput by this peak, measured in the same run on the
same backend, so a number from a fast machine and one from a slow (or busy)
machine can be compared as a fraction of what each could do.  The peak is the
median of timed ``keras.ops.matmul`` calls on two ``size x size`` matrices
(``2 * size**3`` operations each) after a warm-up; ``bench/train.py`` takes the
higher of a measurement before and one after its rows.

Run ``python bench/peak.py`` to print the CPU, its vector flags and the peaks.
"""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import ssimlib  # noqa: E402,F401  (before Keras: sets TensorFlow's oneDNN and threading options)
from ssimlib.records import cpu_flags, cpu_model  # noqa: E402,F401  (bench scripts import both from here)


def matmul_gflops(dtype="float32", size=2048, repeats=10):
    """Median GFLOP/s of ``size x size`` matrix products in ``dtype`` on the current Keras backend."""
    import keras
    import numpy as np
    from keras import ops

    rng = np.random.default_rng(0)
    a = ops.convert_to_tensor(rng.random((size, size), dtype=np.float32), dtype=dtype)
    b = ops.convert_to_tensor(rng.random((size, size), dtype=np.float32), dtype=dtype)
    times = []
    for i in range(repeats + 3):  # three warm-up products
        start = time.perf_counter()
        keras.ops.convert_to_numpy(ops.cast(ops.matmul(a, b)[0, 0], "float32"))  # waits for the product
        if i >= 3:
            times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def peaks(dtypes=("float32", "bfloat16"), size=2048, repeats=10):
    """``{dtype: GFLOP/s}`` for each dtype."""
    return {dtype: matmul_gflops(dtype, size, repeats) for dtype in dtypes}


def main():
    import argparse

    import keras

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=2048, help="side of the square matrices")
    parser.add_argument("--repeats", type=int, default=10, help="timed products per dtype (median reported)")
    args = parser.parse_args()
    print(f"{cpu_model()}, {os.cpu_count()} cores, flags {' '.join(cpu_flags()) or 'unknown'}; "
          f"backend {keras.backend.backend()}")
    for dtype, gflops in peaks(size=args.size, repeats=args.repeats).items():
        print(f"matmul {args.size}x{args.size} {dtype}: {gflops:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
