"""Shared fixtures: paths of the optional real data, a quiet TensorFlow, the notebook kernel config."""

import os
from pathlib import Path

import pytest

from ssimlib.paths import data_root

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# nbval kernels: keep C-level log lines (TensorFlow, XLA) out of cell outputs.
os.environ["IPYTHONDIR"] = str(Path(__file__).resolve().parents[1] / "notebooks" / ".ipython")

REPO = Path(__file__).resolve().parents[1]
# $SSIMLIB_DATA/<name> where set, else ../shared/data/<name> beside the repository (as the package finds them).
NANOTWICE = data_root("nanotwice")
MVTEC_GRID = data_root("mvtec_ad_grid_256")


def pytest_sessionstart(session):
    """nbval must train from scratch, as the reference copies were made: drop old ci checkpoints."""
    from ssimlib.notebooks import clear_ci_output

    clear_ci_output()


@pytest.fixture
def nanotwice_root():
    if not (NANOTWICE / "Normal").is_dir():
        pytest.skip(f"NanoTWICE not found at {NANOTWICE} (see README: Data)")
    return NANOTWICE


@pytest.fixture
def mvtec_root():
    if not (MVTEC_GRID / "grid").is_dir():
        pytest.skip(f"MVTec AD grid copy not found at {MVTEC_GRID} (see README: Data)")
    return MVTEC_GRID
