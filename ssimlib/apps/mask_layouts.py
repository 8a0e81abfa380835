"""Telling a mask from an image, and masks that lie where no rule of :mod:`ssimlib.apps.labelled` pairs them.

:func:`looks_like_mask` is the test behind rule 4b (a PNG of an image's stem) and behind every hint here;
:func:`masks_elsewhere` and :func:`masks_of_left_out` find masks given as images from a folder of their own, which
would be scored as defect-free images; the ``*_line`` and hint functions say in one line how to pair them.
"""

import glob
import itertools
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from ssimlib.data import MASK_EXTREMES, DatasetError, extremes_share, is_image_file, read_image


def _two_valued(values):
    """Whether the gray ``values`` are those of a mask (:func:`ssimlib.data.extremes_share`)."""
    return extremes_share(values) >= MASK_EXTREMES


def looks_like_mask(path, image_path, other_size=True):
    """Whether the image at ``path`` looks like the defect mask of the image at ``image_path``: it is two-valued
    (:func:`_two_valued`), and no copy of that image (which would be two-valued too, its gray values correlated
    above 0.9; a bright defect on a smooth part correlates so with its mask, and is no two-valued image); where
    not ``other_size``, it also has the image's height and width."""
    values = read_image(path, gray=True, warn_dim=False)[..., 0]
    if not _two_valued(values):
        return False
    image = read_image(image_path, gray=True, warn_dim=False)[..., 0]
    if image.shape != values.shape:
        return other_size
    if values.std() == 0 or image.std() == 0 or not _two_valued(image):
        return True
    return np.corrcoef(values.ravel(), image.ravel())[0, 1] <= 0.9


def maybe_mask(path, image_path, other_size=True):
    """:func:`looks_like_mask`, and False where a file cannot be read (it is listed when read as an image)."""
    try:
        return looks_like_mask(path, image_path, other_size)
    except DatasetError:
        return False


def masks_elsewhere(found, pairs):
    """Files of ``found`` that rule 4 paired with no image but that are named ``<stem><ending>`` (the ending begins
    with no letter or digit) for an image ``<stem>.*`` without a mask in another folder, none beside it (one of the
    same folder name first: ``ground_truth/scratch/000_mask.png`` is ``test/scratch/000.png``'s, not
    ``test/good/000.png``'s)
    and look like its mask (:func:`looks_like_mask`, of its size): ``[(mask, image)]`` (NanoTWICE given whole:
    ``gt/ITIA1101_gt.png`` and ``images/ITIA1101.tif``)."""
    masks = set(pairs.values())
    by_stem = defaultdict(list)
    for p, _ in found:
        if p not in masks and p not in pairs:
            by_stem[p.stem].append(p)
    hits = []
    for q, _ in found:
        if q in masks or q in pairs:
            continue
        for stem in _stems_named_in(q.stem):
            if any(p.parent == q.parent for p in by_stem.get(stem, ())):  # its image lies beside it: not elsewhere
                break
            images = sorted((p for p in by_stem.get(stem, ()) if p.parent != q.parent),
                            key=lambda p: p.parent.name != q.parent.name)
            if images and maybe_mask(q, images[0], other_size=False):
                hits.append((q, images[0]))
                break
    return hits


def pairing_options(mask, image, found):
    """The inputs and ``--masks`` that pair ``mask`` with ``image`` (and masks so laid out with theirs): the images'
    folder and every other folder of ``found`` that holds images (the defect-free ones), then the masks' folder."""
    masks_dir, images_dir = mask.parent, image.parent
    while masks_dir.name == images_dir.name and masks_dir != masks_dir.parent:  # ground_truth/crack, test/crack
        masks_dir, images_dir = masks_dir.parent, images_dir.parent
    folders = {images_dir}
    for folder in sorted({p.parent for p, _ in found}, key=lambda f: len(f.parts)):
        if not any(top == folder or top in folder.parents for top in (*folders, masks_dir)):
            folders.add(folder)
    return f"{' '.join(map(str, sorted(folders)))} --masks {masks_dir}"


def masks_of_left_out(left_out, unpaired):
    """Files of ``unpaired`` (images with no mask) with the stem of an image of ``left_out`` (in a defect type's
    folder, left out for want of a mask) but in another folder, that look like its mask, of its size
    (:func:`looks_like_mask`): ``[(mask, image)]``, masks in a folder of their own given as images
    (``masks/bad/b0.png`` for ``images/bad/b0.tif``), which would be scored as defect-free images or left out."""
    by_stem = defaultdict(list)
    for p in left_out:
        by_stem[p.stem].append(p)
    hits = []
    for q in unpaired:
        image = next((p for p in by_stem.get(q.stem, ()) if p.parent != q.parent
                      and maybe_mask(q, p, other_size=False)), None)
        if image is not None:
            hits.append((q, image))
    return hits


def masks_elsewhere_line(elsewhere, found, fate="would have no mask (and count as defect-free, or be left out in a "
                                                 "defect type's folder)"):
    """The line that refuses masks given as images (:func:`masks_elsewhere`, :func:`masks_of_left_out`), with the
    options that pair them; ``fate`` says what became of their images."""
    mask, image = elsewhere[0]
    ending = mask.name[len(image.stem):]
    more = f" (and {len(elsewhere) - 1} more)" if len(elsewhere) > 1 else ""
    return (f"{mask}{more}: named and looking like the mask of {image}, but in another folder, where it is no "
            f"image's mask, so {image.name} {fate}; give the images' folders with the masks' "
            f"folder as --masks: {pairing_options(mask, image, found)} --mask-suffix {ending} (or, if it is an "
            "image, the ending of the masks beside the images as --mask-suffix); nothing was scored")


def same_stem_elsewhere(found, limit=20):
    """``(mask, image)``: a file of ``found`` with the stem of an image in another folder that looks like its mask
    (``masks/X.png`` for ``images/X.tif``), or None; at most ``limit`` pairs are read."""
    by_stem = defaultdict(list)
    for p, _ in found:
        by_stem[p.stem].append(p)
    pairs = ((q, p) for paths in by_stem.values() for q in paths for p in paths if p.parent != q.parent)
    return next(((q, p) for q, p in itertools.islice(pairs, limit) if maybe_mask(q, p, other_size=False)),
                None)


def _stems_named_in(stem):
    """The image stems a mask's ``stem`` may be ``<stem><ending>`` of, the ending beginning with no letter or digit
    (``d1`` and ``d1_gt`` of ``d1_gt.v2``), shortest first."""
    return [stem[:cut] for cut in range(1, len(stem)) if not stem[cut].isalnum()]


def masks_beside(found, limit=20, same_stem=True):
    """Each ``(mask, image)``, in order: a file of ``found`` named ``<stem><ending>`` (the ending begins with no
    letter or digit: ``d1_gt.png``, or, with ``same_stem``, is another type's: ``d1.tif``) for an image ``<stem>.*``
    beside it, that looks like its mask (of its size); at most ``limit`` candidate pairs are read (a hint:
    ``--mask-suffix <ending>`` pairs them)."""
    by_stem = defaultdict(list)
    for p, _ in found:
        by_stem[p.parent, p.stem].append(p)
    pairs = ((q, p) for q, _ in found for stem in (*_stems_named_in(q.stem), *[q.stem] * same_stem)
             for p in by_stem.get((q.parent, stem), ()) if p != q)
    return ((q, p) for q, p in itertools.islice(pairs, limit) if maybe_mask(q, p, other_size=False))


def named_beside(found, limit=20, same_stem=True):
    """The first of :func:`masks_beside`, or None."""
    return next(masks_beside(found, limit, same_stem), None)


def no_mask_fits(found, masks, mask_suffix):
    """The line that says no mask fitted any image under ``--masks`` / ``--mask-suffix`` as given, with a hint."""
    if masks is not None:
        ending = None if mask_suffix else common_ending(found, Path(masks))
        hint = f" (did you mean --mask-suffix {ending}?)" if ending else ""
        return (f"--masks {masks}: no mask there fits an image (expected {masks}/<folder>/"
                f"{'<stem>' + mask_suffix if mask_suffix else '<stem>.* or <stem>_mask.*'}, "
                f"<folder> being the image's folder below the input folder it was found in); nothing was scored{hint}")
    ending_in = [p for p, _ in found if p.name.endswith(mask_suffix)]
    stems = {(p.parent, p.stem) for p, _ in found if not p.name.endswith(mask_suffix)}  # of the images
    meant = next((q.name[cut:] for q in ending_in for cut in range(1, len(q.name) - len(mask_suffix) + 1)
                  if (q.parent, q.name[:cut]) in stems and not q.name[cut].isalnum()), None)  # mask.png: _mask.png
    if meant:
        return (f"--mask-suffix {mask_suffix}: no mask fits an image with it; nothing was scored (did you mean "
                f"--mask-suffix {meant}?)")
    if ending_in:  # the images' own ending, say (.png): each would be the mask of an image that is not there
        return (f"--mask-suffix {mask_suffix}: {len(ending_in)} file{'s end' if len(ending_in) > 1 else ' ends'} in "
                f"it ({ending_in[0]}), but no image <stem>.* lies beside one named <stem>{mask_suffix}, so no mask "
                "fits an image; the suffix is what a mask's name adds to its image's stem (_mask.png for a_mask.png "
                "beside a.png), not the images' own ending; nothing was scored")
    endings = sorted({p.suffix for p, _ in found if p.stem.endswith(mask_suffix)})
    hint = f" (did you mean --mask-suffix {mask_suffix}{endings[0]}?)" if endings else ""
    return f"--mask-suffix {mask_suffix}: no file ends in it, so nothing was scored{hint}"


def common_ending(found, masks):
    """The ending that most images of ``found`` have a file for in their folder of ``masks`` (as rule 1 looks:
    ``<masks>/<folder>/<stem><ending>``; ``_gt.png`` for ``gt/ITIA1101_gt.png`` and the image ``ITIA1101.tif``),
    or None where none has."""
    endings = Counter()
    for p, root in found:
        folder = masks / p.parent.relative_to(root)
        endings.update(q.name[len(p.stem):] for q in folder.glob(f"{glob.escape(p.stem)}?*")
                       if is_image_file(q) and not q.name[len(p.stem)].isalnum())
    return endings.most_common(1)[0][0] if endings else None
