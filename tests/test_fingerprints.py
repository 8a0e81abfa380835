"""ssimlib.fingerprints: a data fingerprint is the sha256 over names, sizes and contents, hashed once per file state."""

import hashlib
import os

from ssimlib import fingerprints
from ssimlib.artifacts import sha256


def _by_hand(paths, root):
    digest = hashlib.sha256()
    for path in paths:
        content = path.read_bytes()
        digest.update(os.fsencode(path.relative_to(root)) + f"\0{len(content)}\0".encode())
        digest.update(hashlib.sha256(content).hexdigest().encode())
    return digest.hexdigest()


def test_a_fingerprint_is_of_names_sizes_and_contents_and_each_file_is_read_once_while_unchanged(tmp_path,
                                                                                                    monkeypatch):
    (tmp_path / "train" / "good").mkdir(parents=True)
    paths = [tmp_path / "train" / "good" / f"{i:03d}.png" for i in range(3)]
    for i, path in enumerate(paths):
        path.write_bytes(bytes([i]) * (100 + i))
    read = []
    monkeypatch.setattr(fingerprints, "sha256", lambda path: read.append(path) or sha256(path))

    fingerprints._content_sha256.cache_clear()
    first = fingerprints.category_fingerprint(tmp_path, ("train",))
    assert first == _by_hand(paths, tmp_path) and len(read) == 3
    assert fingerprints.category_fingerprint(tmp_path, ("train",)) == first and len(read) == 3  # no file read again
    # edited in place, the same size: read again, another fingerprint
    stamp = paths[1].stat().st_mtime_ns
    paths[1].write_bytes(b"\xff" * 101)
    os.utime(paths[1], ns=(stamp + 10**9, stamp + 10**9))
    assert fingerprints.category_fingerprint(tmp_path, ("train",)) == _by_hand(paths, tmp_path) != first
    assert len(read) == 4
