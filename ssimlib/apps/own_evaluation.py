"""``ssimlib evaluate``: a model from ``ssimlib train`` scored on labelled images of one's own.

``python -m ssimlib evaluate MODEL IMAGE_OR_FOLDER... --out DIR`` pairs images and
masks (:mod:`ssimlib.apps.labelled`), computes every image's anomaly map as
``detect`` does (:mod:`ssimlib.apps.scoring`), and writes to ``DIR``:

* ``metrics.json``: pixel AUROC, AU-PRO@0.3 and image AUROC (the study's own
  :mod:`ssimlib.metrics` through :func:`ssimlib.evaluate.summary_metrics`), the
  shares of defect-free and defective images classified correctly at the
  model's validation threshold or ``threshold`` (:func:`ssimlib.thresholds.classification_ratios`),
  counts of images, pixels and ground-truth regions, the ``problems`` (what was left out) and the ``warnings``
  (what was used but looked wrong: a mask that marks most of its image, say); where the defective images lie in
  two folders or more (defect types: ``scratch/``, ``dent/``), ``by_defect_type``: pixel AUROC, AU-PRO@0.3, image
  AUROC and the share found per folder, on its defective images beside every defect-free image
  (:func:`_by_defect_type`); ``operating_points``: the maps' pixel FPR, TPR and median region overlap at the model's
  threshold and at the thresholds of a pixel FPR of at most 1 % and 5 % on these images (:func:`_operating_points`);
* ``evaluation.csv``: one row per image (:data:`CSV_COLUMNS`; ``key`` names its outputs);
* ``roc.png`` and ``pro.png``: the pixel ROC and the PRO curve;
* per image, below ``images/``: ``<key>_map.tif`` (the anomaly map, float32, in
  the model's units), ``<key>_map.png`` (0 to twice the threshold as black to white)
  and ``<key>_overlay.png`` (the segmentation in red).

``evaluation.run.json`` records the run (the model's weights, threshold, precision, inputs and mask rule) and
``evaluation.progress.jsonl`` the key and the sha256 of every image as its outputs are written: the same command run
again (after Ctrl-C, say) reads the finished images' maps back instead of computing them (their masks are read anew;
an image whose file changed since, even to an older copy, is scored again; the outputs of an image that cannot be
read now are removed, as are those of an image gone where every other file was paired, and the summary files
before the first image is scored anew), and
another evaluation aimed at the same ``DIR`` is refused, naming what differs, as is a ``DIR`` holding detections.

Images are read as ``detect`` reads them (resized where the model's preset
says, as the MVTec AD models do, their masks with them).  ``DIR`` may lie in an
input folder (it is not searched) but may not hold one.

Bad input (an unreadable image or mask, a mask of another size than its image,
a mask without an image, no defective image at all) is returned as one line
each; the images that can be used are still scored and all that can be computed
is written (a metric that cannot be is ``null``), and the command exits with status 2.
An image whose mask cannot be used is left out of every metric, not counted
defect-free.  All maps are held in memory: the ROC sorts every pixel of the set.
"""

import contextlib
import json
import os
import warnings
from pathlib import Path

import matplotlib as mpl
import numpy as np
import skimage.io
import tifffile
from matplotlib.figure import Figure
from skimage.color import gray2rgb

from ssimlib.apps.defect_folders import is_good_folder
from ssimlib.apps.file_names import output_path, printable
from ssimlib.apps.labelled import EVALUATION_FILES, EVALUATION_RUN, find_labelled, read_labelled_mask
from ssimlib.apps.report import DIGITS, Entry, mark_report_stale, write_report
from ssimlib.apps import own_detection
from ssimlib.apps.own_detection import (check_not_other_command, check_same_run, detection_run, image_digest,
                                        load_detector, unchanged, warn_of_resizing)
from ssimlib.apps.own_images import run_lock
from ssimlib.apps.own_options import InputError, check_out_folder
from ssimlib.apps.spreadsheet import SafeWriter
from ssimlib.apps.warning_notes import noted
from ssimlib.data import DatasetError, read_image, resize_square, warn_stretched
from ssimlib.evaluate import summary_metrics
from ssimlib.records import write_json
from ssimlib.metrics import pixel_roc, pro_curve, region_overlaps
from ssimlib.plotting import STYLE, plot_roc
from ssimlib.thresholds import classification_ratios, label_regions, threshold_at_fpr

FPR_LIMIT = 0.3
OPERATING_FPRS = (0.01, 0.05)  # pixel FPRs whose thresholds metrics.json gives (paper Fig. 7: 5 %)
(METRICS_NAME, CSV_NAME), ROC_NAME, PRO_NAME = EVALUATION_FILES, "roc.png", "pro.png"
IMAGES_DIR = "images"
RUN_NAME, PROGRESS_NAME, LOCK_NAME = EVALUATION_RUN, "evaluation.progress.jsonl", "evaluation.lock"
CSV_COLUMNS = (
    "path", "key", "kind", "mask", "label", "score", "defect_area_px", "verdict", "correct", "defect_px", "regions",
    "anomaly_map", "overlay",
)
CURVE_POINTS = 2000  # points a plotted curve keeps (the metrics use every point)


def _to_uint8(x):
    return (np.clip(x, 0.0, 1.0) * 255).round().astype(np.uint8)


def _output_paths(out_dir, key):
    """``(raw, view, overlay)``: the paths of ``<key>_map.tif``, ``<key>_map.png`` and ``<key>_overlay.png``."""
    stem = out_dir / IMAGES_DIR / output_path(key)  # a name too long for outputs cut, bytes of no UTF-8 escaped
    return tuple(stem.with_name(stem.name + suffix) for suffix in ("_map.tif", "_map.png", "_overlay.png"))


def _read_item_image(out_dir, item):
    """``(sha256, image)`` of a labelled item's image file, hashed before it is read (an image replaced meanwhile is
    scored again by the next run); where it cannot be read, its outputs, made from what the file held before, are
    removed before the :class:`ssimlib.data.DatasetError` goes on."""
    try:
        return image_digest(item.path), read_image(item.path)
    except DatasetError:
        for path in _output_paths(out_dir, item.key):
            path.unlink(missing_ok=True)
        raise


def _mark_stale(out_dir):
    """Remove an earlier run's summary (metrics, CSV, curves) and mark its report out of date: they are written
    anew at the end, from every image's map."""
    for name in (METRICS_NAME, CSV_NAME, ROC_NAME, PRO_NAME):
        (out_dir / name).unlink(missing_ok=True)
    mark_report_stale(out_dir)


def _remove_gone(out_dir, done, keys):
    """Remove the outputs of the images of ``done`` (keys of a stopped or finished run) not in ``keys`` (their
    files are gone or renamed), and drop them from ``done``: the folder then holds the maps its CSV lists."""
    gone = [key for key in done if key not in keys]
    if gone:
        _mark_stale(out_dir)
    for key in gone:
        for path in _output_paths(out_dir, key):
            path.unlink(missing_ok=True)
        del done[key]


def _write_image_outputs(out_dir, key, image, anomaly_map, segmentation, threshold):
    """``<key>_map.tif``, ``<key>_map.png`` and ``<key>_overlay.png`` below ``out_dir`` (:func:`_output_paths`)."""
    raw, view, overlay_file = _output_paths(out_dir, key)
    raw.parent.mkdir(parents=True, exist_ok=True)
    # one gray channel said: tifffile takes a map 3 or 4 px high for planar RGB(A) (a tester's 4x4 image)
    tifffile.imwrite(raw, anomaly_map.astype(np.float32), photometric="minisblack")
    skimage.io.imsave(view, _to_uint8(anomaly_map / (2 * threshold)), check_contrast=False)
    overlay = gray2rgb(image[..., 0]) if image.shape[-1] == 1 else image.copy()
    overlay[segmentation] = 0.5 * overlay[segmentation] + 0.5 * np.array([1.0, 0.0, 0.0])
    skimage.io.imsave(overlay_file, _to_uint8(overlay), check_contrast=False)


def _thin(x, y):
    """At most :data:`CURVE_POINTS` evenly spaced points of a curve, first and last kept (for plotting)."""
    if x.size <= CURVE_POINTS:
        return x, y
    keep = np.unique(np.linspace(0, x.size - 1, CURVE_POINTS).round().astype(int))
    return x[keep], y[keep]


def _figures(out_dir, maps, masks, metrics):
    """``roc.png`` and ``pro.png`` of the pixel ROC and PRO curve; their paths."""
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(3.6, 3.4))
        fpr, tpr, _ = pixel_roc(maps, masks)
        plot_roc(fig.subplots(), {"pixels": (*_thin(fpr, tpr), metrics["pixel_auroc"])}, "pixel ROC")
        fig.savefig(out_dir / ROC_NAME, metadata={"Software": None})
        fig = Figure(figsize=(3.6, 3.4))
        ax = fig.subplots()
        fprs, pros = _thin(*pro_curve(maps, masks))
        ax.plot(fprs, pros, label=f"AU-PRO@{FPR_LIMIT:g} {metrics[f'au_pro@{FPR_LIMIT:g}']:.3f}")
        ax.axvline(FPR_LIMIT, color="0.5", lw=0.8, ls=":")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="false positive rate (defect-free pixels)",
               ylabel="per-region overlap (PRO)", title="PRO curve")
        ax.legend(loc="lower right")
        fig.savefig(out_dir / PRO_NAME, metadata={"Software": None})
    return [out_dir / ROC_NAME, out_dir / PRO_NAME]


def _metrics(maps, masks, detector, bad):
    """The metrics dict of ``metrics.json`` (None where not computable; the reason appended to ``bad``)."""
    labels = np.array([int(m.any()) for m in masks])
    regions = sum(label_regions(m)[1] for m in masks)
    defect_px = int(sum(m.sum() for m in masks))
    total_px = int(sum(m.size for m in masks))
    metrics = {
        "pixel_auroc": None, f"au_pro@{FPR_LIMIT:g}": None, "image_auroc": None,
        "defect_free_correct": None, "defective_correct": None,
        "threshold": detector.threshold, "min_defect_area": detector.min_area,
        "images": {"scored": len(maps), "defect_free": int((labels == 0).sum()), "defective": int(labels.sum())},
        "pixels": {"total": total_px, "defect": defect_px, "defect_free": total_px - defect_px},
        "regions": int(regions),
    }
    if not maps:
        bad.append("no image could be scored")
        return metrics
    ratios = classification_ratios(maps, labels, detector.threshold, detector.min_area)
    metrics["defect_free_correct"], metrics["defective_correct"] = ratios["good_correct"], ratios["defective_correct"]
    if not labels.any():
        bad.append("no defective images (no mask marks a defect): pixel AUROC, AU-PRO and image AUROC need some")
        return metrics
    if labels.all():  # a set of defective images only (the MVTec AD grid copy) is no bad input
        warnings.warn("no defect-free images (every mask marks a defect): no image AUROC", stacklevel=2)
    if defect_px == total_px:
        bad.append("no defect-free pixels (every mask marks its whole image): pixel AUROC and AU-PRO need some")
        return metrics
    metrics.update(summary_metrics(maps, masks, labels, fpr_limit=FPR_LIMIT))
    return metrics


def _by_defect_type(maps, masks, kinds, detector):
    """Per folder (``kind``) that holds defective images, where two or more do: pixel AUROC, AU-PRO@0.3, image
    AUROC and the share of its defective images found, on its defective images beside every defect-free image of
    the set (as MVTec AD's evaluations read a defect type); ``{}`` where one folder holds them all (the totals say
    it).  ``{kind: {"defective", "defect_free", "pixel_auroc", "au_pro@0.3", "image_auroc", "defective_correct"}}``,
    the images directly in the folder given under ``"."``."""
    labels = np.array([m.any() for m in masks])
    kinds = np.array([kind or "." for kind in kinds], dtype=object)
    types = sorted(set(kinds[labels]))
    if len(types) < 2:
        return {}
    by_type = {}
    for kind in types:
        chosen = np.flatnonzero((kinds == kind) & labels).tolist() + np.flatnonzero(~labels).tolist()
        sub_maps, sub_masks = [maps[i] for i in chosen], [masks[i] for i in chosen]
        sub_labels = labels[chosen].astype(int)
        found = classification_ratios(sub_maps, sub_labels, detector.threshold, detector.min_area)
        clean = any(not m.all() for m in sub_masks)  # pixels of both kinds: a ROC exists
        scores = (summary_metrics(sub_maps, sub_masks, sub_labels, fpr_limit=FPR_LIMIT) if clean else
                  {"pixel_auroc": None, f"au_pro@{FPR_LIMIT:g}": None, "image_auroc": None})
        by_type[printable(kind)] = {"defective": int(sub_labels.sum()), "defect_free": int((sub_labels == 0).sum()),
                                    **scores, "defective_correct": found["defective_correct"]}
    return by_type


def _operating_points(maps, masks, threshold):
    """The anomaly maps' pixel rates (before the smallest-defect filter) and median region overlap at the model's
    ``threshold``, and at the thresholds that leave :data:`OPERATING_FPRS` of these images' defect-free pixels above
    them (:func:`ssimlib.thresholds.threshold_at_fpr`): what ``--threshold`` would give, chosen on the images
    scored, so optimistic for new ones."""
    good = np.concatenate([a[~m] for a, m in zip(maps, masks)])
    bad = np.concatenate([a[m] for a, m in zip(maps, masks)])
    thresholds = [threshold, *threshold_at_fpr(maps, masks, OPERATING_FPRS)]
    medians = np.median(region_overlaps(maps, masks, thresholds), axis=0)  # paper Fig. 7's measure
    points = [{"threshold": float(t), "pixel_fpr": float(np.mean(good > t)), "pixel_tpr": float(np.mean(bad > t)),
               "median_region_overlap": float(median)} for t, median in zip(thresholds, medians)]
    return {"at_threshold": points[0], "at_pixel_fpr": points[1:]}


def operating_lines(points):
    """``(name, value)`` lines of ``metrics.json``'s ``operating_points`` (None: no lines), for the command line and
    the report."""
    if not points:
        return []

    def rates(p):  # a tester's: the TPR read as detect's, whose smallest-defect filter drops small pieces
        return (f"pixel FPR {100 * p['pixel_fpr']:.2f} %, TPR {100 * p['pixel_tpr']:.1f} %, median region overlap "
                f"{p['median_region_overlap']:.2f} (map pixels, before the smallest-defect filter)")

    here = points["at_threshold"]
    # 9 digits: a float32 map value as typed back; 6 rounded down let a tester's pixels at the threshold above it
    return [(f"at the model's threshold {here['threshold']:.{DIGITS}g}", rates(here))] + [
        (f"for a pixel FPR of at most {100 * fpr:g} %: --threshold {p['threshold']:.9g}",
         f"{rates(p)}; chosen on these images, so optimistic for others")
        for fpr, p in zip(OPERATING_FPRS, points["at_pixel_fpr"])]


def type_lines(by_type):
    """One line per defect type of ``metrics.json``'s ``by_defect_type``, for the command line and the report."""
    def value(x):
        return "n/a" if x is None else f"{x:.3f}"

    return [(f"defect type {kind} ({m['defective']} defective)",
             f"pixel AUROC {value(m['pixel_auroc'])}, AU-PRO@{FPR_LIMIT:g} {value(m[f'au_pro@{FPR_LIMIT:g}'])}, "
             f"image AUROC {value(m['image_auroc'])}, found {100 * m['defective_correct']:.0f} %")
            for kind, m in by_type.items()]


def _facts(metrics):
    """``(name, value)`` rows of the report's table from ``metrics.json``'s dict."""
    def share(x):
        return "n/a" if x is None or x != x else f"{100 * x:.1f} %"

    def value(x):
        return "n/a" if x is None else f"{x:.3f}"

    images, pixels = metrics["images"], metrics["pixels"]
    return [
        ("pixel AUROC", value(metrics["pixel_auroc"])),
        (f"AU-PRO@{FPR_LIMIT:g}", value(metrics[f"au_pro@{FPR_LIMIT:g}"])),
        ("image AUROC", value(metrics["image_auroc"])),
        ("defect-free images classified good", share(metrics["defect_free_correct"])),
        ("defective images classified defective", share(metrics["defective_correct"])),
        ("threshold, smallest defect", f"{metrics['threshold']:.{DIGITS}g} ({metrics['threshold_from']}), "
                                       f"{metrics['min_defect_area']} px"),
        ("images", f"{images['scored']} scored: {images['defect_free']} defect-free, {images['defective']} defective"),
        ("pixels", f"{pixels['total']:,}: {pixels['defect']:,} defect, {pixels['defect_free']:,} defect-free"),
        ("defect regions", metrics["regions"]),
        *type_lines(metrics["by_defect_type"]),
        *operating_lines(metrics["operating_points"]),
        ("masks", metrics["mask_rule"].removeprefix("masks: ")),
        ("problems", "; ".join(metrics["problems"]) or "none"),
        ("warnings", "; ".join(metrics["warnings"]) or "none"),
    ]


def _report(out_dir, model, metrics, rows, figures):
    """``report.html`` of an evaluation (:func:`ssimlib.apps.report.write_report`)."""
    entries = [
        Entry(Path(row["key"]).name, Path(row["path"]), out_dir / row["anomaly_map"], out_dir / row["overlay"],
              row["score"], row["verdict"], row["label"], row["kind"], Path(row["mask"]) if row["mask"] else None)
        for row in rows
    ]
    return write_report(out_dir, entries, metrics["threshold"], f"ssimlib evaluate: {Path(model).name}",
                        _facts(metrics), figures)


def _row(out_dir, item, mask, anomaly_map, segmentation):
    """The CSV row of one labelled ``item`` (its map segmented as ``segmentation``), whose outputs are below
    ``out_dir``."""
    _, view, overlay = _output_paths(out_dir, item.key)
    label = "defective" if mask.any() else "good"
    if label == "defective" and item.kind and is_good_folder(item.kind):
        warnings.warn(f"{item.path}: lies in a folder named {Path(item.kind).name}, as defect-free images' are, but "
                      f"its mask {item.mask} marks a defect: "
                      "counted defective", stacklevel=3)
    if label == "good" and item.mask is not None and item.in_defect_folder:
        warnings.warn(f"{item.path}: lies in a defect type's folder ({item.path.parent.name}/), but its mask "
                      f"{item.mask} marks nothing: counted defect-free", stacklevel=3)
    verdict = "defective" if segmentation.any() else "good"
    return {
        "path": str(item.path), "key": item.key, "kind": item.kind, "mask": str(item.mask or ""), "label": label,
        "score": float(anomaly_map.max()), "defect_area_px": int(segmentation.sum()), "verdict": verdict,
        "correct": int(label == verdict), "defect_px": int(mask.sum()), "regions": label_regions(mask)[1],
        "anomaly_map": view.relative_to(out_dir).as_posix(), "overlay": overlay.relative_to(out_dir).as_posix(),
    }


def _finished_keys(out_dir, run):
    """``{key: sha256 of its image file}`` of the images that a stopped evaluation of ``run`` in ``out_dir`` finished
    (empty for a fresh ``out_dir``; the hash None in a line of a version that wrote keys alone);
    :class:`InputError` when ``out_dir`` holds another evaluation (or one that names no run)."""
    outputs = [out_dir / name for name in (*EVALUATION_FILES, PROGRESS_NAME) if (out_dir / name).exists()]
    if not outputs:
        return {}
    check_same_run(out_dir / RUN_NAME, run, outputs[0], "another evaluation")
    done = {}
    with contextlib.suppress(OSError), open(out_dir / PROGRESS_NAME) as progress:
        for line in progress:
            with contextlib.suppress(ValueError):  # a line cut short by a kill
                entry = json.loads(line)
                if isinstance(entry, str):
                    done[entry] = None
                elif isinstance(entry, list) and len(entry) == 2 and all(isinstance(e, str) for e in entry):
                    done[entry[0]] = entry[1]
    return done


def _progress_line(key, digest):
    return f"{json.dumps(key if digest is None else [key, digest])}\n"


def evaluate_images(
    model, inputs, out_dir, masks=None, mask_suffix=None, threshold=None, precision="float32", report=False
):
    """Score the labelled images of ``inputs`` with the model at stem ``model``; write ``out_dir``'s files.

    ``report`` adds ``report.html`` (:mod:`ssimlib.apps.report`).

    Returns ``(metrics, rows, rule, bad, reused)``: the dict written to ``metrics.json``, the CSV rows,
    the one line saying which mask rule was used, one line per problem, and how many maps were read back from
    an earlier, stopped run into ``out_dir`` (not in ``metrics.json``: a continued run writes what an
    uninterrupted one would).
    :class:`ssimlib.apps.own_options.InputError` when the model or the threshold cannot be used.
    """
    out_dir = Path(out_dir)
    check_out_folder(out_dir)
    check_not_other_command(out_dir, own_detection.RUN_NAME, "detect's detections", "evaluate")
    for path in map(Path, inputs):
        if path.is_dir() and out_dir.resolve() in (path.resolve(), *path.resolve().parents):
            raise InputError(f"--out {out_dir}: holds the input folder {path}; choose an --out outside it")
    detector = load_detector(model, threshold, precision)
    warn_of_resizing(model, detector, "maps, overlays, masks and defect pixel counts")
    run = {**detection_run(inputs, detector, precision), "masks": masks and os.path.abspath(masks),
           "mask_suffix": mask_suffix}
    _finished_keys(out_dir, run)  # another evaluation in --out is refused before any work
    notes = []
    with noted(notes):
        items, unpaired, rule = find_labelled(inputs, masks, mask_suffix, skip=out_dir)
    bad = [f"{path}: {problem}" for path, problem in unpaired]
    if not items:  # nothing to score: say why, and write nothing that would block the corrected run
        raise InputError("\n".join(bad) or "no image found in the inputs")  # a line per problem
    out_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(out_dir / LOCK_NAME, f"evaluating into --out {out_dir}"):
        done = _finished_keys(out_dir, run)  # again, now that no other run can write here
        if not unpaired:  # every input listed and paired: an earlier image not among them now is gone
            _remove_gone(out_dir, done, {item.key for item in items})
        write_json(out_dir / RUN_NAME, run)
        with noted(notes):
            rows, maps, gts, reused = _score_all(out_dir, items, done, detector, bad)
            if len(rows) < len(items):  # the rule's count was of the images found, not of those scored
                rule += f"; {len(items) - len(rows)} of the {len(items)} could not be scored (named below)"
            written = _write_evaluation(out_dir, model, rule, rows, maps, gts, detector, bad, threshold, report, notes)
            return (*written, reused)


def _score_all(out_dir, items, done, detector, bad):
    """``(rows, maps, masks, reused)`` of the labelled ``items``: each scored and its outputs written, or, where
    ``done`` (keys) names it and its map was written, that map read back (its row made anew: the mask may have been
    mended since; ``reused`` counts those); problems appended to ``bad``.  The outputs of an image that cannot be
    read now are removed (they were made from what the file held before), and before the first image is scored anew
    the summary files beside them are (:func:`_mark_stale`): a stopped run leaves no metrics or report of older
    maps."""
    rows, maps, gts = [], [], []
    stale, reused = False, 0
    with open(out_dir / PROGRESS_NAME, "w") as progress:  # the keys kept, a line cut by a kill dropped
        progress.writelines(_progress_line(key, digest) for key, digest in done.items())
        progress.flush()
        for item in items:
            raw = _output_paths(out_dir, item.key)[0]
            try:
                digest, image = _read_item_image(out_dir, item)
                mask = read_labelled_mask(item, image.shape[:2], size=detector.preset.resize)
                warn_stretched(item.path, image.shape, detector.preset.resize)
                image = resize_square(image, detector.preset.resize, order=1)
                if item.key in done and raw.exists() and unchanged(item.path, done[item.key], raw, digest):
                    anomaly_map = skimage.io.imread(raw).astype(np.float32)  # a stopped run's
                    detector.warn_if_marked(anomaly_map, item.path)  # as when it was made
                    segmentation = detector.segmentation(anomaly_map)
                    reused += 1
                else:
                    if not stale:
                        _mark_stale(out_dir)
                        stale = True
                    anomaly_map = detector.anomaly_map(image, item.path)
                    segmentation = detector.segmentation(anomaly_map)
                    _write_image_outputs(out_dir, item.key, image, anomaly_map, segmentation, detector.threshold)
                    progress.write(_progress_line(item.key, digest))
                    progress.flush()
            except (DatasetError, ValueError) as error:  # a reader's message may run over several lines: keep one
                message = " ".join(str(error).split())
                bad.append(message if str(item.path) in message else f"{item.path}: {message}")  # it once, not twice
                continue
            rows.append(_row(out_dir, item, mask, anomaly_map, segmentation))
            maps.append(anomaly_map)
            gts.append(mask)
    return rows, maps, gts, reused


def _write_evaluation(out_dir, model, rule, rows, maps, gts, detector, bad, threshold, report, notes):
    """Write the metrics, the CSV, the curves and (``report``) the report; :func:`evaluate_images`'s return
    (``notes``: the run's warnings, :func:`ssimlib.apps.warning_notes.noted`), less its last item."""
    metrics = {
        "model": printable(str(model)), "mask_rule": printable(rule), **_metrics(maps, gts, detector, bad),
        "threshold_from": "validation" if threshold is None else "--threshold",
        "problems": list(map(printable, bad)), "warnings": list(map(printable, notes)),  # caf\xe9, as the CSV writes
    }
    computed = metrics["pixel_auroc"] is not None
    metrics["by_defect_type"] = _by_defect_type(maps, gts, [row["kind"] for row in rows], detector) if computed else {}
    metrics["operating_points"] = _operating_points(maps, gts, detector.threshold) if computed else None
    figures = _figures(out_dir, maps, gts, metrics) if computed else []
    metrics["figures"] = [p.name for p in figures]
    write_json(out_dir / METRICS_NAME, metrics)
    with open(out_dir / CSV_NAME, "w", newline="", encoding="utf-8") as file:
        SafeWriter(file, CSV_COLUMNS).writerows(rows)
    if report:
        _report(out_dir, model, metrics, rows, figures)
    return metrics, rows, rule, bad
