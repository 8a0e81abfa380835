"""Where data and outputs live by default."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_root(name, given=None):
    """Folder of dataset ``name``: ``given`` if set, else ``$SSIMLIB_DATA/name``, else ``../shared/data/name`` beside
    the repo."""
    if given:
        return Path(given).expanduser()
    base = os.environ.get("SSIMLIB_DATA")
    return Path(base) / name if base else REPO_ROOT.parent / "shared" / "data" / name


def nearest_existing(path):
    """``path`` if it exists, else its nearest existing parent (absolute): what decides whether it can be made."""
    path = Path(path).absolute()
    return next(p for p in (path, *path.parents) if p.exists())
