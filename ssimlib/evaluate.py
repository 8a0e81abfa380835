"""The paper's evaluation protocol on a whole test set.

For every test image: sliding-window reconstruction (stride 30 for 128 px
patches), residual map, grey opening with a disk of diameter 4 (equivalent to
opening every thresholded segmentation, see :mod:`ssimlib.postprocess`).  The
metrics then count pixels over the whole test set.
"""


import numpy as np

from ssimlib.inference import reconstruct_image, residual_map, vae_residual_map
from ssimlib.metrics import au_pro, image_auroc, pixel_auroc
from ssimlib.models import VariationalAutoencoder
from ssimlib.postprocess import PAPER_OPENING_DIAMETER, open_anomaly_map
from ssimlib.ssim import DEFAULT_WINDOW, STANDARD


def anomaly_maps(
    model,
    images,
    kind="ssim",
    patch_size=128,
    stride=30,
    window_size=11,
    window=DEFAULT_WINDOW,
    opening_diameter=PAPER_OPENING_DIAMETER,
    batch_size=256,
    vae_samples=6,
    constants=STANDARD,
):
    """Post-processed anomaly maps ``[(H, W), ...]`` and reconstructions ``[(H, W, C), ...]`` of ``images``.

    ``kind`` is a residual of :func:`ssimlib.inference.residual_map`; a
    :class:`~ssimlib.models.VariationalAutoencoder` always uses its
    reconstruction-probability residual over ``vae_samples`` samples; ``constants`` reads the SSIM residual's
    constants (:data:`ssimlib.ssim.SSIM_CONSTANTS`).
    """
    maps, reconstructions = [], []
    for image in images:
        reconstruction = reconstruct_image(model, image, patch_size, stride, batch_size)
        if isinstance(model, VariationalAutoencoder):
            residual = vae_residual_map(model, image, vae_samples, patch_size, stride, batch_size)
        else:
            residual = residual_map(image, reconstruction, kind=kind, window_size=window_size, window=window,
                                    constants=constants)
        maps.append(open_anomaly_map(residual, opening_diameter))
        reconstructions.append(reconstruction)
    return maps, reconstructions


def summary_metrics(maps, masks, labels=None, fpr_limit=0.3):
    """Pixel AUROC, AU-PRO up to ``fpr_limit``, and image AUROC (None when only one class of image exists)."""
    results = {
        "pixel_auroc": pixel_auroc(maps, masks),
        f"au_pro@{fpr_limit:g}": au_pro(maps, masks, fpr_limit=fpr_limit),
        "image_auroc": None,
    }
    if labels is not None and 0 < np.mean(labels) < 1:
        results["image_auroc"] = image_auroc(maps, labels)
    return results
