"""Pixel/image ROC, PRO curve and region overlaps against hand-computed and brute-force values."""

import warnings

import numpy as np
import pytest
from scipy import ndimage

from ssimlib.metrics import (
    au_pro,
    image_auroc,
    image_scores,
    pixel_auroc,
    pixel_roc,
    pro_curve,
    region_core_and_rim_overlaps,
    region_overlap_quantiles,
    roc_auc,
)


def _mann_whitney(scores, labels):
    """P(positive score > negative score) + 1/2 P(tie), over all pairs."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (pos.size * neg.size)


def _random_maps(rng, shapes, levels=None):
    """Uniform maps of the given shapes; rounded to ``levels`` values to create ties."""
    maps = [rng.random(s) for s in shapes]
    return [np.round(a * levels) / levels for a in maps] if levels else maps


def _blob_masks(rng, shapes, blobs=(0, 3), radii=(1, 4)):
    """Masks with ``blobs[0]..blobs[1]`` random discs of radius ``radii[0]..radii[1]`` each."""
    masks = []
    for h, w in shapes:
        yy, xx = np.mgrid[:h, :w]
        mask = np.zeros((h, w), bool)
        for _ in range(rng.integers(blobs[0], blobs[1] + 1)):
            cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(radii[0], radii[1] + 1)
            mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        masks.append(mask)
    return masks


# ---------------------------------------------------------------- pixel / image ROC


def test_pixel_roc_hand_case_with_ties():
    # scores 0.9 0.8 0.8 0.3 0.3 0.1 with labels 1 1 0 1 0 0 (3 positives, 3 negatives):
    # >= 0.9: tp 1 fp 0; >= 0.8: tp 2 fp 1; >= 0.3: tp 3 fp 2; >= 0.1: tp 3 fp 3.
    maps = [np.array([[0.9, 0.8, 0.8]]), np.array([[0.3, 0.3, 0.1]])]
    masks = [np.array([[1, 1, 0]]), np.array([[1, 0, 0]])]
    fpr, tpr, thresholds = pixel_roc(maps, masks)
    np.testing.assert_allclose(fpr, [0, 0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 1, 1])
    np.testing.assert_array_equal(thresholds, [np.inf, 0.9, 0.8, 0.3, 0.1])
    # Trapezoids 0 + 1/6 + 5/18 + 1/3 = 7/9 = pairwise wins (3 + 2.5 + 1.5) / 9.
    assert pixel_auroc(maps, masks) == pytest.approx(7 / 9, abs=1e-12)


def test_pixel_auroc_equals_mann_whitney():
    rng = np.random.default_rng(1)
    shapes = [(6, 7), (5, 9), (8, 4)]  # sizes may differ
    maps = _random_maps(rng, shapes, levels=10)
    masks = [rng.random(s) < 0.3 for s in shapes]
    scores = np.concatenate([a.ravel() for a in maps])
    labels = np.concatenate([m.ravel() for m in masks]).astype(int)
    assert pixel_auroc(maps, masks) == pytest.approx(_mann_whitney(scores, labels), abs=1e-12)


def test_roc_auc_equals_mann_whitney_continuous():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 200)
    scores = rng.normal(size=200) + labels
    assert roc_auc(scores, labels) == pytest.approx(_mann_whitney(scores, labels), abs=1e-12)


def test_image_auroc_equals_mann_whitney_on_maxima():
    rng = np.random.default_rng(3)
    maps = [rng.integers(0, 6, (4, 5)).astype(float) for _ in range(30)]  # tied maxima
    labels = rng.integers(0, 2, 30)
    maxima = np.array([max(a.ravel().tolist()) for a in maps])
    np.testing.assert_array_equal(image_scores(maps), maxima)
    assert image_auroc(maps, labels) == pytest.approx(_mann_whitney(maxima, labels), abs=1e-12)


def test_shape_mismatch_names_the_index():
    maps = [np.zeros((4, 4)), np.zeros((4, 4))]
    masks = [np.zeros((4, 4)), np.zeros((4, 5))]
    for metric in (pixel_auroc, au_pro):
        with pytest.raises(ValueError, match=r"anomaly map 1 .*shape"):
            metric(maps, masks)


def test_pixel_roc_needs_both_classes():
    maps = [np.random.default_rng(0).random((3, 3))]
    for mask in (np.zeros((3, 3)), np.ones((3, 3))):
        with pytest.raises(ValueError, match="defect pixels and defect-free pixels"):
            pixel_roc(maps, [mask])


def test_image_auroc_needs_good_images():
    maps = [np.ones((2, 2)), np.zeros((2, 2))]
    with pytest.raises(ValueError, match="defect-free"):
        image_auroc(maps, [1, 1])
    with pytest.raises(ValueError, match="defective"):
        image_auroc(maps, [0, 0])


# ---------------------------------------------------------------- PRO


def _slow_au_pro(maps, masks, fpr_limit):
    """Reference: sweep every distinct score, label regions, integrate with own interpolation."""
    structure = np.ones((3, 3))
    labelled = [ndimage.label(m, structure) for m in masks]
    regions = [(a, lab == k) for a, (lab, n) in zip(maps, labelled) for k in range(1, n + 1)]
    points = [(0.0, 0.0)]
    for t in np.unique(np.concatenate([a.ravel() for a in maps]))[::-1]:
        false_pos = sum(np.sum((a >= t) & (lab == 0)) for a, (lab, _) in zip(maps, labelled))
        n_good = sum(np.sum(lab == 0) for lab, _ in labelled)
        pro = np.mean([np.mean(a[r] >= t) for a, r in regions])
        points.append((false_pos / n_good, pro))
    points.append((1.0, 1.0))
    area = 0.0
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
        if x1 <= fpr_limit:
            area += (x1 - x0) * (y0 + y1) / 2
        elif x0 < fpr_limit:  # the segment that crosses the limit: cut it there
            y_cut = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
            area += (fpr_limit - x0) * (y0 + y_cut) / 2
            break
    return area / fpr_limit


def test_au_pro_perfect_map_is_one():
    rng = np.random.default_rng(4)
    shapes = [(20, 20), (16, 24), (20, 20)]
    masks = _blob_masks(rng, shapes)
    masks[1][:] = False  # a good image
    masks[0][3:6, 3:6] = True
    maps = [m + 0.5 * rng.random(m.shape) for m in masks]  # every defect above every good pixel
    for limit in (0.05, 0.3, 1.0):
        assert au_pro(maps, masks, fpr_limit=limit) == pytest.approx(1.0, abs=1e-12)


def test_au_pro_stripe_is_exactly_one_sixth():
    # Scores are constant along each of the 400 rows (r / 400) and the defect is the
    # vertical stripe of columns 2-4 (one 8-connected region of 1200 pixels).  Each
    # distinct score therefore adds one row: 3 defect pixels (+3/1200 = 1/400 PRO) and
    # 4 defect-free ones (+4/1600 = 1/400 FPR), so every curve point is (i/400, i/400)
    # and the trapezoids are exact pieces of the diagonal.  FPR 1/3 lies between
    # 133/400 and 134/400, where the linear interpolation is on the diagonal too, so
    # the integral is (1/3)^2 / 2 and the normalised AU-PRO is exactly 1/6.
    # With np.arange(2800).reshape(400, 7) / 2800 instead, every pixel is its own
    # threshold and the curve is a staircase (right for defect-free, up for defect
    # pixels); its area is only 1/6 + O(1/#pixels), e.g. 1/6 - 1.04e-6 for this stripe
    # (a single middle column would need sum_j PRO_j * 400 = 400 * 2400 / 18 = 53333.3,
    # not an integer, so no ordering within the rows makes it exact).
    preds = (np.arange(2800).reshape(400, 7) // 7) / 400
    mask = np.zeros((400, 7), bool)
    mask[:, 2:5] = True
    fprs, pros = pro_curve([preds], [mask])
    np.testing.assert_allclose(fprs, pros, atol=1e-12)  # PRO(FPR) = FPR
    np.testing.assert_allclose(fprs[1:-1], np.arange(1, 401) / 400, atol=1e-12)
    assert au_pro([preds], [mask], fpr_limit=1 / 3) == pytest.approx(1 / 6, abs=1e-9)


def test_au_pro_random_scores_give_half_the_limit():
    # Random scores: each region is covered like the defect-free pixels, PRO(FPR) ~ FPR,
    # so the area up to L is ~ L^2 / 2, i.e. L / 2 after normalisation.  About 100
    # regions keep the sampling noise of the mean overlap well below the tolerance.
    rng = np.random.default_rng(5)
    shapes = [(64, 64)] * 40
    masks = _blob_masks(rng, shapes, blobs=(1, 4), radii=(3, 8))
    maps = _random_maps(rng, shapes)
    for limit in (0.1, 0.3):
        assert au_pro(maps, masks, fpr_limit=limit) == pytest.approx(limit / 2, abs=0.02)


def test_pro_two_regions_of_different_size_by_hand():
    # Image 1 (10x10): region A = 2 pixels, both scored 1; region B = 12 pixels (3x4),
    # 3 of them scored 1; one defect-free pixel scored 1, everything else 0.
    # Image 2 (5x5): a good image, all 0.  At threshold 1: PRO = (2/2 + 3/12) / 2 = 0.625
    # (pixel TPR would be 5/14), FPR = 1 / (86 + 25) defect-free pixels.
    score = np.zeros((10, 10))
    mask = np.zeros((10, 10), bool)
    mask[0, 0:2] = True
    score[0, 0:2] = 1
    mask[5:8, 4:8] = True
    score[5, 4:7] = 1
    score[9, 9] = 1
    maps, masks = [score, np.zeros((5, 5))], [mask, np.zeros((5, 5), bool)]
    fprs, pros = pro_curve(maps, masks)
    np.testing.assert_allclose(fprs, [0, 1 / 111, 1, 1])
    np.testing.assert_allclose(pros, [0, 0.625, 1, 1])
    # Area to 0.3: triangle to (1/111, 0.625), then the trapezoid to 0.3 on the line
    # from (1/111, 0.625) to (1, 1).
    x1, y1 = 1 / 111, 0.625
    y_cut = y1 + (1 - y1) * (0.3 - x1) / (1 - x1)
    expected = (x1 * y1 / 2 + (0.3 - x1) * (y1 + y_cut) / 2) / 0.3
    assert au_pro(maps, masks, fpr_limit=0.3) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("levels", [20, None])
def test_au_pro_matches_slow_reference(levels):
    rng = np.random.default_rng(6 if levels else 7)
    shapes = [(12, 14), (10, 10), (15, 9), (12, 12)]
    masks = _blob_masks(rng, shapes)
    masks[0][2:5, 2:4] = True
    masks[3][:] = False  # a good image
    maps = _random_maps(rng, shapes, levels)
    maps = [a + 0.3 * m for a, m in zip(maps, masks)]  # a better-than-random detector
    for limit in (0.05, 0.3, 1 / 3, 1.0):
        assert au_pro(maps, masks, fpr_limit=limit) == pytest.approx(
            _slow_au_pro(maps, masks, limit), abs=1e-6
        )


def test_au_pro_rejects_bad_input():
    maps, masks = [np.zeros((3, 3))], [np.zeros((3, 3))]
    with pytest.raises(ValueError, match="defect regions"):
        au_pro(maps, masks)
    with pytest.raises(ValueError, match="fpr_limit"):
        au_pro(maps, [np.eye(3)], fpr_limit=0)


# ---------------------------------------------------------------- region overlaps


def test_region_overlap_quantiles_by_hand():
    # Region A (2x2) scores 0.9 0.9 0.4 0.1, region B (1x3) all 0.9.  Of the 93
    # defect-free pixels 10 score 0.6 and 83 score 0.2.
    # FPR 0.05 < 10/93 -> threshold 0.6: overlaps A 1/2, B 1.
    # FPR 0.2 >= 10/93 -> threshold 0.2: overlaps A 3/4, B 1.
    # FPR 1 -> everything segmented: both 1.
    score = np.full((10, 10), 0.2)
    score[9, :] = 0.6
    mask = np.zeros((10, 10), bool)
    mask[1:3, 1:3] = True
    score[1:3, 1:3] = [[0.9, 0.9], [0.4, 0.1]]
    mask[5, 4:7] = True
    score[5, 4:7] = 0.9
    quantiles = region_overlap_quantiles([score], [mask], [0.05, 0.2, 1.0])
    # np.quantile of two values a < b at q: a + q (b - a).
    expected = [[0.625, 0.75, 0.875], [0.8125, 0.875, 0.9375], [1, 1, 1]]
    np.testing.assert_allclose(quantiles, expected)
    single = region_overlap_quantiles([score], [mask], 0.05, q=(0.0, 1.0))
    np.testing.assert_allclose(single, [0.5, 1.0])


def test_core_and_rim_overlaps_by_hand():
    # Every defect-free pixel scores 0: threshold 0, so a pixel counts when it scores above 0.
    # A: a 10x10 square; its core after 3 erosions is the 4x4 middle, its rim the other 84 px; the core and the
    #    rim's top 3 rows (30 px) score 1. C: a 7x7 square, core its centre pixel, which alone scores 1.
    # B: 2 px thin, no core: left out.
    score, mask = np.zeros((30, 30)), np.zeros((30, 30), bool)
    mask[5:15, 5:15] = True
    score[8:12, 8:12] = score[5:8, 5:15] = 1
    mask[17:24, 20:27] = True
    score[20, 23] = 1
    mask[26:28, 0:15] = True
    cores, rims = region_core_and_rim_overlaps([score], [mask], 0.05)
    np.testing.assert_allclose(cores, [1, 1])
    np.testing.assert_allclose(rims, [30 / 84, 0])


def test_a_mask_that_is_all_defect_adds_no_warning_to_the_pro_curve():
    # an image whose mask marks every pixel printed "divide by zero encountered in divide" twice, naming nothing
    whole, part = np.ones((4, 4), bool), np.zeros((4, 4), bool)
    part[:2, :2] = True
    maps = [np.linspace(0, 1, 16).reshape(4, 4), np.arange(16.0).reshape(4, 4) / 16]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fprs, pros = pro_curve(maps, [whole, part])
    assert fprs[-1] == 1 and pros[-1] == 1
