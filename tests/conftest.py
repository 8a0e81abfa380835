"""Shared fixtures: paths of the optional real data, a quiet TensorFlow, the notebook kernel config, a killed run,
a tiny model of ``ssimlib train``.

The real data lies in ``$SSIMLIB_DATA`` if set (as :func:`ssimlib.paths.data_root` looks),
else in ``../shared/data`` beside the repository.  Tests and nbval notebooks that need a
dataset that is not there are skipped with a message naming it.
"""

import contextlib
import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# nbval kernels: keep C-level log lines (TensorFlow, XLA) out of cell outputs.
os.environ["IPYTHONDIR"] = str(Path(__file__).resolve().parents[1] / "notebooks" / ".ipython")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ["SSIMLIB_DATA"]) if os.environ.get("SSIMLIB_DATA") else REPO.parent / "shared" / "data"
NANOTWICE = SHARED_DATA / "nanotwice"


def _mvtec_grid_root():
    """Where the notebooks find the grid category (ssimlib.experiments.mvtec_runs.category_root: mvtec_ad, then
    mvtec_ad*), or None."""
    default = SHARED_DATA / "mvtec_ad"
    for folder in [default] + sorted(p for p in SHARED_DATA.glob("mvtec_ad*") if p != default):
        if (folder / "grid" / "train").is_dir():
            return folder
    return None


def _missing_data():
    """``{dataset: reason}`` for every dataset the tests use that is not there."""
    missing = {}
    if not (NANOTWICE / "Normal").is_dir():
        missing["nanotwice"] = f"NanoTWICE not found at {NANOTWICE} (see README: Data; set SSIMLIB_DATA)"
    if _mvtec_grid_root() is None:
        missing["mvtec_grid"] = (f"MVTec AD grid not found in {SHARED_DATA}/mvtec_ad or {SHARED_DATA}/mvtec_ad* "
                                 "(see README: Data; set SSIMLIB_DATA)")
    return missing


# The datasets each nbval reference notebook (tests/notebooks/<name>.ipynb) reads.
NOTEBOOK_DATA = {
    "02_roc_comparison": ("nanotwice",),
    "03_sensitivity": ("nanotwice",),
    "04_mvtec_category": ("mvtec_grid",),
}


def pytest_sessionstart(session):
    """nbval must train from scratch, as the reference copies were made: drop old ci checkpoints."""
    from ssimlib.apps.notebooks import clear_ci_output

    clear_ci_output()


def pytest_collection_modifyitems(config, items):
    """Skip the nbval cells of a notebook whose data is missing (else every cell after the loader fails)."""
    missing = _missing_data()
    if not missing:
        return
    for item in items:
        path = Path(str(getattr(item, "path", None) or item.fspath))
        if path.suffix != ".ipynb":
            continue
        absent = [missing[d] for d in NOTEBOOK_DATA.get(path.stem, ()) if d in missing]
        if absent:
            item.add_marker(pytest.mark.skip(reason=f"notebook {path.name} needs data: {'; '.join(absent)}"))


@pytest.fixture
def nanotwice_root():
    if not (NANOTWICE / "Normal").is_dir():
        pytest.skip(f"NanoTWICE not found at {NANOTWICE} (see README: Data)")
    return NANOTWICE


@pytest.fixture
def mvtec_root():
    root = _mvtec_grid_root()
    if root is None:
        pytest.skip(_missing_data()["mvtec_grid"])
    return root


class Killed(Exception):
    """What :func:`killed_after_checkpoints` raises where a real process would have been killed."""


@pytest.fixture
def killed_after_checkpoints(monkeypatch):
    """``with killed_after_checkpoints(2): train(...)``: the run dies right after writing its 2nd checkpoint."""
    from ssimlib import train as train_module

    real_save = train_module.save_checkpoint

    @contextlib.contextmanager
    def after(n):
        saved = []

        def save_then_die(*args, **kwargs):
            real_save(*args, **kwargs)
            saved.append(1)
            if len(saved) == n:
                raise Killed

        monkeypatch.setattr(train_module, "save_checkpoint", save_then_die)
        try:
            with pytest.raises(Killed):
                yield
        finally:
            monkeypatch.setattr(train_module, "save_checkpoint", real_save)

    return after


# `ssimlib train` options of a tiny model: seconds to train, enough to exercise every output of detect and evaluate.
TINY_TRAIN = ["--patch-size", "32", "--latent-dim", "8", "--epochs", "2", "--n-patches", "64", "--batch-size", "16",
              "--validation-fraction", "0.25", "--min-defect-area", "16"]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """``(category, model stem)``: a generated category in the MVTec AD layout (8 training boards; test/good 2 and
    test/stroke 3 images, 64 px) and a tiny model trained on it with ``ssimlib train``.  Tests copy, never alter it."""
    from ssimlib.apps.cli import main
    from ssimlib.synthetic import write_synthetic_category

    root = tmp_path_factory.mktemp("tiny")
    category = write_synthetic_category(root, "parts", n_train=8, n_good=2, n_defective=3, size=64)
    model = root / "model" / "parts"
    assert main(["train", str(category), "--out", str(model), *TINY_TRAIN]) == 0
    return category, model
