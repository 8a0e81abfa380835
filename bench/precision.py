"""Does bfloat16 inference change the results?  The committed NanoTWICE SSIM-AE in float32 and in bfloat16.

Evaluates ``models/nanotwice/ssim_ae`` on NanoTWICE test images with the paper's post-processing
(``ssimlib.experiments.nanotwice.evaluate_config``: sliding window, SSIM residual with the model's window,
opening d = 4), once with the network in float32 and once through
``ssimlib.inference.with_precision(model, "bfloat16")``, and prints pixel AUROC, AU-PRO@0.3,
wall time and their differences.  The tolerance set for adopting bfloat16 is 0.002 of pixel AUROC.

    python bench/precision.py                       # 10 evenly spaced test images, stride 30
    python bench/precision.py --images 40           # all of them (minutes)
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import ssimlib  # noqa: E402,F401  (before Keras: sets TensorFlow's oneDNN and threading options)
from ssimlib import artifacts  # noqa: E402
from ssimlib.records import cpu_model  # noqa: E402
from ssimlib.experiments import nanotwice  # noqa: E402
from ssimlib.inference import with_precision  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peak import cpu_flags  # noqa: E402  (bench/peak.py)

TOLERANCE = 0.002  # largest change of pixel AUROC that bfloat16 may make to be adopted


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10, help="evenly spaced NanoTWICE test images (40: all)")
    parser.add_argument("--stride", type=int, default=30, help="sliding-window stride in pixels (paper: 30)")
    parser.add_argument("--data-root", help="NanoTWICE folder (default: $SSIMLIB_DATA/nanotwice or ../shared/data)")
    args = parser.parse_args()

    dataset = nanotwice.load_dataset(args.data_root)
    _, images, masks = nanotwice.test_subset(dataset, args.images)
    model, manifest = artifacts.load_model(artifacts.study_model("nanotwice", "ssim_ae"))
    settings = manifest["training"]["settings"]
    print(f"{cpu_model()}, {os.cpu_count()} cores, flags {' '.join(cpu_flags()) or 'unknown'}")
    print(f"committed {nanotwice.schedule_label(manifest)}; {len(images)} of {len(dataset.test_images)} "
          f"NanoTWICE test images, stride {args.stride}")
    print("\n| precision | pixel AUROC | AU-PRO@0.3 | wall s |\n|---|---:|---:|---:|")
    results = {}
    for precision in ("float32", "bfloat16"):
        network = with_precision(model, precision)
        start = time.perf_counter()
        e = nanotwice.evaluate_config(network, "SSIM-AE", images, masks, patch_size=model.patch_size,
                                      stride=args.stride, window_size=settings["window_size"],
                                      window=settings["window"])
        results[precision] = (e.pixel_auroc, e.au_pro, time.perf_counter() - start)
        print(f"| {precision} | {e.pixel_auroc:.4f} | {e.au_pro:.4f} | {results[precision][2]:.1f} |")
    (a32, p32, t32), (a16, p16, t16) = results["float32"], results["bfloat16"]
    print(f"\ndifference bfloat16 - float32: pixel AUROC {a16 - a32:+.5f}, AU-PRO@0.3 {p16 - p32:+.5f}")
    verdict = "within" if abs(a16 - a32) <= TOLERANCE else "OUTSIDE"
    print(f"ratio |pixel AUROC difference| / tolerance ({TOLERANCE}): {abs(a16 - a32) / TOLERANCE:.2f} ({verdict})")
    print(f"ratio float32 / bfloat16 wall time: {t32 / t16:.2f}")


if __name__ == "__main__":
    main()
