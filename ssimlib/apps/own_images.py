"""Your own images: train an SSIM autoencoder on defect-free images, then find defects in new ones.

``python -m ssimlib train DATA --out MODEL`` trains on DATA, a folder of defect-free
images or an MVTec AD-style category (its ``train/good``).  A share of the images
is held out; the segmentation threshold is set on their anomaly maps (the CVPR
2019 rule: the lowest threshold at which no defect-free image has a region of
``min_defect_area`` pixels) and stored in the model's manifest.  The model is
written as ``MODEL.weights.h5`` + ``MODEL.json`` (:mod:`ssimlib.artifacts`);
training checkpoints every epoch to ``MODEL.checkpoint/`` and resumes there.

A model at ``MODEL`` belongs to one run: :func:`run_identity` (the data folder, a
sha256 of its images' names and contents, and every setting) is stored in
``MODEL.checkpoint/run.json`` and the manifest, and another run aimed at the same
``MODEL`` is refused unless ``restart`` is given.  While a run trains it holds
``MODEL.lock`` (:func:`run_lock`).

``python -m ssimlib detect MODEL IMAGE_OR_FOLDER... --out DIR`` writes, for every
image, its anomaly map (``<stem>_map.png``, 0 to twice the threshold as black to
white) and an overlay of the segmentation on the image (``<stem>_overlay.png``)
under DIR at the image's path relative to the folder the inputs share, and a row
of ``DIR/detections.csv``: path, image score (the map's maximum), defect area in
pixels, the verdict at the threshold and the two files.  Rows are written one by
one after their files, so a killed run leaves a CSV that lists exactly the maps
beside it.  An image smaller than the patch is padded to it (:mod:`ssimlib.apps.scoring`);
one that cannot be used is listed and skipped; the others are still processed.
``--report`` adds ``DIR/report.html`` (:mod:`ssimlib.apps.report`).

Bad input raises :class:`ssimlib.apps.own_options.InputError` with one line naming the file or option
(the options are checked there, before any work); the command line prints it and exits with status 2.
"""

import contextlib
import csv
import fcntl
import hashlib
import json
import os
import shutil
import warnings
from collections import Counter
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import skimage.io
from skimage.color import gray2rgb

from ssimlib import artifacts
from ssimlib.apps.own_options import InputError, check_count, check_out_folder, check_threshold, check_train_options
from ssimlib.apps.scoring import Detector, as_model_channels
from ssimlib.data import (IMAGE_SUFFIXES, DatasetError, check_patch_size, is_image_file, mask_name_end, not_a_folder,
                          read_image)
from ssimlib.evaluate import write_json
from ssimlib.experiments.mvtec import category_maps, split_validation, training_patches
from ssimlib.experiments.presets import BACKGROUNDS, DEFAULT_PRESET, CategoryPreset, configure
from ssimlib.inference import RESIDUAL_KINDS, with_precision
from ssimlib.models import ConvAutoencoder
from ssimlib.thresholds import max_region_threshold
from ssimlib.train import STATE_FILE, train

CSV_NAME = "detections.csv"
CSV_COLUMNS = ("path", "score", "defect_area_px", "verdict", "anomaly_map", "overlay")
OUTPUT_SUFFIXES = ("_map.png", "_overlay.png")
RUN_FILE = "run.json"
DEFAULT_MIN_DEFECT_AREA = 64


def _image_files(folder):
    return sorted(p for p in Path(folder).iterdir() if is_image_file(p))


def default_stride(patch_size):
    """Sliding-window stride in pixels: the paper's 30 at 128 px, scaled with the patch side."""
    return max(1, round(30 * patch_size / 128))


def defect_free_images(data, gray=None):
    """Images of ``data`` (a folder of images, or an MVTec AD-style category's ``train/good``) and their paths."""
    data = Path(data)
    if not data.is_dir():
        raise InputError(f"{data}: expected a folder of defect-free images, but {not_a_folder(data)}")
    folder = data / "train" / "good" if (data / "train" / "good").is_dir() else data
    paths = _image_files(folder)
    if not paths:
        raise InputError(f"{folder}: expected defect-free images ({', '.join(IMAGE_SUFFIXES)}), found none")
    masks = [path.name for path in paths if mask_name_end(path) is not None]
    if masks:  # a labelled folder given to train: its masks (and defective images) would be learnt as defect-free
        raise InputError(f"{folder}: holds {len(masks)} file(s) named like masks ({', '.join(masks[:3])}"
                         f"{', ...' if len(masks) > 3 else ''}); train on a folder of defect-free images only")
    images, problems = [], []
    for path in paths:  # every unreadable file named at once, not one per run
        try:
            images.append(read_image(path, gray))
        except DatasetError as error:
            problems.append(str(error))
    if problems:
        raise InputError("; ".join(problems) + (f" ({len(problems)} of {len(paths)} images unreadable)"
                                                if len(problems) > 1 else ""))
    channels = {image.shape[-1] for image in images}
    if len(channels) > 1:
        raise InputError(f"{folder}: the images mix gray and colour; choose --gray or --color")
    return images, paths


def data_fingerprint(paths):
    """Hex sha256 over the names and contents of the files ``paths``, in order."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
        digest.update(artifacts.sha256(path).encode())
    return digest.hexdigest()


def run_identity(paths, **settings):
    """What makes a run the same run: the data's folder and fingerprint, and ``settings`` as given."""
    return {"data": paths[0].parent.resolve().name, "data_sha256": data_fingerprint(paths), **settings}


def _stored_run(out):
    """``(file, identity)`` of the run already at ``out``: its checkpoint's, else its model's; None if neither.

    ``identity`` is None when the file names no run (from before runs were recorded, or broken).
    """
    checkpoint = Path(f"{out}.checkpoint")
    if (checkpoint / RUN_FILE).exists() or (checkpoint / STATE_FILE).exists():
        try:
            return checkpoint / RUN_FILE, json.loads((checkpoint / RUN_FILE).read_text())
        except (OSError, ValueError):
            return checkpoint, None
    manifest_path = artifacts.model_files(out)[1]
    try:
        manifest = artifacts.read_manifest(out)
    except artifacts.ArtifactError:
        return manifest_path, None
    if manifest is None:
        return None
    training = manifest.get("training")
    return manifest_path, training.get("run") if isinstance(training, dict) else None


def _continues(stored, run):
    """Whether ``run`` is the checkpointed run ``stored`` (:func:`_stored_run`) asked for more epochs."""
    where, identity = stored
    if where.name != RUN_FILE or not isinstance(identity, dict) or not isinstance(identity.get("epochs"), int):
        return False
    others = {k for k in run.keys() | identity.keys() if run.get(k) != identity.get(k)}
    return others == {"epochs"} and run["epochs"] > identity["epochs"]


def claim_out(out, run, restart=False):
    """Make ``out`` the place of ``run``: resume a checkpoint of the same run (also to more epochs than it was
    asked for before), or start over with ``restart``.

    Raises :class:`InputError` when ``out`` holds another run (or one of unknown
    identity) and ``restart`` is False; with ``restart`` the checkpoint is removed
    (the model already there stays until the new one replaces it).
    """
    stored = _stored_run(out)
    if stored is not None and _continues(stored, run):
        stored = None  # the same run with more epochs: its checkpoint resumes (Adam's state included)
    if stored is not None and stored[1] != run and not restart:
        where, identity = stored
        if identity is None:
            why = "a model or checkpoint that names no run"
        else:
            differing = sorted(k for k in run.keys() | identity.keys() if run.get(k) != identity.get(k))
            why = f"another run (it differs in {', '.join(differing)})"
        raise InputError(f"{where}: --out {out} holds {why}; add --restart to start over, or choose another --out")
    checkpoint = Path(f"{out}.checkpoint")
    if restart:
        shutil.rmtree(checkpoint, ignore_errors=True)
    checkpoint.mkdir(parents=True, exist_ok=True)
    write_json(checkpoint / RUN_FILE, run)


@contextlib.contextmanager
def run_lock(out):
    """Hold ``OUT.lock`` (it holds this process's PID) for the block; :class:`InputError` if a live run holds it.

    The lock is an ``flock`` on the file, which the system drops when its process
    ends, however it ends: the lock file of a killed run is taken over by the next.
    """
    path = Path(f"{out}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise InputError(f"{path}: another run (PID {holder}) is training into --out {out}; "
                             "wait for it to end or stop it") from None
        if path.exists() and os.stat(path).st_ino == os.fstat(fd).st_ino:
            break
        os.close(fd)  # the run before removed the file as we opened it: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def _preset(name, kind, patch_size, latent_dim, loss, channels):
    """The MVTec-style preset for a folder of one's own: ``kind`` picks the augmentation; images keep their size."""
    preset = replace(configure(name, patch_size=patch_size, latent_dim=latent_dim, loss=loss, channels=channels),
                     resize=None, gray=channels == 1)  # what the model was trained on, recorded in its manifest
    if kind == "texture":  # any orientation is as good as another: rotations and flips
        return replace(preset, kind=kind, rotate=True, max_angle=45.0, flip="both")
    return replace(preset, kind=kind)  # a part: orientation may matter, so no rotation or flips


def train_model(
    data, out, kind="texture", loss="ssim", patch_size=128, latent_dim=100, epochs=50, n_patches=10_000,
    batch_size=32, learning_rate=2e-4, gray=None, validation_fraction=0.1, min_defect_area=64, stride=None,
    seed=0, restart=False, progress=True,
):
    """Train on the defect-free images of ``data`` and write the model at ``out``; returns its manifest.

    Every option is checked before any image is read; ``seed`` seeds Keras, the
    patches and the validation split, so one command repeats itself on one machine.
    """
    check_train_options(kind, loss, patch_size, latent_dim, epochs, n_patches, batch_size, validation_fraction,
                        min_defect_area, out)
    images, paths = defect_free_images(data, gray)
    try:
        check_patch_size(images, patch_size, paths)
        fit_images, validation_images, held_out = split_validation(images, validation_fraction, seed)
    except DatasetError as error:
        hint = " (leave it out, or choose a smaller --patch-size)" if "smaller than the" in str(error) else ""
        raise InputError(f"{error}{hint}") from None
    except ValueError:  # too few images to hold some out
        raise InputError(f"{paths[0].parent}: {len(images)} image{'' if len(images) == 1 else 's'}; training needs "
                         f"at least one more than the {max(1, round(validation_fraction * len(images)))} "
                         "--validation-fraction holds out to set the threshold") from None
    channels = images[0].shape[-1]
    stride = stride or default_stride(patch_size)
    settings = {"loss": loss, "epochs": epochs, "n_patches": n_patches, "batch_size": batch_size,
                "learning_rate": learning_rate, "seed": seed}
    run = run_identity(paths, kind=kind, patch_size=patch_size, latent_dim=latent_dim, channels=channels, gray=gray,
                       validation_fraction=validation_fraction, min_defect_area=min_defect_area, stride=stride,
                       **settings)
    with run_lock(out):
        claim_out(out, run, restart)
        preset = _preset(Path(data).name, kind, patch_size, latent_dim, loss, channels)
        patches = training_patches(fit_images, preset, n_patches, seed)
        keras.utils.set_random_seed(seed)
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
            "settings": settings,
            "run": run,
            "epochs_done": len(history["loss"]),
            "loss": history["loss"],
            "seconds": history["seconds"],
        }
        detection = {
            "threshold": threshold, "min_defect_area": min_defect_area, "stride": stride, "preset": preset.as_dict(),
        }
        return artifacts.save_model(model, out, artifacts.architecture_of(model), training, detection=detection)


def _inputs(paths, out_dir):
    """Image files of the given files and folders, each once, and ``(path, problem)`` for paths that are neither.

    Maps and overlays a folder holds in or under ``out_dir`` (``*_map.png``,
    ``*_overlay.png``: outputs of an earlier run) are not inputs; a warning names them.
    """
    out_dir = out_dir.resolve()

    def is_output(file):
        return file.name.endswith(OUTPUT_SUFFIXES) and file.resolve().is_relative_to(out_dir)

    files, seen, bad = [], set(), []
    for path in map(Path, paths):
        if path.is_dir():
            listed = _image_files(path)
            found = [f for f in listed if not is_output(f)]
            outputs = [f.name for f in listed if is_output(f)]
            if outputs:
                warnings.warn(f"{path}: {len(outputs)} file{'s' if len(outputs) > 1 else ''} in --out taken for an "
                              f"earlier run's maps and overlays, not scored ({', '.join(outputs[:3])}"
                              f"{', ...' if len(outputs) > 3 else ''})", stacklevel=3)
            if not found:
                below = sorted(d.name for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
                bad.append((path, "folder holds no images" + (
                    f" (only subfolders: {', '.join(below[:4])}{', ...' if len(below) > 4 else ''}; detect does not "
                    f"search below a folder: give them, e.g. {path / '*'})" if below else "")))
        elif path.is_file():
            found = [path]
        else:
            bad.append((path, "no such file or folder"))
            continue
        for file in found:
            if file.resolve() not in seen:
                seen.add(file.resolve())
                files.append(file)
    return files, bad


def output_names(files):
    """``(map, overlay)`` paths relative to the output folder for each of ``files``.

    Each keeps its image's folder relative to the folder all ``files`` share, and is
    named ``<stem>_map.png`` / ``<stem>_overlay.png``; where two images of one folder
    share a stem (``a.png``, ``a.tif``) their whole names replace the stem.
    """
    resolved = [Path(os.path.abspath(f)) for f in files]  # a link named as given, not by its target
    if not resolved:
        return []
    common = Path(os.path.commonpath([r.parent for r in resolved]))
    stems = Counter((r.parent, r.stem) for r in resolved)
    names = []
    for r in resolved:
        base = r.stem if stems[(r.parent, r.stem)] == 1 else r.name
        folder = r.parent.relative_to(common)
        names.append(tuple(folder / f"{base}{suffix}" for suffix in OUTPUT_SUFFIXES))
    return names


def detection_settings(manifest, where, threshold=None, min_defect_area=None):
    """``(preset, stride, threshold, min_defect_area)`` to detect with the model of ``manifest`` (read from ``where``).

    ``threshold`` and ``min_defect_area`` override the manifest's.  A model from
    ``train`` brings all four; a study model (no ``detection`` entry) needs
    ``threshold`` and gets its stored preset or one with its loss's residual, the
    paper's stride and :data:`DEFAULT_MIN_DEFECT_AREA`.
    """
    patch_size = manifest["architecture"]["patch_size"]
    detection = manifest.get("detection")
    if detection is None:
        if threshold is None:
            raise InputError(
                f"{where}: has no detection threshold (a study model, not one from `ssimlib train`); give one with "
                "--threshold (for an MVTec AD model, metrics.threshold in results/mvtec/<name>.json)"
            )
        training = manifest.get("training") if isinstance(manifest.get("training"), dict) else {}
        stored = training.get("preset")
        if isinstance(stored, dict):
            preset = _stored_preset(stored, where, patch_size)
        else:
            settings = training.get("settings") if isinstance(training.get("settings"), dict) else {}
            loss = settings.get("loss")
            residual = loss if loss in RESIDUAL_KINDS else "ssim" if loss == "ms_ssim" else "l2"
            preset = replace(DEFAULT_PRESET, name=str(manifest.get("name")), patch_size=patch_size,
                             latent_dim=manifest["architecture"]["latent_dim"], residual=residual)
        return preset, default_stride(patch_size), threshold, min_defect_area or DEFAULT_MIN_DEFECT_AREA
    if not isinstance(detection, dict):
        raise InputError(f"{where}: its \"detection\" is not an object")
    try:
        check_threshold(detection.get("threshold"), "its detection threshold")
        check_count("its min_defect_area", detection.get("min_defect_area"))
        check_count("its stride", detection.get("stride"))
    except InputError as error:
        raise InputError(f"{where}: {error}") from None
    preset = _stored_preset(detection.get("preset"), where, patch_size)
    return (preset, detection["stride"], threshold or detection["threshold"],
            min_defect_area or detection["min_defect_area"])


def _stored_preset(stored, where, patch_size):
    """The :class:`CategoryPreset` a manifest stores, or :class:`InputError` naming ``where`` if it is not one."""
    try:
        preset = CategoryPreset.from_dict(stored)
    except (TypeError, AttributeError, KeyError):
        raise InputError(f"{where}: its preset is missing or incomplete") from None
    if (preset.residual not in RESIDUAL_KINDS or preset.background not in (*BACKGROUNDS, None)
            or preset.patch_size != patch_size
            or not (preset.resize is None or (isinstance(preset.resize, int) and preset.resize >= patch_size))):
        raise InputError(f"{where}: its preset's residual, background, patch_size or resize is not one detect can use")
    return preset


def _to_uint8(x):
    return (np.clip(x, 0.0, 1.0) * 255).round().astype(np.uint8)


def _save_png(path, image):
    """Write ``image`` (uint8) as PNG at ``path`` atomically, through a hidden partial file beside it."""
    partial = path.with_name(f".partial-{path.name}")
    skimage.io.imsave(partial, image, check_contrast=False)
    os.replace(partial, path)


def load_detector(model, threshold=None, precision="float32", min_defect_area=None):
    """The :class:`~ssimlib.apps.scoring.Detector` of the model at stem ``model``, at ``precision``.

    ``threshold`` and ``min_defect_area`` (pixels) override its manifest's; a study model
    needs ``threshold`` (:func:`detection_settings`).  :class:`InputError` naming the file
    when the model is missing, altered or cannot be used.
    """
    if threshold is not None:
        check_threshold(threshold)
    if min_defect_area is not None:
        check_count("--min-defect-area", min_defect_area)
    try:
        network, manifest = artifacts.load_model(model)
    except artifacts.ArtifactError as error:
        raise InputError(str(error)) from None
    preset, stride, threshold, min_area = detection_settings(
        manifest, artifacts.model_files(model)[1], threshold, min_defect_area
    )
    return Detector(with_precision(network, precision), preset, threshold, min_area, stride)


def detect(model, inputs, out_dir, threshold=None, precision="float32", min_defect_area=None):
    """Anomaly maps, overlays and a CSV for the images in ``inputs`` (see the module docstring); returns ``(rows, bad)``.

    ``model`` is the stem the model was written at; ``threshold`` and
    ``min_defect_area`` (pixels) override its manifest's; ``precision`` is the
    network's (:func:`ssimlib.inference.with_precision`).  ``bad`` lists
    ``(path, problem)`` for inputs that could not be used.  An ``out_dir`` that
    already holds a ``detections.csv`` is refused, so no run overwrites another's maps.
    """
    out_dir = Path(out_dir)
    check_out_folder(out_dir)
    if (out_dir / CSV_NAME).exists():
        raise InputError(f"{out_dir / CSV_NAME}: --out {out_dir} holds the detections of an earlier run; "
                         "choose another --out or remove it")
    detector = load_detector(model, threshold, precision, min_defect_area)
    files, bad = _inputs(inputs, out_dir)
    if not files:  # nothing to write: an empty detections.csv would only block the corrected run
        raise InputError("; ".join(f"{path}: {problem}" for path, problem in bad))
    names = output_names(files)
    existing = [out_dir / name for pair in names for name in pair if (out_dir / name).exists()]
    if existing:
        raise InputError(f"{existing[0]}: exists (an image of yours, or an earlier run's output), and this run would "
                         f"write {'its' if len(existing) == 1 else f'{len(existing)} such'} map or overlay there; "
                         "choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        csv_file = open(out_dir / CSV_NAME, "x", newline="")
    except FileExistsError:
        raise InputError(f"{out_dir / CSV_NAME}: another run has just started writing into --out {out_dir}") from None
    with csv_file:
        writer = csv.DictWriter(csv_file, CSV_COLUMNS)
        writer.writeheader()
        csv_file.flush()
        for path, (map_name, overlay_name) in zip(files, names):
            try:
                image = as_model_channels(read_image(path, size=detector.preset.resize), detector.network.channels,
                                          path)
                anomaly_map = detector.anomaly_map(image, path)
            except (DatasetError, ValueError) as error:
                bad.append((path, str(error).removeprefix(f"{path}: ")))
                continue
            segmentation = detector.segmentation(anomaly_map)
            overlay = gray2rgb(image[..., 0]) if image.shape[-1] == 1 else image.copy()
            overlay[segmentation] = 0.5 * overlay[segmentation] + 0.5 * np.array([1.0, 0.0, 0.0])
            (out_dir / map_name).parent.mkdir(parents=True, exist_ok=True)
            _save_png(out_dir / map_name, _to_uint8(anomaly_map / (2 * detector.threshold)))
            _save_png(out_dir / overlay_name, _to_uint8(overlay))
            area = int(segmentation.sum())
            rows.append({
                "path": str(path), "score": float(anomaly_map.max()), "defect_area_px": area,
                "verdict": "defective" if area else "good", "anomaly_map": map_name.as_posix(),
                "overlay": overlay_name.as_posix(),
            })
            writer.writerow(rows[-1])
            csv_file.flush()
    return rows, bad
