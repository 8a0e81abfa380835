"""Fingerprints of data: which images a model was trained on, and which a result was computed from.

A fingerprint is the hex sha256 over the names, sizes and contents of a list of files, so that a file edited in
place, or a data folder swapped for another with as many images, gives another one.  A file's content hash is kept
for the process while its path, size, modification time and inode stay the same (a notebook run fingerprints a
category's images up to three times).
"""

import functools
import hashlib
import os
from pathlib import Path

from ssimlib.artifacts import sha256
from ssimlib.data import is_image_file

CATEGORY_PARTS = ("train", "test", "ground_truth")  # the MVTec AD layout's folders of images and masks


def data_fingerprint(paths, root=None):
    """Hex sha256 over the names and contents of the files ``paths``, in order; each named by its path relative to
    ``root`` where given, else by its file name."""
    digest = hashlib.sha256()
    for path in map(Path, paths):
        name = path.relative_to(root) if root is not None else path.name
        status = path.stat()
        digest.update(os.fsencode(name) + f"\0{status.st_size}\0".encode())  # any name's bytes
        digest.update(_content_sha256(str(path.resolve()), status.st_size, status.st_mtime_ns, status.st_ino).encode())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1 << 16)
def _content_sha256(path, size, mtime_ns, inode):
    """Hex sha256 of the file at ``path``, kept while its ``size``, ``mtime_ns`` and ``inode`` are these."""
    return sha256(path)


def category_fingerprint(category_dir, parts=CATEGORY_PARTS):
    """:func:`data_fingerprint` of every image file below ``category_dir``'s folders ``parts`` (MVTec AD layout),
    by path relative to it, sorted: ``("train",)`` is what a model of the category trained on (its validation
    images with it), all three what its results were computed from."""
    category_dir = Path(category_dir)
    files = sorted(path for part in parts if (category_dir / part).is_dir()
                   for path in (category_dir / part).rglob("*") if is_image_file(path))
    return data_fingerprint(files, category_dir)
