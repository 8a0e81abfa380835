"""Training the study's models at their schedules, for hours, into the model store.

``python -m ssimlib train-study queue`` runs every study below one after another at its
defaults (:data:`QUEUE`); a finished model or setting is skipped, an interrupted one resumes,
so one command restarts the whole campaign.

``python -m ssimlib train-study table2`` runs the Table II campaign
(:mod:`ssimlib.experiments.sensitivity`: results, not models, are what it keeps).

``python -m ssimlib train-study protocol`` runs the crop-protocol campaign
(:mod:`ssimlib.experiments.protocol`: fixed against fresh training crops, with seeds).

``python -m ssimlib train-study held-out [--held-out STEM] [--seed N] [--crops PROTOCOL]`` trains the SSIM-AE with
one training image held out (ITIA1145 unless named; fresh crops unless named) and measures which images it
reconstructs worse (:mod:`ssimlib.experiments.held_out_image`: a diagnostic).

``python -m ssimlib train-study nanotwice --models SSIM-AE L2-AE VAE FM-AE`` trains
the models of paper Fig. 6 one after another at :data:`ssimlib.experiments.nanotwice.FIG6_SCHEDULE`
(the paper's: 10,000 patches, 200 epochs, Adam 2e-4, weight decay 1e-5, d = 500);
``--crops fresh`` (or another crop protocol) trains them on fresh crops every epoch, as models
of their own (``models/nanotwice/ssim_ae-fresh``), for the protocol the campaign adopts;
``--seed 1`` trains them with another seed, again as models of their own
(``models/nanotwice/ssim_ae-fresh-seed1``), for the spread over seeds at the paper's schedule;
``--batch-size 16`` with another batch size (``models/nanotwice/ssim_ae-fresh-batch16``: the batch size
the crop-protocol campaign's ``SMALL_BATCH_RULE`` adopted for the next 200-epoch SSIM-AE).

``python -m ssimlib train-study mvtec [--categories grid bottle] [--models SSIM-AE L2-AE]
[--setup cvpr2019] [--epochs N]`` trains the MVTec AD models of CVPR 2019 Table 3 into
``models/mvtec/<category>-<loss>-<setup>`` at :data:`ssimlib.experiments.mvtec.SCHEDULE`, in two stages:
every model to :data:`MVTEC_FIRST_STAGE` epochs, then every model to the whole schedule (a
category that fails is reported and the next one runs).

``python -m ssimlib train-study checkerboard [--models L2-AE SSIM-AE] [--epochs N]`` trains
the models of paper Fig. 3 on generated checkerboards into ``models/checkerboard``
(:mod:`ssimlib.experiments.checkerboard`).

* Every model is trained into the model store through
  :func:`ssimlib.store_training.train_into_store`: checkpointed per epoch in
  ``<cache>/checkpoints/<study>/<name>``, exported into ``models/<study>/<name>``
  every ``export_every`` epochs and at the end, resumed from the checkpoint or
  else from the committed artifact (see :mod:`ssimlib.store_training`).
* At the epoch of the Table II budget (:data:`ssimlib.experiments.sensitivity.TABLE2_EPOCHS`)
  the SSIM-AE's checkpoint is also copied to ``<cache>/snapshots/nanotwice/ssim_ae``:
  it is Table II's base setting, which the campaign then need not train again.
"""

import sys
from pathlib import Path

from ssimlib.arguments import OneLineParser, at_least_one, random_seed
from ssimlib import artifacts
from ssimlib.artifacts import ArtifactError
from ssimlib.data import DatasetError, not_a_folder
from ssimlib.experiments import nanotwice, sensitivity
from ssimlib.experiments.held_out_image import HELD_OUT
from ssimlib.experiments.presets import SETUPS
from ssimlib.experiments.sensitivity import TABLE2_EPOCHS
from ssimlib.store_training import cache_dir, snapshot, stage_end, train_into_store
from ssimlib.train import CheckpointError, training_settings

# The MVTec AD categories whose copies this project's machines hold (../shared/data).
MVTEC_CATEGORIES = ("grid", "bottle")
# What ``train-study queue`` runs, one after another, each at its defaults: the Fig. 6 models first.
QUEUE = ("nanotwice", "checkerboard", "table2", "mvtec")
# The mvtec study first trains every model to this epoch (the Table II budget), then each to the whole
# schedule: all four models of Table 3 exist at one stated budget long before the last reaches 200 epochs.
MVTEC_FIRST_STAGE = TABLE2_EPOCHS
STUDIES = (*QUEUE, "protocol", "held-out", "queue")


def train_nanotwice_model(
    method, schedule=None, data_root=None, models_root=None, checkpoint_dir=None, export_every=10, log=print,
    crops="fixed", stem=None, until=None, n_validation=nanotwice.VALIDATION_PATCHES, gpu=None,
):
    """Train one Fig. 6 model (``method``: a key of :data:`ssimlib.experiments.nanotwice.METHODS`) into the model store.

    ``schedule`` overrides entries of :data:`ssimlib.experiments.nanotwice.FIG6_SCHEDULE`; ``crops``
    is a protocol of :data:`ssimlib.experiments.nanotwice.CROP_PROTOCOLS`; another than ``"fixed"``,
    or another seed than the schedule's, trains a model of its own
    (:func:`ssimlib.experiments.nanotwice.fig6_model_name`) beside the first one.  The loss on ``n_validation`` crops of
    :func:`ssimlib.experiments.nanotwice.validation_patches` is logged every epoch.  ``stem`` exports
    elsewhere than into the store (a GPU run's output folder), ``until`` stops at that epoch of the
    schedule, ``gpu`` (the GPU's name) goes into the manifest.
    Returns the manifest of the exported model.
    """
    artifacts.code_commit()  # the code this job runs, recorded in every export
    schedule = {**nanotwice.FIG6_SCHEDULE, **(schedule or {})}
    name = nanotwice.fig6_model_name(method, crops, schedule["seed"], schedule["batch_size"])
    in_store = stem is None
    stem = artifacts.study_model("nanotwice", name, models_root) if in_store else Path(stem)
    settings = training_settings(
        nanotwice.METHODS[method], schedule["epochs"], schedule["batch_size"], schedule["learning_rate"],
        schedule["weight_decay"], schedule["window_size"], schedule["window"], schedule["seed"],
        schedule["n_patches"], crops,
    )
    dataset = nanotwice.load_dataset(data_root)
    patches = nanotwice.training_patches(dataset, schedule["n_patches"], schedule["patch_size"], schedule["seed"],
                                         crops)
    validation = nanotwice.validation_patches(dataset, schedule["patch_size"], n_validation)
    record = {
        "method": method,
        "data": f"NanoTWICE, {len(dataset.train_images)} defect-free images "
                f"({', '.join(p.name for p in dataset.train_paths)})",
        "settings": {**settings, "patch_size": schedule["patch_size"], "latent_dim": schedule["latent_dim"]},
        "validation": f"{len(validation)} crops of the training images, seed {nanotwice.VALIDATION_SEED}",
    }
    checkpoint_dir = Path(checkpoint_dir or cache_dir() / "checkpoints" / "nanotwice" / stem.name)

    def after_epoch(model, history):
        if in_store and name == nanotwice.fig6_model_name("SSIM-AE") and len(history["loss"]) == TABLE2_EPOCHS:
            snapshot(checkpoint_dir, sensitivity.base_snapshot_dir(cache_dir(), TABLE2_EPOCHS))

    def fit(checkpoint_dir, on_epoch):
        return nanotwice.train_config(
            method, patches, latent_dim=schedule["latent_dim"], window_size=schedule["window_size"],
            window=schedule["window"], epochs=stage_end(until, schedule["epochs"]),
            batch_size=schedule["batch_size"],
            learning_rate=schedule["learning_rate"], weight_decay=schedule["weight_decay"], seed=schedule["seed"],
            checkpoint_dir=checkpoint_dir, feature_extractor=schedule["feature_extractor"],
            fm_weight=schedule["fm_weight"], progress=False, on_epoch=on_epoch, validation=validation,
        )

    return train_into_store(
        fit, stem, checkpoint_dir, settings, record, schedule["epochs"], export_every, log, on_epoch=after_epoch,
        feature_extractor=schedule["feature_extractor"], until=until, study="nanotwice",
        **({"gpu": gpu} if gpu else {}),
    )


def _train_checkerboard(args, schedule):
    """The checkerboard study (paper Fig. 3): the L2-AE, then the SSIM-AE (:mod:`ssimlib.experiments.checkerboard`)."""
    from ssimlib.experiments import checkerboard

    for method in args.models or ("L2-AE", "SSIM-AE"):
        loss = nanotwice.METHODS[method]
        manifest = checkerboard.train_checkerboard_model(
            loss, schedule, args.models_root, export_every=args.export_every, log=lambda line: print(line, flush=True),
        )
        print(checkerboard.schedule_label(manifest), flush=True)
    return 0


def mvtec_stages(schedule_epochs):
    """The epochs up to which the mvtec study trains every model in turn: ``(MVTEC_FIRST_STAGE, schedule_epochs)``."""
    return tuple(sorted({min(MVTEC_FIRST_STAGE, schedule_epochs), schedule_epochs}))


def _train_mvtec(args, schedule):
    """The mvtec study: every (category, model) in turn, stage by stage (:data:`MVTEC_FIRST_STAGE`, then the
    whole schedule); one that fails is reported and the next one runs."""
    from ssimlib.experiments import mvtec, mvtec_runs, presets

    if args.data_root is not None and not Path(args.data_root).is_dir():  # every category would fail on it
        print(f"error: --data-root {args.data_root}: {not_a_folder(args.data_root)}", file=sys.stderr)
        return 2
    schedule_epochs = (schedule or {}).get("epochs", mvtec.SCHEDULE["epochs"])
    failed = []
    for until in mvtec_stages(schedule_epochs):
        for category in args.categories:
            for method in args.models or ("SSIM-AE", "L2-AE"):
                if f"{category} {method}" in failed:
                    continue
                loss = nanotwice.METHODS[method]
                try:
                    root = mvtec_runs.category_root(category, args.data_root)
                    preset = presets.configure(category, loss=loss, setup=args.setup)
                    manifest = mvtec.train_category_model(
                        root, category, preset, schedule, args.models_root, export_every=args.export_every,
                        log=lambda line: print(line, flush=True), until=until,
                    )
                except Exception as error:  # one category's failure must not stop the others
                    failed.append(f"{category} {method}")
                    print(f"{category} {method}: FAILED: {type(error).__name__}: {error}", flush=True)
                    continue
                training = manifest["training"]
                print(f"{category} {method}: {training['epochs_done']} of {training['schedule_epochs']} epochs, "
                      f"final loss {training['loss'][-1]:.5f}, {training['seconds'] / 3600:.2f} h", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


OPTIONS_USED = {  # the options each study reads (argparse's names); another given is refused, not ignored
    "nanotwice": {"models", "epochs", "crops", "seed", "batch_size", "export_every", "data_root", "models_root"},
    "checkerboard": {"models", "epochs", "export_every", "models_root"},
    "table2": {"epochs", "data_root", "results"},
    "protocol": {"epochs", "data_root", "models_root", "results"},
    "held-out": {"epochs", "held_out", "seed", "crops", "data_root", "models_root", "results"},
    "mvtec": {"models", "categories", "setup", "epochs", "export_every", "data_root", "models_root"},
    "queue": set(),
}


def main(argv=None):
    """``python -m ssimlib train-study STUDY [--models ...]``: see the module docstring."""
    import argparse

    parser = OneLineParser(prog="ssimlib train-study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", choices=STUDIES)
    parser.add_argument("--models", nargs="+", choices=list(nanotwice.METHODS),
                        help="models to train, one after another (default: nanotwice all four of Fig. 6, SSIM-AE "
                             "first; checkerboard L2-AE then SSIM-AE; mvtec SSIM-AE and L2-AE)")
    parser.add_argument("--categories", nargs="+", default=list(MVTEC_CATEGORIES),
                        help="mvtec: categories, one after another (default: %(default)s)")
    parser.add_argument("--setup", default="cvpr2019", choices=SETUPS,
                        help="mvtec: the presets' setup (default: %(default)s)")
    parser.add_argument("--epochs", type=at_least_one,
                        help=f"override the schedule's epochs (nanotwice: the paper's 200; table2: {TABLE2_EPOCHS}; "
                             f"mvtec: the paper's 200, every model first to {MVTEC_FIRST_STAGE})")
    parser.add_argument("--crops", choices=list(nanotwice.CROP_PROTOCOLS),
                        help="nanotwice, held-out: how the training crops are drawn (default: nanotwice fixed, one "
                             "set for all epochs; held-out fresh, as the campaign adopted; another protocol trains "
                             "models of their own, e.g. models/nanotwice/ssim_ae-fresh)")
    parser.add_argument("--seed", type=random_seed, default=nanotwice.FIG6_SCHEDULE["seed"],
                        help="nanotwice, held-out: seed of the crops and the initial weights (default: %(default)s; "
                             "another trains models of their own, e.g. models/nanotwice/ssim_ae-fresh-seed1)")
    parser.add_argument("--batch-size", type=at_least_one, default=nanotwice.FIG6_SCHEDULE["batch_size"],
                        help="nanotwice: patches per Adam step (default: %(default)s; another trains models of their "
                             "own, e.g. models/nanotwice/ssim_ae-fresh-batch16)")
    parser.add_argument("--held-out", default=HELD_OUT, metavar="STEM",
                        help="held-out: the training image held out (default: %(default)s)")
    parser.add_argument("--export-every", type=at_least_one, default=10,
                        help="write the model into models/ every N epochs")
    parser.add_argument("--data-root", help="NanoTWICE folder, or for mvtec the folder holding the categories "
                                             "(default: $SSIMLIB_DATA or ../shared/data, see mvtec_runs.category_root)")
    parser.add_argument("--models-root", help="model store (default: models/ in the repository)")
    parser.add_argument("--results", help="table2, protocol, held-out: the results file runs are added to (default: "
                                           "results/nanotwice_sensitivity.json, results/nanotwice_protocol.json, "
                                           "results/nanotwice_held_out[-STEM][-seedN].json)")
    args = parser.parse_args(argv)
    problem = _option_problem(args, parser)
    if problem:  # one line, as for any bad input
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.study == "queue":
        return max(main([study]) for study in QUEUE)
    try:
        return _train_study(args)
    except (DatasetError, ArtifactError, CheckpointError) as error:  # bad data or model, a busy or broken checkpoint
        print(f"error: {error}", file=sys.stderr)
        return 2


def _option_problem(args, parser):
    """What is wrong with the options ``args`` of ``parser`` in one line, or None."""
    if args.study == "checkerboard":
        from ssimlib.experiments.checkerboard import MODEL_NAMES

        other = [m for m in args.models or () if nanotwice.METHODS[m] not in MODEL_NAMES]
        if other:
            return f"--models: checkerboard trains L2-AE and SSIM-AE, not {', '.join(other)}"
    unused = [option for option, value in vars(args).items()
              if option not in OPTIONS_USED[args.study] | {"study"} and value != parser.get_default(option)]
    if unused:
        names = ", ".join("--" + option.replace("_", "-") for option in unused)
        return (f"{names}: the {args.study} study does not take {'it' if len(unused) == 1 else 'them'}"
                + (" (queue runs every study with its defaults; name a study to set options)"
                   if args.study == "queue" else ""))
    return None


def _train_study(args):
    """Run the study ``args.study`` (not ``queue``) with the checked arguments of :func:`main`; its exit status."""
    schedule = {"epochs": args.epochs} if args.epochs else None
    if args.study == "table2":
        sensitivity.run_campaign(args.results or sensitivity.DEFAULT_RESULTS, budget=schedule,
                                 data_root=args.data_root, log=lambda line: print(line, flush=True))
        return 0
    if args.study == "protocol":
        from ssimlib.experiments import protocol

        protocol.run_campaign(args.results or protocol.DEFAULT_RESULTS, budget=schedule, data_root=args.data_root,
                              models_root=args.models_root, log=lambda line: print(line, flush=True))
        return 0
    if args.study == "held-out":
        from ssimlib.experiments import held_out_image, verdicts

        # the 200-epoch models that saw all five images: seed 0's, the run's own seed's and the adopted Fig. 6
        # SSIM-AE (batch 16 since FIG6_BATCH16_RULE) where there are such
        names = [nanotwice.fig6_model_name("SSIM-AE", "fresh", seed) for seed in sorted({0, args.seed})]
        adopted = nanotwice.fig6_model_name("SSIM-AE", "fresh", batch_size=verdicts.fig6_batch_sizes()["SSIM-AE"])
        references = [artifacts.study_model("nanotwice", name, args.models_root)
                      for name in dict.fromkeys([*names, adopted])]
        references = [stem for stem in references if stem == references[0] or artifacts.read_manifest(stem) is not None]
        held_out_image.run_diagnostic(args.results, args.held_out, budget=schedule, seed=args.seed,
                                      data_root=args.data_root, models_root=args.models_root,
                                      references=references, log=lambda line: print(line, flush=True),
                                      crops=args.crops or held_out_image.CROPS)
        return 0
    if args.study == "mvtec":
        return _train_mvtec(args, schedule)
    if args.study == "checkerboard":
        return _train_checkerboard(args, schedule)
    for method in args.models or nanotwice.TRAINING_ORDER:
        manifest = train_nanotwice_model(
            method, {**(schedule or {}), "seed": args.seed, "batch_size": args.batch_size}, args.data_root,
            args.models_root,
            export_every=args.export_every, log=lambda line: print(line, flush=True), crops=args.crops or "fixed",
        )
        training = manifest["training"]
        print(f"{method}: {training['epochs_done']} of {training['schedule_epochs']} epochs, "
              f"final loss {training['loss'][-1]:.5f}, {training['seconds'] / 3600:.2f} h", flush=True)
    return 0
