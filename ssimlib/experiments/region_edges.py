"""How the defect regions stand out from the texture around them, in the images and in their reconstructions:
whether a region's rim, where the maps lose most of their overlap
(:func:`ssimlib.metrics.region_core_and_rim_overlaps`), is defect or a generous hand-drawn margin, and how much of a
defect the autoencoder reconstructs."""

import numpy as np
from scipy import ndimage

from ssimlib.thresholds import region_cores, validate_maps


def region_contrasts(images, masks, rim=3, gap=10, reach=15):
    """Per defect region with a core (as :func:`ssimlib.metrics.region_core_and_rim_overlaps` splits it), the mean
    gray value (the mean over channels) of its core and of its rim less that of its background: the pixels within
    ``reach`` px of the region and more than ``gap`` px from any defect pixel of its image.

    ``images`` ``[(H, W, C), ...]`` (test images, or their reconstructions: the regions and background are the
    masks', so the rows of both match); returns an array ``(n_regions_with_a_core, 2)`` of (core, rim) contrasts,
    NaN where a region has no background within reach."""
    grays = [np.asarray(image, np.float64).mean(axis=-1) for image in images]
    grays, masks = validate_maps(grays, masks)
    rows = []
    for gray, mask in zip(grays, masks):
        clear = ~ndimage.binary_dilation(mask, iterations=gap)
        for box, region, core in region_cores(mask, rim, margin=reach + 1):  # the box holds its reach
            background = ndimage.binary_dilation(region, iterations=reach) & clear[box]
            level = gray[box][background].mean() if background.any() else np.nan
            rows.append((gray[box][core].mean() - level, gray[box][region & ~core].mean() - level))
    return np.array(rows).reshape(-1, 2)
