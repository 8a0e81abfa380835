"""The paper's Fig. 3 experiment (Bergmann et al. 2019, section 3) as reusable steps.

An L2 autoencoder (Table I, :class:`ssimlib.models.ConvAutoencoder`) is trained on
defect-free 128x128 checkerboards of various scales and orientations and applied
to boards with gray strokes and dots.  Its reconstruction removes the defects;
the per-pixel L2 residual weighs the defects and the slightly misplaced edges
alike, while SSIM's luminance, contrast and structure terms single out the
defects.  An SSIM-AE trained the same way is the comparison.

* Data: :func:`training_boards` (defect-free), :func:`validation_boards` and
  :func:`test_boards` (gray strokes and dots, with masks and the clean boards),
  each from its own random stream, so no board of one set appears in another.
* Training: :func:`train_checkerboard_model` trains into the model store
  ``models/checkerboard/{l2_ae,ssim_ae}`` (:mod:`ssimlib.artifacts`), resumably,
  and records per epoch a validation measure of defect removal
  (:func:`defect_removal`); ``python -m ssimlib train-study checkerboard`` runs it.
* Evaluation: :func:`load_or_train`, :func:`reconstruct`, :func:`anomaly_maps`
  (opened with the paper's disk of diameter 4), :func:`pixel_aurocs`,
  :func:`top_k_shares`, :func:`residual_terms`, :func:`region_means` and
  :func:`flat_windows`.

Boards are float32 ``(N, S, S, 1)`` in ``[0, 1]`` (squares 0.1 and 0.9, defects
0.5); masks and edge maps are bool ``(N, S, S)``.
"""

import json
from pathlib import Path

import numpy as np
import scipy.ndimage
import skimage.morphology
import skimage.segmentation

from ssimlib import artifacts
from ssimlib.records import write_json
from ssimlib.experiments import nanotwice
from ssimlib.inference import residual_map
from ssimlib.metrics import pixel_auroc
from ssimlib.postprocess import PAPER_OPENING_DIAMETER, open_anomaly_map
from ssimlib.ssim import ssim_map
from ssimlib.store_training import cache_dir, train_into_store
from ssimlib.synthetic import draw_defects, random_checkerboard
from ssimlib.train import read_checkpoint_state, training_settings

STUDY = "checkerboard"
# Training loss -> method name (as nanotwice.METHODS) and model name in models/checkerboard/.
METHOD_NAMES = {"l2": "L2-AE", "ssim": "SSIM-AE"}
MODEL_NAMES = {"l2": "l2_ae", "ssim": "ssim_ae"}
# The three residuals of the comparison: (label, model's loss, residual kind).
RESIDUALS = (
    ("L2-AE, L2 residual", "l2", "l2"),
    ("L2-AE, SSIM residual", "l2", "ssim"),
    ("SSIM-AE, SSIM residual", "ssim", "ssim"),
)
# Random streams of the three board sets: np.random.default_rng([seed, stream]).
TRAIN_STREAM, VALIDATION_STREAM, TEST_STREAM = 0, 1, 2
TEST_SEED = 2
EDGE_DISTANCE = 2  # px: "on an edge" means within this distance of a boundary between squares of the clean board

# The schedule of the committed checkerboard models.
# * Boards: 128 px (the paper's patch size); square sides 1/16, 3/32, 1/8 and 3/16 of the board (8, 12, 16 and
#   24 px), drawn with equal probability; angle uniform in [-45, 45] degrees, which covers every orientation
#   (a board turned by 90 degrees is the same board); phase uniform over a full period.  10,000 boards, as the
#   paper's 10,000 training patches.
# * d = 100, the latent size of the authors' texture models (MVTec AD, CVPR 2019): a board has four free
#   parameters (square size, angle, two phases), so d does not limit the reconstruction of a board, while the
#   decoder, trained on defect-free boards only, has no reason to draw strokes or dots.  The validation measure
#   (defect_removal) shows whether it removes them.
# * Adam 2e-4, weight decay 1e-5, batch 32 and the SSIM window of the NanoTWICE models (FIG6_SCHEDULE).
# * epochs: provisional.  100 epochs x 10,000 boards are half the NanoTWICE models' 200 x 10,000 patches
#   for a far simpler texture; the training loss and the validation errors logged per epoch confirm or revise
#   the number (`--epochs N` continues a finished run from its checkpoint).
CHECKERBOARD_SCHEDULE = {
    "n_train": 10_000,
    "board_size": 128,
    "squares": [1 / 16, 3 / 32, 1 / 8, 3 / 16],
    "max_angle": 45.0,
    "latent_dim": 100,
    "epochs": 100,
    "batch_size": 32,
    "learning_rate": nanotwice.FIG6_SCHEDULE["learning_rate"],
    "weight_decay": nanotwice.FIG6_SCHEDULE["weight_decay"],
    "window_size": nanotwice.FIG6_SCHEDULE["window_size"],
    "window": nanotwice.FIG6_SCHEDULE["window"],
    "seed": 0,
    "n_validation": 64,
    "validation_seed": 1,
}
VALIDATION_FILE = "validation.json"  # beside the checkpoint: the settings and the validation errors per epoch


def training_boards(n, size=128, squares=CHECKERBOARD_SCHEDULE["squares"], max_angle=45.0, seed=0):
    """``n`` defect-free boards ``(n, size, size, 1)``; square sides are ``size * squares``, angles in
    ``±max_angle``."""
    rng = np.random.default_rng([seed, TRAIN_STREAM])
    boards = np.empty((n, size, size, 1), np.float32)
    for i in range(n):
        boards[i] = random_checkerboard(rng, size, squares, max_angle)
    return boards


def _defective_boards(n, size, squares, max_angle, seed, stream):
    rng = np.random.default_rng([seed, stream])
    clean = np.empty((n, size, size, 1), np.float32)
    boards = np.empty_like(clean)
    masks = np.empty((n, size, size), bool)
    for i in range(n):
        clean[i] = random_checkerboard(rng, size, squares, max_angle)
        boards[i], masks[i] = draw_defects(clean[i], rng)
    return boards, masks, clean


def validation_boards(schedule):
    """``(boards, masks, clean)`` of the ``n_validation`` defective boards of ``schedule`` (for choosing epochs)."""
    s = schedule
    return _defective_boards(s["n_validation"], s["board_size"], s["squares"], s["max_angle"], s["validation_seed"],
                             VALIDATION_STREAM)


def test_boards(n, schedule, seed=TEST_SEED):
    """``(boards, masks, clean)``: ``n`` defective boards drawn as ``schedule``'s training boards, with gray defects."""
    s = schedule
    return _defective_boards(n, s["board_size"], s["squares"], s["max_angle"], seed, TEST_STREAM)


def describe_boards(schedule):
    """The board ranges of ``schedule`` in words."""
    size = schedule["board_size"]
    sides = ", ".join(f"{size * f:g}" for f in schedule["squares"])
    return (f"{size} px boards, square sides {sides} px, angles uniform in ±{schedule['max_angle']:g}°, "
            "random phase")


def reconstruct(model, boards, batch_size=64):
    """The model's reconstructions ``(N, S, S, 1)`` float32 of ``boards`` (each board is one patch).

    The last batch is padded to ``batch_size``: one batch shape, one traced function.
    """
    n = len(boards)
    padded = np.concatenate([boards, np.zeros((-n % batch_size, *boards.shape[1:]), boards.dtype)])
    return np.concatenate([np.asarray(model.predict_on_batch(padded[i : i + batch_size]), np.float32)
                           for i in range(0, len(padded), batch_size)])[:n]


def defect_removal(reconstructions, clean, masks):
    """Mean ``|reconstruction - clean board|`` on the defect pixels and on all other pixels.

    An autoencoder that removes the defects and reconstructs the board has both
    small; one that copies its input has the first at the defects' own
    ``|defective - clean|`` (0.4 where a 0.5 defect covers a 0.1 or 0.9 square).
    """
    error = np.abs(reconstructions[..., 0].astype(np.float64) - clean[..., 0])
    return {"error_on_defects": float(error[masks].mean()), "error_off_defects": float(error[~masks].mean())}


def _settings(loss, schedule):
    """What a checkerboard model's checkpoint and manifest record: the training settings and the boards."""
    s = schedule
    return {
        **training_settings(loss, s["epochs"], s["batch_size"], s["learning_rate"], s["weight_decay"],
                            s["window_size"], s["window"], s["seed"], s["n_train"]),
        "board_size": s["board_size"],
        "squares": [float(f) for f in s["squares"]],
        "max_angle": float(s["max_angle"]),
        "latent_dim": s["latent_dim"],
        "n_validation": s["n_validation"],
        "validation_seed": s["validation_seed"],
    }


def _differences(saved, settings):
    return {k: (saved.get(k), v) for k, v in settings.items() if k != "epochs" and saved.get(k) != v}


def _validation_so_far(checkpoint_dir, settings, manifest):
    """Validation entries of the epochs the checkpoint in ``checkpoint_dir`` holds.

    They come from its validation file (which must have been written for the same
    settings), or, for a checkpoint seeded from the stored model, from its manifest.
    """
    state = read_checkpoint_state(checkpoint_dir)
    if state is None:
        return []
    path = Path(checkpoint_dir) / VALIDATION_FILE
    if path.exists():
        saved = json.loads(path.read_text())
        changed = _differences(saved["settings"], settings)
        if changed:
            raise ValueError(f"checkpoint in {checkpoint_dir} was made with other settings (saved, now): {changed}; "
                             f"give the same schedule to continue it, or move {checkpoint_dir} aside to train anew")
        entries = saved["validation"]
    elif manifest is not None and not _differences(manifest["training"]["settings"], settings):
        entries = manifest["training"].get("validation", [])  # the checkpoint continues the stored model
    else:
        entries = []
    return [e for e in entries if e["epoch"] <= len(state["history"]["loss"])]


def train_checkerboard_model(loss, schedule=None, models_root=None, checkpoint_dir=None, export_every=10, log=print):
    """Train the L2-AE (``loss="l2"``) or SSIM-AE (``"ssim"``) on checkerboards into the model store.

    ``schedule`` overrides entries of :data:`CHECKERBOARD_SCHEDULE`.  Checkpoints
    go to ``checkpoint_dir`` (default ``<cache>/checkpoints/checkerboard/<name>``,
    see :func:`ssimlib.store_training.cache_dir`) after every epoch, the model to
    ``models_root/checkerboard/<name>`` every ``export_every`` epochs and at the
    end (:func:`ssimlib.store_training.train_into_store`: resumes from the checkpoint, or
    continues a stored model of the same settings).  After every epoch the
    validation boards are reconstructed and :func:`defect_removal` is logged and
    kept in the manifest (``training.validation``).  Returns the manifest.
    """
    if loss not in MODEL_NAMES:
        raise ValueError(f"loss must be one of {', '.join(MODEL_NAMES)}, got {loss!r}")
    artifacts.code_commit()  # the code this job runs, recorded in every export
    schedule = {**CHECKERBOARD_SCHEDULE, **(schedule or {})}
    name = MODEL_NAMES[loss]
    checkpoint_dir = Path(checkpoint_dir or cache_dir() / "checkpoints" / STUDY / name)
    stem = artifacts.study_model(STUDY, name, models_root)
    settings = _settings(loss, schedule)
    validation = []  # filled in fit, so that every export holds the epochs done
    record = {
        "method": METHOD_NAMES[loss],
        "data": f"{schedule['n_train']:,} generated defect-free checkerboards ({describe_boards(schedule)}), "
                f"seed {schedule['seed']}; validation: {schedule['n_validation']} boards with gray strokes and "
                f"dots, seed {schedule['validation_seed']}",
        "settings": settings,
        "validation": validation,
    }
    check_boards, check_masks, check_clean = validation_boards(schedule)
    copy_error = defect_removal(check_boards, check_clean, check_masks)["error_on_defects"]
    stored = artifacts.read_manifest(stem)

    def validate(model, history):
        errors = defect_removal(reconstruct(model, check_boards), check_clean, check_masks)
        validation.append({"epoch": len(history["loss"]), **errors})
        write_json(Path(checkpoint_dir) / VALIDATION_FILE, {"settings": settings, "validation": validation})
        log(f"{name}: validation, |reconstruction - clean board| on defects {errors['error_on_defects']:.4f} "
            f"(copying them: {copy_error:.4f}), elsewhere {errors['error_off_defects']:.4f}")

    def fit(checkpoint_dir, on_epoch):
        validation[:] = _validation_so_far(checkpoint_dir, settings, stored)
        boards = training_boards(schedule["n_train"], schedule["board_size"], schedule["squares"],
                                 schedule["max_angle"], schedule["seed"])
        return nanotwice.train_config(
            METHOD_NAMES[loss], boards, latent_dim=schedule["latent_dim"], window_size=schedule["window_size"],
            window=schedule["window"], epochs=schedule["epochs"], batch_size=schedule["batch_size"],
            learning_rate=schedule["learning_rate"], weight_decay=schedule["weight_decay"], seed=schedule["seed"],
            checkpoint_dir=checkpoint_dir, progress=False, on_epoch=on_epoch,
        )

    return train_into_store(fit, stem, checkpoint_dir, settings, record, schedule["epochs"], export_every, log,
                            on_epoch=validate, study=STUDY)


def load_checkerboard_models(models_root=None):
    """The stored L2-AE and SSIM-AE (default: the committed ``models/checkerboard``).

    Returns ``(models, manifests, missing)``: dicts by loss (``"l2"``, ``"ssim"``)
    and the losses without a stored model.  An altered file raises
    :class:`ssimlib.artifacts.ArtifactError`.
    """
    return artifacts.load_study_models(STUDY, MODEL_NAMES, models_root)


def load_or_train(models_root=None, train_missing=False, schedule=None, checkpoint_root=None, log=print):
    """Both models, training a missing one at ``schedule`` only when ``train_missing``.

    Checkpoints of what it trains go to ``checkpoint_root/checkpoints/<name>``
    (default: the cache, as ``train-study``).  Returns ``(models, manifests,
    trained)``: dicts by loss and the losses this call trained.  A missing model
    without ``train_missing`` raises FileNotFoundError naming its manifest and
    the command that trains it; with ``train_missing``, a stored model of other
    settings than ``schedule`` raises ValueError naming them.
    """
    models, manifests, missing = load_checkerboard_models(models_root)
    if missing and not train_missing:
        lines = [f"{artifacts.model_files(artifacts.study_model(STUDY, MODEL_NAMES[loss], models_root))[1]}: "
                 f"no trained {METHOD_NAMES[loss]}" for loss in missing]
        methods = " ".join(METHOD_NAMES[loss] for loss in missing)
        raise FileNotFoundError(
            "; ".join(lines) + f". Train with `python -m ssimlib train-study checkerboard --models {methods}` "
            "(hours at the 128 px schedule), or set train_missing = True to train at the given schedule"
        )
    if train_missing:  # the schedule is asked for: a stored model of another would be evaluated in its place
        asked = {**CHECKERBOARD_SCHEDULE, **(schedule or {})}
        for loss, manifest in manifests.items():
            wanted = _settings(loss, asked)
            changed = _differences(manifest["training"]["settings"], wanted)
            if manifest["training"]["settings"].get("epochs") != asked["epochs"]:
                changed["epochs"] = (manifest["training"]["settings"].get("epochs"), asked["epochs"])
            if changed:
                where = artifacts.model_files(artifacts.study_model(STUDY, MODEL_NAMES[loss], models_root))[1]
                raise ValueError(
                    f"{where}: the stored {METHOD_NAMES[loss]} was trained with other settings (stored, asked): "
                    + ", ".join(f"{k} {a!r}, {b!r}" for k, (a, b) in changed.items())
                    + "; give models_root a folder of its own to train at these settings, or leave them as stored")
    for loss in missing:
        checkpoint_dir = Path(checkpoint_root) / "checkpoints" / MODEL_NAMES[loss] if checkpoint_root else None
        train_checkerboard_model(loss, schedule, models_root, checkpoint_dir, log=log)
    if missing:
        models, manifests, _ = load_checkerboard_models(models_root)
    sizes = {loss: model.patch_size for loss, model in models.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"the stored models in {models_root or artifacts.MODELS_DIR} were trained on boards of "
                         f"different sizes {sizes}; train both at one schedule")
    return models, manifests, missing


def schedule_label(manifest):
    """How a stored checkerboard model was trained, in one line
    (as :func:`ssimlib.experiments.nanotwice.schedule_label`)."""
    settings = manifest["training"]["settings"]
    label = f"{nanotwice.schedule_label(manifest)}; {describe_boards(settings)}"
    validation = manifest["training"].get("validation")
    if validation:
        last = validation[-1]
        label += (f"; validation after epoch {last['epoch']}: |reconstruction - clean| on defects "
                  f"{last['error_on_defects']:.3f}, elsewhere {last['error_off_defects']:.3f}")
    return label


def provenance(models_root, trained):
    """Where the evaluated models come from, in words: the committed store or another, and what this run trained."""
    root = Path(models_root or artifacts.MODELS_DIR)
    if root.resolve() == artifacts.MODELS_DIR.resolve():
        where = f"models/{STUDY}" + ("" if trained else " (committed models)")
    else:
        where = f"models in {root / STUDY}"
    if trained:
        where += f", {' and '.join(METHOD_NAMES[loss] for loss in trained)} trained by this run"
    return where


def anomaly_maps(boards, reconstructions, window_size=11, window="uniform", opening_diameter=PAPER_OPENING_DIAMETER):
    """The residuals of :data:`RESIDUALS`, opened with a disk (paper: diameter 4; 1: raw): label -> ``(N, S, S)``.

    ``reconstructions`` maps a loss (``"l2"``, ``"ssim"``) to its model's reconstructions;
    only the residuals of the models given are computed.
    """
    return {
        label: np.stack([
            open_anomaly_map(residual_map(x, y, kind=kind, window_size=window_size, window=window), opening_diameter)
            for x, y in zip(boards, reconstructions[loss])
        ])
        for label, loss, kind in RESIDUALS
        if loss in reconstructions
    }


def pixel_aurocs(maps, masks):
    """Pixel AUROC of every map stack of ``maps`` (label -> ``(N, S, S)``) against ``masks``."""
    return {label: pixel_auroc(list(stack), list(masks)) for label, stack in maps.items()}


def edge_map(clean, masks, distance=EDGE_DISTANCE):
    """Pixels within ``distance`` px of a boundary between squares of the clean boards, off the defects."""
    edges = np.empty(masks.shape, bool)
    for i, board in enumerate(clean[..., 0]):
        boundary = skimage.segmentation.find_boundaries(board > 0.5, mode="thick")  # the pixels either side
        edges[i] = skimage.morphology.dilation(boundary, skimage.morphology.disk(distance - 1))
    return edges & ~masks


def flat_windows(clean, window_size=11):
    """Pixels whose ``window_size`` x ``window_size`` window on the clean board lies in one square: bool ``(N, S, S)``.

    There a removed defect is the window's only variation, the case of the paper's
    contrast argument (a defect adds variance where the reconstruction has none).
    """
    board = clean[..., 0]
    size = (1, window_size, window_size)
    highest = scipy.ndimage.maximum_filter(board, size, mode="nearest")
    lowest = scipy.ndimage.minimum_filter(board, size, mode="nearest")
    return highest - lowest < 1e-3


def top_k_shares(maps, masks, edges):
    """Where the top ``k`` scores fall (``k`` = the number of defect pixels): label -> (share on defects, on edges)."""
    k = int(masks.sum())
    shares = {}
    for label, stack in maps.items():
        top = np.argsort(-stack.ravel(), kind="stable")[:k]
        shares[label] = (float(masks.ravel()[top].mean()), float(edges.ravel()[top].mean()))
    return shares


def residual_terms(boards, reconstructions, window_size=11, window="uniform", batch_size=32):
    """Unopened per-pixel residuals ``(N, S, S)`` of reconstructions, float64.

    Keys: ``"L2 residual"`` ``(x - x̂)²``, ``"1 - l"``, ``"1 - c"``, ``"1 - s"`` (SSIM's
    luminance, contrast and structure terms, paper eqs. 5-7) and ``"1 - SSIM"``.
    """
    x = np.asarray(boards, np.float64)
    y = np.asarray(reconstructions, np.float64)
    parts = {"1 - SSIM": [], "1 - l": [], "1 - c": [], "1 - s": []}
    for i in range(0, len(x), batch_size):
        maps = ssim_map(x[i : i + batch_size], y[i : i + batch_size], window_size=window_size, window=window,
                        return_components=True)
        for key, m in zip(parts, maps):
            parts[key].append(1.0 - np.asarray(m)[..., 0])
    terms = {"L2 residual": ((x - y) ** 2)[..., 0]}
    terms.update({key: np.concatenate(chunks) for key, chunks in parts.items()})
    return {key: terms[key] for key in ("L2 residual", "1 - l", "1 - c", "1 - s", "1 - SSIM")}


def region_means(terms, masks, edges=None):
    """Mean of every map of ``terms`` on the defects, off the defects and, given ``edges``, on the edges."""
    regions = {"defects": masks, "off defects": ~masks, **({} if edges is None else {"edges": edges})}
    return {key: {name: float(m[region].mean()) for name, region in regions.items()} for key, m in terms.items()}


def largest_ssim_term(means):
    """Which of ``1 - l``, ``1 - c``, ``1 - s`` of :func:`region_means` is largest on the defects."""
    return max(("1 - l", "1 - c", "1 - s"), key=lambda key: means[key]["defects"])
