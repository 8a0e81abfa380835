"""Your own images: train an SSIM autoencoder on a folder of defect-free images (``python -m ssimlib train``).

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

Detection with such a model is :mod:`ssimlib.apps.own_detection`.

Bad input raises :class:`ssimlib.apps.own_options.InputError` with one line naming the file or option
(the options are checked there, before any work); the command line prints it and exits with status 2.
"""

import contextlib
import fcntl
import hashlib
import json
import math
import os
import shutil
import warnings
from dataclasses import replace
from pathlib import Path

import keras

from ssimlib import artifacts
from ssimlib.apps.file_names import DETECTIONS_CSV, is_detection_output
from ssimlib.apps.own_options import InputError, check_train_options
from ssimlib.apps.scoring import images_record
from ssimlib.data import (IMAGE_SUFFIXES, DatasetError, check_patch_size, image_files, is_image_file, mask_name_end,
                          not_a_folder, read_image)
from ssimlib.records import write_json
from ssimlib.experiments.mvtec import category_maps, split_validation, training_patches
from ssimlib.experiments.presets import configure
from ssimlib.fingerprints import data_fingerprint
from ssimlib.models import ConvAutoencoder
from ssimlib.thresholds import max_region_threshold
from ssimlib.train import STATE_FILE, train

RUN_FILE = "run.json"


def default_stride(patch_size):
    """Sliding-window stride in pixels: the paper's 30 at 128 px, scaled with the patch side."""
    return max(1, round(30 * patch_size / 128))


def _holds_images(folder):
    """Whether ``folder`` holds image files at its top (False where it cannot be listed)."""
    try:
        return any(is_image_file(path) for path in folder.iterdir())
    except OSError:
        return False


def defect_free_images(data, gray=None):
    """Images of ``data`` (a folder of images, or an MVTec AD-style category's ``train/good``), their paths and
    those of them that reading warned of (dark 16-bit data, ...)."""
    data = Path(data)
    if not data.is_dir():
        raise InputError(f"{data}: expected a folder of defect-free images, but {not_a_folder(data)}")
    folder = data / "train" / "good" if (data / "train" / "good").is_dir() else data
    if folder != data and any(is_image_file(p) for p in data.iterdir()):
        raise InputError(f"{data}: holds images at its top and an MVTec AD-style train/good; which are the "
                         f"defect-free ones? Give {folder}, or move train/ out of {data}")
    paths = image_files(folder)
    outputs = [path.name for path in paths if is_detection_output(path, within=folder)]
    if outputs:  # detect run with --out in the folder: its maps and overlays are no defect-free images
        warnings.warn(f"{folder}: {len(outputs)} file{'s' if len(outputs) > 1 else ''} beside a {DETECTIONS_CSV} "
                      f"taken for an earlier detect run's maps and overlays, not trained on ({', '.join(outputs[:3])}"
                      f"{', ...' if len(outputs) > 3 else ''})", stacklevel=2)
        paths = [path for path in paths if path.name not in outputs]
    if not paths:
        below = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
        raise InputError(f"{folder}: expected defect-free images ({', '.join(IMAGE_SUFFIXES)}), found none"
                         + (f" (only subfolders: {', '.join(below[:4])}{', ...' if len(below) > 4 else ''}; train "
                            "does not search below a folder: give the one of defect-free images)" if below else ""))
    nested = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")
                    and d.resolve() not in (folder.resolve(), *folder.resolve().parents)  # a link to itself, above
                    and _holds_images(d))
    if nested:  # a tester's: trained on the top's images without a word of the subfolder's
        warnings.warn(f"{folder}: images in its subfolder{'s' if len(nested) > 1 else ''} {', '.join(nested[:4])}"
                      f"{', ...' if len(nested) > 4 else ''} not trained on (train reads the images at the top of "
                      "the folder it is given)", stacklevel=2)
    masks = [path.name for path in paths if mask_name_end(path) is not None]
    if masks:  # a labelled folder given to train: its masks (and defective images) would be learnt as defect-free
        raise InputError(f"{folder}: holds {len(masks)} file(s) named like masks ({', '.join(masks[:3])}"
                         f"{', ...' if len(masks) > 3 else ''}); train on a folder of defect-free images only")
    images, problems, warned = [], [], []
    for path in paths:  # every unreadable file named at once, not one per run
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                images.append(read_image(path, gray))
        except DatasetError as error:
            problems.append(str(error))
        for warning in caught:  # told as they were, and which images they were about kept
            warnings.warn(warning.message, warning.category, stacklevel=2)
        if caught:
            warned.append(path)
    if problems:
        raise InputError("; ".join(problems) + (f" ({len(problems)} of {len(paths)} images unreadable)"
                                                if len(problems) > 1 else ""))
    channels = {image.shape[-1] for image in images}
    if len(channels) > 1:
        raise InputError(f"{folder}: the images mix gray and colour; choose --gray or --color")
    return images, paths, warned


def held_out_copies(images, held_out, paths):
    """``[(held-out name, name of a training image with the same pixels)]``: copies across the validation split."""
    def digest(image):
        return hashlib.sha256(image.tobytes() + str(image.shape).encode()).hexdigest()

    held = set(int(i) for i in held_out)
    trained = {digest(image): paths[i].name for i, image in enumerate(images) if i not in held}
    found = [(paths[i].name, trained.get(digest(images[i]))) for i in sorted(held)]
    return [(name, copy) for name, copy in found if copy]


def run_identity(paths, **settings):
    """What makes a run the same run: the data's folder and fingerprint, and ``settings`` as given."""
    return {"data": paths[0].parent.resolve().name, "data_sha256": data_fingerprint(paths), **settings}


def _stored_run(out):
    """``(file, identity)`` of the run already at ``out``: its checkpoint's, else its model's; None if neither.

    ``identity`` is None when the file names no run (from before runs were recorded, or broken).  A checkpoint
    without a finished epoch (a run stopped before its first) keeps nothing: the model's run is the one there.
    """
    checkpoint = Path(f"{out}.checkpoint")
    if (checkpoint / STATE_FILE).exists():
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


def _epochs_done(checkpoint):
    """Epochs the checkpoint folder ``checkpoint`` holds, or None where its state cannot be read."""
    try:
        return len(json.loads((Path(checkpoint) / STATE_FILE).read_text())["history"]["loss"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _continues(stored, run):
    """Whether ``run`` is the checkpointed run ``stored`` (:func:`_stored_run`) asked for other epochs, no fewer than
    its checkpoint has done (more go on; as many make the model of the epochs done: a stopped run's)."""
    where, identity = stored
    if where.name != RUN_FILE or not isinstance(identity, dict) or not isinstance(identity.get("epochs"), int):
        return False
    others = {k for k in run.keys() | identity.keys() if run.get(k) != identity.get(k)}
    done = _epochs_done(where.parent)
    return others == {"epochs"} and done is not None and run["epochs"] >= done


def claim_out(out, run, restart=False):
    """Make ``out`` the place of ``run``: resume a checkpoint of the same run (also to other epochs than it was
    asked for before, no fewer than it has done), or start over with ``restart``; a checkpoint without a finished
    epoch is no run in the way (:func:`_stored_run`).

    Raises :class:`InputError` when ``out`` holds another run (or one of unknown
    identity, or this run's model of other epochs without its checkpoint) and ``restart`` is False; with
    ``restart`` the checkpoint is removed (the model already there stays until the new one replaces it).
    Returns the epochs left to train, or None where ``out`` holds this run's finished model (nothing to do).
    """
    stored = _stored_run(out)
    if stored is not None and _continues(stored, run):
        stored = None  # the same run with other epochs: its checkpoint resumes (Adam's state included)
    if stored is not None and stored[1] != run and not restart:
        where, identity = stored
        if identity is None:
            why = "a model or checkpoint that names no run"
        else:
            differing = sorted(k for k in run.keys() | identity.keys() if run.get(k) != identity.get(k))
            done = _epochs_done(where.parent) if where.name == RUN_FILE else None
            if "epochs" in differing and done is not None and run["epochs"] >= done:
                differing.remove("epochs")  # other epochs alone would continue the checkpoint: not what is in the way
            elif done is not None and differing == ["epochs"]:
                raise InputError(f"{where}: --out {out} holds this run's checkpoint of {done} finished epochs, more "
                                 f"than --epochs {run['epochs']}; --epochs {done} makes the model of those, more "
                                 "go on (--restart starts over)")
            elif differing == ["epochs"]:  # the model of this run is there, its checkpoint is not
                raise InputError(f"{where}: --out {out} holds this run's model of {identity['epochs']} epochs but not "
                                 f"its checkpoint ({out}.checkpoint), so it cannot go on to {run['epochs']}; add "
                                 f"--restart to train {run['epochs']} epochs anew, or choose another --out")
            why = f"another run (it differs in {', '.join(differing)})"
        raise InputError(f"{where}: --out {out} holds {why}; add --restart to start over, or choose another --out")
    checkpoint = Path(f"{out}.checkpoint")
    if restart:
        shutil.rmtree(checkpoint, ignore_errors=True)
    elif _finished_model(out, run):
        return None  # this run's model, all its epochs: nothing to train
    done = _epochs_done(checkpoint) if (checkpoint / STATE_FILE).exists() else None
    checkpoint.mkdir(parents=True, exist_ok=True)
    write_json(checkpoint / RUN_FILE, run)
    return run["epochs"] - (done or 0)


def _finished_model(out, run):
    """Whether the model at ``out`` is ``run``'s, with all its epochs."""
    try:
        manifest = artifacts.read_manifest(out)
    except artifacts.ArtifactError:
        return False
    training = (manifest or {}).get("training")
    return isinstance(training, dict) and training.get("run") == run and training.get("epochs_done") == run["epochs"]


@contextlib.contextmanager
def run_lock(path, doing):
    """Hold the lock file ``path`` (it holds this process's PID) for the block; :class:`InputError` if a live run
    holds it, saying the run is ``doing`` (``"training into --out m"``).

    The lock is an ``flock`` on the file, which the system drops when its process
    ends, however it ends: the lock file of a killed run is taken over by the next.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise InputError(f"{path}: another run (PID {holder}) is {doing}; wait for it to end or stop it") from None
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
    seed=0, restart=False, progress=True, log=print,
):
    """Train on the defect-free images of ``data`` and write the model at ``out`` (given with or without the ending
    of its files); returns its manifest.  ``log`` tells of a run continued from its checkpoint, or already done.

    Every option is checked before any image is read; ``seed`` seeds Keras, the
    patches and the validation split, so one command repeats itself on one machine.
    """
    out = str(artifacts.model_files(out)[1])[: -len(".json")]  # the model's stem: its checkpoint and lock beside it
    check_train_options(kind, loss, patch_size, latent_dim, epochs, n_patches, batch_size, validation_fraction,
                        min_defect_area, out)
    images, paths, warned = defect_free_images(data, gray)
    try:
        check_patch_size(images, patch_size, paths)
        fit_images, validation_images, held_out = split_validation(images, validation_fraction, seed)
    except DatasetError as error:
        small = sum(min(image.shape[:2]) < patch_size for image in images)
        leave = "" if small == len(images) else f"leave {'them' if small > 1 else 'it'} out, or "
        hint = f" ({leave}choose a smaller --patch-size)" if "smaller than the" in str(error) else ""
        raise InputError(f"{error}{hint}") from None
    except ValueError:  # too few images to hold some out
        raise InputError(f"{paths[0].parent}: {len(images)} image{'' if len(images) == 1 else 's'}; training needs "
                         f"at least one more than the {max(1, round(validation_fraction * len(images)))} "
                         "--validation-fraction holds out to set the threshold") from None
    smallest = min(images, key=lambda image: image.shape[0] * image.shape[1])
    if min_defect_area > smallest.shape[0] * smallest.shape[1]:  # the threshold would rest on no region at all
        raise InputError(f"--min-defect-area {min_defect_area} is larger than the images (the smallest: "
                         f"{smallest.shape[1]}x{smallest.shape[0]} = {smallest.shape[0] * smallest.shape[1]} px); "
                         "choose fewer pixels")
    doubtful = [paths[i].name for i in held_out if paths[i] in warned]
    if doubtful:
        it = "it" if len(doubtful) == 1 else "them"
        warnings.warn(f"{paths[0].parent}: {', '.join(doubtful[:3])}{', ...' if len(doubtful) > 3 else ''} held out "
                      f"to set the detection threshold, and warned of above: the threshold rests on {it}; mend or "
                      f"remove {it} (or another --seed holds out other images)", stacklevel=2)
    if len(held_out) == 1 and not doubtful:
        more = math.ceil(1.5 / validation_fraction)  # round(fraction * N) >= 2
        warnings.warn(f"{paths[0].parent}: the detection threshold rests on a single held-out image "
                      f"({paths[held_out[0]].name}) of {len(images)}: it may come out too high or too low for other "
                      f"defect-free images; check it with detect on a few, or give at least {more} images (two held "
                      "out at this --validation-fraction)", stacklevel=2)
    copies = held_out_copies(images, held_out, paths)
    if copies:
        warnings.warn(f"{paths[0].parent}: {len(copies)} held-out image(s) are copies of training images ("
                      f"{', '.join(f'{a} = {b}' for a, b in copies[:3])}{', ...' if len(copies) > 3 else ''}): the "
                      "threshold is set on images the model learnt, so it may come out too low; remove the copies",
                      stacklevel=2)
    channels = images[0].shape[-1]
    stride = stride or default_stride(patch_size)
    settings = {"loss": loss, "epochs": epochs, "n_patches": n_patches, "batch_size": batch_size,
                "learning_rate": learning_rate, "seed": seed}
    run = run_identity(paths, kind=kind, patch_size=patch_size, latent_dim=latent_dim, channels=channels, gray=gray,
                       validation_fraction=validation_fraction, min_defect_area=min_defect_area, stride=stride,
                       **settings)
    with run_lock(f"{out}.lock", f"training into --out {out}"):
        left = claim_out(out, run, restart)
        if left is None:
            log(f"--out {out} holds this run's model, all {epochs} epochs trained: nothing to train (--restart trains "
                "it anew)")
            return artifacts.read_manifest(out)
        if left < epochs:
            log(f"continuing this run's checkpoint in {out}.checkpoint: {epochs - left} of {epochs} epochs done")
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
            "images": images_record(images),  # detect warns of images far darker or brighter
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
