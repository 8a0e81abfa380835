"""The command line, and the notebook conventions every notebook follows."""

import ast
import subprocess
import sys

import nbformat
import pytest
import yaml

from ssimlib.cli import main
from ssimlib.notebooks import CI_COPY_DIR, NOTEBOOK_DIR, PARAMS_DIR, notebook_names, profile_parameters

NAMES = notebook_names()


def test_demo_prints_a_pixel_auroc(capsys):
    assert main(["demo", "--epochs", "1"]) == 0
    assert "pixel AUROC" in capsys.readouterr().out


def _parameters(name):
    nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert "parameters" in first_code.metadata.get("tags", []), f"{name}: first code cell is not tagged 'parameters'"
    lines = [line for line in first_code.source.splitlines() if line.strip()]
    names = [ast.parse(line.split("#")[0]).body[0].targets[0].id for line in lines if not line.lstrip().startswith("#")]
    return names, lines


def test_there_are_five_notebooks():
    assert len(NAMES) == 5


@pytest.mark.parametrize("name", NAMES)
def test_parameters_cell_documents_every_parameter(name):
    names, lines = _parameters(name)
    assert "profile" in names and "figures_dir" in names
    for line in lines:
        assert "#" in line, f"{name}: parameter line without a comment: {line!r}"


@pytest.mark.parametrize("name", NAMES)
def test_profiles_only_set_known_parameters(name):
    names, _ = _parameters(name)
    for profile_file in PARAMS_DIR.glob(f"*/{name}.yaml"):
        unknown = set(yaml.safe_load(profile_file.read_text()) or {}) - set(names)
        assert not unknown, f"{profile_file}: parameters the notebook does not have: {unknown}"
    assert profile_parameters(name, "ci")["profile"] == "ci"
    assert (CI_COPY_DIR / f"{name}.ipynb").exists(), f"run: python -m ssimlib refresh-ci {name}"


def test_unknown_notebook_is_reported():
    with pytest.raises(FileNotFoundError, match="choose from"):
        main(["notebook", "99_nothing"])


def test_cli_prints_no_tensorflow_start_up_log():
    run = subprocess.run([sys.executable, "-m", "ssimlib", "train-study", "--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "train-study" in run.stdout
    assert "oneDNN" not in run.stderr and "absl" not in run.stderr, run.stderr


@pytest.mark.parametrize("name", NAMES)
def test_papermill_lists_every_parameter(name):
    # What `papermill --help-notebook` shows and `-p` can set: a line papermill cannot parse is left out of both.
    import papermill

    names, _ = _parameters(name)
    for notebook in (NOTEBOOK_DIR / f"{name}.ipynb", CI_COPY_DIR / f"{name}.ipynb"):
        listed = papermill.inspect_notebook(str(notebook))
        assert list(listed) == names, f"{notebook}: papermill does not parse {sorted(set(names) - set(listed))}"
