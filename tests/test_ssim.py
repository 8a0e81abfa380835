"""SSIM maps against scikit-image, numerical safety, MS-SSIM properties."""

import numpy as np
import pytest
import keras
import skimage.data
import skimage.filters
from skimage.metrics import structural_similarity

from ssimlib.losses import SSIMLoss, get_loss
from ssimlib.ssim import gaussian_window, ms_ssim, ms_ssim_scales, rgb_to_gray, ssim_loss, ssim_map

RNG = np.random.default_rng(0)


def _natural_pair():
    camera = skimage.data.camera().astype(np.float64) / 255
    noisy = np.clip(camera + RNG.normal(0, 0.05, camera.shape), 0, 1)
    return camera[:160, :200], noisy[:160, :200]


def _blurred_pair():
    image = skimage.data.astronaut()[..., 0].astype(np.float64) / 255
    return image[100:260, 100:300], skimage.filters.gaussian(image, 1.0)[100:260, 100:300]


def _random_pair():
    return RNG.random((64, 80)), RNG.random((64, 80))


def _skimage_map(x, y, window_size=11, window="uniform"):
    _, full = structural_similarity(
        x, y, gaussian_weights=window == "gaussian", sigma=1.5, win_size=window_size,
        use_sample_covariance=False, data_range=1, full=True,
    )
    return full


def _ours(x, y, dtype="float64", **kwargs):
    return np.asarray(ssim_map(x.astype(dtype)[None, ..., None], y.astype(dtype)[None, ..., None], **kwargs))[0, ..., 0]


@pytest.mark.parametrize("window", ["uniform", "gaussian"])
@pytest.mark.parametrize("pair", [_natural_pair, _blurred_pair, _random_pair])
def test_interior_matches_skimage_float64(pair, window):
    x, y = pair()
    r = 5
    ours, ref = _ours(x, y, window=window), _skimage_map(x, y, window=window)
    assert ours.shape == x.shape
    np.testing.assert_allclose(ours[r:-r, r:-r], ref[r:-r, r:-r], atol=1e-4)


@pytest.mark.parametrize("window_size", [3, 7, 11, 15, 19])
def test_uniform_window_matches_skimage_everywhere(window_size):
    # skimage pads with scipy's "reflect" mode too, so the whole map agrees, borders included.
    x, y = _natural_pair()
    np.testing.assert_allclose(
        _ours(x, y, window_size=window_size), _skimage_map(x, y, window_size, "uniform"), atol=1e-10
    )


@pytest.mark.parametrize("constants", ["standard", "literal"])
def test_ssim_loss_with_either_reading_of_the_constants_matches_skimage(constants):
    # the paper's "c1 = 0.01 and c2 = 0.03" as written is skimage's K1 = 0.1, K2 = 0.03 ** 0.5 (c = (K L)^2)
    x, y = _natural_pair()
    k1, k2 = {"standard": (0.01, 0.03), "literal": (0.1, 0.03**0.5)}[constants]
    _, full = structural_similarity(x, y, win_size=11, use_sample_covariance=False, data_range=1, full=True,
                                    K1=k1, K2=k2)
    loss = SSIMLoss(constants=constants)
    got = float(loss.call(x[None, ..., None].astype("float64"), y[None, ..., None].astype("float64"))[0])
    assert got == pytest.approx(1 - full.mean(), abs=1e-6)  # float64 here, float32 under Keras' JAX loss
    assert keras.losses.deserialize(keras.losses.serialize(loss)).constants == constants
    with pytest.raises(ValueError, match="SSIM constants must be one of standard, literal, got 'literl'"):
        SSIMLoss(constants="literl")
    pair = x[None, ..., None].astype("float64"), y[None, ..., None].astype("float64")
    for name in ("ms_ssim", "ssim_l1"):  # the other SSIM losses read them too
        assert float(get_loss(name, constants="literal").call(*pair)[0]) != float(get_loss(name).call(*pair)[0])
    with pytest.raises(ValueError, match="SSIM constants 'literal' given for the l2 loss, which has none"):
        get_loss("l2", constants="literal")


def test_default_window_is_uniform():
    x, y = _natural_pair()
    np.testing.assert_array_equal(_ours(x, y), _ours(x, y, window="uniform"))
    assert not np.allclose(_ours(x, y), _ours(x, y, window="gaussian"), atol=1e-3)


@pytest.mark.parametrize("window", ["uniform", "gaussian"])
@pytest.mark.parametrize("pair", [_natural_pair, _blurred_pair, _random_pair])
def test_float32_matches_skimage_within_documented_error(pair, window):
    x, y = pair()
    r = 5
    ours = _ours(x, y, "float32", window=window)
    np.testing.assert_allclose(ours[r:-r, r:-r], _skimage_map(x, y, window=window)[r:-r, r:-r], atol=5e-4)


def test_unknown_window_and_shape_mismatch_are_named():
    x, y = _natural_pair()
    with pytest.raises(ValueError, match="window must be one of uniform, gaussian, got 'box'"):
        _ours(x, y, window="box")
    with pytest.raises(ValueError, match=r"one shape, got \(1, 160, 200, 1\) and \(1, 150, 200, 1\)"):
        _ours(x, y[:150])


@pytest.mark.parametrize("window_size", [3, 7, 19])
def test_other_window_sizes_match_a_scipy_reference(window_size):
    """skimage fixes the Gaussian at 11 taps for sigma 1.5, so other K are checked against scipy."""
    from scipy.ndimage import gaussian_filter

    x, y = _natural_pair()

    def blur(z):
        return gaussian_filter(z, 1.5, truncate=(window_size // 2) / 1.5, mode="reflect")

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    ref = (2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    np.testing.assert_allclose(_ours(x, y, window_size=window_size, window="gaussian"), ref, atol=1e-6)


def test_gaussian_window_is_scipys():
    from scipy.ndimage import gaussian_filter1d

    impulse = np.zeros(11)
    impulse[5] = 1
    np.testing.assert_allclose(gaussian_window(11, 1.5), gaussian_filter1d(impulse, 1.5, truncate=3.5), atol=1e-12)


def test_components_multiply_to_ssim_and_follow_definitions():
    x, y = _natural_pair()
    ssim, lum, con, struct = (
        np.asarray(m)[0, ..., 0]
        for m in ssim_map(x[None, ..., None], y[None, ..., None], return_components=True)
    )
    np.testing.assert_allclose(lum * con * struct, ssim, atol=1e-6)
    assert (con <= 1 + 1e-9).all() and (np.abs(struct) <= 1 + 1e-9).all() and (lum <= 1 + 1e-9).all()


def test_components_on_the_papers_three_patch_pairs():
    """Paper Fig. 2: a luminance change moves only l, a contrast change only c, a structure change only s.

    The base patch alternates 0.25 / 0.75 by column (mean 0.5, std 0.25); expected
    values are eqs. (5)-(7) with those statistics (the Gaussian window moves the
    local statistics of alternating columns by < 1e-3; an odd uniform window does not
    average them evenly, 6 columns of one value against 5 of the other).
    """
    c1, c2 = 0.01**2, 0.03**2
    c3 = c2 / 2
    base = np.tile([0.25, 0.75], 16)[None, :].repeat(32, axis=0)
    cases = {  # other patch: expected (l, c, s)
        "luminance": (base + 0.25, ((2 * 0.5 * 0.75 + c1) / (0.5**2 + 0.75**2 + c1), 1.0, 1.0)),
        "contrast": (0.5 + (base - 0.5) * 2, (1.0, (2 * 0.25 * 0.5 + c2) / (0.25**2 + 0.5**2 + c2), 1.0)),
        "structure": (1.0 - base, (1.0, 1.0, (-(0.25**2) + c3) / (0.25**2 + c3))),
    }
    for name, (other, expected) in cases.items():
        _, lum, con, struct = (np.asarray(m)[0, 8:-8, 8:-8, 0]
                               for m in ssim_map(base[None, ..., None], other[None, ..., None], window="gaussian",
                                                 return_components=True))
        for got, want in zip((lum, con, struct), expected):
            np.testing.assert_allclose(got, want, atol=2e-3, err_msg=name)


def test_exponents():
    x, y = _natural_pair()
    ssim, lum, con, struct = ssim_map(x[None, ..., None], y[None, ..., None], return_components=True)
    weighted = ssim_map(x[None, ..., None], y[None, ..., None], alpha=2.0, beta=1.0, gamma=1.0)
    np.testing.assert_allclose(np.asarray(weighted), np.asarray(lum) ** 2 * np.asarray(con) * np.asarray(struct),
                               atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("case", ["constant", "zeros", "ones", "zeros_vs_ones"])
def test_no_nan_or_inf(dtype, case):
    a = {"constant": 0.3, "zeros": 0.0, "ones": 1.0, "zeros_vs_ones": 0.0}[case]
    b = {"constant": 0.3, "zeros": 0.0, "ones": 1.0, "zeros_vs_ones": 1.0}[case]
    x = np.full((2, 24, 24, 1), a, dtype)
    y = np.full((2, 24, 24, 1), b, dtype)
    for result in ssim_map(x, y, return_components=True):
        assert np.isfinite(np.asarray(result)).all()
    assert np.isfinite(np.asarray(ms_ssim(x, y))).all()
    if case != "zeros_vs_ones":
        np.testing.assert_allclose(np.asarray(ssim_map(x, y)), 1.0, atol=1e-6)


def test_loss_and_ms_ssim_identity_and_order():
    x = RNG.random((3, 64, 64, 1)).astype("float32")
    np.testing.assert_allclose(np.asarray(ssim_loss(x, x)), 0.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ms_ssim(x, x)), 1.0, atol=1e-5)
    slightly = np.clip(x + 0.02 * RNG.standard_normal(x.shape), 0, 1).astype("float32")
    badly = np.clip(x + 0.3 * RNG.standard_normal(x.shape), 0, 1).astype("float32")
    assert (np.asarray(ms_ssim(x, slightly)) > np.asarray(ms_ssim(x, badly))).all()
    assert (np.asarray(ssim_loss(x, slightly)) < np.asarray(ssim_loss(x, badly))).all()


def test_ms_ssim_scales_adapt_to_patch_size():
    assert ms_ssim_scales(128) == 4  # 128, 64, 32, 16 (8 < 11)
    assert ms_ssim_scales(256) == 5
    assert ms_ssim_scales(32) == 2


def test_colour_is_per_channel_and_gray_conversion():
    x = RNG.random((1, 32, 32, 3))
    y = np.clip(x + 0.1 * RNG.standard_normal(x.shape), 0, 1)
    per_channel = np.asarray(ssim_map(x, y))
    for c in range(3):
        np.testing.assert_allclose(per_channel[..., c], np.asarray(ssim_map(x[..., c:c + 1], y[..., c:c + 1]))[..., 0],
                                   atol=1e-9)
    gray = np.asarray(rgb_to_gray(x))
    np.testing.assert_allclose(gray[..., 0], x @ np.array([0.299, 0.587, 0.114]), atol=1e-9)


def test_bad_shape_is_reported():
    with pytest.raises(ValueError, match="N, H, W, C"):
        ssim_map(np.zeros((8, 8)), np.zeros((8, 8)))
