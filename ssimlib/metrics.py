"""Evaluation metrics: pixel and image ROC, the PRO curve and region overlaps.

Inputs are sequences of float anomaly maps ``(H, W)`` (higher = more anomalous;
sizes may differ between images) with matching masks (nonzero = defect) or
image labels (1 = defective).  Ground-truth regions are 8-connected components
of each mask.  Rates are fractions in ``[0, 1]``.
"""

import numpy as np
from scipy import ndimage

from ssimlib.thresholds import label_regions, region_cores, threshold_at_fpr, validate_labels, validate_maps


def roc_curve(scores, labels):
    """Exact ROC of 1-D ``scores`` against binary ``labels`` (1 = positive).

    Returns ``(fpr, tpr, thresholds)``, one point per distinct score in
    descending order (tied scores enter together), preceded by ``(0, 0)`` at
    threshold ``+inf``; a point counts ``score >= threshold`` as positive, so
    the last point is ``(1, 1)``.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel() != 0
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.size} scores but {labels.size} labels")
    n_pos = np.count_nonzero(labels)
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"ROC needs both classes, got {n_pos} positives and {n_neg} negatives")
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    last_of_tie = np.append(np.diff(scores) != 0, True)
    tp = np.cumsum(labels)[last_of_tie]
    fp = np.cumsum(~labels)[last_of_tie]
    return (
        np.concatenate(([0.0], fp / n_neg)),
        np.concatenate(([0.0], tp / n_pos)),
        np.concatenate(([np.inf], scores[last_of_tie])),
    )


def roc_auc(scores, labels):
    """Area under :func:`roc_curve` (trapezoids; equals the Mann-Whitney U / (n_pos n_neg))."""
    fpr, tpr, _ = roc_curve(scores, labels)
    return float(np.trapezoid(tpr, fpr))


def pixel_roc(anomaly_maps, masks):
    """ROC ``(fpr, tpr, thresholds)`` over all pixels of all maps (see :func:`roc_curve`)."""
    maps, masks = validate_maps(anomaly_maps, masks)
    labels = np.concatenate([m.ravel() for m in masks])
    if labels.all() or not labels.any():
        raise ValueError("pixel ROC needs both defect pixels and defect-free pixels in the masks")
    return roc_curve(np.concatenate([a.ravel() for a in maps]), labels)


def pixel_auroc(anomaly_maps, masks):
    """Area under :func:`pixel_roc`."""
    fpr, tpr, _ = pixel_roc(anomaly_maps, masks)
    return float(np.trapezoid(tpr, fpr))


def image_scores(anomaly_maps):
    """Image anomaly scores ``(N,)``: the maximum of each map."""
    return np.array([a.max() for a in validate_maps(anomaly_maps)])


def image_auroc(anomaly_maps, labels):
    """ROC AUC of :func:`image_scores` against image ``labels`` ``(N,)`` (1 = defective)."""
    scores = image_scores(anomaly_maps)
    labels = validate_labels(labels, scores.size)
    if not (labels == 0).any():
        raise ValueError(
            "image-level AUROC needs defect-free (good) test images, but all labels are 1"
        )
    if not (labels == 1).any():
        raise ValueError("image-level AUROC needs defective test images, but all labels are 0")
    return roc_auc(scores, labels)


def pro_curve(anomaly_maps, masks):
    """Per-region overlap (PRO) curve as in MVTec's official evaluation script.

    Follows ``pro_curve_util.compute_pro`` of mvtec_ad_evaluation: every
    defect-free pixel adds ``1 / #defect-free pixels`` to the FPR and every
    pixel of a ground-truth region adds ``1 / (area * #regions)`` to the PRO;
    scores are swept in descending order and only the last point of each run of
    equal scores is kept.  (The official script casts the FPRs to float32; they
    stay float64 here.)  Returns ``(fprs, pros)``, both ``(K,)``, non-decreasing,
    from ``(0, 0)`` to ``(1, 1)``.  Masks without defects add only defect-free
    pixels.
    """
    maps, masks = validate_maps(anomaly_maps, masks)
    fp_change, pro_change = [], []
    n_regions = 0
    for mask in masks:
        labels, n = label_regions(mask)
        weight = np.zeros(n + 1)  # 0 for defect-free pixels (a mask may have none)
        weight[1:] = 1.0 / np.bincount(labels.ravel(), minlength=n + 1)[1:]
        fp_change.append(labels.ravel() == 0)
        pro_change.append(weight[labels.ravel()])
        n_regions += n
    fp_change = np.concatenate(fp_change)
    n_good = np.count_nonzero(fp_change)
    if n_regions == 0 or n_good == 0:
        raise ValueError("the PRO curve needs defect regions and defect-free pixels in the masks")
    scores = np.concatenate([a.ravel() for a in maps])
    order = np.argsort(-scores, kind="stable")
    fprs = np.cumsum(fp_change[order]) / n_good
    pros = np.cumsum(np.concatenate(pro_change)[order]) / n_regions
    last_of_tie = np.append(np.diff(scores[order]) != 0, True)
    fprs = np.minimum(fprs[last_of_tie], 1.0)
    pros = np.minimum(pros[last_of_tie], 1.0)
    return np.concatenate(([0.0], fprs, [1.0])), np.concatenate(([0.0], pros, [1.0]))


def _trapezoid(x, y, x_max):
    """Area under ``y(x)`` on ``[x[0], x_max]`` (mvtec_ad_evaluation ``generic_util.trapezoid``).

    ``x`` ``(K,)`` is sorted ascending with ``x[0] <= x_max <= x[-1]``; if
    ``x_max`` is not a sample, ``y`` is interpolated linearly there and that
    partial trapezoid is added.
    """
    correction = 0.0
    if not np.any(x == x_max):
        i = int(np.searchsorted(x, x_max, side="right"))
        y_max = y[i - 1] + (y[i] - y[i - 1]) * (x_max - x[i - 1]) / (x[i] - x[i - 1])
        correction = 0.5 * (y_max + y[i - 1]) * (x_max - x[i - 1])
    keep = x <= x_max
    return float(np.trapezoid(y[keep], x[keep]) + correction)


def au_pro(anomaly_maps, masks, fpr_limit=0.3):
    """Area under :func:`pro_curve` for FPR in ``[0, fpr_limit]``, over ``fpr_limit`` (1 = best)."""
    if not 0 < fpr_limit <= 1:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    fprs, pros = pro_curve(anomaly_maps, masks)
    return _trapezoid(fprs, pros, fpr_limit) / fpr_limit


def region_overlap_quantiles(anomaly_maps, masks, fpr, q=(0.25, 0.5, 0.75)):
    """Quantiles of the per-region overlap at given pixel FPRs (paper Fig. 7).

    For each ``fpr`` the threshold is :func:`~ssimlib.thresholds.threshold_at_fpr`;
    each 8-connected ground-truth region's overlap is the share of its pixels
    with score ``> threshold``.  Returns ``np.quantile`` of the overlaps over
    all regions, shape ``(len(fpr), len(q))``, or ``(len(q),)`` for scalar ``fpr``.
    """
    maps, masks = validate_maps(anomaly_maps, masks)
    overlaps = region_overlaps(maps, masks, threshold_at_fpr(maps, masks, fpr))
    result = np.quantile(overlaps, np.atleast_1d(q), axis=0).T
    return result[0] if np.ndim(fpr) == 0 else result


def region_overlaps(anomaly_maps, masks, thresholds):
    """Each 8-connected ground-truth region's overlap at each of ``thresholds``: the share of its pixels with score
    ``> threshold``; shape ``(regions, len(thresholds))``, the regions in mask order."""
    maps, masks = validate_maps(anomaly_maps, masks)
    thresholds = np.atleast_1d(thresholds)
    overlaps = []
    for a, mask in zip(maps, masks):
        labels, _ = label_regions(mask)
        for k, box in enumerate(ndimage.find_objects(labels), start=1):
            region = np.sort(a[box][labels[box] == k])
            covered = region.size - np.searchsorted(region, thresholds, side="right")
            overlaps.append(covered / region.size)
    if not overlaps:
        raise ValueError("region overlaps need at least one defect region in the masks")
    return np.array(overlaps)


def region_core_and_rim_overlaps(anomaly_maps, masks, fpr, rim=3):
    """Where the per-region overlap of :func:`region_overlap_quantiles` is lost: inside a region or at its edge.

    At the threshold of pixel FPR ``fpr``, for each 8-connected ground-truth region with a core (the region
    eroded ``rim`` times with the 4-connected cross; regions thinner than ``2 * rim + 1`` px have none): the share
    of its core pixels and of its other pixels (its rim, ``rim`` px wide) with score ``> threshold``.
    Returns ``(core_overlaps, rim_overlaps)``, arrays ``(n_regions_with_a_core,)``.
    """
    maps, masks = validate_maps(anomaly_maps, masks)
    threshold = threshold_at_fpr(maps, masks, fpr)
    cores, rims = [], []
    for a, mask in zip(maps, masks):
        for box, region, core in region_cores(mask, rim):
            cores.append(np.mean(a[box][core] > threshold))
            rims.append(np.mean(a[box][region & ~core] > threshold))
    return np.array(cores), np.array(rims)
