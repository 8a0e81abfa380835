"""A static HTML report of scored images: ``DIR/report.html`` with its thumbnails in ``DIR/report/``.

A table of facts (metrics, counts), figures, then every image as a row: input,
anomaly map (inferno colours, 0 to twice the threshold), overlay of the
segmentation and, where there is one, the ground-truth mask, with score and
verdict.  Rows are sorted worst first: with ground truth, misclassified images
first, then by how far an image lies on the wrong side of the threshold (the
highest-scoring defect-free images and the lowest-scoring defective ones on top);
without, by score.  The page has
no script, font or style from elsewhere and opens from the file system;
thumbnails are at most :data:`THUMBNAIL` px per side (JPEG, masks PNG) and load lazily.
"""

import html
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
from PIL import Image

from ssimlib.apps.file_names import printable
from ssimlib.data import read_image, read_mask

REPORT_NAME, THUMBS_DIR = "report.html", "report"
THUMBNAIL = 256  # px, longest side of a stored thumbnail
SHOWN = 192  # px, longest side of a thumbnail on the page
JPEG_QUALITY = 85
DIGITS = 6  # significant digits of scores and threshold: a score just past the threshold must not round onto it
INFERNO = (mpl.colormaps["inferno"](np.arange(256))[:, :3] * 255).round().astype(np.uint8)  # gray level -> RGB

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th, td { padding: 4px 8px; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
table.facts td:last-child { font-variant-numeric: tabular-nums; max-width: 48em; }
.figures img { margin-right: 1em; border: 1px solid #ddd; }
table.images td img { image-rendering: pixelated; background: #000; }
tr.wrong { background: #fde8e8; }
.defective { color: #b00; font-weight: bold; }
.good { color: #060; }
small { color: #666; }
small.note { color: #a60; }
"""


@dataclass
class Entry:
    """One scored image: files (input, map PNG as ``detect`` writes it, overlay, mask or None), score and verdicts.

    ``verdict`` and ``label`` (ground truth, None where unknown) are ``"good"`` or ``"defective"``; ``notes`` what was
    warned of the image when it was scored (shown under its name).
    """

    name: str
    image: Path
    anomaly_map: Path
    overlay: Path
    score: float
    verdict: str
    label: str | None = None
    kind: str = ""
    mask: Path | None = None
    notes: str = ""


def worst_first(entries, threshold):
    """``entries`` sorted worst first: misclassified ones first (a defective image may score above ``threshold``
    and still be classified good, its region too small), then by the score's distance past ``threshold`` on the
    wrong side; without labels, by score."""
    def badness(entry):
        if entry.label is None:
            return (False, entry.score)
        past = entry.score - threshold if entry.label == "good" else threshold - entry.score
        return (entry.label != entry.verdict, past)

    return sorted(entries, key=badness, reverse=True)


def _thumbnail(pixels, path):
    """Save uint8 ``pixels`` ``(H, W[, 3])`` at most :data:`THUMBNAIL` px per side; its ``(width, height)``."""
    image = Image.fromarray(pixels)
    image.thumbnail((THUMBNAIL, THUMBNAIL), Image.Resampling.BILINEAR, reducing_gap=2.0)
    image.save(path, **({"quality": JPEG_QUALITY} if path.suffix == ".jpg" else {}))
    return image.size


def _img(src, size, alt):
    w, h = size
    scale = SHOWN / max(w, h)
    return (f'<img src="{html.escape(src)}" width="{round(w * scale)}" height="{round(h * scale)}" '
            f'loading="lazy" alt="{html.escape(alt)}">')


def _uint8(x):
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8)


def _thumbnails(entry, index, folder):
    """Thumbnails of ``entry`` in ``folder`` as ``<img>`` tags (input, map, overlay, mask or empty)."""
    with warnings.catch_warnings():  # the image's and mask's warnings were given when it was scored
        warnings.simplefilter("ignore")
        image = read_image(entry.image)
        mask = None if entry.mask is None else read_mask(entry.mask)
    with Image.open(entry.anomaly_map) as gray_map, Image.open(entry.overlay) as overlay:
        pictures = [
            ("input", _uint8(image[..., 0] if image.shape[-1] == 1 else image), "jpg"),
            ("map", INFERNO[np.asarray(gray_map.convert("L"))], "jpg"),
            ("overlay", np.asarray(overlay.convert("RGB")), "jpg"),
        ]
    if mask is not None:
        pictures.append(("mask", _uint8(mask), "png"))
    cells = []
    for what, pixels, suffix in pictures:
        name = f"{index:05d}_{what}.{suffix}"
        cells.append(_img(f"{THUMBS_DIR}/{name}", _thumbnail(pixels, folder / name), f"{entry.name} {what}"))
    return cells + [""] * (4 - len(cells))


def earlier_report(out_dir, run_record):
    """Whether ``out_dir`` holds a ``report.html`` beside the record ``run_record`` of an earlier run (finished or
    stopped): a run that continues there rewrites the report, so that it never shows older results than the files
    beside it."""
    return (Path(out_dir) / REPORT_NAME).is_file() and (Path(out_dir) / run_record).is_file()


STALE_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>report out of date</title></head><body>
<p>This report is out of date: a run continued in this folder and rewrites it when it finishes. If that run was
stopped, run the same command again.</p>
</body></html>
"""


THUMBNAIL_NAME = re.compile(r"\d{5,}_(input|map|overlay)\.jpg|\d{5,}_mask\.png")  # the names _thumbnails writes


def mark_report_stale(out_dir):
    """Replace an earlier ``report.html`` in ``out_dir`` by a page saying it is being rewritten, and remove its
    thumbnails (files of their names only: the folder may hold others): a run about to change the files beside it
    calls this first, so that a stopped run leaves no report of older maps (and :func:`earlier_report` still has
    the next run rewrite it)."""
    path = Path(out_dir) / REPORT_NAME
    if path.is_file():
        path.write_text(STALE_PAGE)
    folder = Path(out_dir) / THUMBS_DIR
    if folder.is_dir():
        for file in folder.iterdir():
            if THUMBNAIL_NAME.fullmatch(file.name) and file.is_file():
                file.unlink()


def write_report(out_dir, entries, threshold, title, facts=(), figures=()):
    """Write ``out_dir/report.html`` and its thumbnails (an earlier report's marked out of date first, and its
    thumbnails removed: :func:`mark_report_stale`); returns the HTML's path.

    ``facts`` are ``(name, value)`` rows shown first (values as text), ``figures``
    image files inside ``out_dir`` shown after them.
    """
    out_dir = Path(out_dir)
    mark_report_stale(out_dir)  # a report stopped half-written says so
    folder = out_dir / THUMBS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    labelled = any(entry.label is not None for entry in entries)
    rows = []
    for index, entry in enumerate(worst_first(entries, threshold), start=1):
        wrong = entry.label is not None and entry.label != entry.verdict
        truth = f'<br><small>truth: {entry.label}</small>' if entry.label else ""
        kind = f"<br><small>{html.escape(entry.kind)}</small>" if entry.kind else ""
        notes = f'<br><small class="note">warned: {html.escape(entry.notes)}</small>' if entry.notes else ""
        cells = [str(index), f"{html.escape(entry.name)}{kind}{notes}", f"{entry.score:.{DIGITS}g}",
                 f'<span class="{entry.verdict}">{entry.verdict}</span>{truth}', *_thumbnails(entry, index, folder)]
        opening = '<tr class="wrong">' if wrong else "<tr>"
        rows.append(opening + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    order = (f"Misclassified images (in red) first, then by how far the score lies past the threshold "
             f"({threshold:.{DIGITS}g}) on the wrong side: the highest-scoring defect-free images and the "
             "lowest-scoring defective ones on top."
             if labelled else f"Sorted by score, highest first; threshold {threshold:.{DIGITS}g}.")
    facts_html = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in facts)
    figures_html = "".join(
        f'<img src="{html.escape(Path(f).relative_to(out_dir).as_posix())}" width="360" alt="{Path(f).stem}">'
        for f in figures
    )
    head = "<th>#</th><th>image</th><th>score</th><th>verdict</th><th>input</th><th>anomaly map</th><th>overlay</th>"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<table class="facts">{facts_html}</table>
<div class="figures">{figures_html}</div>
<h2>{len(entries)} images, worst first</h2>
<p><small>{order}
Anomaly maps from 0 (black) to twice the threshold (yellow); segmented defects in red on the overlay.</small></p>
<table class="images"><thead><tr>{head}<th>{"mask" if labelled else ""}</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
</body></html>
"""
    path = out_dir / REPORT_NAME
    path.write_text(printable(page), encoding="utf-8")  # a name of bytes that are no UTF-8 shown escaped
    return path


def detections_report(out_dir, rows, threshold, model):
    """The report of ``ssimlib detect``'s ``rows`` (its CSV's, files relative to ``out_dir``); the HTML's path."""
    out_dir = Path(out_dir)
    entries = [
        Entry(Path(row["path"]).name, Path(row["path"]), out_dir / row["anomaly_map"], out_dir / row["overlay"],
              row["score"], row["verdict"], kind=Path(row["path"]).parent.name, notes=row.get("warnings") or "")
        for row in rows
    ]
    defective = sum(entry.verdict == "defective" for entry in entries)
    warned = sum(bool(entry.notes) for entry in entries)
    facts = [("model", model), ("threshold", f"{threshold:.{DIGITS}g}"), ("images", len(entries)),
             ("found defective", defective), ("found good", len(entries) - defective),
             *([("images warned of (each row says why)", warned)] if warned else [])]
    return write_report(out_dir, entries, threshold, f"ssimlib detect: {Path(model).name}", facts)
