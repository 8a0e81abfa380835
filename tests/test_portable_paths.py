"""Committed files carry no absolute path of the machine that made them: model manifests and notebooks."""

import json
import re

import nbformat

from ssimlib.apps.notebooks import portable_metadata
from ssimlib.paths import REPO_ROOT

# A path of some machine: a folder at the root of a Unix file system, or a drive letter.
ABSOLUTE_PATH = re.compile(
    r"(?<![\w.~/-])/(?:work|home|root|tmp|Users|mnt|media|scratch|data|srv|opt)/"
    r"|(?<![A-Za-z])[A-Za-z]:(?:\\|/(?!/))"
)


def committed_files():
    manifests = sorted((REPO_ROOT / "models").rglob("*.json"))
    notebooks = sorted((REPO_ROOT / "notebooks").glob("*.ipynb")) + sorted(
        (REPO_ROOT / "tests" / "notebooks").glob("*.ipynb"))
    return manifests + notebooks


def strings(value, where=""):
    """``(where, text)`` of every string in a parsed JSON value."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from strings(item, f"{where}[{i}]")


def absolute_paths(path):
    return [(where, text.strip()[:120]) for where, text in strings(json.loads(path.read_text()))
            if ABSOLUTE_PATH.search(text)]


def test_the_pattern_finds_machine_paths_and_nothing_else():
    for text in ("/work/main/notebooks/01.ipynb", "data: /home/me/mvtec/grid", "x /tmp/out", "C:\\data\\grid",
                 "D:/models"):
        assert ABSOLUTE_PATH.search(text), text
    for text in ("mvtec_ad_grid_256/grid", "https://example.org/home/x", "../models/work/", "ratio: 1/2",
                 "~/.cache/ssimlib", "notebooks/01.ipynb"):
        assert not ABSOLUTE_PATH.search(text), text


def test_committed_manifests_and_notebooks_hold_no_absolute_path():
    files = committed_files()
    assert any(p.suffix == ".json" for p in files) and any(p.suffix == ".ipynb" for p in files)
    found = {p.relative_to(REPO_ROOT).as_posix(): hits for p in files if (hits := absolute_paths(p))}
    assert not found, f"absolute paths in committed files: {found}"


def test_the_runner_records_repository_relative_paths(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["papermill"] = {"input_path": str(REPO_ROOT / "notebooks" / "01_checkerboard_toy.ipynb"),
                                      "output_path": str(tmp_path / "out.ipynb"), "parameters": {"epochs": 2}}
    path = tmp_path / "out.ipynb"
    path.write_text(nbformat.writes(notebook))
    portable_metadata(path)
    record = nbformat.read(path, as_version=4).metadata["papermill"]
    assert record == {"input_path": "notebooks/01_checkerboard_toy.ipynb", "output_path": "out.ipynb",
                      "parameters": {"epochs": 2}}
