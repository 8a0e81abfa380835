"""The model, loss and inference tests again under the JAX backend (Keras picks a backend once per process)."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

TESTS = Path(__file__).parent
PORTABLE_MODULES = ["test_ssim.py", "test_models.py", "test_inference.py", "test_postprocess.py"]


@pytest.mark.skipif(keras.backend.backend() == "jax", reason="already running under JAX")
def test_model_loss_and_inference_tests_pass_under_jax():
    pytest.importorskip("jax", reason="JAX is not installed (pip install -e .[dev] installs it)")
    # x64 lets the float64 SSIM parity tests run in float64, as on TensorFlow.
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_ENABLE_X64": "1", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *PORTABLE_MODULES],
        cwd=TESTS, env=env, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
