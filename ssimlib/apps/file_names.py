"""Names of files as text and as outputs: a name the file system holds in bytes that are not UTF-8 (a Latin-1
name from a Windows share, say) is written with those bytes escaped, and an output's name is cut to fit.

A file name is at most :data:`NAME_BYTES` bytes on most file systems; an output named after its image
(``<stem>_overlay.png``, written through ``.partial-<name>``) needs :data:`SUFFIX_ROOM` more than the stem.
"""

import codecs
import hashlib
from pathlib import Path

NAME_BYTES = 255  # NAME_MAX of ext4, XFS, Btrfs, APFS, NTFS (in UTF-16 units there)
SUFFIX_ROOM = 32  # what an output adds to its image's stem: ".partial-" and "_overlay.png", with room to spare
DETECTIONS_CSV = "detections.csv"  # what a detect run writes beside its maps and overlays
DETECTION_OUTPUT_SUFFIXES = ("_map.png", "_overlay.png")  # the ends of a detect run's outputs for one image
STREAM_ERRORS = "ssimlib-printable"  # the error handler of stdout and stderr on the command line


def _escaped(error):
    """Codec error handler :data:`STREAM_ERRORS`: what a stream cannot encode as :func:`printable` writes it (a
    file name's byte that is no UTF-8 as ``\xe9``, not Python's ``\udce9``), any other character as
    ``backslashreplace`` does."""
    text = error.object[error.start : error.end]
    return "".join(f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF
                   else c.encode("ascii", "backslashreplace").decode() for c in text), error.end


codecs.register_error(STREAM_ERRORS, _escaped)


def printable(text):
    """``text`` as valid UTF-8 text: bytes of a file name that are no UTF-8 (which Python holds as surrogates)
    written as ``\\xe9`` (Python's escape); any other text unchanged, whatever the locale."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def output_path(path):
    """:func:`output_stem` of every part of the relative ``path`` (a folder of the inputs named in bytes that are no
    UTF-8 names its outputs' folder escaped too, so that a CSV that lists them names files that exist)."""
    return Path(*map(output_stem, Path(path).parts))


def output_stem(stem):
    """The stem of the outputs of an image of stem ``stem``: :func:`printable`, and where that is longer than
    ``NAME_BYTES - SUFFIX_ROOM`` bytes, cut there and ended with ``~`` and 8 hex digits of its sha256 (so that
    two long stems alike at the start still name outputs of their own)."""
    text = printable(stem)
    room = NAME_BYTES - SUFFIX_ROOM
    if len(text.encode()) <= room:
        return text
    digest = hashlib.sha256(stem.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return text.encode()[: room - len(digest) - 1].decode("utf-8", "ignore") + f"~{digest}"


def is_detection_output(file, out_dir=None, within=None):
    """Whether ``file`` is a detect run's map or overlay (:data:`DETECTION_OUTPUT_SUFFIXES`) in or under ``out_dir``
    or a folder holding a :data:`DETECTIONS_CSV` (of those, only ``within`` and the folders below it where given):
    an earlier run's output, no image to score or train on."""
    file = Path(file).resolve()
    if not file.name.endswith(DETECTION_OUTPUT_SUFFIXES):  # most files: no path resolved, no folder looked into
        return False
    top = None if within is None else Path(within).resolve()
    return ((out_dir is not None and file.is_relative_to(Path(out_dir).resolve()))
            or any((folder / DETECTIONS_CSV).is_file() for folder in file.parents
                   if top is None or folder.is_relative_to(top)))
