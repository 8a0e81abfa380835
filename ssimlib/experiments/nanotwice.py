"""The paper's NanoTWICE experiments (Bergmann et al. 2019, section 4.2) as reusable steps.

One *configuration* is a method (L2-AE, VAE, FM-AE or SSIM-AE), a patch size, a
latent size ``d`` and an SSIM window ``K``.  :func:`train_config` trains it on
random defect-free crops of the 5 training images; :func:`evaluate_config`
strides over the test images, averages the overlapping reconstructions, takes
the method's residual, opens it with a disk of diameter 4 and computes the pixel
ROC over all evaluated pixels.  Notebooks 02 (ROC comparison, Fig. 6-7) and 03
(sensitivity, Table II, timing) are built from these steps.
"""

import time
from dataclasses import dataclass

import keras
import numpy as np

from ssimlib.architecture import LINEAR
from ssimlib.data import CropStream, sample_patches
from ssimlib.datasets import load_nanotwice
from ssimlib.evaluate import anomaly_maps
from ssimlib.features import DEFAULT_FEATURE_EXTRACTOR, load_feature_extractor
from ssimlib.inference import reconstruct_image, residual_map
from ssimlib.metrics import au_pro, pixel_roc
from ssimlib.models import ConvAutoencoder, FeatureMatchingAutoencoder, VariationalAutoencoder
from ssimlib.experiments.presets import CROP_PROTOCOLS
from ssimlib.paths import data_root as resolve_data_root
from ssimlib.postprocess import open_anomaly_map
from ssimlib.ssim import DEFAULT_WINDOW, STANDARD
from ssimlib.train import DECAY, train

# Method name -> training loss of ssimlib.train.train.
METHODS = {"L2-AE": "l2", "VAE": "vae", "FM-AE": "fm", "SSIM-AE": "ssim"}
# The order in which `python -m ssimlib train-study nanotwice` trains them: the paper's model first.
TRAINING_ORDER = ("SSIM-AE", "L2-AE", "VAE", "FM-AE")
# Method name -> name of its trained model in models/nanotwice/ (see ssimlib.artifacts).
MODEL_NAMES = {"L2-AE": "l2_ae", "VAE": "vae", "FM-AE": "fm_ae", "SSIM-AE": "ssim_ae"}
# The paper's schedule for the Fig. 6 models (section 4.2); the batch size is not stated there:
# on a 2-core CPU batch 32 runs at about the patches/s of 128 and takes 4x more steps per epoch.
FIG6_SCHEDULE = {
    "n_patches": 10_000,
    "patch_size": 128,
    "latent_dim": 500,
    "epochs": 200,
    "batch_size": 32,
    "learning_rate": 2e-4,
    "weight_decay": 1e-5,
    "window_size": 11,
    "window": DEFAULT_WINDOW,
    "seed": 0,
    "feature_extractor": DEFAULT_FEATURE_EXTRACTOR,
    "fm_weight": 1.0,
}
# Validation crops of the training images: their number and seed, the same for every run.
VALIDATION_PATCHES = 1_000
VALIDATION_SEED = [2019, 7]
DIAGNOSTIC_STREAM = 3
PAPER_PATCH_SIZE = 128
PAPER_STRIDE = 30
# Pixel AUROC on NanoTWICE reported in the paper (VAE and FM-AE appear only as curves in Fig. 6).
PAPER_PIXEL_AUROC = {"L2-AE": 0.688, "VAE": None, "FM-AE": None, "SSIM-AE": 0.966}
# Table II: SSIM-AE pixel AUROC on NanoTWICE, one factor varied around d=500, K=11, patch 128.
PAPER_TABLE_II = {
    "latent_dim": {50: 0.848, 100: 0.935, 200: 0.961, 500: 0.966, 1000: 0.962},
    "window_size": {3: 0.889, 7: 0.965, 11: 0.966, 15: 0.960, 19: 0.952},
    "patch_size": {32: 0.949, 64: 0.959, 128: 0.966},
}
# Section 4.2: one forward pass of a 128x128 patch and the evaluation of one test image, Tesla V100.
PAPER_TIMING = {"forward_ms": 2.23, "image_s": 3.61, "device": "NVIDIA Tesla V100"}


def load_dataset(data_root=None):
    """NanoTWICE from ``data_root`` (default: ``$SSIMLIB_DATA/nanotwice`` or ``../shared/data/nanotwice``)."""
    return load_nanotwice(resolve_data_root("nanotwice", data_root))


def check_crops(crops):
    """Raise ``ValueError`` (one line) unless ``crops`` is a protocol of :data:`CROP_PROTOCOLS`."""
    if crops not in CROP_PROTOCOLS:
        raise ValueError(f"crops must be one of {', '.join(CROP_PROTOCOLS)}, got {crops!r}")


def fig6_model_name(method, crops="fixed", seed=FIG6_SCHEDULE["seed"], batch_size=FIG6_SCHEDULE["batch_size"]):
    """The store name of a Fig. 6 model: ``"ssim_ae"`` (fixed crops, seed 0, batch 32: the first Fig. 6 models),
    ``"ssim_ae-fresh"``, ``"ssim_ae-fresh-seed1"`` (another seed than the schedule's),
    ``"ssim_ae-fresh-batch16"`` (another batch size than the schedule's)."""
    return (MODEL_NAMES[method] + ("" if crops == "fixed" else f"-{crops}")
            + ("" if seed == FIG6_SCHEDULE["seed"] else f"-seed{seed}")
            + ("" if batch_size == FIG6_SCHEDULE["batch_size"] else f"-batch{batch_size}"))


def fig6_run_suffix(crops, adopted_crops, seed=FIG6_SCHEDULE["seed"], batch_size=None):
    """What tells notebook 02's results file and figures of other models from the committed ones: ``""`` for the
    Fig. 6 models it evaluates by default (``adopted_crops``, the schedule's seed, each model's adopted batch size:
    ``batch_size`` None, :func:`ssimlib.experiments.verdicts.fig6_batch_sizes`), else ``"_seed1"``, ``"_batch16"``
    (every model at batch 16), ``"_batch32"``, ``"_fixed"``, ``"_fixed_seed1"`` ..."""
    parts = (([] if crops == adopted_crops else [crops])
             + ([] if seed == FIG6_SCHEDULE["seed"] else [f"seed{seed}"])
             + ([] if batch_size is None else [f"batch{batch_size}"]))
    return "".join(f"_{part}" for part in parts)


def crops_of(manifest):
    """The crop protocol a stored model was trained under (``"fixed"`` where its settings name none)."""
    return manifest["training"]["settings"].get("crops", "fixed")


def load_trained_models(methods=None, models_root=None, crops="fixed", seed=FIG6_SCHEDULE["seed"],
                        batch_size=FIG6_SCHEDULE["batch_size"]):
    """Trained Fig. 6 models from the model store (default: the committed ``models/nanotwice``).

    ``crops``: the crop protocol wanted.  Another than ``"fixed"`` loads, per method, the
    model trained under it (:func:`fig6_model_name`) once it has finished its schedule,
    and the fixed-crop model until then (:func:`crops_of` says which one came).  ``seed``:
    the models trained with that seed (another than the schedule's: models of their own), ``batch_size``
    likewise (one for all, or ``{method: batch size}``).
    Returns ``(models, manifests, missing)``: dicts by method of the loaded models
    and their manifests, and the methods (of ``methods``, default all four) that
    have no model yet.  A model whose file is altered raises
    :class:`ssimlib.artifacts.ArtifactError`.
    """
    from ssimlib import artifacts

    check_crops(crops)

    def name(method):
        batch = batch_size[method] if isinstance(batch_size, dict) else batch_size
        stem = artifacts.study_model("nanotwice", fig6_model_name(method, crops, seed, batch), models_root)
        manifest = artifacts.read_manifest(stem)
        return fig6_model_name(method, crops if manifest is not None and manifest["training"]["complete"] else "fixed",
                               seed, batch)

    return artifacts.load_study_models("nanotwice", {m: name(m) for m in methods or METHODS}, models_root)


def own_training_crops(dataset, manifest, n_patches):
    """``n_patches`` crops ``(n, p, p, 1)`` a stored Fig. 6 model was trained on: of its fixed set, or of its last
    epoch."""
    s = manifest["training"]["settings"]
    crops = crops_of(manifest)
    if crops == "fixed":  # the first crops of its fixed set
        return training_patches(dataset, n_patches, s["patch_size"], s["seed"])
    stream = training_patches(dataset, s["n_patches"], s["patch_size"], s["seed"], crops)
    return stream.crops(manifest["training"]["epochs_done"] - 1)[:n_patches]


def schedule_label(manifest):
    """How a stored model was trained, in one line: epochs of the schedule, patches, batch, loss, time, machine."""
    t = manifest["training"]
    s = t["settings"]
    window = f", SSIM window {s['window']} {s['window_size']}x{s['window_size']}" if s["loss"] == "ssim" else ""
    restarts = (f", Adam restarted at epoch {', '.join(map(str, t['optimizer_restarts']))}"
                if t["optimizer_restarts"] else "")
    patches = "patches" if crops_of(manifest) == "fixed" else f"{crops_of(manifest)} crops each"
    return (
        f"{t['method']}: {t['epochs_done']} of {t['schedule_epochs']} epochs of {s['n_patches']:,} {patches} "
        f"(batch {s['batch_size']}, d={s['latent_dim']}{window}{restarts}), final loss {t['loss'][-1]:.4f}, "
        f"{t['seconds'] / 3600:.1f} h on {machines_label(manifest)}"
    )


def machines_label(manifest):
    """Where a stored model trained: its CPU, or, if its epochs ran on several, which epochs ran where."""
    machines = [m for m in manifest["training"].get("machines", [])
                if m["from_epoch"] <= manifest["training"]["epochs_done"]]
    cpus = {m["cpu"] for m in machines}
    if len(cpus) < 2:
        return cpus.pop() if cpus else manifest["machine"].get("cpu") or manifest["machine"]["device"]
    ends = [m["from_epoch"] - 1 for m in machines[1:]] + [manifest["training"]["epochs_done"]]
    spans = [f"epoch {m['from_epoch']}" if m["from_epoch"] == end else f"epochs {m['from_epoch']}-{end}"
             for m, end in zip(machines, ends)]
    return " and ".join(f"{m['cpu']} for {span}" for m, span in zip(machines, spans))


def test_subset(dataset, n_test_images=None):
    """``(indices, images, masks)`` of ``n_test_images`` evenly spaced test images (None: all)."""
    n = len(dataset.test_images)
    if n_test_images is None or n_test_images >= n:
        indices = np.arange(n)
    else:
        indices = np.unique(np.linspace(0, n - 1, max(1, int(n_test_images))).round().astype(int))
    return indices, [dataset.test_images[i] for i in indices], [dataset.test_masks[i] for i in indices]


def scaled_stride(stride, patch_size):
    """Stride for ``patch_size`` that keeps the overlap of ``stride`` at 128 px: ``round(stride * p / 128)``.

    The paper gives the stride (30) only for 128-px patches; scaling it keeps
    every pixel covered by about the same number of windows for 32 and 64 px.
    """
    return max(1, int(round(stride * patch_size / PAPER_PATCH_SIZE)))


def build_model(method, patch_size=128, latent_dim=500, seed=0, feature_extractor=DEFAULT_FEATURE_EXTRACTOR,
                fm_weight=1.0, output=LINEAR):
    """A fresh gray-scale model for ``method`` (a key of :data:`METHODS`), seeded with ``seed``; ``output`` is the
    SSIM-AE's and L2-AE's last activation (:class:`ssimlib.models.ConvAutoencoder`)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if output != LINEAR and method in ("VAE", "FM-AE"):
        raise ValueError(f"output {output!r}: only the SSIM-AE's and L2-AE's network has another than linear")
    keras.utils.set_random_seed(seed)
    if method == "VAE":
        model = VariationalAutoencoder(patch_size, 1, latent_dim, seed=seed)
    elif method == "FM-AE":
        features = load_feature_extractor(feature_extractor, input_shape=(patch_size, patch_size, 1))
        model = FeatureMatchingAutoencoder(features, patch_size, 1, latent_dim, weight=fm_weight)
    else:
        model = ConvAutoencoder(patch_size, 1, latent_dim, output=output)
    model(np.zeros((1, patch_size, patch_size, 1), np.float32))  # mark it built, so a checkpoint can be loaded
    return model


def training_patches(dataset, n_patches, patch_size, seed=0, crops="fixed"):
    """The training crops of the 5 defect-free images: ``crops`` is a protocol of :data:`CROP_PROTOCOLS`.

    ``"fixed"``: one set of ``n_patches`` random crops ``(n, p, p, 1)``, the same every epoch
    (how the committed Fig. 6 models were trained); the others: a :class:`ssimlib.data.CropStream`
    of ``n_patches`` fresh crops every epoch, with flips and 90-degree turns where named.
    """
    check_crops(crops)
    if crops == "fixed":
        return sample_patches(dataset.train_images, n_patches, patch_size, seed=seed, paths=dataset.train_paths)
    return CropStream(dataset.train_images, n_patches, patch_size, seed, **CROP_PROTOCOLS[crops])


def validation_patches(dataset, patch_size, n_patches=VALIDATION_PATCHES):
    """``n_patches`` crops ``(n, p, p, 1)`` of the training images, one set for every run and protocol.

    Drawn from their own seed (:data:`VALIDATION_SEED`), so no protocol's training crops are
    these crops (a fixed set shares none of their offsets but by chance); the validation
    loss on them measures how well a model reconstructs defect-free texture it was not
    fitted to, without looking at a test image.
    """
    return sample_patches(dataset.train_images, n_patches, patch_size, seed=VALIDATION_SEED, paths=dataset.train_paths)


def defect_free_test_patches(dataset, patch_size, n_patches=VALIDATION_PATCHES, seed=0):
    """``n_patches`` crops ``(n, p, p, 1)`` of the test images that hold no defect pixel: a diagnostic only.

    Never used to choose a protocol, an epoch or a threshold.
    """
    rng = np.random.default_rng([seed, DIAGNOSTIC_STREAM])
    patches = np.empty((n_patches, patch_size, patch_size, 1), np.float32)
    found = 0
    while found < n_patches:
        i = rng.integers(len(dataset.test_images))
        image, mask = dataset.test_images[i], dataset.test_masks[i]
        y, x = rng.integers(0, image.shape[0] - patch_size + 1), rng.integers(0, image.shape[1] - patch_size + 1)
        if not mask[y : y + patch_size, x : x + patch_size].any():
            patches[found] = image[y : y + patch_size, x : x + patch_size]
            found += 1
    return patches


def train_config(
    method,
    patches,
    latent_dim=500,
    window_size=11,
    window=DEFAULT_WINDOW,
    epochs=200,
    batch_size=32,
    learning_rate=2e-4,
    weight_decay=1e-5,
    seed=0,
    checkpoint_dir=None,
    feature_extractor=DEFAULT_FEATURE_EXTRACTOR,
    fm_weight=1.0,
    progress=True,
    on_epoch=None,
    validation=None,
    decay=DECAY,
    output=LINEAR,
    constants=STANDARD,
):
    """Build and train ``method`` on ``patches`` ``(N, p, p, 1)`` (or a crop stream); returns ``(model, history)``.

    ``validation`` patches, if given, get their loss logged every epoch, and ``decay`` says how
    ``weight_decay`` is read and ``constants`` the SSIM loss's constants (:func:`ssimlib.train.train`);
    ``output`` is the network's last activation (:func:`build_model`).

    With ``checkpoint_dir`` a finished run is reloaded instead of retrained.
    ``window_size`` and ``window`` matter only for the SSIM-AE's loss.
    """
    model = build_model(method, patches.shape[1], latent_dim, seed, feature_extractor, fm_weight, output)
    history = train(
        model, patches, loss=METHODS[method], epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, weight_decay=weight_decay, window_size=window_size,
        window=window, seed=seed, checkpoint_dir=checkpoint_dir, progress=progress, on_epoch=on_epoch,
        validation=validation, decay=decay, constants=constants,
    )
    return model, history


@dataclass
class Evaluation:
    """Anomaly maps ``[(H, W)]``, reconstructions ``[(H, W, 1)]``, pixel ROC ``(fpr, tpr)`` and metrics."""

    maps: list
    reconstructions: list
    fpr: np.ndarray
    tpr: np.ndarray
    pixel_auroc: float
    au_pro: float


def evaluate_config(
    model, method, images, masks, patch_size=128, stride=30, window_size=11, window=DEFAULT_WINDOW,
    vae_samples=6, seed=0, au_pro_limit=0.3, constants=STANDARD,
):
    """Sliding-window evaluation of a trained model on ``images`` with the paper's post-processing.

    Residual: SSIM (a ``window`` window of side ``window_size``, its constants read as ``constants`` says) for the
    SSIM-AE, per-pixel L2 for L2-AE and FM-AE, the reconstruction probability over ``vae_samples`` samples
    for the VAE; every map is opened with a disk of diameter 4.  The VAE's
    sampling restarts from ``seed``, so a reloaded model gives the same maps as
    a freshly trained one.
    """
    kind = "ssim" if method == "SSIM-AE" else "l2"
    if isinstance(model, VariationalAutoencoder):
        model.seed_generator.state.assign(np.array([seed, 0], dtype=model.seed_generator.state.dtype))
    maps, reconstructions = anomaly_maps(
        model, images, kind=kind, patch_size=patch_size, stride=stride,
        window_size=window_size, window=window, vae_samples=vae_samples, constants=constants,
    )
    fpr, tpr, _ = pixel_roc(maps, masks)
    return Evaluation(
        maps=maps,
        reconstructions=reconstructions,
        fpr=fpr,
        tpr=tpr,
        pixel_auroc=float(np.trapezoid(tpr, fpr)),
        au_pro=au_pro(maps, masks, fpr_limit=au_pro_limit),
    )


def thin_curve(x, y, n_points=2000):
    """At most about ``n_points`` points of a monotone curve ``(x, y)`` for plotting (ends kept)."""
    x, y = np.asarray(x), np.asarray(y)
    if x.size <= n_points:
        return x, y
    keep = np.unique(np.searchsorted(x, np.linspace(x[0], x[-1], n_points)).clip(0, x.size - 1))
    keep = np.unique(np.concatenate(([0], keep, [x.size - 1])))
    return x[keep], y[keep]


def median_seconds(fn, repeats, warmup=3):
    """Median wall-clock seconds of ``repeats`` calls of ``fn()``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def time_forward_pass(model, repeats=50, warmup=5):
    """Median seconds of ``model.predict_on_batch`` on one patch ``(1, p, p, C)``, after ``warmup`` calls."""
    patch = np.random.default_rng(0).random((1, model.patch_size, model.patch_size, model.channels), np.float32)
    return median_seconds(lambda: model.predict_on_batch(patch), repeats, warmup)


def time_image_evaluation(model, image, stride=30, window_size=11, window=DEFAULT_WINDOW, repeats=3, warmup=1):
    """Median seconds to evaluate one image: sliding-window reconstruction, SSIM residual, opening."""

    def run():
        reconstruction = reconstruct_image(model, image, model.patch_size, stride)
        return open_anomaly_map(residual_map(image, reconstruction, kind="ssim", window_size=window_size,
                                             window=window))

    return median_seconds(run, repeats, warmup)
