"""Sliding-window reconstruction and residual maps, against direct per-patch references."""

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from ssimlib.inference import (
    extract_patches,
    reconstruct_image,
    residual_map,
    window_starts,
    with_precision,
)

RNG = np.random.default_rng(0)


class Doubler:
    """A 'model' whose patch output depends on the patch position, to catch misplaced patches."""

    def __init__(self):
        self.calls = []

    def predict_on_batch(self, batch):
        self.calls.append(len(batch))
        return 2.0 * np.asarray(batch)


def _loop_reference(image, patch_size, stride, fn):
    """Per-patch Python loop: what simple re-implementations do."""
    h, w = image.shape[:2]
    total, count = np.zeros(image.shape), np.zeros(image.shape)
    for y in window_starts(h, patch_size, stride):
        for x in window_starts(w, patch_size, stride):
            total[y:y + patch_size, x:x + patch_size] += fn(image[y:y + patch_size, x:x + patch_size])
            count[y:y + patch_size, x:x + patch_size] += 1
    return total / count


def test_window_starts_cover_any_size():
    assert list(window_starts(128, 128, 30)) == [0]
    assert list(window_starts(200, 128, 30)) == [0, 30, 60, 72]
    assert list(window_starts(188, 128, 30)) == [0, 30, 60]
    with pytest.raises(ValueError, match="smaller than the patch"):
        window_starts(100, 128, 30)


@pytest.mark.parametrize("shape", [(97, 131), (64, 64, 3), (100, 75, 1)])
def test_overlap_average_matches_a_per_patch_loop(shape):
    image = RNG.random(shape).astype(np.float32)
    model = Doubler()
    patch = 32
    result = reconstruct_image(model, image, patch_size=patch, stride=7, batch_size=50)
    assert result.shape == image.shape
    np.testing.assert_allclose(result, 2.0 * image, atol=1e-6)
    # a position-dependent model: square each patch's values times its mean
    weird = lambda p: p * p.mean()  # noqa: E731
    result = reconstruct_image(None, image, patch, 7, 50, predict=lambda b: np.stack([weird(p) for p in b]))
    np.testing.assert_allclose(result, _loop_reference(image, patch, 7, weird), atol=1e-5)
    n_patches = len(window_starts(shape[0], patch, 7)) * len(window_starts(shape[1], patch, 7))
    assert max(model.calls) <= 50 and sum(model.calls) == n_patches


def test_reconstruction_memory_does_not_grow_with_the_number_of_patches():
    import tracemalloc

    image = RNG.random((400, 400)).astype(np.float32)  # stride 2: 34,225 patches, 140 MB if all were held
    tracemalloc.start()
    result = reconstruct_image(Doubler(), image, patch_size=32, stride=2, batch_size=50)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_allclose(result, 2.0 * image, atol=1e-6)
    assert peak < 10 * 2**20, f"peak {peak / 2**20:.0f} MiB"  # the image's sums (1.3 MB), a row, one batch


@pytest.mark.parametrize("kind, window, components, channels", [
    ("ssim", "uniform", "lcs", 1), ("ssim", "gaussian", "lcs", 1), ("ssim", "uniform", "cs", 1),
    ("ssim_l1", "uniform", "lcs", 3)])
def test_a_large_image_gets_the_same_ssim_residual_in_strips(monkeypatch, kind, window, components, channels):
    from ssimlib import inference

    image = RNG.random((120, 90, channels))
    reconstruction = np.clip(image + RNG.normal(0, 0.1, image.shape), 0, 1)
    whole = residual_map(image, reconstruction, kind, window=window, components=components)
    monkeypatch.setattr(inference, "SSIM_STRIP_PIXELS", 1000)  # strips of 21 rows (at least 4 window radii + 1)
    strips = residual_map(image, reconstruction, kind, window=window, components=components)
    np.testing.assert_allclose(strips, whole, rtol=0, atol=1e-6)  # float32 output: equal up to its rounding
    if kind == "ssim" and components == "lcs" and window == "uniform":  # and against scikit-image, as above
        _, reference = structural_similarity(image[..., 0], reconstruction[..., 0], win_size=11, full=True,
                                             use_sample_covariance=False, data_range=1.0)
        np.testing.assert_allclose(strips, 1 - reference, atol=1e-6)


def test_extract_patches_order():
    image = np.arange(40 * 50, dtype=np.float32).reshape(40, 50)
    patches, (ys, xs) = extract_patches(image, 16, 10)
    assert patches.shape == (len(ys) * len(xs), 16, 16, 1)
    np.testing.assert_array_equal(patches[len(xs) + 1, ..., 0], image[ys[1]:ys[1] + 16, xs[1]:xs[1] + 16])


def test_ssim_residual_is_one_minus_skimage_ssim():
    x = RNG.random((60, 70))
    y = np.clip(x + 0.1 * RNG.standard_normal(x.shape), 0, 1)
    _, ref = structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1,
                                   full=True)
    np.testing.assert_allclose(residual_map(x, y, kind="ssim", window="gaussian"), 1 - ref, atol=1e-5)
    _, ref = structural_similarity(x, y, win_size=11, use_sample_covariance=False, data_range=1, full=True)
    np.testing.assert_allclose(residual_map(x, y, kind="ssim"), 1 - ref, atol=1e-6)  # uniform by default (float32 map)


def test_l2_and_ssim_l1_residuals():
    x = RNG.random((40, 40, 3))
    y = np.clip(x + 0.1 * RNG.standard_normal(x.shape), 0, 1)
    np.testing.assert_allclose(residual_map(x, y, kind="l2"), ((x - y) ** 2).mean(-1), atol=1e-6)
    gray = lambda a: a @ np.array([0.299, 0.587, 0.114])  # noqa: E731
    _, ref = structural_similarity(gray(x), gray(y), win_size=11, use_sample_covariance=False, data_range=1, full=True)
    expected = 0.84 * (1 - ref) + 0.16 * np.abs(x - y).mean(-1)
    np.testing.assert_allclose(residual_map(x, y, kind="ssim_l1"), expected, atol=1e-5)


def test_component_products():
    x = RNG.random((40, 40))
    y = np.clip(x * 0.5 + 0.2, 0, 1)
    full = residual_map(x, y, components="lcs")
    no_luminance = residual_map(x, y, components="cs")
    assert not np.allclose(full, no_luminance)
    with pytest.raises(ValueError, match="components"):
        residual_map(x, y, components="lx")
    with pytest.raises(ValueError, match="kind"):
        residual_map(x, y, kind="l1")


def test_reconstruct_image_refuses_nan_and_wrong_channels():
    from ssimlib.models import ConvAutoencoder

    model = ConvAutoencoder(32, 1, 4)
    image = RNG.random((40, 40)).astype(np.float32)
    image[3, 4] = np.nan
    with pytest.raises(ValueError, match="1 NaN or infinite pixel values"):
        reconstruct_image(model, image, 32, 8)
    with pytest.raises(ValueError, match="image has 3 channel\\(s\\) but the model expects 1"):
        reconstruct_image(model, RNG.random((40, 40, 3)), 32, 8)
    with pytest.raises(ValueError, match="stride 100 is larger than the patch size 32"):  # NaN maps, unnamed
        reconstruct_image(model, RNG.random((200, 200)), 32, 100)


def test_bfloat16_inference_computes_in_bfloat16_with_the_same_weights():
    import keras

    from ssimlib.models import ConvAutoencoder

    keras.utils.set_random_seed(0)
    model = ConvAutoencoder(32, 1, 16)
    patches = np.random.default_rng(0).random((4, 32, 32, 1), dtype=np.float32)
    assert with_precision(model, "float32") is model
    copy = with_precision(model, "bfloat16")
    assert {layer.compute_dtype for layer in copy.encoder.layers[1:]} == {"bfloat16"}
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    reference = np.asarray(model.predict_on_batch(patches))
    reduced = np.asarray(copy.predict_on_batch(patches), dtype=np.float32)
    error = np.abs(reduced - reference).max() / np.abs(reference).max()
    assert 0 < error < 0.05  # bfloat16 keeps 8 significant bits
    with pytest.raises(ValueError, match="precision must be one of float32, bfloat16"):
        with_precision(model, "float16")
