"""The process settings ssimlib applies at import (ssimlib/reproducibility.py)."""

import os
import platform

import numpy as np
import pytest

import ssimlib  # noqa: F401  (applies the settings)
from ssimlib.reproducibility import flush_denormals


def test_tensorflow_settings_are_in_the_environment():
    assert os.environ["TF_NUM_INTEROP_THREADS"] == "1"
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] in ("0", "1")


@pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64") or platform.libc_ver()[0] != "glibc",
    reason="denormals are flushed on x86-64 Linux with glibc only",
)
def test_denormals_are_flushed_on_this_thread():
    assert flush_denormals()
    smallest_normal = np.finfo(np.float32).tiny  # 1.18e-38
    assert np.float32(smallest_normal) * np.float32(0.5) == 0.0  # a denormal result becomes 0
    assert np.float32(smallest_normal) * np.float32(2.0) > 0.0  # normal numbers are untouched
