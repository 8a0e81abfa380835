"""Training a model into the model store, resumably: where checkpoints live, and how a stored model is continued.

The studies (:mod:`ssimlib.experiments.studies`, :mod:`ssimlib.experiments.checkerboard`,
:mod:`ssimlib.experiments.mvtec`, :mod:`ssimlib.experiments.sensitivity`) train through :func:`train_into_store`:

* After every epoch a checkpoint (weights with Adam's state, loss history) goes to
  ``<cache>/checkpoints/<study>/<name>`` (:func:`cache_dir`: ``$SSIMLIB_CACHE``, default
  ``~/.cache/ssimlib``), outside the work tree; a restarted job resumes there.
* Every ``export_every`` epochs and at the end, the model is written into
  ``models/<study>/<name>`` with its manifest (:mod:`ssimlib.artifacts`), so an
  unfinished model is already a labelled artifact the notebooks can evaluate.
* A machine without the checkpoint (a fresh clone) continues from the committed
  artifact of an unfinished model.  Artifacts carry no optimizer state, so Adam
  restarts there; the manifest lists the epochs at which that happened.
* :func:`snapshot` copies a checkpoint aside (the Table II base setting, see
  :mod:`ssimlib.experiments.sensitivity`); :func:`stage_end` is the epoch a staged call stops at.
"""

import os
import shutil
from pathlib import Path

from ssimlib import artifacts
from ssimlib.ssim import STANDARD
from ssimlib.train import (DECAY, OPTIONAL_SETTINGS, compile_autoencoder, epoch_line, read_checkpoint_state,
                           save_checkpoint)


def cache_dir():
    """Where long-running jobs keep their checkpoints: ``$SSIMLIB_CACHE`` or ``~/.cache/ssimlib``."""
    return Path(os.environ.get("SSIMLIB_CACHE") or "~/.cache/ssimlib").expanduser()


def _trained_alike(manifest, settings):
    """Whether a stored model was trained with ``settings`` (epochs aside; the settings recorded only where they are
    not the default, both ways)."""
    stored = manifest["training"]["settings"]
    return all(stored.get(k) == settings.get(k) for k in {*settings, *OPTIONAL_SETTINGS} if k != "epochs")


TRAINING_RECORD = {"epochs_done": int, "settings": dict}  # what every training into the store reads
CONTINUED_RECORD = {"loss": list, "seconds": (int, float)}  # what continuing from the stored model reads too


def _check_training_record(stem, manifest, record=TRAINING_RECORD):
    """ArtifactError (one line, naming the manifest) where a stored model's training record lacks what training
    into the store reads (``record``: :data:`TRAINING_RECORD`, :data:`CONTINUED_RECORD`)."""
    training = manifest.get("training")
    path = artifacts.model_files(stem)[1]
    if not isinstance(training, dict):
        raise artifacts.ArtifactError(f"{path}: its training record is missing or not an object; restore the "
                                      "manifest (`git checkout -- <file>` for a committed model) or move it aside")
    for key, kind in record.items():
        if isinstance(training.get(key), bool) or not isinstance(training.get(key), kind):
            raise artifacts.ArtifactError(f"{path}: its training record lacks {key} (or it is not a "
                                          f"{getattr(kind, '__name__', 'number')}); restore the manifest "
                                          "(`git checkout -- <file>` for a committed model) or move it aside")


def _resume_from_artifact(stem, manifest, checkpoint_dir, settings, log):
    """Seed an empty checkpoint folder from a stored model trained with the same settings (but epochs)."""
    training = manifest["training"]
    if not _trained_alike(manifest, settings):
        log(f"{manifest['name']}: committed model was trained with other settings; starting afresh")
        return
    _check_training_record(stem, manifest, CONTINUED_RECORD)
    model, _ = artifacts.load_model(stem)
    compile_autoencoder(
        model, settings["loss"], settings["learning_rate"], settings["weight_decay"],
        settings["window_size"], settings["window"], settings.get("decay", DECAY),
        settings.get("ssim_constants", STANDARD),
    )
    # A fresh Adam state, its step count from 0: Adam's bias correction needs it so, and a learning-rate schedule
    # (decay "lr") starts over with it; the restart is listed in the history.
    model.optimizer.build(model.trainable_variables)
    done = training["epochs_done"]
    history = {
        "loss": training["loss"],
        "seconds": training["seconds"],
        "optimizer_restarts": training.get("optimizer_restarts", []) + [done],
        "machines": training.get("machines", []),
        **({"val_loss": training["val_loss"]} if "val_loss" in training else {}),
    }
    save_checkpoint(model, checkpoint_dir, {"settings": settings, "history": history})
    log(f"{manifest['name']}: no checkpoint in {checkpoint_dir}; continuing the committed model from epoch {done} "
        "with a fresh Adam state")


def snapshot(checkpoint_dir, target):
    """Copy a checkpoint folder (weights with Adam's state, state.json) to ``target``, atomically."""
    target = Path(target)
    if target.exists():
        return
    partial = target.with_name("partial-" + target.name)
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(checkpoint_dir, partial)
    os.replace(partial, target)


def stage_end(until, schedule_epochs):
    """The epoch a training call stops at: ``until`` (a stage of the schedule) capped at the schedule, else its end."""
    return min(until or schedule_epochs, schedule_epochs)


def train_into_store(fit, stem, checkpoint_dir, settings, record, schedule_epochs, export_every=10, log=print,
                     on_epoch=None, feature_extractor=None, until=None, **extra):
    """Train a model into the model store at ``stem``, checkpointed per epoch in ``checkpoint_dir``.

    ``fit(checkpoint_dir, on_epoch)`` trains (resuming from the checkpoint) and
    returns ``(model, history)``; ``settings`` are :func:`ssimlib.train.training_settings`
    (a checkpoint or stored model made with other settings is not continued);
    ``record`` (what was trained on what, e.g. ``method``, ``data``, ``settings``)
    goes into the manifest's training record, ``extra`` into the manifest.
    Without a checkpoint, a stored model of the same settings is continued
    (Adam restarts); one that already has the epochs asked (``until``, else the
    whole schedule) is returned as it is, without calling ``fit``.  The
    model is exported every ``export_every`` epochs and at the end;
    ``on_epoch(model, history)`` runs after every epoch.  ``until`` (a stage of
    the schedule) stops this call at that epoch, and ``fit`` must train up to it;
    the manifest still counts the epochs of the whole schedule.  Returns the
    manifest of the last export.  The validation loss, where ``fit`` logs one, gets a line of its own after
    every epoch.
    """
    name = Path(stem).name
    target = stage_end(until, schedule_epochs)
    manifest = artifacts.read_manifest(stem)
    state = read_checkpoint_state(checkpoint_dir)
    if manifest is not None:
        _check_training_record(stem, manifest)
        done = manifest["training"]["epochs_done"]
        stored_alike = _trained_alike(manifest, settings)
        checkpointed = None if state is None else len(state["history"]["loss"])
        if stored_alike and done >= target and checkpointed in (None, done):
            log(f"{name}: the stored model has {done} of {schedule_epochs} epochs; nothing to train up to "
                f"epoch {target}")
            return manifest
        if state is None:
            _resume_from_artifact(stem, manifest, checkpoint_dir, settings, log)

    def export(model, history):
        nonlocal manifest
        training = {
            **record,
            "epochs_done": len(history["loss"]),
            "schedule_epochs": schedule_epochs,
            "complete": len(history["loss"]) >= schedule_epochs,
            "loss": history["loss"],
            "seconds": history["seconds"],
            "optimizer_restarts": history.get("optimizer_restarts", []),
            "machines": history.get("machines", []),
            **({"val_loss": history["val_loss"]} if "val_loss" in history else {}),
        }
        manifest = artifacts.save_model(model, stem, artifacts.architecture_of(model, feature_extractor), training,
                                        **extra)
        log(f"{name}: exported after epoch {training['epochs_done']} to {manifest['weights']}")

    patches_per_epoch = settings["n_patches"] // settings["batch_size"] * settings["batch_size"]

    def after_epoch(model, history):
        log(f"{name}: {epoch_line(history, schedule_epochs, patches_per_epoch)}")
        if "val_loss" in history:
            log(f"{name}: validation loss {history['val_loss'][-1]:.5f}")
        if on_epoch is not None:
            on_epoch(model, history)
        if len(history["loss"]) % export_every == 0 and len(history["loss"]) < schedule_epochs:
            export(model, history)

    stage = f" (this stage: up to epoch {target})" if target < schedule_epochs else ""
    log(f"{name}: training on {settings['n_patches']} patches, {schedule_epochs} epochs{stage}, "
        f"checkpoints in {checkpoint_dir}")
    model, history = fit(checkpoint_dir, after_epoch)
    if manifest is None or manifest["training"]["epochs_done"] != len(history["loss"]):
        export(model, history)
    return manifest
