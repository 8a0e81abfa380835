"""Labelled images for ``ssimlib evaluate``: which image has which defect mask, in four layouts.

Images are the given files and, recursively (following links), the files of the given
folders that :func:`ssimlib.data.is_image_file` takes for images (not below the output folder of an
earlier evaluation or a detect run); each is taken once,
however often it is given; a given file brings the masks named for it beside it (rules 2 and 4's
``<stem>S`` and ``<stem>_mask.*``); defect-free and defective ones
may lie in sibling folders named by defect type (the folder is reported as the
image's ``kind``).  Masks are paired by one rule, the first that applies:

1. ``masks=DIR``: a parallel folder, ``DIR/<folder>/<stem><mask_suffix>`` for the
   image ``<folder>/<stem>.<ext>`` below the folder it was found in (without a
   ``mask_suffix``: ``DIR/<folder>/<stem>.*`` or ``<stem>_mask.*``);
2. ``mask_suffix=S``: beside the image, ``<stem>S``;
3. an MVTec AD category given as one folder: images in ``test/``, masks
   ``ground_truth/<type>/<stem>_mask.png``;
4. found beside the images, image by image: ``<stem>_mask.*`` (:func:`ssimlib.data.mask_name_end`: also
   ``-mask``, ``.mask``, `` mask``, in any case), else the PNG with the stem of the image but
   another type (``a.jpg`` + ``a.png``), if it looks like a mask (:func:`looks_like_mask`:
   nearly two-valued, and no copy of the image).

Under every rule, a file named like a mask that is no image's mask is
listed as a problem and left out, not scored as an image.  Under rule 4, masks in a folder of their own
given as inputs (NanoTWICE given whole: ``Anomalous/gt/ITIA1101_gt.png`` for ``Anomalous/images/ITIA1101.tif``,
or an MVTec AD category's ``test`` and ``ground_truth``) are refused with the options that pair them.

An MVTec AD category given alone is evaluated on its ``test/`` images, with the masks of its ``ground_truth/`` (or
``masks``) named ``<stem>_mask.png`` (or ``<stem><mask_suffix>``); given with other inputs it is refused (its
``train/`` would be scored).  ``masks`` or ``mask_suffix`` that fit no mask at all, where some image lies outside a
folder of defect-free images (``good``, or another name of :data:`ssimlib.apps.defect_folders.GOOD_FOLDERS`:
``Normal``, ``OK``, ...), are refused (a mistyped option), before anything is scored.

An image without a mask, or whose mask marks nothing, is defect-free, but for one in a defect type's
folder without a mask: it is listed as a problem and left out.  A defect type's folder is a sibling of a ``good``,
``Normal`` or ``OK`` folder, or lies in one (``NG/dent/`` beside ``OK/``), below the folder given, or given itself
with that folder of defect-free images (``good scratch``), or is named as one of defective images (``defective``,
``NG``, ...; :mod:`ssimlib.apps.defect_folders`).  Masks of such an image's stem in another folder, given as
images, are refused with the options that pair them (:func:`ssimlib.apps.mask_layouts.masks_of_left_out`).  Masks
are read as :func:`ssimlib.data.read_mask` reads them: in a label image (0 and a few other values, or more in
regions of one value each: classes, instances) every pixel that is not 0 is a defect, in a mask of more gray values
a pixel above half the maximum.
"""

import filecmp
import glob
import os
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssimlib.apps.defect_folders import (absolute, defect_type, is_good_folder, place,
                                         warn_of_a_defect_type_given_alone)
from ssimlib.apps.file_names import output_path
from ssimlib.apps.report import REPORT_NAME, THUMBS_DIR
from ssimlib.apps.mask_layouts import (common_ending, masks_elsewhere, masks_elsewhere_line, masks_of_left_out,
                                       masks_beside, maybe_mask, named_beside, no_mask_fits, pairing_options,
                                       same_stem_elsewhere)
from ssimlib.data import (DatasetError, is_image_file, mask_name_end, not_a_folder, read_mask,
                          resize_square, warn_unread)

EVALUATION_FILES = ("metrics.json", "evaluation.csv")  # what an evaluation writes: a folder holding both is one
EVALUATION_RUN = "evaluation.run.json"  # the record of an evaluation's run: a folder holding it is one (maybe stopped)
DETECTION_RUN = "detections.run.json"  # the record of a detect run (ssimlib.apps.own_detection): its maps are no input


@dataclass
class Labelled:
    """One image, its mask file (None: defect-free) and where it lies.

    ``key`` is its path below the common folder of the inputs, without suffix
    (``good/003``): unique, it names the image's outputs; ``kind`` is its folder there; ``in_defect_folder``:
    whether it lies in a defect type's folder (where a mask that marks nothing is warned of).
    """

    path: Path
    mask: Path | None
    key: str
    kind: str
    in_defect_folder: bool = False  # below a defect type's folder (:func:`ssimlib.apps.defect_folders.defect_type`)


def _files(folder, skip=()):
    """Image files below ``folder``, following links to folders (each once, a real folder before a link to it), each
    file once (by its real path; where a link reaches it too, at the path without a link, else at the first name in
    sorted order; the other names warned of), sorted, leaving out
    those below the folders ``skip``, below an earlier evaluation's or a detect run's output folder, and below a
    link to a folder that holds ``folder`` (each with a warning); a folder that cannot be read is warned of."""
    skip = [Path(q).resolve() for q in skip]
    top = Path(folder).resolve()
    files, visited = {}, set()

    def unreadable(error):
        warnings.warn(f"{error.filename}: cannot be read ({error.strerror or type(error).__name__}), not searched: "
                      "its images are left out", stacklevel=3)

    for here, folders, names in os.walk(folder, followlinks=True, onerror=unreadable):
        real = Path(here).resolve()
        if real in visited or any(real == q or q in real.parents for q in skip):
            folders[:] = []  # a link back up the tree, or a folder left out
            continue
        what = _output_of(names, real) or (f"a link to {real}, which holds the input folder" if real in top.parents
                                     else None)
        if what:
            warnings.warn(f"{here}: {what}, not searched", stacklevel=2)
            folders[:] = []
            continue
        visited.add(real)
        folders.sort(key=lambda name: (os.path.islink(os.path.join(here, name)), name))  # real folders first
        warn_unread(here, [Path(here) / name for name in names])
        for path in (Path(here) / name for name in sorted(names) if is_image_file(Path(here) / name)):
            key = path.resolve()
            if key not in files or _via_link(files[key], folder) > _via_link(path, folder):
                path, files[key] = files.get(key), path
            if path is not None:  # a tester's: the second name of one file was dropped without a word
                warnings.warn(f"{path}: the same file as {files[key]} (a link): taken once, under that name",
                              stacklevel=2)
    return sorted(files.values())


def _via_link(path, folder):
    """Whether ``path``, below ``folder``, is reached through a link (it, or a folder on the way, is one)."""
    here = Path(folder)
    for part in Path(path).relative_to(folder).parts:
        here = here / part
        if here.is_symlink():
            return True
    return False


def _output_of(names, folder):
    """What wrote ``folder``, holding the files ``names``: ``"a detect run's output (...)"``, or
    :func:`evaluation_or_report`'s answer."""
    if DETECTION_RUN in names:
        return f"a detect run's output ({DETECTION_RUN})"
    return evaluation_or_report(folder, names)


def evaluation_or_report(folder, names=None):
    """``"an earlier evaluation's output (...)"`` or ``"a report's thumbnails (...)"`` for a ``folder`` (holding the
    files ``names``; listed where not given) that is one, else None: no images to score or to train on."""
    if names is None:
        try:
            names = os.listdir(folder)
        except OSError:
            return None
    if set(EVALUATION_FILES) <= set(names) or EVALUATION_RUN in names:
        return f"an earlier evaluation's output ({', '.join(EVALUATION_FILES)})"
    if Path(folder).name == THUMBS_DIR and (Path(folder).parent / REPORT_NAME).is_file():
        return f"a report's thumbnails ({REPORT_NAME} beside it)"
    return None


def _mvtec_category(path):
    return path.is_dir() and (path / "test").is_dir() and (path / "ground_truth").is_dir()


def _found(inputs, skip, beside):
    """``[(file, folder it was found in)]``, each file once, and ``[(path, problem)]`` for inputs that are neither
    file nor folder; files below the folders ``skip`` are left out.  An input file comes with the files
    ``beside(file)`` (its masks, which the user need not name)."""
    found, bad, seen = [], [], set()
    for path in map(Path, inputs):
        if path.is_dir():
            files = [(p, path) for p in _files(path, skip)]
            if not files:
                try:
                    what = _output_of({p.name for p in path.iterdir()}, path.resolve())
                except OSError:  # a folder that may not be read (warned of above)
                    what = None
                bad.append((path, f"folder holds no images to score: it is {what}, whose images are not searched "
                                  "(give the images' own folder)" if what else "folder holds no images"))
        elif path.is_file():
            files = [(p, path.parent) for p in (path, *beside(path))]
        else:
            bad.append((path, "no such file or folder"))
            continue
        for p, root in files:
            if p.resolve() not in seen:
                seen.add(p.resolve())
                found.append((p, root))
    return found, bad


def _masks_named_for(folder, stem, mask_suffix=None, any_type=False, image=None):
    """The files in ``folder`` named as masks of an image of stem ``stem``: ``<stem><mask_suffix>``, or without a
    suffix ``<stem>_mask.*`` (any ending :func:`ssimlib.data.mask_name_end` knows) and, where ``any_type``,
    ``<stem>.*``; never the file ``image``."""
    if mask_suffix:
        named = folder / f"{stem}{mask_suffix}"
        return [named] if named.is_file() and named != image else []
    return sorted(q for q in folder.glob(f"{glob.escape(stem)}*") if q != image and is_image_file(q) and (
        (any_type and q.stem == stem) or (mask_name_end(q) is not None and q.stem[: mask_name_end(q)] == stem)))


def _beside(found, is_mask, image_stem):
    """Pair images and masks that lie in one folder: ``({image: mask}, images, bad)``.

    ``is_mask(file)`` tells masks from images; ``image_stem(mask)`` is the stem of its image.  Where several
    masks fit one stem, or one mask several images (``b.jpg`` and ``b.tif``), all of them are listed in ``bad``
    and left out.
    """
    masks, by_stem = defaultdict(list), defaultdict(list)
    # a file named like a mask whose own stem a mask beside it names is that mask's image (wafer-mask.png beside
    # wafer-mask_mask.png)
    named = {(p.parent, image_stem(p)) for p, _ in found if is_mask(p)}
    image_named_like_a_mask = {p for p, _ in found
                               if is_mask(p) and image_stem(p) != p.stem and (p.parent, p.stem) in named}

    def is_mask_here(p):
        return is_mask(p) and p not in image_named_like_a_mask

    for p, root in found:
        (masks[p.parent, image_stem(p)] if is_mask_here(p) else by_stem[p.parent, p.stem]).append((p, root))
    pairs, bad, excluded = {}, [], set()
    for key, fitting in masks.items():
        images = by_stem.get(key, [])
        if len(fitting) == 1 and len(images) == 1:
            pairs[images[0][0]] = fitting[0][0]
        elif not images:
            bad += [(mask, "a mask without an image (no image of the same stem beside it)") for mask, _ in fitting]
        else:
            names = ", ".join(p.name for p, _ in images + fitting)
            bad.append((fitting[0][0].with_name(key[1] + ".*"), f"{names}: cannot tell which mask is whose; "
                        "expected one image and one mask per stem"))
            excluded.update(p for p, _ in images)
    images = [(p, root) for p, root in found if not is_mask_here(p) and p not in excluded]
    return pairs, images, bad


def _same_stem(found):
    """Rule 4b: in a folder, the PNG that shares its stem with one other image is that image's mask, if it
    looks like one (:func:`ssimlib.apps.mask_layouts.looks_like_mask`); else both are images."""
    groups = defaultdict(list)
    for p, _ in found:
        groups[p.parent, p.stem].append(p)
    masks, bad, excluded = set(), [], set()
    for files in groups.values():
        pngs = [p for p in files if p.suffix.lower() == ".png"]
        if len(files) == 2 and len(pngs) == 1:
            image = files[1] if files[0] == pngs[0] else files[0]
            if maybe_mask(pngs[0], image):
                masks.add(pngs[0])
        elif len(files) > 2:
            bad.append((files[0].with_suffix(".*"), f"{len(files)} files share this stem "
                        f"({', '.join(p.name for p in files)}); expected one image and one PNG mask"))
            excluded.update(files)
    found = [(p, root) for p, root in found if p not in excluded]
    pairs, images, more_bad = _beside(found, lambda p: p in masks, lambda p: p.stem)
    return pairs, images, bad + more_bad


def _misnamed_mask_hint(folder, stem, mask_suffix):
    """Where an MVTec AD category's image has no mask of the expected name: the files of its ``folder`` named
    ``<stem>.*``, ``<stem>_*`` or ``<stem>-*`` (a mask named as its image, or with another ending), as a hint, or
    ``""``."""
    others = sorted(q.name for pattern in (".*", "_*", "-*") for q in folder.glob(f"{glob.escape(stem)}{pattern}")
                    if q.is_file()) if folder.is_dir() else []
    if not (others and mask_suffix):
        return ""
    ending = others[0][len(stem):]
    same_type = ending.lower().rpartition(".")[2] == mask_suffix.lower().rpartition(".")[2]  # ".png" has no suffix
    return (f" ({', '.join(others[:2])} lies there: a mask misnamed? {'rename' if same_type else 'save'} it as "
            f"{stem}{mask_suffix}, or give --mask-suffix {ending} if every mask is named so)")


def _parallel(found, masks_dir, mask_suffix):
    """Rule 1: masks in a parallel folder: ``({image: mask}, bad, fitted)``; ``fitted`` counts the images for
    which some mask was found (paired, or left out because several fit or one fits several)."""
    pairs, bad = {}, []
    for p, root in found:
        candidates = _masks_named_for(masks_dir / p.parent.relative_to(root), p.stem, mask_suffix, any_type=True)
        if len(candidates) == 1:
            pairs[p] = candidates[0]
        elif candidates:
            bad.append((p, f"several masks fit it ({', '.join(q.name for q in candidates)})"))
    fitted = len(pairs) + len(bad)
    claimants = defaultdict(list)
    for image, mask in pairs.items():
        claimants[mask.resolve()].append(image)
    for images in (images for images in claimants.values() if len(images) > 1):  # a flat folder of masks, say
        for image in images:
            others = ", ".join(str(q) for q in images if q != image)
            bad.append((image, f"its mask {pairs.pop(image)} is found for {others} too: left out (expected one mask "
                               "per image: give each input folder alone, or the folder above them)"))
    claimed = {q.resolve() for q in pairs.values()} | {p.resolve() for p, _ in bad} | set(claimants)
    bad += [(q, "a mask without an image") for q in _files(masks_dir) if q.resolve() not in claimed]
    return pairs, bad, fitted


def find_labelled(inputs, masks=None, mask_suffix=None, skip=None):
    """The labelled images of ``inputs`` (files and folders): ``(items, bad, rule)``.

    ``items`` is a list of :class:`Labelled`, ``bad`` lists ``(path, problem)`` for
    inputs and masks that could not be paired, ``rule`` says in one line which
    rule paired them and how many images have a mask.  Files below the folder
    ``skip`` (an output folder) are not searched.  A missing ``masks`` folder
    raises :class:`~ssimlib.data.DatasetError`.
    """
    inputs = [Path(p) for p in inputs]
    categories = [p for p in inputs if _mvtec_category(p)]
    if categories and len(inputs) > 1:
        raise DatasetError(f"{categories[0]}: an MVTec AD category given with other inputs (its train/ would be scored "
                           "as test images); give it alone, or its test/ folder")
    if masks is not None:
        masks = Path(masks)
        if not masks.is_dir():
            raise DatasetError(f"{masks}: expected a folder of masks (--masks), but {not_a_folder(masks)}")
        for path in inputs:
            if path.resolve() == masks.resolve() or masks.resolve() in path.resolve().parents:
                raise DatasetError(f"{path}: lies in the folder of masks (--masks {masks}); masks beside the images "
                                   "are found without --masks (or named with --mask-suffix)")
    asked = (masks, mask_suffix)  # as the user gave them
    category = bool(categories)
    if category:  # its test/ images; masks in its ground_truth/ (or --masks), <stem>_mask.png (or --mask-suffix)
        if masks is None:
            masks, mask_suffix = inputs[0] / "ground_truth", mask_suffix or "_mask.png"
        inputs = [inputs[0] / "test"]

    def beside(path):  # the masks named for an image given as a file (none where masks lie in a folder of their own)
        return [] if masks is not None else _masks_named_for(path.parent, path.stem, mask_suffix, image=path)

    found, bad = _found(inputs, [q for q in (masks, skip) if q is not None], beside)
    if masks is not None:
        pairs, more_bad, fitted = _parallel(found, masks, mask_suffix)
        if category:  # a defect type's image without its mask is not defect-free: left out
            more_bad += [(p, f"expected its mask {masks / p.parent.name / (p.stem + (mask_suffix or '.*'))}, it does "
                             f"not exist{_misnamed_mask_hint(masks / p.parent.name, p.stem, mask_suffix)}")
                         for p, _ in found
                         if p not in pairs and p.parent.name != "good" and p not in {q for q, _ in more_bad}]
        ending = common_ending(found, masks) if category and asked == (None, None) and not pairs else None
        if ending:  # a tester's: ground_truth/<type>/<stem>.png, every mask "without an image", nothing defective
            raise DatasetError(f"{masks}: no mask there is named <stem>_mask.png (MVTec AD's names) for an image of "
                               f"{inputs[0]}, but masks are named <stem>{ending}: give --mask-suffix {ending}; "
                               "nothing was scored")
        bad += more_bad
        images = [(p, root) for p, root in found if p not in {q for q, _ in more_bad}]
        where = "an MVTec AD category: images in test/, masks" if category else "in the parallel folder"
        flat = all(absolute(p).parent == absolute(root) for p, root in images)  # no <folder> to name
        rule = f"{where} {masks}/{'' if flat else '<folder>/'}<stem>{mask_suffix or '.*'}"
    elif mask_suffix is not None:
        pairs, images, more_bad = _beside(
            found, lambda p: p.name.endswith(mask_suffix), lambda p: p.name[: -len(mask_suffix)]
        )
        bad += more_bad
        rule = f"beside the images, <stem>{mask_suffix}"
    else:
        pairs, images, more_bad = _beside(found, lambda p: mask_name_end(p) is not None,
                                          lambda p: p.stem[: mask_name_end(p)])
        # a file named like a mask that fits no image may be an image itself (gas-mask.jpg with gas-mask.png)
        orphans = {mask for mask, problem in more_bad if problem.startswith("a mask without an image")}
        more_bad = [(p, problem) for p, problem in more_bad if p not in orphans]
        unpaired = orphans | {p for p, _ in images if p not in pairs}
        rest = [(p, root) for p, root in found if p in unpaired]
        same_stem_pairs, same_stem_images, same_stem_bad = _same_stem(rest)
        kept = {p for p, _ in same_stem_images}
        images = [(p, root) for p, root in found if p in pairs or p in kept]
        rule = (f"beside the images, found automatically: <stem>_mask.* for {len(pairs)}, a PNG of the same stem "
                f"as an image of another type for {len(same_stem_pairs)}")
        pairs.update(same_stem_pairs)
        bad += more_bad + same_stem_bad
        elsewhere = masks_elsewhere(found, pairs)
        if elsewhere:  # masks in a folder of their own, given as images: every defective image would count defect-free
            raise DatasetError(masks_elsewhere_line(elsewhere, found))
    if masks is None and mask_suffix is not None:  # masks paired, or left out as one of several that fit
        fitted = len(pairs) + sum("cannot tell which mask" in problem for _, problem in bad)
    taken_for_masks = masks is None and mask_suffix and any(p.name.endswith(mask_suffix) for p, _ in found)
    if asked != (None, None) and not fitted and (taken_for_masks or any(not is_good_folder(p.parent)
                                                                        for p, _ in found)):
        # a mistyped option: refused before anything is written (a folder of good images needs no mask, unless the
        # option takes its images for masks)
        raise DatasetError(no_mask_fits(found, *asked))
    misnamed = {p for p, _ in images if p not in pairs and mask_name_end(p) is not None}
    bad += [(p, "a mask without an image (named like a mask, and no image pairs with it): left out, not scored "
             "(an image so named? rename it; see --masks, --mask-suffix)") for p, _ in images if p in misnamed]
    images = [(p, root) for p, root in images if p not in misnamed]
    given, listings = [absolute(q) for q in inputs], {}
    # each folder's siblings listed once, not per image
    defect_types = {key: defect_type(*key, given, listings) for key in {(p.parent, Path(root)) for p, root in images}}
    unlabelled = [(p, defect_types[p.parent, Path(root)]) for p, root in images
                  if p not in pairs and defect_types[p.parent, Path(root)]]
    bad += [(p, f"lies in a defect type's folder ({place(absolute(p.parent), *where)}) but has no mask: left out, "
             "not counted defect-free") for p, where in unlabelled]
    unlabelled_images = {p for p, _ in unlabelled}
    stray = masks_of_left_out(unlabelled_images, [p for p, root in images if p not in pairs and not any(
        map(is_good_folder, (absolute(root), *p.relative_to(root).parents)))]) if masks is None else []
    if stray:  # masks in a folder of their own given as images (scored as defect-free, or left out too)
        raise DatasetError(masks_elsewhere_line(stray, found, "would be left out (it lies in a defect type's "
                                                              "folder, without a mask)"))
    images = [(p, root) for p, root in images if p not in unlabelled_images]
    items = _items(images, pairs, {p for p, root in images if defect_types[p.parent, Path(root)]})
    if masks is None and mask_suffix is None and any(item.mask is not None for item in items):
        items, misnamed = _misnamed_masks_left_out(items, images)  # rule 4 paired some: one named otherwise?
        bad += misnamed
    kept = {item.path for item in items}
    warn_of_a_defect_type_given_alone([(p, root) for p, root in images if p in kept], pairs, listings)
    with_mask = sum(item.mask is not None for item in items)
    if with_mask == 0 and masks is None and mask_suffix is None:  # rule 4 found none
        alike, named = same_stem_elsewhere(found), named_beside(found)
        counted = "the 1 image counts" if len(items) == 1 else f"all {len(items)} images count"
        hint = (f"; {alike[0]} looks like the mask of {alike[1]}: if the masks lie there, give "
                f"{pairing_options(*alike, found)}") if alike else ""
        if named:  # a hint, not a refusal: two images of one stem may look so (a checkerboard beside a photo)
            hint += (f"; {named[0]} looks like the mask of {named[1].name} beside it: if the masks are so named, "
                     f"give --mask-suffix {named[0].name[len(named[1].stem):]}")
        return items, bad, ("masks: none found beside the images (looked for <stem>_mask.*, then a PNG of "
                            "the same stem as an image of another type; --masks DIR or --mask-suffix S name them "
                            f"otherwise), so {counted} as defect-free{hint}")
    left_out = f"; {len(bad)} other file{'' if len(bad) == 1 else 's'} left out (named below)" if bad else ""
    has = "has" if with_mask == 1 else "have"
    counts = (f"{'the image has' if with_mask == 1 else f'each of the {with_mask} images has'} one"
              if with_mask == len(items) else
              f"{with_mask} of {len(items)} images {has} one, the others count as defect-free")
    return items, bad, f"masks: {rule}; {counts}{left_out}"


def _misnamed_masks_left_out(items, images, limit=20):
    """Where rule 4 paired images with ``<stem>_mask.*``: ``(items, bad)``, ``items`` less each unpaired file that
    looks like the mask of an unpaired image beside it (:func:`masks_beside`: ``b_gt.png`` for ``b.png``) and less
    that image, both named in ``bad`` (``limit`` pairs at most, of ``4 * limit`` candidates read): else the mask would
    be scored as a defect-free image, and its defective image as one too."""
    unpaired = {item.path for item in items if item.mask is None}
    bad, out = [], set()
    for mask, image in masks_beside([(p, root) for p, root in images if p in unpaired], 4 * limit,
                                    same_stem=False):  # rule 4b judged those
        if mask in out or image in out:
            continue
        if not any(c.isalpha() for c in mask.stem[len(image.stem):]):  # scan-1_2.png beside scan-1.png: a version
            continue
        bad += [(mask, f"looks like the mask of {image.name} beside it, but is not named {image.stem}_mask.* as the "
                       f"other masks are: left out with its image (rename it, or give --mask-suffix "
                       f"{mask.name[len(image.stem):]} if every mask is so named)"),
                (image, f"its mask looks to be {mask.name} beside it, not named {image.stem}_mask.*: left out")]
        out |= {mask, image}
        if len(bad) >= 2 * limit:
            break
    return [item for item in items if item.path not in out], bad


def _items(images, pairs, in_defect_folders=frozenset()):
    """:class:`Labelled` items with keys below the common folder of ``images`` ``[(file, root)]``; those of
    ``in_defect_folders`` lie in a defect type's folder."""
    if not images:
        return []
    common = os.path.commonpath([os.path.abspath(root) for _, root in images])
    items, outputs = [], set()  # the keys' outputs' names (output_path), which must differ as the keys do
    for p, _ in images:
        relative = Path(os.path.relpath(os.path.abspath(p), common))  # links named as given, not by their targets
        key = relative.with_suffix("").as_posix()
        if output_path(key) in outputs:  # a.jpg beside a.bmp, both images
            key = relative.as_posix()
        while output_path(key) in outputs:  # a.png beside a.png.jpg; caf\xe9 so named beside a Latin-1 café
            key += "~"
        outputs.add(output_path(key))
        kind = relative.parent.as_posix()
        items.append(Labelled(p, pairs.get(p), key, "" if kind == "." else kind, p in in_defect_folders))
    return items


def _same_bytes(a, b):
    """Whether the files ``a`` and ``b`` hold the same bytes (False where one cannot be read: its reader says why)."""
    try:
        return filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def read_labelled_mask(item, shape, size=None):
    """The mask of ``item`` as bool ``(H, W)`` (all False without one); :class:`DatasetError` naming both files, or
    the mask where it is a copy of the image.

    ``shape`` is the image's ``(H, W)`` in its file; ``size`` resizes the mask to ``size x size`` (nearest), as
    a model that resizes its images sees them.
    """
    if item.mask is not None and _same_bytes(item.mask, item.path):
        # a tester's: --masks naming a folder of the images' copies scored every image defective where bright
        raise DatasetError(f"{item.mask}: a copy of its image {item.path} (the same bytes), not a mask; left out")
    mask = np.zeros(shape, bool) if item.mask is None else read_mask(item.mask, shape, item.path)
    return resize_square(mask, size, order=0)
