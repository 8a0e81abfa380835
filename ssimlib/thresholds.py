"""Segmentation thresholds and image-level decisions from anomaly maps.

Anomaly maps are float arrays ``(H, W)`` (higher = more anomalous); a pixel is
segmented as defective when its score is strictly greater than the threshold.
A sequence of maps may mix image sizes.  Masks are ``(H, W)`` arrays whose
nonzero pixels are defects.  Regions are 8-connected components
(``scipy.ndimage.label`` with a 3x3 structure of ones), as in the MVTec AD
evaluation.
"""

import numpy as np
from scipy import ndimage

EIGHT_CONNECTED = np.ones((3, 3), dtype=int)


def validate_maps(anomaly_maps, masks=None):
    """Lists of float64 maps ``(H, W)`` (and boolean masks); ValueError naming the bad index."""
    maps = [np.asarray(a, dtype=np.float64) for a in anomaly_maps]
    if not maps:
        raise ValueError("no anomaly maps given")
    for i, a in enumerate(maps):
        if a.ndim != 2:
            raise ValueError(f"anomaly map {i} must be 2-D (H, W), got shape {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"anomaly map {i} contains NaN or infinite scores")
    if masks is None:
        return maps
    masks = [np.asarray(m) != 0 for m in masks]
    if len(masks) != len(maps):
        raise ValueError(f"{len(maps)} anomaly maps but {len(masks)} masks")
    for i, (a, m) in enumerate(zip(maps, masks)):
        if a.shape != m.shape:
            raise ValueError(
                f"anomaly map {i} has shape {a.shape} but its mask has shape {m.shape}"
            )
    return maps, masks


def validate_labels(labels, n_images):
    """Image labels as an int array ``(N,)`` of 0 (good) / 1 (defective)."""
    labels = np.asarray(labels)
    if labels.shape != (n_images,):
        raise ValueError(f"expected {n_images} image labels, got shape {labels.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("image labels must be 0 (good) or 1 (defective)")
    return labels.astype(int)


def label_regions(mask):
    """8-connected components of a boolean ``(H, W)`` mask: ``(labels, n)``, 0 = background."""
    return ndimage.label(mask, structure=EIGHT_CONNECTED)


def region_cores(mask, rim, margin=1):
    """Each region of ``mask`` (:func:`label_regions`) that has a core, the region eroded ``rim`` times with the
    4-connected cross (regions thinner than ``2 * rim + 1`` px have none): ``(box, region, core)``, ``box`` its
    bounding box grown by ``margin`` px (at least 1, room for the erosion; within the image), ``region`` and
    ``core`` boolean arrays of the box."""
    labels, _ = label_regions(mask)
    for k, box in enumerate(ndimage.find_objects(labels), start=1):
        box = tuple(slice(max(s.start - margin, 0), s.stop + margin) for s in box)
        region = labels[box] == k
        core = ndimage.binary_erosion(region, iterations=rim)
        if core.any():
            yield box, region, core


def _largest_region(anomaly_map, threshold):
    """Pixel area of the largest 8-connected region of ``anomaly_map > threshold`` (0 if none)."""
    labels, n = label_regions(anomaly_map > threshold)
    return int(np.bincount(labels.ravel())[1:].max()) if n else 0


def _check_min_area(min_area):
    """ValueError unless ``min_area`` (pixels) is at least 1."""
    if min_area < 1:
        raise ValueError(f"min_area must be at least 1 pixel, got {min_area}")


def threshold_at_fpr(anomaly_maps, masks, fpr):
    """Lowest threshold whose pixel false positive rate is at most ``fpr``.

    The FPR of ``t`` is the share of defect-free pixels (mask 0, over all maps)
    with score ``> t``; the result is the defect-free score ``t`` that makes it
    as large as possible without exceeding ``fpr``, so the next lower distinct
    score would exceed it.  ``fpr`` is a scalar or array in ``[0, 1]``; the
    result has its shape.  ``fpr >= 1`` gives ``-inf`` (everything segmented).
    """
    maps, masks = validate_maps(anomaly_maps, masks)
    good = np.sort(np.concatenate([a[~m] for a, m in zip(maps, masks)]))
    n = good.size
    if n == 0:
        raise ValueError("no defect-free pixels: the pixel FPR is undefined")
    fpr = np.asarray(fpr, dtype=np.float64)
    if (fpr < 0).any() or np.isnan(fpr).any():
        raise ValueError(f"fpr must be >= 0, got {fpr}")
    # Largest count k of false positives with k / n <= fpr, exact in floating point.
    k = np.minimum(np.floor(fpr * n), n)
    k = np.where(((k + 1) / n <= fpr) & (k < n), k + 1, k)
    k = np.where(k / n > fpr, k - 1, k).astype(np.int64)
    # At most k scores lie above good[n - 1 - k]; below it at least k + 1 do.
    threshold = np.where(k < n, good[np.clip(n - 1 - k, 0, n - 1)], -np.inf)
    return threshold[()]


def max_region_threshold(validation_maps, min_area):
    """The MVTec AD (CVPR 2019) threshold chosen on defect-free validation maps.

    Returns the lowest distinct score ``t`` of the maps such that no
    8-connected component of ``map > t`` in any map has ``min_area`` pixels or
    more (thresholds between two distinct scores segment the same pixels).
    The largest component area is non-increasing in ``t`` (the segmented set
    only shrinks), so the distinct scores are searched by bisection: about
    ``log2(#scores)`` labelling passes.  At the maximum score nothing is
    segmented, so that value is returned when no lower one qualifies.
    """
    _check_min_area(min_area)
    maps = validate_maps(validation_maps)
    values = np.unique(np.concatenate([a.ravel() for a in maps]))
    lo, hi = 0, values.size - 1  # values[hi] always qualifies
    while lo < hi:
        mid = (lo + hi) // 2
        if all(_largest_region(a, values[mid]) < min_area for a in maps):
            hi = mid
        else:
            lo = mid + 1
    return float(values[lo])


def classify_images(anomaly_maps, threshold, min_area):
    """Boolean ``(N,)``: True (defective) if ``map > threshold`` has a region of >= min_area px."""
    _check_min_area(min_area)
    maps = validate_maps(anomaly_maps)
    return np.array([_largest_region(a, threshold) >= min_area for a in maps], dtype=bool)


def classification_ratios(anomaly_maps, labels, threshold, min_area):
    """Shares of correctly classified good and defective images (as in MVTec AD, CVPR 2019).

    ``labels`` is ``(N,)`` with 1 = defective.  Returns
    ``{"good_correct": share of label-0 images classified good,
    "defective_correct": share of label-1 images classified defective}``;
    a share is NaN when there are no images of that label.
    """
    defective = classify_images(anomaly_maps, threshold, min_area)
    labels = validate_labels(labels, defective.size)
    good, bad = labels == 0, labels == 1
    return {
        "good_correct": float(np.mean(~defective[good])) if good.any() else float("nan"),
        "defective_correct": float(np.mean(defective[bad])) if bad.any() else float("nan"),
    }
