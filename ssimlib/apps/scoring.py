"""A model from ``ssimlib train`` applied to one image of any size: its anomaly map, score and segmentation.

An image smaller than the model's patch on a side is padded by reflection
(centred) to the patch, its map computed as any other's and cropped back to the
image, with one warning; nothing is skipped for its size.
"""

import warnings
from dataclasses import dataclass, field

import numpy as np
from skimage.color import gray2rgb, rgb2gray

from ssimlib.experiments.mvtec import category_maps
from ssimlib.experiments.presets import CategoryPreset
from ssimlib.thresholds import label_regions


def pad_to_patch(image, patch_size):
    """``image`` ``(H, W, C)`` reflected out to at least ``patch_size`` px per side, and the slices of the original.

    Returns ``(padded (H', W', C), (rows, cols))``; ``padded[rows, cols]`` is ``image``.
    A side of one pixel is repeated (there is nothing to reflect).
    """
    h, w = image.shape[:2]
    ph, pw = max(0, patch_size - h), max(0, patch_size - w)
    pads = ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0))
    padded = np.pad(image, pads, mode="reflect" if min(h, w) > 1 else "edge")
    return padded, (slice(ph // 2, ph // 2 + h), slice(pw // 2, pw // 2 + w))


def as_model_channels(image, channels, path, warn=True):
    """``image`` ``(H, W, C)`` with ``channels`` channels (converted, with a warning unless ``warn`` is False: a
    model trained with ``--gray`` or ``--color`` converted its own images so)."""
    if image.shape[-1] == channels:
        return image
    kinds = {1: "gray", 3: "colour"}
    if warn:
        warnings.warn(f"{path}: {kinds[image.shape[-1]]} image converted to {kinds[channels]} for a {kinds[channels]} "
                      f"({channels}-channel) model", stacklevel=3)
    if channels == 1:
        return rgb2gray(image).astype(np.float32)[..., None]
    return gray2rgb(image[..., 0]).astype(np.float32)


def anomaly_map(network, image, preset, stride, path, ssim=None):
    """Post-processed anomaly map ``(H, W)`` of ``image`` ``(H, W, C)`` in ``[0, 1]``, of any size.

    Padded to the patch (:func:`pad_to_patch`, with a warning naming ``path``) when smaller.  ``ssim``: the SSIM
    residual's ``window_size``, ``window`` and ``constants`` where they are not the defaults.
    """
    h, w = image.shape[:2]
    p = network.patch_size
    crop = (slice(None), slice(None))
    if min(h, w) < p:
        warnings.warn(f"{path}: image is {w}x{h}, smaller than the {p}x{p} patch: padded (reflect) to it, "
                      "its map cropped back", stacklevel=3)
        image, crop = pad_to_patch(image, p)
    (result,), _ = category_maps(network, [image], preset, stride, **(ssim or {}))
    return result[crop]


def images_record(images):
    """What a model's training images ``(H, W, C)`` in ``[0, 1]`` were like, for :func:`warn_unlike_training`:
    ``{"height": [min, max], "width": [min, max], "mean": [min, max]}`` (px; mean gray value)."""
    means = [float(image.mean()) for image in images]
    return {"height": [min(i.shape[0] for i in images), max(i.shape[0] for i in images)],
            "width": [min(i.shape[1] for i in images), max(i.shape[1] for i in images)],
            "mean": [min(means), max(means)]}


MEAN_SLACK = 0.15  # an image whose mean gray value lies this far outside the training images' is warned of
MARKED_SHARE = 0.5  # an image whose map lies above the threshold over more of it than this is warned of


def warn_unlike_training(image, path, seen):
    """Warn when ``image`` ``(H, W, C)`` is far darker or brighter (:data:`MEAN_SLACK`) than the training images
    ``seen`` (:func:`images_record`; None: nothing is known).  Sizes are recorded, not compared: a smaller crop at
    the same scale is as good an input as a whole frame."""
    if not seen:
        return
    low, high = seen["mean"]
    mean = float(image.mean())
    if not low - MEAN_SLACK <= mean <= high + MEAN_SLACK:
        warnings.warn(f"{path}: mean gray value {mean:.2f}, outside the model's training images' ({low:.2f}-{high:.2f})"
                      ": another exposure or bit depth? the maps may mark it all", stacklevel=3)


def segmentation(anomaly_map, threshold, min_area):
    """Boolean ``(H, W)``: pixels above ``threshold`` in 8-connected regions of at least ``min_area`` px."""
    regions, count = label_regions(anomaly_map > threshold)
    keep = np.bincount(regions.ravel(), minlength=count + 1) >= min_area
    keep[0] = False
    return keep[regions]


@dataclass
class Detector:
    """A trained network with the detection settings of its manifest (threshold in map units, areas in pixels)
    and the sha256 of its weights file; ``converts_channels``: trained with ``--gray`` or ``--color``, it converts
    images of the other kind as it converted its training images, without a warning; ``ssim``: the SSIM window and
    constants it was trained with (``window_size``, ``window``, ``constants``), which its SSIM residual uses;
    ``seen``: its training images' :func:`images_record` (None for models that kept none)."""

    network: object
    preset: CategoryPreset
    threshold: float
    min_area: int
    stride: int
    weights_sha256: str
    converts_channels: bool = False
    ssim: dict = field(default_factory=dict)
    seen: dict = None

    def as_model_channels(self, image, path):
        """:func:`as_model_channels` for this model."""
        return as_model_channels(image, self.network.channels, path, warn=not self.converts_channels)

    def anomaly_map(self, image, path):
        """:func:`anomaly_map` of ``image`` (any size and channel count) with this model."""
        image = self.as_model_channels(image, path)
        warn_unlike_training(image, path, self.seen)
        if image.shape[0] * image.shape[1] < self.min_area:
            warnings.warn(f"{path}: image of {image.shape[0] * image.shape[1]} pixels, fewer than the smallest defect "
                          f"area ({self.min_area} px): no defect can be found in it", stacklevel=2)
        result = anomaly_map(self.network, image, self.preset, self.stride, path, self.ssim)
        self.warn_if_marked(result, path)
        return result

    def warn_if_marked(self, anomaly_map, path):
        """Warn when ``anomaly_map`` lies above the threshold over more than :data:`MARKED_SHARE` of it."""
        marked = float(np.mean(anomaly_map > self.threshold))
        if marked > MARKED_SHARE:
            warnings.warn(f"{path}: {marked:.0%} of its pixels lie above the threshold: unlike the model's training "
                          "images as a whole (another magnification, focus or lighting?) more than a defect?",
                          stacklevel=3)

    def segmentation(self, anomaly_map):
        """:func:`segmentation` at this model's threshold and smallest defect area."""
        return segmentation(anomaly_map, self.threshold, self.min_area)
