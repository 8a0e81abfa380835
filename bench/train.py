"""Benchmark: training throughput of the SSIM-AE (and the L2-AE beside it), as patches/s and as a fraction of peak.

For each backend (TensorFlow, JAX, PyTorch when installed), a subprocess with
``KERAS_BACKEND`` set builds ``ConvAutoencoder(128, 1, d)``, compiles it with
:func:`ssimlib.train.compile_autoencoder` (Adam, the paper's lr and weight decay)
and times ``train_on_batch`` on NumPy batches, as :func:`ssimlib.train.train`
does, for every combination of latent size, loss, batch size and Keras dtype
policy asked for.  Each step is timed on its own; the median is reported.

The same subprocess measures the machine's float32 matrix-product peak
(``bench/peak.py``), so every row also reads as a fraction of what this CPU can
do: training GFLOP/s = patches/s x 3 x the model's forward FLOPs per patch
(:func:`ssimlib.models.forward_flops`; forward pass plus two gradients).  The L2
rows show what the SSIM loss costs; the last column extrapolates the paper's
schedule (10,000 patches, 200 epochs) to hours on this machine.

Run ``python bench/train.py`` (a few minutes on a 2-core CPU); ``--policies float32 mixed_bfloat16`` adds
reduced-precision rows, ``--help`` lists every option.
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
from peak import cpu_flags, matmul_gflops  # noqa: E402  (bench/peak.py)

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
    """Time train_on_batch for every configuration on the current backend; returns a JSON-able dict."""
    import statistics

    import keras
    import numpy as np

    from ssimlib.records import run_environment
    from ssimlib.models import ConvAutoencoder, forward_flops
    from ssimlib.train import compile_autoencoder

    peak = matmul_gflops("float32")
    rng = np.random.default_rng(0)
    rows = []
    configurations = [(p, d, loss, b, policy) for p in args.patch_sizes for d in args.latent for loss in args.losses
                      for b in args.batch_sizes for policy in args.policies]
    for patch, latent, loss, batch_size, policy in configurations:
        batches = [rng.random((batch_size, patch, patch, 1), dtype=np.float32) for _ in range(2)]
        keras.config.set_dtype_policy(policy)
        keras.utils.set_random_seed(0)
        model = compile_autoencoder(ConvAutoencoder(patch, 1, latent), loss)
        keras.config.set_dtype_policy("float32")
        start = time.perf_counter()
        for i in range(args.warmup):  # the first step traces / compiles
            model.train_on_batch(batches[i % 2], batches[i % 2])
        warmup = time.perf_counter() - start
        times, cpu = [], time.process_time()
        for i in range(args.steps):
            start = time.perf_counter()
            value = float(model.train_on_batch(batches[i % 2], batches[i % 2]))  # float() waits for the result
            times.append(time.perf_counter() - start)
        rows.append({
            "patch": patch, "latent": latent, "loss": loss, "batch_size": batch_size, "policy": policy,
            "step_s": statistics.median(times), "cpu_s_per_step": (time.process_time() - cpu) / args.steps,
            "flops_per_patch": forward_flops(model), "warmup_s": warmup, "final_loss": value,
            "load": os.getloadavg()[0],
        })
    after = matmul_gflops("float32")
    backend = keras.backend.backend()
    return {"environment": run_environment(), "version": importlib.import_module(backend).__version__,
            "peak_gflops": max(peak, after), "peak_before_after": [peak, after], "rows": rows}


def run_backend(backend, args):
    """Run the worker under ``KERAS_BACKEND=backend``; its JSON result, or None with the error printed."""
    command = [sys.executable, os.path.abspath(__file__), "--worker", "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--batch-sizes", *map(str, args.batch_sizes),
               "--latent", *map(str, args.latent), "--patch-sizes", *map(str, args.patch_sizes),
               "--losses", *args.losses, "--policies", *args.policies]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "KERAS_BACKEND": backend})
    if done.returncode != 0:
        print(f"{backend}: failed:\n{done.stderr[-2000:]}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed train_on_batch steps per configuration (median)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (tracing / compilation)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32, 128], help="patches per step")
    parser.add_argument("--latent", type=int, nargs="+", default=[500], help="latent dimensions d")
    parser.add_argument("--patch-sizes", type=int, nargs="+", default=[PATCH],
                        help="patch sides (32, 64, 128, 256, ...)")
    parser.add_argument("--losses", nargs="+", default=["ssim", "l2"], help="training losses (ssimlib.losses names)")
    parser.add_argument("--policies", nargs="+", default=["float32"],
                        help="Keras dtype policies (mixed_bfloat16: bfloat16 compute, float32 weights)")
    parser.add_argument("--backends", nargs="+", default=["tensorflow"],
                        help=f"Keras backends among {', '.join(BACKENDS)} (JAX and PyTorch run 8-10x slower on a CPU)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    backends = [b for b in args.backends if b in installed_backends()]
    print(f"training benchmark, {time.strftime('%Y-%m-%d %H:%M')}: {cpu_model()}, {os.cpu_count()} cores, "
          f"flags {' '.join(cpu_flags()) or 'unknown'}; backends {', '.join(backends)} "
          f"(not installed: {', '.join(sorted(set(args.backends) - set(backends))) or 'none'})")
    print(load_note())
    print(f"ConvAutoencoder, 1 channel, Adam; {args.warmup} warm-up + {args.steps} timed train_on_batch steps "
          f"(median) on NumPy batches; paper schedule = {PAPER_PATCHES} patches x {PAPER_EPOCHS} epochs; "
          "% peak = patches/s x 3 x forward FLOPs / float32 matmul GFLOP/s measured in the same process\n")
    print("| backend | device | patch | d | loss | batch | policy | patches/s | GFLOP/s | % of fp32 peak | CPU s/step "
          "| paper schedule h | load |")
    print("|---|---|---:|---:|---|---:|---|---:|---:|---:|---:|---:|---:|")
    rates = {}
    for backend in backends:
        result = run_backend(backend, args)
        if result is None:
            continue
        env, peak = result["environment"], result["peak_gflops"]
        for row in result["rows"]:
            rate = row["batch_size"] / row["step_s"]
            gflops = rate * 3 * row["flops_per_patch"] / 1e9
            hours = paper_schedule_steps(row["batch_size"]) * row["step_s"] / 3600
            rates[(backend, row["patch"], row["latent"], row["loss"], row["batch_size"], row["policy"])] = rate
            print(f"| {backend} {result['version']} | {env['device']} | {row['patch']} | {row['latent']} | "
                  f"{row['loss']} | {row['batch_size']} | {row['policy']} | {rate:.1f} | {gflops:.1f} | "
                  f"{100 * gflops / peak:.0f} | {row['cpu_s_per_step']:.2f} | {hours:.1f} | {row['load']:.1f} |")
        before, after = result["peak_before_after"]
        print(f"\n{backend}: float32 matmul peak {peak:.1f} GFLOP/s (the higher of {before:.1f} before the rows "
              f"and {after:.1f} after)")
    print(load_note(before=False))
    for (backend, patch, latent, loss, batch, policy), rate in rates.items():
        where = f"{backend}, {patch} px, d={latent}, batch {batch}"
        l2 = rates.get((backend, patch, latent, "l2", batch, policy))
        if loss == "ssim" and l2:
            print(f"ratio SSIM / L2 step time, {where}, {policy}: {l2 / rate:.2f}")
        fp32 = rates.get((backend, patch, latent, loss, batch, "float32"))
        if policy != "float32" and fp32:
            print(f"ratio {policy} / float32 throughput, {where}, {loss}: {rate / fp32:.2f}")
        tf_rate = rates.get(("tensorflow", patch, latent, loss, batch, policy))
        if backend != "tensorflow" and tf_rate:
            print(f"ratio {backend} / tensorflow throughput, {where}, {loss}: {rate / tf_rate:.2f}")


if __name__ == "__main__":
    main()
