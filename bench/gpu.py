"""The prepared GPU run (issue #39): environment, parity, inference timing, training throughput, then training.

Each step writes its result into ``--out`` as soon as it has it, so a run cut short
still returns what it measured (seven files, flat, as the device tool fetches them)::

    env.json         GPU name, backend, JAX / PyTorch / Keras / NumPy / Python versions
    parity.json      the committed NanoTWICE SSIM-AE's opened anomaly map of a 256 px test crop
                     (ssimlib.parity.CROP) on the GPU, on the GPU without TF32 (NVIDIA_TF32_OVERRIDE=0 and
                     JAX's highest matmul precision, a subprocess) and on the CPU (a subprocess), compared
    timing.json      forward pass of one 128x128 patch (ms, batch 1, and per patch in batches of 256) and
                     one whole 1024x696 test image at stride 30 (s: reconstruction, SSIM residual, opening),
                     beside the paper's 2.23 ms and 3.61 s on a Tesla V100 (ssimlib.experiments.nanotwice.PAPER_TIMING)
    throughput.json  training patches/s of the d = 500 SSIM-AE (128 px, SSIM loss, Adam) for each dtype
                     policy (float32, mixed_bfloat16) and batch size, and the paper schedule's hours
    ssim_ae-fresh-seed2.weights.h5, ssim_ae-fresh-seed2.json
                     the Fig. 6 SSIM-AE trained at the paper's schedule (ssimlib.experiments.nanotwice.FIG6_SCHEDULE)
                     with a third seed (--seed, default 2) under the crop protocol the campaign adopts
                     (--crops; ssimlib.experiments.verdicts.choose_protocol), its validation loss logged every
                     epoch, for as many of its 200 epochs as the time left of --budget-seconds allows;
                     exported every 10 epochs and at the end with a manifest (ssimlib.artifacts) that names
                     the GPU (its "gpu" entry).  Named as the model store names it
                     (ssimlib.experiments.nanotwice.fig6_model_name), so that, copied into models/nanotwice/,
                     ``python -m ssimlib train-study nanotwice --models SSIM-AE --crops fresh --seed 2``
                     continues it on any machine to the end of its schedule
    gpu.log          nvidia-smi's summary and this script's log (bench/gpu.sh writes it)

``--tiny`` shrinks every step (a crop for the whole image, 64 patches for one epoch, few
steps) so the script runs end to end on a CPU (tests/test_gpu_bench.py: 10 min on a busy 2-core one).

Getting it onto the GPU machine (one H200; Python 3.12 with JAX 0.11 and PyTorch 2.11 on CUDA,
NumPy, SciPy, scikit-image, h5py, tifffile, matplotlib, tqdm, PyYAML, absl-py, rich, ml-dtypes;
no TensorFlow, no Keras, no internet).  The device tool sends the session's checkout, at most
64 MiB of it (tracked files, untracked files that are not ignored, and the ignored paths named
in ``carry``); ``../shared`` (NanoTWICE) does not travel.  Today the tracked files are 123 MB
(``models/`` 106 MB, ``figures/`` 11 MB; at commit c03622e), so:

1. ``bench/gpu.sh prepare`` (here, with pip and the data) fills the git-ignored ``.gpu-stage/``:
   the wheels of Keras and the two of its dependencies the machine lacks (namex, optree; about
   3 MB), the committed SSIM-AE (``models/nanotwice/ssim_ae.*``, 11 MB) and NanoTWICE (31 MB),
   and prints the size of what would travel;
2. drop the large tracked folders from the work tree for the run: ``bench/gpu.sh slim``
   (``git sparse-checkout`` leaves out ``models/``, ``figures/``, ``notebooks/``, ``tests/notebooks/``;
   what then travels is under 1 MB of code, 44 MiB in all with the stage, measured) and
   ``bench/gpu.sh unslim`` afterwards (nothing is deleted from git);
3. run ``bench/gpu.sh run`` on the machine with ``carry: [".gpu-stage"]`` and timeout_s 600:
   it installs the wheels into /tmp/site, points ``SSIMLIB_DATA`` at the stage and calls
   this script with ``--out $OUT --budget-seconds 480`` (override with ``GPU_BUDGET``).

Whether the device tool counts the tracked files that a sparse checkout leaves out has not been
tried (no GPU was lent to the session that wrote this); if it does, make the run from a fresh
clone: ``git clone --no-checkout``, ``git sparse-checkout set`` as in ``slim``, ``git checkout``.
"""

import argparse
import importlib.metadata
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # the parity subprocesses share the GPU
import ssimlib  # noqa: E402,F401  (before Keras: the settings every process of this package gets)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from ssimlib import artifacts, parity  # noqa: E402
from ssimlib.records import write_json  # noqa: E402
from ssimlib.experiments import nanotwice, protocol, studies, verdicts  # noqa: E402
from ssimlib.models import ConvAutoencoder  # noqa: E402
from ssimlib.train import compile_autoencoder  # noqa: E402

# Largest absolute difference between two devices' anomaly maps that counts as agreeing (as tests/test_backends.py).
MAP_TOLERANCE = 1e-3


def gpu_name():
    """The accelerator Keras' backend computes on (e.g. ``"NVIDIA H200"``), or None on a CPU."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return device.device_kind if device.platform == "gpu" else None
    if backend == "torch":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name) if gpus else None


def environment():
    """What this run computes on: GPU, backend and the installed versions of the libraries that matter."""
    versions = {}
    for name in ("jax", "jaxlib", "torch", "tensorflow", "tensorflow-cpu", "keras", "numpy", "scipy", "scikit-image",
                 "h5py"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {"gpu": gpu_name(), "backend": keras.backend.backend(), "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "versions": versions,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def parity_check(stem, image, tiny):
    """The anomaly map of ``image`` on this device, on it without TF32 (not with ``tiny``) and on the CPU, compared."""
    maps, where = {}, {}
    elsewhere = {"cpu": {"JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}}
    if not tiny:
        elsewhere["no_tf32"] = {"NVIDIA_TF32_OVERRIDE": "0", "JAX_DEFAULT_MATMUL_PRECISION": "highest"}
    for label, env in elsewhere.items():
        maps[label], where[label] = parity.anomaly_map_elsewhere(stem, image, env)
    maps["here"], where["here"] = parity.anomaly_map(stem, image)
    pairs = [("here", "cpu")] + ([] if tiny else [("no_tf32", "cpu"), ("here", "no_tf32")])
    comparisons = {f"{a}_vs_{b}": parity.compare(maps[a], maps[b]) for a, b in pairs}
    return {"crop": {"row_column_side": list(parity.CROP), "image": "NanoTWICE test image 0"},
            "where": where, "comparisons": comparisons, "tolerance_max_abs": MAP_TOLERANCE,
            "agree": bool(comparisons["here_vs_cpu"]["max_abs"] < MAP_TOLERANCE)}


def timing(model, image, tiny):
    """Forward pass per patch (ms; batch 1 and batches of 256) and ``image`` ``(H, W, 1)`` at stride 30 (s)."""
    repeats = 3 if tiny else 50
    batch = np.random.default_rng(0).random((8 if tiny else 256, 128, 128, 1), np.float32)
    per_patch_batched = nanotwice.median_seconds(lambda: model.predict_on_batch(batch), repeats // 2 + 1) / len(batch)
    image_s = nanotwice.time_image_evaluation(model, image, stride=nanotwice.PAPER_STRIDE, repeats=1 if tiny else 5)
    return {
        "forward_ms_batch_1": 1e3 * nanotwice.time_forward_pass(model, repeats=repeats),
        "forward_ms_per_patch_batched": 1e3 * per_patch_batched, "batch": len(batch),
        "image_s": image_s, "image_shape": list(image.shape), "stride": nanotwice.PAPER_STRIDE,
        "paper": nanotwice.PAPER_TIMING,
    }


def training_throughput(batch_sizes, policies, steps, latent_dim=500, patch_size=128):
    """Median patches/s of ``train_on_batch`` for each dtype policy and batch size (rows, one dict each)."""
    rng = np.random.default_rng(0)
    for policy in policies:
        for batch_size in batch_sizes:
            batches = [rng.random((batch_size, patch_size, patch_size, 1), dtype=np.float32) for _ in range(2)]
            keras.config.set_dtype_policy(policy)
            keras.utils.set_random_seed(0)
            model = compile_autoencoder(ConvAutoencoder(patch_size, 1, latent_dim), "ssim")
            keras.config.set_dtype_policy("float32")
            start = time.perf_counter()
            for i in range(3):  # the first steps trace and compile
                model.train_on_batch(batches[i % 2], batches[i % 2])
            compile_s = time.perf_counter() - start
            times = []
            for i in range(steps):
                start = time.perf_counter()
                model.train_on_batch(batches[i % 2], batches[i % 2])  # returns the loss as a number: waits for the step
                times.append(time.perf_counter() - start)
            rate = batch_size / float(np.median(times))
            schedule = nanotwice.FIG6_SCHEDULE
            yield {"policy": policy, "batch_size": batch_size, "patches_per_s": rate, "compile_s": compile_s,
                   "paper_schedule_h": schedule["epochs"] * schedule["n_patches"] / rate / 3600}


def train_for(epochs, args, out, gpu):
    """Train the Fig. 6 SSIM-AE (seed ``args.seed``) for ``epochs`` of its 200 into ``out``; its manifest."""
    tiny = {"n_patches": 64} if args.tiny else {}
    return studies.train_nanotwice_model(
        "SSIM-AE", {"seed": args.seed, **tiny}, args.data, checkpoint_dir=args.checkpoints,
        log=lambda line: print(line, flush=True), crops=args.crops, until=epochs,
        stem=out / nanotwice.fig6_model_name("SSIM-AE", args.crops, args.seed),
        n_validation=64 if args.tiny else nanotwice.VALIDATION_PATCHES, gpu=gpu or "none (CPU)",
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the results (the device tool's $OUT)")
    parser.add_argument("--budget-seconds", type=float, default=480, help="wall time for all steps, training last")
    parser.add_argument("--tiny", action="store_true", help="every step at a tiny size (a CPU smoke test)")
    parser.add_argument("--data", help="NanoTWICE (default: $SSIMLIB_DATA/nanotwice or ../shared/data/nanotwice)")
    parser.add_argument("--models-root", help="model store with nanotwice/ssim_ae (default: the repository's models/)")
    parser.add_argument("--checkpoints", help="checkpoint folder of the training (default: under $SSIMLIB_CACHE)")
    parser.add_argument("--seed", type=int, default=2,
                        help="seed of the training (the committed CPU-trained models' are 0 and 1)")
    parser.add_argument("--crops", choices=list(nanotwice.CROP_PROTOCOLS),
                        help="crop protocol of the training (default: the one the crop-protocol campaign's rule "
                             "adopts from results/nanotwice_protocol.json, 'fixed' until it adopts another)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--policies", nargs="+", default=["float32", "mixed_bfloat16"])
    args = parser.parse_args(argv)
    if args.crops is None:
        args.crops, reason = verdicts.choose_protocol(protocol.read_results())
        print(f"crops: {args.crops} ({reason})", flush=True)
    start = time.perf_counter()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    def save(name, result):
        write_json(out / name, result)
        print(f"{name}: {json.dumps(result)}", flush=True)

    env = environment()
    save("env.json", env)
    stem = artifacts.study_model("nanotwice", "ssim_ae", args.models_root)
    dataset = nanotwice.load_dataset(args.data)
    image = dataset.test_images[0]  # (696, 1024, 1)
    save("parity.json", parity_check(stem, parity.crop_of(image), args.tiny))
    model, _ = artifacts.load_model(stem)
    save("timing.json", timing(model, parity.crop_of(image) if args.tiny else image, args.tiny))
    batch_sizes = [8] if args.tiny else args.batch_sizes
    rows = []
    for row in training_throughput(batch_sizes, args.policies, steps=3 if args.tiny else 30,
                                   latent_dim=500, patch_size=128):
        rows.append(row)
        save("throughput.json", {"model": "ConvAutoencoder(128, 1, 500), SSIM loss, Adam", "rows": rows})
    float32 = [r for r in rows if r["policy"] == "float32"]
    if float32:
        batch = nanotwice.FIG6_SCHEDULE["batch_size"]
        rate = next((r["patches_per_s"] for r in float32 if r["batch_size"] == batch), float32[0]["patches_per_s"])
        n_patches = 64 if args.tiny else nanotwice.FIG6_SCHEDULE["n_patches"]
        # 1.3: a step's loss read back each step, the epoch's patch gathering, and the exports.
        epoch_seconds = 1.3 * n_patches / rate
        left = args.budget_seconds - (time.perf_counter() - start) - 30  # 30 s for the last export
        epochs = int(min(1 if args.tiny else nanotwice.FIG6_SCHEDULE["epochs"], left // epoch_seconds))
        print(f"training {epochs} of {nanotwice.FIG6_SCHEDULE['epochs']} epochs (about {epoch_seconds:.1f} s each, "
              f"{left:.0f} s left)", flush=True)
        if epochs > 0:
            train_for(epochs, args, out, env["gpu"])
    print(f"done in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
