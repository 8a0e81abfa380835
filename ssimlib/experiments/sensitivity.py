"""Paper Table II as a resumable campaign: the SSIM-AE at one training budget for every (d, K, patch) setting.

Table II varies one factor at a time around d = 500, K = 11, 128-px patches.  Each
of its eleven settings is trained here at :data:`TABLE2_BUDGET` (the Fig. 6
schedule of :data:`ssimlib.experiments.nanotwice.FIG6_SCHEDULE` with fewer epochs, the same
for every setting), evaluated on the NanoTWICE test images (pixel AUROC and
AU-PRO@0.3, stride 30 scaled to the patch side), and appended to a results file.

``python -m ssimlib train-study table2`` runs :func:`run_campaign`:

* one setting at a time; a setting already in the results file is never
  retrained; an interrupted one resumes from its per-epoch checkpoint in
  ``<cache>/checkpoints/table2/d<d>_k<K>_p<patch>``;
* after each setting the results file is rewritten atomically with its entry
  added, so a partial campaign is a valid partial table;
* the base setting (d = 500, K = 11, 128 px) is the Fig. 6 SSIM-AE's own run
  stopped at the budget: where ``train-study nanotwice`` left a snapshot of that
  epoch (``<cache>/snapshots/nanotwice/ssim_ae/epoch<N>``), it is used instead
  of training the same model again.

Trained weights of the sweep stay in the cache; only the results are committed.
"""

import shutil
from pathlib import Path

from ssimlib.records import add_to_campaign, read_campaign, run_environment
from ssimlib.experiments import nanotwice
from ssimlib.paths import REPO_ROOT
from ssimlib.store_training import cache_dir
from ssimlib.train import STATE_FILE, WEIGHTS_FILE, read_checkpoint_state

# The budget of every Table II setting.  Chosen from the Fig. 6 SSIM-AE's training curve
# (not from test data): the first epoch >= 50 at which the training loss fell by less than
# 10 % over the preceding 10 epochs (it fell 11.8 % from epoch 30 to 40, 10.4 % from 35 to 45).
TABLE2_EPOCHS = 50
TABLE2_BUDGET = {**nanotwice.FIG6_SCHEDULE, "epochs": TABLE2_EPOCHS}
BUDGET_RULE = ("first epoch >= 50 at which the Fig. 6 SSIM-AE's training loss fell by less than 10 % "
               "over the preceding 10 epochs")
BASE = (500, 11, 128)  # (d, K, patch) of the setting every sweep varies around
SWEEPS = {name: sorted(values) for name, values in nanotwice.PAPER_TABLE_II.items()}
FACTORS = ("latent_dim", "window_size", "patch_size")  # the order of BASE and of a setting's key
DEFAULT_RESULTS = REPO_ROOT / "results" / "nanotwice_sensitivity.json"


def settings_of_table2(base=BASE, sweeps=None):
    """The distinct ``(d, K, patch)`` settings of one-factor-at-a-time sweeps around ``base``, base first."""
    sweeps = sweeps or SWEEPS
    settings = [tuple(base)]
    for i, factor in enumerate(FACTORS):
        for value in sweeps.get(factor, []):
            setting = list(base)
            setting[i] = value
            settings.append(tuple(setting))
    return list(dict.fromkeys(settings))


def setting_name(setting):
    """``"d500_k11_p128"`` for ``(500, 11, 128)``."""
    d, k, p = setting
    return f"d{d}_k{k}_p{p}"


def read_results(path=DEFAULT_RESULTS):
    """The campaign's results file as a dict (an empty campaign where there is none)."""
    return read_campaign(path, "settings", {"dataset": "NanoTWICE", "settings": []}, "Table II campaign")


def _setting_of(entry):
    return (entry["latent_dim"], entry["window_size"], entry["patch_size"])


def result_for(results, setting):
    """The entry of ``setting`` ``(d, K, patch)`` in ``results``, or None."""
    return next((r for r in results["settings"] if _setting_of(r) == setting), None)


def add_result(path, entry):
    """Add (or replace) one setting's entry in the results file at ``path``, atomically; returns the results."""
    return add_to_campaign(path, read_results(path), "settings", entry,
                           lambda r: (r["patch_size"], r["window_size"], r["latent_dim"]))


def base_snapshot_dir(cache, epochs=TABLE2_EPOCHS):
    """Where ``train-study nanotwice`` copies the SSIM-AE's checkpoint at ``epochs``: the base setting's run."""
    return Path(cache) / "snapshots" / "nanotwice" / nanotwice.MODEL_NAMES["SSIM-AE"] / f"epoch{epochs}"


def _seed_from_snapshot(checkpoint_dir, snapshot_dir, budget, log):
    """Use the Fig. 6 SSIM-AE's snapshot at the budget as the base setting's finished checkpoint."""
    state = read_checkpoint_state(snapshot_dir)
    if read_checkpoint_state(checkpoint_dir) is not None or state is None:
        return
    saved = state["settings"]
    wanted = {"loss": "ssim", "window_size": BASE[1], **{k: budget[k] for k in (
        "n_patches", "batch_size", "learning_rate", "weight_decay", "window", "seed")}}
    if any(saved.get(k) != v for k, v in wanted.items()) or len(state["history"]["loss"]) != budget["epochs"]:
        log(f"{setting_name(BASE)}: the snapshot in {snapshot_dir} was trained otherwise; training this setting")
        return
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    for name in (state.get("weights", WEIGHTS_FILE), STATE_FILE):  # the weights file the state names, then it
        shutil.copy2(snapshot_dir / name, checkpoint_dir / name)
    log(f"{setting_name(BASE)}: the Fig. 6 SSIM-AE's checkpoint at this epoch ({snapshot_dir}) is this setting")


def run_campaign(
    results_path=DEFAULT_RESULTS, settings=None, budget=None, data_root=None, cache=None,
    n_test_images=None, stride=30, log=print,
):
    """Train and evaluate every setting of ``settings`` (default: Table II's eleven) missing from the results file.

    ``budget`` overrides entries of :data:`TABLE2_BUDGET`.  Each finished setting is
    added to ``results_path`` at once (pixel AUROC, AU-PRO@0.3, stride, training time,
    final loss, settings; ``machine``: the one that finished and evaluated it, ``machines``: which CPU ran
    which epochs).  Returns the results.
    """
    from ssimlib import artifacts

    artifacts.code_commit()  # the code this job runs, recorded with every result
    budget = {**TABLE2_BUDGET, **(budget or {})}
    cache = Path(cache or cache_dir())
    settings = [tuple(s) for s in (settings or settings_of_table2())]
    results = read_results(results_path)
    todo = [s for s in settings if result_for(results, s) is None]
    log(f"Table II campaign: {len(settings) - len(todo)} of {len(settings)} settings done; "
        f"{budget['epochs']} epochs of {budget['n_patches']:,} patches each")
    if not todo:
        return results
    dataset = nanotwice.load_dataset(data_root)
    _, test_images, test_masks = nanotwice.test_subset(dataset, n_test_images)
    patches_by_size = {}
    for setting in todo:
        d, k, p = setting
        name = setting_name(setting)
        checkpoint_dir = cache / "checkpoints" / "table2" / name
        if setting == BASE and budget["window"] == nanotwice.FIG6_SCHEDULE["window"]:
            _seed_from_snapshot(checkpoint_dir, base_snapshot_dir(cache, budget["epochs"]), budget, log)
        if p not in patches_by_size:
            patches_by_size[p] = nanotwice.training_patches(dataset, budget["n_patches"], p, budget["seed"])
        log(f"{name}: training ({budget['epochs']} epochs, checkpoints in {checkpoint_dir})")
        model, history = nanotwice.train_config(
            "SSIM-AE", patches_by_size[p], latent_dim=d, window_size=k, window=budget["window"],
            epochs=budget["epochs"], batch_size=budget["batch_size"], learning_rate=budget["learning_rate"],
            weight_decay=budget["weight_decay"], seed=budget["seed"], checkpoint_dir=checkpoint_dir, progress=False,
        )
        evaluation = nanotwice.evaluate_config(
            model, "SSIM-AE", test_images, test_masks, patch_size=p, stride=nanotwice.scaled_stride(stride, p),
            window_size=k, window=budget["window"],
        )
        entry = {
            "latent_dim": d, "window_size": k, "patch_size": p,
            "pixel_auroc": evaluation.pixel_auroc, "au_pro_0_3": evaluation.au_pro,
            "stride": nanotwice.scaled_stride(stride, p),
            "test_images": len(test_images), "of_test_images": len(dataset.test_images),
            "epochs": len(history["loss"]), "final_loss": history["loss"][-1],
            "training_seconds": history["seconds"],
            "optimizer_restarts": history.get("optimizer_restarts", []), "machines": history.get("machines", []),
            "budget": {key: budget[key] for key in ("n_patches", "epochs", "batch_size", "learning_rate",
                                                    "weight_decay", "window", "seed")},
            "budget_rule": BUDGET_RULE if budget["epochs"] == TABLE2_EPOCHS else "set by the caller",
            "code_commit": artifacts.code_commit(),
            "machine": run_environment(),
        }
        results = add_result(results_path, entry)
        log(f"{name}: pixel AUROC {evaluation.pixel_auroc:.3f}, AU-PRO@0.3 {evaluation.au_pro:.3f}, "
            f"trained {history['seconds'] / 3600:.2f} h -> {results_path}")
        del model, evaluation
    return results


def table_rows(results, sweeps=None, base=BASE):
    """Per factor, ``[(value, entry or None, paper AUROC or None)]`` for the table and the plots."""
    sweeps = sweeps or SWEEPS
    rows = {}
    for i, factor in enumerate(FACTORS):
        rows[factor] = []
        for value in sweeps.get(factor, []):
            setting = list(base)
            setting[i] = value
            rows[factor].append((value, result_for(results, tuple(setting)),
                                 nanotwice.PAPER_TABLE_II.get(factor, {}).get(value)))
    return rows


# The paper's trends that Table II is read for, as (claim, factor, values compared, test).  "A few
# points" and "clearly" are stated as numbers: 0.03 of AUROC.
FEW_POINTS = 0.03
TRENDS = (
    ("d = 50 clearly below d = 500", "latent_dim", (50, 500),
     lambda v: v[500] - v[50] > FEW_POINTS),
    ("d = 200, 500 and 1000 within a few points of each other", "latent_dim", (200, 500, 1000),
     lambda v: max(v.values()) - min(v.values()) <= FEW_POINTS),
    ("K = 3 below each of K = 7, 11 and 15", "window_size", (3, 7, 11, 15),
     lambda v: v[3] < min(v[7], v[11], v[15])),
    ("patch sizes 32, 64 and 128 within a few points of each other", "patch_size", (32, 64, 128),
     lambda v: max(v.values()) - min(v.values()) <= FEW_POINTS),
)


def paper_trends(results, base=BASE):
    """Whether each of the paper's :data:`TRENDS` holds in ``results``: ``[(claim, ours, paper, holds)]``.

    ``ours`` and ``paper`` map each compared value to its pixel AUROC (``ours`` only
    the settings evaluated); ``holds`` is True or False, or None while a compared
    setting is missing.
    """
    rows = table_rows(results, base=base)
    verdicts = []
    for claim, factor, values, test in TRENDS:
        by_value = {value: (entry, paper) for value, entry, paper in rows[factor]}
        ours = {v: by_value[v][0]["pixel_auroc"] for v in values if by_value[v][0] is not None}
        paper = {v: by_value[v][1] for v in values}
        verdicts.append((claim, ours, paper, test(ours) if len(ours) == len(values) else None))
    return verdicts
