"""Command line.

``python -m ssimlib demo``                      the embedded default job (checkerboards)
``python -m ssimlib notebook NAME [--profile ci] [-o OUT] [-p KEY VALUE]``   run one notebook with papermill
                                                 (a profile but full writes under runs/<profile>/)
``python -m ssimlib refresh-ci [NAME ...]``      re-execute the nbval reference copies in tests/notebooks
``python -m ssimlib batch --data-root ROOT ...``  notebook 04 for many MVTec AD categories (see ssimlib.apps.batch)
``python -m ssimlib train-study nanotwice [--models SSIM-AE ...]``  train the study's models into models/ (hours)
``python -m ssimlib synthetic-defects --models STEM ...``  the synthetic-defect measure of stored NanoTWICE models
                                                 (see ssimlib.experiments.synthetic_defects)
``python -m ssimlib train DATA --out MODEL``     train on a folder of your own defect-free images
                                                 (see ssimlib.apps.own_images)
``python -m ssimlib detect MODEL IMAGE_OR_FOLDER... --out DIR [--report]``  anomaly maps, overlays and a CSV
                                                 for new images (see ssimlib.apps.own_detection)
``python -m ssimlib evaluate MODEL IMAGE_OR_FOLDER... --out DIR [--report]``  metrics on images with defect masks
                                                 (see ssimlib.apps.own_evaluation)
"""

import contextlib
import os
import signal
import sys
import threading
import warnings
from collections import Counter
from pathlib import Path

from ssimlib.apps.file_names import STREAM_ERRORS
from ssimlib.apps.quiet_keras import load_keras_quietly
from ssimlib.arguments import OneLineParser, at_least_one, random_seed
from ssimlib.experiments.presets import LOSSES

# Exceptions a notebook cell raises for a parameter or input it cannot use: exit status 2, as for any bad input.
INPUT_ERRORS = ("ValueError", "FileNotFoundError", "ArtifactError", "DatasetError", "NotebookChoiceError")


def demo(epochs=20, n_train=1000, n_test=30, size=32, seed=0):
    """Train an SSIM autoencoder on generated checkerboards and print the pixel AUROC of its residuals.

    Seeded (``keras.utils.set_random_seed``, the boards, the batch order): data, initial weights
    and the first hundreds of steps repeat bit for bit in every process, but the default run's
    1,250 steps with the SSIM loss drift apart, so its AUROC varies between runs by up to
    0.02 (see ssimlib/reproducibility.py and the README).
    """
    import keras

    from ssimlib.inference import residual_map
    from ssimlib.metrics import pixel_auroc
    from ssimlib.models import ConvAutoencoder
    from ssimlib.postprocess import open_anomaly_map
    from ssimlib.synthetic import checkerboard_dataset
    from ssimlib.train import train

    keras.utils.set_random_seed(seed)
    train_boards, test_boards, masks, _ = checkerboard_dataset(n_train, n_test, size=size, seed=seed)
    model = ConvAutoencoder(patch_size=size, channels=1, latent_dim=32)
    # A higher learning rate than the paper's 2e-4: this demo has a couple of minutes, not hours.
    history = train(model, train_boards, loss="ssim", epochs=epochs, batch_size=16, learning_rate=1e-3, seed=seed)
    reconstructions = model.predict_on_batch(test_boards)
    maps = [open_anomaly_map(residual_map(x, y, kind="ssim")) for x, y in zip(test_boards, reconstructions)]
    auroc = pixel_auroc(maps, masks)
    print(
        f"SSIM-AE on {n_test} generated defective {size}x{size} checkerboards (trained {epochs} epochs on "
        f"{n_train} defect-free boards, {history['seconds']:.0f} s, final loss {history['loss'][-1]:.6f}): "
        f"pixel AUROC {auroc:.3f}"
    )
    return auroc


INTERRUPTED = {  # what Ctrl-C leaves, by command
    "train": "the same command resumes from the checkpoint of the last finished epoch ({out}.checkpoint/)",
    "train-study": "the same command resumes from the checkpoint of the last finished epoch",
    "detect": "detections.csv in --out lists the images finished, each with its map and overlay; the same command "
              "continues with the others",
    "evaluate": "the same command reads back the maps of the images finished and scores the others",
    "notebook": "the executed notebook it writes is left as it was; the cells that ran are in its .failed.ipynb "
                "(runs/failed/ for the notebooks themselves)",
    "batch": "the same command skips the runs finished and runs the others (a model in training resumes from its "
             "checkpoint)",
}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread, so that a run stopped by ``kill`` ends as Ctrl-C does: its locks
    released, what it kept said in one line."""


def _raise_terminated(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # once: a second SIGTERM, while this one is handled, ends the process
    raise Terminated


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM raises :class:`Terminated` for the block (main thread only), once: a second SIGTERM while the first
    is handled ends the process at once; the handler before it comes back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)  # None: not set in Python


def main(argv=None):
    """``python -m ssimlib``: the command's exit status; Ctrl-C ends in one line saying what is kept, status 130
    (SIGTERM: the line begins "terminated", status 143)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    for stream in (sys.stdout, sys.stderr):  # a file name of bytes that are no UTF-8 printed escaped, no traceback
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors=STREAM_ERRORS)  # as the CSVs name it (caf\xe9)
    command = next((a for a in argv if not a.startswith("-")), "")
    try:
        with _sigterm_as_interrupt():
            return _command(argv)
    except KeyboardInterrupt as stop:  # a tester's: SIGTERM ended 143 without a word, its lock file left behind
        terminated = isinstance(stop, Terminated)
        note = _resume_note(argv, command)
        print(f"{'terminated' if terminated else 'interrupted'}{': ' + note if note else ''}", file=sys.stderr)
        return 143 if terminated else 130
    except OSError as error:  # a full disk while writing, say (a tester's: a traceback from deep in PIL)
        if command not in ("train", "detect", "evaluate"):
            raise
        where = f"{error.filename}: " if error.filename else ""
        full = " (is the disk full?)" if error.errno is None else ""  # tifffile: "25600 requested and 24508 written"
        print(f"error: {where}{error.strerror or error}{full}; {_resume_note(argv, command)}", file=sys.stderr)
        return 1


def _resume_note(argv, command):
    """What a stopped run of ``command`` (:data:`INTERRUPTED`) left, and how to go on ("" for another command)."""
    out = next((b for a, b in zip(argv, argv[1:]) if a == "--out"), None) or next(
        (a.removeprefix("--out=") for a in argv if a.startswith("--out=")), "MODEL")
    out = _model_stem(out) if command == "train" else out
    note = INTERRUPTED[command].format(out=out) if command in INTERRUPTED else ""
    # state.json: ssimlib.train.STATE_FILE, not imported here (it loads Keras)
    if command == "train" and not (Path(f"{out}.checkpoint") / "state.json").exists():
        note = "no epoch had finished, so nothing was kept; the same command starts again"
    elif (command == "detect" and not (Path(out) / "detections.csv").is_file()) or (
            command == "evaluate" and not (Path(out).is_dir() and any(Path(out).iterdir()))):
        note = "no image had been scored, so nothing was kept; the same command starts again"  # a tester's
    elif command == "train" and "--restart" in argv:  # the same command would start over (a tester's)
        note = note.replace("the same command", "the same command without --restart", 1) + (
            "; with --restart it starts over")
    return note


def _model_stem(out):
    """``train``'s ``--out`` without an ending of a model's files (``.json``, ``.weights.h5``)."""
    return next((out.removesuffix(end) for end in (".weights.h5", ".json") if out.endswith(end)), out)


def _command(argv):
    """Run the command of ``argv``; its exit status (see the module docstring)."""
    if argv[:1] == ["batch"]:
        from ssimlib.apps.batch import main as batch_main

        return batch_main(argv[1:])
    if argv[:1] == ["train-study"]:
        load_keras_quietly()
        from ssimlib.experiments.studies import main as studies_main

        return studies_main(argv[1:])
    if argv[:1] == ["synthetic-defects"]:
        load_keras_quietly()
        from ssimlib.experiments.synthetic_defects import main as synthetic_main

        return synthetic_main(argv[1:])
    parser = OneLineParser(prog="ssimlib", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p_demo = commands.add_parser("demo", help=demo.__doc__.splitlines()[0])
    p_demo.add_argument("--epochs", type=at_least_one, default=20)
    p_demo.add_argument("--n-train", type=at_least_one, default=1000,
                        help="defect-free training boards (default: 1000)")
    p_demo.add_argument("--seed", type=random_seed, default=0)
    p_nb = commands.add_parser("notebook", help="run one notebook with papermill")
    p_nb.add_argument("name", help="notebook name without .ipynb, e.g. 01_checkerboard_toy")
    p_nb.add_argument("--profile", default="full",
                      help="full (the notebook's defaults) or a folder of notebooks/params "
                           "(ci, reduced): its executed notebook, figures and results go to runs/<profile>/")
    p_nb.add_argument("-o", "--output", help="executed notebook (default: for full the notebook itself, "
                      "else runs/<profile>/<name>.ipynb)")
    p_nb.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                      help="override a parameter; VALUE is read as YAML (2, 0.5, true, text)")
    p_ci = commands.add_parser("refresh-ci", help="re-execute the nbval reference notebooks (ci profile)")
    p_ci.add_argument("names", nargs="*")
    commands.add_parser("batch", help="run 04_mvtec_category for many MVTec AD categories "
                                      "(python -m ssimlib.apps.batch --help)")
    commands.add_parser("train-study", help="train the study's models into models/ (python -m ssimlib train-study -h)")
    commands.add_parser("synthetic-defects", help="the synthetic-defect measure of stored NanoTWICE models "
                                                  "(python -m ssimlib synthetic-defects -h)")
    p_train = commands.add_parser("train", help="train on a folder of your own defect-free images")
    p_train.add_argument("data", help="folder of defect-free images, or an MVTec AD-style category (uses train/good)")
    p_train.add_argument("--out", required=True, help="model path without suffix: writes OUT.weights.h5 and OUT.json")
    p_train.add_argument("--kind", choices=["texture", "object"], default="texture",
                         help="texture: rotated and flipped patches; object: orientation kept (default: texture)")
    p_train.add_argument("--loss", choices=LOSSES, default="ssim")
    p_train.add_argument("--patch-size", type=int, default=128, help="32, 64, 128, 256, ... (default: 128)")
    p_train.add_argument("--latent-dim", type=int, default=100, help="d, size of the code (default: 100)")
    p_train.add_argument("--epochs", type=int, default=50)
    p_train.add_argument("--n-patches", type=int, default=10_000, help="training patches per epoch (default: 10,000)")
    p_train.add_argument("--batch-size", type=int, default=32)
    colour = p_train.add_mutually_exclusive_group()
    colour.add_argument("--gray", dest="gray", action="store_const", const=True, help="convert colour images to gray")
    colour.add_argument("--color", dest="gray", action="store_const", const=False, help="keep or make RGB")
    p_train.add_argument("--validation-fraction", type=float, default=0.1,
                         help="share of the images held out to set the threshold (default: 0.1)")
    p_train.add_argument("--min-defect-area", type=int, default=64,
                         help="smallest defect region in pixels (default: 64)")
    p_train.add_argument("--seed", type=random_seed, default=0,
                         help="seeds the weights, patches and split (default: 0)")
    p_train.add_argument("--restart", action="store_true",
                         help="start over when OUT holds a checkpoint or model of another run (default: refuse)")
    p_detect = commands.add_parser("detect", help="anomaly maps, overlays and a CSV for new images")
    p_detect.add_argument("model", help="model path without suffix, as given to train --out")
    p_detect.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER")
    p_detect.add_argument("--out", required=True, help="folder for the maps, overlays and detections.csv")
    p_detect.add_argument("--threshold", type=float,
                          help="override the model's threshold (needed for the study's models, which have none)")
    p_detect.add_argument("--min-defect-area", type=int,
                          help="smallest defect region in pixels (default: the model's, else 64)")
    p_detect.add_argument("--precision", choices=["float32", "bfloat16"], default="float32",
                          help="network arithmetic; bfloat16 pays only on CPUs with AVX512_BF16/AMX or GPUs "
                               "(bench/README.md)")
    p_detect.add_argument("--report", action="store_true", help="also write OUT/report.html (opens without a server)")
    p_eval = commands.add_parser("evaluate", help="pixel and image AUROC, AU-PRO, per-image CSV on images with masks")
    p_eval.add_argument("model", help="model path without suffix, as given to train --out")
    p_eval.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER",
                        help="images, folders of them (searched below, e.g. good/ and scratch/) "
                             "or an MVTec AD category")
    p_eval.add_argument("--out", required=True, help="folder for metrics.json, evaluation.csv, curves and maps")
    p_eval.add_argument("--masks", metavar="DIR", help="parallel folder of masks: DIR/<folder>/<stem><--mask-suffix>, "
                                                       "or DIR/<folder>/<stem>.* without --mask-suffix")
    p_eval.add_argument("--mask-suffix", help="end of a mask's name after the image's stem, e.g. _mask.png (default: "
                                              "found beside each image, <stem>_mask.* or a PNG of its stem)")
    p_eval.add_argument("--threshold", type=float, help="override the model's validation threshold")
    p_eval.add_argument("--precision", choices=["float32", "bfloat16"], default="float32")
    p_eval.add_argument("--report", action="store_true", help="also write OUT/report.html (opens without a server)")
    args = parser.parse_args(argv)
    if args.command == "train":  # a model's path given with an ending of its files: the model is the stem
        args.out = _model_stem(args.out)
    if args.command in ("train", "detect", "evaluate"):
        problem = _options_problem(args)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    if args.command in ("train", "detect"):
        return _own_images(args)
    if args.command == "evaluate":
        return _evaluate(args)
    if args.command == "demo":
        load_keras_quietly()
        demo(epochs=args.epochs, n_train=args.n_train, seed=args.seed)
    elif args.command == "notebook":
        import papermill

        from ssimlib.apps.notebooks import (NotebookChoiceError, executed_notebook, failed_notebook,
                                            from_callers_folder, parameter_values, run_notebook)

        try:
            parameters = from_callers_folder(parameter_values(args.parameter))
            print(run_notebook(args.name, args.output, args.profile, parameters))
        except NotebookChoiceError as error:  # raised before anything runs: notebook, profile or parameter unknown
            print(f"error: {error}", file=sys.stderr)
            return 2
        except papermill.PapermillExecutionError as error:
            where = failed_notebook(executed_notebook(args.name, args.output, args.profile))
            print(f"error: notebook {args.name} stopped in cell [{error.exec_count}]: {error.ename}: "
                  f"{error.evalue.splitlines()[0] if error.evalue else ''} (traceback in {where})", file=sys.stderr)
            return 2 if error.ename in INPUT_ERRORS else 1
    elif args.command == "refresh-ci":
        from ssimlib.apps.notebooks import NotebookChoiceError, check_choice, refresh_ci_copies

        try:
            for name in args.names:
                check_choice(name, "ci")
        except NotebookChoiceError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        refresh_ci_copies(args.names or None)
    return 0


# said where a run without --report rewrote the report an earlier run left in --out (it would show older results)
_REWRITTEN = " (rewritten without --report: --out held an earlier run's report.html)"


SHOWN_ALIKE = 3  # warnings alike (the same but for the file they name) shown one by one; the rest counted


@contextlib.contextmanager
def _warnings_on_stderr(named_in=None):
    """Warnings on the command line: one line each, ``warning: <message>``, on stderr; of warnings alike (``<file>:
    <the same words>``, a colour image converted for every image of a folder, say) the first :data:`SHOWN_ALIKE`,
    then one line that counts the rest, at the end, and says where they are named (``named_in``, else not)."""
    alike, of_files = Counter(), set()

    def show(message, category, filename, lineno, file=None, line=None):
        head, _, words = str(message).partition(": ")
        of_file = bool(words) and ("/" in head or os.sep in head or bool(Path(head).suffix))  # "<file>: <words>"
        kind = words if of_file else str(message)
        if of_file:
            of_files.add(kind)
        alike[kind] += 1
        if alike[kind] <= SHOWN_ALIKE:
            print(f"warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        try:
            yield
        finally:
            for kind, count in alike.items():
                if count > SHOWN_ALIKE:
                    more = count - SHOWN_ALIKE
                    what = "file" if kind in of_files else "time"
                    named = f" ({'named in ' + named_in if named_in else 'not named'})" if kind in of_files else ""
                    print(f"warning: {more} more {what}{'' if more == 1 else 's'}{named}: {kind}", file=sys.stderr)


def _options_problem(args):
    """The first option of ``train``, ``detect`` or ``evaluate`` that cannot work, as one line, or None: checked
    before Keras loads (half a minute)."""
    from ssimlib.apps.own_options import InputError, check_count, check_out_folder, check_threshold, check_train_options

    try:
        if not args.out.strip():
            raise InputError(f"--out: expected a {'model path' if args.command == 'train' else 'folder'}, got ''")
        # a tester's: an empty argument (an unset shell variable, "$DIR") searched the working folder
        given = [("DATA", args.data)] if args.command == "train" else [("MODEL", args.model)] + [
            ("IMAGE_OR_FOLDER", path) for path in args.inputs]
        empty = next(((name, value) for name, value in given if not value.strip()), None)
        if empty:
            name, value = empty
            what = "a model path" if name == "MODEL" else "a folder" if name == "DATA" else "an image or a folder"
            raise InputError(f"{name}: expected {what}, got {value!r} (an unset shell variable?)")
        if args.command == "train" and (args.out.endswith(("/", os.sep)) or Path(args.out).is_dir()):
            raise InputError(f"--out {args.out}: is a folder; expected the path of the model without suffix, e.g. "
                             f"{Path(args.out) / 'model'}")
        if args.command == "train":
            check_train_options(args.kind, args.loss, args.patch_size, args.latent_dim, args.epochs, args.n_patches,
                                args.batch_size, args.validation_fraction, args.min_defect_area, args.out)
            return None
        if getattr(args, "mask_suffix", None) is not None and not args.mask_suffix.strip():
            raise InputError("--mask-suffix: expected the end of a mask's name after its image's stem, e.g. "
                             f"_mask.png, got {args.mask_suffix!r}")
        if args.threshold is not None:
            check_threshold(args.threshold)
        if getattr(args, "min_defect_area", None) is not None:
            check_count("--min-defect-area", args.min_defect_area)
        check_out_folder(args.out)
    except InputError as error:
        return str(error)
    return None


def _own_images(args):
    """``train`` and ``detect``: exit status 0, or 2 with one line per problem on stderr."""
    load_keras_quietly()
    from ssimlib.apps import own_images
    from ssimlib.train import CheckpointError

    try:
        with _warnings_on_stderr("detections.csv" if args.command == "detect" else None):
            return _own_images_command(args, own_images)
    except (own_images.InputError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _own_images_command(args, own_images):
    """``train`` or ``detect`` itself (:func:`_own_images` turns its input errors into exit status 2)."""
    if args.command == "train":
        manifest = own_images.train_model(
            args.data, args.out, args.kind, args.loss, args.patch_size, args.latent_dim, args.epochs,
            args.n_patches, args.batch_size, gray=args.gray, validation_fraction=args.validation_fraction,
            min_defect_area=args.min_defect_area, seed=args.seed, restart=args.restart,
        )
        n_validation = len(manifest["training"]["validation_images"])
        print(f"model {args.out}.weights.h5 and {args.out}.json; threshold "
              f"{manifest['detection']['threshold']:.4f} from {n_validation} held-out defect-free "
              f"image{'' if n_validation == 1 else 's'}")
        return 0
    from ssimlib.apps import own_detection
    from ssimlib.apps.report import earlier_report

    report = args.report or earlier_report(args.out, own_detection.RUN_NAME)
    rows, bad, resumed = own_detection.detect(args.model, args.inputs, args.out, args.threshold, args.precision,
                                              args.min_defect_area)
    defective = sum(row["verdict"] == "defective" for row in rows)
    earlier = f" ({resumed} of them done by an earlier run of this command, kept)" if resumed else ""
    print(f"{len(rows)} image{'' if len(rows) == 1 else 's'}{earlier}: {defective} defective, "
          f"{len(rows) - defective} good; maps, overlays and {own_detection.CSV_NAME} in {args.out}")
    if report:
        from ssimlib.apps.report import detections_report
        from ssimlib.artifacts import read_manifest

        threshold = (args.threshold if args.threshold is not None
                     else read_manifest(args.model)["detection"]["threshold"])
        print(f"report: {detections_report(args.out, rows, threshold, args.model)}{_REWRITTEN * (not args.report)}")
    for path, problem in bad:
        print(f"error: {path}: {problem}", file=sys.stderr)
    return 2 if bad else 0


def _evaluate(args):
    """``evaluate``: exit status 0, or 2 with one line per problem on stderr (what could be computed is written)."""
    load_keras_quietly()
    from ssimlib.apps.own_evaluation import METRICS_NAME, RUN_NAME, evaluate_images, operating_lines, type_lines
    from ssimlib.apps.own_options import InputError
    from ssimlib.apps.report import earlier_report
    from ssimlib.data import DatasetError

    report = args.report or earlier_report(args.out, RUN_NAME)
    try:
        with _warnings_on_stderr(METRICS_NAME):
            metrics, rows, rule, bad, reused = evaluate_images(
                args.model, args.inputs, args.out, args.masks, args.mask_suffix, args.threshold, args.precision,
                report=report,
            )
    except (InputError, DatasetError) as error:
        for line in str(error).splitlines():  # nothing to score: every problem, a line each
            print(f"error: {line}", file=sys.stderr)
        return 2
    print(rule)

    def value(x):
        return "n/a" if x is None else f"{x:.3f}"

    images = metrics["images"]
    written = f"{METRICS_NAME}, CSV and curves" if metrics["figures"] else f"{METRICS_NAME} and CSV"
    earlier = f"; {reused} of their maps made by an earlier run of this command, kept" if reused else ""
    print(f"{images['scored']} image{'' if images['scored'] == 1 else 's'} ({images['defect_free']} defect-free, "
          f"{images['defective']} defective{earlier}): pixel AUROC {value(metrics['pixel_auroc'])}, AU-PRO@0.3 "
          f"{value(metrics['au_pro@0.3'])}, image AUROC {value(metrics['image_auroc'])}; {written} in {args.out}"
          + (", report.html" if report else "") + _REWRITTEN * (report and not args.report))
    for name, line in type_lines(metrics["by_defect_type"]) + operating_lines(metrics["operating_points"]):
        print(f"  {name}: {line}")
    for line in bad:
        print(f"error: {line}", file=sys.stderr)
    return 2 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
