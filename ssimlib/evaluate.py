"""The paper's evaluation protocol on a whole test set, and atomic results files.

For every test image: sliding-window reconstruction (stride 30 for 128 px
patches), residual map, grey opening with a disk of diameter 4 (equivalent to
opening every thresholded segmentation, see :mod:`ssimlib.postprocess`).  The
metrics then count pixels over the whole test set.
"""

import json
import math
import os
import re
from pathlib import Path

import numpy as np

from ssimlib.inference import reconstruct_image, residual_map, vae_residual_map
from ssimlib.metrics import au_pro, image_auroc, pixel_auroc
from ssimlib.models import VariationalAutoencoder
from ssimlib.postprocess import PAPER_OPENING_DIAMETER, open_anomaly_map
from ssimlib.ssim import DEFAULT_WINDOW, STANDARD


def anomaly_maps(
    model,
    images,
    kind="ssim",
    patch_size=128,
    stride=30,
    window_size=11,
    window=DEFAULT_WINDOW,
    opening_diameter=PAPER_OPENING_DIAMETER,
    batch_size=256,
    vae_samples=6,
    constants=STANDARD,
):
    """Post-processed anomaly maps ``[(H, W), ...]`` and reconstructions ``[(H, W, C), ...]`` of ``images``.

    ``kind`` is a residual of :func:`ssimlib.inference.residual_map`; a
    :class:`~ssimlib.models.VariationalAutoencoder` always uses its
    reconstruction-probability residual over ``vae_samples`` samples; ``constants`` reads the SSIM residual's
    constants (:data:`ssimlib.ssim.SSIM_CONSTANTS`).
    """
    maps, reconstructions = [], []
    for image in images:
        reconstruction = reconstruct_image(model, image, patch_size, stride, batch_size)
        if isinstance(model, VariationalAutoencoder):
            residual = vae_residual_map(model, image, vae_samples, patch_size, stride, batch_size)
        else:
            residual = residual_map(image, reconstruction, kind=kind, window_size=window_size, window=window,
                                    constants=constants)
        maps.append(open_anomaly_map(residual, opening_diameter))
        reconstructions.append(reconstruction)
    return maps, reconstructions


def summary_metrics(maps, masks, labels=None, fpr_limit=0.3):
    """Pixel AUROC, AU-PRO up to ``fpr_limit``, and image AUROC (None when only one class of image exists)."""
    results = {
        "pixel_auroc": pixel_auroc(maps, masks),
        f"au_pro@{fpr_limit:g}": au_pro(maps, masks, fpr_limit=fpr_limit),
        "image_auroc": None,
    }
    if labels is not None and 0 < np.mean(labels) < 1:
        results["image_auroc"] = image_auroc(maps, labels)
    return results


def jsonable(value):
    """``value`` as JSON holds it: tuples as lists, keys as strings, NumPy scalars as Python's, NaN/inf as None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path, data):
    """Write ``data`` as JSON to ``path`` atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(jsonable(data), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def read_campaign(path, list_key, empty, kind):
    """A campaign's results file as a dict, ``empty`` where there is none.

    A file that is not JSON, or has no ``list_key`` list (one entry per finished
    run), raises a ValueError that names it and says it is not a ``kind`` file.
    """
    path = Path(path)
    if not path.exists():
        return empty
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); restore it from git or delete it") from error
    if not isinstance(results, dict) or not isinstance(results.get(list_key), list):
        raise ValueError(f"{path} has no '{list_key}' list: it is not a {kind} file")
    return results


def add_to_campaign(path, results, list_key, entry, key, **fields):
    """Put ``entry`` into ``results[list_key]`` in place of the one with the same ``key(entry)``, sorted by
    ``key``; set ``fields``; write the file atomically.  Returns ``results``."""
    results[list_key] = sorted([r for r in results[list_key] if key(r) != key(entry)] + [entry], key=key)
    results.update(fields)
    write_json(path, results)
    return results


def cpu_model():
    """The CPU's model name (Linux ``/proc/cpuinfo``), else what :mod:`platform` knows."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# Vector-instruction flags that decide how fast this code runs on a CPU (``/proc/cpuinfo`` names).
VECTOR_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def cpu_flags():
    """The flags of :data:`VECTOR_FLAGS` that ``/proc/cpuinfo`` lists (Linux; else empty)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return []
    return [flag for flag in VECTOR_FLAGS if flag in flags]


def cpu_label():
    """The CPU in a few words, e.g. ``"AMD EPYC (AVX-512, 2 cores)"``: model, widest vector extension, cores.

    Machines that share a model name can differ in their vector units (and run
    this code 2-4x apart), hence the extension.
    """
    name = re.sub(r"\((R|TM)\)", "", cpu_model())
    name = re.sub(r"\s+(CPU|Processor)\b.*$", "", name).strip()
    flags = set(cpu_flags())
    isa = next((label for flag, label in (("amx_tile", "AMX"), ("avx512f", "AVX-512"), ("avx2", "AVX2"))
                if flag in flags), None)
    return f"{name} ({', '.join(filter(None, (isa, f'{os.cpu_count()} cores')))})"


def run_environment():
    """Backend, device, CPU and library versions, for the record in a results file."""
    import importlib
    import platform

    import keras

    backend = keras.backend.backend()
    device = platform.processor() or platform.machine()
    if backend == "jax":
        import jax

        device = str(jax.devices()[0])
    elif backend == "torch":
        import torch

        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        device = gpus[0].name if gpus else "cpu"
    return {
        "backend": backend,
        "device": device,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "keras": keras.__version__,
        backend: importlib.import_module(backend).__version__,
        "python": platform.python_version(),
    }
