"""Which training protocol lets the SSIM-AE generalise: fixed crops or fresh crops, each with a seed spread.

The committed Fig. 6 SSIM-AE was trained on one fixed set of 10,000 crops and
memorises it (its loss on those crops is far below its loss on new crops of the
same images).  This campaign trains the SSIM-AE at the Table II budget
(:data:`ssimlib.experiments.sensitivity.TABLE2_BUDGET`: the Fig. 6 schedule, 50 epochs, from
scratch) under each *arm* of :data:`ARMS` (an :class:`Arm`: a crop protocol of
:data:`ssimlib.experiments.nanotwice.CROP_PROTOCOLS`, a seed, a batch size, a reading of the paper's
"weight decay", :data:`ssimlib.train.DECAYS`, the network's last activation,
:data:`ssimlib.architecture.OUTPUTS`, and the reading of the SSIM constants, :data:`ssimlib.ssim.SSIM_CONSTANTS`),
and adds one entry per
finished arm to ``results/nanotwice_protocol.json``:

* the validation loss of every epoch, on :func:`ssimlib.experiments.nanotwice.validation_patches`
  (crops of the training images, one set for every arm): what the protocol is chosen by;
* on all 40 test images at stride 30: pixel AUROC, AU-PRO@0.3 and the paper's Fig. 7
  median region overlap at pixel FPR 5 %;
* the memorisation measure: the loss on the arm's own (last epoch's) training crops,
  on the validation crops, and on defect-free crops of the test images (a diagnostic).

``python -m ssimlib train-study protocol`` runs :func:`run_campaign`: one arm at a
time, each resuming from its checkpoint in ``<cache>/checkpoints/protocol/<arm>``,
or on a machine without it from its export in ``models/protocol/<arm>`` (written
every 10 epochs, as every study's models are; Adam restarts there, and the entry
lists the epoch).  An arm in the results file is never retrained; its finished
weights need not be kept (only the results are committed).  The rules that judge the arms live in
:mod:`ssimlib.experiments.protocol_rules`, each written before its arms were trained, and
:mod:`ssimlib.experiments.verdicts` applies them: ``DECISION_RULE`` (fixed or fresh crops; ``choose_protocol``,
reading validation losses only, never a test image, of the arms at the campaign's budget and batch size);
``BATCH_RULE`` and ``SMALL_BATCH_RULE`` for an arm of another batch size (the paper does not state its own; a
protocol of its own in the table, ``"fresh, batch 128"``), ``DECAY_RULE`` for another reading of the weight decay
(``"fresh, lr decay"``, ``"fresh, L2 decay"``), ``OUTPUT_RULE`` for a sigmoid output, and ``CONSTANTS_RULE`` for
the SSIM constants of the paper's text taken literally (in the training loss and the anomaly maps: another loss,
whose validation loss compares with no other arm's, so a reading of the paper reported beside the others, adopted
by none of its numbers).  Entries of
another budget are diagnostics: ``("fresh", 0)`` at 250 epochs is the fresh-crop Fig. 6 run continued from its
200-epoch checkpoint (``run_campaign(arms=(Arm("fresh", 0),), budget={"epochs": 250})`` with that checkpoint
copied to the arm's folder).
"""

from pathlib import Path
from typing import NamedTuple

import numpy as np

from ssimlib import artifacts
from ssimlib.architecture import LINEAR
from ssimlib.records import add_to_campaign, read_campaign, run_environment
from ssimlib.experiments import nanotwice
from ssimlib.experiments.protocol_rules import (
    BATCH_RULE, CONSTANTS_RULE, DECAY_RULE, DECISION_RULE, FIRST_DECISION_RULE, OUTPUT_RULE, SMALL_BATCH_RULE,
)
from ssimlib.experiments.sensitivity import TABLE2_BUDGET
from ssimlib.metrics import region_overlap_quantiles
from ssimlib.ssim import STANDARD
from ssimlib.paths import REPO_ROOT
from ssimlib.store_training import cache_dir, train_into_store
from ssimlib.train import DECAY, compile_autoencoder, mean_loss, training_settings

BATCH = TABLE2_BUDGET["batch_size"]  # the campaign's batch size (32), the Fig. 6 models'


class Arm(NamedTuple):
    """One arm of the campaign: its crop protocol and seed, and where it departs from the Fig. 6 schedule."""

    crops: str
    seed: int
    batch_size: int = BATCH
    decay: str = DECAY  # how the paper's "weight decay" is read (ssimlib.train.adam)
    output: str = LINEAR  # the network's last activation (ssimlib.models.build_decoder)
    constants: str = STANDARD  # how the paper's SSIM constants are read, in the loss and the maps (ssimlib.ssim)


# Every arm, in the order the campaign trains them: the two arms that tell most first (fresh crops against the
# fixed set's spread), then their second seeds; then a third protocol, fresh crops at the batch size of the
# authors' MVTec AD paper (128), with the weight decay read as Keras 2's learning-rate decay, with a sigmoid
# output, and with the weight decay read as an L2 penalty (DECAY_RULE's second reading); then the paper's SSIM
# constants as written (CONSTANTS_RULE).
ARMS = (
    Arm("fresh", 0),
    Arm("fixed", 1),
    Arm("fresh", 1),
    Arm("fixed", 0),
    Arm("fresh+flips+rot90", 0),
    Arm("fresh", 0, batch_size=128),
    Arm("fresh", 0, decay="lr"),
    Arm("fresh", 0, output="sigmoid"),
    Arm("fresh", 0, decay="l2"),
    Arm("fresh", 0, constants="literal"),
    Arm("fresh", 0, batch_size=16),
)
# how the table names an arm of another weight-decay reading or last activation
VARIANT_LABELS = {"l2": "L2 decay", "lr": "lr decay", "sigmoid": "sigmoid output", "literal": "literal SSIM constants"}
DEFAULT_RESULTS = REPO_ROOT / "results" / "nanotwice_protocol.json"
OVERLAP_FPR = 0.05  # paper Fig. 7 / section 4.2: median overlap "> 0.91" at this pixel FPR


def arm_name(crops, seed, batch_size=BATCH, decay=DECAY, output=LINEAR, constants=STANDARD):
    """``"fresh-seed0"`` for ``Arm("fresh", 0)``; ``"fresh-seed0-batch128"`` for another batch size,
    ``"fresh-seed0-lrdecay"`` for another weight-decay reading, ``"fresh-seed0-sigmoid"`` for another output,
    ``"fresh-seed0-literalssim"`` for the SSIM constants read literally."""
    return (f"{crops}-seed{seed}" + ("" if batch_size == BATCH else f"-batch{batch_size}")
            + ("" if decay == DECAY else f"-{decay}decay") + ("" if output == LINEAR else f"-{output}")
            + ("" if constants == STANDARD else f"-{constants}ssim"))


def batch_of(entry):
    """The batch size an entry was trained at (:data:`BATCH` for entries that do not list their budget)."""
    return entry.get("budget", {}).get("batch_size", BATCH)


def decay_of(entry):
    """The weight-decay reading an entry was trained with (:data:`ssimlib.train.DECAY` where none is listed)."""
    return entry.get("budget", {}).get("decay", DECAY)


def output_of(entry):
    """The last activation of an entry's network (:data:`LINEAR` where none is listed)."""
    return entry.get("budget", {}).get("output", LINEAR)


def constants_of(entry):
    """The reading of the SSIM constants an entry was trained and evaluated with (:data:`STANDARD` where none is
    listed)."""
    return entry.get("budget", {}).get("ssim_constants", STANDARD)


def protocol_of(entry):
    """The protocol an entry stands for in the table: its crops, ``"fresh, batch 128"`` at another batch size,
    ``"fresh, lr decay"`` with another weight-decay reading, ``"fresh, sigmoid output"`` with another output,
    ``"fresh, literal SSIM constants"``."""
    return (entry["crops"] + ("" if batch_of(entry) == BATCH else f", batch {batch_of(entry)}")
            + "".join(f", {VARIANT_LABELS[v]}" for v in (decay_of(entry), output_of(entry), constants_of(entry))
                      if v not in (DECAY, LINEAR, STANDARD)))


def arm_key(entry):
    """``(epochs, crops, seed, batch size, decay, output, constants)``: what tells one arm's entry from another's,
    and their order."""
    return (entry["epochs"], entry["crops"], entry["seed"], batch_of(entry), decay_of(entry), output_of(entry),
            constants_of(entry))


def is_plain(entry):
    """Whether an entry is at the campaign's batch size, weight-decay reading, output and SSIM constants (a crop
    protocol's arm)."""
    return (batch_of(entry), decay_of(entry), output_of(entry), constants_of(entry)) == (BATCH, DECAY, LINEAR,
                                                                                         STANDARD)


def read_results(path=DEFAULT_RESULTS):
    """The campaign's results file as a dict (an empty campaign where there is none)."""
    return read_campaign(path, "runs", {"dataset": "NanoTWICE", "decision_rule": DECISION_RULE, "runs": []},
                         "protocol campaign")


def result_for(results, crops, seed, epochs, batch_size=BATCH, decay=DECAY, output=LINEAR, constants=STANDARD):
    """The entry of arm ``Arm(crops, seed, batch_size, decay, output, constants)`` trained ``epochs`` epochs, or
    None."""
    key = (epochs, crops, seed, batch_size, decay, output, constants)
    return next((r for r in results["runs"] if arm_key(r) == key), None)


def add_result(path, entry):
    """Add (or replace) one arm's entry in the results file at ``path``, atomically; returns the results."""
    return add_to_campaign(path, read_results(path), "runs", entry, arm_key, decision_rule=DECISION_RULE,
                           first_decision_rule=FIRST_DECISION_RULE, batch_rule=BATCH_RULE,
                           small_batch_rule=SMALL_BATCH_RULE, decay_rule=DECAY_RULE,
                           output_rule=OUTPUT_RULE, constants_rule=CONSTANTS_RULE)


def memorisation(model, training_crops, validation, test_patches, batch_size=32):
    """Mean loss on the arm's training crops, on the validation crops and on defect-free test crops."""
    return {
        "training_crops": mean_loss(model, training_crops, batch_size),
        "validation_crops": mean_loss(model, validation, batch_size),
        "defect_free_test_crops": mean_loss(model, test_patches, batch_size),
    }


def train_arm(dataset, crops, seed, budget, validation, models_root=None, cache=None, log=print, name=None):
    """Train one arm into the model store ``models/protocol/<name>`` (resumable; ``name`` defaults to
    ``<arm>-e<epochs>``).

    Returns ``(model, patches, manifest)``: the stored model compiled with the SSIM loss, the arm's
    crops (an array or a crop stream) and its manifest.
    """
    constants = budget.get("ssim_constants", STANDARD)
    arm = arm_name(crops, seed, budget["batch_size"], budget["decay"], budget["output"], constants)
    name = name or f"{arm}-e{budget['epochs']}"
    checkpoint_dir = Path(cache or cache_dir()) / "checkpoints" / "protocol" / name
    patches = nanotwice.training_patches(dataset, budget["n_patches"], budget["patch_size"], seed, crops)
    settings = training_settings("ssim", budget["epochs"], budget["batch_size"], budget["learning_rate"],
                                 budget["weight_decay"], budget["window_size"], budget["window"], seed,
                                 budget["n_patches"], crops, budget["decay"], budget["output"], constants)
    record = {
        "method": "SSIM-AE",
        "data": f"NanoTWICE, {len(dataset.train_images)} defect-free images",
        "settings": {**settings, "patch_size": budget["patch_size"], "latent_dim": budget["latent_dim"]},
        "validation": f"{len(validation)} crops of the training images, seed {nanotwice.VALIDATION_SEED}",
    }

    def fit(checkpoint_dir, on_epoch):
        return nanotwice.train_config(
            "SSIM-AE", patches, latent_dim=budget["latent_dim"], window_size=budget["window_size"],
            window=budget["window"], epochs=budget["epochs"], batch_size=budget["batch_size"],
            learning_rate=budget["learning_rate"], weight_decay=budget["weight_decay"], seed=seed,
            checkpoint_dir=checkpoint_dir, progress=False, on_epoch=on_epoch, validation=validation,
            decay=budget["decay"], output=budget["output"], constants=constants,
        )

    stem = artifacts.study_model("protocol", name, models_root)
    train_into_store(fit, stem, checkpoint_dir, settings, record, budget["epochs"], log=log,
                     study="protocol")
    model, manifest = artifacts.load_model(stem)
    compile_autoencoder(model, "ssim", budget["learning_rate"], budget["weight_decay"], budget["window_size"],
                        budget["window"], constants=constants)  # for the losses of the memorisation measure
    return model, patches, manifest


def run_campaign(results_path=DEFAULT_RESULTS, arms=ARMS, budget=None, data_root=None, cache=None,
                 models_root=None, n_test_images=None, stride=30, log=print):
    """Train and evaluate every arm of ``arms`` missing from the results file; returns the results.

    ``budget`` overrides entries of :data:`ssimlib.experiments.sensitivity.TABLE2_BUDGET` (the seed,
    the batch size, the weight-decay reading, the output and the SSIM constants are the arm's; ``arms`` are
    :class:`Arm` s).  Each finished arm is added to ``results_path`` at once.
    """
    artifacts.code_commit()
    budget = {**TABLE2_BUDGET, **(budget or {})}
    results = read_results(results_path)
    todo = [Arm(*arm) for arm in arms if result_for(results, *arm[:2], budget["epochs"], *arm[2:]) is None]
    log(f"protocol campaign: {len(arms) - len(todo)} of {len(arms)} arms done; {budget['epochs']} epochs of "
        f"{budget['n_patches']:,} patches each")
    if not todo:
        return results
    dataset = nanotwice.load_dataset(data_root)
    _, test_images, test_masks = nanotwice.test_subset(dataset, n_test_images)
    p = budget["patch_size"]
    validation = nanotwice.validation_patches(dataset, p)
    test_patches = nanotwice.defect_free_test_patches(dataset, p)
    for arm in todo:
        crops, seed = arm.crops, arm.seed
        name = arm_name(*arm)
        arm_budget = {**budget, "batch_size": arm.batch_size, "decay": arm.decay, "output": arm.output,
                      "ssim_constants": arm.constants}
        model, patches, manifest = train_arm(dataset, crops, seed, arm_budget, validation, models_root, cache, log)
        history = manifest["training"]
        last_crops = patches if crops == "fixed" else patches.crops(budget["epochs"] - 1)
        memorised = memorisation(model, last_crops[: len(validation)], validation, test_patches)
        evaluation = nanotwice.evaluate_config(
            model, "SSIM-AE", test_images, test_masks, patch_size=p, stride=stride,
            window_size=budget["window_size"], window=budget["window"], constants=arm.constants,
        )
        overlap = region_overlap_quantiles(evaluation.maps, test_masks, OVERLAP_FPR, (0.5,))
        entry = {
            "crops": crops, "seed": seed, "epochs": len(history["loss"]),
            "pixel_auroc": evaluation.pixel_auroc, "au_pro_0_3": evaluation.au_pro,
            "median_region_overlap_fpr_0_05": float(overlap[0]),
            "final_loss": history["loss"][-1], "loss": history["loss"], "val_loss": history["val_loss"],
            "memorisation": memorised,
            "stride": stride, "test_images": len(test_images), "of_test_images": len(dataset.test_images),
            "validation": f"{len(validation)} crops of the training images, seed {nanotwice.VALIDATION_SEED}",
            "training_seconds": history["seconds"],
            "optimizer_restarts": history["optimizer_restarts"], "machines": history["machines"],
            "budget": {**{key: arm_budget[key] for key in ("n_patches", "patch_size", "latent_dim", "epochs",
                                                       "batch_size", "learning_rate", "weight_decay", "window",
                                                       "window_size")},
                       **{key: value for key, value in (("decay", arm.decay), ("output", arm.output),
                                                        ("ssim_constants", arm.constants))
                          if value not in (DECAY, LINEAR, STANDARD)}},
            "code_commit": artifacts.code_commit(),
            "machine": run_environment(),
        }
        results = add_result(results_path, entry)
        log(f"{name}: pixel AUROC {evaluation.pixel_auroc:.3f}, AU-PRO@0.3 {evaluation.au_pro:.3f}, median "
            f"overlap at FPR 5% {overlap[0]:.3f}, validation loss {history['val_loss'][-1]:.4f}, trained "
            f"{history['seconds'] / 3600:.2f} h -> {results_path}")
        del model, evaluation
    return results


# The measures of an arm that the campaign's table shows, with their labels.
MEASURES = (("val_loss", "validation loss"), ("pixel_auroc", "pixel AUROC"), ("au_pro_0_3", "AU-PRO@0.3"),
            ("median_region_overlap_fpr_0_05", "median overlap @FPR 5%"))


def _measure(run, key):
    return run[key][-1] if key == "val_loss" else run[key]


def format_runs(results, epochs=TABLE2_BUDGET["epochs"]):
    """Lines of a table: every arm of ``epochs`` epochs, then each protocol's mean and seed spread (max - min)."""
    runs = sorted((r for r in results["runs"] if r["epochs"] == epochs),
                  key=lambda r: (batch_of(r), decay_of(r) != DECAY, output_of(r) != LINEAR,
                                 constants_of(r) != STANDARD, r["crops"], r["seed"]))
    if not runs:
        return [f"no arm of {epochs} epochs has finished yet"]
    w = max(len(protocol_of(run)) for run in runs) + 3  # the protocol column: "<protocol> - fixed" fits w + 5
    lines = [f"{'crops':{w}} {'seed':>4} " + " ".join(f"{label:>22}" for _, label in MEASURES)]
    for run in runs:
        lines.append(f"{protocol_of(run):{w}} {run['seed']:>4} "
                     + " ".join(f"{_measure(run, k):>22.4f}" for k, _ in MEASURES))
    lines.append("memorisation, SSIM loss on: its own training crops / the validation crops / defect-free test crops")
    for run in runs:
        memo = run["memorisation"]
        lines.append(f"{protocol_of(run):{w}} {run['seed']:>4} {memo['training_crops']:.4f} / "
                     f"{memo['validation_crops']:.4f} / {memo['defect_free_test_crops']:.4f}")
    if any(constants_of(run) != STANDARD for run in runs):
        lines.append("(literal SSIM constants: validation and memorisation losses in its own loss, comparable with no "
                     "other arm's)")
    lines.append("per protocol: mean (seed spread: max - min over its seeds)")
    values = _measures_by_protocol(runs)
    for crops, measures in values.items():
        n = len(measures["val_loss"])
        lines.append(f"{crops:{w}} {'':>4} " + " ".join(
            (f"{np.mean(v):.4f} ({np.ptp(v):.4f})" if n > 1 else f"{np.mean(v):.4f} (   -  )").rjust(22)
            for v in measures.values()) + ("   one seed, no spread" if n < 2 else f"   n = {n}"))
    if "fixed" in values:
        lines.append("against fixed crops: difference of means (the larger of the two seed spreads)")
        for crops in (c for c in values if c != "fixed"):
            lines.append(f"{crops + ' - fixed':{w + 5}} " + " ".join(
                ("(another loss)" if k == "val_loss" and VARIANT_LABELS["literal"] in crops
                 else _difference(values[crops][k], values["fixed"][k])).rjust(22) for k, _ in MEASURES))
    return lines


def seed_spread(results, crops, epochs=TABLE2_BUDGET["epochs"]):
    """Per :data:`MEASURES` key, the larger seed range (max - min) among the protocols ``crops`` (names, e.g.
    ``("fixed", "fresh")``) over their arms of ``epochs`` epochs; None where one of them has fewer than two seeds."""
    values = _measures_by_protocol([r for r in results["runs"] if r["epochs"] == epochs])
    none = {key: [] for key, _ in MEASURES}
    return {key: _larger_range(*(values.get(c, none)[key] for c in crops)) for key, _ in MEASURES}


def _measures_by_protocol(runs):
    """``{crops: {MEASURES key: [its value in each of that protocol's runs]}}``, protocols in order of appearance."""
    return {name: {k: [_measure(r, k) for r in runs if protocol_of(r) == name] for k, _ in MEASURES}
            for name in dict.fromkeys(protocol_of(r) for r in runs)}


def _larger_range(*values):
    """The largest max - min among lists of one measure; None where a list has fewer than two values."""
    return float(max(np.ptp(v) for v in values)) if min(len(v) for v in values) > 1 else None


def _difference(a, b):
    """``"+0.0120 (0.0030)"``: mean(a) - mean(b) and the larger seed range, ``"(one seed)"`` where one has one."""
    spread = _larger_range(a, b)
    return f"{np.mean(a) - np.mean(b):+.4f} ({'one seed' if spread is None else f'{spread:.4f}'})"
