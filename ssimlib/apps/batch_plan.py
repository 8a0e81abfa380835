"""What a batch will do, decided before anything runs: its categories, and for each (category, loss) whether its run
is skipped (its result is complete and current), fails up front (its category's folder lacks what it reads, or its
stored manifest cannot be read) or runs.

Each stored manifest is read once here (:func:`stored_manifests`), and every later decision uses that reading.
"""

import argparse
import functools
import warnings
from pathlib import Path

from ssimlib.apps.batch_results import (resolved_preset, result_differences, result_epochs, result_is_complete,
                                        result_is_stale, result_model_finished)
from ssimlib.artifacts import ArtifactError, files_problem, read_manifest
from ssimlib.data import DatasetError, not_a_folder
from ssimlib.datasets import mvtec_layout
from ssimlib.experiments.mvtec_runs import category_root, model_finished, model_stem, results_path, run_name
from ssimlib.experiments.presets import CATEGORIES
from ssimlib.fingerprints import category_fingerprint
from ssimlib.paths import data_root as default_data_root


def category_name(text):
    """A ``--categories`` name: a folder directly under the data root (``grid/``, as a shell completes it, is
    ``grid``; a longer path would name another preset and model than the category's)."""
    name = text.rstrip("/")
    if not name or name in (".", "..") or "/" in name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected the name of a category's folder directly under "
                                         "--data-root (grid, not a path)")
    return name


def find_categories(data_root, chosen=None):
    """``chosen``, or every MVTec AD category with a ``train`` folder under ``data_root``, in order;
    :class:`FileNotFoundError` for a ``data_root`` that is no folder or a chosen category with no folder there."""
    root = Path(data_root)
    if not root.is_dir():
        raise FileNotFoundError(f"--data-root {root}: {not_a_folder(root)}")
    if chosen:
        missing = [c for c in dict.fromkeys(chosen) if not (root / c).is_dir()]
        if missing:
            raise FileNotFoundError(f"--categories {' '.join(missing)}: no such folder under --data-root {root} "
                                    "(expected a category's folder holding train/good)")
        return list(dict.fromkeys(chosen))
    found = [c for c in CATEGORIES if (root / c / "train").is_dir()]
    if not found:
        own = sorted(p.name for p in root.iterdir() if (p / "train").is_dir())
        raise FileNotFoundError(
            f"{root}: no folder named as an MVTec AD category ({CATEGORIES[0]}, ...) with train/good; "
            + (f"name folders of your own with --categories ({', '.join(repr(c) for c in own[:3])}"
               f"{', ...' if len(own) > 3 else ''} hold train/)"
               if own else "name folders of your own with --categories")
        )
    return found


def located_categories(chosen=None):
    """``{category: folder holding it}`` without ``--data-root``: each where
    :func:`ssimlib.experiments.mvtec_runs.category_root` finds it.

    Every MVTec AD category found, or ``chosen``; a chosen one found nowhere raises :class:`FileNotFoundError`.
    """
    roots = {}
    for category in dict.fromkeys(chosen or CATEGORIES):
        try:
            roots[category] = category_root(category).resolve()
        except FileNotFoundError:
            if chosen:
                raise FileNotFoundError(f"--categories {category}: found under no data folder (looked under "
                                        f"{default_data_root('mvtec_ad')} and beside it); pass --data-root") from None
    if not roots:
        raise FileNotFoundError(
            f"no MVTec AD category under {default_data_root('mvtec_ad')} or beside it; pass --data-root"
        )
    return roots


def outcome(category, run, status, error=None, notebook=None, epochs=None):
    """The outcome of a run decided without running it (the keys of :func:`ssimlib.apps.batch.run_category`'s)."""
    return {"category": category, "run": run, "status": status, "error": error, "seconds": None, "gpu": None,
            "notebook": notebook, "epochs": epochs}


def stored_manifests(runs, setup, store):
    """Read each run's stored manifest once: ``({(category, loss): manifest or None}, failed outcomes)``.

    ``runs`` are ``(category, loss)`` pairs and ``store`` the model store (None: the repository's ``models/``).
    A manifest that cannot be read fails its run alone, with how to go on; its run is not in the dict.
    """
    manifests, failed = {}, []
    for category, loss in runs:
        stem = model_stem(category, loss, setup, store)
        try:
            manifests[category, loss] = read_manifest(stem)
        except ArtifactError as error:
            failed.append(outcome(category, run_name(category, loss, setup), "failed",
                                  f"ArtifactError: {error}; restore it (git checkout -- <file>, for a committed "
                                  f"model) or move {stem}.* aside to train it anew"))
    return manifests, failed


def layout_failures(roots, runs, setup):
    """Failed outcomes of the ``runs`` (``(category, loss)`` pairs) whose category's folder under ``roots`` lacks
    what notebook 04 reads (:func:`ssimlib.datasets.mvtec_layout`: training images, a defect type's masks, ...):
    found here in a moment, where each run found it after its kernel and Keras had started (a tester's: 45-80 s)."""
    problems = {}
    for category in dict.fromkeys(category for category, _ in runs):
        try:
            with warnings.catch_warnings():  # files not read are the notebook's to name
                warnings.simplefilter("ignore")
                mvtec_layout(Path(roots[category]) / category)
        except DatasetError as error:
            problems[category] = f"DatasetError: {error}"
    return [outcome(category, run_name(category, loss, setup), "failed", problems[category])
            for category, loss in runs if category in problems]


def plan_runs(manifests, *, setup, results_dir, roots, values, label, train, store=None, redo=False):
    """Which runs to skip and which to run: ``(skipped outcomes, [(category, loss) to run], replaced)``.

    ``manifests`` are :func:`stored_manifests`' (the runs to decide, in order), ``values`` the notebook
    parameters every run would have (its defaults, the profile's and ``-p``'s), ``roots`` the folder holding each
    category.  A run is skipped, unless ``redo``, where its results file is complete for ``label``, of these
    parameters and data (:func:`ssimlib.apps.batch_results.result_differences`), of the model stored now and, for
    a batch that trains (``train``), of a model that finished its schedule, as the stored one did; a skipped run's line
    names a stored model that could not be loaded now (``store``: the model store, None for ``models/``), weights
    altered or missing, for a run that will need it.  ``replaced`` has one line for each result that a run replaces,
    made with other settings.
    """
    preset_values = functools.partial(resolved_preset, values=values, setup=setup)
    asked = {key: value for key, value in values.items() if value is not None}
    fingerprint = functools.cache(category_fingerprint)  # a category hashed once for all its models
    skipped, to_run, replaced = [], [], []
    for (category, loss), manifest in manifests.items():
        name, path = run_name(category, loss, setup), results_path(results_dir, category, loss, setup)
        complete = result_is_complete(path, label)
        differ = (result_differences(path, {**asked, **preset_values(category, loss)}, Path(roots[category]) / category,
                                     train, fingerprint) if complete else {})
        current = (complete and not differ and not result_is_stale(path, manifest)
                   and (not train or (result_model_finished(path) and model_finished(manifest))))
        if differ:
            replaced.append(f"{name}: replaces {path}, made with other settings (recorded -> now): "
                            + ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in differ.items()))
        if current and not redo:
            damaged = files_problem(model_stem(category, loss, setup, store), manifest)
            skipped.append(outcome(category, name, "skipped", notebook=f"{path} is complete, of this data and these "
                                   "parameters, and no other model is stored (--redo runs it again)"
                                   + (f"; but its stored model cannot be loaded now: {damaged}" if damaged else ""),
                                   epochs=result_epochs(path)))
        else:
            to_run.append((category, loss))
    return skipped, to_run, replaced
