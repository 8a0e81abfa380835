"""Where a model's false positives lie: near the defects, spread over the test images, or everywhere.

At the threshold where the pixel false positive rate on the test images is ``fpr`` (paper Fig. 7:
5 %), :func:`false_positive_sources` says which share of the false positive pixels lies more than
``near`` pixels from any defect (texture the model does not reconstruct, not a defect's blurred rim),
how the rate differs between test images, and how many pixels of the defect-free *training* images
score above the same threshold.  Far fewer there than on the test images' defect-free pixels means
the model reconstructs the images it was trained on better than new ones of the same material: the
limit is generalisation, not the residual or the evaluation.
"""

import numpy as np
from scipy.ndimage import distance_transform_edt
from scipy.stats import spearmanr

from ssimlib.thresholds import threshold_at_fpr, validate_maps


def false_positive_sources(maps, masks, training_maps, fpr=0.05, near=20):
    """False positives of ``maps`` ``[(H, W), ...]`` with ``masks`` at pixel FPR ``fpr``, and the training maps' rate.

    Returns a dict: ``threshold``; ``share_far_from_defects`` (of all false positive pixels, those
    more than ``near`` px from a defect pixel of their image); ``per_image_fpr`` (each test image's
    false positive rate); ``training_image_fpr`` (share of the ``training_maps`` pixels above the threshold).
    """
    maps, masks = validate_maps(maps, masks)
    threshold = float(threshold_at_fpr(maps, masks, fpr))
    far = total = 0
    per_image = []
    for anomaly_map, mask in zip(maps, masks):
        false_positive = (anomaly_map > threshold) & ~mask
        distance = distance_transform_edt(~mask) if mask.any() else np.full(mask.shape, np.inf)
        far += np.count_nonzero(false_positive & (distance > near))
        total += np.count_nonzero(false_positive)
        per_image.append(np.count_nonzero(false_positive) / max(np.count_nonzero(~mask), 1))
    training = np.concatenate([np.ravel(a) for a in training_maps])
    return {
        "fpr": fpr,
        "threshold": threshold,
        "near_px": near,
        "share_far_from_defects": far / total if total else float("nan"),
        "per_image_fpr": per_image,
        "training_image_fpr": float(np.mean(training > threshold)),
    }


def rate_against_brightness(per_image_fpr, images, train_images):
    """Spearman's rank correlation of each test image's false positive rate with how far its mean gray value lies
    from the training images' (``|mean - training mean|``): ``{"rho", "p_value"}``."""
    training_mean = np.mean(np.concatenate([np.ravel(x) for x in train_images]))
    offsets = [abs(float(np.mean(x)) - training_mean) for x in images]
    result = spearmanr(per_image_fpr, offsets)
    return {"rho": float(result.statistic), "p_value": float(result.pvalue)}
