"""The same code and the same stored model give the same answers under every Keras backend.

Keras picks its backend once per process, so the other backends run in subprocesses with ``KERAS_BACKEND`` set.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from ssimlib import artifacts, parity
from ssimlib.datasets import load_nanotwice

TESTS = Path(__file__).parent
PORTABLE_MODULES = ["test_ssim.py", "test_models.py", "test_inference.py", "test_postprocess.py"]
# Largest absolute difference allowed between two backends' opened SSIM anomaly maps (values about 0-1.1):
# float32 convolutions summed in another order differ in their last bits; seen: 1.1e-4 TensorFlow vs JAX.
MAP_TOLERANCE = 1e-3
# x64 lets JAX compute the SSIM residual in float64, as TensorFlow does (the model itself stays float32).
JAX_ON_CPU = {"KERAS_BACKEND": "jax", "JAX_ENABLE_X64": "1", "JAX_PLATFORMS": "cpu"}


@pytest.mark.skipif(keras.backend.backend() == "jax", reason="already running under JAX")
def test_model_loss_and_inference_tests_pass_under_jax():
    pytest.importorskip("jax", reason="JAX is not installed (pip install -e .[dev] installs it)")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *PORTABLE_MODULES],
        cwd=TESTS, env={**os.environ, **JAX_ON_CPU}, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


def test_committed_ssim_ae_gives_the_same_anomaly_map_on_tensorflow_and_jax(nanotwice_root):
    other = {"tensorflow": "jax", "jax": "tensorflow"}.get(keras.backend.backend())
    if other is None or importlib.util.find_spec(other) is None:
        pytest.skip(f"needs TensorFlow and JAX (this process runs {keras.backend.backend()}, {other} is not installed)")
    stem = artifacts.study_model("nanotwice", "ssim_ae")
    image = parity.crop_of(load_nanotwice(nanotwice_root).test_images[0])
    here, where_here = parity.anomaly_map(stem, image)
    env = JAX_ON_CPU if other == "jax" else {"KERAS_BACKEND": other}
    there, where_there = parity.anomaly_map_elsewhere(stem, image, env)
    assert {where_here["backend"], where_there["backend"]} == {"tensorflow", "jax"}
    assert here.shape == there.shape == image.shape[:2]
    assert np.ptp(here) > 0.1  # a map with structure, not a constant one
    assert parity.compare(here, there)["max_abs"] < MAP_TOLERANCE
