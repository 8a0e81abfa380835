"""Segmentation from a residual map: threshold, then a morphological opening (paper section 4.2).

The paper thresholds the residual and opens the binary result with a disk of
diameter 4 to remove isolated pixels.  For a flat structuring element,
thresholding commutes with opening: ``opening(r > t) == grey_opening(r) > t``.
So :func:`open_anomaly_map` gives one continuous map whose every threshold
is the paper's post-processed segmentation; ROC curves are computed on it.
"""

import numpy as np
import skimage.morphology

PAPER_OPENING_DIAMETER = 4


def disk_footprint(diameter=PAPER_OPENING_DIAMETER):
    """Boolean disk of the given diameter in pixels (even diameters are centred between pixels).

    Diameter 4 gives the 4x4 square without its corners (12 pixels).
    """
    if diameter < 1:
        raise ValueError(f"diameter must be >= 1 pixel, got {diameter}")
    return skimage.morphology.disk(diameter / 2 - 0.5, strict_radius=False).astype(bool)


def open_anomaly_map(residual, diameter=PAPER_OPENING_DIAMETER):
    """Grey-level opening of an ``(H, W)`` map with :func:`disk_footprint`; same shape."""
    if diameter <= 1:
        return np.asarray(residual)
    return skimage.morphology.opening(np.asarray(residual), disk_footprint(diameter))


def segment(residual, threshold, diameter=PAPER_OPENING_DIAMETER):
    """Binary defect mask ``(H, W)``: ``residual > threshold``, opened with a disk of ``diameter``."""
    mask = np.asarray(residual) > threshold
    if diameter <= 1:
        return mask
    return skimage.morphology.opening(mask, disk_footprint(diameter))
