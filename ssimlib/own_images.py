"""Your own images: train an SSIM autoencoder on defect-free images, then find defects in new ones.

``python -m ssimlib train DATA --out MODEL`` trains on DATA, a folder of defect-free
images or an MVTec AD-style category (its ``train/good``).  A share of the images
is held out; the segmentation threshold is set on their anomaly maps (the CVPR
2019 rule: the lowest threshold at which no defect-free image has a region of
``min_defect_area`` pixels) and stored in the model's manifest.  The model is
written as ``MODEL.weights.h5`` + ``MODEL.json`` (:mod:`ssimlib.artifacts`);
training checkpoints every epoch to ``MODEL.checkpoint/`` and resumes there.

``python -m ssimlib detect MODEL IMAGE_OR_FOLDER... --out DIR`` writes, for every
image, its anomaly map (``<stem>_map.png``, 0 to twice the threshold as black to
white), an overlay of the segmentation on the image (``<stem>_overlay.png``) and a
row of ``DIR/detections.csv``: path, image score (the map's maximum), defect area in
pixels and the verdict at the threshold.  An image smaller than the patch is
padded to it (:mod:`ssimlib.scoring`); one that cannot be used is listed and
skipped; the others are still processed.  ``--report`` adds ``DIR/report.html``
(:mod:`ssimlib.report`).

Bad input raises :class:`InputError` with one line naming the file or option; the
command line prints it and exits with status 2.
"""

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import skimage.io
from skimage.color import gray2rgb

from ssimlib import artifacts
from ssimlib.data import IMAGE_SUFFIXES, DatasetError, check_patch_size, read_image
from ssimlib.inference import with_precision
from ssimlib.models import ConvAutoencoder
from ssimlib.mvtec import category_maps, split_validation, training_patches
from ssimlib.presets import CategoryPreset, configure
from ssimlib.scoring import anomaly_map as image_map
from ssimlib.scoring import as_model_channels
from ssimlib.scoring import segmentation as segment
from ssimlib.thresholds import max_region_threshold
from ssimlib.train import train

KINDS = ("texture", "object")
CSV_NAME = "detections.csv"
CSV_COLUMNS = ("path", "score", "defect_area_px", "verdict", "anomaly_map", "overlay")


class InputError(ValueError):
    """A file, folder or option the user gave is not what was expected (one line, for the command line)."""


def _image_files(folder):
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def defect_free_images(data, gray=None):
    """Images of ``data`` (a folder of images, or an MVTec AD-style category's ``train/good``) and their paths."""
    data = Path(data)
    if not data.is_dir():
        raise InputError(f"{data}: expected a folder of defect-free images, but it does not exist")
    folder = data / "train" / "good" if (data / "train" / "good").is_dir() else data
    paths = _image_files(folder)
    if not paths:
        raise InputError(f"{folder}: expected defect-free images ({', '.join(IMAGE_SUFFIXES)}), found none")
    try:
        images = [read_image(p, gray) for p in paths]
    except DatasetError as error:
        raise InputError(str(error)) from None
    channels = {image.shape[-1] for image in images}
    if len(channels) > 1:
        raise InputError(f"{folder}: the images mix gray and colour; choose --gray or --color")
    return images, paths


def _preset(name, kind, patch_size, latent_dim, loss, channels):
    """The MVTec-style preset for a folder of one's own: ``kind`` picks the augmentation."""
    if kind not in KINDS:
        raise InputError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
    preset = configure(name, patch_size=patch_size, latent_dim=latent_dim, loss=loss, channels=channels)
    if kind == "texture":  # any orientation is as good as another: rotations and flips
        return replace(preset, kind=kind, rotate=True, max_angle=45.0, flip="both")
    return replace(preset, kind=kind)  # a part: orientation may matter, so no rotation or flips


def train_model(
    data, out, kind="texture", loss="ssim", patch_size=128, latent_dim=100, epochs=50, n_patches=10_000,
    batch_size=32, learning_rate=2e-4, gray=None, validation_fraction=0.1, min_defect_area=64, stride=None,
    seed=0, progress=True,
):
    """Train on the defect-free images of ``data`` and write the model at ``out``; returns its manifest."""
    if loss not in ("ssim", "l2", "ssim_l1"):
        raise InputError(f"--loss must be one of ssim, l2, ssim_l1, got {loss!r}")
    images, paths = defect_free_images(data, gray)
    try:
        check_patch_size(images, patch_size, paths)
        fit_images, validation_images, held_out = split_validation(images, validation_fraction, seed)
    except (DatasetError, ValueError) as error:
        raise InputError(str(error)) from None
    channels = images[0].shape[-1]
    preset = _preset(Path(data).name, kind, patch_size, latent_dim, loss, channels)
    stride = stride or max(1, round(30 * patch_size / 128))
    patches = training_patches(fit_images, preset, n_patches, seed)
    model = ConvAutoencoder(patch_size, channels, latent_dim)
    history = train(
        model, patches, loss=loss, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
        checkpoint_dir=Path(f"{out}.checkpoint"), progress=progress,
    )
    validation_maps, _ = category_maps(model, validation_images, preset, stride)
    threshold = max_region_threshold(validation_maps, min_defect_area)
    training = {
        "data": Path(data).resolve().name,  # the folder, without the absolute path of this machine
        "training_images": len(fit_images),
        "validation_images": [paths[i].name for i in held_out],
        "settings": {"loss": loss, "epochs": epochs, "n_patches": n_patches, "batch_size": batch_size,
                     "learning_rate": learning_rate, "seed": seed},
        "epochs_done": len(history["loss"]),
        "loss": history["loss"],
        "seconds": history["seconds"],
    }
    detection = {
        "threshold": threshold, "min_defect_area": min_defect_area, "stride": stride, "preset": preset.as_dict(),
    }
    return artifacts.save_model(
        model, out, artifacts.architecture_of(model), training, detection=detection
    )


def _inputs(paths):
    """Image files of the given files and folders, and ``(path, problem)`` for those that are neither."""
    files, bad = [], []
    for path in map(Path, paths):
        if path.is_dir():
            found = _image_files(path)
            files += found
            if not found:
                bad.append((path, "folder holds no images"))
        elif path.is_file():
            files.append(path)
        else:
            bad.append((path, "no such file or folder"))
    return files, bad


def _to_uint8(x):
    return (np.clip(x, 0.0, 1.0) * 255).round().astype(np.uint8)


def detect(model, inputs, out_dir, threshold=None, precision="float32"):
    """Anomaly maps, overlays and a CSV for the images in ``inputs``; returns ``(rows, bad)``.

    ``model`` is the stem the model was written at; ``threshold`` overrides its
    manifest's; ``precision`` is the network's (:func:`ssimlib.inference.with_precision`).
    ``bad`` lists ``(path, problem)`` for inputs that could not be used.
    """
    try:
        network, manifest = artifacts.load_model(model)
    except artifacts.ArtifactError as error:
        raise InputError(str(error)) from None
    network = with_precision(network, precision)
    if "detection" not in manifest:
        raise InputError(f"{model}: not a model from `ssimlib train` (its manifest has no detection threshold)")
    settings = manifest["detection"]
    preset = CategoryPreset.from_dict(settings["preset"])
    threshold = settings["threshold"] if threshold is None else float(threshold)
    min_area = settings["min_defect_area"]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files, bad = _inputs(inputs)
    rows = []
    for path in files:
        try:
            image = as_model_channels(read_image(path), network.channels, path)
            anomaly_map = image_map(network, image, preset, settings["stride"], path)
        except (DatasetError, ValueError) as error:
            bad.append((path, str(error).removeprefix(f"{path}: ")))
            continue
        segmentation = segment(anomaly_map, threshold, min_area)
        map_file, overlay_file = out_dir / f"{path.stem}_map.png", out_dir / f"{path.stem}_overlay.png"
        skimage.io.imsave(map_file, _to_uint8(anomaly_map / (2 * threshold)), check_contrast=False)
        overlay = gray2rgb(image[..., 0]) if image.shape[-1] == 1 else image.copy()
        overlay[segmentation] = 0.5 * overlay[segmentation] + 0.5 * np.array([1.0, 0.0, 0.0])
        skimage.io.imsave(overlay_file, _to_uint8(overlay), check_contrast=False)
        area = int(segmentation.sum())
        rows.append({
            "path": str(path), "score": float(anomaly_map.max()), "defect_area_px": area,
            "verdict": "defective" if area else "good", "anomaly_map": map_file.name, "overlay": overlay_file.name,
        })
    with open(out_dir / CSV_NAME, "w", newline="") as file:
        writer = csv.DictWriter(file, CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return rows, bad
