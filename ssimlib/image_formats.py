"""How each image file format is read into an array: PNG, TIFF and JPEG by their own readers (orientation, palettes,
multi-page TIFFs, 16-bit colour PNGs), any other type by imageio.  :mod:`ssimlib.data` scales the arrays."""

import warnings

import numpy as np
import skimage.io
import tifffile
from PIL import Image, ImageOps, UnidentifiedImageError

JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif")


class FormatError(ValueError):
    """A file that could not be read as an image; the message says why, without the path."""


def read_raw(path):
    """The pixels of the image file ``path`` (a :class:`pathlib.Path`) as its format stores them ``(H, W[, C])``,
    turned as its orientation says; :class:`FormatError` where it cannot be read (or not without losing bits)."""
    try:
        cut = path.suffix.lower() == ".png" and _png_cut_to_8_bits(path)
    except OSError:
        cut = None  # named by the reader below
    if cut:  # silently 8 bits: 12-bit data would keep 16 gray levels, and no dim-data warning
        raise FormatError(f"a 16-bit {cut} PNG, which this reader (Pillow) would cut to 8 bits per channel; save it "
                          "as a 16-bit TIFF (or, if gray, as a 16-bit gray PNG)")
    try:
        with warnings.catch_warnings():  # imageio trying its plugins on an unreadable file warns of their deprecation
            warnings.simplefilter("ignore", DeprecationWarning)
            reader = {".tif": _read_tiff, ".tiff": _read_tiff, ".png": _read_png,
                      **dict.fromkeys(JPEG_SUFFIXES, _read_jpeg)}.get(path.suffix.lower(), skimage.io.imread)
            return reader(path)
    except Exception as error:  # imageio/tifffile/PIL raise many kinds
        raise FormatError(f"could not read it as an image ({_read_problem(path, error)})") from None


def _read_problem(path, error):
    """Why ``path`` could not be read, in a few words (imageio's advice to install plugins is no help for a broken
    file, nor a decoder's complaint about a file that is no image at all)."""
    if path.is_file() and path.stat().st_size == 0:
        return "the file is empty, 0 bytes"
    kind = Image.registered_extensions().get(path.suffix.lower())
    if kind is None:
        return f"{path.suffix or 'a name without an ending'} is not an image file type"
    if "Could not find a backend" in str(error) or isinstance(error, (UnidentifiedImageError, tifffile.TiffFileError)):
        return f"its contents are not a {kind} image"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _read_jpeg(path):
    """A JPEG's pixels as a uint8 array, turned as its EXIF orientation says (as viewers show it), CMYK as RGB."""
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        return np.asarray(image if image.mode in ("L", "RGB") else image.convert("RGB"))


# PNG colour types Pillow reads at 8 bits per channel even where the file holds 16: RGB, gray + alpha, RGBA
PNG_CUT_TO_8_BITS = {2: "RGB", 4: "gray + alpha", 6: "RGBA"}


def _png_cut_to_8_bits(path):
    """The colour type's name of a PNG at ``path`` whose 16-bit channels Pillow would cut to 8 bits, else None
    (its IHDR: bit depth at byte 24, colour type at byte 25)."""
    with open(path, "rb") as file:
        head = file.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR" or head[24] != 16:
        return None
    return PNG_CUT_TO_8_BITS.get(head[25])


def _read_png(path):
    """A PNG's pixels, turned as its EXIF orientation says; a palette of grays as gray (imageio makes any palette
    RGB: a gray model then warned of a colour image, and a folder of gray images "mixed gray and colour")."""
    with Image.open(path) as image:
        orientation = image.getexif().get(0x0112, 1)
        if image.mode == "P" and "transparency" in image.info:  # a palette with transparent entries: keep alpha
            raw = np.asarray(image.convert("RGBA"))
        else:
            raw = _palette_pixels(np.asarray(image.convert("RGB"))) if image.mode == "P" else None
    return _oriented(skimage.io.imread(path) if raw is None else raw, orientation)


def _palette_pixels(rgb):
    """A palette image's pixels ``(H, W, 3)`` as gray ``(H, W)`` when its palette holds only grays."""
    return rgb[..., 0] if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all() else rgb


def _read_tiff(path):
    """A TIFF's first page as an array ``(H, W[, S])``, turned as its orientation tag says, with a warning when it
    has more pages (a stack's or a movie's frames: tifffile would return them all, and three were taken for RGB)."""
    with tifffile.TiffFile(path) as tiff:
        page = tiff.pages[0]
        raw = page.asarray()
        if page.photometric == tifffile.PHOTOMETRIC.PALETTE:
            raw = _palette_pixels(np.moveaxis(page.colormap[:, raw], 0, -1))  # colormap (3, 2**bits) uint16
        elif page.axes.startswith("S"):  # planar RGB: (S, H, W)
            raw = np.moveaxis(raw, 0, -1)
        if len(tiff.pages) > 1:
            warnings.warn(f"{path}: a TIFF of {len(tiff.pages)} pages (frames); only the first is read", stacklevel=3)
        turn = _tiff_orientation(page)
    return _oriented(raw, turn)


def _tiff_orientation(page):
    """The orientation tag (274) of a tifffile page, 1 where it has none."""
    tag = page.tags.get(274)
    return tag.value if tag is not None else 1


ORIENTATIONS = {2: "mirrored", 3: "turned 180 degrees", 4: "flipped upside down",
                5: "mirrored across its main diagonal", 6: "turned 90 degrees clockwise",
                7: "mirrored across its other diagonal",
                8: "turned 90 degrees counter-clockwise"}  # how an image with each orientation tag (EXIF, TIFF) is read
SWAPS = (5, 6, 7, 8)  # the tags that swap an image's width and height


def orientation(path):
    """The orientation tag (1-8: EXIF, TIFF) of the image file at ``path`` by which it is read turned, else 1."""
    try:
        if path.suffix.lower() in (".tif", ".tiff"):  # tifffile reads what Pillow cannot (float, planar RGB)
            with tifffile.TiffFile(path) as tiff:
                value = _tiff_orientation(tiff.pages[0])
        else:
            with Image.open(path) as image:
                value = image.getexif().get(0x0112, 1)
    except Exception:  # unreadable: its reader names it
        return 1
    return value if value in ORIENTATIONS else 1


def _oriented(raw, orientation):
    """``raw`` ``(H, W[, C])`` turned as orientation 1-8 says, as viewers show it (PIL's ``exif_transpose``)."""
    swap = (1, 0) + tuple(range(2, raw.ndim))
    turns = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
             5: lambda a: a.transpose(swap), 6: lambda a: np.rot90(a, -1), 7: lambda a: a.transpose(swap)[::-1, ::-1],
             8: lambda a: np.rot90(a, 1)}
    return np.ascontiguousarray(turns[orientation](raw)) if orientation in turns else raw
