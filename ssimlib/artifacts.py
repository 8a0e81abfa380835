"""Trained models as versioned artifacts: weights plus a JSON manifest.

A model is two files that share a path *stem* (the study's models live at
``models/<study>/<name>``, see :func:`study_model`; a model of your own anywhere):

* ``<stem>.weights.h5``: the Keras weights (no optimizer state);
* ``<stem>.json``: its manifest, with the architecture (enough to rebuild the
  model), the training record (settings, epochs done, loss per epoch, wall time,
  which epochs ran on which CPU), the machine of the last export, the commit of
  the code that trained it, the sha256 of the weights file and of the architecture it was saved with, and
  whatever else its maker adds (e.g. a detection threshold).

:func:`save_model` writes both as a pair: into a hidden staging folder
``.<name>.saving/`` beside them first, then moved into place, weights before
manifest.  A save killed before the moves leaves the old pair (the staging folder
is removed by the next read or save); one killed between the moves leaves the new
weights and the staged manifest, which the next read moves into place (its sha256
names those weights), so a reader always sees a matching pair.
:func:`load_model` rebuilds the model from the manifest, checks the hash and loads
the weights, and raises :class:`ArtifactError` naming the file and what is wrong.
"""

import functools
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from ssimlib.architecture import LINEAR, OUTPUTS, encoder_layer_spec
from ssimlib.records import run_environment, write_json
from ssimlib.paths import REPO_ROOT

MODELS_DIR = REPO_ROOT / "models"
MODEL_CLASSES = ("ConvAutoencoder", "VariationalAutoencoder", "FeatureMatchingAutoencoder")


class ArtifactError(ValueError):
    """A model artifact is missing, altered or not what its manifest says."""


def model_files(stem):
    """``(weights, manifest)`` paths of the model at ``stem`` (given with or without ``.weights.h5`` / ``.json``)."""
    stem = Path(stem)
    for suffix in (".weights.h5", ".json"):
        if stem.name.endswith(suffix):
            stem = stem.with_name(stem.name.removesuffix(suffix))
    return stem.with_name(stem.name + ".weights.h5"), stem.with_name(stem.name + ".json")


def study_model(study, name, root=None):
    """Stem of model ``name`` of ``study`` in the model store ``root`` (default: the repository's ``models/``)."""
    return Path(root or MODELS_DIR) / study / name


def architecture_digest(architecture):
    """Hex sha256 of ``architecture`` as JSON with sorted keys: a manifest's ``architecture_sha256``, which tells an
    architecture edited after the save (an ``output`` changed loads the weights under another activation)."""
    return hashlib.sha256(json.dumps(architecture, sort_keys=True).encode()).hexdigest()


def sha256(path):
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.cache
def code_commit():
    """The commit of this repository's code (``+dirty`` when ``ssimlib/`` differs from it), or None outside git.

    Read once per process: a training job asks at its start, so later edits of the
    work tree do not change what its models record.
    """
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "ssimlib")
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def architecture_of(model, feature_extractor=None):
    """The manifest's description of ``model``; ``feature_extractor`` names an FM-AE's F."""
    kind = type(model).__name__
    if kind not in MODEL_CLASSES:
        raise ArtifactError(f"cannot describe a {kind}; expected one of {', '.join(MODEL_CLASSES)}")
    description = {
        "class": kind, "patch_size": model.patch_size, "channels": model.channels, "latent_dim": model.latent_dim,
    }
    if model.output_activation != LINEAR:  # every model before the choice existed is linear and says nothing
        description["output"] = model.output_activation
    if kind == "VariationalAutoencoder":
        description["seed"] = model.seed
    if kind == "FeatureMatchingAutoencoder":
        if feature_extractor is None:
            raise ArtifactError("an FM-AE's manifest needs the name of its feature extractor")
        description.update(feature_extractor=feature_extractor, fm_weight=model.weight)
    return description


def build_model(architecture):
    """A fresh, built model from a manifest's ``architecture`` dict."""
    from ssimlib import models

    kind = architecture.get("class")
    p, c, d = architecture["patch_size"], architecture["channels"], architecture["latent_dim"]
    if kind == "ConvAutoencoder":
        model = models.ConvAutoencoder(p, c, d, output=architecture.get("output", LINEAR))
    elif kind == "VariationalAutoencoder":
        model = models.VariationalAutoencoder(p, c, d, seed=architecture.get("seed"))
    elif kind == "FeatureMatchingAutoencoder":
        from ssimlib.features import load_feature_extractor

        features = load_feature_extractor(architecture["feature_extractor"], input_shape=(p, p, c))
        model = models.FeatureMatchingAutoencoder(features, p, c, d, weight=architecture["fm_weight"])
    else:
        raise ArtifactError(f"unknown model class {kind!r}; expected one of {', '.join(MODEL_CLASSES)}")
    model(np.zeros((1, p, p, c), np.float32))
    return model


def staging_folder(stem):
    """The hidden folder :func:`save_model` writes the model at ``stem`` into before moving it in place."""
    stem = Path(stem)
    return stem.with_name(f".{stem.name}.saving")


def finish_interrupted_save(stem):
    """Complete or discard what a killed :func:`save_model` left at ``stem``.

    The staged manifest is moved in when the weights in place are the ones it
    names (the save was killed between its two moves); otherwise the staging
    folder is stale and removed, leaving the previous pair as it was.
    """
    staging = staging_folder(stem)
    if not staging.is_dir():
        return
    weights, manifest_path = model_files(stem)
    staged = staging / manifest_path.name
    if staged.exists() and not (staging / weights.name).exists() and weights.exists():
        try:
            moved_in = json.loads(staged.read_text()).get("sha256") == sha256(weights)
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, OSError):  # unreadable: not the save's
            moved_in = False
        if moved_in:
            os.replace(staged, manifest_path)
    shutil.rmtree(staging, ignore_errors=True)


def save_model(model, stem, architecture, training, **extra):
    """Write ``model``'s weights and manifest at ``stem`` as a pair (see the module docstring); returns the manifest.

    ``training`` holds the settings, ``epochs_done``, ``loss`` history and
    ``seconds`` (and anything else worth recording); ``extra`` entries are added
    to the manifest as they are.
    """
    weights, manifest_path = model_files(stem)
    weights.parent.mkdir(parents=True, exist_ok=True)
    finish_interrupted_save(stem)
    staging = staging_folder(stem)
    staging.mkdir()
    # A compiled model's weights file would carry Adam's state too (twice the size): save an uncompiled copy.
    clean = build_model(architecture)
    clean.set_weights(model.get_weights())
    clean.save_weights(staging / weights.name)
    manifest = {
        "name": Path(stem).name,
        "weights": weights.name,
        "sha256": sha256(staging / weights.name),
        "architecture": architecture,
        "architecture_sha256": architecture_digest(architecture),
        "training": training,
        **extra,
        "machine": run_environment(),
        "code_commit": code_commit(),
    }
    write_json(staging / manifest_path.name, manifest)
    os.replace(staging / weights.name, weights)
    os.replace(staging / manifest_path.name, manifest_path)
    staging.rmdir()
    return manifest


def read_manifest(stem):
    """The manifest (a dict) of the model at ``stem``, or None when there is none."""
    finish_interrupted_save(stem)
    _, path = model_files(stem)
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ArtifactError(f"{path}: not a valid manifest ({error})") from None
    except OSError as error:  # a folder of that name, say
        raise ArtifactError(f"{path}: cannot be read as a manifest ({error.strerror or error})") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path}: not a valid manifest (a JSON {type(manifest).__name__}, not an object)")
    return manifest


def files_problem(stem, manifest):
    """What keeps the model at ``stem`` with its ``manifest`` from loading, found without building it (its architecture
    as saved, its weights file there and of the manifest's sha256), else ''."""
    weights, manifest_path = model_files(stem)
    if not isinstance(manifest.get("architecture"), dict):
        return f"{manifest_path}: its architecture is missing or not an object"
    saved_with = manifest.get("architecture_sha256")  # models saved before it was recorded have none
    if saved_with is not None and saved_with != architecture_digest(manifest["architecture"]):
        return (f"{manifest_path}: its architecture is not the one its weights were saved with (its "
                "architecture_sha256 differs; restore the manifest: `git checkout -- <file>` for a committed model)")
    if not weights.exists():
        named = manifest.get("weights")
        moved = "" if not isinstance(named, str) or named == weights.name else (
            f" (the manifest names {named}: renamed or copied without its weights? a model's weights lie beside its "
            "manifest as <name>.weights.h5)")
        return f"{weights}: the weights of the manifest {manifest_path.name} are missing{moved}"
    try:
        actual = sha256(weights)
    except OSError as error:  # a folder of that name, a file it may not read
        return (f"{weights}: the weights its manifest {manifest_path.name} names cannot be read "
                f"({error.strerror or type(error).__name__})")
    if actual != manifest.get("sha256"):
        recorded = str(manifest.get("sha256"))[:12]
        return (f"{weights}: sha256 {actual[:12]}... differs from its manifest's {recorded}...; the file was altered "
                "or belongs to another manifest (restore it: `git checkout -- <file>` for a committed model; or train "
                "it again)")
    return ""


def load_model(stem):
    """Rebuild the model at ``stem``, check its hash and load its weights: ``(model, manifest)``."""
    weights, manifest_path = model_files(stem)
    manifest = read_manifest(stem)
    if manifest is None and Path(stem).is_dir():  # a folder of models given for one
        example = min((p for p in Path(stem).glob("*.json") if p.with_suffix(".weights.h5").is_file()), default=None)
        raise ArtifactError(f"{stem}: a folder; expected a model, the path of its .json (or of its .json and "
                            "its .weights.h5 without their endings)"
                            + (f", e.g. {example.with_suffix('')}" if example else ""))
    if manifest is None:
        orphan = (f"; its weights {weights.name} lie there without it: restore the manifest (git checkout -- "
                  "<file>, for a committed model) or train anew" if weights.is_file() else "")
        raise ArtifactError(f"{manifest_path}: no such model manifest (train the model first, see README){orphan}")
    problem = files_problem(stem, manifest)
    if problem:
        raise ArtifactError(problem)
    problem = architecture_problem(manifest["architecture"])
    if problem:
        raise ArtifactError(f"{manifest_path}: {problem}")
    try:
        model = build_model(manifest["architecture"])
    except (KeyError, TypeError, ValueError, AttributeError, OSError) as error:
        raise ArtifactError(f"{manifest_path}: its architecture cannot be built ({error})") from None
    mismatch = _shape_mismatch(model, weights)
    if mismatch:
        raise ArtifactError(f"{weights}: does not fit the architecture in its manifest {manifest_path.name} "
                            f"({_describe(manifest['architecture'])}): {mismatch}")
    try:
        model.load_weights(weights)
    except (KeyError, TypeError, ValueError, AttributeError, OSError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ArtifactError(f"{weights}: does not fit the architecture in its manifest ({first})") from None
    return model, manifest


ARCHITECTURE_INTEGERS = ("patch_size", "channels", "latent_dim")  # every class's; positive integers


def architecture_problem(architecture):
    """What is wrong with a manifest's ``architecture`` dict, in words, or None (checked before Keras builds it)."""
    if architecture.get("class") not in MODEL_CLASSES:
        return f"architecture class {architecture.get('class')!r}: expected one of {', '.join(MODEL_CLASSES)}"
    output = architecture.get("output", LINEAR)
    if output not in OUTPUTS or (output != LINEAR and architecture["class"] != "ConvAutoencoder"):
        return f"architecture output {output!r}: expected one of {', '.join(OUTPUTS)} (a ConvAutoencoder's only)"
    for key in ARCHITECTURE_INTEGERS:
        value = architecture.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return f"architecture {key} {value!r}: expected a positive integer"
    try:
        encoder_layer_spec(architecture["patch_size"])
    except ValueError as error:
        return f"architecture {error}"
    return None


def _describe(architecture):
    return ", ".join(f"{key} {architecture[key]}" for key in ARCHITECTURE_INTEGERS)


def _shape_mismatch(model, weights):
    """How the arrays in the weights file ``weights`` differ in shape from ``model``'s variables, or None."""
    import collections

    import h5py

    stored = collections.Counter()
    try:
        with h5py.File(weights, "r") as file:
            file.visititems(lambda name, item: stored.update([item.shape]) if isinstance(item, h5py.Dataset) else None)
    except OSError as error:
        return f"not a readable weights file ({error})"
    built = collections.Counter(tuple(v.shape) for v in model.weights)
    if stored == built:
        return None
    extra, missing = sorted(stored - built), sorted(built - stored)
    return (f"the file holds arrays of shape {', '.join(map(str, extra[:2])) or 'none other'}"
            f"{', ...' if len(extra) > 2 else ''} where the architecture has "
            f"{', '.join(map(str, missing[:2])) or 'none'}{', ...' if len(missing) > 2 else ''} (the manifest was "
            "edited, or belongs to other weights)")


def list_models(study, root=None):
    """Names of the models of ``study`` in the model store ``root`` that have a manifest."""
    folder = Path(root or MODELS_DIR) / study
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def load_study_models(study, names, root=None):
    """The stored models of ``study`` named by ``names`` (key -> model name), from the store ``root``.

    Returns ``(models, manifests, missing)``: dicts by key of the loaded models and
    their manifests, and the keys without a stored model.  An altered file raises
    :class:`ArtifactError`.
    """
    models, manifests, missing = {}, {}, []
    for key, name in names.items():
        stem = study_model(study, name, root)
        if read_manifest(stem) is None:
            missing.append(key)
            continue
        models[key], manifests[key] = load_model(stem)
    return models, manifests, missing
