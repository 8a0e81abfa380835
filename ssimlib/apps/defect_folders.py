"""Which folders of labelled images are a defect type's and which hold defect-free images.

A folder named ``good``, ``Normal``, ``OK``, ``pass``, ``defect-free`` (:data:`GOOD_FOLDERS`, any case) holds
defect-free images; a folder beside one, or in a folder beside one (``NG/dent/`` beside ``OK/``), is a defect type's,
and so is one named as a folder of defective images (``defective``, ``NG``, ``bad``, ``fail``, ...:
:data:`DEFECT_FOLDERS`) at or below an input folder: there images without a mask are no defect-free images
(:mod:`ssimlib.apps.labelled` leaves them out).  Folders are taken where they lie as given, made absolute but not
resolved: a link to a folder counts where the link lies (``set/scratch -> /elsewhere/scr`` is ``set``'s defect
type), and ``.``, relative and absolute paths give the same answer.
"""

import os
import warnings
from collections import defaultdict
from pathlib import Path

from ssimlib.data import is_image_file

GOOD_FOLDERS = ("good", "normal", "ok", "pass", "defect-free", "defect_free")  # names (any case) of defect-free folders
# names (in any case) of folders of defective images, whatever lies beside them
DEFECT_FOLDERS = ("defective", "defect", "defects", "anomalous", "anomaly", "bad", "ng", "nok", "not_ok", "fail")


def absolute(path):
    """``path`` made absolute without resolving links (``..`` taken lexically): where the user laid it out."""
    return Path(os.path.abspath(path))


def is_good_folder(folder):
    """Whether the folder ``folder`` (a path) is named as one of defect-free images (:data:`GOOD_FOLDERS`)."""
    return Path(folder).name.lower() in GOOD_FOLDERS


def _good_siblings(folder, listings):
    """The folders beside the (absolute) ``folder`` named as ones of defect-free images (:func:`is_good_folder`),
    sorted; ``listings`` caches each parent's (a dict, one per search)."""
    parent = folder.parent
    if parent not in listings:
        try:
            listings[parent] = [] if parent == folder else sorted(
                d for d in parent.iterdir() if is_good_folder(d) and d.is_dir())
        except OSError:  # a folder above the inputs that may not be read
            listings[parent] = []
    return [d for d in listings[parent] if d != folder]


def defect_type(folder, root, given, listings):
    """``(level, good)`` where ``folder`` is a defect type's: it, or a folder above it (``NG/`` of ``NG/dent/``),
    lies beside ``good``, a folder named as one of defect-free images (``good``, ``Normal``, ``OK``, ...:
    :data:`GOOD_FOLDERS`; its name), and none on the way is one.  Below the input folder ``root`` it was found in,
    any such sibling counts; at ``root`` and above, only one among the inputs ``given`` (:func:`absolute` paths),
    holding one, or below one (``good scratch``, ``OK NG/dent``, files of both).  Else ``(level, None)`` where
    ``level``, at or below ``root``, is named as a folder of defective images (:data:`DEFECT_FOLDERS`).  Paths are
    taken as given (:func:`absolute`); ``listings`` as :func:`_good_siblings`.  None otherwise."""
    folder, root = absolute(folder), absolute(root)
    for level in (folder, *folder.parents):
        if is_good_folder(level):
            return None
        inside = root in level.parents
        good = next((g for g in _good_siblings(level, listings) if inside or _holds_one_of(g, given)), None)
        if good is not None:
            return level, good.name
        if level.name.lower() in DEFECT_FOLDERS and (inside or level == root):
            return level, None
    return None


def warn_of_a_defect_type_given_alone(images, pairs, listings):
    """Warn where an input folder beside a folder of defect-free images, neither given nor holding one (``scratch``
    of ``good scratch`` given alone), holds images with a mask and images without: those count as defect-free,
    maybe wrongly."""
    by_root = defaultdict(list)
    for p, root in images:
        by_root[Path(root)].append(p)
    for root, files in by_root.items():
        real = absolute(root)
        goods = [g for g in _good_siblings(real, listings) if _holds_images(g)]  # an empty or unrelated good/: no news
        if (not goods or any(map(is_good_folder, (real, *real.parents)))
                or any(map(is_good_folder, (q for p in files for q in p.relative_to(root).parents)))):
            continue
        n = sum(p not in pairs for p in files)
        if 0 < n < len(files):
            verbs = "has no mask and counts" if n == 1 else "have no mask and count"
            warnings.warn(f"{root}: {n} of its {len(files)} images {verbs} as "
                          f"defect-free, though it lies beside {goods[0].name}/ as a defect type's folder does; if "
                          f"they are defective, give it with {goods[0].name}/ (they are then left out and named) or "
                          "give their masks", stacklevel=3)


def _holds_images(folder):
    """Whether ``folder`` holds image files (not below it); False where it cannot be read."""
    try:
        return any(is_image_file(p) for p in Path(folder).iterdir())
    except OSError:
        return False


def _holds_one_of(folder, given):
    """Whether one of the absolute paths ``given`` is the folder ``folder``, lies below it, or holds it."""
    return any(path == folder or folder in path.parents or path in folder.parents for path in given)


def place(folder, level, good):
    """``"scratch/, beside good/"``; ``"dent/ in NG/, beside OK/"`` where ``level`` lies above ``folder``;
    ``"defective/, named as one of defective images"`` where ``good`` is None."""
    return (f"{folder.name}/" + ("" if level == folder else f" in {level.name}/")
            + (f", beside {good}/" if good else ", named as one of defective images"))
