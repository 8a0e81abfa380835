"""Synthetic defects on defect-free validation crops: a model-selection measure that never sees a test image.

The crop-protocol campaign chose its settings on the validation loss (how well a model reconstructs defect-free
texture it was not fitted to). A lower loss did not always mean better maps: what the maps need is contrast
between the residual on a defect and on defect-free texture. This measure adds defects to the validation crops
of the training images (:func:`ssimlib.experiments.nanotwice.validation_patches`) and scores the model's residual
maps on them with the pixel AUROC, as the test images are scored, but on defects we drew:

* a turned texture: a disk (radius 5-11 px, with a soft edge) of the crop turned by 90 degrees, fibres that run
  another way at the same brightness,
* a coarser texture: a disk of the crop at twice its scale,
* a bright blob (a bead; radius 3-10 px, 0.15-0.4 brighter),
* a blurred disk (a film; radius 5-11 px: the fibres' texture smoothed away, Gaussian sigma 3),

one per crop, the four kinds in turn, at a random place at least :data:`MARGIN` px from the border. The
defect's mask is the set of pixels it changes by more than :data:`MASK_CHANGE`. The AUROC counts the pixels at
least :data:`BORDER` px inside the crop (the SSIM window's reflected border is unlike the inside of an image).
A measurement is the mean over three draws of defects (:data:`SEEDS`): one draw moves the AUROC by about 0.02,
the difference between two models on the same draws far less. Beside the AUROC it reports how much of the defects
a model reconstructs (:func:`pass_through`): what a model of fewer defect-like features would lower.

``python -m ssimlib synthetic-defects --models STEM [STEM ...] [--results FILE]`` measures stored
models and adds them to ``results/nanotwice_synthetic_defects.json``.
"""

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage

from ssimlib import artifacts
from ssimlib.arguments import OneLineParser
from ssimlib.artifacts import ArtifactError
from ssimlib.data import DatasetError
from ssimlib.records import run_environment, write_json
from ssimlib.experiments import nanotwice
from ssimlib.inference import residual_map
from ssimlib.metrics import roc_auc
from ssimlib.paths import REPO_ROOT, nearest_existing
from ssimlib.ssim import STANDARD

KINDS = ("turned texture", "coarser texture", "bright blob", "blurred disk")
MARGIN = 20  # px: a defect's centre lies at least this far from the crop's border
MASK_CHANGE = 0.02  # a pixel changed by more than this (grey values in [0, 1]) belongs to the defect
BORDER = 8  # px: the AUROC counts the pixels at least this far inside the crop
N_CROPS = 400  # validation crops, 100 of each kind
SEEDS = (0, 1, 2)  # defect draws a measurement averages over (one draw varies by 0.02, a paired difference less)
DEFAULT_RESULTS = REPO_ROOT / "results" / "nanotwice_synthetic_defects.json"


def _soft_disk(shape, centre, radius):
    """1 inside ``radius / 2`` of ``centre``, falling linearly to 0 at ``1.5 * radius``: ``(H, W)`` float."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return np.clip(1.5 - np.hypot(yy - centre[0], xx - centre[1]) / radius, 0.0, 1.0)


def _defect(crop, kind, rng):
    """``crop`` ``(H, W)`` in [0, 1] (square) with one defect of ``kind`` (an index of :data:`KINDS`) drawn from
    ``rng``."""
    centre = rng.integers(MARGIN, np.array(crop.shape) - MARGIN)
    if kind == 0:  # the crop's own texture, turned by 90 degrees: the fibres run another way
        other = np.rot90(crop)
    elif kind == 1:  # the crop's own texture at twice its scale: coarser fibres
        side = crop.shape[0]
        other = ndimage.zoom(crop, 2, order=1)[side // 2: side // 2 + side, side // 2: side // 2 + side]
    elif kind == 2:  # a bead: a bright blob
        profile = _soft_disk(crop.shape, centre, rng.uniform(3, 10))
        return np.clip(crop + rng.uniform(0.15, 0.4) * profile, 0, 1)
    else:  # a film: the fibres' texture smoothed away
        other = ndimage.gaussian_filter(crop, 3)
    profile = _soft_disk(crop.shape, centre, rng.uniform(5, 11))
    return profile * other + (1 - profile) * crop


def add_defects(crops, seed=0):
    """``(defective, masks, kinds)``: ``crops`` ``(N, H, W, 1)`` with one defect each, the kinds of :data:`KINDS`
    in turn; ``masks`` ``(N, H, W)`` bool, the pixels changed by more than :data:`MASK_CHANGE`; ``kinds`` ``(N,)``."""
    rng = np.random.default_rng(seed)
    crops = np.asarray(crops, np.float32)
    kinds = np.arange(len(crops)) % len(KINDS)
    defective = np.stack([_defect(c[..., 0].astype(np.float64), k, rng) for c, k in zip(crops, kinds)])
    masks = np.abs(defective - crops[..., 0]) > MASK_CHANGE
    return defective.astype(np.float32)[..., None], masks, kinds


def pass_through(kept, change):
    """How much of a change of its input a reconstruction reproduces: the least-squares slope of ``kept`` (the
    reconstruction's change) on ``change`` (the input's), arrays of one shape; 1 where it copies the change, 0 where
    it ignores it."""
    change = np.asarray(change, np.float64)
    return float(np.sum(np.asarray(kept, np.float64) * change) / np.sum(change**2))


def synthetic_scores(model, crops, seeds=SEEDS, kind="ssim", batch_size=50, **ssim):
    """How well ``model`` (``predict`` of ``(N, p, p, 1)``) finds the defects of :func:`add_defects` in ``crops``
    with its ``kind`` residual (``"ssim"``, ``"l2"``; ``ssim``: ``window_size``, ``window``, ``constants`` of
    :func:`ssimlib.inference.residual_map`), one draw of defects per seed of ``seeds``: a dict of the pixel AUROC
    of each draw, and of each kind, and the mean residual on defect pixels, means over the draws, and on the
    defect-free crops (the same crops without defects, mapped once); and how much of the defects the model
    reconstructs: the :func:`pass_through` of its reconstructions' change on the defect pixels, over all defects
    and of each kind (means over the draws), 1 where it copies them and 0 where it restores the defect-free crop."""

    def reconstruct(images):
        return np.asarray(model.predict(images, batch_size=batch_size, verbose=0), np.float64)

    def maps(images, reconstructions):
        return np.stack([residual_map(x, y, kind, **ssim) for x, y in zip(images, reconstructions)])[inside]

    inside = np.s_[:, BORDER:-BORDER, BORDER:-BORDER]
    clean = np.asarray(crops, np.float32)
    clean_reconstructions = reconstruct(clean)
    by_kind, by_seed, defect = {name: [] for name in KINDS}, [], []
    kept_by_kind, kept = {name: [] for name in KINDS}, []
    for seed in seeds:
        defective, masks, kinds = add_defects(crops, seed)
        reconstructions = reconstruct(defective)
        found, masks = maps(defective, reconstructions), masks[inside]
        change = (defective[..., 0] - clean[..., 0]).astype(np.float64)[inside]
        reconstructed = (reconstructions - clean_reconstructions)[..., 0][inside]
        by_seed.append(roc_auc(found.ravel(), masks.ravel()))
        kept.append(pass_through(reconstructed[masks], change[masks]))
        for k, name in enumerate(KINDS):
            by_kind[name].append(roc_auc(found[kinds == k].ravel(), masks[kinds == k].ravel()))
            ours = masks & (kinds == k)[:, None, None]
            kept_by_kind[name].append(pass_through(reconstructed[ours], change[ours]))
        defect.append(float(found[masks].mean()))
    return {
        "pixel_auroc": float(np.mean(by_seed)),
        "pixel_auroc_by_seed": by_seed,
        "pixel_auroc_by_kind": {name: float(np.mean(values)) for name, values in by_kind.items()},
        "defect_residual": float(np.mean(defect)),
        "defect_free_residual": float(maps(clean, clean_reconstructions).mean()),
        "defect_pass_through": float(np.mean(kept)),
        "defect_pass_through_by_kind": {name: float(np.mean(values)) for name, values in kept_by_kind.items()},
    }


def _unfit(model, manifest):
    """Why this measure does not apply to a stored model, or None: it measures NanoTWICE SSIM-AEs and L2-AEs (the
    others' residuals are not a plain SSIM or L2) whose patch leaves room for a defect inside its :data:`MARGIN`."""
    training = manifest.get("training") or {}
    loss = (training.get("settings") or {}).get("loss")
    if not str(training.get("data", "")).startswith("NanoTWICE"):
        return f"trained on {training.get('data')!r}, not NanoTWICE: the defects are drawn into NanoTWICE crops"
    if loss not in ("ssim", "l2"):
        return f"a model of loss {loss!r}; the measure scores SSIM-AEs and L2-AEs by their own residual"
    if model.patch_size <= 2 * MARGIN + 2 * BORDER:
        return f"patches of {model.patch_size} px; the defects need at least {2 * MARGIN + 2 * BORDER + 1}"
    return None


def read_results(path):
    """The results file at ``path`` (a new one where there is none); :class:`DatasetError` naming it when it is not
    one this module wrote."""
    path = Path(path)
    if not path.exists():
        return {"dataset": "NanoTWICE", "purpose": __doc__.split("\n")[0], "models": {}}
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DatasetError(f"{path}: not a results file of this measure ({getattr(error, 'strerror', None) or error})"
                           ) from None
    if not isinstance(results, dict) or not isinstance(results.get("models"), dict):
        raise DatasetError(f"{path}: not a results file of this measure (expected a JSON object with \"models\")")
    return results


def check_writable(path):
    """:class:`DatasetError` unless a results file can be written at ``path`` (its folder made where missing)."""
    existing = nearest_existing(Path(path).parent)
    if not existing.is_dir():
        raise DatasetError(f"--results {path}: {existing} is a file, not a folder")
    try:  # a probe, not os.access: root "may" write on a read-only mount
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as error:
        raise DatasetError(f"--results {path}: cannot write in {existing} ({error.strerror or error})") from None


def measure(stems, data_root=None, n_crops=N_CROPS, seeds=SEEDS, log=print):
    """:func:`synthetic_scores` of each stored NanoTWICE model at ``stems`` on ``n_crops`` validation crops of
    its patch size, with the residual, SSIM window and SSIM constants of its training, for each defect seed of
    ``seeds``: a dict by stem name of the means over the seeds (and ``pixel_auroc_by_seed``)."""
    names = [Path(stem).name for stem in stems]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:  # a row of the results file per name: one would overwrite the other
        raise ArtifactError(f"--models: more than one model named {', '.join(twice)}; the results keep one row per "
                            "name: give each model a name of its own")
    loaded = {Path(stem): artifacts.load_model(stem) for stem in stems}  # a bad model named before any work
    for stem, (model, manifest) in loaded.items():
        problem = _unfit(model, manifest)
        if problem:
            raise ArtifactError(f"{stem}: {problem}")
    dataset = nanotwice.load_dataset(data_root)
    rows = {}
    for stem, (model, manifest) in loaded.items():
        settings = manifest["training"]["settings"]
        crops = nanotwice.validation_patches(dataset, model.patch_size, n_crops)
        kind = settings["loss"]  # "ssim" or "l2" (_unfit): its residual is of its loss
        ssim = {"window_size": settings.get("window_size", 11), "window": settings.get("window", "uniform"),
                "constants": settings.get("ssim_constants", STANDARD)}
        rows[stem.name] = {
            **synthetic_scores(model, crops, seeds, kind, **ssim),
            "residual": kind, "schedule": nanotwice.schedule_label(manifest), "crops": n_crops, "seeds": list(seeds),
            "weights_sha256": manifest["sha256"],
        }
        log(f"{stem.name}: synthetic-defect pixel AUROC {rows[stem.name]['pixel_auroc']:.4f} ({kind} residual, "
            f"mean of defect seeds {', '.join(map(str, seeds))})")
    return rows


def main(argv=None):
    """``python -m ssimlib synthetic-defects --models STEM ...``: see the module docstring."""
    parser = OneLineParser(prog="python -m ssimlib synthetic-defects", description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", required=True, help="stored models (their stems)")
    parser.add_argument("--data-root", help="NanoTWICE folder (default: $SSIMLIB_DATA/nanotwice or ../shared)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results file (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        results = read_results(args.results)  # a bad file or folder named before the minutes of measuring
        check_writable(args.results)
        rows = measure(args.models, args.data_root)
    except (ArtifactError, DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    results["models"].update(rows)
    results.update(code_commit=artifacts.code_commit(), machine=run_environment())
    write_json(args.results, results)
    return 0

