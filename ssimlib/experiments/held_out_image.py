"""Which gap is it: the NanoTWICE SSIM-AE trained with one of its five training images held out.

The fresh-crop SSIM-AE reconstructs defect-free crops of the test images worse than new crops of
its training images (SSIM loss 0.117 against 0.100 after 200 epochs; notebook 02).  Two readings:

* the test images differ from the training images (a *domain gap*: no training on these five
  images closes it), or
* the model is fitted to the images it saw, so that any image it has not seen reconstructs worse
  (an *image gap*: more images, or a stronger prior, would narrow it).

This diagnostic trains the SSIM-AE at the campaign's budget (fresh crops unless ``--crops`` says, seed 0 unless
``--seed`` says, 50 epochs, the Fig. 6 schedule otherwise) on four training images, holding out :data:`HELD_OUT`
(the last by name, chosen before training; ``--held-out STEM`` another), and measures the SSIM loss on crops of
each training image (one set per image, the validation seed) and on defect-free crops of the test images. The
same measures of a model that saw all five images (a reference) tell how hard each image is by itself: the
held-out image's loss *relative to the seen images'*, in the held-out model against in the reference, is what this
measures.
It also measures how many pixels of each training image score above the threshold at the test images' pixel FPR
of 5 % (:func:`training_image_fpr`): an unseen image scoring like the test images ties the loss gap to the false
positives.  A diagnostic only: it chooses nothing (a held-out model of another crop protocol is judged
by :data:`GENERALISATION_RULE`, written before it trained).  ``python -m ssimlib train-study held-out`` runs
:func:`run_diagnostic` (resumable, like the campaign's arms); its results go to
``results/nanotwice_held_out.json``.  :func:`add_training_image_fpr` and :func:`add_losses_by_epoch` add those
measures to the results of a run made before them (by hand: from the held-out model's checkpoint, and from copies
of its exports taken as it trained).
"""

from dataclasses import replace
from pathlib import Path

import numpy as np

from ssimlib import artifacts
from ssimlib.architecture import LINEAR
from ssimlib.data import DatasetError, sample_patches
from ssimlib.evaluate import anomaly_maps
from ssimlib.records import read_campaign, run_environment, write_json
from ssimlib.experiments import nanotwice
from ssimlib.experiments.protocol import BATCH, train_arm
from ssimlib.experiments.sensitivity import TABLE2_BUDGET
from ssimlib.metrics import region_overlap_quantiles
from ssimlib.paths import REPO_ROOT
from ssimlib.thresholds import threshold_at_fpr
from ssimlib.train import DECAY, compile_autoencoder, mean_loss

HELD_OUT = "ITIA1145"  # the last of NanoTWICE's five training images by name: the first held out
CROPS = "fresh"  # the crop protocol the campaign adopted; another (``--crops``) is a generalisation arm
DEFAULT_RESULTS = REPO_ROOT / "results" / "nanotwice_held_out.json"  # HELD_OUT's; another image's beside it
OVERLAP_FPR = 0.05
# Written down on 2026-12-06, before the held-out model of fresh crops with flips and 90-degree turns was trained.
GENERALISATION_RULE = (
    "Fresh crops with flips and 90-degree turns (one seed), trained without ITIA1145 at the campaign's budget, "
    "generalise better across images if ITIA1145's SSIM loss relative to the seen images' lies below both "
    "fresh-crop seeds' (1.104 and 1.115, seeds 0 and 1) by more than those seeds' range (0.011): below 1.093. "
    "This reads training images only. Then, and only then, the held-out model's test scores are read as a "
    "diagnostic: if its pixel AUROC does not lie above both fresh-crop held-out seeds' (0.919 and 0.926) by more "
    "than their range (0.007), generalising better across images in loss is not what limits the pixel AUROC."
)


def results_file(held_out=HELD_OUT, seed=0, crops=CROPS):
    """The results file of the diagnostic that holds out the image ``held_out``, trained with ``seed`` on ``crops``
    (``nanotwice_held_out[-STEM][-PROTOCOL][-seedN].json``)."""
    if (held_out, seed, crops) == (HELD_OUT, 0, CROPS):
        return DEFAULT_RESULTS
    protocol = "" if crops == CROPS else f"-{crops}"
    return DEFAULT_RESULTS.with_name(f"nanotwice_held_out-{held_out}{protocol}{f'-seed{seed}' if seed else ''}.json")


def without_image(dataset, stem=HELD_OUT):
    """``dataset`` with the training image named ``stem`` removed; DatasetError (one line) if it has none."""
    stems = [path.stem for path in dataset.train_paths]
    if stem not in stems:
        raise DatasetError(f"no training image named {stem!r}; the training images are {', '.join(stems)}")
    keep = [i for i, s in enumerate(stems) if s != stem]
    return replace(dataset, train_images=[dataset.train_images[i] for i in keep],
                   train_paths=[dataset.train_paths[i] for i in keep])


def image_losses(model, dataset, patch_size, n_patches=nanotwice.VALIDATION_PATCHES // 5, test_patches=None):
    """Mean compiled loss of ``model`` on ``n_patches`` crops of each training image (``{stem: loss}``, the
    validation seed) and, where given, on ``test_patches`` (under ``"defect-free test crops"``)."""
    losses = {}
    for path, image in zip(dataset.train_paths, dataset.train_images):
        crops = sample_patches([image], n_patches, patch_size, seed=nanotwice.VALIDATION_SEED, paths=[path])
        losses[path.stem] = mean_loss(model, crops)
    if test_patches is not None:
        losses["defect-free test crops"] = mean_loss(model, test_patches)
    return losses


def relative_losses(losses, held_out=HELD_OUT):
    """Each loss of :func:`image_losses` divided by the mean over the training images other than ``held_out``."""
    seen = np.mean([loss for stem, loss in losses.items() if stem not in (held_out, "defect-free test crops")])
    return {stem: loss / seen for stem, loss in losses.items()}


def reference_losses(stem, dataset, budget, test_patches, held_out=HELD_OUT):
    """:func:`image_losses` of the stored model ``stem`` (one that saw every training image), with its epochs."""
    model, manifest = artifacts.load_model(stem)
    compile_autoencoder(model, "ssim", budget["learning_rate"], budget["weight_decay"], budget["window_size"],
                        budget["window"])
    losses = image_losses(model, dataset, budget["patch_size"], test_patches=test_patches)
    return {"model": "/".join(Path(stem).parts[-2:]), "epochs": manifest["training"]["epochs_done"],
            "image_losses": losses,
            "relative_losses": relative_losses(losses, held_out)}


def training_image_fpr(model, dataset, test_maps, test_masks, budget, stride=30, fpr=OVERLAP_FPR):
    """Share of each training image's pixels whose anomaly map (as the test images') lies above the threshold that
    leaves ``fpr`` of the test images' defect-free pixels above it: ``{stem: share}``.  An image the model has not
    seen that scores like the test images (near ``fpr``) makes the image gap the false positives' source."""
    threshold = float(threshold_at_fpr(test_maps, test_masks, fpr))
    maps = _ssim_maps(model, dataset.train_images, budget, stride)
    return {path.stem: float(np.mean(m > threshold)) for path, m in zip(dataset.train_paths, maps)}


def _ssim_maps(model, images, budget, stride):
    """The SSIM-AE's post-processed anomaly maps of ``images``, as the diagnostic's evaluation makes them."""
    return anomaly_maps(model, images, kind="ssim", patch_size=budget["patch_size"], stride=stride,
                        window_size=budget["window_size"], window=budget["window"])[0]


def add_training_image_fpr(model, held_out=HELD_OUT, results_path=None, data_root=None, seed=0):
    """Measure :func:`training_image_fpr` of the held-out model ``model`` (its test maps made again, at the results'
    stride) and add it to the diagnostic's results file (``held_out_model.training_image_fpr``)."""
    path = results_path or results_file(held_out, seed)
    results = _results_to_add_to(path)
    dataset = nanotwice.load_dataset(data_root)
    _, test_images, test_masks = nanotwice.test_subset(dataset, results["held_out_model"]["test_images"])
    budget, stride = TABLE2_BUDGET, results["held_out_model"]["stride"]
    test_maps = _ssim_maps(model, test_images, budget, stride)
    results["held_out_model"]["training_image_fpr"] = training_image_fpr(model, dataset, test_maps, test_masks,
                                                                         budget, stride)
    write_json(path, results)
    return results


def add_reference(stem, held_out=HELD_OUT, results_path=None, data_root=None, seed=0, crops=CROPS):
    """Measure :func:`reference_losses` of the stored model ``stem`` (one that saw every training image, such as a
    Fig. 6 model adopted after the diagnostic ran) on the test crops the diagnostic drew, and add it to the results
    file's ``reference_models`` (replacing an earlier measure of the same model)."""
    path = results_path or results_file(held_out, seed, crops)
    results = _results_to_add_to(path)
    dataset = nanotwice.load_dataset(data_root)
    test_patches = nanotwice.defect_free_test_patches(dataset, TABLE2_BUDGET["patch_size"])
    measured = reference_losses(stem, dataset, TABLE2_BUDGET, test_patches, held_out)
    results["reference_models"] = [r for r in results["reference_models"] if r["model"] != measured["model"]]
    results["reference_models"].append(measured)
    write_json(path, results)
    return results


def _results_to_add_to(path):
    results = read_results(path)
    if results is None:
        raise FileNotFoundError(f"{path}: no held-out-image results to add to (run the diagnostic first)")
    return results


def losses_by_epoch(stems, dataset, budget, test_patches, held_out=HELD_OUT):
    """The held-out image's and the defect-free test crops' relative losses (:func:`relative_losses`) in exports of
    the held-out model taken as it trained (model store stems, any order): ``[{"epochs", "held_out", "test",
    "held_out_loss", "test_loss"}]`` (relative, then the SSIM losses themselves), by epoch, each export named by the
    sha256 of its weights."""
    rows = []
    for stem in stems:
        measured = reference_losses(stem, dataset, budget, test_patches, held_out)
        rows.append({"epochs": measured["epochs"], "held_out": measured["relative_losses"][held_out],
                     "test": measured["relative_losses"]["defect-free test crops"],
                     "held_out_loss": measured["image_losses"][held_out],
                     "test_loss": measured["image_losses"]["defect-free test crops"],
                     "weights_sha256": artifacts.read_manifest(stem)["sha256"]})
    return sorted(rows, key=lambda row: row["epochs"])


def run_diagnostic(results_path=None, held_out=HELD_OUT, budget=None, data_root=None, cache=None, models_root=None,
                   references=(), n_test_images=None, stride=30, seed=0, log=print, crops=CROPS):
    """Train (or resume) the model without the training image ``held_out`` (crops of the protocol ``crops`` and
    initial weights of ``seed``), measure it and each of ``references`` (model store stems of models that saw all
    five images), write ``results_path`` (default: :func:`results_file`); returns the results."""
    for stem in references:  # a missing reference is named before hours of training, not after
        if artifacts.read_manifest(stem) is None:
            raise artifacts.ArtifactError(f"{artifacts.model_files(stem)[1]}: no such model manifest (a reference "
                                          "model that saw every training image is expected there)")
    budget = {**TABLE2_BUDGET, "batch_size": BATCH, "decay": DECAY, "output": LINEAR, **(budget or {})}
    dataset = nanotwice.load_dataset(data_root)
    four = without_image(dataset, held_out)
    p = budget["patch_size"]
    name = f"{crops}-seed{seed}-without-{held_out}-e{budget['epochs']}"
    model, _, manifest = train_arm(four, crops, seed, budget, nanotwice.validation_patches(four, p), models_root,
                                   cache, log, name=name)
    test_patches = nanotwice.defect_free_test_patches(dataset, p)
    losses = image_losses(model, dataset, p, test_patches=test_patches)
    _, test_images, test_masks = nanotwice.test_subset(dataset, n_test_images)
    evaluation = nanotwice.evaluate_config(model, "SSIM-AE", test_images, test_masks, patch_size=p, stride=stride,
                                           window_size=budget["window_size"], window=budget["window"])
    overlap = region_overlap_quantiles(evaluation.maps, test_masks, OVERLAP_FPR, (0.5,))
    results = {
        "dataset": "NanoTWICE", "held_out": held_out, "seed": seed, "crops": crops, "purpose": __doc__.split("\n\n")[0],
        "held_out_model": {
            "model": name, "epochs": manifest["training"]["epochs_done"], "image_losses": losses,
            "relative_losses": relative_losses(losses, held_out), "val_loss": manifest["training"]["val_loss"][-1],
            "pixel_auroc": evaluation.pixel_auroc, "au_pro_0_3": evaluation.au_pro,
            "median_region_overlap_fpr_0_05": float(overlap[0]), "test_images": len(test_images),
            "training_image_fpr": training_image_fpr(model, dataset, evaluation.maps, test_masks, budget, stride),
            "stride": stride, "training_seconds": manifest["training"]["seconds"],
            "machines": manifest["training"]["machines"],
        },
        "code_commit": artifacts.code_commit(), "machine": run_environment(),
    }
    log(f"{name}: pixel AUROC {evaluation.pixel_auroc:.3f}, AU-PRO@0.3 {evaluation.au_pro:.3f}, median overlap "
        f"{overlap[0]:.3f}; relative losses "
        + ", ".join(f"{k} {v:.3f}" for k, v in relative_losses(losses, held_out).items()))
    results["reference_models"] = [reference_losses(stem, dataset, budget, test_patches, held_out)
                                   for stem in references]
    write_json(results_path or results_file(held_out, seed, crops), results)
    return results


def add_losses_by_epoch(stems, held_out=HELD_OUT, results_path=None, data_root=None, seed=0):
    """Measure :func:`losses_by_epoch` of the exports ``stems`` (copies of the held-out model's exports, taken every
    10 epochs as it trained) and add them to the diagnostic's results file as ``held_out_model_by_epoch``."""
    path = results_path or results_file(held_out, seed)
    results = _results_to_add_to(path)
    dataset = nanotwice.load_dataset(data_root)
    test_patches = nanotwice.defect_free_test_patches(dataset, TABLE2_BUDGET["patch_size"])
    results["held_out_model_by_epoch"] = losses_by_epoch(stems, dataset, TABLE2_BUDGET, test_patches, held_out)
    write_json(path, results)
    return results


def generalisation_verdict(all_results, arm="fresh+flips+rot90", held_out=HELD_OUT):
    """``(whether, reason)`` of :data:`GENERALISATION_RULE` over :func:`read_all_results`: whether the held-out model
    of ``arm`` reconstructs ``held_out`` relatively better than every fresh-crop seed by more than their range (read
    from training images), and, only where it does, whether its pixel AUROC rises likewise; None where a run is
    missing."""
    runs = [r for r in all_results if r["held_out"] == held_out and r["held_out_model"]["epochs"] == 50]
    fresh = [r["held_out_model"] for r in runs if r.get("crops", CROPS) == CROPS]
    tried = [r["held_out_model"] for r in runs if r.get("crops") == arm]
    if len(fresh) < 2 or not tried:
        return None, f"no verdict yet: needs two fresh-crop seeds and the {arm} run, {held_out} held out"
    losses = [m["relative_losses"][held_out] for m in fresh]
    bar = min(losses) - float(np.ptp(losses))
    loss = tried[0]["relative_losses"][held_out]
    reason = (f"{arm}: {held_out}'s relative loss {loss:.3f} against the fresh-crop seeds' "
              f"{min(losses):.3f}-{max(losses):.3f} (below {bar:.3f} needed)")
    if loss >= bar:
        return False, reason + "; it does not generalise better across images by this measure"
    aurocs = [m["pixel_auroc"] for m in fresh]
    rises = tried[0]["pixel_auroc"] > max(aurocs) + float(np.ptp(aurocs))
    absolute = "; ".join(  # beside the rule, which reads relative losses: which images moved
        f"{label} {tried[0]['image_losses'][key]:.3f} against {min(m['image_losses'][key] for m in fresh):.3f}-"
        f"{max(m['image_losses'][key] for m in fresh):.3f}"
        for key, label in ((held_out, held_out), ("defect-free test crops", "defect-free test crops")))
    return True, (reason + f"; it generalises better across images, and its pixel AUROC {tried[0]['pixel_auroc']:.3f} "
                  f"against {min(aurocs):.3f}-{max(aurocs):.3f} "
                  + ("rises above both seeds by more than their range" if rises else
                     "does not rise above both seeds by more than their range: generalising better across images in "
                     "loss is not what limits the pixel AUROC")
                  + f" (absolute SSIM losses, not read by the rule: {absolute})")


def read_results(path=DEFAULT_RESULTS):
    """The diagnostic's results (a dict), or None where it has not run."""
    return read_campaign(path, "reference_models", None, "held-out-image results")


def read_all_results():
    """The results of every image held out so far, each seed's (:data:`HELD_OUT`'s seed 0 first, then by file name):
    a list of dicts (each names its ``held_out`` and ``seed``)."""
    others = sorted(DEFAULT_RESULTS.parent.glob(results_file("*").name))
    return [r for r in map(read_results, [DEFAULT_RESULTS, *others]) if r is not None]


def format_results(results):
    """Lines of a table: each image's loss relative to the seen training images' (a row each), in the held-out
    model and in each reference (a column each), then the held-out model's scores on the test images."""
    held = results["held_out"]
    models = [("held-out model", results["held_out_model"])] + [
        (f"{Path(r['model']).name} ({r['epochs']} epochs)", r) for r in results["reference_models"]]
    names = {row: row + " (held out)" if row == held else row for row in models[0][1]["relative_losses"]}
    first = max(map(len, names.values()))
    lines = [f"{'':{first}}  " + "  ".join(label for label, _ in models)]
    for row, name in names.items():
        lines.append(f"{name:{first}}  " + "  ".join(f"{m['relative_losses'][row]:{len(label)}.3f}"
                                                      for label, m in models))
    by_epoch = results.get("held_out_model_by_epoch")
    if by_epoch:
        lines.append(f"held-out model by epoch ({', '.join(str(row['epochs']) for row in by_epoch)}): {held} "
                     + " / ".join(f"{row['held_out']:.3f}" for row in by_epoch) + ", defect-free test crops "
                     + " / ".join(f"{row['test']:.3f}" for row in by_epoch)
                     + (f" (SSIM loss of {held} " + " / ".join(f"{row['held_out_loss']:.4f}" for row in by_epoch) + ")"
                        if all("held_out_loss" in row for row in by_epoch) else ""))
    m = results["held_out_model"]
    shares = m.get("training_image_fpr")
    if shares:
        named = [f"{stem}{' (held out)' if stem == held else ''} {share:.1%}" for stem, share in shares.items()]
        lines.append(f"held-out model, share of each training image's pixels above the threshold at the test images' "
                     f"pixel FPR {OVERLAP_FPR:.0%}: " + ", ".join(named))
    crops = f"{results['crops']} crops, " if results.get("crops", CROPS) != CROPS else ""
    seed = f"seed {results['seed']}, " if "seed" in results else ""
    lines.append(f"held-out model ({crops}{seed}{m['epochs']} epochs, validation loss {m['val_loss']:.4f}) on all "
                 f"{m['test_images']} test images at stride {m['stride']}: pixel AUROC {m['pixel_auroc']:.3f}, "
                 f"AU-PRO@0.3 {m['au_pro_0_3']:.3f}, median overlap at FPR 5% "
                 f"{m['median_region_overlap_fpr_0_05']:.2f}")
    return lines
