"""Keras (and TensorFlow) imported without their start-up log, for the command line and its worker processes."""

import contextlib
import os
import sys


@contextlib.contextmanager
def process_stderr_silenced():
    """Point file descriptor 2 at /dev/null for the block (Python exceptions still surface after it)."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def load_keras_quietly():
    """Import Keras and its backend without their start-up log.

    TensorFlow 2.21 writes two lines at import (absl's "All log messages before
    absl::InitializeLog()" and oneDNN's "custom operations are on") that
    ``TF_CPP_MIN_LOG_LEVEL`` does not stop, so the import runs with stderr silenced.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with process_stderr_silenced():
        import keras  # noqa: F401
