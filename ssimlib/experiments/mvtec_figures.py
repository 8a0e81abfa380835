"""The figures of one MVTec AD category's evaluation (notebook 04): example maps and the ROC / PRO curves."""

import matplotlib.pyplot as plt
import numpy as np

from ssimlib.experiments.mvtec import FPR_LIMIT
from ssimlib.experiments.nanotwice import thin_curve
from ssimlib.metrics import pixel_roc, pro_curve
from ssimlib.plotting import outline, plot_roc, show_image


def example_indices(defect_types, n_examples):
    """Up to ``n_examples`` test indices: the first image of each type in turn (defect-free last)."""
    order = sorted(set(defect_types), key=lambda t: (t == "good", t))
    queues = {t: [i for i, d in enumerate(defect_types) if d == t] for t in order}
    chosen = []
    while len(chosen) < n_examples and any(queues.values()):
        for t in order:
            if queues[t] and len(chosen) < n_examples:
                chosen.append(queues[t].pop(0))
    return chosen


def plot_examples(images, reconstructions, maps, masks, titles, threshold, title=None):
    """Rows of input | reconstruction | anomaly map | segmentation (red) with ground truth outlined (green)."""
    n = len(images)
    fig, axes = plt.subplots(n, 4, figsize=(7.2, 1.9 * n + 0.4), squeeze=False)
    vmax = max(float(np.max(m)) for m in maps) or 1.0
    for row, (x, r, a, m, t) in enumerate(zip(images, reconstructions, maps, masks, titles)):
        show_image(axes[row, 0], x, title=t if row else f"input\n{t}")
        show_image(axes[row, 1], np.clip(r, 0, 1), title=None if row else "reconstruction")
        show_image(axes[row, 2], a, vmin=0, vmax=vmax, cmap="inferno", title=None if row else "anomaly map")
        show_image(axes[row, 3], x, title=None if row else "segmentation | ground truth")
        overlay = np.zeros(a.shape + (4,))
        overlay[a > threshold] = (1.0, 0.0, 0.0, 0.45)
        axes[row, 3].imshow(overlay)
        outline(axes[row, 3], m)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_curves(maps, masks, label, metrics, title=None):
    """Pixel ROC (left) and PRO curve with the FPR limit 0.3 (right)."""
    fpr, tpr, _ = pixel_roc(maps, masks)
    fprs, pros = pro_curve(maps, masks)
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.2, 3.2))
    plot_roc(left, {label: (*thin_curve(fpr, tpr), metrics["pixel_auroc"])}, title="pixel ROC")
    au = metrics[f"au_pro@{FPR_LIMIT:g}"]
    right.plot(*thin_curve(fprs, pros), label=f"{label} (AU-PRO@{FPR_LIMIT:g} {au:.3f})")
    right.axvline(FPR_LIMIT, color="0.5", lw=0.8, ls=":")
    right.set_xlabel("false positive rate (defect-free pixels)")
    right.set_ylabel("per-region overlap")
    right.set_xlim(0, 1)
    right.set_ylim(0, 1)
    right.legend(loc="lower right")
    right.set_title("PRO curve")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
