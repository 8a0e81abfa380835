"""Benchmark: evaluating one whole image with an SSIM-AE, batched pipeline vs a naive per-patch loop.

Pipeline timed (paper section 4: 128x128 patches, stride 30, d = 500):

* ``ssimlib``: :func:`ssimlib.inference.reconstruct_image` (all patches in
  batches, overlapping reconstructions averaged per pixel), the SSIM residual
  :func:`ssimlib.inference.residual_map` (``kind="ssim"``) on the whole image,
  then threshold + opening (:func:`ssimlib.postprocess.segment`).
* ``naive``: what simple re-implementations do: one model call per patch in a
  Python loop (``model.predict_on_batch`` on 1 patch, the faster of that and
  ``model(patch[None])`` here), scikit-image's ``structural_similarity``
  (``full=True``, Gaussian weights) per patch, the per-patch ``1 - SSIM`` maps
  averaged per pixel, then the same threshold + opening.

The model is an untrained ``ConvAutoencoder(128, 1, 500)``: the time does not
depend on the weights.  The image is a NanoTWICE test image (1024x696) when the
data is found (``ssimlib.paths.data_root("nanotwice")``), else a generated one.
Both pipelines run in one process, interleaved, after a warm-up; peak memory is
the maximum RSS of a fresh subprocess that runs one pipeline on one image.

Run ``python bench/inference.py`` (any backend: ``KERAS_BACKEND=jax python bench/inference.py``);
``--help`` lists the options.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import ssimlib  # noqa: E402,F401  (before Keras: sets TensorFlow's oneDNN and threading options)
from ssimlib.records import cpu_model  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peak import cpu_flags, matmul_gflops  # noqa: E402  (bench/peak.py)

PATCH = 128
STRIDE = 30
LATENT = 500
THRESHOLD = 0.5  # any value: the time of threshold + opening does not depend on it
PAPER_SECONDS_PER_IMAGE = 3.61  # Tesla V100, 1024x696 NanoTWICE image, stride 30
PAPER_MS_PER_PATCH = 2.23  # one forward pass of a 128x128 patch, d = 500, V100
TARGET_PEAK_GIB = 2.0
NANOTWICE_TEST_IMAGE = "Anomalous/images/ITIA1101.tif"


def load_note(before=True):
    """One line with the load average (1, 5, 15 min).

    Before a run it flags a machine that other processes clearly keep busy; after
    a run the averages include this benchmark's own threads, so it only reports them.
    """
    cores = os.cpu_count()
    load = os.getloadavg()
    note = f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {cores} cores"
    if not before:
        return note + " (after the run: includes this benchmark's own processes)"
    if load[0] > cores / 2:
        note += " -- BUSY: other processes compete, wall times will be inflated; re-run when quiet"
    return note


def bench_image(shape, seed=0):
    """The benchmark image ``(H, W, 1)`` float32 in [0, 1] and where it came from.

    A NanoTWICE test image (mirror-extended or cropped to ``shape``) when the data
    is there, else smooth random texture of that size.
    """
    import numpy as np

    from ssimlib.paths import data_root

    path = data_root("nanotwice") / NANOTWICE_TEST_IMAGE
    if path.exists():
        from ssimlib.data import read_image

        image = read_image(path, gray=True)
        source = f"NanoTWICE {path.name}"
        pad = [(0, max(0, s - n)) for s, n in zip(shape, image.shape[:2])] + [(0, 0)]
        if any(after for _, after in pad):
            image = np.pad(image, pad, mode="reflect")
            source += f" mirror-extended to {shape[1]}x{shape[0]}"
        return image[: shape[0], : shape[1]], source
    import scipy.ndimage

    noise = np.random.default_rng(seed).random(shape)
    image = scipy.ndimage.gaussian_filter(noise, 2.0)
    image = (image - image.min()) / (image.max() - image.min())
    return image.astype(np.float32)[..., None], "generated (NanoTWICE not found)"


def build_model(seed=0, policy="float32"):
    """The untrained d = 500 autoencoder, its layers computing in the Keras dtype ``policy``."""
    import keras

    from ssimlib.models import ConvAutoencoder

    keras.utils.set_random_seed(seed)
    keras.config.set_dtype_policy(policy)
    try:
        return ConvAutoencoder(PATCH, 1, LATENT)
    finally:
        keras.config.set_dtype_policy("float32")


def ssimlib_pipeline(model, image, batch_size, stages=None):
    """Segmentation mask ``(H, W)`` of ``image`` with ssimlib; ``stages`` (a dict) collects per-stage seconds."""
    from ssimlib.inference import reconstruct_image, residual_map
    from ssimlib.postprocess import segment

    t0 = time.perf_counter()
    reconstruction = reconstruct_image(model, image, PATCH, STRIDE, batch_size)
    t1 = time.perf_counter()
    residual = residual_map(image, reconstruction, kind="ssim")
    t2 = time.perf_counter()
    mask = segment(residual, THRESHOLD)
    t3 = time.perf_counter()
    if stages is not None:
        for name, seconds in (("reconstruct", t1 - t0), ("ssim residual", t2 - t1), ("threshold+opening", t3 - t2)):
            stages.setdefault(name, []).append(seconds)
    return mask


def naive_pipeline(model, image):
    """Segmentation mask ``(H, W)``: one model call and one scikit-image SSIM per patch, maps averaged."""
    import numpy as np
    from skimage.metrics import structural_similarity

    from ssimlib.inference import window_starts
    from ssimlib.postprocess import segment

    gray = image[..., 0]
    total = np.zeros(gray.shape)
    count = np.zeros(gray.shape)
    for y in window_starts(gray.shape[0], PATCH, STRIDE):
        for x in window_starts(gray.shape[1], PATCH, STRIDE):
            patch = gray[y : y + PATCH, x : x + PATCH]
            reconstruction = np.asarray(model.predict_on_batch(patch[None, ..., None]))[0, ..., 0]
            _, ssim = structural_similarity(
                patch.astype(np.float64), reconstruction.astype(np.float64), data_range=1.0,
                gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=True,
            )
            total[y : y + PATCH, x : x + PATCH] += 1.0 - ssim
            count[y : y + PATCH, x : x + PATCH] += 1
    return segment(total / count, THRESHOLD)


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker_time(args):
    """Time both pipelines, interleaved, in this process; returns a JSON-able dict."""
    import numpy as np

    from ssimlib.records import run_environment
    from ssimlib.inference import extract_patches
    from ssimlib.models import forward_flops

    image, source = bench_image((args.height, args.width))
    model = build_model(policy=args.policy)
    n_patches = len(extract_patches(image, PATCH, STRIDE)[0])
    load_before = os.getloadavg()
    ssimlib_pipeline(model, image, args.batch_size)  # warm-up: tracing / compilation
    naive_pipeline(model, image)
    runs = {"ssimlib": [], "naive": []}
    stages = {}
    for _ in range(args.repeats):
        for name in runs:
            wall, cpu = time.perf_counter(), time.process_time()
            if name == "ssimlib":
                ssimlib_pipeline(model, image, args.batch_size, stages)
            else:
                naive_pipeline(model, image)
            runs[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {
        "environment": run_environment(),
        "policy": args.policy,
        "flops_per_patch": forward_flops(model),
        "peak_gflops": matmul_gflops("float32"),
        "image": source,
        "shape": list(image.shape),
        "patches": n_patches,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "wall": {k: float(np.median([w for w, _ in v])) for k, v in runs.items()},
        "cpu": {k: float(np.median([c for _, c in v])) for k, v in runs.items()},
        "stages": {k: float(np.median(v)) for k, v in stages.items()},
        "load_before": load_before,
        "load_after": os.getloadavg(),
    }


def worker_memory(args):
    """Peak RSS of this process around one (cold) run of one pipeline."""
    image, source = bench_image((args.height, args.width))
    model = build_model(policy=args.policy)
    before = _rss_bytes()
    if args.variant == "ssimlib":
        ssimlib_pipeline(model, image, args.batch_size)
    else:
        naive_pipeline(model, image)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {"variant": args.variant, "shape": list(image.shape), "image": source, "rss_before": before, "peak": peak}


def run_worker(kind, args, **overrides):
    """Run ``kind`` in a fresh Python process with the same backend; returns its JSON result."""
    options = {"height": args.height, "width": args.width, "batch_size": args.batch_size, "repeats": args.repeats,
               "policy": args.policy}
    options.update(overrides)
    command = [sys.executable, os.path.abspath(__file__), "--worker", kind]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"worker {' '.join(command[2:])} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def gib(n_bytes):
    return n_bytes / 2**30


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs of each pipeline after one warm-up (median reported)")
    parser.add_argument("--batch-size", type=int, default=256, help="patches per model call in the ssimlib pipeline")
    parser.add_argument("--height", type=int, default=696, help="image height for the timing (NanoTWICE: 696)")
    parser.add_argument("--width", type=int, default=1024, help="image width for the timing (NanoTWICE: 1024)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--policy", default="float32",
                        help="Keras dtype policy of the model's layers (mixed_bfloat16: bfloat16 arithmetic)")
    parser.add_argument("--worker", choices=["time", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=["ssimlib", "naive"], default="ssimlib", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker_time(args) if args.worker == "time" else worker_memory(args)
        print(json.dumps(result))
        return

    import keras

    print(f"inference benchmark, {time.strftime('%Y-%m-%d %H:%M')}: {cpu_model()}, {os.cpu_count()} cores, "
          f"flags {' '.join(cpu_flags()) or 'unknown'}, backend {keras.backend.backend()} (keras {keras.__version__})")
    print(load_note())
    t = run_worker("time", args)
    env = t["environment"]
    h, w = t["shape"][:2]
    print(f"device {env['device']}; image {t['image']}, {w}x{h}, {t['patches']} patches of {PATCH}x{PATCH} "
          f"(stride {STRIDE}); ConvAutoencoder d={LATENT}, untrained weights (timing only), policy {t['policy']}")
    print(f"median of {t['repeats']} runs after a warm-up, both pipelines interleaved in one process\n")
    print(f"| pipeline (one {w}x{h} image) | wall s | CPU s | ms/patch (wall) |")
    print("|---|---:|---:|---:|")
    labels = {
        "naive": "naive: 1 patch per model call + skimage SSIM per patch",
        "ssimlib": f"ssimlib: batched ({t['batch_size']}) + overlap average + SSIM map + segment",
    }
    for name in ("naive", "ssimlib"):
        print(f"| {labels[name]} | {t['wall'][name]:.2f} | {t['cpu'][name]:.2f} | "
              f"{1e3 * t['wall'][name] / t['patches']:.2f} |")
    print("\nssimlib stages (median wall s): " + ", ".join(f"{k} {v:.3f}" for k, v in t["stages"].items()))
    print(f"load average during timing (incl. this run): {t['load_before'][0]:.2f} before, "
          f"{t['load_after'][0]:.2f} after")

    peaks = {}
    if not args.no_memory:
        print("\n| peak memory (fresh process, one cold run) | image | RSS before run GiB | peak RSS GiB | "
              "peak - before GiB |")
        print("|---|---|---:|---:|---:|")
        for height, width in ((args.height, args.width), (1024, 1024)):
            for variant in ("ssimlib", "naive"):
                m = run_worker("memory", args, height=height, width=width, variant=variant)
                peaks[(variant, height, width)] = m["peak"]
                print(f"| {variant} | {width}x{height} | {gib(m['rss_before']):.2f} | {gib(m['peak']):.2f} | "
                      f"{gib(m['peak'] - m['rss_before']):.2f} |")

    print("\n" + load_note(before=False))
    speedup = t["wall"]["naive"] / t["wall"]["ssimlib"]
    per_image = t["wall"]["ssimlib"]
    verdict = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    print(f"ratio naive / ssimlib, wall: {speedup:.1f}x (CPU time: {t['cpu']['naive'] / t['cpu']['ssimlib']:.1f}x)")
    print(f"ratio ssimlib per image / paper (3.61 s, V100): {per_image / PAPER_SECONDS_PER_IMAGE:.2f} "
          f"({per_image:.2f} s); target < 3.61 s: {verdict(per_image < PAPER_SECONDS_PER_IMAGE)}")
    network_ms = 1e3 * t["stages"]["reconstruct"] / t["patches"]
    print(f"ratio batched forward per patch / paper (2.23 ms, V100): {network_ms / PAPER_MS_PER_PATCH:.2f} "
          f"({network_ms:.2f} ms)")
    gflops = t["flops_per_patch"] / network_ms / 1e6
    print(f"ratio batched forward GFLOP/s / float32 matmul peak: {gflops / t['peak_gflops']:.2f} "
          f"({gflops:.1f} of {t['peak_gflops']:.1f} GFLOP/s; {t['flops_per_patch'] / 1e9:.3f} GFLOP per patch)")
    if peaks:
        peak = peaks[("ssimlib", 1024, 1024)]
        print(f"ratio peak RSS 1024x1024 (ssimlib) / 2 GiB: {gib(peak) / TARGET_PEAK_GIB:.2f} ({gib(peak):.2f} GiB); "
              f"target < 2 GiB: {verdict(gib(peak) < TARGET_PEAK_GIB)}")


if __name__ == "__main__":
    main()
