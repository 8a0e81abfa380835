"""Image files and what they hold: which files are images, reading images and masks as arrays in ``[0, 1]``, and
sampling training patches.  Dataset layouts on disk (NanoTWICE, MVTec AD, a folder of your own) are read by
:mod:`ssimlib.datasets`.

Images are float32 ``(H, W, C)`` (C = 1 for gray, 3 for colour), masks boolean ``(H, W)``.
Bad input raises :class:`DatasetError` naming the file and what was expected.
"""

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.ndimage
import skimage.io
import skimage.transform
from skimage.color import rgb2gray

from ssimlib import image_formats
from ssimlib.image_formats import JPEG_SUFFIXES

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", *JPEG_SUFFIXES, ".bmp")
# Image formats this does not read (animated or lossy-only formats, camera raw, vector): named when skipped.
OTHER_IMAGE_SUFFIXES = (".gif", ".webp", ".avif", ".heic", ".heif", ".jp2", ".j2k", ".jxl", ".pgm", ".ppm", ".pbm",
                        ".pnm", ".tga", ".ico", ".svg", ".dng", ".raw", ".cr2", ".nef", ".arw")
MASK_NAME = re.compile(r"[-_. ]mask$", re.IGNORECASE)  # how the stem of a mask file ends
FLOAT_SLACK = 1e-3  # float pixel values this far outside [0, 1] are clipped (rounding); further is refused
LABEL_LEVELS = 8  # a mask of 0 and at most 7 other gray values is a label image: every value but 0 marks a defect
MOSTLY_DEFECT = 0.5  # a mask marking more of its image than this is warned of (inverted?)
PAINT_SPREAD = 2 / 255  # the gray values of a mask's paint spread at most this far: paint of one colour
MASK_EXTREMES = 0.9  # share of a mask's pixels that lie near its darkest or brightest value, at least
# a "mask" with fewer of its pixels there (photographs 0.05-0.6, soft-edged masks 0.75 and more) and more than
# NO_MASK_MIDDLE in the middle third of its range (photographs 0.2-0.5) is warned of as a photograph
NO_MASK_EXTREMES = 0.5
NO_MASK_MIDDLE = 0.15


def is_image_file(path):
    """Whether a file found in a folder is taken for an image: an image suffix, and not hidden (``.name``: also
    the ``._name`` files macOS leaves on foreign drives, and partial files being written)."""
    path = Path(path)
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()


def image_files(folder):
    """The image files in ``folder`` (not below it), sorted; warns of files there that look like images but are
    not read (:data:`OTHER_IMAGE_SUFFIXES`, links that reach no file)."""
    entries = list(Path(folder).iterdir())
    warn_unread(folder, entries)
    return sorted(p for p in entries if is_image_file(p))


def warn_unread(where, paths, stacklevel=3):
    """One warning naming the files of ``paths`` that look like images but are not read, if any."""
    paths = [p for p in map(Path, paths) if not p.name.startswith(".")]
    other = [p.name for p in paths if p.suffix.lower() in OTHER_IMAGE_SUFFIXES]
    broken = [p.name for p in paths if p.suffix.lower() in IMAGE_SUFFIXES and p.is_symlink() and not p.exists()]
    gone = [p.name for p in paths if not p.suffix and p.is_symlink() and not p.exists()]  # a folder's link, maybe
    parts = [f"{len(names)} {what} ({', '.join(sorted(names)[:3])}{', ...' if len(names) > 3 else ''})"
             for names, what in ((other, "image(s) of a format not read, convert them to PNG or TIFF"),
                                 (broken, "link(s) that reach no file (a target gone, or a loop)"),
                                 (gone, "link(s) that reach no folder or file (a drive not mounted, a target gone, "
                                        "or a loop): not searched")) if names]
    if parts:
        warnings.warn(f"{where}: skipped {'; '.join(parts)}", stacklevel=stacklevel)


def mask_name_end(path):
    """Where the mask ending of a file's stem begins (``a_mask.png``, ``a-mask.png``, ``a_MASK.png``: 1), else None."""
    found = MASK_NAME.search(Path(path).stem)
    return found.start() if found else None


class DatasetError(ValueError):
    """A dataset file or folder is missing or not what was expected."""


def not_a_folder(path):
    """Why ``path`` is not a folder, for the end of an error line: ``"it does not exist"`` or ``"it is a file"``."""
    return "it is a file" if Path(path).exists() else "it does not exist"


def resize_square(array, size, order):
    """``array`` ``(H, W[, C])`` resized to ``size x size`` (``order`` 0: nearest, for masks; 1: bilinear,
    anti-aliased); ``size=None`` returns it as it is."""
    if size is None:
        return array
    return skimage.transform.resize(
        array, (size, size), order=order, preserve_range=True, anti_aliasing=order > 0
    ).astype(array.dtype)


def warn_stretched(path, shape, size):
    """Warn where an image of ``(H, W, ...)`` ``shape`` that is not square is resized to ``size x size`` (its
    defects stretched, its maps of another aspect than the file)."""
    if size is not None and shape[0] != shape[1]:
        warnings.warn(f"{path}: {shape[1]}x{shape[0]} px, not square, stretched to {size}x{size}; crop it square "
                      "for undistorted maps", stacklevel=3)


def _warn_if_dim(raw, path):
    """Warn when integer pixels of more than 8 bits reach less than a quarter of their type's range (8-, 10-, 12- or
    14-bit data stored in 16 bits reads dark: divided by 65535, not by its own maximum)."""
    if raw.dtype.kind in "iu" and raw.dtype.itemsize > 1 and raw.size:
        top, full = int(raw.max()), np.iinfo(raw.dtype).max
        if 0 < top < full / 4:
            warnings.warn(f"{path}: {raw.dtype.itemsize * 8}-bit pixels reach only {top} of {full} (data of fewer "
                          "bits?); read as they are, so the image is dark: train and detect on images of the same "
                          "scaling", stacklevel=3)


def _unit_range(raw, path):
    """Pixel values as float32 in ``[0, 1]``: integers over their type's maximum, floats as they are; a
    :class:`DatasetError` for values that are not finite, negative integers, or floats outside ``[0, 1]``."""
    if raw.dtype == bool:
        return raw.astype(np.float32)
    if np.issubdtype(raw.dtype, np.integer):
        if np.issubdtype(raw.dtype, np.signedinteger) and raw.size and raw.min() < 0:
            raise DatasetError(f"{path}: signed {raw.dtype} pixels with negative values (down to {raw.min()}); "
                               "expected values from 0 up (save the image as unsigned 8 or 16 bit)")
        return raw.astype(np.float32) / np.iinfo(raw.dtype).max
    if not np.issubdtype(raw.dtype, np.floating):
        raise DatasetError(f"{path}: pixel type {raw.dtype} is not an image type")
    image = raw.astype(np.float32)
    bad = int(np.count_nonzero(~np.isfinite(image)))
    if bad:
        raise DatasetError(f"{path}: {bad} pixels are NaN or infinite; expected finite values in [0, 1]")
    if image.size and (image.min() < -FLOAT_SLACK or image.max() > 1 + FLOAT_SLACK):
        raise DatasetError(f"{path}: float pixel values from {image.min():g} to {image.max():g}; expected values "
                           "in [0, 1] (scale it, or save it as 8 or 16 bit integers)")
    return np.clip(image, 0.0, 1.0)


def _read_pixels(path, warn_dim):
    """The pixels of the image file at ``path`` as float32 ``(H, W[, C])`` in ``[0, 1]``, alpha kept, turned as its
    EXIF / TIFF orientation says; ``warn_dim`` as in :func:`read_image`."""
    path = Path(path)
    try:
        raw = image_formats.read_raw(path)
    except image_formats.FormatError as error:
        raise DatasetError(f"{path}: {error}") from None
    image = _unit_range(raw, path)
    if warn_dim:
        _warn_if_dim(raw, path)
    if image.ndim == 2:
        return image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 2, 3, 4):
        raise DatasetError(f"{path}: expected a gray or RGB image (alpha allowed), got array of shape {raw.shape}")
    return image


def read_image(path, gray=None, size=None, warn_dim=True):
    """Read one image as float32 ``(H, W, C)`` in ``[0, 1]``, turned as its EXIF / TIFF orientation says.

    ``gray=True`` converts colour to luminance, ``gray=False`` repeats a gray
    image to 3 channels, ``None`` keeps what the file has (alpha is dropped).
    ``size`` resizes to ``size x size`` (anti-aliased; a stretched image is warned of).  ``warn_dim`` warns of 16-bit
    data that uses a small part of its range.
    """
    image = _read_pixels(path, warn_dim)
    image = image[..., :3] if image.shape[-1] == 4 else image[..., :1] if image.shape[-1] == 2 else image  # no alpha
    if gray is True and image.shape[-1] == 3:
        image = rgb2gray(image).astype(np.float32)[..., None]
    elif gray is False and image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    warn_stretched(path, image.shape, size)
    return resize_square(image, size, order=1)


def is_lossy(path):
    """Whether the image file at ``path`` is stored lossily (JPEG)."""
    return Path(path).suffix.lower() in JPEG_SUFFIXES


def extremes_share(values):
    """The share of the gray ``values`` that lie within a tenth of their range of the darkest or the brightest: at
    least :data:`MASK_EXTREMES` in a mask, soft edges and all; far less in a photograph."""
    low, high = float(values.min()), float(values.max())
    near = 0.1 * (high - low)
    return float(np.mean((values <= low + near) | (values >= high - near)))


def _photograph_like(values):
    """Why the gray ``values`` (of many levels) of a mask file look like a photograph's, or None: fewer than
    :data:`NO_MASK_EXTREMES` of them near their darkest or brightest (:func:`extremes_share`) and more than
    :data:`NO_MASK_MIDDLE` in the middle third of their range (soft edges put few of a mask's pixels there)."""
    share = extremes_share(values)
    low, high = float(values.min()), float(values.max())
    middle = float(np.mean((values > low + (high - low) / 3) & (values < high - (high - low) / 3)))
    if share < NO_MASK_EXTREMES and middle > NO_MASK_MIDDLE:
        return f"only {share:.0%} of its pixels near its darkest or brightest, {middle:.0%} in between"
    return None


def mask_values(path):
    """The gray values ``(H, W)`` in ``[0, 1]`` of the mask file at ``path``: its brightest channel (a defect painted
    red on black, soft edges and all, marks as one painted white; a gray mask's value), and where its alpha
    varies, what an editor's layer drawn on a transparent background marks: the alpha alone when the paint (the
    pixels not fully transparent) is of one colour, whatever lies under the transparent ones, else the colour laid
    over black.  An alpha that is the same everywhere (all opaque, or all 0) is left out."""
    pixels = _read_pixels(path, warn_dim=False)  # 16-bit masks of 0 and 1 are meant, not dim
    colour = pixels[..., :-1] if pixels.shape[-1] in (2, 4) else pixels
    gray = colour.max(axis=-1).astype(np.float32)
    if colour is pixels or pixels[..., -1].min() == pixels[..., -1].max():
        return gray
    alpha = pixels[..., -1]
    paint = gray[alpha > 0]
    return alpha if paint.max() - paint.min() <= PAINT_SPREAD else gray * alpha


def read_mask(path, shape=None, image_path=None):
    """Read a ground-truth mask as bool ``(H, W)``: in a label image (0 and at most :data:`LABEL_LEVELS` - 1 other
    values: 0/255, 0/1, classes 0/1/2 or 0/100/200; or more in regions of one value each, :func:`_label_like`:
    classes or instances 1, 2, ... 12), every pixel that is not 0; in a mask of more gray values (soft
    edges) or a lossy one (JPEG, whose noise leaves low values on black), the pixels above one half.  Values are
    :func:`mask_values`.  Its size must equal ``shape``, the ``(H, W)`` of its image (``image_path``, named in the
    error), where given; warns of a label image with values on both sides of half and of a mostly-defect mask;
    refuses a mask of soft edges or a JPEG that marks nothing but holds values above 0 (a 0/1 mask saved lossily,
    8-bit values in a 16-bit file: its defect would be lost); warns of one of many gray values that looks like a
    photograph (:func:`_photograph_like`: a copy of its image, an overlay), and of an image turned by its orientation
    tag beside a mask that is not (:func:`_turned_apart`, named in the error where the sizes differ)."""
    values = mask_values(path)
    levels = np.unique(values)
    why = None
    lossy = is_lossy(path)
    hard = not lossy and levels[0] == 0  # a label image may be: lossless, its background 0
    label = _label_like(values) if hard and levels.size > LABEL_LEVELS else ""
    if hard and (levels.size <= LABEL_LEVELS or label):
        mask = values > 0
        classes = levels[1:]
        if label:  # classes or instances 1, 2, ... 12 in regions of their own
            warnings.warn(f"{path}: read as a label image of {classes.size} values ({label}): every value but 0 a "
                          "defect", stacklevel=2)
        elif classes.size >= 2 and classes[0] <= 0.5 < classes[-1]:
            warnings.warn(f"{path}: read as a label image of {classes.size} defect classes (every value but 0 a "
                          "defect); a mask with soft edges that should count from half its maximum needs more than "
                          f"{LABEL_LEVELS} gray values", stacklevel=2)
    else:
        why = _photograph_like(values)
        if why:  # a copy of its image, an overlay: its "defect" is everything above half (a wide feather looks so too)
            warnings.warn(f"{path}: does not look like a mask ({levels.size} gray values; {why}): a copy of its "
                          "image, or an overlay? Read as defect where above half; a mask has defects bright on "
                          "black", stacklevel=2)
        mask = values > 0.5
        if not mask.any() and values.max() > 0:  # its defects too dark to count: it would read as marking nothing
            if lossy:  # 0/1 masks saved as JPEG read as 0 and ~1/255
                raise DatasetError(f"{path}: a JPEG mask that marks nothing, though {np.count_nonzero(values)} of its "
                                   f"pixels are faintly above 0 (up to {values.max() * 255:.0f}/255): a 0/1 mask "
                                   "saved as JPEG? Save masks as PNG, defects 255 (or 1) on 0")
            raise DatasetError(f"{path}: a mask of {levels.size} gray values that marks nothing: its brightest pixels "
                               f"reach {values.max():.1%} of its type's maximum, and a mask of soft edges marks from "
                               "half of it (8-bit values in a 16-bit file? a label image whose regions touch, numbered "
                               "1, 2, ...?); save defects bright (255 in 8 bits) on 0")
    fits = shape is None or mask.shape == tuple(shape)
    turned = _turned_apart(path, image_path, mask.shape if fits else None) if image_path else ""
    if not fits:
        image = f"its image {image_path}" if image_path else "its image"
        raise DatasetError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} but {image} is {shape[1]}x{shape[0]}"
                           + (f" as read, {turned}" if turned else ""))
    if turned:
        warnings.warn(f"{path}: its image {Path(image_path).name} is read {turned}", stacklevel=2)
    if mask.mean() > MOSTLY_DEFECT and not why:  # not "inverted?" where it was said to be no mask
        # of many gray values it may be no mask at all: an overlay on a photograph of high contrast passes
        # _photograph_like (a tester's)
        doubt = "" if levels.size <= LABEL_LEVELS else (
            f", or no mask at all ({levels.size} gray values: a copy of its image, an overlay?)")
        warnings.warn(f"{path}: marks {mask.mean():.0%} of its pixels as defect; a mask marks defects bright (not 0) "
                      f"on black: is it inverted{doubt}?", stacklevel=2)
    return mask


def _label_like(values, flat=0.9, least=4):
    """Why the mask ``values`` ``(H, W)`` of many gray values is a label image (classes, instances numbered 1, 2, ...),
    not one of soft edges, or '': at least ``flat`` of its non-zero pixels lie in 8-connected regions of one value
    each, and its regions of ``least`` pixels or more hold more than :data:`LABEL_LEVELS` - 1 values.  A soft edge
    rings a core in one region of many values, a wide feather too, however large; specks of noise count for nothing."""
    regions, n = scipy.ndimage.label(values > 0, structure=np.ones((3, 3), bool))
    if n == 0:
        return ""
    index = np.arange(1, n + 1)
    sizes = np.bincount(regions.ravel(), minlength=n + 1)[1:]
    low, high = scipy.ndimage.minimum(values, regions, index), scipy.ndimage.maximum(values, regions, index)
    one_value = low == high
    if sizes[one_value].sum() < flat * sizes.sum() or np.unique(low[one_value & (sizes >= least)]).size < LABEL_LEVELS:
        return ""
    return f"its {n} regions each of one value, as classes or instances are"


def _turned_apart(mask_path, image_path, fits_as=None):
    """Where the image at ``image_path`` and its mask at ``mask_path`` are read turned otherwise by their orientation
    tags (as viewers show them): what to say of it, else ''.  Not where the mask fits the image as read, ``fits_as``
    ``(H, W)`` not square, and one tag swaps the sides: stored, they differ in size, so neither was drawn on the
    other's stored pixels, and as read they fit."""
    turns = image_formats.orientation(Path(image_path)), image_formats.orientation(Path(mask_path))
    if turns[0] == turns[1]:
        return ""
    if fits_as is not None and fits_as[0] != fits_as[1] and (turns[0] in image_formats.SWAPS) != (
            turns[1] in image_formats.SWAPS):
        return ""

    def how(turn):
        return image_formats.ORIENTATIONS[turn] + f" as its orientation tag ({turn}) says" if turn != 1 else "as stored"

    return (f"{how(turns[0])}, and its mask {how(turns[1])}: a mask drawn on the other's pixels as stored lies "
            "elsewhere; turn one as the other, or remove the tag")


def check_patch_size(images, patch_size, paths=None):
    """Raise :class:`DatasetError` naming the first image smaller than ``patch_size``, and how many more are (with
    the names of three)."""
    small = [i for i, image in enumerate(images) if min(image.shape[:2]) < patch_size]
    if not small:
        return
    name = [paths[i] if paths else f"image {i}" for i in small]
    h, w = images[small[0]].shape[:2]
    more = (f"; so are {len(small) - 1} more ({', '.join(str(Path(n).name) for n in name[1:4])}"
            f"{', ...' if len(small) > 4 else ''})") if len(small) > 1 else ""
    raise DatasetError(f"{name[0]}: image is {w}x{h}, smaller than the {patch_size}x{patch_size} patch{more}")


def sample_patches(images, n_patches, patch_size, seed=0, rotate=False, max_angle=180.0, flip=False, paths=None,
                   rot90=False):
    """Draw ``n_patches`` random ``patch_size`` crops, float32 ``(n, p, p, C)``.

    Crops are spread evenly over the images.  ``rotate`` turns each crop by a
    random angle in ``[-max_angle, max_angle]`` degrees (the crop is taken from a
    region large enough that no border enters it); ``flip`` flips it horizontally
    and vertically with probability 1/2 each; ``rot90`` turns it by 0, 90, 180 or
    270 degrees.  Deterministic for a given ``seed`` (anything
    ``np.random.default_rng`` takes, e.g. ``[seed, epoch]``).
    """
    if not images:
        raise DatasetError("no training images to sample patches from")
    check_patch_size(images, patch_size, paths)
    rng = np.random.default_rng(seed)
    # Side of the region that still covers the patch after any rotation.
    side = int(np.ceil(patch_size * np.sqrt(2))) if rotate else patch_size
    patches = np.empty((n_patches, patch_size, patch_size, images[0].shape[-1]), np.float32)
    for i in range(n_patches):
        image = images[i % len(images)]
        h, w = image.shape[:2]
        s = side if min(h, w) >= side else patch_size
        y, x = rng.integers(0, h - s + 1), rng.integers(0, w - s + 1)
        crop = image[y : y + s, x : x + s]
        if rotate and s > patch_size:
            angle = rng.uniform(-max_angle, max_angle)
            crop = skimage.transform.rotate(crop, angle, order=1, preserve_range=True)
            o = (s - patch_size) // 2
            crop = crop[o : o + patch_size, o : o + patch_size]
        if flip:
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            if rng.random() < 0.5:
                crop = crop[::-1]
        if rot90:
            crop = np.rot90(crop, rng.integers(4))
        patches[i] = crop
    return patches


# Random stream of the crops of :class:`CropStream`, apart from a fixed set's ``default_rng(seed)``.
FRESH_CROPS_STREAM = 1


@dataclass(frozen=True)
class CropStream:
    """``n_patches`` fresh random crops of ``images`` every epoch, instead of one fixed set.

    Epoch ``e`` (0-based) draws its crops with ``default_rng([seed, FRESH_CROPS_STREAM, e])``,
    so a run resumed from a checkpoint sees exactly the crops an uninterrupted one would.
    ``flip`` and ``rot90`` as in :func:`sample_patches`.
    """

    images: list
    n_patches: int
    patch_size: int
    seed: int = 0
    flip: bool = False
    rot90: bool = False

    @property
    def label(self):
        """The protocol's name in settings and results: ``fresh``, ``fresh+flips+rot90``, ..."""
        return "+".join(["fresh"] + ["flips"] * self.flip + ["rot90"] * self.rot90)

    @property
    def shape(self):
        """Shape of one epoch's crops, ``(n, p, p, C)``."""
        return (self.n_patches, self.patch_size, self.patch_size, self.images[0].shape[-1])

    def crops(self, epoch):
        """The crops of epoch ``epoch`` (0-based), float32 ``(n, p, p, C)``."""
        return sample_patches(self.images, self.n_patches, self.patch_size, seed=[self.seed, FRESH_CROPS_STREAM, epoch],
                              flip=self.flip, rot90=self.rot90)
