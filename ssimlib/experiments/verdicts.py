"""The verdicts of the training-protocol campaign's rules: each applies one rule of
:mod:`ssimlib.experiments.protocol_rules` to the campaign's results (:mod:`ssimlib.experiments.protocol`) or to the
committed models, and returns what to keep with its reason in words.

:func:`choose_protocol` (``DECISION_RULE``: fixed or fresh crops), :func:`choose_variant` (``BATCH_RULE``,
``DECAY_RULE``, ``OUTPUT_RULE``), :func:`small_batch_verdict` (``SMALL_BATCH_RULE``) and :func:`fig6_batch16_verdict`
(``FIG6_BATCH16_RULE``, which model notebook 02 shows as its Fig. 6 SSIM-AE) read validation losses and the
synthetic-defect measure only, never a test image; :func:`constants_verdict` (``CONSTANTS_RULE``) reads test scores
and adopts nothing.
"""

import json

import numpy as np

from ssimlib import artifacts
from ssimlib.architecture import LINEAR, OUTPUTS
from ssimlib.experiments import nanotwice
from ssimlib.experiments.protocol import BATCH, MEASURES, VARIANT_LABELS, is_plain, protocol_of
from ssimlib.experiments.sensitivity import TABLE2_BUDGET
from ssimlib.paths import REPO_ROOT
from ssimlib.train import DECAY, DECAYS


def choose_protocol(results, epochs=TABLE2_BUDGET["epochs"]):
    """Apply :data:`DECISION_RULE` to the runs of ``epochs`` epochs: ``(protocol, reason)``.

    Reads each run's ``val_loss`` only, of the runs at the campaign's batch size, weight-decay reading and output
    (:func:`choose_variant` judges the others).  ``protocol`` is ``"fixed"`` unless another protocol wins against
    fixed crops by more than the seed spread.
    """
    by_protocol = {}
    for run in results["runs"]:
        if run["epochs"] == epochs and is_plain(run):
            by_protocol.setdefault(run["crops"], []).append(run["val_loss"][-1])
    if "fixed" not in by_protocol:
        return "fixed", "no fixed-crop runs to compare with"
    means = {p: float(np.mean(v)) for p, v in by_protocol.items()}
    spread = {p: float(np.ptp(v)) for p, v in by_protocol.items()}

    def margin(worse, better):  # how far ``better`` lies below ``worse`` beyond the larger seed range
        return means[worse] - means[better] - max(spread[worse], spread[better])

    one_seed = [p for p in by_protocol if p != "fixed" and len(by_protocol[p]) < 2]
    aside = f"; {', '.join(one_seed)}: one seed, not compared" if one_seed else ""
    margins = {p: margin("fixed", p) for p in by_protocol if p != "fixed" and p not in one_seed}
    qualifying = [p for p in nanotwice.CROP_PROTOCOLS if margins.get(p, 0) > 0]  # simplest first
    if not qualifying:
        return "fixed", f"no protocol lies below fixed crops ({means['fixed']:.4f}) by more than the seed spread{aside}"
    best = min(qualifying, key=means.get)
    if all(margin(p, best) > 0 for p in qualifying if p != best):
        chosen, how = best, "the lowest"
    else:
        chosen, how = qualifying[0], f"the simplest of {', '.join(qualifying)}, which lie within their seed spread"
    return chosen, (f"{chosen}: validation loss {means[chosen]:.4f}, {how}, below fixed crops' {means['fixed']:.4f} "
                    f"by {margins[chosen]:.4f} more than the seed spread{aside}")


def _against_fresh(results, epochs, label):
    """``(whether, reason)``: whether the arms of protocol ``"fresh, <label>"`` (:func:`protocol_of`) lie below both
    plain fresh-crop seeds' validation loss by more than those seeds' range (:data:`BATCH_RULE`, :data:`DECAY_RULE`,
    :data:`OUTPUT_RULE`); None where the arms are missing."""
    fresh = [r for r in results["runs"] if r["epochs"] == epochs and r["crops"] == "fresh"]
    plain = [r["val_loss"][-1] for r in fresh if is_plain(r)]
    other = [r["val_loss"][-1] for r in fresh if protocol_of(r) == f"fresh, {label}"]
    if len(plain) < 2 or not other:
        return None, f"no verdict yet: needs two plain fresh-crop seeds and one arm of {label}"
    below = min(other) < min(plain) - float(np.ptp(plain))
    return below, (f"{label}: validation loss {min(other):.4f}, {'below' if below else 'not below'} the plain "
                   f"fresh-crop arms' lower seed {min(plain):.4f} less their range {np.ptp(plain):.4f}")


# What the rules beside DECISION_RULE keep where an arm does not win (BATCH_RULE, DECAY_RULE, OUTPUT_RULE), and the
# values an arm of each setting may take.
KEPT = {"batch_size": BATCH, "decay": DECAY, "output": LINEAR}
VALUES = {"decay": DECAYS, "output": OUTPUTS}


def choose_variant(results, setting, value, epochs=TABLE2_BUDGET["epochs"]):
    """Apply the rule of ``setting`` (``"batch_size"``: :data:`BATCH_RULE`, ``"decay"``: :data:`DECAY_RULE`,
    ``"output"``: :data:`OUTPUT_RULE`) to the fresh-crop arm with ``setting = value``: ``(the value to keep,
    reason)``; reads ``val_loss`` only.  ``choose_variant(results, "decay", "lr")`` is ``("decoupled", "lr decay:
    ...")`` unless the arm of Keras 2's learning-rate decay wins."""
    if setting not in KEPT or value == KEPT[setting] or value not in VALUES.get(setting, (value,)):
        raise ValueError(f"expected a setting of {', '.join(KEPT)} and a value other than the campaign's, got "
                         f"{setting}={value!r}")
    arm = protocol_of({"crops": "fresh", "budget": {setting: value}})
    below, reason = _against_fresh(results, epochs, arm.removeprefix("fresh, "))
    return (value if below else KEPT[setting]), reason


# The 200-epoch batch-32 SSIM-AEs on fresh crops (seeds 0 and 1), whose validation curves SMALL_BATCH_RULE reads.
FIG6_FRESH_SSIM_AES = ("ssim_ae-fresh", "ssim_ae-fresh-seed1")


def small_batch_verdict(results, references=None, epochs=TABLE2_BUDGET["epochs"], batch_size=16):
    """``(batch size to keep, reason)`` of :data:`SMALL_BATCH_RULE`: :func:`choose_variant` for the arm of
    ``batch_size``, and in the reason whether its last validation loss also lies below every curve of
    ``references`` (per-epoch validation losses; default: those of :data:`FIG6_FRESH_SSIM_AES` in the committed
    ``models/nanotwice``) at the epoch with as many Adam steps (``epochs * 32 / batch_size``):
    whether a win is more than more steps.  Reads ``val_loss`` only."""
    kept, reason = choose_variant(results, "batch_size", batch_size, epochs)
    arm = [r["val_loss"][-1] for r in results["runs"] if r["epochs"] == epochs and r["crops"] == "fresh"
           and protocol_of(r) == f"fresh, batch {batch_size}"]
    if not arm:
        return kept, reason
    same_steps = epochs * BATCH // batch_size
    if references is None:
        references = [artifacts.read_manifest(artifacts.study_model("nanotwice", name))["training"]["val_loss"]
                      for name in FIG6_FRESH_SSIM_AES]
    matched = [curve[same_steps - 1] for curve in references if len(curve) >= same_steps]
    if not matched:
        return kept, f"{reason}; no batch-{BATCH} curve reaches epoch {same_steps} (the same Adam steps)"
    below = min(arm) < min(matched)
    return kept, (f"{reason}; the batch-{BATCH} runs at the same Adam steps (epoch {same_steps}): "
                  f"{', '.join(f'{v:.4f}' for v in matched)}, "
                  + ("below them too: more than more steps" if below else "not below them: no more than more steps"))


def constants_verdict(results, epochs=TABLE2_BUDGET["epochs"]):
    """``(whether, reason)`` of :data:`CONSTANTS_RULE`: whether the arm of literal SSIM constants scores above both
    plain fresh-crop seeds on the test images by more than their range in pixel AUROC, AU-PRO@0.3 and median
    overlap alike (then a defect-free measure is to be written before a 200-epoch model of it); None where the
    arms are missing.  Reads test scores: it adopts nothing."""
    fresh = [r for r in results["runs"] if r["epochs"] == epochs and r["crops"] == "fresh"]
    plain = [r for r in fresh if is_plain(r)]
    literal = [r for r in fresh if protocol_of(r) == f"fresh, {VARIANT_LABELS['literal']}"]
    if len(plain) < 2 or not literal:
        return None, "no verdict yet: needs two plain fresh-crop seeds and the arm of literal SSIM constants"
    parts, above = [], True
    for key, label in MEASURES[1:]:
        values = [r[key] for r in plain]
        bar = max(values) + float(np.ptp(values))
        above &= literal[0][key] > bar
        parts.append(f"{label} {literal[0][key]:.3f} against {min(values):.3f}-{max(values):.3f}")
    return above, (f"literal SSIM constants: {', '.join(parts)} (the plain fresh-crop seeds); "
                   + ("above them by more than their range in all three: a defect-free measure comparing the two "
                      "losses is to be written before a 200-epoch model" if above else
                      "not above them by more than their range in all three: the standard constants stay"))


# FIG6_BATCH16_RULE: the 200-epoch batch-16 SSIM-AE against the batch-32 ones, and the bar on the synthetic measure.
FIG6_BATCH16 = "ssim_ae-fresh-batch16"
SYNTHETIC_BAR = 0.004
SYNTHETIC_RESULTS = REPO_ROOT / "results" / "nanotwice_synthetic_defects.json"


def fig6_batch16_verdict(manifests=None, synthetic=None):
    """``(store name of the Fig. 6 SSIM-AE, reason)`` of :data:`FIG6_BATCH16_RULE`: ``"ssim_ae-fresh-batch16"`` if
    its validation loss after 200 epochs lies below both of :data:`FIG6_FRESH_SSIM_AES`' by more than their range
    and its synthetic-defect pixel AUROC above both of theirs by more than :data:`SYNTHETIC_BAR`, else
    ``"ssim_ae-fresh"``; ``(None, what is missing)`` before the batch-16 model has finished and been measured.

    ``manifests``: ``{store name: manifest}`` (default: the committed ``models/nanotwice``); ``synthetic``: the
    results of :mod:`ssimlib.experiments.synthetic_defects` (default: the committed file), whose batch-16 entry must
    name the weights of that manifest (``weights_sha256``).  Reads no test image."""
    names = (*FIG6_FRESH_SSIM_AES, FIG6_BATCH16)
    if manifests is None:
        manifests = {name: artifacts.read_manifest(artifacts.study_model("nanotwice", name)) for name in names}
    if manifests[FIG6_BATCH16] is None:
        return None, f"no verdict yet: {FIG6_BATCH16} is not in the model store"
    training = manifests[FIG6_BATCH16]["training"]
    if training["epochs_done"] < training["schedule_epochs"]:
        return None, (f"no verdict yet: {FIG6_BATCH16} has trained {training['epochs_done']} of its "
                      f"{training['schedule_epochs']} epochs")
    if synthetic is None:
        synthetic = json.loads(SYNTHETIC_RESULTS.read_text()) if SYNTHETIC_RESULTS.exists() else {"models": {}}
    measured = synthetic["models"].get(FIG6_BATCH16, {})
    if measured.get("weights_sha256") != manifests[FIG6_BATCH16]["sha256"]:
        return None, (f"no verdict yet: the synthetic-defect measure of the finished {FIG6_BATCH16} is missing "
                      f"(python -m ssimlib synthetic-defects --models models/nanotwice/{FIG6_BATCH16})")
    loss = {name: manifests[name]["training"]["val_loss"][-1] for name in names}
    auroc = {name: synthetic["models"][name]["pixel_auroc"] for name in names}
    losses32 = [loss[name] for name in FIG6_FRESH_SSIM_AES]
    aurocs32 = [auroc[name] for name in FIG6_FRESH_SSIM_AES]
    lower = loss[FIG6_BATCH16] < min(losses32) - float(np.ptp(losses32))
    higher = auroc[FIG6_BATCH16] > max(aurocs32) + SYNTHETIC_BAR
    return (FIG6_BATCH16 if lower and higher else FIG6_FRESH_SSIM_AES[0]), (
        f"batch 16: validation loss {loss[FIG6_BATCH16]:.4f}, {'below' if lower else 'not below'} the batch-32 "
        f"seeds' {', '.join(f'{v:.4f}' for v in losses32)} by more than their range {np.ptp(losses32):.4f}; "
        f"synthetic-defect pixel AUROC {auroc[FIG6_BATCH16]:.4f}, {'above' if higher else 'not above'} theirs "
        f"{', '.join(f'{v:.4f}' for v in aurocs32)} by more than {SYNTHETIC_BAR}: "
        + ("the batch-16 model becomes the Fig. 6 SSIM-AE" if lower and higher
           else "the batch-32 model stays the Fig. 6 SSIM-AE, the batch-16 one is reported beside it"))


def fig6_batch_sizes(manifests=None, synthetic=None):
    """``{method: batch size}`` of the Fig. 6 models notebook 02 evaluates by default: the SSIM-AE's as
    :func:`fig6_batch16_verdict` decides (16 once the batch-16 model has won, else the schedule's 32), the schedule's
    for the others (their models were trained at it)."""
    adopted = fig6_batch16_verdict(manifests, synthetic)[0] == FIG6_BATCH16
    return {method: 16 if method == "SSIM-AE" and adopted else nanotwice.FIG6_SCHEDULE["batch_size"]
            for method in nanotwice.METHODS}
