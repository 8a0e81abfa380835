"""How bright the defect regions' rims are in the images: whether a region's outline, where the maps lose most of
their overlap (:func:`ssimlib.metrics.region_core_and_rim_overlaps`), is defect or a generous hand-drawn margin."""

import numpy as np
from scipy import ndimage

from ssimlib.thresholds import label_regions, validate_maps


def rim_contrast(images, masks, rim=3, gap=10, reach=15):
    """Per defect region with a core (as :func:`ssimlib.metrics.region_core_and_rim_overlaps` splits it), the
    rim's contrast as a share of the core's: ``(rim - background) / (core - background)`` of their mean gray values
    (the mean over channels), where the background is the pixels within ``reach`` px of the region and more than
    ``gap`` px from any defect pixel of its image.  1: the rim is as bright as the core; 0: as the background.
    ``images`` ``[(H, W, C), ...]``; returns an array ``(n_regions_with_a_core,)`` (NaN where a region has no
    background within reach, or no contrast)."""
    grays = [np.asarray(image, np.float64).mean(axis=-1) for image in images]
    grays, masks = validate_maps(grays, masks)
    shares = []
    for gray, mask in zip(grays, masks):
        labels, n = label_regions(mask)
        clear = ~ndimage.binary_dilation(mask, iterations=gap)
        for k in range(1, n + 1):
            region = labels == k
            core = ndimage.binary_erosion(region, iterations=rim)
            if not core.any():
                continue
            background = ndimage.binary_dilation(region, iterations=reach) & clear
            level = gray[background].mean() if background.any() else np.nan
            contrast = gray[core].mean() - level
            shares.append((gray[region & ~core].mean() - level) / contrast if contrast else np.nan)
    return np.array(shares)
