"""Run the study's notebooks with papermill, with their full defaults or a named profile.

Profiles are YAML files of parameters, ``notebooks/params/<profile>/<notebook>.yaml``;
the ``full`` profile is the notebook's own ``parameters`` cell (the paper's settings).
``refresh_ci_copies`` re-executes every notebook with the ``ci`` profile into
``tests/notebooks/``, where ``pytest --nbval`` checks that a fresh run prints the same.

Only the ``full`` profile writes into the repository's committed files by default (the
executed notebook over ``notebooks/<name>.ipynb``, figures into ``figures/``, results
into ``results/``).  Any other profile writes its executed notebook to
``runs/<profile>/<name>.ipynb`` and its figures and results under ``runs/<profile>/``
(:data:`OUTPUT_PARAMETERS`), unless the caller names other places.  The ``ci``
profile's paths are relative to ``tests/notebooks/``, where its kernel runs.

What nbval compares must come out the same on any CPU: structure, shapes, counts,
settings, and metrics computed by inference on committed models (printed to 2 or 3
decimals; float32 kernels of different instruction sets differ only in the last
bits).  Metrics of models that a ``ci`` run trains itself depend on those bits
through hundreds of steps, so their cells start with ``# NBVAL_IGNORE_OUTPUT`` and
the next cell asserts what holds on any CPU (finite, in range, the loss fell, the
ordering the notebook claims).  ``.ci/run`` runs the notebooks twice, the second
time under another oneDNN instruction set (``ONEDNN_MAX_CPU_ISA``), to prove it.
"""

import ast
import math
import os
import shutil
from pathlib import Path

import yaml

from ssimlib.apps.own_options import InputError, check_out_folder
from ssimlib.architecture import encoder_layer_spec
from ssimlib.experiments.presets import CROP_PROTOCOLS, LOSSES, RESIDUALS, SETUPS
from ssimlib.paths import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
PARAMS_DIR = NOTEBOOK_DIR / "params"
CI_COPY_DIR = REPO_ROOT / "tests" / "notebooks"
RUNS_DIR = REPO_ROOT / "runs"  # gitignored
# The parameters naming folders a notebook writes into, and where a non-full profile's
# run puts them by default, under ``runs/<profile>/``.  (05's results_dir is read, not written.)
OUTPUT_PARAMETERS = {
    "01_checkerboard_toy": {"figures_dir": "figures"},
    "02_roc_comparison": {"figures_dir": "figures", "results_dir": "results"},
    "03_sensitivity": {"figures_dir": "figures", "results_dir": "results"},
    "04_mvtec_category": {"figures_dir": "figures", "results_dir": "results/mvtec"},
    "05_mvtec_summary": {"figures_dir": "figures"},
}
# The parameters naming folders a notebook reads results from: they must exist before the kernel starts.
INPUT_PARAMETERS = {"05_mvtec_summary": ("results_dir",), "04_mvtec_category": ("data_root",)}  # None: not given
KERNEL_ENV = {
    # Keep TensorFlow's C++ start-up log out of cell outputs (see notebooks/.ipython).
    "IPYTHONDIR": str(NOTEBOOK_DIR / ".ipython"),
    "TF_CPP_MIN_LOG_LEVEL": "3",
}


class NotebookChoiceError(FileNotFoundError):
    """An unknown notebook or parameter, a profile the notebook does not have, or an output path that cannot be
    written (one line, for the command line)."""


# A kernel's start (it imports Keras) may take minutes on 2 cores busy with other runs: papermill's 60 s failed a
# batch's run with "Kernel didn't respond in 60 seconds" in place of the notebook's own error (a tester's, at load 5)
KERNEL_START_SECONDS = 300


def notebook_names():
    """Names (without ``.ipynb``) of the study's notebooks, in order."""
    return sorted(p.stem for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def profile_names(name):
    """The profiles notebook ``name`` has: ``full`` and every folder of ``notebooks/params`` with a file for it."""
    return ["full"] + sorted(p.parent.name for p in PARAMS_DIR.glob(f"*/{name}.yaml"))


def check_choice(name, profile="full"):
    """Raise :class:`NotebookChoiceError` unless ``name`` is a notebook and ``profile`` one of its profiles."""
    if not (NOTEBOOK_DIR / f"{name}.ipynb").exists():
        raise NotebookChoiceError(f"no notebook {name!r}; choose from {', '.join(notebook_names())}")
    if profile not in profile_names(name):
        raise NotebookChoiceError(
            f"notebook {name} has no profile {profile!r}; choose from {', '.join(profile_names(name))}")


# Numeric parameters are counts, sizes or rates above 0, except these, which may be 0; none may be negative.
ZERO_ALLOWED = {"seed", "test_seed", "example", "example_image", "min_defect_area", "n_examples", "weight_decay",
                "blur_sigma", "fm_weight", "validation_fraction"}
FRACTIONS = {"segmentation_fpr", "validation_fraction"}  # below 1 as well
SEEDS = {"seed", "test_seed"}  # below 2**32 (NumPy's and Keras' seeds)
# Parameters whose default is None ("the preset's", "all", ...) and the kind of value they take instead.
KIND_WHEN_NONE_DEFAULT = {"patch_size": int, "latent_dim": int, "resize": int, "n_test_images": int, "epochs": int,
                          "residual": str, "crops": str, "data_root": str, "models_root": str}
# Text parameters with a fixed set of values.
CHOICES = {"loss": LOSSES, "setup": SETUPS, "residual": RESIDUALS, "crops": tuple(CROP_PROTOCOLS)}
# Index parameters and the count parameter they index into (a count of None: not known before the run).
INDEX_PARAMETERS = {"example": "n_test", "example_image": "n_test_images"}
KIND_NAMES = {bool: "true or false", str: "text", int: "a whole number", float: "a number"}


def parameter_values(pairs):
    """``{key: value}`` of ``-p KEY VALUE`` pairs (:func:`parameter_value`); a key given twice takes its last value,
    as repeated options do."""
    return {key: parameter_value(value) for key, value in pairs}


def from_callers_folder(parameters):
    """``parameters`` with each folder or file (``*_dir``, ``*_root``, ``*_path``) given as a relative path made
    absolute against the caller's working folder, as ``-o`` is: the kernel runs in another (:func:`profile_cwd`)."""
    return {key: os.path.abspath(os.path.expanduser(value))
            if key.endswith(("_dir", "_root", "_path")) and isinstance(value, str) and value else value
            for key, value in parameters.items()}


def parameter_value(text):
    """A ``-p`` value read as YAML (``2``, ``0.5``, ``true``, text), a number written as ``1e-4`` included (YAML 1.1
    reads that as text); an empty VALUE is the empty string (YAML reads None: ``-p figures_dir ''``, no figures, was
    refused), ``null`` is None."""
    if not text.strip():
        return ""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        value = int(number) if number.is_integer() and "." not in value else number
    if isinstance(value, float) and not math.isfinite(value) and not any(w in text.lower() for w in ("inf", "nan")):
        return text  # a literal too large for a float (1e999): kept as typed, for value_problem to quote
    return value


def notebook_defaults(name):
    """``{parameter: default value}`` of notebook ``name``'s parameters cell."""
    import papermill

    known = papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb"))
    return {key: ast.literal_eval(entry["default"]) for key, entry in known.items()}


def check_parameters(name, parameters):
    """Raise :class:`NotebookChoiceError` for a key of ``parameters`` that notebook ``name``'s parameters cell
    does not have (papermill would pass it on unused: a typo would run for hours with the default), a value
    the notebook cannot use (:func:`value_problem`) or an index beyond its count (:data:`INDEX_PARAMETERS`),
    before any cell runs."""
    import papermill

    known = papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb"))
    unknown = [key for key in parameters if key not in known]
    if unknown:
        raise NotebookChoiceError(f"notebook {name} has no parameter {unknown[0]!r}; choose from {', '.join(known)}")
    for key, value in parameters.items():
        none_allowed = "None" in known[key]["help"]  # the parameters cell says what None means there
        problem = value_problem(key, value, ast.literal_eval(known[key]["default"]), none_allowed)
        if problem:
            raise NotebookChoiceError(f"-p {key} {value!r}: expected {problem} (notebook {name}, default "
                                      f"{known[key]['default']})")
    values = {key: ast.literal_eval(entry["default"]) for key, entry in known.items()} | parameters
    for index, count in INDEX_PARAMETERS.items():
        if index in values and values.get(count) is not None and values[index] >= values[count]:
            raise NotebookChoiceError(f"-p {index} {values[index]!r}: expected an index below {count} "
                                      f"({values[count]}; notebook {name})")


def check_profile_parameter(name, profile, parameters):
    """Raise :class:`NotebookChoiceError` when ``parameters`` set ``profile`` to the label of another profile than
    ``--profile`` ``profile``: the results would name a profile whose parameters did not make them (a label of
    one's own, ``-p profile my-run``, is fine)."""
    label = profile_parameters(name, profile).get("profile", "full")
    others = {_label_of(name, other) for other in profile_names(name)} - {label, None}
    if (parameters or {}).get("profile") in others:
        raise NotebookChoiceError(f"-p profile {parameters['profile']!r}: the label of another profile; a profile is "
                                  f"chosen with --profile (this run's is {profile}, labelled {label!r}), which also "
                                  "sets its parameters")


def _label_of(name, profile):
    """The label ``profile`` gives its runs of ``name``, or None where its file cannot be read (another profile's
    mistake does not stop this one's runs)."""
    try:
        return profile_parameters(name, profile).get("profile", "full")
    except NotebookChoiceError:
        return None


def value_problem(key, value, default, none_allowed=False):
    """What parameter ``key`` should be instead of ``value``, given its ``default``, or ``None`` if it is fine.

    ``None`` only where the default is ``None`` or ``none_allowed``; a value must have the default's kind
    (true/false, text, whole number, number; :data:`KIND_WHEN_NONE_DEFAULT` where the default is ``None``), be one
    of :data:`CHOICES`, and be a finite number in the range :data:`ZERO_ALLOWED`, :data:`FRACTIONS` and
    :data:`SEEDS` say; a ``patch_size`` one that Table I's network takes (:mod:`ssimlib.architecture`).
    """
    kind = KIND_WHEN_NONE_DEFAULT.get(key) if default is None else type(default)
    if kind in (int, float) and isinstance(value, str) and _overflows(value):
        return "a finite number"
    if value is None:
        return None if default is None or none_allowed else KIND_NAMES[kind]
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is bool and not isinstance(value, bool) or kind is str and not isinstance(value, str):
        return KIND_NAMES[kind]
    if kind is int and not (number and isinstance(value, int)) or kind is float and not number:
        return KIND_NAMES[kind]
    if key in CHOICES and value not in CHOICES[key]:
        return f"one of {', '.join(CHOICES[key])}"
    if key == "category" and (value in ("", ".", "..") or "/" in value):  # grid/ would take another preset and model
        return "the name of a category's folder (grid, not a path)"
    if not number:
        return None
    if not math.isfinite(value):
        return "a finite number"
    if key in SEEDS and value >= 2**32:
        return "a seed below 2**32"
    lower_ok = value >= 0 if key in ZERO_ALLOWED else value > 0
    if lower_ok and key == "patch_size":
        try:
            encoder_layer_spec(value)
        except ValueError:
            return "a patch side of 8 * 2**k pixels, k >= 2 (32, 64, 128, 256, ...)"
    if lower_ok and (key not in FRACTIONS or value < 1):
        return None
    if key in FRACTIONS:
        return f"a number in {'[' if key in ZERO_ALLOWED else '('}0, 1)"
    return "a number from 0 up" if key in ZERO_ALLOWED else "a number above 0"


def _overflows(text):
    """Whether ``text`` is a number literal beyond float's range (``1e999``), which :func:`parameter_value` keeps."""
    try:
        return not math.isfinite(float(text))
    except ValueError:
        return False


def profile_parameters(name, profile):
    """Parameters of ``profile`` for notebook ``name`` (empty for ``full``)."""
    if profile == "full":
        return {}
    path = PARAMS_DIR / profile / f"{name}.yaml"
    if not path.exists():
        check_choice(name, profile)
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise NotebookChoiceError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None
    if not isinstance(values, dict):
        raise NotebookChoiceError(f"{path}: expected lines of parameter: value, not a YAML {type(values).__name__}")
    return values


def profile_cwd(profile):
    """The kernel's working folder for ``profile``, against which its relative paths resolve.

    ``tests/notebooks/`` for ``ci`` (where nbval runs the reference copies), else ``notebooks/``.
    """
    return CI_COPY_DIR if profile == "ci" else NOTEBOOK_DIR


def run_outputs(name, profile):
    """Where a run of ``name`` with a non-full ``profile`` writes by default: ``(notebook, {parameter: folder})``."""
    base = RUNS_DIR / profile
    return base / f"{name}.ipynb", {key: str(base / sub) for key, sub in OUTPUT_PARAMETERS.get(name, {}).items()}


def executed_notebook(name, output=None, profile="full"):
    """Where :func:`run_notebook` writes the executed notebook: ``output``, else the notebook itself
    (``full``) or ``runs/<profile>/<name>.ipynb``."""
    if output:
        return Path(output)
    return NOTEBOOK_DIR / f"{name}.ipynb" if profile == "full" else run_outputs(name, profile)[0]


def run_notebook(name, output=None, profile="full", parameters=None, cwd=None, log_output=False, keep_in_runs=None):
    """Execute ``notebooks/<name>.ipynb`` with papermill; returns the executed notebook's path.

    ``output`` defaults to the notebook itself for the ``full`` profile (its
    committed outputs are replaced), and to ``runs/<profile>/<name>.ipynb`` for
    another.  ``parameters`` override the profile's.  ``keep_in_runs`` (default:
    for every profile but ``full``) also points the notebook's figures and results
    folders (:data:`OUTPUT_PARAMETERS`) under ``runs/<profile>/``, unless
    ``parameters`` name them.  ``cwd`` is the kernel's working folder (default
    :func:`profile_cwd`), against which relative paths resolve.
    Raises :class:`NotebookChoiceError` for an unknown notebook, profile or parameter.
    """
    import papermill

    check_choice(name, profile)
    source = NOTEBOOK_DIR / f"{name}.ipynb"
    params = {**profile_parameters(name, profile), **(parameters or {})}
    check_parameters(name, params)
    check_profile_parameter(name, profile, parameters)
    if keep_in_runs is None:
        keep_in_runs = profile != "full"
    if keep_in_runs:
        params.update({key: folder for key, folder in run_outputs(name, profile)[1].items()
                       if key not in (parameters or {})})
    output = executed_notebook(name, output, profile)
    _check_output(output)
    for key in OUTPUT_PARAMETERS.get(name, {}):
        _check_output_folder(key, params.get(key), cwd or profile_cwd(profile))
    for key in INPUT_PARAMETERS.get(name, ()):
        given = params.get(key, notebook_defaults(name)[key])
        folder = Path(cwd or profile_cwd(profile)) / given if given is not None else None
        if folder is not None and not folder.is_dir():
            raise NotebookChoiceError(f"-p {key}: {folder} is not a folder; expected the folder it reads")
    output.parent.mkdir(parents=True, exist_ok=True)
    os.environ.update(KERNEL_ENV)
    running = running_notebook(output)  # papermill writes cell by cell: output at the end
    try:
        papermill.execute_notebook(
            str(source), str(running), parameters=params, cwd=str(cwd or profile_cwd(profile)),
            kernel_name="python3", log_output=log_output, progress_bar=False, start_timeout=KERNEL_START_SECONDS,
        )
    except BaseException:  # Ctrl-C included: the cells run so far go to failed_notebook(output), output untouched
        keep_cells_run(output)
        raise
    portable_metadata(running, output)
    os.replace(running, output)
    failed_notebook(output).unlink(missing_ok=True)  # an earlier run's stopped cells: this run has replaced them
    return output


def running_notebook(output):
    """Where :func:`run_notebook` has papermill write a run into ``output`` while it runs: hidden beside it."""
    output = Path(output)
    return output.with_name(f".{output.stem}.running.ipynb")


def keep_cells_run(output):
    """Move what a stopped run into ``output`` had written (:func:`running_notebook`) to :func:`failed_notebook`;
    returns that path, or None where nothing was left.  A notebook cut off mid-write is moved as it is."""
    running, failed = running_notebook(output), failed_notebook(output)
    if not running.is_file():
        return None
    failed.parent.mkdir(parents=True, exist_ok=True)
    try:
        portable_metadata(running, failed)
    except (ValueError, OSError):  # nbformat could not read it: keep it as written
        pass
    os.replace(running, failed)
    return failed


def failed_notebook(output):
    """Where :func:`run_notebook` leaves the cells that ran of a run into ``output`` that stopped: beside it as
    ``<name>.failed.ipynb``, or ``runs/failed/<name>.ipynb`` for a notebook of ``notebooks/`` or ``tests/notebooks/``
    (none is added there); a later run that finishes removes it."""
    output = Path(output)
    if output.resolve().parent in (NOTEBOOK_DIR.resolve(), CI_COPY_DIR.resolve()):  # the notebooks, nbval's copies
        return RUNS_DIR / "failed" / output.name
    return output.with_name(f"{output.stem}.failed.ipynb")


def _check_output_folder(key, folder, cwd):
    """Raise :class:`NotebookChoiceError` unless the output folder parameter ``key`` (relative to ``cwd``) can be
    written, so that a run does not fail at its end."""
    if not folder:  # None or "": nothing is written
        return
    try:
        check_out_folder(Path(cwd) / folder, f"-p {key}")
    except InputError as error:
        raise NotebookChoiceError(str(error)) from None


def _check_output(output):
    """Raise :class:`NotebookChoiceError` unless the executed notebook can be written at ``output``."""
    if output.is_dir():
        raise NotebookChoiceError(f"-o {output}: is a folder; expected the path of the executed notebook (.ipynb)")
    if output.suffix != ".ipynb":
        raise NotebookChoiceError(f"-o {output}: expected the path of the executed notebook, ending in .ipynb")
    try:
        check_out_folder(output.parent, f"-o {output}")
    except InputError as error:
        raise NotebookChoiceError(str(error)) from None


def _portable_path(path):
    """``path`` relative to the repository (``notebooks/01_checkerboard_toy.ipynb``); outside it, the file name."""
    resolved = Path(path).resolve()
    return resolved.relative_to(REPO_ROOT).as_posix() if resolved.is_relative_to(REPO_ROOT) else resolved.name


def portable_metadata(path, output_path=None):
    """Rewrite the papermill metadata of the notebook at ``path`` without absolute paths of this machine.

    Papermill records ``input_path`` and ``output_path`` as given (absolute here);
    they become paths relative to the repository, so a committed notebook does not
    carry the folder of the machine that ran it.  ``output_path`` replaces the recorded one (the place the
    notebook is moved to, not the file papermill wrote).
    """
    import nbformat

    notebook = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    record = notebook.metadata.get("papermill", {})
    changed = output_path is not None and record.get("output_path") != str(output_path)
    if changed:
        record["output_path"] = str(output_path)
    for key in ("input_path", "output_path"):
        if record.get(key):
            portable = _portable_path(record[key])
            changed = changed or portable != record[key]
            record[key] = portable
    if changed:
        Path(path).write_text(nbformat.writes(notebook))  # as papermill writes it


def clear_ci_output():
    """Remove the ci profile's checkpoints and outputs, so the next run trains from scratch as CI does."""
    shutil.rmtree(CI_COPY_DIR / "_ci_output", ignore_errors=True)


def refresh_ci_copies(names=None):
    """Re-execute notebooks with the ``ci`` profile into ``tests/notebooks/`` (the nbval references)."""
    CI_COPY_DIR.mkdir(parents=True, exist_ok=True)
    clear_ci_output()
    for name in names or notebook_names():
        print(f"ci profile: {name}", flush=True)
        run_notebook(name, CI_COPY_DIR / f"{name}.ipynb", profile="ci", cwd=CI_COPY_DIR, keep_in_runs=False)
