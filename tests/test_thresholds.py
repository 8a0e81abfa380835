"""Thresholds at a pixel FPR, the max-region threshold and image classification."""

import math

import numpy as np
import pytest
from scipy import ndimage

from ssimlib.thresholds import (
    classification_ratios,
    classify_images,
    max_region_threshold,
    threshold_at_fpr,
)


def _largest_component(binary):
    labels, n = ndimage.label(binary, np.ones((3, 3)))
    return max((np.sum(labels == k) for k in range(1, n + 1)), default=0)


def test_threshold_at_fpr_brute_force():
    rng = np.random.default_rng(0)
    shapes = [(7, 8), (5, 6), (9, 4)]
    maps = [rng.integers(0, 15, s) / 15 for s in shapes]  # many ties
    masks = [rng.random(s) < 0.2 for s in shapes]
    good = np.concatenate([a[~m] for a, m in zip(maps, masks)])
    distinct = np.unique(good)
    requested = np.array([0.0, 0.01, 0.05, 0.1234, 0.25, 1 / 3, 0.5, 0.9, 0.999])
    thresholds = threshold_at_fpr(maps, masks, requested)
    assert thresholds.shape == requested.shape
    for fpr, t in zip(requested, thresholds):
        assert t in distinct
        assert np.mean(good > t) <= fpr
        lower = distinct[distinct < t]
        next_fpr = np.mean(good > lower[-1]) if lower.size else 1.0
        assert next_fpr > fpr
    assert threshold_at_fpr(maps, masks, 0.1234) == thresholds[3]  # scalar in, scalar out
    assert threshold_at_fpr(maps, masks, 1.0) == -np.inf


def test_threshold_at_fpr_exact_fraction():
    # 10 defect-free scores 0..9: FPR 0.3 allows exactly 3 above -> threshold 6.
    score = np.arange(12, dtype=float).reshape(3, 4)
    mask = np.zeros((3, 4), bool)
    mask[2, 2:] = True  # scores 10, 11 are defects
    assert threshold_at_fpr([score], [mask], 0.3) == 6
    assert threshold_at_fpr([score], [mask], 0.29) == 7
    assert threshold_at_fpr([score], [mask], 0.0) == 9


def _hand_map():
    # A 2x2 block at 0.5, a diagonal (8-connected) pair at 0.7, one pixel at 0.9.
    a = np.zeros((7, 7))
    a[0:2, 0:2] = 0.5
    a[4, 4] = a[5, 5] = 0.7
    a[0, 5] = 0.9
    return a


@pytest.mark.parametrize(
    "min_area, expected",
    [
        (1, 0.9),  # only "nothing segmented" (above the max) qualifies
        (2, 0.7),  # at 0.5 the diagonal pair (area 2) remains
        (3, 0.5),  # at 0.0 the block (area 4) remains
        (5, 0.0),  # every region above the lowest value is small
    ],
)
def test_max_region_threshold_by_hand(min_area, expected):
    other = np.zeros((3, 4))
    assert max_region_threshold([_hand_map(), other], min_area) == expected


def test_max_region_threshold_brute_force():
    rng = np.random.default_rng(1)
    for trial in range(6):
        maps = [rng.integers(0, 12, (8, 9)) / 12.0 for _ in range(3)]
        min_area = int(rng.integers(1, 10))
        values = np.unique(np.concatenate([a.ravel() for a in maps]))
        valid = [v for v in values if all(_largest_component(a > v) < min_area for a in maps)]
        assert max_region_threshold(maps, min_area) == min(valid)


def test_max_region_threshold_rejects_min_area_zero():
    with pytest.raises(ValueError, match="min_area"):
        max_region_threshold([np.zeros((3, 3))], 0)


def _classification_maps():
    good = [
        np.zeros((5, 5)),  # nothing above 0.5 -> good
        np.pad([[1.0]], 2),  # one pixel (area 1 < 2) -> good
        np.pad(np.eye(2), 1),  # diagonal pair, 8-connected area 2 -> defective
    ]
    bad = [
        np.pad(np.ones((2, 2)), 1),  # area 4 -> defective
        np.zeros((4, 6)),  # missed -> good
    ]
    return good + bad, [0, 0, 0, 1, 1]


def test_classify_images_by_hand():
    maps, _ = _classification_maps()
    np.testing.assert_array_equal(
        classify_images(maps, 0.5, min_area=2), [False, False, True, True, False]
    )


def test_classification_ratios_by_hand():
    maps, labels = _classification_maps()
    ratios = classification_ratios(maps, labels, threshold=0.5, min_area=2)
    assert ratios == {"good_correct": pytest.approx(2 / 3), "defective_correct": 0.5}


def test_classification_ratios_without_good_images_is_nan():
    maps, labels = _classification_maps()
    ratios = classification_ratios(maps[3:], labels[3:], threshold=0.5, min_area=2)
    assert math.isnan(ratios["good_correct"])
    assert ratios["defective_correct"] == 0.5
