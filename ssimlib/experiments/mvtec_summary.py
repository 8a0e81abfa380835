"""The MVTec AD summary of notebook 05: every category's results beside CVPR 2019 Table 3.

Reads the results files notebook 04 writes (:func:`ssimlib.experiments.mvtec.write_results`)
and the stored models' manifests: the summary table with each model's mean,
SSIM-AE minus L2-AE per category, what longer training changed (the
``earlier`` stages of a results file), and the plots of pixel AUROC and of
the training losses.  Used by ``notebooks/05_mvtec_summary.ipynb``.
"""

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ssimlib import artifacts
from ssimlib.experiments.mvtec import FPR_LIMIT, PROGRESS_METRICS, results_stage
from ssimlib.experiments.presets import (
    CATEGORIES,
    PAPER_MEAN_AU_PRO,
    PAPER_MEAN_PIXEL_AUROC,
    PAPER_PIXEL_AUROC,
    model_label,
)
from ssimlib.plotting import plot_losses


def load_results(results_dir):
    """``{(category, model, setup): record}`` of every complete ``results_dir/*.json`` of notebook 04.

    Other JSON files are skipped.  A record without a setup predates the setups
    and came from the re-implementation's presets.  :class:`FileNotFoundError` when ``results_dir`` is no folder
    or holds no complete result (a summary of nothing would stand in for the one it replaces).
    """
    if not Path(results_dir).is_dir():
        raise FileNotFoundError(f"results_dir {results_dir}: no such folder")
    records = {}
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("complete") and "metrics" in record:
            model = model_label(record.get("settings", {}).get("loss", "ssim"))
            records[record.get("category", path.stem), model, record.get("setup", "reimplementation")] = record
    if not records:
        raise FileNotFoundError(f"results_dir {results_dir}: holds no complete results file of notebook 04 (run it, "
                                "or python -m ssimlib batch, first)")
    return records


MODEL_ORDER = ("SSIM-AE", "L2-AE")


def summary_rows(records):
    """One row per (category, model, setup) of ``records``, MVTec AD categories first; a missing category gets one row.

    A row is a dict with ``category``, ``model``, ``setup``, ``profile``
    ("missing" without a results file), ``epochs`` (``"50/200"``: epochs the
    model had of its schedule; None where the record does not say), ``pixel_auroc``, ``au_pro``,
    ``image_auroc``, ``good_correct``, ``defective_correct`` (None where missing
    or not computable) and ``paper``: CVPR 2019 Table 3's pixel AUROC of the same
    model (None for other categories and models).
    """
    rows = []
    categories = list(CATEGORIES) + sorted({c for c, _, _ in records} - set(CATEGORIES))
    rank = {m: i for i, m in enumerate(MODEL_ORDER)}
    for category in categories:
        keys = sorted((k for k in records if k[0] == category), key=lambda k: (rank.get(k[1], len(rank)), k[1], k[2]))
        if not keys:
            rows.append({"category": category, "model": None, "setup": None, "profile": "missing", "paper": None,
                         "epochs": None, **dict.fromkeys(("pixel_auroc", "au_pro", "image_auroc", "good_correct",
                                                          "defective_correct"))})
        for key in keys:
            record, metrics = records[key], records[key]["metrics"]
            store = record.get("model_store") or {}
            rows.append({
                "category": category,
                "model": key[1],
                "setup": key[2],
                "profile": record.get("profile", "?"),
                "epochs": f"{store['epochs_done']}/{store['schedule_epochs']}" if "epochs_done" in store else None,
                "pixel_auroc": metrics.get("pixel_auroc"),
                "au_pro": metrics.get(f"au_pro@{FPR_LIMIT:g}"),
                "image_auroc": metrics.get("image_auroc"),
                "good_correct": metrics.get("good_correct"),
                "defective_correct": metrics.get("defective_correct"),
                "paper": PAPER_PIXEL_AUROC.get(category, {}).get(key[1]),
            })
    return rows


# (heading, width, alignment) of the columns of :func:`format_table`.
TABLE_COLUMNS = (
    ("category", 11, "<"), ("model", 8, "<"), ("setup", 16, "<"), ("profile", 12, "<"), ("epochs", 7, ">"),
    ("pixel AUROC", 11, ">"), ("paper", 6, ">"), ("AU-PRO@0.3", 10, ">"), ("image AUROC", 11, ">"),
    ("good ok", 7, ">"), ("defect ok", 9, ">"),
)
LABEL_COLUMNS = 5  # a mean line's label spans the first five columns; its three numbers sit under the next three


def _table_line(cells, columns):
    return " ".join(f"{cell:{align}{width}}" for cell, (_, width, align) in zip(cells, columns))


def format_table(rows):
    """A plain-text table of :func:`summary_rows`, with each model's mean over the categories present."""
    def cell(x, missing="-"):
        return missing if x is None else f"{x:.2f}"

    header = _table_line([heading for heading, _, _ in TABLE_COLUMNS], TABLE_COLUMNS)
    lines = [header, "-" * len(header)]
    for r in rows:
        missing = r["profile"] == "missing"
        image = "-" if missing else ("n/a" if r["image_auroc"] is None else f"{r['image_auroc']:.2f}")
        good = "-" if missing else ("n/a" if r["good_correct"] is None else f"{r['good_correct']:.2f}")
        lines.append(_table_line([
            r["category"], r["model"] or "-", r["setup"] or "-", r["profile"], r["epochs"] or "-",
            cell(r["pixel_auroc"], "missing"), cell(r["paper"]), cell(r["au_pro"]), image, good,
            cell(r["defective_correct"]),
        ], TABLE_COLUMNS))
    lines.append("-" * len(header))
    label_width = sum(width for _, width, _ in TABLE_COLUMNS[:LABEL_COLUMNS]) + LABEL_COLUMNS - 1
    mean_columns = (("label", label_width, "<"),) + TABLE_COLUMNS[LABEL_COLUMNS:LABEL_COLUMNS + 3]
    for model in MODEL_ORDER:
        present = [r for r in rows if r["model"] == model and r["pixel_auroc"] is not None
                   and r["category"] in CATEGORIES]
        if present:
            lines.append(_table_line([
                f"{model}, mean of the {len(present)} of 15 present",
                *(f"{np.mean([r[key] for r in present]):.2f}" for key in ("pixel_auroc", "paper", "au_pro")),
            ], mean_columns))
    lines.append(
        f"paper, mean of all 15: pixel AUROC SSIM-AE {PAPER_MEAN_PIXEL_AUROC['SSIM-AE']:.2f} | "
        f"L2-AE {PAPER_MEAN_PIXEL_AUROC['L2-AE']:.2f}; AU-PRO@0.3 SSIM-AE {PAPER_MEAN_AU_PRO['SSIM-AE']:.3f} | "
        f"L2-AE {PAPER_MEAN_AU_PRO['L2-AE']:.3f}"
    )
    return "\n".join(lines)


def model_gaps(rows):
    """SSIM-AE minus L2-AE per category, where :func:`summary_rows` has both models of one setup and profile.

    One dict per such (category, setup, profile): ``category``, ``setup``,
    ``profile``, ``epochs`` (``"50/200 | 50/200"``: SSIM-AE's, then L2-AE's),
    ``equal_epochs`` (False where both models' epochs are known and differ),
    ``pixel_auroc`` and ``au_pro`` (our differences, None where a value is
    missing) and ``paper`` (Table 3's pixel AUROC difference; None off Table 3).
    """
    gaps = []
    for r in rows:
        if r["model"] != "SSIM-AE":
            continue
        l2 = next((o for o in rows if o["model"] == "L2-AE" and
                   (o["category"], o["setup"], o["profile"]) == (r["category"], r["setup"], r["profile"])), None)
        if l2 is not None:
            gaps.append({"category": r["category"], "setup": r["setup"], "profile": r["profile"],
                         "epochs": f"{r['epochs'] or '-'} | {l2['epochs'] or '-'}",
                         "equal_epochs": None if None in (r["epochs"], l2["epochs"]) else r["epochs"] == l2["epochs"],
                         **{key: None if r[key] is None or l2[key] is None else r[key] - l2[key]
                            for key in ("pixel_auroc", "paper", "au_pro")}})
    return gaps


def format_gaps(gaps):
    """A plain-text table of :func:`model_gaps` (differences signed, two decimals)."""
    columns = (("category", 11, "<"), ("setup", 16, "<"), ("profile", 12, "<"), ("epochs SSIM | L2", 17, ">"),
               ("pixel AUROC", 11, ">"), ("paper", 6, ">"), ("AU-PRO@0.3", 10, ">"))
    header = _table_line([heading for heading, _, _ in columns], columns)
    lines = ["SSIM-AE minus L2-AE (positive: the SSIM-AE is better)", header, "-" * len(header)]
    for g in gaps:
        lines.append(_table_line([
            g["category"], g["setup"], g["profile"], g["epochs"],
            *("-" if g[key] is None else f"{g[key]:+.2f}" for key in ("pixel_auroc", "paper", "au_pro")),
        ], columns))
    if not gaps:
        lines.append("no category has results of both models with one setup and profile")
    for g in gaps:
        if g["equal_epochs"] is False:
            lines.append(f"{g['category']} ({g['setup']}, {g['profile']}): the two models have had different epochs "
                         f"({g['epochs']}), so this difference is not one of equal budgets")
    return "\n".join(lines)


def format_progress(records):
    """A plain-text table of what longer training changed: each run of ``records`` that has ``earlier`` stages.

    One line per stage (epochs done of the schedule), then the current one; pixel AUROC,
    AU-PRO@0.3 and image AUROC ("n/a" without defect-free test images).
    """
    columns = (("category", 11, "<"), ("model", 8, "<"), ("setup", 16, "<"), ("profile", 12, "<"),
               ("epochs", 7, ">"), ("pixel AUROC", 11, ">"), ("AU-PRO@0.3", 10, ">"), ("image AUROC", 11, ">"))
    header = _table_line([heading for heading, _, _ in columns], columns)
    lines = [header, "-" * len(header)]
    for (category, model, setup), record in records.items():
        stages = record.get("earlier", [])
        if not stages:
            continue
        for stage in stages + [results_stage(record)]:
            lines.append(_table_line([
                category, model, setup, record.get("profile", "?"),
                f"{stage['epochs_done']}/{stage['schedule_epochs']}",
                *("n/a" if stage[k] is None else f"{stage[k]:.3f}" for k in PROGRESS_METRICS[:3]),
            ], columns))
    if len(lines) == 2:
        lines.append("no results file holds an earlier stage of its model yet")
    return "\n".join(lines)


def stored_losses(models_root=None, setup="cvpr2019"):
    """``{(category, model): [training loss of each epoch]}`` of every stored MVTec AD model of ``setup``.

    From the manifests in ``models_root/mvtec`` (default: the repository's ``models/``); the
    list is as long as the epochs the model has had.
    """
    losses = {}
    for name in artifacts.list_models("mvtec", models_root):
        training = (artifacts.read_manifest(artifacts.study_model("mvtec", name, models_root))
                    or {}).get("training", {})
        preset = training.get("preset", {})
        suffix = f"-{preset.get('loss')}-{setup}"
        if preset.get("setup") == setup and name.endswith(suffix) and training.get("loss"):
            losses[name[: -len(suffix)], model_label(preset["loss"])] = training["loss"]
    return losses


def plot_training_losses(losses, mark=None, epochs=None, title=None):
    """The training loss per epoch of :func:`stored_losses`: SSIM-AEs (left) and L2-AEs (right), log scale.

    The two losses have different scales (1 - SSIM; mean squared error), hence two panels.
    ``mark``: an epoch drawn dotted (the end of the first stage); ``epochs``: the x axis
    runs to it in both panels (the schedule's length, so that unfinished models show as such).
    """
    fig, axes = plt.subplots(1, len(MODEL_ORDER), figsize=(7.2, 3.0))
    for ax, model in zip(axes, MODEL_ORDER):
        curves = {f"{category} ({len(values)} epochs)": values
                  for (category, m), values in losses.items() if m == model}
        if curves:
            plot_losses(ax, curves, mark=mark, title=f"{model} ({'SSIM' if model == 'SSIM-AE' else 'L2'} loss)")
            ax.set_xlim(0, epochs)
        else:
            ax.set_axis_off()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_summary(rows, title=None):
    """Pixel AUROC per category: for SSIM-AE and L2-AE, the paper's bar and ours (labelled with setup, profile, epochs).

    Where a model has rows of several setups, the first (``cvpr2019`` before ``reimplementation``) is drawn.
    """
    categories = list(dict.fromkeys(r["category"] for r in rows))
    colours = {"SSIM-AE": ("#56B4E9", "#0072B2"), "L2-AE": ("#F0C987", "#D55E00")}
    height = 0.2
    fig, ax = plt.subplots(figsize=(7.2, 0.5 * len(categories) + 1.2))
    for y, category in enumerate(categories):
        for m, model in enumerate(MODEL_ORDER):
            paper = PAPER_PIXEL_AUROC.get(category, {}).get(model)
            ours = next((r for r in rows if r["category"] == category and r["model"] == model), None)
            top = y + (2 * m - 1.5) * height
            labels = (f"paper {model} (CVPR 2019 Table 3)", f"ours {model}") if y == 0 else (None, None)
            if paper is not None:
                ax.barh(top, paper, height, color=colours[model][0], label=labels[0])
            value = ours["pixel_auroc"] if ours else None
            ax.barh(top + height, value if value is not None else 0.0, height, color=colours[model][1], label=labels[1])
            epochs = f", {ours['epochs']} epochs" if ours and ours["epochs"] else ""
            text = "not run" if value is None else f"{value:.2f} ({ours['setup']}, {ours['profile']}{epochs})"
            ax.text((value or 0.0) + 0.005, top + height, text, va="center", fontsize=6)
    ax.set_yticks(np.arange(len(categories)), categories)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.3)
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.set_xlabel("pixel AUROC")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, fontsize=7)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
