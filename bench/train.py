"""Benchmark: training throughput of the SSIM-AE (and the L2-AE beside it) on every installed Keras backend.

For each backend (TensorFlow, JAX, PyTorch when installed), a subprocess with
``KERAS_BACKEND`` set builds ``ConvAutoencoder(128, 1, d)`` for d = 100 and 500,
compiles it with :func:`ssimlib.train.compile_autoencoder` (Adam, the paper's
lr and weight decay) and times ``train_on_batch`` on NumPy batches of 128
patches, as :func:`ssimlib.train.train` does, after a few warm-up steps.
The L2 rows show what the SSIM loss costs.  The last column extrapolates the
paper's schedule (10,000 patches, 200 epochs, batch 128) to hours on this machine.

Run ``python bench/train.py`` (a few minutes on a 2-core CPU);
``--steps 20 --warmup 3`` for steadier numbers, ``--help`` for all options.
"""

import argparse
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import ssimlib  # noqa: E402,F401  (before Keras: sets TensorFlow's oneDNN and threading options)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from inference import cpu_model, load_note  # noqa: E402  (bench/inference.py)

PATCH = 128
PAPER_PATCHES = 10_000
PAPER_EPOCHS = 200
BACKENDS = ("tensorflow", "jax", "torch")


def installed_backends():
    """Keras backends whose library is importable here."""
    return [b for b in BACKENDS if importlib.util.find_spec(b) is not None]


def paper_schedule_steps(batch_size):
    """Optimizer steps of the paper's schedule (a last partial batch is dropped, as ssimlib.train does)."""
    return PAPER_EPOCHS * max(1, PAPER_PATCHES // batch_size)


def worker(args):
    """Time train_on_batch for every (latent dim, loss) on the current backend; returns a JSON-able dict."""
    import keras
    import numpy as np

    from ssimlib.evaluate import run_environment
    from ssimlib.models import ConvAutoencoder
    from ssimlib.train import compile_autoencoder

    rng = np.random.default_rng(0)
    batches = [rng.random((args.batch_size, PATCH, PATCH, 1), dtype=np.float32) for _ in range(2)]
    rows = []
    for latent in args.latent:
        for loss in args.losses:
            keras.utils.set_random_seed(0)
            model = compile_autoencoder(ConvAutoencoder(PATCH, 1, latent), loss)
            start = time.perf_counter()
            for i in range(args.warmup):  # the first step traces / compiles
                model.train_on_batch(batches[i % 2], batches[i % 2])
            warmup = time.perf_counter() - start
            wall, cpu = time.perf_counter(), time.process_time()
            for i in range(args.steps):
                value = float(model.train_on_batch(batches[i % 2], batches[i % 2]))  # float() waits for the result
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            rows.append({
                "latent": latent, "loss": loss, "steps_per_s": args.steps / wall, "cpu_s_per_step": cpu / args.steps,
                "warmup_s": warmup, "final_loss": value, "load": os.getloadavg()[0],
            })
    backend = keras.backend.backend()
    return {"environment": run_environment(), "version": importlib.import_module(backend).__version__, "rows": rows}


def run_backend(backend, args):
    """Run the worker under ``KERAS_BACKEND=backend``; its JSON result, or None with the error printed."""
    command = [sys.executable, os.path.abspath(__file__), "--worker", "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--batch-size", str(args.batch_size),
               "--latent", *map(str, args.latent), "--losses", *args.losses]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "KERAS_BACKEND": backend})
    if done.returncode != 0:
        print(f"{backend}: failed:\n{done.stderr[-2000:]}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2, help="timed train_on_batch steps per configuration")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (tracing / compilation)")
    parser.add_argument("--batch-size", type=int, default=128, help="patches per step (paper: 128)")
    parser.add_argument("--latent", type=int, nargs="+", default=[100, 500], help="latent dimensions d")
    parser.add_argument("--losses", nargs="+", default=["ssim", "l2"], help="training losses (ssimlib.losses names)")
    parser.add_argument("--backends", nargs="+", default=None, help="Keras backends (default: every installed one)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    backends = args.backends or installed_backends()
    steps = paper_schedule_steps(args.batch_size)
    print(f"training benchmark, {time.strftime('%Y-%m-%d %H:%M')}: {cpu_model()}, {os.cpu_count()} cores; "
          f"backends {', '.join(backends)} (not installed: {', '.join(set(BACKENDS) - set(installed_backends())) or 'none'})")
    print(load_note())
    print(f"ConvAutoencoder {PATCH}x{PATCH}x1, batch {args.batch_size}, Adam; {args.warmup} warm-up + {args.steps} timed "
          f"train_on_batch steps on NumPy batches; paper schedule = {PAPER_PATCHES} patches x {PAPER_EPOCHS} epochs "
          f"= {steps} steps\n")
    print("| backend | device | d | loss | steps/s | patches/s | CPU s/step | warm-up s | paper schedule h | load (incl. this run) |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
    results = {}
    for backend in backends:
        result = run_backend(backend, args)
        if result is None:
            continue
        env = result["environment"]
        for row in result["rows"]:
            results[(backend, row["latent"], row["loss"])] = row["steps_per_s"]
            print(f"| {backend} {result['version']} | {env['device']} | "
                  f"{row['latent']} | {row['loss']} | {row['steps_per_s']:.3f} | {row['steps_per_s'] * args.batch_size:.1f} | "
                  f"{row['cpu_s_per_step']:.2f} | {row['warmup_s']:.1f} | {steps / row['steps_per_s'] / 3600:.1f} | {row['load']:.1f} |")
    print("\n" + load_note(before=False))
    for (backend, latent, loss), rate in results.items():
        if loss == "ssim" and (backend, latent, "l2") in results:
            print(f"ratio SSIM / L2 step time, {backend}, d={latent}: {results[(backend, latent, 'l2')] / rate:.2f}")
    for (backend, latent, loss), rate in results.items():
        if backend != "tensorflow" and ("tensorflow", latent, loss) in results:
            print(f"ratio {backend} / tensorflow throughput, d={latent}, {loss}: {rate / results[('tensorflow', latent, loss)]:.2f}")


if __name__ == "__main__":
    main()
