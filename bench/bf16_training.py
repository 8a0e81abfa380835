"""Does bfloat16 training change what a model learns?  Loss curves and AUROC, float32 vs bfloat16, against seed noise.

Trains the NanoTWICE SSIM-AE (or L2-AE) of the paper's setup (d = 500, 128 px, batch 32, Adam 2e-4, weight
decay 1e-5) for a few epochs, once per (precision, seed): float32 and Keras' ``mixed_bfloat16`` policy
(bfloat16 arithmetic, float32 weights and Adam state), each with seeds 0 and 1 (initial weights and patch
order; the patches are the same).  Each trained network is then evaluated in float32 on NanoTWICE test images
(stride 30, the model's residual, opening d = 4).  The verdict compares the precision effect (bfloat16 -
float32 at the same seed) with the seed effect (seed 1 - seed 0 at the same precision): bfloat16 training is
"within noise" on a measure (last-epoch loss, the loss curve over the last epoch, pixel AUROC, AU-PRO@0.3)
when the first is no larger than the second.

    python bench/bf16_training.py                       # SSIM-AE, 10,000 patches x 3 epochs (about 15 min on AVX-512)
    python bench/bf16_training.py --method L2-AE
"""

import argparse
import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import ssimlib  # noqa: E402,F401  (before Keras: sets TensorFlow's oneDNN and threading options)
import keras  # noqa: E402

from ssimlib.records import cpu_flags, cpu_model  # noqa: E402
from ssimlib.experiments import nanotwice  # noqa: E402
from ssimlib.train import compile_autoencoder  # noqa: E402

POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


def train_run(method, patches, precision, seed, args):
    """Train one model; returns ``(float32 copy of the trained model, per-block mean losses, epoch losses, s)``."""
    keras.config.set_dtype_policy(POLICIES[precision])
    try:
        model = nanotwice.build_model(method, patches.shape[1], args.latent, seed)
        compile_autoencoder(model, nanotwice.METHODS[method])
        blocks, epoch_losses, start = [], [], time.perf_counter()
        steps = len(patches) // args.batch
        for epoch in range(args.epochs):  # the same patch order as ssimlib.train.train
            order = np.random.default_rng([seed, epoch]).permutation(len(patches))
            losses = [float(model.train_on_batch(b, b)) for b in
                      (patches[order[i * args.batch:(i + 1) * args.batch]] for i in range(steps))]
            epoch_losses.append(float(np.mean(losses)))
            blocks += [float(np.mean(losses[i:i + args.block])) for i in range(0, steps, args.block)]
            print(f"  {precision} seed {seed}: epoch {epoch + 1} loss {epoch_losses[-1]:.5f}", flush=True)
        seconds = time.perf_counter() - start
    finally:
        keras.config.set_dtype_policy("float32")
    evaluated = nanotwice.build_model(method, patches.shape[1], args.latent, seed)
    evaluated.set_weights(model.get_weights())  # float32 variables in both
    return evaluated, np.array(blocks), np.array(epoch_losses), seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="SSIM-AE", choices=["SSIM-AE", "L2-AE"])
    parser.add_argument("--patches", type=int, default=10000, help="training patches (paper: 10,000)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--latent", type=int, default=500)
    parser.add_argument("--block", type=int, default=50, help="steps per point of the printed loss curve")
    parser.add_argument("--images", type=int, default=10, help="evenly spaced NanoTWICE test images (40: all)")
    parser.add_argument("--data-root", help="NanoTWICE folder (default: $SSIMLIB_DATA/nanotwice or ../shared/data)")
    args = parser.parse_args()

    dataset = nanotwice.load_dataset(args.data_root)
    patches = nanotwice.training_patches(dataset, args.patches, 128).astype("float32")
    _, images, masks = nanotwice.test_subset(dataset, args.images)
    print(f"{cpu_model()}, {os.cpu_count()} cores, flags {' '.join(cpu_flags()) or 'unknown'}")
    print(f"{args.method}: {len(patches)} NanoTWICE patches x {args.epochs} epochs, batch {args.batch}, "
          f"d = {args.latent}; evaluated in float32 on {len(images)} test images, stride 30")
    runs = {}
    for precision in POLICIES:
        for seed in (0, 1):
            model, blocks, epochs, seconds = train_run(args.method, patches, precision, seed, args)
            e = nanotwice.evaluate_config(model, args.method, images, masks, stride=30)
            runs[precision, seed] = dict(blocks=blocks, epochs=epochs, seconds=seconds, auroc=e.pixel_auroc,
                                         au_pro=e.au_pro)

    print("\n| precision | seed | " + " | ".join(f"loss ep. {i + 1}" for i in range(args.epochs))
          + " | pixel AUROC | AU-PRO@0.3 | training s |")
    print("|---|---:|" + "---:|" * (args.epochs + 3))
    for (precision, seed), r in runs.items():
        print(f"| {precision} | {seed} | " + " | ".join(f"{v:.5f}" for v in r["epochs"])
              + f" | {r['auroc']:.4f} | {r['au_pro']:.4f} | {r['seconds']:.0f} |")

    last = -(-(len(patches) // args.batch) // args.block)  # loss-curve points of the last epoch
    measures = {  # how far apart two runs are
        "last-epoch loss": lambda a, b: abs(a["epochs"][-1] - b["epochs"][-1]),
        "loss curve over the last epoch (relative)": lambda a, b: np.mean(
            np.abs(a["blocks"][-last:] / b["blocks"][-last:] - 1)),
        "pixel AUROC": lambda a, b: abs(a["auroc"] - b["auroc"]),
        "AU-PRO@0.3": lambda a, b: abs(a["au_pro"] - b["au_pro"]),
    }
    print("\n| measure | bfloat16 vs float32 (same seed) | seed 1 vs seed 0 (same precision) | ratio | verdict |"
          "\n|---|---:|---:|---:|---|")
    for name, distance in measures.items():
        precision_gap = np.mean([distance(runs["bfloat16", s], runs["float32", s]) for s in (0, 1)])
        seed_gap = np.mean([distance(runs[p, 1], runs[p, 0]) for p in POLICIES])
        ratio = precision_gap / max(seed_gap, 1e-12)
        print(f"| {name} | {precision_gap:.5f} | {seed_gap:.5f} | {ratio:.2f} | "
              f"{'within noise' if ratio <= 1 else 'LARGER than seed noise'} |")
    speed = np.mean([runs["float32", s]["seconds"] / runs["bfloat16", s]["seconds"] for s in (0, 1)])
    print(f"\nratio float32 / bfloat16 training time: {speed:.2f}")


if __name__ == "__main__":
    main()
