"""Structural similarity (SSIM) maps, their components, MS-SSIM and the SSIM losses.

All functions take image batches shaped ``(N, H, W, C)`` with values in
``[0, data_range]`` and are written against ``keras.ops`` only, so they run on
every Keras backend and can be used as training losses.

SSIM compares two patches through three terms (paper eqs. 5-7), each computed
from local statistics in a ``window_size`` x ``window_size`` window around every
pixel:

* luminance ``l = (2 mu_x mu_y + c1) / (mu_x^2 + mu_y^2 + c1)``
* contrast  ``c = (2 s_x s_y + c2) / (s_x^2 + s_y^2 + c2)``
* structure ``s = (s_xy + c3) / (s_x s_y + c3)``, with ``c3 = c2 / 2``

and ``SSIM = l^alpha * c^beta * s^gamma``; with ``alpha = beta = gamma = 1`` this is
the usual ``(2 mu_x mu_y + c1)(2 s_xy + c2) / ((mu_x^2 + mu_y^2 + c1)(s_x^2 + s_y^2 + c2))``.

The window's kind is ``window="uniform"`` (every pixel of the K x K window weighs
1/K², scikit-image's default) or ``window="gaussian"`` (K taps of a Gaussian of
standard deviation ``sigma``, Wang et al.'s choice and TensorFlow's).  The paper
says only "K = 11"; this study uses the uniform window by default because the
paper's Table II varies with K beyond 11, which a sigma-1.5 Gaussian (its weights
fall below 1e-4 beyond a radius of 5 px) could not do, and because it separates
defects better on NanoTWICE (evidence in notebook 02).

The constants are ``c1 = (k1 L)^2`` and ``c2 = (k2 L)^2`` with Wang et al.'s ``k1 = 0.01``, ``k2 = 0.03``
(:data:`SSIM_CONSTANTS` ``"standard"``); the paper's section 3.1.4 writes "c1 = 0.01 and c2 = 0.03", which
``"literal"`` takes as written (``k1 = 0.1``, ``k2 = 0.03^0.5``).

Borders are handled by mirror padding (``scipy.ndimage``'s ``reflect`` mode), so
the map has the input's spatial size and equals scikit-image's ``full=True`` map.

Colour rule: every function here treats channels independently and returns one
map per channel; the losses average over channels.  To compare colour images
on luminance only, convert both with :func:`rgb_to_gray` first (the MVTec AD
residual ``ssim_l1`` in :mod:`ssimlib.inference` does this).

Precision: the local (co)variances are formed as ``E[xy] - E[x]E[y]`` after
subtracting each image's mean.  In float32 (the training dtype; float16 and
bfloat16 input is promoted to it) this cancellation leaves errors of up to about
3e-4 in the SSIM of very flat regions; float64 input is computed in float64 and
matches scikit-image to about 1e-12.  The evaluation code therefore passes
float64 (JAX honours that only with ``jax_enable_x64``; otherwise it computes in
float32 without saying so).
"""

import keras
import numpy as np
from keras import ops

# Wang, Simoncelli & Bovik (2003), weights of the five MS-SSIM scales.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


WINDOWS = ("uniform", "gaussian")
DEFAULT_WINDOW = "uniform"
DEFAULT_WINDOW_SIZE = 11  # the paper's K
# (k1, k2) by how the paper's "c1 = 0.01 and c2 = 0.03" is read (module docstring); "standard" everywhere but one
# arm of the crop-protocol campaign.
SSIM_CONSTANTS = {"standard": (0.01, 0.03), "literal": (0.1, 0.03**0.5)}
STANDARD = "standard"


def constants_k(constants=STANDARD):
    """``{"k1", "k2"}`` of the SSIM constants' reading ``constants`` (a key of :data:`SSIM_CONSTANTS`)."""
    if constants not in SSIM_CONSTANTS:
        raise ValueError(f"SSIM constants must be one of {', '.join(SSIM_CONSTANTS)}, got {constants!r}")
    return dict(zip(("k1", "k2"), SSIM_CONSTANTS[constants]))


def gaussian_window(window_size=11, sigma=1.5):
    """1-D normalised Gaussian window, NumPy array of ``window_size`` taps."""
    if window_size < 1 or window_size % 2 == 0:
        raise ValueError(f"window_size must be a positive odd integer, got {window_size}")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    r = np.arange(window_size) - window_size // 2
    w = np.exp(-(r**2) / (2.0 * sigma**2))
    return w / w.sum()


def ssim_window(window_size=11, window=DEFAULT_WINDOW, sigma=1.5):
    """1-D weights of the separable SSIM window of kind ``window`` (one of :data:`WINDOWS`)."""
    if window == "gaussian":
        return gaussian_window(window_size, sigma)
    if window != "uniform":
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}, got {window!r}")
    if window_size < 1 or window_size % 2 == 0:
        raise ValueError(f"window_size must be a positive odd integer, got {window_size}")
    return np.full(window_size, 1.0 / window_size)


def rgb_to_gray(x):
    """ITU-R BT.601 luma of an ``(N, H, W, 3)`` batch, shape ``(N, H, W, 1)``."""
    weights = ops.convert_to_tensor(np.array([0.299, 0.587, 0.114]), dtype=x.dtype)
    return ops.sum(x * weights, axis=-1, keepdims=True)


def _compute_dtype(x):
    dtype = keras.backend.standardize_dtype(x.dtype)
    return "float64" if dtype == "float64" else "float32"


def _reflect_pad(x, pad, axis):
    """Mirror-pad ``x`` by ``pad`` along ``axis`` (edge pixel repeated, as scipy's 'reflect')."""
    size = x.shape[axis]
    if pad > size:
        raise ValueError(f"window radius {pad} exceeds the image size {size} along axis {axis}")
    # Basic slicing + flip: cheaper than a gather on TensorFlow and valid on every backend
    # (torch has no negative-step slices, keras.ops.pad's "symmetric" mode no torch version).
    index = [slice(None)] * len(x.shape)
    index[axis] = slice(0, pad)
    head = ops.flip(x[tuple(index)], axis=axis)
    index[axis] = slice(size - pad, size)
    tail = ops.flip(x[tuple(index)], axis=axis)
    return ops.concatenate([head, x, tail], axis=axis)


def _window_filter(x, window):
    """Separable filter of an ``(N, H, W, C)`` tensor with the 1-D weights ``window``, same size output."""
    channels = x.shape[-1]
    pad = len(window) // 2
    w = ops.convert_to_tensor(window, dtype=x.dtype)
    kernel_v = ops.tile(ops.reshape(w, (-1, 1, 1, 1)), (1, 1, channels, 1))
    kernel_h = ops.tile(ops.reshape(w, (1, -1, 1, 1)), (1, 1, channels, 1))
    x = ops.depthwise_conv(_reflect_pad(x, pad, axis=1), kernel_v, padding="valid")
    return ops.depthwise_conv(_reflect_pad(x, pad, axis=2), kernel_h, padding="valid")


def _local_statistics(x, y, window):
    """Local means, variances (clamped at 0) and covariance of two batches."""
    # Removing each image's mean first keeps E[x^2] - E[x]^2 accurate in float32.
    offset = ops.mean(ops.concatenate([x, y], axis=-1), axis=(1, 2, 3), keepdims=True)
    x = x - offset
    y = y - offset
    # One blur of the five maps stacked along channels: 2 paddings and 2 convolutions
    # instead of 10 and 10 (about 2x faster on a CPU, forward and backward).
    c = x.shape[-1]
    blurred = _window_filter(ops.concatenate([x, y, x * x, y * y, x * y], axis=-1), window)
    mu_x, mu_y, mean_xx, mean_yy, mean_xy = (blurred[..., i * c : (i + 1) * c] for i in range(5))
    var_x = ops.maximum(mean_xx - mu_x * mu_x, 0.0)
    var_y = ops.maximum(mean_yy - mu_y * mu_y, 0.0)
    cov = mean_xy - mu_x * mu_y
    return mu_x + offset, mu_y + offset, var_x, var_y, cov


def _signed_power(v, exponent):
    if exponent == 1:
        return v
    return ops.sign(v) * ops.power(ops.abs(v), exponent)


def ssim_map(
    x,
    y,
    window_size=11,
    window=DEFAULT_WINDOW,
    sigma=1.5,
    k1=0.01,
    k2=0.03,
    data_range=1.0,
    return_components=False,
    alpha=1.0,
    beta=1.0,
    gamma=1.0,
):
    """Per-pixel SSIM of two ``(N, H, W, C)`` batches, same shape as the input.

    With ``return_components=True`` returns ``(ssim, l, c, s)``: the luminance,
    contrast and structure maps of paper eqs. (5)-(7) and their weighted product.
    ``window`` is ``"uniform"`` or ``"gaussian"`` (``sigma`` applies to the latter).
    Values lie in ``[-1, 1]``; constant or empty patches give finite values.
    """
    if len(x.shape) != 4 or len(y.shape) != 4:
        raise ValueError(f"ssim_map expects (N, H, W, C) batches, got shapes {x.shape} and {y.shape}")
    if tuple(x.shape) != tuple(y.shape):
        raise ValueError(f"ssim_map compares batches of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    dtype = _compute_dtype(x)
    x = ops.cast(x, dtype)
    y = ops.cast(y, dtype)
    taps = ssim_window(window_size, window, sigma)
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    mu_x, mu_y, var_x, var_y, cov = _local_statistics(x, y, taps)
    luminance = (2.0 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1)
    standard = alpha == beta == gamma == 1
    if standard and not return_components:
        # c * s with c3 = c2 / 2 simplifies to this; no square roots, safe gradients.
        return luminance * (2.0 * cov + c2) / (var_x + var_y + c2)
    sd_x = ops.sqrt(var_x)
    sd_y = ops.sqrt(var_y)
    c3 = c2 / 2.0
    contrast = (2.0 * sd_x * sd_y + c2) / (var_x + var_y + c2)
    structure = (cov + c3) / (sd_x * sd_y + c3)
    if standard:
        ssim = luminance * (2.0 * cov + c2) / (var_x + var_y + c2)
    else:
        ssim = (
            _signed_power(luminance, alpha)
            * _signed_power(contrast, beta)
            * _signed_power(structure, gamma)
        )
    if return_components:
        return ssim, luminance, contrast, structure
    return ssim


def ssim_loss(x, y, **kwargs):
    """``1 - mean(SSIM)`` per image: shape ``(N,)``.  kwargs go to :func:`ssim_map`."""
    return 1.0 - ops.mean(ssim_map(x, y, **kwargs), axis=(1, 2, 3))


def ms_ssim_scales(size, window_size=11, max_scales=len(MS_SSIM_WEIGHTS)):
    """Number of MS-SSIM scales for a patch of side ``size``: halve while the side stays >= the window."""
    scales = 1
    while scales < max_scales and size // 2**scales >= window_size:
        scales += 1
    return scales


def ms_ssim(x, y, window_size=11, window=DEFAULT_WINDOW, sigma=1.5, k1=0.01, k2=0.03, data_range=1.0):
    """Multi-scale SSIM (Wang et al. 2003) per image, shape ``(N,)``.

    Uses the five published scale weights; small patches use fewer scales
    (see :func:`ms_ssim_scales`) with the weights renormalised to sum to 1.
    Negative contrast-structure terms are clamped at 0 before the fractional power.
    """
    dtype = _compute_dtype(x)
    x = ops.cast(x, dtype)
    y = ops.cast(y, dtype)
    n_scales = ms_ssim_scales(min(x.shape[1], x.shape[2]), window_size)
    weights = np.array(MS_SSIM_WEIGHTS[:n_scales])
    weights = weights / weights.sum()
    taps = ssim_window(window_size, window, sigma)
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    result = 1.0
    for scale, weight in enumerate(weights):
        mu_x, mu_y, var_x, var_y, cov = _local_statistics(x, y, taps)
        cs = ops.mean((2.0 * cov + c2) / (var_x + var_y + c2), axis=(1, 2, 3))
        if scale == n_scales - 1:
            lum = (2.0 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1)
            cs = ops.mean(lum * (2.0 * cov + c2) / (var_x + var_y + c2), axis=(1, 2, 3))
        else:
            x = ops.average_pool(x, 2, strides=2, padding="valid")
            y = ops.average_pool(y, 2, strides=2, padding="valid")
        # Tiny floor: the gradient of v**w is infinite at v = 0.
        result = result * ops.power(ops.maximum(cs, 1e-6), float(weight))
    return result


def ms_ssim_loss(x, y, **kwargs):
    """``1 - MS-SSIM`` per image, shape ``(N,)``."""
    return 1.0 - ms_ssim(x, y, **kwargs)

