"""Datasets on disk: NanoTWICE, the MVTec AD layout (a category of it, or a folder of your own laid out so).

Every loader returns an :class:`AnomalyDataset` of float32 images in ``[0, 1]``
shaped ``(H, W, C)`` (C = 1 for gray, 3 for colour) and boolean masks ``(H, W)``
(:mod:`ssimlib.data` reads them).  Bad input raises :class:`ssimlib.data.DatasetError` naming the file and what
was expected.  Nothing is ever downloaded: pass the path of a copy you have.
"""

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ssimlib.data import DatasetError, image_files, not_a_folder, read_image, read_mask, resize_square


@dataclass
class AnomalyDataset:
    """Defect-free training images and labelled test images of one dataset.

    ``test_labels`` is 1 for defective, 0 for defect-free test images;
    ``test_masks`` are all-False for defect-free ones.  ``notes`` lists what was
    missing but not fatal (for example an absent ``test/good``).
    """

    name: str
    train_images: list
    test_images: list
    test_masks: list
    test_labels: np.ndarray
    test_defect_types: list
    train_paths: list = field(default_factory=list)
    test_paths: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def channels(self):
        return self.train_images[0].shape[-1]


def _require_dir(path, what):
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"{path}: expected a folder with {what}, but {not_a_folder(path)}")
    return path


def mvtec_layout(root, mask_suffix="_mask"):
    """The files of a folder in the MVTec AD layout, checked before a pixel is read: ``(train_paths, tests, notes)``.

    ``tests`` is ``[(type_dir, [(image, mask or None)])]`` per ``test/<type>`` (masks None in ``good``), ``notes``
    what is missing but not fatal (``test/good``; a ``test/<type>`` without images).  Raises :class:`DatasetError`
    naming the first thing missing that :func:`load_folder` needs: a folder, training images, a defect type's
    masks (``ground_truth/<type>/<stem><mask_suffix>.png``), any test image.
    """
    root = _require_dir(root, "train/, test/ and ground_truth/ subfolders (MVTec AD layout)")
    train_dir = _require_dir(root / "train" / "good", "defect-free training images")
    train_paths = image_files(train_dir)
    if not train_paths:
        raise DatasetError(f"{train_dir}: expected defect-free training images, found none")
    test_dir = _require_dir(root / "test", "one subfolder of test images per defect type")
    notes = [] if (test_dir / "good").is_dir() else [
        f"{test_dir / 'good'} is missing: no defect-free test images, so image-level metrics cannot be computed"]
    tests = []
    for type_dir in sorted(p for p in test_dir.iterdir() if p.is_dir()):
        paths, masks_dir = image_files(type_dir), root / "ground_truth" / type_dir.name
        if type_dir.name == "good":
            tests.append((type_dir, [(path, None) for path in paths]))
            continue
        if not paths:  # a tester's: its masks there, the defect type gone without a word
            masks = len(image_files(masks_dir)) if masks_dir.is_dir() else 0
            notes.append(f"{type_dir} holds no images: defect type {type_dir.name} left out"
                         + (f" ({masks_dir} holds {masks} masks)" if masks else ""))
            continue
        if not masks_dir.is_dir():
            raise DatasetError(f"{masks_dir}: expected a folder with the ground-truth masks (<stem>{mask_suffix}.png) "
                               f"of the {len(paths)} images of {type_dir}, but {not_a_folder(masks_dir)}"
                               + ("" if (root / "ground_truth").is_dir() else f" (nor does {root / 'ground_truth'})"))
        pairs = [(path, masks_dir / f"{path.stem}{mask_suffix}.png") for path in paths]
        missing = [(path, mask) for path, mask in pairs if not mask.exists()]
        if missing:
            kind = type_dir.name
            more = (f"; {len(missing) - 1} more of {kind}/ lack theirs (add them, or move the images out of {kind}/)"
                    if len(missing) > 1 else f" (add it, or move the image out of {kind}/)")
            raise DatasetError(f"{missing[0][1]}: expected the ground-truth mask of {missing[0][0]}, it does not "
                               f"exist{more}")
        tests.append((type_dir, pairs))
    if not any(pairs for _, pairs in tests):
        raise DatasetError(f"{test_dir}: expected test images in subfolders, found none")
    return train_paths, tests, notes


def load_folder(root, name=None, gray=None, size=None, mask_suffix="_mask"):
    """Load a dataset in the MVTec AD layout from ``root`` (:func:`mvtec_layout`).

    ``root/train/good/*`` defect-free training images; ``root/test/<type>/*``
    test images, where ``good`` is defect-free; ``root/ground_truth/<type>/<stem><mask_suffix>.png``
    the mask of each defective test image.  A missing ``test/good`` or an empty ``test/<type>`` is recorded
    in ``notes`` (and warned about), not fatal.
    """
    train_paths, tests, notes = mvtec_layout(root, mask_suffix)
    dataset = AnomalyDataset(name or Path(root).name, [], [], [], np.zeros(0, int), [], train_paths, notes=notes)
    for note in notes:
        warnings.warn(note, stacklevel=2)
    dataset.train_images = [read_image(p, gray, size) for p in train_paths]
    labels = []
    for type_dir, pairs in tests:
        for path, mask_path in pairs:
            image = read_image(path, gray)
            mask = np.zeros(image.shape[:2], bool) if mask_path is None else read_mask(mask_path, image.shape[:2])
            dataset.test_images.append(resize_square(image, size, order=1))
            dataset.test_masks.append(resize_square(mask, size, order=0))
            dataset.test_paths.append(path)
            dataset.test_defect_types.append(type_dir.name)
            labels.append(int(type_dir.name != "good"))
    dataset.test_labels = np.array(labels)
    return dataset


def load_mvtec_category(root, category, gray=None, size=None):
    """Load one MVTec AD category from ``root/<category>`` (see :func:`load_folder`)."""
    return load_folder(Path(root) / category, name=category, gray=gray, size=size)


def load_nanotwice(root):
    """Load NanoTWICE (Carrera et al. 2017): 5 defect-free and 40 defective SEM images.

    Layout: ``Normal/*.tif``, ``Anomalous/images/*.tif``, ``Anomalous/gt/<stem>_gt.png``.
    """
    root = _require_dir(root, "NanoTWICE's Normal/ and Anomalous/ folders")
    train_paths = sorted(_require_dir(root / "Normal", "defect-free .tif images").glob("*.tif"))
    if not train_paths:
        raise DatasetError(f"{root / 'Normal'}: expected defect-free .tif images, found none")
    image_dir = _require_dir(root / "Anomalous" / "images", "defective .tif images")
    gt_dir = _require_dir(root / "Anomalous" / "gt", "ground-truth masks <stem>_gt.png")
    test_paths = sorted(image_dir.glob("*.tif"))
    if not test_paths:
        raise DatasetError(f"{image_dir}: expected defective .tif images, found none")
    test_images, masks = [], []
    for path in test_paths:
        image = read_image(path, gray=True)
        mask_path = gt_dir / f"{path.stem}_gt.png"
        if not mask_path.exists():
            raise DatasetError(f"{mask_path}: expected the ground-truth mask of {path}, it does not exist")
        test_images.append(image)
        masks.append(read_mask(mask_path, image.shape[:2]))
    return AnomalyDataset(
        name="nanotwice",
        train_images=[read_image(p, gray=True) for p in train_paths],
        test_images=test_images,
        test_masks=masks,
        test_labels=np.ones(len(test_paths), int),
        test_defect_types=["anomalous"] * len(test_paths),
        train_paths=train_paths,
        test_paths=test_paths,
    )
