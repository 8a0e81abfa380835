"""Run the study's notebooks with papermill, with their full defaults or a named profile.

Profiles are YAML files of parameters, ``notebooks/params/<profile>/<notebook>.yaml``;
the ``full`` profile is the notebook's own ``parameters`` cell (the paper's settings).
``refresh_ci_copies`` re-executes every notebook with the ``ci`` profile into
``tests/notebooks/``, where ``pytest --nbval`` checks that a fresh run prints the same.

What nbval compares must come out the same on any CPU: structure, shapes, counts,
settings, and metrics computed by inference on committed models (printed to 2 or 3
decimals; float32 kernels of different instruction sets differ only in the last
bits).  Metrics of models that a ``ci`` run trains itself depend on those bits
through hundreds of steps, so their cells start with ``# NBVAL_IGNORE_OUTPUT`` and
the next cell asserts what holds on any CPU (finite, in range, the loss fell, the
ordering the notebook claims).  ``.ci/run`` runs the notebooks twice, the second
time under another oneDNN instruction set (``ONEDNN_MAX_CPU_ISA``), to prove it.
"""

import os
import shutil
from pathlib import Path

import yaml

from ssimlib.paths import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
PARAMS_DIR = NOTEBOOK_DIR / "params"
CI_COPY_DIR = REPO_ROOT / "tests" / "notebooks"
KERNEL_ENV = {
    # Keep TensorFlow's C++ start-up log out of cell outputs (see notebooks/.ipython).
    "IPYTHONDIR": str(NOTEBOOK_DIR / ".ipython"),
    "TF_CPP_MIN_LOG_LEVEL": "3",
}


def notebook_names():
    """Names (without ``.ipynb``) of the study's notebooks, in order."""
    return sorted(p.stem for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def profile_parameters(name, profile):
    """Parameters of ``profile`` for notebook ``name`` (empty for ``full``)."""
    if profile == "full":
        return {}
    path = PARAMS_DIR / profile / f"{name}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no '{profile}' profile for notebook {name}")
    return yaml.safe_load(path.read_text()) or {}


def run_notebook(name, output=None, profile="full", parameters=None, cwd=None, log_output=False):
    """Execute ``notebooks/<name>.ipynb`` with papermill; returns the executed notebook's path.

    ``output`` defaults to the notebook itself (its committed outputs are
    replaced).  ``parameters`` override the profile's.  ``cwd`` is the kernel's
    working folder (default ``notebooks/``), against which relative paths resolve.
    """
    import papermill

    source = NOTEBOOK_DIR / f"{name}.ipynb"
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such notebook; choose from {', '.join(notebook_names())}")
    params = {**profile_parameters(name, profile), **(parameters or {})}
    output = Path(output) if output else source
    os.environ.update(KERNEL_ENV)
    try:
        papermill.execute_notebook(
            str(source), str(output), parameters=params, cwd=str(cwd or NOTEBOOK_DIR),
            kernel_name="python3", log_output=log_output, progress_bar=False,
        )
    finally:
        if output.exists():
            portable_metadata(output)
    return output


def _portable_path(path):
    """``path`` relative to the repository (``notebooks/01_checkerboard_toy.ipynb``); outside it, the file name."""
    resolved = Path(path).resolve()
    return resolved.relative_to(REPO_ROOT).as_posix() if resolved.is_relative_to(REPO_ROOT) else resolved.name


def portable_metadata(path):
    """Rewrite the papermill metadata of the notebook at ``path`` without absolute paths of this machine.

    Papermill records ``input_path`` and ``output_path`` as given (absolute here);
    they become paths relative to the repository, so a committed notebook does not
    carry the folder of the machine that ran it.
    """
    import nbformat

    notebook = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    record = notebook.metadata.get("papermill", {})
    changed = False
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
        run_notebook(name, CI_COPY_DIR / f"{name}.ipynb", profile="ci", cwd=CI_COPY_DIR)
