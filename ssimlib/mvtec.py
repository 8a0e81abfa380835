"""One MVTec AD category end to end: held-out validation images, augmented patches,
background masks, metrics, figures and the per-category results table.

Used by ``notebooks/04_mvtec_category.ipynb`` (one category) and
``notebooks/05_mvtec_summary.ipynb`` (all results files); settings come from
:mod:`ssimlib.presets`.
"""

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import skimage.morphology
import skimage.transform
from scipy import ndimage
from skimage.color import rgb2gray

from ssimlib.data import sample_patches
from ssimlib.evaluate import anomaly_maps, summary_metrics
from ssimlib.metrics import pixel_roc, pro_curve
from ssimlib.plotting import outline, plot_roc, show_image
from ssimlib.presets import (
    CATEGORIES,
    PAPER_MEAN_AU_PRO,
    PAPER_MEAN_PIXEL_AUROC,
    PAPER_PIXEL_AUROC,
    ROTATE_SHARE,
    model_label,
)
from ssimlib.thresholds import classification_ratios, max_region_threshold

FPR_LIMIT = 0.3
NO_GOOD_TEST_IMAGES = "n/a: no defect-free test images"
# Gray levels (of 1) beyond which a pixel counts as background: the reference
# re-implementation thresholds 8-bit gray at 200 (white) and 50 (black).
BACKGROUND_LEVELS = {"white": 200 / 255, "black": 50 / 255}
PATCH_CHUNK = 512  # patches sampled per call, so the float32 working copy stays small


# ---------------------------------------------------------------------------
# Training data
# ---------------------------------------------------------------------------


def split_validation(images, fraction, seed=0):
    """Hold out ``round(fraction * N)`` (at least 1 if ``fraction > 0``) images, drawn with ``seed``.

    Returns ``(training_images, validation_images, validation_indices)``; the
    validation images choose the segmentation threshold and are never trained on.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {fraction}")
    n_validation = max(1, round(fraction * len(images))) if fraction > 0 else 0
    if n_validation >= len(images):
        raise ValueError(f"cannot hold out {n_validation} of {len(images)} training images for validation")
    held_out = np.sort(np.random.default_rng(seed).choice(len(images), n_validation, replace=False))
    keep = np.setdiff1d(np.arange(len(images)), held_out)
    return [images[i] for i in keep], [images[i] for i in held_out], held_out


def rotate_whole(image, angle, background=None):
    """``image`` ``(H, W, C)`` turned by ``angle`` degrees about its centre; corners filled with the background.

    Near-white/near-black backgrounds fill with 1/0, otherwise with the nearest edge pixel.
    """
    fill = {"white": 1.0, "black": 0.0}.get(background)
    mode = "edge" if fill is None else "constant"
    return skimage.transform.rotate(
        image, angle, order=1, mode=mode, cval=fill or 0.0, preserve_range=True
    ).astype(np.float32)


def training_patches(images, preset, n_patches, seed=0):
    """``n_patches`` augmented training patches ``(n, p, p, C)``, float16 (half the memory; train casts per batch).

    A share :data:`~ssimlib.presets.ROTATE_SHARE` of the patches is rotated when
    ``preset.rotate``: with ``rotate_crop`` through :func:`ssimlib.data.sample_patches`
    (crop from inside a rotated region; if the image is too small for that
    region, ``sample_patches`` leaves the patch unrotated), without it by
    :func:`rotate_whole` before the crop (what the reference does for
    hazelnut and metal_nut).  ``preset.flip == "horizontal"`` mirrors half the
    patches left-right, which ``sample_patches`` cannot (it flips both ways).
    Deterministic for a given ``seed``.
    """
    rng = np.random.default_rng(seed)
    rotated = rng.random(n_patches) < (ROTATE_SHARE if preset.rotate else 0.0)
    angles = rng.uniform(-preset.max_angle, preset.max_angle, n_patches)
    mirror = rng.random(n_patches) < (0.5 if preset.flip == "horizontal" else 0.0)
    channels = images[0].shape[-1]
    patches = np.empty((n_patches, preset.patch_size, preset.patch_size, channels), np.float16)
    for start in range(0, n_patches, PATCH_CHUNK):
        index = np.arange(start, min(n_patches, start + PATCH_CHUNK))
        for turn in (False, True):
            chosen = index[rotated[index] == turn]
            if not chosen.size:
                continue
            sources = [images[i % len(images)] for i in chosen]
            if turn and not preset.rotate_crop:
                sources = [rotate_whole(s, angles[i], preset.background) for s, i in zip(sources, chosen)]
            patches[chosen] = sample_patches(
                sources, chosen.size, preset.patch_size, seed=[seed, start, int(turn)],
                rotate=turn and preset.rotate_crop, max_angle=preset.max_angle, flip=preset.flip == "both",
            )
    patches[mirror] = patches[mirror, :, ::-1]
    return patches


# ---------------------------------------------------------------------------
# Background mask
# ---------------------------------------------------------------------------


def object_mask(image, background, opening_radius=2):
    """Boolean ``(H, W)``: True on the object, False on its near-white or near-black background.

    As in the reference re-implementation: pixels whose gray value is above
    200/255 (``"white"``) or below 50/255 (``"black"``) are background; the
    background is opened with a disk of ``opening_radius`` px (isolated
    background-coloured specks on the object stay object) and the object's
    holes are filled (a dark defect inside the object stays object).  If
    everything would be background the whole image counts as object.
    """
    if background not in BACKGROUND_LEVELS:
        raise ValueError(f"background must be one of {tuple(BACKGROUND_LEVELS)}, got {background!r}")
    image = np.asarray(image)
    gray = rgb2gray(image) if image.ndim == 3 and image.shape[-1] == 3 else np.squeeze(image)
    level = BACKGROUND_LEVELS[background]
    back = gray > level if background == "white" else gray < level
    back = skimage.morphology.opening(back, skimage.morphology.disk(opening_radius))
    obj = ndimage.binary_fill_holes(~back)
    return obj if obj.any() else np.ones(gray.shape, bool)


def suppress_background(anomaly_map, image, background):
    """``anomaly_map`` with background pixels set to 0, the lowest residual (unchanged if ``background`` is None)."""
    if background is None:
        return anomaly_map
    return np.where(object_mask(image, background), anomaly_map, 0.0).astype(np.float32)


def category_maps(model, images, preset, stride, window_size=11, batch_size=64):
    """Post-processed anomaly maps ``[(H, W)]`` and reconstructions of ``images`` for ``preset``.

    Sliding-window reconstruction, ``preset.residual`` residual, grey opening
    (:func:`ssimlib.evaluate.anomaly_maps`), then :func:`suppress_background`.
    """
    maps, reconstructions = anomaly_maps(
        model, images, kind=preset.residual, patch_size=preset.patch_size, stride=stride,
        window_size=window_size, batch_size=batch_size,
    )
    maps = [suppress_background(m, x, preset.background) for m, x in zip(maps, images)]
    return maps, reconstructions


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------


def category_metrics(test_maps, test_masks, test_labels, validation_maps, min_defect_area):
    """Pixel AUROC, AU-PRO@0.3, image AUROC, and the CVPR 2019 classification ratios.

    The threshold is :func:`ssimlib.thresholds.max_region_threshold` of the
    defect-free ``validation_maps`` (never of test images); an image counts as
    defective when its thresholded map has a region of ``min_defect_area`` px
    or more.  Values that need defect-free test images are None when there are none.
    """
    metrics = summary_metrics(test_maps, test_masks, test_labels, fpr_limit=FPR_LIMIT)
    threshold = max_region_threshold(validation_maps, min_defect_area)
    ratios = classification_ratios(test_maps, test_labels, threshold, min_defect_area)
    metrics.update(
        threshold=threshold,
        min_defect_area=min_defect_area,
        good_correct=None if np.isnan(ratios["good_correct"]) else ratios["good_correct"],
        defective_correct=None if np.isnan(ratios["defective_correct"]) else ratios["defective_correct"],
    )
    return metrics


def _value(x, digits=2):
    return NO_GOOD_TEST_IMAGES if x is None else f"{x:.{digits}f}"


def metric_lines(metrics, category, profile, loss):
    """Short labelled lines (2 decimals) of :func:`category_metrics`, with the paper's anchors."""
    model = model_label(loss)
    where = f"MVTec AD {category}, profile {profile}"
    anchor = PAPER_PIXEL_AUROC.get(category)
    pixel_anchor = f" (paper SSIM-AE {anchor['SSIM-AE']:.2f} | L2-AE {anchor['L2-AE']:.2f})" if anchor else ""
    pro_anchor = (
        f" (paper, mean over 15 categories: SSIM-AE {PAPER_MEAN_AU_PRO['SSIM-AE']:.3f} | L2-AE {PAPER_MEAN_AU_PRO['L2-AE']:.3f})"
    )
    return [
        f"pixel AUROC, {where}: {model} {metrics['pixel_auroc']:.2f}{pixel_anchor}",
        f"AU-PRO@{FPR_LIMIT:g}, {where}: {model} {metrics[f'au_pro@{FPR_LIMIT:g}']:.2f}{pro_anchor}",
        f"image AUROC (score = max of map), {where}: {model} {_value(metrics['image_auroc'])}",
        f"share correctly classified at the validation threshold (min area {metrics['min_defect_area']} px), {where}: "
        f"defect-free {_value(metrics['good_correct'])} | defective {_value(metrics['defective_correct'])}",
    ]


# ---------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------


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


def _thin(x, y, n=2000):
    """At most ~``n`` points of a non-decreasing curve ``x``, keeping its ends (for plotting only)."""
    keep = np.unique(np.concatenate(([0, len(x) - 1], np.searchsorted(x, np.linspace(0, 1, n)).clip(0, len(x) - 1))))
    return x[keep], y[keep]


def plot_curves(maps, masks, label, metrics, title=None):
    """Pixel ROC (left) and PRO curve with the FPR limit 0.3 (right)."""
    fpr, tpr, _ = pixel_roc(maps, masks)
    fprs, pros = pro_curve(maps, masks)
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.2, 3.2))
    plot_roc(left, {label: (*_thin(fpr, tpr), metrics["pixel_auroc"])}, title="pixel ROC")
    au = metrics[f"au_pro@{FPR_LIMIT:g}"]
    right.plot(*_thin(fprs, pros), label=f"{label} (AU-PRO@{FPR_LIMIT:g} {au:.3f})")
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


# ---------------------------------------------------------------------------
# Results files and the summary table
# ---------------------------------------------------------------------------


def load_results(results_dir):
    """``{category: record}`` of every ``results_dir/*.json`` written by notebook 04 (others are skipped)."""
    records = {}
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("complete") and "metrics" in record:
            records[record.get("category", path.stem)] = record
    return records


def summary_rows(records):
    """One row per MVTec AD category (then any other category found): ours beside the paper's pixel AUROC.

    A row is a dict with ``category``, ``profile`` ("missing" without a results
    file), ``setup`` (:data:`ssimlib.presets.SETUPS`; records older than the setups
    came from the re-implementation's presets), ``model``, ``pixel_auroc``, ``au_pro``, ``image_auroc``,
    ``good_correct``, ``defective_correct`` (None where missing or not computable)
    and ``paper_ssim``/``paper_l2`` (None for non-MVTec categories).
    """
    rows = []
    for category in list(CATEGORIES) + sorted(set(records) - set(CATEGORIES)):
        record = records.get(category)
        metrics = record["metrics"] if record else {}
        anchor = PAPER_PIXEL_AUROC.get(category, {})
        rows.append({
            "category": category,
            "profile": record.get("profile", "?") if record else "missing",
            "setup": record.get("setup", "reimplementation") if record else None,
            "model": model_label(record["settings"].get("loss", "ssim")) if record else None,
            "pixel_auroc": metrics.get("pixel_auroc"),
            "au_pro": metrics.get(f"au_pro@{FPR_LIMIT:g}"),
            "image_auroc": metrics.get("image_auroc"),
            "good_correct": metrics.get("good_correct"),
            "defective_correct": metrics.get("defective_correct"),
            "paper_ssim": anchor.get("SSIM-AE"),
            "paper_l2": anchor.get("L2-AE"),
        })
    return rows


def format_table(rows):
    """A plain-text table of :func:`summary_rows` with a mean line over the categories present."""
    def cell(x, missing="-"):
        return missing if x is None else f"{x:.2f}"

    header = (
        f"{'category':<11} {'profile':<12} {'setup':<16} {'model':<8} {'pixel AUROC':>11} {'paper SSIM-AE':>13} {'paper L2-AE':>11} "
        f"{'AU-PRO@0.3':>10} {'image AUROC':>11} {'good ok':>7} {'defect ok':>9}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        missing = r["profile"] == "missing"
        image = "-" if missing else ("n/a" if r["image_auroc"] is None else f"{r['image_auroc']:.2f}")
        good = "-" if missing else ("n/a" if r["good_correct"] is None else f"{r['good_correct']:.2f}")
        lines.append(
            f"{r['category']:<11} {r['profile']:<12} {r['setup'] or '-':<16} {r['model'] or '-':<8} "
            f"{cell(r['pixel_auroc'], 'missing'):>11} "
            f"{cell(r['paper_ssim']):>13} {cell(r['paper_l2']):>11} {cell(r['au_pro']):>10} {image:>11} "
            f"{good:>7} {cell(r['defective_correct']):>9}"
        )
    present = [r for r in rows if r["pixel_auroc"] is not None and r["category"] in CATEGORIES]
    lines.append("-" * len(header))
    if present:
        mean_pixel = np.mean([r["pixel_auroc"] for r in present])
        mean_pro = np.mean([r["au_pro"] for r in present])
        paper_ssim = np.mean([r["paper_ssim"] for r in present])
        paper_l2 = np.mean([r["paper_l2"] for r in present])
        lines.append(
            f"{f'mean of the {len(present)} of 15 present':<50} {mean_pixel:>11.2f} {paper_ssim:>13.2f} {paper_l2:>11.2f} "
            f"{mean_pro:>10.2f}"
        )
    lines.append(
        f"{'paper mean of all 15':<50} {'':>11} {PAPER_MEAN_PIXEL_AUROC['SSIM-AE']:>13.2f} "
        f"{PAPER_MEAN_PIXEL_AUROC['L2-AE']:>11.2f}   AU-PRO@0.3: SSIM-AE {PAPER_MEAN_AU_PRO['SSIM-AE']:.3f} | "
        f"L2-AE {PAPER_MEAN_AU_PRO['L2-AE']:.3f}"
    )
    return "\n".join(lines)


def plot_summary(rows, title=None):
    """Pixel AUROC per category: ours (labelled with its profile) beside the paper's SSIM-AE and L2-AE."""
    categories = [r["category"] for r in rows]
    y = np.arange(len(rows))
    height = 0.27
    fig, ax = plt.subplots(figsize=(7.2, 0.32 * len(rows) + 1.2))
    paper_ssim = [r["paper_ssim"] if r["paper_ssim"] is not None else np.nan for r in rows]
    paper_l2 = [r["paper_l2"] if r["paper_l2"] is not None else np.nan for r in rows]
    ours = [r["pixel_auroc"] if r["pixel_auroc"] is not None else np.nan for r in rows]
    ax.barh(y - height, paper_ssim, height, label="paper SSIM-AE (CVPR 2019 Table 3)", color="#56B4E9")
    ax.barh(y, paper_l2, height, label="paper L2-AE (CVPR 2019 Table 3)", color="#E69F00")
    ax.barh(y + height, ours, height, label="ours", color="#0072B2")
    for yi, r in zip(y, rows):
        text = "missing" if r["pixel_auroc"] is None else f"{r['pixel_auroc']:.2f} ({r['model']}, {r['profile']})"
        ax.text(0.005 if r["pixel_auroc"] is None else r["pixel_auroc"] + 0.005, yi + height, text, va="center", fontsize=6)
    ax.set_yticks(y, categories)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.25)
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.set_xlabel("pixel AUROC")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=3, fontsize=7)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
