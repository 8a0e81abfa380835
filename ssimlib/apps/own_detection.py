"""Find defects in new images with a model of your own: ``python -m ssimlib detect MODEL IMAGE_OR_FOLDER... --out DIR``.

For every image it writes its anomaly map (``<stem>_map.png``, 0 to twice the threshold as black to white) and an
overlay of the segmentation on the image (``<stem>_overlay.png``) under DIR at the image's path relative to the
folder the inputs share, and a row of ``DIR/detections.csv``: path, image score (the map's maximum), defect area in
pixels, the verdict at the threshold, the two files, the image file's sha256 and what was warned of it (a warning
the command line counts rather than shows is named there).  Rows are written one by one after
their files, so a killed run leaves a CSV that lists exactly the images finished (a finished run lists them in the
order given).  ``DIR/detections.run.json`` records what makes the run
(:func:`detection_run`: the model's weights, threshold, smallest defect area, precision and the inputs): the same
command run again continues where a stopped run left off (an image whose sha256 differs from its row's, changed
since its map was written, is done again; the map and overlay of an image gone are removed with its row), and
another run aimed at the same DIR is refused, as is a DIR holding an evaluation.  An
image smaller than the patch is padded to it (:mod:`ssimlib.apps.scoring`); one that cannot be used is listed and
skipped; the others are still processed.  ``--report`` adds ``DIR/report.html`` (:mod:`ssimlib.apps.report`).

Bad input raises :class:`ssimlib.apps.own_options.InputError` with one line naming the file or option.
"""

import contextlib
import csv
import hashlib
import json
import os
import warnings
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import skimage.io
from skimage.color import gray2rgb

from ssimlib import artifacts
from ssimlib.apps.file_names import (DETECTIONS_CSV, DETECTION_OUTPUT_SUFFIXES, is_detection_output, output_path,
                                     output_stem)
from ssimlib.apps.labelled import DETECTION_RUN, EVALUATION_RUN, evaluation_or_report
from ssimlib.apps.own_images import default_stride, run_lock
from ssimlib.apps.own_options import InputError, check_count, check_out_folder, check_threshold
from ssimlib.apps.report import mark_report_stale
from ssimlib.apps.scoring import Detector
from ssimlib.apps.spreadsheet import SafeWriter, plain_row
from ssimlib.apps.warning_notes import noted
from ssimlib.data import DatasetError, image_files, mask_name_end, read_image
from ssimlib.records import write_json
from ssimlib.experiments.presets import BACKGROUNDS, DEFAULT_PRESET, CategoryPreset
from ssimlib.inference import RESIDUAL_KINDS, with_precision
from ssimlib.ssim import DEFAULT_WINDOW, DEFAULT_WINDOW_SIZE, STANDARD, constants_k, ssim_window

CSV_NAME = DETECTIONS_CSV
RUN_NAME = DETECTION_RUN
LOCK_NAME = "detections.lock"
# warnings: what was warned of the image, its path left out ("; " between two); empty in rows of older versions
CSV_COLUMNS = ("path", "score", "defect_area_px", "verdict", "anomaly_map", "overlay", "image_sha256", "warnings")
DEFAULT_MIN_DEFECT_AREA = 64


def _inputs(paths, out_dir):
    """Image files of the given files and folders, each once, and ``(path, problem)`` for paths that are neither.

    Maps and overlays a folder holds in or under ``out_dir``, or in or under a folder holding a ``detections.csv``
    (``*_map.png``, ``*_overlay.png``: outputs of an earlier run) and files named like the defect mask of an
    image beside them (``x_mask.png`` with ``x.png``, :func:`ssimlib.data.mask_name_end`) found in a folder are
    not inputs; a warning names them.
    """
    files, seen, bad = [], set(), []
    for path in map(Path, paths):
        if path.is_dir():
            what = evaluation_or_report(path) or next(
                (f"below an earlier evaluation's output ({q})" for q in path.resolve().parents
                 if (q / EVALUATION_RUN).is_file()), None)
            if what:  # an evaluation's curves and maps, a report's thumbnails: no parts
                warnings.warn(f"{path}: {what}, not scored", stacklevel=3)
                continue
            listed = image_files(path)
            taken = [is_detection_output(f, out_dir) for f in listed]
            stems = {f.stem for f in listed}  # a mask beside its image: x_mask.png with x.png (not gas-mask.png alone)
            masks = [f.name for f, output in zip(listed, taken)
                     if not output and mask_name_end(f) is not None and f.stem[: mask_name_end(f)] in stems]
            found = [f for f, output in zip(listed, taken) if not output and f.name not in masks]
            outputs = [f.name for f, output in zip(listed, taken) if output]
            if masks:  # a test folder with its masks beside the images: masks are no parts to score
                warnings.warn(f"{path}: {len(masks)} file{'s' if len(masks) > 1 else ''} named like defect masks, not "
                              f"scored ({', '.join(masks[:3])}{', ...' if len(masks) > 3 else ''}; give one as a file "
                              "to score it; evaluate scores images against their masks)", stacklevel=3)
            if outputs:
                warnings.warn(f"{path}: {len(outputs)} file{'s' if len(outputs) > 1 else ''} in --out or beside a "
                              f"{CSV_NAME} taken for an earlier run's maps and overlays, not scored "
                              f"({', '.join(outputs[:3])}"
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
    share a stem (``a.png``, ``a.tif``) their whole names replace the stem (:func:`output_stem`: a stem too long
    for a file name is cut, one of bytes that are no UTF-8 escaped, as are its folders: :func:`output_path`; where
    two names are still alike, each ends in ``~`` and 8 hex digits of the sha256 of its image's path).
    """
    resolved = [Path(os.path.abspath(f)) for f in files]  # a link named as given, not by its target
    if not resolved:
        return []
    common = Path(os.path.commonpath([r.parent for r in resolved]))
    escaped = [output_stem(r.stem) for r in resolved]
    stems = Counter(zip((r.parent for r in resolved), escaped))
    outputs = [(output_path(r.parent.relative_to(common)), stem if stems[r.parent, stem] == 1 else output_stem(r.name))
               for r, stem in zip(resolved, escaped)]
    taken = Counter(outputs)
    names = []
    for r, (folder, base) in zip(resolved, outputs):
        if taken[folder, base] > 1:  # alike once escaped: caf\xe9.tif so named, and a Latin-1 café.tif beside it
            base += "~" + hashlib.sha256(os.fsencode(r)).hexdigest()[:8]
        names.append(tuple(folder / f"{base}{suffix}" for suffix in DETECTION_OUTPUT_SUFFIXES))
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
            loss = _training_settings(manifest).get("loss")
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


def _training_settings(manifest):
    training = manifest.get("training") if isinstance(manifest.get("training"), dict) else {}
    return training.get("settings") if isinstance(training.get("settings"), dict) else {}


def ssim_settings(manifest, where):
    """The SSIM window and constants the model of ``manifest`` was trained with, where they are not the defaults
    (``{"window_size", "window", "constants"}``, each only where set): what its SSIM residual must use.
    :class:`InputError` naming ``where`` for a value no residual takes."""
    settings = _training_settings(manifest)
    chosen = {"window_size": settings.get("window_size", DEFAULT_WINDOW_SIZE),
              "window": settings.get("window", DEFAULT_WINDOW), "constants": settings.get("ssim_constants", STANDARD)}
    size = chosen["window_size"]
    try:  # the SSIM module's own checks of the window's kind and size and of the constants' reading
        if not isinstance(size, int) or isinstance(size, bool) or size < 3:
            raise ValueError(f"window_size must be an odd whole number of at least 3, got {size!r}")
        ssim_window(size, chosen["window"])
        constants_k(chosen["constants"])
    except ValueError as error:
        raise InputError(f"{where}: its training settings' SSIM window or constants are not ones detect can use "
                         f"({error})") from None
    defaults = {"window_size": DEFAULT_WINDOW_SIZE, "window": DEFAULT_WINDOW, "constants": STANDARD}
    return {key: value for key, value in chosen.items() if value != defaults[key]}


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


def warn_of_resizing(model, detector, what):
    """Say once that the model at ``model`` resizes every image (a study model's: a tester took the 256 px maps of
    320 px images for a fault), and that ``what`` are in its pixels."""
    if detector.preset.resize:
        size = detector.preset.resize
        warnings.warn(f"{model}: resizes every image to {size}x{size} px, as it was trained: {what} are in those "
                      "pixels", stacklevel=3)


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
    training = manifest.get("training") if isinstance(manifest.get("training"), dict) else {}
    run = training.get("run") if isinstance(training.get("run"), dict) else {}
    return Detector(with_precision(network, precision), preset, threshold, min_area, stride, manifest["sha256"],
                    converts_channels=run.get("gray") in (True, False),  # trained with --gray or --color
                    ssim=ssim_settings(manifest, artifacts.model_files(model)[1]),
                    seen=training.get("images") if _is_images_record(training.get("images")) else None)


def _is_images_record(record):
    """Whether ``record`` is a usable :func:`ssimlib.apps.scoring.images_record` (an edited manifest may hold
    anything)."""
    return isinstance(record, dict) and all(
        isinstance(record.get(key), list) and len(record[key]) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in record[key])
        for key in ("height", "width", "mean"))


def detection_run(inputs, detector, precision):
    """What makes a detect run the same run: the model's weights (sha256), its threshold and smallest defect area
    as used, ``precision`` and the ``inputs`` as absolute paths."""
    return {"model_sha256": detector.weights_sha256, "threshold": detector.threshold,
            "min_defect_area": detector.min_area, "precision": precision,
            "inputs": [os.path.abspath(path) for path in inputs]}


def image_digest(path):
    """The sha256 of the image file ``path``; taken before the image is read, so that a file replaced while it is
    scored is done again by the next run.  :class:`ssimlib.data.DatasetError` naming it when it cannot be read."""
    try:
        return artifacts.sha256(path)
    except OSError as error:
        raise DatasetError(f"{path}: could not read it ({error.strerror or error})") from None


def unchanged(image, recorded, output, current=None):
    """Whether the image file ``image`` is the one ``output`` was made from: its sha256 (``current`` where the
    caller has it) is ``recorded`` (None: recorded by a version that kept no hash; then it is not newer than
    ``output``).  False for ``image`` None (no longer an input) or one that cannot be read."""
    if image is None:
        return False
    try:
        if recorded is None:
            return Path(image).stat().st_mtime_ns <= Path(output).stat().st_mtime_ns
        return (current or image_digest(image)) == recorded
    except (OSError, DatasetError):
        return False


def check_not_other_command(out_dir, record, what, command):
    """:class:`InputError` when ``out_dir`` holds the run record ``record`` of ``what``, another command's output,
    which ``command`` would mix its own files and report with."""
    found = Path(out_dir) / record
    if found.is_file():
        raise InputError(f"{found}: --out {out_dir} holds {what}; choose another --out for {command}")


def check_same_run(record, run, found, what):
    """Raise :class:`InputError` unless the JSON file ``record`` holds ``run``: the output ``found`` beside it is
    ``what`` (``"another evaluation"``), and the line names the settings that differ."""
    try:
        stored = json.loads(Path(record).read_text())
    except (OSError, ValueError):
        stored = None
    if stored != run:
        keys = run.keys() | (stored.keys() if isinstance(stored, dict) else set())
        differ = ("one that recorded no settings" if not isinstance(stored, dict) else
                  f"it differs in {', '.join(sorted(k for k in keys if run.get(k) != stored.get(k)))}")
        raise InputError(f"{found}: --out {found.parent} holds {what} ({differ}); choose another --out or remove it")


def _finished_rows(out_dir, run):
    """The rows of the run in ``out_dir`` whose map and overlay exist, when it is ``run``: None for an ``out_dir``
    without detections, :class:`InputError` when it holds another run's (or ones that name no run)."""
    csv_path = out_dir / CSV_NAME
    if not csv_path.exists():
        return None
    check_same_run(out_dir / RUN_NAME, run, csv_path, "the detections of another run")
    with open(csv_path, newline="", encoding="utf-8", errors="replace") as file:
        rows = [plain_row(row) for row in csv.DictReader(file) if None not in row.values() and None not in row]
    try:  # a row cut short by a kill reads short, or with a number cut
        rows = [{**row, "score": float(row["score"]), "defect_area_px": int(row["defect_area_px"])} for row in rows]
    except (KeyError, ValueError):
        raise InputError(f"{csv_path}: not a detections.csv this version can continue; choose another --out or "
                         "remove it") from None
    return [{key: row.get(key) for key in CSV_COLUMNS} for row in rows  # no image_sha256 from older versions
            if (out_dir / row["anomaly_map"]).exists() and (out_dir / row["overlay"]).exists()]


def _remove_outputs(out_dir, rows):
    """Delete the map and overlay of each of ``rows`` (their image is gone, changed or unreadable): the folder then
    holds the maps its CSV lists, and no more.  Only files of a detections.csv's kind inside ``out_dir``."""
    inside = out_dir.resolve()
    for row in rows:
        for key in ("anomaly_map", "overlay"):
            path = (out_dir / row[key]).resolve()
            if path.is_relative_to(inside) and path.name.endswith(DETECTION_OUTPUT_SUFFIXES):
                path.unlink(missing_ok=True)


def detect(model, inputs, out_dir, threshold=None, precision="float32", min_defect_area=None):
    """Anomaly maps, overlays and a CSV for the images in ``inputs`` (see the module docstring); returns
    ``(rows, bad, resumed)``.

    ``model`` is the stem the model was written at; ``threshold`` and ``min_defect_area`` (pixels) override its
    manifest's; ``precision`` is the network's (:func:`ssimlib.inference.with_precision`).  ``bad`` lists
    ``(path, problem)`` for inputs that could not be used; ``resumed`` counts the rows an earlier, stopped run of
    the same :func:`detection_run` had finished (kept, not computed again).  An ``out_dir`` that holds another
    run's ``detections.csv`` is refused, so no run overwrites another's maps.
    """
    out_dir = Path(out_dir)
    check_out_folder(out_dir)
    check_not_other_command(out_dir, EVALUATION_RUN, "an evaluation", "detect")
    detector = load_detector(model, threshold, precision, min_defect_area)
    warn_of_resizing(model, detector, "maps, overlays and defect areas")
    run = detection_run(inputs, detector, precision)
    files, bad = _inputs(inputs, out_dir)
    if not files:  # nothing to write: an empty detections.csv would only block the corrected run
        raise InputError("; ".join(f"{path}: {problem}" for path, problem in bad)
                         or "no image to score among the inputs (warned of above)")
    names = output_names(files)
    if _finished_rows(out_dir, run) is None:
        existing = [out_dir / name for pair in names for name in pair if (out_dir / name).exists()]
        if existing:
            raise InputError(f"{existing[0]}: exists (an image of yours, or an earlier run's output), and this run "
                             f"would write {'its' if len(existing) == 1 else f'{len(existing)} such'} map or overlay "
                             "there; choose another --out")
    made = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        with run_lock(out_dir / LOCK_NAME, f"detecting into --out {out_dir}"):
            return _detect_into(out_dir, run, detector, files, names, bad)
    except InputError:  # no image could be read: the folder made for them goes too
        if made:
            with contextlib.suppress(OSError):
                out_dir.rmdir()
        raise


def _detect_into(out_dir, run, detector, files, names, bad):
    """:func:`detect`'s work once ``out_dir`` is checked and locked: the images of ``files`` not finished yet
    (``bad``: the inputs that could not be listed)."""
    earlier = _finished_rows(out_dir, run) or []
    image_of = {map_name.as_posix(): path for path, (map_name, _) in zip(files, names)}
    rows = []
    for row in earlier:  # kept where the image is the one its map was made from, named as it is given now
        image = image_of.get(row["anomaly_map"])
        digest = row["image_sha256"] or None  # None in a CSV of a version that wrote no hash
        with contextlib.suppress(DatasetError):  # an image that cannot be read now is done again (and named then)
            if unchanged(image, digest, out_dir / row["anomaly_map"]):
                rows.append({**row, "path": str(image), "image_sha256": digest or image_digest(image)})
    resumed = len(rows)
    finished = {row["anomaly_map"] for row in rows}  # not the path as typed: the command may run from elsewhere
    dropped = [row for row in earlier if row["anomaly_map"] not in finished]
    unlisted = [os.path.abspath(path) for path, _ in bad]  # inputs that could not be listed (a share out of reach?)
    _remove_outputs(out_dir, [row for row in dropped  # an image where its input was listed is gone or changed
                              if not any(Path(os.path.abspath(row["path"])).is_relative_to(top) for top in unlisted)])
    if dropped or len(finished) < len(files):
        mark_report_stale(out_dir)
    write_json(out_dir / RUN_NAME, run)
    # the finished rows again, a cut last line dropped
    with open(out_dir / CSV_NAME, "w", newline="", encoding="utf-8") as csv_file:
        writer = SafeWriter(csv_file, CSV_COLUMNS)
        writer.writerows(rows)
        csv_file.flush()
        for path, (map_name, overlay_name) in zip(files, names):
            if map_name.as_posix() in finished:
                continue
            notes = []
            try:
                with noted(notes):  # kept in its row too: a warning counted on the command line is named there
                    digest = image_digest(path)
                    image = detector.as_model_channels(read_image(path, size=detector.preset.resize), path)
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
                "overlay": overlay_name.as_posix(), "image_sha256": digest,
                "warnings": "; ".join(note.removeprefix(f"{path}: ") for note in notes),
            })
            writer.writerow(rows[-1])
            csv_file.flush()
    if not rows and not earlier:  # nothing scored: no detections.csv of this run that would block the corrected one
        for name in (CSV_NAME, RUN_NAME):
            (out_dir / name).unlink(missing_ok=True)
        raise InputError("; ".join(f"{path}: {problem}" for path, problem in bad))
    position = {map_name.as_posix(): i for i, (map_name, _) in enumerate(names)}
    in_order = sorted(rows, key=lambda row: position[row["anomaly_map"]])
    if in_order != rows:  # kept rows came first: the finished CSV lists the images as they were given
        _write_csv(out_dir / CSV_NAME, in_order)
    return in_order, bad, resumed


def _write_csv(path, rows):
    """``rows`` as ``detections.csv`` at ``path``, atomically (through a hidden partial file beside it)."""
    partial = path.with_name(f".partial-{path.name}")
    with open(partial, "w", newline="", encoding="utf-8") as csv_file:
        SafeWriter(csv_file, CSV_COLUMNS).writerows(rows)
    os.replace(partial, path)
