"""What the details of the paper's evaluation change: variants of section 4.2 on one trained SSIM-AE.

The paper's evaluation (section 4.2, :func:`ssimlib.experiments.nanotwice.evaluate_config`) strides
a 128x128 window over each test image at stride 30, averages the overlapping *reconstructions*,
takes ``1 - SSIM`` of the image and that reconstruction (``c1 = (0.01 L)^2``, ``c2 = (0.03 L)^2``,
``L = 1``) and opens the map with a disk of diameter 4.  :func:`pixel_auroc_by_variant` scores the
same model's test images with one detail changed at a time, the details the paper leaves open or a
reader could take otherwise.  A sensitivity analysis on the test set: never a way to choose settings.
"""

import numpy as np

from ssimlib.evaluate import anomaly_maps
from ssimlib.inference import extract_patches, overlap_average, residual_map
from ssimlib.metrics import pixel_auroc
from ssimlib.postprocess import open_anomaly_map
from ssimlib.ssim import ssim_map

# The variants, in the order reported: label -> what differs from the evaluation as run.
VARIANTS = {
    "as evaluated (section 4.2)": "reconstructions averaged, SSIM c1 = (0.01 L)^2, c2 = (0.03 L)^2, disk of diameter 4",
    "residuals of each patch averaged": "1 - SSIM of every patch and its reconstruction, averaged where patches "
                                        "overlap",
    "SSIM constants literally 0.01, 0.03": "c1 = 0.01, c2 = 0.03 (images in [0, 1]) instead of (0.01 L)^2, (0.03 L)^2",
    "5-pixel image border left out": "the ROC counts no pixel within 5 px of the image edge",
    "opening disk of diameter 8": "the map opened with a disk twice as wide",
    "test images' brightness matched": "each test image's mean and standard deviation set to the training images'",
}
BORDER = 5
WIDER_OPENING = 8


def patchwise_ssim_residual(model, image, patch_size=128, stride=30, window_size=11, window="uniform", batch_size=256):
    """``(H, W)``: ``1 - SSIM`` of every sliding-window patch and its reconstruction, averaged where they overlap."""
    patches, starts = extract_patches(image, patch_size, stride)
    residuals = []
    for i in range(0, len(patches), batch_size):
        x = patches[i : i + batch_size]
        similarity = ssim_map(x.astype(np.float64), np.asarray(model.predict_on_batch(x), np.float64),
                              window_size=window_size, window=window)
        residuals.append(1.0 - np.asarray(similarity))
    return overlap_average(np.concatenate(residuals), starts, (*np.shape(image)[:2], 1))[..., 0]


def brightness_matched(image, train_images):
    """``image`` shifted and scaled so that its mean and standard deviation are those of all ``train_images``'
    pixels, clipped to ``[0, 1]`` (float32, its shape)."""
    pixels = np.concatenate([np.ravel(x) for x in train_images]).astype(np.float64)
    image = np.asarray(image, np.float64)
    matched = (image - image.mean()) * (pixels.std() / max(image.std(), 1e-12)) + pixels.mean()
    return np.clip(matched, 0.0, 1.0).astype(np.float32)


def pixel_auroc_by_variant(model, images, masks, maps, reconstructions, train_images, patch_size=128, stride=30,
                           window_size=11, window="uniform"):
    """Pixel AUROC of the SSIM-AE ``model`` on ``images`` ``(H, W)`` with ``masks``, per :data:`VARIANTS` label.

    ``maps`` and ``reconstructions`` are the evaluation's opened anomaly maps and averaged reconstructions
    (:class:`~ssimlib.experiments.nanotwice.Evaluation`) at ``patch_size`` and ``stride``; the variants
    that keep the residual reuse them.  ``train_images`` are the model's defect-free training images.
    """
    def residual(x, y):
        return residual_map(x, y, kind="ssim", window_size=window_size, window=window)

    inner = (slice(BORDER, -BORDER), slice(BORDER, -BORDER))
    return {
        "as evaluated (section 4.2)": pixel_auroc(maps, masks),
        "residuals of each patch averaged": pixel_auroc(
            [open_anomaly_map(patchwise_ssim_residual(model, x, patch_size, stride, window_size, window))
             for x in images],
            masks),
        "SSIM constants literally 0.01, 0.03": pixel_auroc(
            [open_anomaly_map(residual_map(x, y, "ssim", window_size, window, constants="literal"))
             for x, y in zip(images, reconstructions)],
            masks),
        "5-pixel image border left out": pixel_auroc([m[inner] for m in maps], [m[inner] for m in masks]),
        "opening disk of diameter 8": pixel_auroc(
            [open_anomaly_map(residual(x, y), WIDER_OPENING) for x, y in zip(images, reconstructions)], masks),
        "test images' brightness matched": pixel_auroc(
            anomaly_maps(model, [brightness_matched(x, train_images) for x in images], kind="ssim",
                         patch_size=patch_size, stride=stride, window_size=window_size, window=window)[0], masks),
    }
