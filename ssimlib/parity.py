"""One stored model on two backends or devices: its anomaly maps of one image crop, compared.

:func:`anomaly_map` computes the SSIM-AE's opened anomaly map of a crop in this
process (whatever backend and device Keras uses here); :func:`anomaly_map_elsewhere`
computes the same in a fresh Python process with other environment variables
(``KERAS_BACKEND=jax``, ``JAX_PLATFORMS=cpu``, ...), since Keras picks its backend
once per process.  ``tests/test_backends.py`` compares TensorFlow with JAX on the
CPU, ``bench/gpu.py`` a GPU with the CPU.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ssimlib.paths import REPO_ROOT

# Top-left corner and side (px) of the crop of a NanoTWICE test image that the parity checks use:
# 256 px hold 5x5 windows of 128 px at stride 30, whose overlaps average as in a whole image.
CROP = (300, 400, 256)


def crop_of(image, crop=CROP):
    """The ``(side, side, C)`` crop at ``(row, column, side)`` of an ``(H, W, C)`` image, float32 in [0, 1]."""
    row, column, side = crop
    return np.ascontiguousarray(image[row : row + side, column : column + side], dtype=np.float32)


def anomaly_map(stem, image, stride=30):
    """Opened SSIM anomaly map ``(H, W)`` of ``image`` ``(H, W, C)`` by the stored model at ``stem``.

    Returns ``(map, where)``, ``where`` the backend and device it was computed on.
    """
    from ssimlib import artifacts
    from ssimlib.records import run_environment
    from ssimlib.inference import reconstruct_image, residual_map
    from ssimlib.postprocess import open_anomaly_map

    model, manifest = artifacts.load_model(stem)
    settings = manifest["training"]["settings"]
    reconstruction = reconstruct_image(model, image, model.patch_size, stride)
    residual = residual_map(image, reconstruction, kind="ssim", window_size=settings["window_size"],
                            window=settings["window"])
    environment = run_environment()
    return open_anomaly_map(residual), {"backend": environment["backend"], "device": environment["device"]}


def anomaly_map_elsewhere(stem, image, env, stride=30, timeout=600):
    """:func:`anomaly_map` in a fresh process whose environment adds ``env``; returns ``(map, where)``."""
    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "image.npy", Path(folder) / "map.npy"
        np.save(source, image)
        command = [sys.executable, "-m", "ssimlib.parity", str(stem), str(source), str(target), str(stride)]
        python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        result = subprocess.run(command, env={**os.environ, "PYTHONPATH": python_path, **env},
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"anomaly map with {env} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
        return np.load(target), json.loads(result.stdout.strip().splitlines()[-1])


def compare(a, b):
    """Largest and mean absolute difference of two maps, and the largest relative to ``a``'s range."""
    difference = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    return {"max_abs": float(difference.max()), "mean_abs": float(difference.mean()),
            "max_rel_to_range": float(difference.max() / max(np.ptp(a), 1e-12))}


def _main(stem, source, target, stride):
    result, where = anomaly_map(stem, np.load(source), int(stride))
    np.save(target, result)
    print(json.dumps(where))


if __name__ == "__main__":
    _main(*sys.argv[1:])
