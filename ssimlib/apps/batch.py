"""Run ``notebooks/04_mvtec_category.ipynb`` for many MVTec AD categories and both models.

::

    python -m ssimlib batch [--data-root ROOT] [--categories a b ...] [--losses ssim l2] [--setup cvpr2019]
        [--profile full] [--redo] [--models-root models] [--output-dir runs/batch]
        [--results-dir results/mvtec] [--figures-dir figures]
        [--gpus 0 1 ...] [--workers N] [--scheduler tcp://host:8786] [-p KEY VALUE ...]

Every (category, loss) runs the notebook once with papermill (:func:`ssimlib.apps.notebooks.run_notebook`),
on the category under ``--data-root``, or without it wherever :func:`ssimlib.experiments.mvtec_runs.category_root`
finds it (``$SSIMLIB_DATA/mvtec_ad``, else a ``mvtec_ad*`` folder beside it, such as the shared
copies of grid and bottle):
it evaluates the model stored in ``--models-root`` (default: the profile's; for ``full`` the
repository's ``models/``).  A profile that trains (``full``, ``reduced``: its ``train_missing``)
first trains a missing model there, and an unfinished one (stopped before the end of its
schedule, e.g. a job killed at epoch 15 of 200 after its export at epoch 10) on to the end of
its schedule, at the profile's budget (checkpoints in ``<output-dir>/checkpoints``, so a re-run
resumes).  ``ci`` never trains: it evaluates stored models as they are, and a missing one ends
the batch before it starts (one line, exit code 2).  The executed notebook is
kept as ``<output-dir>/<category>-<loss>-<setup>.ipynb``, one that stopped in a cell as
``<category>-<loss>-<setup>.failed.ipynb`` beside it (Ctrl-C keeps those of the runs in flight so).  A failing run
does not stop the others: it is reported at the end and the exit code is 1; a category whose folder lacks what the
notebook reads, or a stored manifest that cannot be read, fails its runs before any starts
(:mod:`ssimlib.apps.batch_plan`).  A run whose
``<results-dir>/<category>-<loss>-<setup>.json`` is already complete for the same profile, came
from the model now stored (the same sha256), with the same parameters and data
(:func:`ssimlib.apps.batch_results.result_differences`) and, for a profile that trains, from a
model that finished the schedule asked for, is skipped unless ``--redo``; a model trained on since
its evaluation (e.g. from 50 to 200 epochs) is evaluated again.  A stored model of another
schedule or other settings than asked fails its run (it is never passed off as the one asked for).
Results and figures go to ``results/mvtec`` and ``figures`` for ``full``, else under ``runs/<profile>/``.

Where the runs go:

* default: a local pool of ``--workers`` processes (default: one per ``--gpus`` entry,
  else 1), a Dask ``LocalCluster`` if ``distributed`` is installed
  (``pip install "ssimlib[distributed]"``), else :mod:`concurrent.futures`;
* ``--gpus 0 1``: one worker per GPU of this machine, each run with
  ``CUDA_VISIBLE_DEVICES`` set to its worker's GPU;
* ``--scheduler tcp://host:8786``: submitted to an existing Dask distributed cluster.
  Its workers must see the same paths (data, output and results on a shared file
  system) and have ssimlib installed; start one single-threaded worker per GPU, each
  with its own ``CUDA_VISIBLE_DEVICES`` (``--gpus`` applies to local runs only).
"""

import argparse
import importlib.util
import logging
import os
import sys
import time
from pathlib import Path

from ssimlib.arguments import OneLineParser, at_least_one
from ssimlib.apps.notebooks import (check_parameters, check_profile_parameter, failed_notebook, keep_cells_run,
                                    notebook_defaults, parameter_values, profile_cwd, profile_parameters, run_notebook,
                                    run_outputs)
from ssimlib.apps.own_options import InputError, check_out_folder
from ssimlib.apps.batch_plan import (category_name, find_categories, layout_failures, located_categories,
                                     plan_runs, stored_manifests)
from ssimlib.apps.batch_results import result_epochs, result_is_complete, result_model_finished
from ssimlib.experiments.mvtec_runs import model_stem, results_path, run_name
from ssimlib.experiments.presets import LOSSES, SETUPS

NOTEBOOK = "04_mvtec_category"
SCHEDULER_TIMEOUT = 15  # s to wait for a --scheduler to answer
# Notebook parameters that run_category sets for each run, and the batch option that gives them.
OPTION_OF_PARAMETER = {"data_root": "--data-root", "category": "--categories", "loss": "--losses", "setup": "--setup",
                       "models_root": "--models-root", "output_dir": "--output-dir", "results_dir": "--results-dir",
                       "figures_dir": "--figures-dir"}


def run_parameters(profile, parameters=None):
    """The notebook parameters a batch ``profile`` (a params folder) sets, with ``parameters`` overriding them."""
    return {**profile_parameters(NOTEBOOK, profile), **(parameters or {})}


def profile_label(profile, parameters=None):
    """The ``profile`` value the notebook records for a batch ``profile`` and overrides."""
    return str(run_parameters(profile, parameters).get("profile", "full"))


def trains(profile, parameters=None):
    """Whether a batch of ``profile`` (with ``parameters``) trains missing and unfinished models.

    The profile's ``train_missing`` decides (``ci``: false, it only evaluates stored models;
    ``reduced``: true, its own small models); without one (``full``) the batch trains.
    """
    return bool(run_parameters(profile, parameters).get("train_missing", True))


def models_root_of(profile, parameters=None, models_root=None):
    """The model store the notebook uses: ``models_root``, else the profile's, else None.

    A profile's relative path resolves where its kernel runs (:func:`ssimlib.apps.notebooks.profile_cwd`:
    ``tests/notebooks/`` for ``ci``, else ``notebooks/``).  None is the notebook's default,
    the repository's ``models/``.
    """
    if models_root:
        return Path(models_root)
    chosen = run_parameters(profile, parameters).get("models_root")
    return (profile_cwd(profile) / chosen).resolve() if chosen else None


def _error_text(error, limit=300):
    """One line naming the exception (for papermill errors: the notebook's exception)."""
    name = getattr(error, "ename", None) or type(error).__name__
    value = getattr(error, "evalue", None) or str(error)
    text = f"{name}: {value}".replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_category(category, loss, setup, data_root, profile, parameters, output_dir, results_dir, figures_dir,
                 models_root, label, gpu=None, train=True):
    """Run the notebook for one category and model (``loss``) in ``setup``; never raises.

    Returns ``{"category", "run", "status" ("ok" or "failed"), "error", "seconds", "notebook", "gpu", "pid",
    "epochs"}``, ``run`` being :func:`ssimlib.experiments.mvtec_runs.run_name`, ``pid`` the process that ran it (a
    pool or Dask worker) and ``epochs`` ``"<done>/<schedule>"`` of the evaluated model.
    ``gpu`` sets ``CUDA_VISIBLE_DEVICES`` for this process and the notebook's kernel.  With ``train``
    the notebook trains a missing model, and an unfinished one on to the end of its schedule, and
    the run fails unless the result is of a finished model; without it, the stored model is
    evaluated as it is.
    """
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    output_dir, results_dir = Path(output_dir), Path(results_dir)
    name = run_name(category, loss, setup)
    notebook = output_dir / f"{name}.ipynb"
    result = results_path(results_dir, category, loss, setup)
    started, clock = time.time(), time.perf_counter()
    outcome = {"category": category, "run": name, "status": "ok", "error": None, "notebook": str(notebook),
               "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid()}
    try:
        if not (Path(data_root) / category).is_dir():
            raise FileNotFoundError(f"{Path(data_root) / category} does not exist")
        output_dir.mkdir(parents=True, exist_ok=True)
        params = {
            **parameters,
            "data_root": str(data_root),
            "category": category,
            "loss": loss,
            "setup": setup,
            **({"models_root": str(models_root)} if models_root else {}),
            "train_missing": bool(train),
            "output_dir": str(output_dir / "checkpoints"),
            "results_dir": str(results_dir),
            "figures_dir": str(figures_dir) if figures_dir else "",
        }
        run_notebook(NOTEBOOK, notebook, profile, params)
        if not result_is_complete(result, label, since=started):
            raise RuntimeError(f"the notebook finished without writing a complete {result}")
        outcome["epochs"] = result_epochs(result)
        if train and not result_model_finished(result):
            raise RuntimeError(f"{result}: its model has only {outcome['epochs']} epochs of its schedule")
    except Exception as error:  # one failing category must not stop the batch
        outcome.update(status="failed", error=_error_text(error))
        failed = failed_notebook(notebook)
        if failed.is_file() and failed.stat().st_mtime >= started:  # the notebook stopped in a cell
            outcome["notebook"] = str(failed)
    outcome["seconds"] = time.perf_counter() - clock
    return outcome


# ---------------------------------------------------------------------------
# Executors
# ---------------------------------------------------------------------------


def _use_gpu(gpu):
    os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)


def _pool_initializer(gpus):
    """Give this pool worker the next free GPU of the shared queue."""
    _use_gpu(gpus.get())


def _run_with_futures(jobs, workers, gpus, report, run=None):
    """Run ``jobs`` (kwargs of ``run``, default :func:`run_category`) in a process pool; returns the outcomes.  Stopped
    (Ctrl-C, SIGTERM), it cancels the runs not started and ends the workers before the interrupt goes on."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")
    outcomes = []
    with context.Manager() as manager:
        initializer, initargs = None, ()
        if gpus:
            queue = manager.Queue()
            for gpu in gpus:
                queue.put(gpu)
            initializer, initargs = _pool_initializer, (queue,)
        with ProcessPoolExecutor(workers, mp_context=context, initializer=initializer, initargs=initargs) as pool:
            futures = [pool.submit(run or run_category, **job) for job in jobs]
            try:
                for future in as_completed(futures):
                    outcomes.append(future.result())
                    report(outcomes[-1])
            except KeyboardInterrupt:  # a reviewer's: kill (SIGTERM) reaches this process alone, and the pool's exit
                # ran every queued run before the batch ended; Ctrl-C reaches the workers too
                processes = list(pool._processes.values())  # no public handle on them; shutdown drops this one
                pool.shutdown(wait=False, cancel_futures=True)
                for process in processes:
                    process.terminate()
                raise
    return outcomes


class SchedulerUnreachable(Exception):
    """The ``--scheduler`` address has no Dask scheduler that answers (nothing has run)."""


def _run_with_dask(jobs, workers, gpus, report, scheduler=None):
    """Run ``jobs`` on a Dask cluster: the one at ``scheduler``, or a new LocalCluster of ``workers`` processes."""
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout=SCHEDULER_TIMEOUT)
        except (OSError, ValueError, TypeError) as error:  # distributed's traceback would bury the one thing to say
            raise SchedulerUnreachable(f"--scheduler {scheduler}: no Dask scheduler answered there "
                                       f"({str(error).splitlines()[0] if str(error) else type(error).__name__})"
                                       ) from None
    else:
        # Our own workers' problems are reported in the outcomes; the nanny's "still alive after 4.0 seconds,
        # killing" as a worker winds TensorFlow down at the end is no news to the user.
        logging.getLogger("distributed").setLevel(logging.ERROR)
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR)  # the workers' too: a run cancelled by Ctrl-C, say
        client = Client(cluster)
        for address, gpu in zip(sorted(client.scheduler_info()["workers"]), gpus or []):
            client.run(_use_gpu, gpu, workers=[address])
    try:
        futures = [client.submit(run_category, **job,
                                 key=f"ssimlib-batch-{run_name(job['category'], job['loss'], job['setup'])}",
                                 pure=False) for job in jobs]
        outcomes = []
        for future in as_completed(futures):
            outcomes.append(future.result())
            report(outcomes[-1])
        return outcomes
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _have_distributed():
    return importlib.util.find_spec("distributed") is not None


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def _line(outcome):
    status = {"ok": "ok", "failed": "FAILED", "skipped": "skipped"}[outcome["status"]]
    seconds = f"{outcome['seconds']:.0f} s" if outcome.get("seconds") is not None else ""
    gpu = f"GPU {outcome['gpu']}" if outcome.get("gpu") not in (None, "") else ""
    detail = outcome.get("error") or outcome.get("notebook") or ""
    if outcome["status"] != "failed" and outcome.get("epochs"):
        detail += f" ({outcome['epochs']} epochs)"
    if outcome["status"] == "failed" and outcome.get("notebook"):
        detail += f" (see {outcome['notebook']})"
    return f"  {outcome['run']:<30} {status:<8} {seconds:>7} {gpu:<6} {detail}"


def parse_args(argv=None):
    parser = OneLineParser(
        prog="python -m ssimlib batch", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data-root", help="folder holding <category>/train/good, test/, ground_truth/ "
                        "(default: wherever ssimlib.experiments.mvtec_runs.category_root finds each category)")
    parser.add_argument("--categories", nargs="+", metavar="NAME", type=category_name,
                        help="categories to run (default: every one of the 15 that is found)")
    parser.add_argument("--losses", nargs="+", default=["ssim", "l2"], metavar="LOSS", choices=LOSSES,
                        help="models, by training loss: ssim (SSIM-AE), l2 (L2-AE), ssim_l1 (default: ssim l2)")
    parser.add_argument("--setup", default="cvpr2019", choices=SETUPS, help="the presets' setup (default: %(default)s)")
    parser.add_argument("--models-root",
                        help="model store: stored models are evaluated, missing ones trained into it (default: the "
                             "profile's, for full the repository's models/)")
    parser.add_argument("--profile", default="full",
                        help="full (the notebook's defaults) or a folder of notebooks/params: reduced (trains its own "
                             "small models into runs/), ci (never trains: evaluates stored models only)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                        help="override a notebook parameter; VALUE is read as YAML (2, 0.5, true, text)")
    parser.add_argument("--redo", action="store_true", help="run categories whose results file is already complete")
    parser.add_argument("--output-dir", default="runs/batch",
                        help="executed notebooks and checkpoints (default: runs/batch)")
    parser.add_argument("--results-dir",
                        help="<category>-<loss>-<setup>.json files (default: results/mvtec for full, "
                             "else runs/<profile>/results/mvtec)")
    parser.add_argument("--figures-dir",
                        help="figures go to <figures-dir>/mvtec ('' = none; default: figures for full, "
                             "else runs/<profile>/figures)")
    parser.add_argument("--gpus", nargs="+", metavar="ID", help="GPU ids of this machine: one worker per GPU")
    parser.add_argument("--workers", type=at_least_one, help="local worker processes (default: one per GPU, else 1)")
    parser.add_argument("--scheduler", help="address of an existing Dask scheduler, e.g. tcp://host:8786")
    return parser.parse_args(argv)


def main(argv=None):
    """Run the batch; returns 0 if every category ran or was skipped, 1 if any failed, 2 on bad arguments."""
    args = parse_args(argv)
    parameters = parameter_values(args.parameter)
    owned = next((key for key in parameters if key in OPTION_OF_PARAMETER), None)
    if owned:  # run_category sets it for every run: a -p value would be overridden without a word
        print(f"error: -p {owned}: the batch sets it for each run; use {OPTION_OF_PARAMETER[owned]}", file=sys.stderr)
        return 2
    data_root = Path(args.data_root).expanduser().resolve() if args.data_root else None
    try:
        check_parameters(NOTEBOOK, parameters)
        check_profile_parameter(NOTEBOOK, args.profile, parameters)
        label = profile_label(args.profile, parameters)
        train = trains(args.profile, parameters)
        outputs = (("--output-dir", args.output_dir), ("--results-dir", args.results_dir),
                   ("--figures-dir", args.figures_dir), ("--models-root", train and args.models_root))
        for option, folder in outputs:
            if folder:  # each run would fail at its end (a model: after its training), its work lost
                check_out_folder(folder, option)
        if args.models_root and not train and Path(args.models_root).expanduser().is_file():
            raise InputError(f"--models-root: {args.models_root} is a file, not a folder")
        roots = ({c: data_root for c in find_categories(data_root, args.categories)} if data_root
                 else located_categories(args.categories))
    except (FileNotFoundError, InputError) as error:  # NotebookChoiceError (an unknown profile) included
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.scheduler and not _have_distributed():
        print('error: --scheduler needs Dask distributed: pip install "ssimlib[distributed]"', file=sys.stderr)
        return 2
    # Only the full profile writes into the committed results/ and figures/ by default.
    runs_folders = run_outputs(NOTEBOOK, args.profile)[1] if args.profile != "full" else {}
    results = args.results_dir if args.results_dir is not None else runs_folders.get("results_dir", "results/mvtec")
    figures = args.figures_dir if args.figures_dir is not None else runs_folders.get("figures_dir", "figures")
    output_dir = Path(args.output_dir).expanduser().resolve()
    results_dir = Path(results).expanduser().resolve()
    figures_dir = str(Path(figures).expanduser().resolve()) if figures else ""
    gpus = list(args.gpus or [])
    workers = args.workers or max(1, len(gpus))
    if gpus and workers != len(gpus):
        print(f"error: --gpus gives {len(gpus)} GPUs but --workers {workers}: one worker per GPU", file=sys.stderr)
        return 2

    setup = parameters.pop("setup", args.setup)
    models_root = str(Path(args.models_root).expanduser().resolve()) if args.models_root else None
    store = models_root_of(args.profile, parameters, models_root)
    every_run = [(category, loss) for category in roots for loss in dict.fromkeys(args.losses)]
    outcomes = layout_failures(roots, every_run, setup)  # each fails its own runs, up front
    failed_up_front = {o["run"] for o in outcomes}
    manifests, unreadable = stored_manifests([r for r in every_run if run_name(*r, setup) not in failed_up_front],
                                             setup, store)
    outcomes += unreadable
    if not train:  # a profile that does not train (ci) needs every model stored; say so before starting anything
        absent = [model_stem(c, loss, setup, store) for (c, loss), manifest in manifests.items() if manifest is None]
        if absent:
            more = f" and {len(absent) - 1} more" if len(absent) > 1 else ""
            besides = (f"; besides, {len(outcomes)} run(s) would fail up front ({', '.join(o['run'] for o in outcomes)}"
                       f": {outcomes[0]['error']}{' ...' if len(outcomes) > 1 else ''})" if outcomes else "")
            print(f"error: profile {args.profile} does not train (train_missing false) and needs a stored model: "
                  f"{absent[0]} is missing{more}; use --profile reduced (small models) or full, "
                  f"or -p train_missing true{besides}",
                  file=sys.stderr)
            return 2
    # What each run's notebook will have: its defaults, the profile's and -p's (the batch's own options aside).
    values = {key: value for key, value in {**notebook_defaults(NOTEBOOK), **run_parameters(args.profile, parameters)
                                            }.items() if key not in OPTION_OF_PARAMETER}
    skipped, to_run, replaced = plan_runs(manifests, setup=setup, results_dir=results_dir, roots=roots, values=values,
                                          label=label, train=train, store=store, redo=args.redo)
    outcomes += skipped
    jobs = [dict(category=category, loss=loss, setup=setup, data_root=str(roots[category]), profile=args.profile,
                 parameters=parameters, output_dir=str(output_dir), results_dir=str(results_dir),
                 figures_dir=figures_dir, models_root=models_root, label=label, train=train)
            for category, loss in to_run]
    use_dask = bool(args.scheduler) or _have_distributed()
    where = (f"Dask scheduler {args.scheduler}" if args.scheduler
             else f"{workers} local worker(s)" + (f" on GPUs {' '.join(gpus)}" if gpus else "")
             + (" in a Dask LocalCluster" if use_dask else " in a process pool"))
    up_front = sum(o["status"] == "failed" for o in outcomes)
    print(f"batch {NOTEBOOK}, profile {args.profile} ({label}): {len(jobs)} to run, "
          f"{len(outcomes) - up_front} skipped" + (f", {up_front} failed up front (named below)" if up_front else "")
          + f"; {where}; "
          + ("missing and unfinished models are trained to the end of their schedule" if train
             else "stored models are evaluated as they are, nothing is trained"), flush=True)

    def report(outcome):
        print(_line(outcome), flush=True)

    for line in replaced:
        print(line, flush=True)
    for outcome in outcomes:
        report(outcome)
    try:
        if jobs and use_dask:
            outcomes += _run_with_dask(jobs, workers, gpus, report, scheduler=args.scheduler)
        elif jobs:
            outcomes += _run_with_futures(jobs, workers, gpus, report)
    except SchedulerUnreachable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the runs in flight: their cells run so far kept, not left hidden as .running
        for job in jobs:
            kept = keep_cells_run(output_dir / f"{run_name(job['category'], job['loss'], setup)}.ipynb")
            if kept:
                print(f"kept the cells a stopped run had run: {kept}", file=sys.stderr)
        raise

    order = {run_name(category, loss, setup): i for i, (category, loss) in enumerate(every_run)}
    outcomes.sort(key=lambda o: order[o["run"]])
    failed = [o for o in outcomes if o["status"] == "failed"]
    counts = {s: sum(o["status"] == s for o in outcomes) for s in ("ok", "skipped", "failed")}
    print(f"\nbatch done: {counts['ok']} ok, {counts['skipped']} skipped, {counts['failed']} failed")
    for outcome in outcomes:
        print(_line(outcome))
    if failed:
        print(f"failed: {' '.join(o['run'] for o in failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
