"""Sliding-window reconstruction of whole images and residual (anomaly) maps.

The paper evaluates a patch model on large images by striding over them
(stride 30 for 128x128 patches), reconstructing every patch and averaging
the overlapping reconstructions per pixel; the residual between the image and
that reconstruction is the anomaly map.
"""

import numpy as np
from keras import ops

from ssimlib.ssim import DEFAULT_WINDOW, STANDARD, constants_k, rgb_to_gray, ssim_map, ssim_window

RESIDUAL_KINDS = ("ssim", "l2", "ssim_l1")
# An SSIM residual of a larger image is computed in strips of rows of about this many pixels (float64 SSIM holds
# some twenty image-sized arrays at once: 1.7 GB for 3000x3000); the strips overlap by the window's radius.
SSIM_STRIP_PIXELS = 2**20
PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16"}  # name -> Keras dtype policy


def with_precision(model, precision="float32"):
    """``model`` computing in ``precision`` (a key of :data:`PRECISIONS`), for inference.

    ``"bfloat16"`` returns a copy whose layers compute in bfloat16 (weights kept in
    float32, outputs cast back).  It changed the committed NanoTWICE SSIM-AE's pixel
    AUROC by 0.0001 (``bench/README.md``); it is faster only where the hardware
    computes bfloat16 natively (AVX512_BF16 or AMX CPUs, GPUs) and several times
    slower on an AVX2-only CPU.  ``"float32"`` returns ``model`` itself.
    """
    import keras

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "float32":
        return model
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(PRECISIONS[precision])
    try:
        copy = model.__class__.from_config(model.get_config())
    finally:
        keras.config.set_dtype_policy(previous)
    copy(np.zeros((1, model.patch_size, model.patch_size, model.channels), np.float32))
    copy.set_weights(model.get_weights())
    return copy


def window_starts(length, patch_size, stride):
    """Start offsets covering ``[0, length)``: every ``stride``, plus a last window flush with the end."""
    if length < patch_size:
        raise ValueError(f"image side {length} is smaller than the patch size {patch_size}")
    starts = list(range(0, length - patch_size + 1, stride))
    if starts[-1] != length - patch_size:
        starts.append(length - patch_size)
    return np.array(starts)


def _as_hwc(image):
    image = np.asarray(image, np.float32)
    return image[..., None] if image.ndim == 2 else image


def extract_patches(image, patch_size, stride):
    """All sliding-window patches of ``(H, W, C)``: ``(ny * nx, p, p, C)`` and the starts ``(ys, xs)``."""
    image = _as_hwc(image)
    ys = window_starts(image.shape[0], patch_size, stride)
    xs = window_starts(image.shape[1], patch_size, stride)
    windows = np.lib.stride_tricks.sliding_window_view(image, (patch_size, patch_size), axis=(0, 1))
    patches = windows[ys[:, None], xs[None, :]]  # (ny, nx, C, p, p)
    patches = np.moveaxis(patches, 2, -1).reshape(-1, patch_size, patch_size, image.shape[-1])
    return patches, (ys, xs)


def overlap_average(patches, starts, shape):
    """Average patches ``(ny * nx, p, p, C)`` placed at ``starts`` into an image of ``shape`` ``(H, W, C)``."""
    ys, xs = starts
    p = patches.shape[1]
    grid = patches.reshape(len(ys), len(xs), p, p, -1)
    rows = np.zeros((len(ys), p, shape[1], shape[2]), np.float64)
    for j, x in enumerate(xs):  # one vectorised add per grid column ...
        rows[:, :, x : x + p] += grid[:, j]
    total = np.zeros(shape, np.float64)
    for i, y in enumerate(ys):  # ... and per grid row
        total[y : y + p] += rows[i]
    return _divide_by_coverage(total, starts, p)


def _divide_by_coverage(total, starts, p):
    """``total`` ``(H, W, C)``, the sums of patches of side ``p`` placed at ``starts``, divided by their coverage."""
    ys, xs = starts
    count_y = np.zeros(total.shape[0])
    count_x = np.zeros(total.shape[1])
    for y in ys:
        count_y[y : y + p] += 1
    for x in xs:
        count_x[x : x + p] += 1
    return (total / np.outer(count_y, count_x)[..., None]).astype(np.float32)


def reconstruct_image(model, image, patch_size=128, stride=30, batch_size=256, predict=None):
    """Reconstruct an image of any size from overlapping patch reconstructions.

    ``image`` is ``(H, W)`` or ``(H, W, C)`` in ``[0, 1]``; the result has the same
    shape.  Patches go through ``predict`` (default ``model.predict_on_batch``) in
    batches of ``batch_size``, in row-major order; overlapping outputs are averaged per
    pixel (the sums of :func:`overlap_average`, in its order).  Only one batch and one
    row of the patch grid are held at a time, so memory does not grow with the number of
    patches.  An image with non-finite pixels, or another channel count than
    ``model.channels``, is refused.
    """
    original_ndim = np.ndim(image)
    image = _as_hwc(image)
    bad = int(np.size(image) - np.count_nonzero(np.isfinite(image)))
    if bad:
        raise ValueError(f"image has {bad} NaN or infinite pixel values; expected finite values in [0, 1]")
    channels = getattr(model, "channels", image.shape[-1])
    if image.shape[-1] != channels:
        raise ValueError(
            f"image has {image.shape[-1]} channel(s) but the model expects {channels}; "
            f"convert it first ({'ssimlib.ssim.rgb_to_gray or ' if channels == 1 else ''}read it with gray=...)"
        )
    predict = predict or model.predict_on_batch
    p = patch_size
    ys, xs = window_starts(image.shape[0], p, stride), window_starts(image.shape[1], p, stride)
    if max(np.diff(ys, prepend=0).max(), np.diff(xs, prepend=0).max()) > p:
        raise ValueError(f"stride {stride} is larger than the patch size {p}: the pixels between the windows of "
                         f"this {image.shape[0]}x{image.shape[1]} image would have no reconstruction")
    windows = np.lib.stride_tricks.sliding_window_view(image, (p, p), axis=(0, 1))  # (H-p+1, W-p+1, C, p, p), a view
    total = np.zeros(image.shape, np.float64)
    row = np.zeros((p, *image.shape[1:]), np.float64)  # the grid row being summed
    for first in range(0, len(ys) * len(xs), batch_size):
        rows, cols = np.divmod(np.arange(first, min(first + batch_size, len(ys) * len(xs))), len(xs))
        outputs = np.asarray(predict(np.moveaxis(windows[ys[rows], xs[cols]], 1, -1)))
        for output, r, c in zip(outputs, rows, cols):
            row[:, xs[c] : xs[c] + p] += output
            if c == len(xs) - 1:  # the row is complete
                total[ys[r] : ys[r] + p] += row
                row[:] = 0
    result = _divide_by_coverage(total, (ys, xs), p)
    return result[..., 0] if original_ndim == 2 else result


def residual_map(
    image, reconstruction, kind="ssim", window_size=11, window=DEFAULT_WINDOW, sigma=1.5, components="lcs", alpha=0.84,
    constants=STANDARD,
):
    """Per-pixel anomaly map ``(H, W)`` (float32) of an image and its reconstruction.

    * ``"l2"``: squared difference, mean over channels.
    * ``"ssim"``: ``1 - SSIM`` with a ``window`` window (``"uniform"`` or ``"gaussian"``) of side
      ``window_size``, mean over channels; ``components`` picks which of
      luminance ``l``, contrast ``c`` and structure ``s`` enter the product (``"lcs"``
      is plain SSIM, ``"cs"`` drops luminance, ...), its constants read as ``constants`` says
      (:data:`ssimlib.ssim.SSIM_CONSTANTS`).
    * ``"ssim_l1"``: for colour defects, ``alpha * (1 - SSIM)`` on the gray image plus
      ``(1 - alpha) * |x - x_hat|`` averaged over the colour channels.

    SSIM is computed in float64 (see :mod:`ssimlib.ssim` on precision), for an image of more than
    :data:`SSIM_STRIP_PIXELS` in overlapping strips of rows (the same map up to float64 rounding).
    """
    x = _as_hwc(image).astype(np.float64)[None]
    y = _as_hwc(reconstruction).astype(np.float64)[None]
    if x.shape != y.shape:
        raise ValueError(f"image {x.shape[1:]} and reconstruction {y.shape[1:]} differ in shape")
    if kind == "l2":
        return np.mean((x - y) ** 2, axis=-1)[0].astype(np.float32)
    if kind not in ("ssim", "ssim_l1"):
        raise ValueError(f"kind must be one of {RESIDUAL_KINDS}, got {kind!r}")
    if kind == "ssim_l1" and x.shape[-1] == 3:
        x_ssim, y_ssim = rgb_to_gray(ops.convert_to_tensor(x)), rgb_to_gray(ops.convert_to_tensor(y))
    else:
        x_ssim, y_ssim = x, y
    if not components or set(components) - set("lcs"):
        raise ValueError(f"components must be letters from 'lcs', got {components!r}")

    k = constants_k(constants)

    def similarity(a, b):  # (1, h, W, C) -> the product of the components, as a NumPy array
        if components == "lcs":
            return np.asarray(ssim_map(a, b, window_size=window_size, window=window, sigma=sigma, **k))
        _, lum, con, struct = ssim_map(a, b, window_size=window_size, window=window, sigma=sigma,
                                       return_components=True, **k)
        maps = {"l": lum, "c": con, "s": struct}
        product = 1.0
        for letter in components:
            product = product * np.asarray(maps[letter])
        return product

    height, width = x.shape[1:3]
    halo = len(ssim_window(window_size, window, sigma)) // 2
    rows = max(SSIM_STRIP_PIXELS // width, 4 * halo + 1)
    strips = []
    for top in range(0, height, rows):  # one strip for an image up to SSIM_STRIP_PIXELS
        low, high = max(0, top - halo), min(height, top + rows + halo)
        strip = similarity(x_ssim[:, low:high], y_ssim[:, low:high])
        strips.append(strip[:, top - low : top - low + min(rows, height - top)])
    residual = 1.0 - np.mean(np.concatenate(strips, axis=1), axis=-1)
    if kind == "ssim_l1":
        residual = alpha * residual + (1.0 - alpha) * np.mean(np.abs(x - y), axis=-1)
    return residual[0].astype(np.float32)


def vae_residual_map(vae, image, n_samples=6, patch_size=128, stride=30, batch_size=256):
    """VAE anomaly map ``(H, W)``: mean over ``n_samples`` decoded samples of ``Q(z|x)`` of the squared error.

    With a fixed-variance Gaussian decoder, the negative log reconstruction
    probability (An & Cho 2015) is an increasing affine function of this mean.
    """
    image = _as_hwc(image)
    errors = [
        residual_map(
            image,
            reconstruct_image(vae, image, patch_size, stride, batch_size, predict=vae.sample_reconstruction),
            kind="l2",
        )
        for _ in range(n_samples)
    ]
    return np.mean(errors, axis=0)
