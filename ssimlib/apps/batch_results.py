"""Which earlier results a batch may keep: ``<results-dir>/<category>-<loss>-<setup>.json`` files that are complete,
of the same profile, settings, data and training schedule, and from the model stored now."""

import json
from pathlib import Path

from ssimlib.data import is_image_file
from ssimlib.experiments.presets import configure
from ssimlib.fingerprints import category_fingerprint

# Notebook 04's parameters whose None means "the category's preset": a results file records what they resolved to.
PRESET_PARAMETERS = ("patch_size", "latent_dim", "resize", "residual")

# Notebook parameters of the training schedule, recorded in a result's model_store (epochs as schedule_epochs).
TRAINING_PARAMETERS = ("epochs", "n_patches", "batch_size", "learning_rate")


def _record(path):
    """The results file at ``path`` as a dict, or ``{}`` where it cannot be read."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def result_model_finished(path):
    """True if the results file at ``path`` says its model had every epoch of its schedule."""
    store = _record(path).get("model_store") or {}
    if "complete" in store:
        return store["complete"] is True
    return isinstance(store.get("epochs_done"), int) and store["epochs_done"] >= (store.get("schedule_epochs") or 0) > 0


def result_epochs(path):
    """``"<epochs done>/<schedule>"`` of the model a results file evaluated, or None."""
    store = _record(path).get("model_store") or {}
    return f"{store['epochs_done']}/{store['schedule_epochs']}" if "epochs_done" in store else None


def result_is_complete(path, label, since=None):
    """True if ``path`` is a complete results file of profile ``label`` (written at or after ``since``, a time
    stamp)."""
    path = Path(path)
    record = _record(path)
    try:
        modified = path.stat().st_mtime
    except OSError:
        return False
    return (
        record.get("complete") is True
        and record.get("profile") == label
        and "pixel_auroc" in record.get("metrics", {})
        and (since is None or modified >= since)
    )


def resolved_preset(category, loss, values, setup):
    """``{parameter: value}`` of :data:`PRESET_PARAMETERS` as a run with notebook parameters ``values`` resolves
    them for ``category`` and ``loss`` (``values``' own, else the preset's), to compare with what a results file
    recorded; a residual the preset leaves to the images' channels, and a size it leaves open, are left out."""
    preset = configure(category, **{key: values.get(key) for key in PRESET_PARAMETERS}, loss=loss, setup=setup)
    return {key: getattr(preset, key) for key in PRESET_PARAMETERS if getattr(preset, key) is not None}


def result_differences(path, parameters, category_dir, train=False, fingerprint=category_fingerprint):
    """``{what: (recorded, now)}`` where the results file at ``path`` is of other settings or data than asked.

    ``parameters`` are the notebook parameters a run would have (its defaults, the profile's and ``-p``'s), compared
    with those its ``settings`` record; with ``train``, also the training schedule (:data:`TRAINING_PARAMETERS`)
    with its model's; and the counts of training and test images with those ``category_dir`` holds now
    (``train/good``, ``test/good``, the other ``test/<type>`` folders), and where recorded the fingerprint of its
    images and masks (``fingerprint`` of ``category_dir``, :func:`ssimlib.fingerprints.category_fingerprint`: an
    image edited in place, or another data root with as many images; a batch hashes each category once for all its
    models).
    """
    record = _record(path)
    settings = record.get("settings") or {}
    differ = {key: (settings[key], value) for key, value in parameters.items()
              if key in settings and settings[key] != value}
    if train:
        store = record.get("model_store") or {}
        trained = {**(store.get("settings") or {}), "epochs": store.get("schedule_epochs")}
        differ.update({key: (trained[key], parameters[key]) for key in TRAINING_PARAMETERS
                       if key in parameters and trained.get(key) is not None and trained[key] != parameters[key]})

    def count(folders):
        return sum(1 for folder in folders if folder.is_dir() for p in folder.iterdir() if is_image_file(p))

    category_dir = Path(category_dir)
    tests = [f for f in (category_dir / "test").iterdir() if f.is_dir()] if (category_dir / "test").is_dir() else []
    counts = {"n_test_good": count(f for f in tests if f.name == "good"),
              "n_test_defective": count(f for f in tests if f.name != "good")}
    if "n_train" in settings and "n_validation" in settings:
        counts["n_train"] = count([category_dir / "train" / "good"]) - settings["n_validation"]
    differ.update({key: (settings[key], value) for key, value in counts.items()
                   if key in settings and settings[key] != value})
    if settings.get("data_sha256") and settings["data_sha256"] != fingerprint(category_dir):
        differ["data_sha256"] = (settings["data_sha256"][:12], "other images or masks now")
    return differ


def result_is_stale(path, manifest):
    """True if the results file at ``path`` evaluated another model than the one whose stored ``manifest`` (a dict,
    :func:`ssimlib.artifacts.read_manifest`'s) is given.

    False when either says nothing about it (no stored model: None; no hash in the results file).
    """
    evaluated = (_record(path).get("model_store") or {}).get("sha256")
    stored = (manifest or {}).get("sha256")
    return bool(evaluated and stored and evaluated != stored)
