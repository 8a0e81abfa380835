"""One MVTec AD category end to end: held-out validation images, augmented patches,
background masks, metrics and the category's results file.

Used by ``notebooks/04_mvtec_category.ipynb`` (one category) and :mod:`ssimlib.apps.batch`;
settings come from :mod:`ssimlib.experiments.presets`.  The summary of all results files
(notebook 05) is :mod:`ssimlib.experiments.mvtec_summary`, notebook 04's figures
:mod:`ssimlib.experiments.mvtec_figures`.
"""

import json
import re
import warnings
from pathlib import Path

import keras
import numpy as np
import skimage.morphology
import skimage.transform
from scipy import ndimage
from skimage.color import rgb2gray

from ssimlib import artifacts
from ssimlib.data import is_image_file, sample_patches
from ssimlib.datasets import load_mvtec_category
from ssimlib.evaluate import anomaly_maps, summary_metrics
from ssimlib.fingerprints import category_fingerprint
from ssimlib.experiments.mvtec_runs import model_finished, model_stem, results_path, run_name
from ssimlib.experiments.presets import PAPER_MEAN_AU_PRO, PAPER_PIXEL_AUROC, ROTATE_SHARE, model_label
from ssimlib.models import ConvAutoencoder
from ssimlib.records import jsonable, write_json
from ssimlib.ssim import DEFAULT_WINDOW, STANDARD
from ssimlib.store_training import cache_dir, stage_end, train_into_store
from ssimlib.thresholds import classification_ratios, max_region_threshold
from ssimlib.train import train, training_settings

FPR_LIMIT = 0.3
NO_GOOD_TEST_IMAGES = "n/a: no defect-free test images"
# Gray levels (of 1) beyond which a pixel counts as background: the reference
# re-implementation thresholds 8-bit gray at 200 (white) and 50 (black).
BACKGROUND_LEVELS = {"white": 200 / 255, "black": 50 / 255}
PATCH_CHUNK = 512  # patches sampled per call, so the float32 working copy stays small


# The schedule of the committed MVTec AD models (``python -m ssimlib train-study mvtec``) and of
# notebook 04 when it trains: the papers' 10,000 patches, Adam 2e-4 and weight decay 1e-5;
# batch 32 as the NanoTWICE models (the same patches/s as 128 on the CPU, four times the steps).
# ``epochs`` is the paper's 200; a shorter budget is set per run and recorded in the manifest.
SCHEDULE = {
    "epochs": 200, "n_patches": 10000, "batch_size": 32, "learning_rate": 2e-4, "weight_decay": 1e-5,
    "window_size": 11, "window": DEFAULT_WINDOW, "seed": 0, "validation_fraction": 0.1,
}
# Preset fields a stored model must share with the preset it is evaluated with.
MODEL_PRESET_FIELDS = ("resize", "patch_size", "latent_dim", "gray", "rotate", "max_angle", "rotate_crop", "flip",
                       "loss", "setup")


# ---------------------------------------------------------------------------
# Data and stored models
# ---------------------------------------------------------------------------


def data_label(root, category):
    """``<root's folder>/<category>`` (e.g. ``mvtec_ad_grid_256/grid``): the data a model was trained on, as
    manifests and notebooks record it, without the absolute path of the machine that read it."""
    return f"{Path(root).resolve().name}/{category}"


def load_split(root, category, preset, validation_fraction, seed):
    """``(data, training_images, validation_images)`` of ``root/category`` read as ``preset`` says."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a missing test/good is reported by the caller
        data = load_mvtec_category(root, category, gray=preset.gray, size=preset.resize)
    train_images, validation_images, _ = split_validation(data.train_images, validation_fraction, seed)
    return data, train_images, validation_images


def train_category_model(root, category, preset, schedule=None, models_root=None, checkpoint_dir=None,
                         export_every=10, log=print, until=None):
    """Train ``preset``'s autoencoder on ``root/category`` into the model store; returns its manifest.

    ``schedule`` overrides entries of :data:`SCHEDULE`.  The validation images
    (``validation_fraction``, ``seed``) are held out and recorded, so that
    evaluation takes its threshold from the same images.  Checkpoints per epoch
    in ``checkpoint_dir`` (default ``<cache>/checkpoints/mvtec/<run_name>``); a
    restarted call resumes there.  ``until`` stops at that epoch of the schedule
    (a stage: a later call continues from the checkpoint).
    """
    schedule = {**SCHEDULE, **(schedule or {})}
    name = run_name(category, preset.loss, preset.setup)
    data, train_images, validation_images = load_split(
        root, category, preset, schedule["validation_fraction"], schedule["seed"])
    settings = training_settings(
        preset.loss, schedule["epochs"], schedule["batch_size"], schedule["learning_rate"], schedule["weight_decay"],
        schedule["window_size"], schedule["window"], schedule["seed"], schedule["n_patches"],
    )
    record = {
        "method": model_label(preset.loss),
        "data": f"{data_label(root, category)}: {len(train_images)} of {len(data.train_images)} train/good images "
                f"({len(validation_images)} held out for the threshold)",
        "settings": {**settings, "validation_fraction": schedule["validation_fraction"],
                     "patch_size": preset.patch_size, "latent_dim": preset.latent_dim},
        "preset": preset.as_dict(),
        "data_sha256": category_fingerprint(Path(root) / category, ("train",)),
    }

    def fit(checkpoint_dir, on_epoch):
        keras.utils.set_random_seed(schedule["seed"])
        model = ConvAutoencoder(preset.patch_size, data.channels, preset.latent_dim)
        patches = training_patches(train_images, preset, schedule["n_patches"], schedule["seed"])
        history = train(
            model, patches, loss=preset.loss, epochs=stage_end(until, schedule["epochs"]),
            batch_size=schedule["batch_size"],
            learning_rate=schedule["learning_rate"], weight_decay=schedule["weight_decay"],
            window_size=schedule["window_size"], window=schedule["window"], seed=schedule["seed"],
            checkpoint_dir=checkpoint_dir, progress=False, on_epoch=on_epoch,
        )
        return model, history

    checkpoint_dir = Path(checkpoint_dir or cache_dir() / "checkpoints" / "mvtec" / name)
    return train_into_store(
        fit, model_stem(category, preset.loss, preset.setup, models_root), checkpoint_dir, settings, record,
        schedule["epochs"], export_every, log, until=until, study="mvtec", category=category,
    )


def finish_category_model(root, category, preset, schedule=None, models_root=None, checkpoint_dir=None, log=print):
    """Train the stored model of ``preset`` to the end of its schedule; returns its manifest.

    What notebook 04 does with ``train_missing``: a missing model is trained from
    scratch (:func:`train_category_model`), one that stopped before the end of its
    schedule (a job killed at epoch 15 of 200 after its export at epoch 10, or a
    50-epoch stage) trains on from its checkpoint in ``checkpoint_dir`` or, without
    one, from the stored weights; a finished one is returned as it is.  A stored
    model trained with other settings or another schedule than ``schedule`` asks
    for raises :class:`ssimlib.artifacts.ArtifactError` (it is never overwritten,
    and a finished one is not passed off as the model asked for).
    """
    schedule = {**SCHEDULE, **(schedule or {})}
    stem = model_stem(category, preset.loss, preset.setup, models_root)
    manifest = artifacts.read_manifest(stem)
    if manifest is not None:
        training = manifest["training"]
        asked = training_settings(
            preset.loss, schedule["epochs"], schedule["batch_size"], schedule["learning_rate"],
            schedule["weight_decay"], schedule["window_size"], schedule["window"], schedule["seed"],
            schedule["n_patches"],
        )
        stored = training["settings"]
        differ = {k: (stored.get(k), v) for k, v in asked.items() if k != "epochs" and stored.get(k) != v}
        if training["schedule_epochs"] != schedule["epochs"]:
            differ["schedule epochs"] = (training["schedule_epochs"], schedule["epochs"])
        trained_on = training.get("data_sha256")  # recorded since 2026-12-06
        if trained_on and trained_on != category_fingerprint(Path(root) / category, ("train",)):
            differ["training images (sha256)"] = (trained_on[:12], "other images now")
        if differ:
            state = "a finished" if model_finished(manifest) else "an unfinished"
            raise artifacts.ArtifactError(
                f"{artifacts.model_files(stem)[1]}: {state} model ({training['epochs_done']} of "
                f"{training['schedule_epochs']} epochs) trained with other settings than asked (stored, asked): "
                f"{differ}; ask for its own settings to use it, or choose another models_root"
            )
        if model_finished(manifest):
            return manifest
        log(f"{stem.name}: the stored model has {training['epochs_done']} of {training['schedule_epochs']} epochs; "
            "training on to the end of its schedule")
    return train_category_model(root, category, preset, schedule, models_root, checkpoint_dir, log=log)


def load_category_model(stem, preset, validation_fraction, seed, category_dir=None):
    """The stored model at ``stem`` and its manifest, checked against ``preset``, the validation split and, given
    ``category_dir``, the images of its ``train/`` now.

    Raises :class:`ssimlib.artifacts.ArtifactError` naming what differs: a model
    evaluated with another preset, or with a threshold from images it was trained on
    (another split, or other ``train/good`` images split alike), would give numbers that mean something else.
    The images are compared by their sha256 where the model recorded one (since 2026-12-06), else by their count.
    """
    model, manifest = artifacts.load_model(stem)
    training = manifest["training"]
    stored = training.get("preset", {})
    wanted = preset.as_dict()
    differ = {k: (stored.get(k), wanted[k]) for k in MODEL_PRESET_FIELDS if stored.get(k) != wanted[k]}
    split = (training["settings"].get("validation_fraction"), training["settings"].get("seed"))
    if split != (validation_fraction, seed):
        differ["validation_fraction, seed"] = (split, (validation_fraction, seed))
    images = {} if category_dir is None else _training_images_differ(training, Path(category_dir))
    if images and not differ:
        raise artifacts.ArtifactError(
            f"{artifacts.model_files(stem)[1]}: trained on other train/ images than {category_dir} holds now "
            f"(recorded, now): {images}; its threshold would be set on held-out images it may have trained on: "
            "evaluate it on the data it trained on, or train a model of this data (another models_root and "
            "train_missing=True)")
    differ.update(images)
    if differ:
        raise artifacts.ArtifactError(
            f"{artifacts.model_files(stem)[1]}: trained with other settings than asked (stored, asked): {differ}; "
            "choose matching parameters, or another models_root and train_missing=True"
        )
    return model, manifest


def _training_images_differ(training, category_dir):
    """``{what: (recorded, now)}`` where the ``train/`` of ``category_dir`` is not what the model of ``training`` (its
    manifest's record) trained on: its sha256 where recorded, else the count of ``train/good`` images its ``data``
    line gives (``238 of 264 train/good images``)."""
    if training.get("data_sha256"):
        now = category_fingerprint(category_dir, ("train",))
        return {} if now == training["data_sha256"] else {
            "train/ images (sha256)": (training["data_sha256"][:12], f"{now[:12]}, other images now")}
    counted = re.search(r" of (\d+) train/good images", training.get("data", ""))
    good = category_dir / "train" / "good"
    now = sum(map(is_image_file, good.iterdir())) if good.is_dir() else 0
    return {"train/good images": (int(counted[1]), now)} if counted and int(counted[1]) != now else {}


def schedule_label(manifest):
    """How a stored category model was trained, in one line: epochs of the schedule, patches, batch, learning rate."""
    t = manifest["training"]
    s = t["settings"]
    return (
        f"{t['epochs_done']} of {t['schedule_epochs']} epochs of {s['n_patches']:,} patches "
        f"(batch {s['batch_size']}, learning rate {s['learning_rate']:g})"
    )


# ---------------------------------------------------------------------------
# Training data
# ---------------------------------------------------------------------------


def split_validation(images, fraction, seed=0):
    """Hold out ``round(fraction * N)`` (at least 1 if ``fraction > 0``) images, drawn with ``seed``.

    Returns ``(training_images, validation_images, validation_indices)``; the
    validation images choose the segmentation threshold and are never trained on.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {fraction}")
    n_validation = max(1, round(fraction * len(images))) if fraction > 0 else 0
    if n_validation >= len(images):
        raise ValueError(f"cannot hold out {n_validation} of {len(images)} training images for validation")
    held_out = np.sort(np.random.default_rng(seed).choice(len(images), n_validation, replace=False))
    keep = np.setdiff1d(np.arange(len(images)), held_out)
    return [images[i] for i in keep], [images[i] for i in held_out], held_out


def rotate_whole(image, angle, background=None):
    """``image`` ``(H, W, C)`` turned by ``angle`` degrees about its centre; corners filled with the background.

    Near-white/near-black backgrounds fill with 1/0, otherwise with the nearest edge pixel.
    """
    fill = {"white": 1.0, "black": 0.0}.get(background)
    mode = "edge" if fill is None else "constant"
    return skimage.transform.rotate(
        image, angle, order=1, mode=mode, cval=fill or 0.0, preserve_range=True
    ).astype(np.float32)


def training_patches(images, preset, n_patches, seed=0):
    """``n_patches`` augmented training patches ``(n, p, p, C)``, float16 (half the memory; train casts per batch).

    A share :data:`~ssimlib.experiments.presets.ROTATE_SHARE` of the patches is rotated when
    ``preset.rotate``: with ``rotate_crop`` through :func:`ssimlib.data.sample_patches`
    (crop from inside a rotated region; if the image is too small for that
    region, ``sample_patches`` leaves the patch unrotated), without it by
    :func:`rotate_whole` before the crop (what the reference does for
    hazelnut and metal_nut).  ``preset.flip == "horizontal"`` mirrors half the
    patches left-right, which ``sample_patches`` cannot (it flips both ways).
    Deterministic for a given ``seed``.
    """
    rng = np.random.default_rng(seed)
    rotated = rng.random(n_patches) < (ROTATE_SHARE if preset.rotate else 0.0)
    angles = rng.uniform(-preset.max_angle, preset.max_angle, n_patches)
    mirror = rng.random(n_patches) < (0.5 if preset.flip == "horizontal" else 0.0)
    channels = images[0].shape[-1]
    patches = np.empty((n_patches, preset.patch_size, preset.patch_size, channels), np.float16)
    for start in range(0, n_patches, PATCH_CHUNK):
        index = np.arange(start, min(n_patches, start + PATCH_CHUNK))
        for turn in (False, True):
            chosen = index[rotated[index] == turn]
            if not chosen.size:
                continue
            sources = [images[i % len(images)] for i in chosen]
            if turn and not preset.rotate_crop:
                sources = [rotate_whole(s, angles[i], preset.background) for s, i in zip(sources, chosen)]
            patches[chosen] = sample_patches(
                sources, chosen.size, preset.patch_size, seed=[seed, start, int(turn)],
                rotate=turn and preset.rotate_crop, max_angle=preset.max_angle, flip=preset.flip == "both",
            )
    patches[mirror] = patches[mirror, :, ::-1]
    return patches


# ---------------------------------------------------------------------------
# Background mask
# ---------------------------------------------------------------------------


def object_mask(image, background, opening_radius=2):
    """Boolean ``(H, W)``: True on the object, False on its near-white or near-black background.

    As in the reference re-implementation: pixels whose gray value is above
    200/255 (``"white"``) or below 50/255 (``"black"``) are background; the
    background is opened with a disk of ``opening_radius`` px (isolated
    background-coloured specks on the object stay object) and the object's
    holes are filled (a dark defect inside the object stays object).  If
    everything would be background the whole image counts as object.
    """
    if background not in BACKGROUND_LEVELS:
        raise ValueError(f"background must be one of {tuple(BACKGROUND_LEVELS)}, got {background!r}")
    image = np.asarray(image)
    gray = rgb2gray(image) if image.ndim == 3 and image.shape[-1] == 3 else np.squeeze(image)
    level = BACKGROUND_LEVELS[background]
    back = gray > level if background == "white" else gray < level
    back = skimage.morphology.opening(back, skimage.morphology.disk(opening_radius))
    obj = ndimage.binary_fill_holes(~back)
    return obj if obj.any() else np.ones(gray.shape, bool)


def suppress_background(anomaly_map, image, background):
    """``anomaly_map`` with background pixels set to 0, the lowest residual (unchanged if ``background`` is None)."""
    if background is None:
        return anomaly_map
    return np.where(object_mask(image, background), anomaly_map, 0.0).astype(np.float32)


def category_maps(model, images, preset, stride, window_size=11, batch_size=64, window=DEFAULT_WINDOW,
                  constants=STANDARD):
    """Post-processed anomaly maps ``[(H, W)]`` and reconstructions of ``images`` for ``preset``.

    Sliding-window reconstruction, ``preset.residual`` residual (an SSIM one with the window and constants given),
    grey opening (:func:`ssimlib.evaluate.anomaly_maps`), then :func:`suppress_background`.
    """
    maps, reconstructions = anomaly_maps(
        model, images, kind=preset.residual, patch_size=preset.patch_size, stride=stride,
        window_size=window_size, batch_size=batch_size, window=window, constants=constants,
    )
    maps = [suppress_background(m, x, preset.background) for m, x in zip(maps, images)]
    return maps, reconstructions


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------


def category_metrics(test_maps, test_masks, test_labels, validation_maps, min_defect_area):
    """Pixel AUROC, AU-PRO@0.3, image AUROC, and the CVPR 2019 classification ratios.

    The threshold is :func:`ssimlib.thresholds.max_region_threshold` of the
    defect-free ``validation_maps`` (never of test images); an image counts as
    defective when its thresholded map has a region of ``min_defect_area`` px
    or more.  Values that need defect-free test images are None when there are none.
    """
    metrics = summary_metrics(test_maps, test_masks, test_labels, fpr_limit=FPR_LIMIT)
    threshold = max_region_threshold(validation_maps, min_defect_area)
    ratios = classification_ratios(test_maps, test_labels, threshold, min_defect_area)
    metrics.update(
        threshold=threshold,
        min_defect_area=min_defect_area,
        good_correct=None if np.isnan(ratios["good_correct"]) else ratios["good_correct"],
        defective_correct=None if np.isnan(ratios["defective_correct"]) else ratios["defective_correct"],
    )
    return metrics


def _value(x, digits=2):
    return NO_GOOD_TEST_IMAGES if x is None else f"{x:.{digits}f}"


def metric_lines(metrics, category, profile, loss):
    """Short labelled lines (2 decimals) of :func:`category_metrics`, with the paper's anchors."""
    model = model_label(loss)
    where = f"MVTec AD {category}, profile {profile}"
    anchor = PAPER_PIXEL_AUROC.get(category)
    pixel_anchor = f" (paper SSIM-AE {anchor['SSIM-AE']:.2f} | L2-AE {anchor['L2-AE']:.2f})" if anchor else ""
    pro_anchor = (
        f" (paper, mean over 15 categories: SSIM-AE {PAPER_MEAN_AU_PRO['SSIM-AE']:.3f} | "
        f"L2-AE {PAPER_MEAN_AU_PRO['L2-AE']:.3f})"
    )
    return [
        f"pixel AUROC, {where}: {model} {metrics['pixel_auroc']:.2f}{pixel_anchor}",
        f"AU-PRO@{FPR_LIMIT:g}, {where}: {model} {metrics[f'au_pro@{FPR_LIMIT:g}']:.2f}{pro_anchor}",
        f"image AUROC (score = max of map), {where}: {model} {_value(metrics['image_auroc'])}",
        (f"share correctly classified at the validation threshold (min area {metrics['min_defect_area']} px), "
         f"{where}: defect-free {_value(metrics['good_correct'])} | defective {_value(metrics['defective_correct'])}"),
    ]


# ---------------------------------------------------------------------------
# Results files
# ---------------------------------------------------------------------------


# Metrics of an earlier evaluation of the same run that :func:`write_results` keeps.
PROGRESS_METRICS = ("pixel_auroc", f"au_pro@{FPR_LIMIT:g}", "image_auroc", "good_correct", "defective_correct")


def _same_run(old, new):
    """Whether results records ``old`` and ``new`` evaluate one training run (perhaps at other epochs) alike."""
    keys = ("category", "profile", "setup", "model")
    old_store, new_store = old.get("model_store") or {}, new.get("model_store") or {}
    return (all(old.get(k) == new.get(k) for k in keys) and old.get("settings") == new.get("settings")
            and "epochs_done" in old_store and old_store.get("name") == new_store.get("name")
            and old_store.get("settings") == new_store.get("settings"))


def results_stage(record):
    """One stage of a results ``record``: epochs done of the schedule, model hash, finish time,
    :data:`PROGRESS_METRICS`."""
    store = record.get("model_store") or {}
    return {"epochs_done": store.get("epochs_done"), "schedule_epochs": store.get("schedule_epochs"),
            "sha256": store.get("sha256"), "finished": (record.get("time") or {}).get("finished"),
            **{k: record["metrics"].get(k) for k in PROGRESS_METRICS}}


def write_results(results_dir, record):
    """Write notebook 04's ``record`` to :func:`results_path` atomically, keeping earlier stages' metrics.

    If the file there holds a complete result of the same training run and
    evaluation settings whose model had fewer epochs (e.g. the 50-epoch stage of
    a model now at 200), its metrics go into ``record["earlier"]`` (with those of
    its own ``earlier``): one dict per stage, ``epochs_done``, ``schedule_epochs``,
    ``sha256``, ``finished`` and :data:`PROGRESS_METRICS`, sorted by epochs.
    Returns the path.
    """
    record = jsonable(record)  # as the file will hold it, so that it compares with the stored one
    path = results_path(results_dir, record["category"], record["settings"]["loss"], record["setup"])
    earlier = []
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        old = None
    epochs = record["model_store"]["epochs_done"]
    if isinstance(old, dict) and old.get("complete") and _same_run(old, record):
        earlier = [e for e in old.get("earlier", []) + [results_stage(old)] if e["epochs_done"] < epochs]
    record = {**record, "earlier": sorted(earlier, key=lambda e: e["epochs_done"])} if earlier else record
    return write_json(path, record)
