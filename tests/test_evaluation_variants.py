"""The evaluation variants of notebook 02 (issue #38) against references computed another way."""

import numpy as np
import pytest
from scipy.ndimage import uniform_filter
from scipy.stats import mannwhitneyu

from ssimlib.experiments import evaluation_variants
from ssimlib.inference import residual_map
from ssimlib.postprocess import open_anomaly_map


class Dimmer:
    """A stand-in model: every patch comes back at half contrast, shifted."""

    def predict_on_batch(self, x):
        return 0.5 * x + 0.2


def _image(seed, shape=(64, 96)):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def test_patch_residuals_without_overlap_are_each_tiles_own_residual():
    image = _image(0)
    patchwise = evaluation_variants.patchwise_ssim_residual(Dimmer(), image, patch_size=32, stride=32, window_size=7)
    for y in range(0, 64, 32):
        for x in range(0, 96, 32):
            tile = image[y : y + 32, x : x + 32]
            expected = residual_map(tile, 0.5 * tile + 0.2, kind="ssim", window_size=7)
            np.testing.assert_allclose(patchwise[y : y + 32, x : x + 32], expected, atol=1e-6)


def test_overlapping_patch_residuals_are_averaged():
    image = _image(1)
    patchwise = evaluation_variants.patchwise_ssim_residual(Dimmer(), image, patch_size=32, stride=16, window_size=7)
    first = residual_map(image[:32, :32], 0.5 * image[:32, :32] + 0.2, kind="ssim", window_size=7)
    np.testing.assert_allclose(patchwise[:16, :16], first[:16, :16], atol=1e-6)  # covered by one patch only
    assert patchwise.shape == image.shape


def test_literal_constants_residual_follows_the_ssim_formula_with_c1_001_and_c2_003():
    x, y = _image(2), _image(3) * 0.3 + 0.4
    k = 11
    mean = lambda a: uniform_filter(a.astype(np.float64), k)  # noqa: E731
    mx, my = mean(x), mean(y)
    vx, vy, cxy = mean(x * x) - mx**2, mean(y * y) - my**2, mean(x * y) - mx * my
    ssim = (2 * mx * my + 0.01) * (2 * cxy + 0.03) / ((mx**2 + my**2 + 0.01) * (vx + vy + 0.03))
    inner = (slice(k, -k), slice(k, -k))  # away from the border, where padding differs
    got = residual_map(x, y, "ssim", window_size=k, constants="literal")
    np.testing.assert_allclose(got[inner], 1 - ssim[inner], atol=1e-9)


def test_every_variant_is_scored():
    images = [_image(4), _image(5)]
    masks = [np.zeros((64, 96), bool) for _ in images]
    for image, mask in zip(images, masks):
        mask[20:40, 30:60] = True
        image[20:40, 30:60] = 0.5  # a flat defect the dimmer reconstructs as it does everything
    reconstructions = [0.5 * x + 0.2 for x in images]
    maps = [open_anomaly_map(residual_map(x, y, kind="ssim", window_size=7)) for x, y in zip(images, reconstructions)]
    scores = evaluation_variants.pixel_auroc_by_variant(Dimmer(), images, masks, maps, reconstructions, [_image(6)],
                                                        patch_size=32, stride=16, window_size=7)
    assert list(scores) == list(evaluation_variants.VARIANTS)
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    values, labels = np.concatenate([m.ravel() for m in maps]), np.concatenate([m.ravel() for m in masks])
    u = mannwhitneyu(values[labels], values[~labels]).statistic  # the AUROC times the number of pairs
    assert scores["as evaluated (section 4.2)"] == pytest.approx(u / (labels.sum() * (~labels).sum()))


def test_brightness_matching_gives_the_training_images_mean_and_spread():
    train = [_image(7) * 0.5 + 0.3, _image(8) * 0.4 + 0.35]
    image = _image(9) * 0.3 + 0.1  # darker and flatter than the training images
    matched = evaluation_variants.brightness_matched(image, train)
    pixels = np.concatenate([x.ravel() for x in train]).astype(np.float64)
    assert matched.dtype == np.float32 and matched.shape == image.shape
    assert matched.mean() == pytest.approx(pixels.mean(), abs=1e-5)
    assert matched.std() == pytest.approx(pixels.std(), abs=1e-5)
    np.testing.assert_array_equal(np.argsort(matched.ravel()), np.argsort(image.ravel()))  # an increasing map


def test_the_false_positive_rate_is_ranked_against_the_brightness_offset():
    from ssimlib.experiments.false_positives import rate_against_brightness

    train = [np.full((4, 4), 0.5)]
    images = [np.full((4, 4), v) for v in (0.5, 0.45, 0.6, 0.3)]  # offsets 0, 0.05, 0.1, 0.2
    assert rate_against_brightness([0.01, 0.02, 0.03, 0.09], images, train)["rho"] == pytest.approx(1.0)
    assert rate_against_brightness([0.09, 0.03, 0.02, 0.01], images, train)["rho"] == pytest.approx(-1.0)
